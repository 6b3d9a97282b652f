"""Re-measuring vesicles after hand edits of the label image (exoimage.tem_edits)."""

from __future__ import annotations

import numpy as np
import pytest

from exoimage.io import Image
from exoimage.simulate.tem import SCENARIOS, TemScene, simulate_tem
from exoimage.tem import VESICLE_COLUMNS, TemParams, analyze_tem_image, measure_labels
from exoimage.tem_edits import changed_labels, edit_log, mark_detected, remeasure_labels

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
    assert list(t.columns) == [*VESICLE_COLUMNS, "origin"] and (t["origin"] == "detected").all()
    assert t[VESICLE_COLUMNS].equals(detected.vesicles.reset_index(drop=True))
    assert edit_log(detected.labels, detected.labels.copy()) == []
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
    # provenance: origin per vesicle and the edit log
    assert row.loc[b, "origin"] == row.loc[d, "origin"] == "edited" and row.loc[new_id, "origin"] == "added"
    assert (row.drop(index=[b, d, new_id])["origin"] == "detected").all()
    assert edit_log(detected.labels, lab) == [f"deleted vesicles {min(a, c)}, {max(a, c)}", f"added vesicle {new_id}",
                                              f"redrawn vesicles {min(b, d)}, {max(b, d)}"]
    # a second round: the added vesicle stays "added" when redrawn, a deleted id painted again is "added"
    lab2 = lab.copy()
    lab2[lab2 == new_id] = 0
    lab2[detected.labels == d] = new_id   # the added one grows over d's old pixels; d is gone
    lab2[detected.labels == a] = a        # a painted back
    t2 = remeasure_labels(lab2, PX, previous_labels=lab, previous_table=t).set_index("vesicle_id")
    assert t2.loc[new_id, "origin"] == "added" and t2.loc[a, "origin"] == "added" and d not in t2.index
    assert t2.loc[b, "origin"] == "edited"    # kept from the first round


def test_origin_without_previous_table_is_added(detected):
    t = remeasure_labels(detected.labels, PX)
    assert (t["origin"] == "added").all()
    assert (mark_detected(detected.vesicles)["origin"] == "detected").all()


def test_without_previous_is_measure_labels(detected):
    t = remeasure_labels(detected.labels, PX, name="x")
    ref = measure_labels(detected.labels, PX)
    assert (t["vesicle_id"].to_numpy() == ref["vesicle_id"].to_numpy()).all()
    assert (t["image"] == "x").all()
    with pytest.raises(ValueError):
        remeasure_labels(np.zeros((3, 3, 3), int), PX)
