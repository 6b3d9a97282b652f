"""Issue 17: the tables start in id order; an error toast goes away once the action succeeds."""

from __future__ import annotations

import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("napari_exoimage")

from qtpy.QtWidgets import QApplication  # noqa: E402

from napari_exoimage._blot_widget import BlotWidget  # noqa: E402
from napari_exoimage._sample_data import make_tem, sample_blot  # noqa: E402
from napari_exoimage._vesicle_widget import VesicleWidget  # noqa: E402


def _column(table, j=0):
    return [int(float(table.item(i, j).text())) for i in range(table.rowCount())]


def _toasts():
    return [w.message.text() for w in QApplication.allWidgets()
            if type(w).__name__ == "NapariQtNotification" and w.isVisible()]


def test_vesicle_table_starts_ascending_and_error_toast_closes(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    img, _ = make_tem(shape=(256, 256), pixel_size_nm=2.0, seed=5, scenario_name="clean")
    viewer.add_image(img.data, name="tem")   # no pixel size yet: Detect is refused with a toast
    w = VesicleWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.run_btn.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=30000)
    qtbot.waitUntil(lambda: any("no pixel size" in t for t in _toasts()), timeout=5000)
    w.px_spin.setValue(2.0)
    w.run_btn.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=30000)
    assert w.result is not None and w.result.ok
    qtbot.wait(20)
    assert not any("no pixel size" in t for t in _toasts())
    ids = _column(w.table_view)
    assert len(ids) >= 3 and ids == sorted(ids)


def test_blot_table_starts_ascending(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    (data, kw, _), = sample_blot()
    viewer.add_image(data, **kw)
    w = BlotWidget(viewer)
    w.detect()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    ids = _column(w.band_table)
    assert len(ids) > 10 and ids == sorted(ids)
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert _column(w.band_table) == sorted(ids)


def test_vesicle_dock_lists_the_librarys_image_warnings(make_napari_viewer, qtbot, tmp_path):
    # a micrograph exported as an 8-bit JPEG: the library's lossy-data warnings are in the dock
    import numpy as np
    from PIL import Image as PILImage

    img, _ = make_tem(shape=(256, 256), pixel_size_nm=2.0, seed=6, scenario_name="clean")
    d = img.data.astype(float)
    grey = np.clip((d - d.min()) / (np.ptp(d) or 1) * 255, 0, 255).astype(np.uint8)
    path = tmp_path / "field.jpg"
    PILImage.fromarray(grey).save(path, quality=92)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-exoimage")
    w = VesicleWidget(viewer)
    w.px_spin.setValue(2.0)
    w.run()
    qtbot.waitUntil(lambda: not w.busy, timeout=30000)
    assert w.result is not None and w.result.ok, w.status.text()
    text = w.warnings_label.text()
    assert "JPEG" in text, (text, [str(x) for x in w.result.warnings])
    assert "scale bar" not in text   # the pixel size was typed in: no calibration warning repeated
