"""Issue 17, "Frozen or slow" and "Editing and viewing": Quantify updates the Shapes layers in place;
Quantify, Re-measure and Report leave the GUI thread free; Cancel stops the computation.

The GUI thread's longest block is measured with a QTimer ticking every 20 ms during the action:
the largest gap between two ticks is how long the window could not repaint or take a click.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("napari_exoimage")

from qtpy.QtCore import QTimer  # noqa: E402

from exoimage.blot import quantify_blot  # noqa: E402
from napari_exoimage._blot_widget import BlotWidget  # noqa: E402
from napari_exoimage._common import image_layer_kwargs  # noqa: E402
from napari_exoimage._sample_data import make_tem, sample_blot  # noqa: E402
from napari_exoimage._vesicle_widget import VesicleWidget  # noqa: E402

#: the GUI thread's longest block allowed during Quantify / Re-measure / Report. The budget is 0.2 s
#: (issue 17); on the shared 2-core test machine (load ~5) the main thread's own part (updating two
#: Shapes layers, the table and the plots) measured 0.14-0.26 s and the gap 0.17-0.33 s, so the bound
#: is 0.6 s. Before the actions ran in workers the gaps were their whole duration: RhoA Quantify
#: 1.25 s, blot Report 1.33 s, TEM Report 0.77 s (all fail this bound).
MAX_GAP_S = 0.6


class GapMeter:
    """The largest interval between ticks of a 20 ms QTimer on the GUI thread."""

    def __init__(self):
        self.timer = QTimer()
        self.timer.setInterval(20)
        self.timer.timeout.connect(self._tick)
        self.last, self.max = None, 0.0

    def _tick(self):
        now = time.perf_counter()
        self.max = max(self.max, now - self.last)
        self.last = now

    def __enter__(self):
        self.last, self.max = time.perf_counter(), 0.0
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self._tick()
        self.timer.stop()


def _detected_blot(viewer, qtbot):
    (data, kw, _), = sample_blot()
    layer = viewer.add_image(data, **kw)
    w = BlotWidget(viewer)
    w.detect()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert w.detected is not None, w.status.text()
    return layer, w


def test_quantify_updates_the_layers_in_place(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    image, w = _detected_blot(viewer, qtbot)
    lanes, bands = w.lanes_layer, w.bands_layer
    lanes.opacity, bands.opacity = 0.4, 0.6          # the user's style
    viewer.layers.selection.active = image           # the user works on the image
    n_layers = len(viewer.layers)
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert w.result is not None, w.status.text()
    # the same layer objects, their style, the active layer, no layer added or removed
    assert w.lanes_layer is lanes and w.bands_layer is bands
    assert lanes in viewer.layers and bands in viewer.layers and len(viewer.layers) == n_layers
    assert (lanes.opacity, bands.opacity) == (0.4, 0.6)
    assert viewer.layers.selection.active is image
    # unchanged boxes: the numbers of the library's detection (what `exoimage blot` writes)
    cli = quantify_blot(w._img, w.params(), name=w._name)
    pd.testing.assert_frame_equal(w.result.bands, cli.bands, check_exact=True)
    pd.testing.assert_frame_equal(w.result.lanes, cli.lanes, check_exact=True)
    assert list(bands.features["band_id"]) == list(cli.bands["band_id"]) and len(bands.data) == len(cli.bands)
    # delete a band box: still the same layers, one band fewer, the row tags follow the features
    bands.selected_data = {0}
    bands.remove_selected()
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert w.bands_layer is bands and w.lanes_layer is lanes
    assert len(bands.data) == len(cli.bands) - 1 == len(w.result.bands) == len(bands.features)
    assert list(bands.text.values) == list(bands.features["tag"]) and any(t for t in bands.text.values)
    assert viewer.layers.selection.active is image


def test_quantify_and_report_leave_the_gui_thread_free(real_dir, make_napari_viewer, qtbot, tmp_path,
                                                      monkeypatch):
    viewer = make_napari_viewer()
    viewer.open(str(real_dir / "wb_rhoa_chemi_16bit.tif"), plugin="napari-exoimage")
    w = BlotWidget(viewer)
    w.detect()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    with GapMeter() as quantify_gap:
        w.quantify()
        assert w.busy and w.progress.maximum() == 0      # busy bar shown while it works
        qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert w.result is not None, w.status.text()
    monkeypatch.setattr("napari_exoimage._blot_widget.QFileDialog.getExistingDirectory",
                        lambda *a, **k: str(tmp_path))
    with GapMeter() as report_gap:
        w.report_btn.click()
        assert w.busy
        qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert (tmp_path / "report.html").is_file(), w.status.text()
    assert quantify_gap.max < MAX_GAP_S and report_gap.max < MAX_GAP_S, (quantify_gap.max, report_gap.max)


def test_remeasure_and_report_leave_the_gui_thread_free(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    viewer = make_napari_viewer()
    img, _ = make_tem(shape=(512, 512), pixel_size_nm=1.0, seed=4, scenario_name="clean")
    viewer.add_image(img.data, **image_layer_kwargs(img, name="tem"))
    w = VesicleWidget(viewer)
    w.run()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert w.result is not None and w.result.ok, w.status.text()
    with GapMeter() as remeasure_gap:
        w.remeasure_btn.click()
        assert w.busy
        qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert "Re-measured" in w.status.text()
    monkeypatch.setattr("napari_exoimage._vesicle_widget.QFileDialog.getExistingDirectory",
                        lambda *a, **k: str(tmp_path))
    with GapMeter() as report_gap:
        w.report_btn.click()
        assert w.busy
        qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert (tmp_path / "report.html").is_file(), w.status.text()
    assert remeasure_gap.max < MAX_GAP_S and report_gap.max < MAX_GAP_S, (remeasure_gap.max, report_gap.max)


def test_cancel_stops_the_computation(make_napari_viewer, qtbot):
    # a 1024 px field takes ~3 s to detect here; after Cancel the worker must end within 0.6 s
    # (before: it ran to its end in the background, slowing the next detection ~3x)
    viewer = make_napari_viewer()
    img, _ = make_tem(shape=(1024, 1024), pixel_size_nm=1.0, seed=4, scenario_name="clean")
    viewer.add_image(img.data, **image_layer_kwargs(img, name="tem"))
    w = VesicleWidget(viewer)
    w.run()
    qtbot.wait(400)
    assert w.busy and w.jobs_running == 1
    t0 = time.perf_counter()
    w.cancel_btn.click()
    assert not w.busy and w.cancel_btn.isEnabled() is False
    qtbot.waitUntil(lambda: w.jobs_running == 0, timeout=10000)
    stopped = time.perf_counter() - t0
    assert stopped < 0.6, f"the cancelled detection ran on for {stopped:.2f} s"
    assert w.result is None                                  # its result is dropped
    # the next detection runs alone and is not interrupted by the earlier cancel
    w.run()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert w.result is not None and w.result.ok and len(w.table) > 0, w.status.text()


def test_units_warning_is_not_repeated_with_a_tem_image_and_a_blot(make_napari_viewer, qtbot, monkeypatch):
    # napari warns "Inconsistent units across layers" each time a layer is added or removed while a
    # TEM image (nm) and a blot (pixels) are open; the widgets' actions must add or remove none
    # once their result layers exist (before: every Quantify removed and added two layers, every
    # detection two more)
    warned = []
    monkeypatch.setattr("napari._vispy.canvas.show_warning", warned.append)
    viewer = make_napari_viewer(show=True)
    img, _ = make_tem(shape=(256, 256), pixel_size_nm=2.0, seed=4, scenario_name="clean")
    tem = viewer.add_image(img.data, **image_layer_kwargs(img, name="tem"))
    _blot, w = _detected_blot(viewer, qtbot)
    v = VesicleWidget(viewer)
    v.layer_combo.setCurrentText(tem.name)
    v.run()
    qtbot.waitUntil(lambda: not v.busy, timeout=60000)
    assert v.result is not None and v.result.ok, v.status.text()
    qtbot.wait(100)
    changes = []
    viewer.layers.events.inserted.connect(lambda e: changes.append(("added", e.value.name)))
    viewer.layers.events.removed.connect(lambda e: changes.append(("removed", e.value.name)))
    n_warned = len(warned)
    assert n_warned >= 1      # the mixed units themselves are napari's to report, once
    labels = v.labels_layer
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    v.run()                   # detect again: the Labels layer is updated in place
    qtbot.waitUntil(lambda: not v.busy, timeout=60000)
    v.remeasure()
    qtbot.waitUntil(lambda: not v.busy, timeout=60000)
    qtbot.wait(50)
    assert w.result is not None and v.labels_layer is labels
    assert changes == [] and len(warned) == n_warned, (changes, warned)
