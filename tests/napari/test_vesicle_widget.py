"""Vesicle widget end to end on simulated data: detect, check against truth, edit, re-measure, export."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("napari_exoimage")

import exoimage  # noqa: E402
from exoimage.io import read_image  # noqa: E402
from exoimage.simulate.tem import match_to_truth  # noqa: E402
from exoimage.tem import VESICLE_COLUMNS  # noqa: E402
from napari_exoimage._common import camera, image_layer_kwargs  # noqa: E402
from napari_exoimage._sample_data import make_tem  # noqa: E402
from napari_exoimage._vesicle_widget import VesicleWidget  # noqa: E402

PX = 2.0


def _run(qtbot, w):
    w.run()
    assert w.busy
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)


@pytest.fixture
def viewer_with_tem(make_napari_viewer):
    viewer = make_napari_viewer()
    img, truth = make_tem(shape=(512, 512), pixel_size_nm=PX, seed=1, scenario_name="clean")
    viewer.add_image(img.data, **image_layer_kwargs(img, name="tem"))
    return viewer, truth


def test_detect_edit_remeasure_export(viewer_with_tem, qtbot, tmp_path):
    viewer, truth = viewer_with_tem
    w = VesicleWidget(viewer)
    viewer.window.add_dock_widget(w)
    assert w.layer_combo.currentText() == "tem"
    assert w.px_spin.value() == pytest.approx(PX)
    _run(qtbot, w)
    assert w.result is not None and w.result.ok, w.status.text()

    # layers at physical scale, table in the Points layer's features
    labels, points = w.labels_layer, w.points_layer
    assert isinstance(labels, napari.layers.Labels) and isinstance(points, napari.layers.Points)
    assert tuple(labels.scale) == (PX, PX) and str(labels.units[-1]) in ("nm", "nanometer")
    t = points.features
    assert list(t.columns) == [*VESICLE_COLUMNS, "origin"] and (t["origin"] == "detected").all() and len(t) == len(points.data) == w.table_view.rowCount()
    m = match_to_truth(t, truth)
    assert m["fn"] == 0 and m["fp"] == 0 and np.abs(m["errors"]).max() < 0.1

    # click a row: the camera centres on that vesicle (world coordinates in nm)
    w._row_clicked(2)
    vid = int(w.table_view.item(2, 0).text())
    r = w.table.set_index("vesicle_id").loc[vid]
    assert camera(viewer).center[-2:] == pytest.approx((r.y_px * PX, r.x_px * PX))
    assert labels.selected_label == vid

    # fix mistakes with the labels: delete one, merge two, split one
    sized = [int(v) for v in t.loc[~t["touches_border"], "vesicle_id"]]
    a, b, c, d = sized[:4]
    lab = np.asarray(labels.data).copy()
    orig = lab.copy()
    lab[lab == a] = 0
    lab[lab == c] = b
    ys, xs = np.nonzero(orig == d)
    new_id = int(orig.max()) + 1
    right = xs > np.median(xs)
    lab[ys[right], xs[right]] = new_id
    labels.data = lab
    n0 = len(w.table)
    w.remeasure()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    t2 = w.table.set_index("vesicle_id")
    assert len(t2) == n0 - 2 + 1 and a not in t2.index and c not in t2.index and new_id in t2.index
    assert t2.loc[b, "area_nm2"] == pytest.approx(((orig == b) | (orig == c)).sum() * PX * PX)
    assert t2.loc[d, "area_nm2"] + t2.loc[new_id, "area_nm2"] == pytest.approx((orig == d).sum() * PX * PX)
    e = sized[4]
    assert t2.loc[e, "diameter_nm"] == t.set_index("vesicle_id").loc[e, "diameter_nm"]  # untouched: unchanged
    assert len(w.points_layer.features) == len(t2) == w.table_view.rowCount()
    # provenance: the origin of every row and the edit log of this round
    assert t2.loc[b, "origin"] == "edited" and t2.loc[d, "origin"] == "edited"
    assert t2.loc[new_id, "origin"] == "added" and t2.loc[e, "origin"] == "detected"
    assert (t2.drop(index=[b, d, new_id])["origin"] == "detected").all()
    assert w._edits == [f"deleted vesicles {', '.join(map(str, sorted([a, c])))}", f"added vesicle {new_id}",
                        f"redrawn vesicles {', '.join(map(str, sorted([b, d])))}"]

    # export and read back
    csv, tif = tmp_path / "vesicles.csv", tmp_path / "labels.tif"
    w.export_csv(csv)
    w.export_labels(tif)
    back = pd.read_csv(csv)
    assert list(back.columns) == [*VESICLE_COLUMNS, "origin"] and len(back) == len(t2)
    assert back.set_index("vesicle_id")["origin"].to_dict() == t2["origin"].to_dict()
    prov = json.loads((tmp_path / "vesicles.provenance.json").read_text())
    assert prov["edits"] == w._edits and prov["params"]["pixel_size_nm"] == PX
    assert prov["version"] == exoimage.__version__ and "min_diameter_nm" in str(prov["params"]["tem"])
    assert set(back["vesicle_id"]) == set(t2.index) and (back["image"] == "tem").all()
    li = read_image(tif)
    assert li.pixel_size_nm == pytest.approx(PX) and np.array_equal(li.data, lab)

    # the QC report for the vesicles as they are now (edits included), from the library
    assert w.report_btn.isEnabled()
    rep = w.write_report(tmp_path / "report")
    html = rep.read_text()
    assert rep.exists() and "TEM: vesicle size" in html
    assert f"added vesicle {new_id}" in html   # the edit log is in the report's provenance
    ri = pd.read_csv(tmp_path / "report" / "images.csv").iloc[0]
    assert ri["n_vesicles"] == int((~t2["touches_border"].astype(bool)).sum())
    rs = pd.read_csv(tmp_path / "report" / "samples.csv").iloc[0]
    assert rs["tem_d50_nm"] == pytest.approx(t2.loc[~t2["touches_border"].astype(bool), "diameter_nm"].median())

    # everything erased: an empty table, not an error
    labels.data = np.zeros_like(lab)
    w.remeasure()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert len(w.table) == 0 and len(w.points_layer.data) == 0 and w.table_view.rowCount() == 0


def test_missing_pixel_size_is_a_notification_not_a_traceback(make_napari_viewer, qtbot, monkeypatch):
    viewer = make_napari_viewer()
    img, _ = make_tem(shape=(256, 256), pixel_size_nm=PX, seed=2, scenario_name="clean")
    viewer.add_image(img.data, name="uncalibrated")
    messages = []
    monkeypatch.setattr("napari_exoimage._common.notify_error", messages.append)
    w = VesicleWidget(viewer)
    assert w.px_spin.value() == 0 and "enter" in w.px_source.text()
    _run(qtbot, w)
    assert messages == ['uncalibrated: no pixel size: give "Pixel size" (nm per pixel)']
    assert w.labels_layer is None
    # wrong layer kind: an RGB image
    viewer.add_image(np.dstack([img.data[:64, :64] // 256, np.zeros((64, 64), np.uint8),
                                np.zeros((64, 64), np.uint8)]).astype(np.uint8), name="rgb", rgb=True)
    w.layer_combo.setCurrentText("rgb")
    w.px_spin.setValue(1.0)
    w.run()
    assert not w.busy and messages[-1].startswith("rgb: colour (RGB) layer")


def test_cancel_drops_the_result(viewer_with_tem, qtbot):
    viewer, _ = viewer_with_tem
    w = VesicleWidget(viewer)
    w.run()
    w.cancel()
    assert not w.busy and w.cancel_btn.isEnabled() is False
    qtbot.waitUntil(lambda: w.jobs_running == 0, timeout=60000)
    qtbot.wait(200)
    assert w.result is None and w.labels_layer is None
    assert not w.report_btn.isEnabled()  # nothing to report yet


def test_session_report_records_the_file_it_measured(make_napari_viewer, qtbot, tmp_path):
    """The report's provenance is the layer's own: the file read, its SHA-256, the parameters, the edits."""
    from exoimage.io import sha256_file, write_calibrated_tiff
    from napari_exoimage._reader import read_exoimage

    img, _ = make_tem(shape=(256, 256), pixel_size_nm=PX, seed=3, scenario_name="clean")
    path = tmp_path / "field.tif"
    write_calibrated_tiff(path, img.data, PX)
    viewer = make_napari_viewer()
    (data, kw, _kind), = read_exoimage(str(path))
    viewer.add_image(data, **kw)
    w = VesicleWidget(viewer)
    _run(qtbot, w)
    assert w.result is not None and w.result.ok, w.status.text()
    w.remeasure()  # nothing edited: still an entry in the edit log
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    w.write_report(tmp_path / "report")
    images = pd.read_csv(tmp_path / "report" / "images.csv")
    assert images["sha256"].tolist() == [sha256_file(path)]
    html = (tmp_path / "report" / "report.html").read_text()
    assert str(path) in html and "re-measured" in html and "min_diameter_nm" in html
    qc = pd.read_csv(tmp_path / "report" / "qc.csv").set_index("check")
    assert qc.loc["calibration", "status"] == "PASS"
