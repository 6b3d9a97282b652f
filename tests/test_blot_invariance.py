"""Lanes and bands do not move with an offset or a gain; sub-noise volumes are flagged."""

import numpy as np
import pytest

from exoimage.blot import quantify_blot
from exoimage.blot.lanes import Lane
from exoimage.blot.measure import measure
from exoimage.simulate.blot import scenario


@pytest.fixture(scope="module")
def clean():
    sim = scenario("clean", seed=100)
    return sim, quantify_blot(sim.data.astype(float))


@pytest.mark.parametrize("offset,gain", [(1000.0, 1.0), (-400.0, 1.0), (0.0, 2.0), (0.0, 0.5)])
def test_lanes_and_bands_do_not_move_with_offset_or_gain(clean, offset, gain):
    sim, ref = clean
    res = quantify_blot(sim.data.astype(float) * gain + offset)
    assert len(res.lanes) == len(ref.lanes)
    assert np.abs(res.lanes["x_center_px"].to_numpy() - ref.lanes["x_center_px"].to_numpy()).max() <= 1.0
    assert len(res.bands) == len(ref.bands)
    assert np.abs(res.bands["y_px"].to_numpy() - ref.bands["y_px"].to_numpy()).max() <= 1.0


def test_below_noise_flags_empty_and_negative_regions():
    rng = np.random.default_rng(3)
    img = 500.0 + rng.normal(0, 5.0, (200, 120))
    img[95:105, 20:60] += 200.0  # one clear band in lane 1
    lanes = [Lane(1, 1, 20, 59, 0, 199, 100.0), Lane(2, 1, 70, 109, 0, 199, 100.0)]
    import pandas as pd
    regions = pd.DataFrame({"lane": [1, 2], "y_top_px": [90, 90], "y_bottom_px": [110, 110]})
    res = measure(img, lanes, regions)
    b = res.bands.set_index("lane")
    assert not b.loc[1, "below_noise"] and b.loc[1, "volume"] > 0
    assert b.loc[2, "below_noise"]   # empty membrane: a volume within the noise of zero
    assert res.bands["below_noise"].dtype == bool


def _qc_rows(bands):
    import pandas as pd

    from exoimage.experiment.qc import QC_RULES, QcInput, load_rules

    images = pd.DataFrame([{"image": "b.tif", "status": "ok", "error": "", "warnings": ""}])
    q = QcInput(tables={"blot_images": images, "bands": bands, "warnings": pd.DataFrame()}, rules=load_rules())
    return [r for r in QC_RULES["blot_image"].fn(q) if r.check == "signal above noise"]


def test_qc_signal_above_noise_warns_on_negative_and_sub_noise_volumes():
    import pandas as pd

    ok = pd.DataFrame({"image": "b.tif", "volume": [5e5, 4e5], "saturated": False, "low_snr": False,
                       "below_noise": False})
    (row,) = _qc_rows(ok)
    assert row.status == "PASS"
    neg = ok.assign(volume=[5e5, -1.8e5], below_noise=[False, True])
    (row,) = _qc_rows(neg)
    assert row.status == "WARN" and "1 band(s) with a negative volume" in row.reason
    sub = ok.assign(volume=[5e5, 10.0], below_noise=[False, True])
    (row,) = _qc_rows(sub)
    assert row.status == "WARN" and "within the noise of zero" in row.reason
