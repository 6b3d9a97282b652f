"""A dark outline holding several vesicles' outlines is a region round them, not a vesicle (issue 13)."""

import numpy as np

from exoimage.tem.detect import _holds_vesicles
from exoimage.tem.outline import N_ANGLES, polygon
from exoimage.tem.select import good_part


def _obj(y, x, r):
    radii = np.full(N_ANGLES, float(r))
    return {"centre": (float(y), float(x)), "radii": radii, "poly": polygon(y, x, radii), "area": np.pi * r * r}


def test_region_holding_two_vesicles_is_not_one():
    big = _obj(100, 100, 80)
    assert _holds_vesicles(big, [big, _obj(70, 100, 25), _obj(135, 100, 25)])


def test_one_vesicle_outlined_twice_inside_is_not_two():
    big = _obj(100, 100, 80)
    # the same body from two candidates (centres 5 px apart) and an outline outside the big one
    assert not _holds_vesicles(big, [big, _obj(100, 100, 30), _obj(104, 103, 28), _obj(100, 300, 30)])


def test_smaller_outline_cannot_hold_a_bigger_one():
    small = _obj(100, 100, 20)
    assert not _holds_vesicles(small, [_obj(100, 100, 60), _obj(100, 104, 58)])


def test_light_outline_round_two_good_vesicles_is_dropped():
    # stain_pools seed 3 at 1.4 nm/px: a weak light outline (radius 45 px, quality 1.7) round the
    # vesicles at (213, 258) and (152, 261) (quality 7.1 / 7.8) filled only 0.52 of it and kept them out
    from exoimage.io import Image
    from exoimage.simulate.tem_fields import match_detections, simulate_field
    from exoimage.tem.pipeline import analyze_tem_image

    img, truth = simulate_field("stain_pools", 1.4, seed=3, quick=True)
    found = analyze_tem_image(Image.from_array(img, 1.4)).vesicles
    m = match_detections(found, truth)
    tv = truth[truth.is_vesicle].reset_index(drop=True)
    hit = {j for _, j in m["pairs"]}
    for y, x in ((213, 258), (152, 261)):
        j = int(np.argmin(np.hypot(tv.y_px - y, tv.x_px - x)))
        assert j in hit
    assert m["fp"] == 0


def test_light_outline_keeps_its_folds():
    # the rule for light outlines asks for good parts: fold-like inner outlines (quality near the
    # outer's) do not remove the outer outline
    from exoimage.tem.outline import polygon

    def obj(cy, cx, r, q):
        poly = polygon(cy, cx, np.full(96, float(r)))
        return dict(poly=poly, centre=(cy, cx), radii=np.full(96, float(r)), area=np.pi * r * r,
                    quality=q, circularity=0.95, stats={"solidity": 0.98})

    outer = obj(100, 100, 50, 4.0)
    folds = [obj(90, 80, 15, 4.5), obj(110, 125, 15, 5.0)]
    parts = [obj(90, 80, 15, 9.0), obj(110, 125, 15, 10.0)]
    assert not _holds_vesicles(outer, [outer] + folds, part=good_part)
    assert _holds_vesicles(outer, [outer] + parts, part=good_part)
