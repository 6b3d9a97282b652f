"""The widgets on real images from ../shared/data/real (skipped when that folder is absent)."""

from __future__ import annotations

import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("napari_exoimage")

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
    assert (w.result.bands["row"].to_numpy() == det.bands["row"].to_numpy()).all()
    assert list(w.result.lanes["piece"]) == list(det.lanes["piece"])
