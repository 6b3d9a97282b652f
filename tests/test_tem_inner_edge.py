"""The inner-edge test of a dark outline that took in its EV's halo (exoimage.tem.detect._inner_rim_outline)."""

import numpy as np

from exoimage.simulate.tem_fields import simulate_field
from exoimage.tem import detect as D
from exoimage.tem.params import TemParams


def _dark_outlines_near(scenario, px, seed, kind):
    img, truth = simulate_field(scenario, px, seed=seed, quick=True)
    data = img.astype(np.float32)
    cache = {}
    dark = D._detect_one_polarity(data, px, TemParams(), -1.0, None, cache=cache)
    out = []
    for _, t in truth[truth.kind == kind].iterrows():
        r = t.diameter_nm / 2 / px
        for o in dark:
            if np.hypot(o["centre"][0] - t.y_px, o["centre"][1] - t.x_px) < 0.25 * r:
                out.append((data, cache, o, r))
    return px, out


def test_dark_outline_on_halo_moved_in_to_the_body_edge():
    # dark_grain seed 1 at 0.5 nm/px: the EV at (334, 857) (R 58 px) has its dark outline at 1.28 R
    px, hits = _dark_outlines_near("dark_grain", 0.5, 1, "vesicle")
    on_halo = [(d, c, o, r) for d, c, o, r in hits if np.mean(o["radii"]) > 1.15 * r]
    assert on_halo
    moved = [D._inner_rim_outline(d, px, TemParams(), o, c) for d, c, o, r in on_halo]
    ok = [abs(np.mean(m["radii"]) / r - 1) < 0.1 for m, (_, _, _, r) in zip(moved, on_halo) if m is not None]
    assert ok and all(ok)


def test_crystal_has_no_inner_edge():
    px, hits = _dark_outlines_near("wide_range", 1.7, 1, "crystal")
    assert hits
    assert all(D._inner_rim_outline(d, px, TemParams(), o, c) is None for d, c, o, r in hits)
