"""The blot overlay draws each lane's profile and the background subtracted under it."""

import numpy as np

from exoimage.blot import draw_blot_overlay, quantify_blot
from exoimage.blot.measure import lane_traces
from exoimage.blot.pipeline import BACKGROUND_COLOUR
from exoimage.simulate.blot import scenario


def _colour_mask(rgb, col):
    return np.all(rgb == np.array(col, np.uint8), axis=2)


def test_overlay_draws_background_where_it_was_subtracted():
    sim = scenario("clean", seed=5)
    res = quantify_blot(sim.data)
    rgb = draw_blot_overlay(sim.data, res)
    plain = draw_blot_overlay(sim.data, res, traces=False)
    bgm = _colour_mask(rgb, BACKGROUND_COLOUR)
    assert not _colour_mask(plain, BACKGROUND_COLOUR).any()
    traces = lane_traces(sim.data, res.lane_geometry, res.regions, res.params)
    for ln in res.lane_geometry:
        tr = traces[ln.lane]
        prof, bg = tr["profile"].to_numpy(), tr["background"].to_numpy()
        lo, hi = min(prof.min(), bg.min()), prof.max()
        # every lane has its background line inside it, at the lane's rows
        inside = bgm[ln.y_top_px:ln.y_bottom_px + 1, ln.x_left_px - 10:ln.x_right_px + 10]
        assert inside.any(axis=1).mean() > 0.9
        # and where it should be: at a row away from bands, the x of (bg - lo) / (hi - lo)
        free = np.ones(len(prof), bool)
        for b in res.bands[res.bands["lane"] == ln.lane].itertuples():
            free[max(0, int(b.y_top_px) - ln.y_top_px - 3):int(b.y_bottom_px) - ln.y_top_px + 4] = False
        free[:5] = free[-5:] = False
        y = ln.y_top_px + int(np.flatnonzero(free)[free.sum() // 2])
        xs = np.flatnonzero(bgm[y])
        x_exp = ln.x_left_px + int(round(ln.shift_at(y))) + 2 + (bg[y - ln.y_top_px] - lo) / (hi - lo) * (
            ln.x_right_px - ln.x_left_px - 4)
        assert len(xs) and np.abs(xs - x_exp).min() <= 2
