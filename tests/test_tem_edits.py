"""Re-measuring vesicles after hand edits of the label image (exoimage.tem_edits)."""

from __future__ import annotations

import numpy as np
import pytest

from exoimage.io import Image
from exoimage.simulate.tem import SCENARIOS, TemScene, simulate_tem
from exoimage.tem import VESICLE_COLUMNS, TemParams, analyze_tem_image, measure_labels
from exoimage.tem_edits import changed_labels, remeasure_labels

PX = 2.0


@pytest.fixture(scope="module")
def detected():
    img, truth = simulate_tem(TemScene(shape=(512, 512), pixel_size_nm=PX, **SCENARIOS["clean"]), seed=1)
    res = analyze_tem_image(Image.from_array(img, PX), TemParams(), name="sim")
    assert res.ok and len(res.vesicles) >= 5
    return res


def _sized(res):
    return [int(v) for v in res.vesicles.loc[~res.vesicles["touches_border"], "vesicle_id"]]


def test_unedited_labels_keep_detector_rows(detected):
    t = remeasure_labels(detected.labels.copy(), PX, previous_labels=detected.labels,
                         previous_table=detected.vesicles, name="sim")
    assert list(t.columns) == VESICLE_COLUMNS
    assert t.equals(detected.vesicles.reset_index(drop=True))
    assert changed_labels(detected.labels, detected.labels.copy()) == set()


def test_delete_merge_split(detected):
    lab = detected.labels.copy()
    a, b, c = _sized(detected)[:3]
    lab[lab == a] = 0                     # delete a false detection
    lab[lab == c] = b                     # merge c into b
    ys, xs = np.nonzero(detected.labels == _sized(detected)[3])
    d = _sized(detected)[3]
    new_id = int(lab.max()) + 1
    right = xs > np.median(xs)
    lab[ys[right], xs[right]] = new_id   # split d into two halves
    assert changed_labels(detected.labels, lab) == {b, d, new_id}
    t = remeasure_labels(lab, PX, previous_labels=detected.labels, previous_table=detected.vesicles)
    ids = set(t["vesicle_id"])
    assert a not in ids and c not in ids and new_id in ids
    assert len(t) == len(detected.vesicles) - 2 + 1
    area_px = lambda k: (detected.labels == k).sum() * PX * PX  # noqa: E731
    row = t.set_index("vesicle_id")
    assert row.loc[b, "area_nm2"] == pytest.approx(area_px(b) + area_px(c))
    assert row.loc[d, "area_nm2"] + row.loc[new_id, "area_nm2"] == pytest.approx(area_px(d))
    assert np.isnan(row.loc[b, "confidence"])
    # an untouched vesicle keeps the detector's numbers
    e = _sized(detected)[4]
    orig = detected.vesicles.set_index("vesicle_id").loc[e]
    assert row.loc[e, "diameter_nm"] == orig["diameter_nm"] and row.loc[e, "confidence"] == orig["confidence"]


def test_without_previous_is_measure_labels(detected):
    t = remeasure_labels(detected.labels, PX, name="x")
    ref = measure_labels(detected.labels, PX)
    assert (t["vesicle_id"].to_numpy() == ref["vesicle_id"].to_numpy()).all()
    assert (t["image"] == "x").all()
    with pytest.raises(ValueError):
        remeasure_labels(np.zeros((3, 3, 3), int), PX)
