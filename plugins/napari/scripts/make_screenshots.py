"""Screenshots of both widgets in use, from a real napari viewer (run under Xvfb).

    xvfb-run -a -s "-screen 0 1600x1000x24" python plugins/napari/scripts/make_screenshots.py docs/

Loads the plugin's sample data, runs each widget, makes the corrections a user
would make, and saves docs/napari_vesicles.png and docs/napari_blot.png.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np


def _wait(app, cond, timeout=120):
    t0 = time.time()
    while not cond():
        app.processEvents()
        time.sleep(0.02)
        if time.time() - t0 > timeout:
            raise TimeoutError("widget did not finish")


def _settle(app, n=10):
    for _ in range(n):
        app.processEvents()
        time.sleep(0.05)


def _quiet(viewer):
    """Scale bar where the notification toasts do not cover it."""
    from napari_exoimage._common import show_scale_bar

    show_scale_bar(viewer)
    bar = viewer.canvas.overlays.scale_bar if hasattr(viewer, "canvas") else viewer.scale_bar
    bar.position = "bottom_left"
    bar.font_size = 12


def vesicles(out: Path):
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_exoimage._sample_data import sample_tem
    from napari_exoimage._vesicle_widget import VesicleWidget

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    (data, kw, _), = sample_tem()
    viewer.add_image(data, **kw)
    w = VesicleWidget(viewer)
    viewer.window.add_dock_widget(w, name="exoimage: Vesicles (TEM)", area="right")
    app = QApplication.instance()
    w.run()
    _wait(app, lambda: not w.busy)
    # a correction: delete the first border-cut object, then re-measure
    lab = np.asarray(w.labels_layer.data).copy()
    t = w.table
    cut = t.loc[t["touches_border"], "vesicle_id"]
    if len(cut):
        lab[lab == int(cut.iloc[0])] = 0
    w.labels_layer.data = lab
    w.remeasure()
    _wait(app, lambda: not w.busy)
    w.table_view.sortItems(0)
    w.table_view.selectRow(8)
    _quiet(viewer)
    _settle(app)
    viewer.reset_view()
    _settle(app)
    viewer.screenshot(path=str(out), canvas_only=False, flash=False)
    viewer.close()


def blot(out: Path):
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_exoimage._blot_widget import BlotWidget
    from napari_exoimage._sample_data import sample_blot

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    (data, kw, _), = sample_blot()
    viewer.add_image(data, **kw)
    w = BlotWidget(viewer)
    viewer.window.add_dock_widget(w, name="exoimage: Western blot", area="right")
    app = QApplication.instance()
    w.ladder_lane.setValue(1)
    w.ladder_kda.setText(",".join(str(k) for k in kw["metadata"]["exoimage"]["ladder_kda"]))
    w.detect()
    _wait(app, lambda: not w.busy)
    det = w.detected
    sample = det.lanes.loc[~det.lanes["is_ladder"], "lane"].tolist()
    b = det.bands[det.bands["lane"].isin(sample) & (det.bands["row"] > 0)]
    med = b.groupby("row")["y_px"].median()
    tb = kw["metadata"]["exoimage"]["truth_bands"]
    row_of = lambda name: int((med - tb.loc[tb["name"] == name, "y_px"].median()).abs().idxmin())  # noqa: E731
    w.target_rows.setText(str(row_of("cd63")))
    w.control_rows.setText(str(row_of("control")))
    w.reference_lane.setValue(2)
    # adjust one lane by hand: nudge lane 5 two pixels to the right
    d = [np.asarray(x).copy() for x in w.lanes_layer.data]
    k = int(np.argsort([x[:, 1].mean() for x in d])[4])
    d[k][:, 1] += 2
    w.lanes_layer.data = d
    w.quantify()
    _wait(app, lambda: not w.busy)
    # lane 3's smear (beside a saturated band) is cut into pieces by the detector: replace its
    # boxes there by a copy of lane 4's smear box, as a user would, and quantify again
    r_t = int(w.target_rows.text())
    feats = w.bands_layer.features
    idx = feats.index[(feats["lane"] == 4) & (feats["row"] == r_t)]
    if len(idx):
        lanes = w.result.lanes.set_index("lane")
        box = np.asarray(w.bands_layer.data[int(idx[0])]).copy()
        box[:, 1] += lanes.loc[3, "x_center_px"] - lanes.loc[4, "x_center_px"]
        y0, y1 = box[:, 0].min(), box[:, 0].max()
        clash = {i for i, d in enumerate(w.bands_layer.data) if feats.loc[i, "lane"] == 3
                 and np.asarray(d)[:, 0].max() > y0 and np.asarray(d)[:, 0].min() < y1}
        if clash:
            w.bands_layer.selected_data = clash
            w.bands_layer.remove_selected()
        w.bands_layer.add_rectangles([box])
        w.quantify()
        _wait(app, lambda: not w.busy)
    w.profile_lane.setCurrentText("5")
    from qtpy.QtCore import Qt

    w.band_table.sortItems(3, Qt.SortOrder.DescendingOrder)  # by volume: the saturated bands first
    _quiet(viewer)
    _settle(app)
    viewer.reset_view()
    _settle(app)
    viewer.screenshot(path=str(out), canvas_only=False, flash=False)
    viewer.close()


if __name__ == "__main__":
    outdir = Path(sys.argv[1] if len(sys.argv) > 1 else "docs")
    outdir.mkdir(parents=True, exist_ok=True)
    vesicles(outdir / "napari_vesicles.png")
    blot(outdir / "napari_blot.png")
    print("wrote", outdir / "napari_vesicles.png", outdir / "napari_blot.png")
