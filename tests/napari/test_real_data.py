"""The widgets on real images from ../shared/data/real (skipped when that folder is absent)."""

from __future__ import annotations

import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("napari_exoimage")

from exoimage.blot import BAND_COLUMNS, LANE_COLUMNS, analyze_blot_file  # noqa: E402
from napari_exoimage._blot_widget import BlotWidget  # noqa: E402
from napari_exoimage._vesicle_widget import VesicleWidget  # noqa: E402


def test_uncalibrated_real_tem_crop(real_dir, make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    layer, = viewer.open(str(real_dir / "ev_tem_dark_crop_16bit.tif"), plugin="napari-exoimage")
    w = VesicleWidget(viewer)
    assert w.px_spin.value() == 0 and "enter" in w.px_source.text()   # no calibration in the file
    w.px_spin.setValue(1.5646)
    w.run()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert w.result is not None and w.result.ok
    assert len(w.table) >= 1
    # the pixel size typed in now calibrates the image and the results (scale bar in nm)
    assert layer.scale[-1] == pytest.approx(1.5646) and str(layer.units[-1]) in ("nm", "nanometer")
    assert w.labels_layer.scale[-1] == pytest.approx(1.5646)
    assert w.table["image"].iloc[0] == "ev_tem_dark_crop_16bit.tif"


def test_real_blot_two_pieces(real_dir, make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    layer, = viewer.open(str(real_dir / "wb_rhoa_chemi_16bit.tif"), plugin="napari-exoimage")
    assert layer.metadata["exoimage"]["white_is_zero"] and layer.colormap.name == "gray_r"
    w = BlotWidget(viewer)
    w.detect()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    det = w.detected
    assert det is not None and det.lanes["piece"].nunique() == 2
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert (w.result.bands["row"].to_numpy() == det.bands["row"].to_numpy()).all()
    assert list(w.result.lanes["piece"]) == list(det.lanes["piece"])


@pytest.mark.parametrize("rel", ["wb_rhoa_chemi_16bit.tif",
                                 "blots_kodak/B3AR/June 25/June25.2013_B3AR_10wtop_16wbottom.tif"])
def test_real_blot_detect_then_quantify_gives_the_command_lines_numbers(rel, real_dir, make_napari_viewer,
                                                                         qtbot):
    # Detect, then Quantify with nothing edited: bands.csv and lanes.csv as `exoimage blot` writes them,
    # to the last digit (the Kodak blot: tilted lanes, deconvolved clusters; RhoA: gap backgrounds)
    import pandas as pd

    path = real_dir / rel
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-exoimage")
    w = BlotWidget(viewer)
    w.detect()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert w.detected is not None, w.status.text()
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert w.result is not None, w.status.text()
    cli = analyze_blot_file(path)
    cols_b = [c for c in BAND_COLUMNS if c != "image"]
    cols_l = [c for c in LANE_COLUMNS if c != "image"]
    assert len(cli.bands) > 40
    pd.testing.assert_frame_equal(w.result.bands[cols_b], cli.bands[cols_b], check_exact=True)
    pd.testing.assert_frame_equal(w.result.lanes[cols_l], cli.lanes[cols_l], check_exact=True)
