"""Merged-blob rule (exoimage.tem.select): an outline around touching vesicles goes, the parts stay,
also when the outline is as strong as they are (a pinched outline, issue 13's lobe rule) and when
it is cut by the border (its fill cannot be judged); folds inside a convex outline stay folds."""

import numpy as np

from exoimage.tem.measure import shape_stats
from exoimage.tem.outline import polygon
from exoimage.tem.select import resolve_overlaps


def _obj(cy, cx, radii, quality, border=False):
    radii = np.asarray(radii, float)
    poly = polygon(cy, cx, radii)
    st = shape_stats(poly)
    return dict(poly=poly, centre=(cy, cx), radii=radii, score=quality, quality=quality, coverage=1.0,
                border=border, area=st["area"], circularity=st["circularity"], stats=st)


def _union_radii(cy, cx, discs, n=96):
    """Radii (from (cy, cx)) of the outer boundary of a union of discs (y, x, r), per angle."""
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    out = np.zeros(n)
    for y, x, r in discs:
        # ray (cy, cx) + t (sin, cos) meets the circle at t = b + sqrt(b^2 - c)
        dy, dx = cy - y, cx - x
        b = -(dy * np.sin(th) + dx * np.cos(th))
        disc = b ** 2 - (dy ** 2 + dx ** 2 - r ** 2)
        t = np.where(disc >= 0, b + np.sqrt(np.maximum(disc, 0)), 0.0)
        out = np.maximum(out, t)
    return out


def test_pinched_outline_around_touching_pair_gives_way_to_the_pair():
    a, b = (100.0, 100.0, 36.0), (100.0, 168.0, 32.0)  # touching discs (IoU with the union < 0.6)
    outer = _obj(100.0, 132.0, _union_radii(100.0, 132.0, [a, b]), quality=8.0)
    assert outer["stats"]["solidity"] < 0.9
    pa, pb = _obj(a[0], a[1], np.full(96, a[2]), 10.6), _obj(b[0], b[1], np.full(96, b[2]), 12.3)
    kept = resolve_overlaps([outer, pa, pb])
    assert sorted(round(2 * np.sqrt(o["area"] / np.pi)) for o in kept) == [64, 72]


def test_folds_inside_a_convex_outline_stay_folds():
    outer = _obj(100.0, 100.0, np.full(96, 60.0), quality=8.0)
    f1, f2 = _obj(100.0, 75.0, np.full(96, 28.0), 10.0), _obj(100.0, 130.0, np.full(96, 25.0), 10.0)
    kept = resolve_overlaps([outer, f1, f2])
    assert len(kept) == 1 and round(2 * np.sqrt(kept[0]["area"] / np.pi)) == 120


def test_border_outline_around_two_complete_vesicles_gives_way():
    # half of the outer outline lies outside the image: the parts fill 0.4 of its polygon
    outer = _obj(200.0, 100.0, np.full(96, 100.0), quality=2.2, border=True)
    pa, pb = _obj(130.0, 70.0, np.full(96, 30.0), 10.6), _obj(150.0, 140.0, np.full(96, 30.0), 8.5)
    kept = resolve_overlaps([outer, pa, pb])
    assert len(kept) == 2 and not any(o["border"] for o in kept)
