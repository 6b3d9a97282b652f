"""Issue 17: actions on a deleted or changed layer give one message saying what to do, never a traceback.

The buttons are clicked (their Qt signal runs the slot): pytest-qt fails the test on an exception
that escapes a slot, as napari would show it to the user with a traceback.
"""

from __future__ import annotations

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("napari_exoimage")

from napari_exoimage._blot_widget import BlotWidget  # noqa: E402
from napari_exoimage._common import image_layer_kwargs  # noqa: E402
from napari_exoimage._sample_data import make_tem, sample_blot  # noqa: E402


@pytest.fixture
def errors(monkeypatch):
    messages = []
    monkeypatch.setattr("napari_exoimage._common.notify_error", messages.append)
    return messages


def _detected_vesicles(make_napari_viewer, qtbot):
    from napari_exoimage._vesicle_widget import VesicleWidget

    viewer = make_napari_viewer()
    img, _ = make_tem(shape=(256, 256), pixel_size_nm=2.0, seed=4, scenario_name="clean")
    viewer.add_image(img.data, **image_layer_kwargs(img, name="tem"))
    w = VesicleWidget(viewer)
    w.run()
    qtbot.waitUntil(lambda: not w.busy, timeout=30000)
    assert w.result is not None and w.result.ok and len(w.table) > 0, w.status.text()
    return viewer, w


def test_deleted_vesicle_labels_layer(make_napari_viewer, qtbot, errors):
    viewer, w = _detected_vesicles(make_napari_viewer, qtbot)
    n = len(w.table)
    viewer.layers.remove(w.labels_layer)
    for btn in (w.remeasure_btn, w.export_tif_btn, w.report_btn):
        errors.clear()
        btn.click()
        assert len(errors) == 1 and "\n" not in errors[0], errors
        assert 'Labels layer "tem vesicles" was deleted' in errors[0]
        assert 'press "Detect vesicles" again' in errors[0]
    assert len(w.table) == n and "tem vesicles" not in viewer.layers   # nothing half-done
    errors.clear()
    w.table_view.cellClicked.emit(0, 0)   # going to a vesicle still works (the table is kept)
    assert errors == []
    # detecting again brings the layer back and re-measuring works again
    w.run()
    qtbot.waitUntil(lambda: not w.busy, timeout=30000)
    errors.clear()
    w.remeasure_btn.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=30000)
    assert errors == [] and len(w.table) == n and "tem vesicles" in viewer.layers


def test_vesicle_labels_layer_of_another_shape(make_napari_viewer, qtbot, errors):
    _viewer, w = _detected_vesicles(make_napari_viewer, qtbot)
    w.labels_layer.data = np.zeros((100, 80), np.int32)
    w.remeasure_btn.click()
    assert len(errors) == 1 and "is now 100x80 px but the image is 256x256 px" in errors[0]
    assert "Ctrl+Z" in errors[0]


def test_deleted_blot_layers(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    (data, kw, _), = sample_blot()
    viewer.add_image(data, **kw)
    w = BlotWidget(viewer)
    w.detect()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert w.detected is not None, w.status.text()
    w.quantify_btn.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=30000)
    assert errors == [] and w.result is not None
    bands_name = w.bands_layer.name
    viewer.layers.remove(w.bands_layer)
    w.quantify_btn.click()
    assert len(errors) == 1 and f"the Shapes layer '{bands_name}' was deleted" in errors[0]
    assert 'press "Detect lanes & bands" again' in errors[0]
    # the image layer deleted too: Detect says what to open
    errors.clear()
    viewer.layers.remove(viewer.layers[kw["name"]])
    w.run_btn.click()
    assert len(errors) == 1 and errors[0].startswith("no image layer: open a blot")
