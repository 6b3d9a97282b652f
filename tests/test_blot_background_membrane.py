"""Background near a membrane's cut edge inside a lane (exoimage.blot.background.membrane_rows)."""

import numpy as np
import pandas as pd

from exoimage.blot import background as G
from exoimage.blot.lanes import lanes_from_bounds
from exoimage.blot.measure import measure

LEVEL, OFF, N, EDGE = 1000.0, 200.0, 300, 260  # membrane level, off-membrane level, rows, cut edge row


def _gauss(n, y, sd, amp):
    x = np.arange(n)
    return amp * np.exp(-0.5 * ((x - y) / sd) ** 2)


def _profile(seed=0, edge=EDGE):
    """Flat membrane, a cluster of two touching bands just above the cut edge, then off membrane."""
    rng = np.random.default_rng(seed)
    p = np.full(N, LEVEL) + rng.normal(0, 5, N)
    bands = _gauss(N, 215, 5, 3000) + _gauss(N, 235, 5, 2000)
    p = p + bands
    p[edge:] = OFF + rng.normal(0, 5, N - edge)
    return p, bands


def test_membrane_rows_find_the_cut_edge_and_nothing_else():
    p, _ = _profile()
    lo, hi = G.membrane_rows(p)
    assert lo == 0 and abs(hi - EDGE) <= 2
    # the same cut at the top end
    lo, hi = G.membrane_rows(p[::-1])
    assert abs(lo - (N - EDGE)) <= 2 and hi == N
    # no cut edge: all rows
    rng = np.random.default_rng(1)
    flat = np.full(N, LEVEL) + rng.normal(0, 5, N) + _gauss(N, 150, 5, 3000)
    assert G.membrane_rows(flat) == (0, N)
    # a level near zero (noise only around a band): no edge is made of noise
    noise = rng.normal(0, 5, N) + _gauss(N, 150, 5, 3000)
    assert G.membrane_rows(noise) == (0, N)


def _ctx(p):
    radius = G.ball_radius_px(len(p))
    ln = lanes_from_bounds([(10, 29)], (N, 40))[0]
    return G.LaneContext(np.zeros((N, 40)), ln, [ln], p, G.rolling_ball_background(p, radius), radius, 0, 3)


def test_flank_does_not_follow_the_cut_edge_under_a_cluster_beside_it():
    p, bands = _profile()
    regions = [G.Region(200, 226, cluster=1), G.Region(227, 252, cluster=1)]
    bg = G.REGISTRY["flank"].func(_ctx(p), regions)
    got = (p - bg)[200:253].sum()
    truth = bands[200:253].sum()
    assert abs(got / truth - 1) < 0.05
    # what the flank line through the off-membrane rows gave (the Kodak B3AR 16w failure)
    old = G.flank_background(p, [(200, 252)], _ctx(p).ball)
    assert (p - old)[200:253].sum() / truth > 1.2


def test_measure_band_beside_a_cut_edge_inside_the_lane():
    # an image: membrane (level 50 per px) ending at row EDGE, the lane running past it
    rng = np.random.default_rng(3)
    h, w = N, 60
    img = np.full((h, w), 50.0)
    img[EDGE:] = 10.0
    cols = np.arange(w)
    band = np.outer(_gauss(h, 215, 5, 100) + _gauss(h, 235, 5, 70), (cols >= 20) & (cols < 40))
    img = img + band + rng.normal(0, 0.5, (h, w))
    lanes = lanes_from_bounds([(20, 39)], (h, w))
    regions = pd.DataFrame([dict(lane=1, y_top_px=200, y_bottom_px=252)])
    m = measure(img, lanes, regions)
    truth = band[200:253].sum()
    assert abs(m.bands["volume"].iloc[0] / truth - 1) < 0.05


def test_membrane_rows_do_not_move_with_a_gain():
    # (relative to the lane's median level: a gain moves nothing; a large added constant would)
    p, _ = _profile()
    want = G.membrane_rows(p)
    assert want != (0, N)
    for q in (3.0 * p, 0.2 * p, 1000.0 * p):
        assert G.membrane_rows(q) == want
