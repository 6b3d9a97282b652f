"""The free-gel envelope of ``auto`` (exoimage.blot.background.gel_envelope): between closely
spaced bands the profile never reaches the background; the gel beside the lane does."""

import numpy as np

from exoimage.blot import background as G
from exoimage.blot.lanes import lanes_from_bounds

H, W, GEL = 400, 120, 10.0   # rows, columns, gel level per pixel
X0, X1 = 40, 79              # the lane's columns (40 px of free gel on each side)


def _gel(bands, seed=0):
    """A flat gel with one lane of Gaussian bands (y, sd, amplitude per pixel) and pixel noise."""
    rng = np.random.default_rng(seed)
    img = np.full((H, W), GEL) + rng.normal(0, 0.3, (H, W))
    y = np.arange(H)[:, None]
    lane = sum(a * np.exp(-0.5 * ((y - c) / s) ** 2) for c, s, a in bands)
    img[:, X0:X1 + 1] += lane
    return img, lane[:, 0] * (X1 - X0 + 1)


def _ctx(img, free_px):
    """The lane X0..X1 with ``free_px`` of free gel on each side: neighbour lanes of its piece
    start ``free_px`` px beside it (free_px 0: they touch it)."""
    if free_px >= X0:  # the image sides are the nearest: 40 px of gel each side
        lanes = lanes_from_bounds([(X0, X1)], img.shape)
    else:
        lanes = lanes_from_bounds([(0, X0 - free_px - 1), (X0, X1), (X1 + free_px + 1, W - 1)], img.shape)
    ln = next(v for v in lanes if v.x_left_px == X0)
    prof = img[:, X0:X1 + 1].sum(axis=1)
    radius = G.ball_radius_px(H)
    return G.LaneContext(img, ln, lanes, prof, G.rolling_ball_background(prof, radius), radius, free_px, 3)


#: a ladder-like run of bands closer than their tails (sd 6 px, 18 px apart)
DENSE = [(120 + 18 * i, 6.0, a) for i, a in enumerate([40, 25, 60, 30, 45, 20, 50])]


def _regions(bands):
    return [G.Region(int(c - 9), int(c + 8)) for c, _, _ in bands]


def test_dense_bands_are_measured_above_the_free_gel_not_through_their_valleys():
    img, truth = _gel(DENSE)
    regs = _regions(DENSE)
    ctx = _ctx(img, free_px=40)
    bg, methods = G.lane_background("auto", ctx, regs)
    net = ctx.profile - bg
    got = np.array([net[r.top:r.bottom + 1].sum() for r in regs])
    want = np.array([truth[r.top:r.bottom + 1].sum() for r in regs])
    assert np.abs(got / want - 1).max() < 0.02
    # the flank lines through the valleys (the lanes touch: no free gel, no envelope) lose the tails
    bg0, _ = G.lane_background("auto", _ctx(img, free_px=0), regs)
    net0 = ctx.profile - bg0
    lost = np.array([net0[r.top:r.bottom + 1].sum() for r in regs]) / want - 1
    assert lost.min() < -0.05
    assert methods == ["rolling-ball"] * len(regs)


def test_isolated_bands_keep_the_flank_baseline():
    bands = [(120, 4.0, 40), (260, 4.0, 25)]
    img, _ = _gel(bands)
    regs = [G.Region(int(c - 14), int(c + 14)) for c, _, _ in bands]
    ctx = _ctx(img, free_px=40)
    bg, _ = G.lane_background("auto", ctx, regs)
    flank = G.REGISTRY["flank"].func(ctx, regs)
    assert np.array_equal(bg, flank)


def test_envelope_needs_free_gel_and_a_free_lane_end():
    img, _ = _gel(DENSE)
    assert G.gel_envelope(_ctx(img, free_px=0), _regions(DENSE)) is None
    # bands from the first row to the last: no band-free end gives the lane's offset
    assert G.gel_envelope(_ctx(img, free_px=40), [G.Region(0, H - 1)]) is None
    env = G.gel_envelope(_ctx(img, free_px=40), _regions(DENSE))
    assert abs(np.median(env) / (GEL * (X1 - X0 + 1)) - 1) < 0.01


def test_context_baselines_computed_once_are_the_baselines():
    # edge / membrane rows are kept on the context (shared by detection and measurement): the
    # same numbers as computed afresh, read-only, and a context with other data starts afresh
    import dataclasses

    img, _ = _gel(DENSE)
    ctx = _ctx(img, 40)
    fresh = G.edge_background(img, ctx.lane, G.edge_border_px(ctx))
    first = G.REGISTRY["edge"].func(ctx, [])
    assert np.array_equal(first, fresh) and not first.flags.writeable
    assert G.REGISTRY["edge"].func(ctx, []) is first
    bg, _ = G.lane_background("edge", ctx, [])
    assert np.array_equal(bg, fresh) and bg.flags.writeable  # callers get their own copy
    other = dataclasses.replace(ctx, signal=img + 5.0)
    assert np.allclose(G.REGISTRY["edge"].func(other, []), fresh + 5.0 * ctx.lane.width_px)
