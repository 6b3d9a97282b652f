"""Issue 17 on the real RhoA blot (../shared/data/real; skipped when absent): what the library flags
about a band reaches the dock table and the session report; the default reference lane; warnings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("napari_exoimage")

from qtpy.QtCore import Qt  # noqa: E402

from napari_exoimage._blot_widget import BAND_TABLE_COLUMNS, BlotWidget  # noqa: E402

RHOA = "wb_rhoa_chemi_16bit.tif"


@pytest.fixture
def rhoa(real_dir, make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.open(str(real_dir / RHOA), plugin="napari-exoimage")
    w = BlotWidget(viewer)
    w.detect()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert w.detected is not None, w.status.text()
    return viewer, w


def _table(w):
    t = w.band_table
    cols = [t.horizontalHeaderItem(j).text() for j in range(t.columnCount())]
    rows = [[t.item(i, j).text() for j in range(t.columnCount())] for i in range(t.rowCount())]
    return pd.DataFrame(rows, columns=cols), t


def test_negative_and_sub_noise_bands_are_flagged(rhoa, tmp_path, qtbot):
    _viewer, w = rhoa
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    b = w.result.bands
    bad = b[b["below_noise"].astype(bool)]
    assert len(bad) >= 1 and (b["volume"] < 0).any()   # RhoA: lane 3's band in row 8 is negative
    assert "1 below noise (1 negative)" in w.status.text()
    shown, t = _table(w)
    # the table says why the value is not a measurement, in its own column, and colours the row
    assert "qc" in shown.columns
    for bid in bad["band_id"]:
        i = int(np.flatnonzero(shown["band_id"] == str(bid))[0])
        assert "below noise" in shown.loc[i, "qc"]
        assert t.item(i, list(shown.columns).index("volume")).background().color().name() != "#000000"
    neg = b.loc[b["volume"] < 0, "band_id"]
    for bid in neg:
        assert "negative" in shown.loc[shown["band_id"] == str(bid), "qc"].iloc[0]
    ok = b.loc[~b["below_noise"].astype(bool) & ~b["saturated"].astype(bool) & ~b["low_snr"].astype(bool),
               "band_id"]
    assert (shown.set_index("band_id").loc[[str(x) for x in ok], "qc"] == "").all()
    # the session report does not say PASS for the signal above noise
    w.write_report(tmp_path)
    qc = pd.read_csv(tmp_path / "qc.csv")
    row = qc[qc["check"] == "signal above noise"]
    assert len(row) == 1 and row["status"].iloc[0] != "PASS", row.to_dict("records")
    assert "negative volume" in row["reason"].iloc[0]


def test_default_reference_lane_is_on_the_pieces_of_the_rows(rhoa, monkeypatch, qtbot):
    _viewer, w = rhoa
    warned = []
    monkeypatch.setattr("napari_exoimage._blot_widget.notify_warning", warned.append)
    det = w.detected.bands
    lanes = w.detected.lanes
    piece2 = set(lanes.loc[lanes["piece"] == 2, "lane"])
    # the rows found in every lane of the second membrane piece (RhoA: 14 and 15)
    rows2 = [int(r) for r, g in det[det["lane"].isin(piece2)].groupby("row") if set(g["lane"]) == piece2]
    assert len(rows2) >= 2
    w.target_rows.setText(str(rows2[-1]))
    w.control_rows.setText(str(rows2[0]))
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    n = w.normalized
    assert int(n["reference_lane"].iloc[0]) == min(piece2)
    on2 = n[n["lane"].isin(piece2)]
    assert np.isfinite(on2["relative"]).all() and on2.loc[on2["lane"] == min(piece2), "relative"].iloc[0] == 1.0
    assert not warned
    # rows on two pieces: no lane has both bands; the status says why, not thirteen silent NaN
    piece1 = set(lanes.loc[lanes["piece"] == 1, "lane"])
    row1 = int(det[det["lane"].isin(piece1) & (det["row"] > 0)]["row"].mode().iloc[0])
    w.target_rows.setText(str(row1))
    w.control_rows.setText(str(rows2[0]))
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert w.normalized["relative"].isna().all()
    assert warned and "no sample lane has a band in row(s)" in warned[-1] and "one piece" in warned[-1]
    assert "no sample lane has a band" in w.status.text()
    # a reference lane chosen by hand without the target band: said too
    w.target_rows.setText(str(rows2[-1]))
    w.control_rows.setText("")
    w.reference_lane.setValue(min(piece1))
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert f"reference lane {min(piece1)} has no band in row(s) {rows2[-1]}" in warned[-1]
    assert f"(e.g. {min(piece2)})" in warned[-1]


KDA = "250,150,100,75,50,37,25,20,15,10"


def test_ladder_weights_and_library_warnings_reach_the_dock(real_dir, make_napari_viewer, qtbot, monkeypatch):
    warned = []
    monkeypatch.setattr("napari_exoimage._blot_widget.notify_warning", warned.append)
    viewer = make_napari_viewer()
    viewer.open(str(real_dir / RHOA), plugin="napari-exoimage")
    w = BlotWidget(viewer)
    # lane 1 of RhoA holds the marker (8 bands): its kDa give the first piece's bands a weight
    w.ladder_lane.setValue(1)
    w.ladder_kda.setText(KDA)
    w.detect()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert w.detected is not None, w.status.text()
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    b, lanes = w.result.bands, w.result.lanes
    piece1 = set(lanes.loc[lanes["piece"] == 1, "lane"]) - {1}
    piece2 = set(lanes.loc[lanes["piece"] == 2, "lane"])
    assert b.loc[b["lane"].isin(piece1), "mw_kda"].notna().all()
    shown, _t = _table(w)
    assert (shown.loc[shown["lane"].isin([str(x) for x in piece1]), "mw_kda"] != "").all()
    # the second piece has no ladder: said, not silent NaN
    assert b.loc[b["lane"].isin(piece2), "mw_kda"].isna().all()
    note = f"lanes {min(piece2)}-{max(piece2)} (piece 2) have no ladder on their piece"
    assert any(note in m for m in warned) and note in w.warnings_label.text()
    assert "pixel size" not in w.warnings_label.text()   # a blot needs none



def test_library_ladder_warning_reaches_the_dock(real_dir, make_napari_viewer, qtbot, monkeypatch):
    # a ladder lane with fewer bands than weights: the library's warning reaches the dock
    warned = []
    monkeypatch.setattr("napari_exoimage._blot_widget.notify_warning", warned.append)
    viewer = make_napari_viewer()
    viewer.open(str(real_dir / RHOA), plugin="napari-exoimage")
    w = BlotWidget(viewer)
    w.ladder_lane.setValue(2)
    w.ladder_kda.setText(KDA)
    w.detect()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert w.detected.bands["mw_kda"].isna().all()
    assert any("no molecular weights: ladder lane 2" in m for m in warned), warned
    assert "no molecular weights: ladder lane 2" in w.warnings_label.text()


def test_lossy_8bit_warnings_reach_the_dock(real_dir, make_napari_viewer, qtbot, monkeypatch, tmp_path):
    # the RhoA blot as an 8-bit JPEG export: the library warns about both; the dock shows it
    from PIL import Image as PILImage

    from exoimage.io import read_image

    raw = read_image(str(real_dir / RHOA)).data.astype(float)
    lo, hi = np.percentile(raw, [0.1, 99.9])
    grey = np.clip((raw - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)[::2, ::2]
    path = tmp_path / "rhoa_export.jpg"
    PILImage.fromarray(grey).save(path, quality=90)
    warned = []
    monkeypatch.setattr("napari_exoimage._blot_widget.notify_warning", warned.append)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-exoimage")
    w = BlotWidget(viewer)
    w.detect()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert w.detected is not None, w.status.text()
    text = w.warnings_label.text()
    assert "8-bit" in text and "JPEG" in text, text
    assert any("8-bit" in m for m in warned) and any("JPEG" in m for m in warned)
