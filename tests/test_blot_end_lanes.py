"""End lanes and lone lanes get the same gel-beside evidence as inner lanes
(exoimage.blot.background.off_lane_profile; the structures-of-the-gel test in detect)."""

from pathlib import Path

import numpy as np
import pytest

from exoimage.blot import background as G
from exoimage.blot.pipeline import BlotParams, quantify_blot

PITCH, WIDTH, X0 = 60, 40, 100
#: (row, peak, sd) of the bands run in every lane; their volume per lane is peak x WIDTH x sd x sqrt(2 pi)
BANDS = ((100, 20000.0, 5.0), (170, 8000.0, 5.0))


def _gel(n_lanes, seed=0, shape=(300, 400)):
    """A gel with a well row (y 30) and a glow (y 262) across its whole width - structures of
    the gel, not bands - and ``n_lanes`` lanes of two bands each, lane 1 centred at X0."""
    rng = np.random.default_rng(seed)
    h, w = shape
    y = np.arange(h)[:, None]
    x = np.arange(w)[None, :]
    img = np.full(shape, 1000.0)
    img += 3000 * np.exp(-0.5 * ((y - 30) / 4.0) ** 2)
    img += 1500 * np.exp(-0.5 * ((y - 262) / 14.0) ** 2)
    for k in range(n_lanes):
        c = X0 + k * PITCH
        across = 1.0 / (1 + np.exp(-(x - (c - WIDTH / 2)) / 1.5)) / (1 + np.exp((x - (c + WIDTH / 2)) / 1.5))
        for yb, a, s in BANDS:
            img += a * across * np.exp(-0.5 * ((y - yb) / s) ** 2)
    img += rng.normal(0, 20, shape)
    return np.clip(img, 0, 65535).astype(np.uint16)


@pytest.mark.parametrize("seed", [0, 1])
def test_end_lane_alone_or_with_neighbours_gives_the_same_bands(seed):
    """Lane 1 alone on the gel, or the end lane of two or three: the well row and the glow
    are the gel's (the free gel beside an end lane is the membrane out to the gel's edge),
    the two bands are found, their volumes agree within 2 % and with the truth within 4 %."""
    truth = [a * WIDTH * s * np.sqrt(2 * np.pi) for _, a, s in BANDS]
    vols = {}
    for n in (1, 2, 3):
        bounds = [(X0 + k * PITCH - WIDTH // 2 - 2, X0 + k * PITCH + WIDTH // 2 + 1) for k in range(n)]
        b = quantify_blot(_gel(n, seed), BlotParams(lane_bounds=bounds)).bands
        b1 = b[b.lane == 1].sort_values("y_px")
        assert np.allclose(b1.y_px.to_numpy(), [yb for yb, _, _ in BANDS], atol=1.5), (n, b1.y_px.tolist())
        vols[n] = b1.volume.to_numpy()
    for n in (1, 2, 3):
        assert np.all(np.abs(vols[n] / vols[3] - 1) < 0.02), (n, vols[n], vols[3])
        assert np.all(np.abs(vols[n] / np.array(truth) - 1) < 0.04), (n, vols[n], truth)


def test_touching_lanes_take_the_pieces_outer_membrane():
    """Lanes that touch have no gap of free gel; each takes the membrane beyond the piece's end
    lanes (per row, on its own scale), which carries the well row and not the bands."""
    from exoimage.blot.lanes import lanes_from_bounds

    img = _gel(3).astype(float)
    lanes = lanes_from_bounds([(X0 + k * PITCH - PITCH // 2, X0 + k * PITCH + PITCH // 2 - 1) for k in range(3)],
                              img.shape)
    for ln in lanes:
        off = G.off_lane_profile(img, ln, lanes, 3)
        assert off is not None
        per_px = off / ln.width_px
        assert per_px[30] > per_px[60] + 2000      # the well row is the gel's
        assert abs(per_px[100] - per_px[60]) < 100  # the bands are not beside the lanes


KODAK = Path("/work/shared/data/real/blots_kodak")
JUN21 = KODAK / "B3AR/June21/June21.2013_B3AR_10wtop_16wbottom.tif"


@pytest.mark.skipif(not JUN21.exists(), reason="shared Kodak data not present")
def test_kodak_touching_lanes_have_gel_beside_evidence():
    """June 21 B3AR: the lanes of both strips touch (1-2 px apart); every sample lane still gets
    gel-beside evidence from the strip's membrane beyond its end lanes."""
    from exoimage.blot.lanes import find_lanes, find_pieces
    from exoimage.blot.measure import prepare
    from exoimage.io import read_image

    prep = prepare(read_image(JUN21), BlotParams())
    lanes = find_lanes(prep.signal, find_pieces(prep.signal))
    sample = [ln for ln in lanes if not ln.is_ladder]
    assert len(sample) >= 18
    missing = [ln.lane for ln in sample if G.off_lane_profile(prep.signal, ln, lanes, 3) is None]
    assert not missing
