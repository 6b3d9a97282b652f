"""The default reference lane is on the membrane piece the normalised rows are on."""
from types import SimpleNamespace

import numpy as np
import pandas as pd

from exoimage.blot.normalize import default_reference_lane
from exoimage.blot.plan import NormalizationSpec, normalize_blot


def _blot():
    # piece 1: lanes 1-3 hold rows 1 (target) and 2 (control); piece 2: lanes 4-6 hold rows 3 and 4
    lanes = pd.DataFrame({"lane": [1, 2, 3, 4, 5, 6], "piece": [1, 1, 1, 2, 2, 2], "is_ladder": [False] * 6})
    rows = []
    for lane in range(1, 7):
        for row in ((1, 2) if lane <= 3 else (3, 4)):
            vol = 1000.0 * lane if row in (1, 3) else 500.0
            rows.append({"lane": lane, "row": row, "volume": vol, "below_noise": False, "saturated": False})
    bands = pd.DataFrame(rows)
    bands.loc[(bands.lane == 4) & (bands.row == 3), "below_noise"] = True
    return lanes, bands


def test_reference_defaults_to_a_lane_with_the_rows_above_noise():
    lanes, bands = _blot()
    assert default_reference_lane(lanes, bands, [1], [2]) == (1, "")
    # rows of piece 2: lane 1 has no band there; lane 4's target is below noise, so lane 5
    assert default_reference_lane(lanes, bands, [3], [4]) == (5, "")
    lane, note = default_reference_lane(lanes, bands, [1], [4])
    assert lane is None and "different membrane pieces" in note
    lane, note = default_reference_lane(lanes, bands, [3], [4], chosen=1)
    assert lane == 1 and "no band" in note


def test_normalize_blot_uses_the_default_so_relative_values_exist():
    lanes, bands = _blot()
    res = SimpleNamespace(lanes=lanes, bands=bands, image_row={"image": "two_pieces.tif"})
    norm = normalize_blot(res, NormalizationSpec(target_rows=[3], control_rows=[4]))[0]
    on_piece = norm[norm["lane"].isin([4, 5, 6])]
    assert (norm["reference_lane"] == 5).all()
    # ratio = target / 500; relative to lane 5's ratio (5000 / 500)
    np.testing.assert_allclose(on_piece["relative"], [0.8, 1.0, 1.2])
    # a reference the user names is kept
    norm1 = normalize_blot(res, NormalizationSpec(target_rows=[3], control_rows=[4], reference_lane=1))[0]
    assert norm1["relative"].isna().all()
