"""Blot widget end to end on the simulated blot: detect, move a lane, quantify, normalise, export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("napari_exoimage")

from exoimage.blot import BAND_COLUMNS, LANE_COLUMNS  # noqa: E402
from exoimage.blot.normalize import NORMALIZED_COLUMNS  # noqa: E402
from napari_exoimage._blot_widget import BlotWidget  # noqa: E402
from napari_exoimage._sample_data import sample_blot  # noqa: E402


def _row_of(bands, y, lanes):
    b = bands[bands["lane"].isin(lanes) & (bands["row"] > 0)]
    med = b.groupby("row")["y_px"].median()
    return int((med - y).abs().idxmin())


def test_detect_move_lane_quantify_export(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    viewer = make_napari_viewer()
    (data, kw, _), = sample_blot()
    viewer.add_image(data, **kw)
    truth_b, truth_l = kw["metadata"]["exoimage"]["truth_bands"], kw["metadata"]["exoimage"]["truth_lanes"]
    w = BlotWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.ladder_lane.setValue(1)
    w.ladder_kda.setText(",".join(str(k) for k in kw["metadata"]["exoimage"]["ladder_kda"]))
    w.detect()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    det = w.detected
    assert det is not None, w.status.text()

    # lanes and bands as editable Shapes layers, at the image's scale, table in features
    lanes_l, bands_l = w.lanes_layer, w.bands_layer
    assert isinstance(lanes_l, napari.layers.Shapes) and isinstance(bands_l, napari.layers.Shapes)
    assert len(lanes_l.data) == len(truth_l) and len(bands_l.data) == len(det.bands)
    centres = np.array([np.mean(d[:, 1]) for d in lanes_l.data])
    assert np.abs(np.sort(centres) - truth_l["x_center_px"].to_numpy()).max() < 5
    assert list(bands_l.features["band_id"]) == list(det.bands["band_id"])
    # saturated bands found and shown in red
    sat = det.bands[det.bands["saturated"]]
    assert set(sat["lane"]) == set(truth_b.loc[truth_b["saturated"], "lane"])
    edge = np.asarray(bands_l.edge_color)
    assert np.allclose(edge[det.bands["saturated"].to_numpy()][:, :3], [1, 0, 0])
    assert w.band_table.rowCount() == len(det.bands)

    # rows of the target (alix) and the loading control from the truth positions
    sample_lanes = [int(v) for v in det.lanes.loc[~det.lanes["is_ladder"], "lane"]]
    y_alix = truth_b.loc[truth_b["name"] == "alix", "y_px"].median()
    y_ctrl = truth_b.loc[truth_b["name"] == "control", "y_px"].median()
    r_t, r_c = _row_of(det.bands, y_alix, sample_lanes), _row_of(det.bands, y_ctrl, sample_lanes)
    w.target_rows.setText(str(r_t))
    w.control_rows.setText(str(r_c))
    w.reference_lane.setValue(2)
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    first = w.result
    assert first is not None, w.status.text()
    # nothing edited yet: exactly the detection's tables (the command line's numbers)
    pd.testing.assert_frame_equal(first.bands, det.bands, check_exact=True)
    pd.testing.assert_frame_equal(first.lanes, det.lanes, check_exact=True)
    n = w.normalized
    assert list(n.columns) == NORMALIZED_COLUMNS and set(n["lane"]) == set(sample_lanes)
    # unsaturated lanes: target/control relative to lane 2 as in the truth
    tv = truth_b[truth_b["name"] == "alix"].set_index("lane")["volume"]
    cv = truth_b[truth_b["name"] == "control"].set_index("lane")["volume"]
    true_rel = (tv / cv) / (tv[2] / cv[2])
    ok = n[~n["target_saturated"]].set_index("lane")
    assert len(ok) >= 4
    np.testing.assert_allclose(ok["relative"], true_rel[ok.index], rtol=0.12)
    assert n.loc[n["lane"].isin(sat["lane"]), "target_saturated"].all()

    # move lane 4 by 8 px to the right (drag), quantify again: only lane 4 changes, its bands follow
    lanes_l = w.lanes_layer  # Quantify redraws the layers from the measured geometry
    data_l = [np.asarray(d).copy() for d in lanes_l.data]
    centres = np.array([np.mean(d[:, 1]) for d in data_l])
    k = int(np.argsort(centres)[3])
    data_l[k][:, 1] += 8
    lanes_l.data = data_l
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    after = w.result
    l0, l1 = first.lanes.set_index("lane"), after.lanes.set_index("lane")
    assert l1.loc[4, "x_left_px"] == l0.loc[4, "x_left_px"] + 8
    assert (l1.drop(index=4)["x_left_px"] == l0.drop(index=4)["x_left_px"]).all()
    b0, b1 = first.bands, after.bands
    assert len(b0) == len(b1) and (b0["lane"].to_numpy() == b1["lane"].to_numpy()).all()
    # lane 4's sharp bands now lie partly outside it: each loses signal
    in4 = ((b0["lane"] == 4) & (b0["background_method"] != "gap")).to_numpy()
    assert in4.sum() >= 3 and (b1["volume"].to_numpy()[in4] < 0.99 * b0["volume"].to_numpy()[in4]).all()
    # other lanes: the same regions in the same lanes measure exactly the same, except under the
    # gap background (it follows where the gaps between the lanes are, and lane 4 moved) and in a
    # deconvolved cluster (the band shape it fits is the median over the clean bands of the whole
    # membrane piece, lane 4's included)
    r0 = first.regions
    in_cluster = np.isfinite(r0["cluster"].to_numpy(float))
    local = ((b0["lane"] != 4) & (b0["background_method"] != "gap")).to_numpy() & ~in_cluster
    assert local.sum() > 20
    np.testing.assert_allclose(b1["volume"].to_numpy()[local], b0["volume"].to_numpy()[local], rtol=1e-12)
    b4 = [np.asarray(d) for d, ln in zip(w.bands_layer.data, w.bands_layer.features["lane"]) if ln == 4]
    assert b4 and all(abs(d[:, 1].min() - (l1.loc[4, "x_left_px"] - 0.5)) < 1.0 for d in b4)

    # delete a band box and add one by hand in lane 5: the table follows the shapes
    n_before = len(after.bands)
    bands_l = w.bands_layer
    bands_l.selected_data = {0}
    bands_l.remove_selected()
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert len(w.result.bands) == n_before - 1
    n_before = len(w.result.bands)

    # add a band box by hand at the top of lane 2: the rows below renumber, the chosen rows follow
    t_before, rel_before = int(w.target_rows.text()), w.normalized.set_index("lane")["relative"]
    l2 = w.result.lanes.set_index("lane").loc[2]
    xl, xr = l2["x_left_px"] - 0.5, l2["x_right_px"] + 0.5
    w.bands_layer.add_rectangles([np.array([[4.5, xl], [4.5, xr], [15.5, xr], [15.5, xl]])])
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert int(w.target_rows.text()) == t_before + 1
    np.testing.assert_allclose(w.normalized.set_index("lane")["relative"], rel_before, rtol=1e-6)

    # delete the rightmost lane: its bands lie in no lane any more and are dropped with a warning
    warned = []
    monkeypatch.setattr("napari_exoimage._blot_widget.notify_warning", warned.append)
    n_lane8 = int((w.result.bands["lane"] == 8).sum())
    lanes_l = w.lanes_layer
    lanes_l.selected_data = {int(np.argmax([np.asarray(d)[:, 1].mean() for d in lanes_l.data]))}
    lanes_l.remove_selected()
    n_before = len(w.result.bands)
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert len(w.result.lanes) == 7 and len(w.result.bands) == n_before - n_lane8
    assert warned and f"{n_lane8} band box(es) lie in no lane" in warned[-1]
    assert 8 not in set(w.normalized["lane"])

    # export and read back
    paths = w.export(tmp_path)
    assert [p.name for p in paths] == ["bands.csv", "lanes.csv", "normalized.csv"]
    b = pd.read_csv(tmp_path / "bands.csv")
    assert list(b.columns) == BAND_COLUMNS and len(b) == len(w.result.bands)
    assert list(pd.read_csv(tmp_path / "lanes.csv").columns) == LANE_COLUMNS
    assert list(pd.read_csv(tmp_path / "normalized.csv").columns) == NORMALIZED_COLUMNS
    # the QC report for what is open: the same report as `exoimage run`, from the library
    assert w.report_btn.isEnabled()
    rep = w.write_report(tmp_path / "report")
    html = rep.read_text()
    assert rep.name == "report.html" and "Western blots" in html and "saturation" in html
    rb = pd.read_csv(tmp_path / "report" / "bands.csv")
    assert len(rb) == len(w.result.bands)
    np.testing.assert_allclose(rb["volume"].to_numpy(), w.result.bands["volume"].to_numpy())

    # every band box deleted: quantify reports no bands rather than failing with a traceback
    w.target_rows.setText("")
    w.control_rows.setText("")
    w.bands_layer.selected_data = set(range(len(w.bands_layer.data)))
    w.bands_layer.remove_selected()
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert len(w.result.bands) == 0 and w.band_table.rowCount() == 0


def test_blot_errors_are_notifications(make_napari_viewer, qtbot, monkeypatch):
    viewer = make_napari_viewer()
    messages = []
    monkeypatch.setattr("napari_exoimage._common.notify_error", messages.append)
    w = BlotWidget(viewer)
    w.detect()
    assert messages and messages[-1].startswith("no image layer")
    viewer.add_image(np.full((50, 60), 7, np.uint16), name="flat")
    w.detect()
    qtbot.waitUntil(lambda: not w.busy, timeout=20000)
    assert messages[-1] == "flat: image is constant (every pixel = 7)"
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert messages[-1].startswith("nothing to quantify")
