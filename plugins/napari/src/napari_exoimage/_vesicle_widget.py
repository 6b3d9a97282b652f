"""Vesicle widget: detect, inspect, correct and re-measure EVs in a TEM micrograph.

Detection runs :func:`exoimage.tem.analyze_tem_image` in a napari thread worker;
re-measuring runs :func:`exoimage.tem_edits.remeasure_labels`. The plugin holds
no image processing of its own.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (QAbstractItemView, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox,
                            QHBoxLayout, QLabel, QPushButton, QTableWidget, QVBoxLayout, QWidget)

from exoimage.io import ImageReadError, write_calibrated_tiff
from exoimage.outputs import write_table
from exoimage.experiment.records import tem_record
from exoimage.params import ParamError, check_value
from exoimage.tem import PIXEL_SIZE_META, VESICLE_COLUMNS, TemParams, analyze_tem_image, draw_overlay, summarize_diameters
from exoimage.tem_edits import edit_log, mark_detected, remeasure_labels

from ._common import (CALIBRATION_ONLY_WARNINGS, META_KEY, BackgroundJobs, PlotImage, camera, fill_table, image_from_layer,
                      layer_name_for_tables, layer_pixel_size, layer_provenance, notify_info, show_scale_bar,
                      sort_ascending)
from ._forms import ParamForm, gui_words
from ._scalebar_panel import ScaleBarPanel

TABLE_COLUMNS = ["vesicle_id", "diameter_nm", "feret_max_nm", "feret_min_nm", "circularity", "aspect_ratio",
                 "touches_border", "confidence", "origin", "x_nm", "y_nm"]
#: what the exported table and the report's vesicles hold: the CLI's columns and the edit origin
EXPORT_COLUMNS = [*VESICLE_COLUMNS, "origin"]
REPORT_TOOLTIP = ("Write the QC report (report.html, the same report as `exoimage run`) for the vesicles as "
                  "they are now, edits included, into a folder")


def _render_hist(plot, table):
    """Pixels of the histogram of the sized diameters (any thread: a figure of its own)."""
    def draw(axes):
        ax = axes[0]
        s = summarize_diameters(table) if len(table) else {"n_vesicles": 0}
        d = table.loc[~table["touches_border"].astype(bool), "diameter_nm"].dropna() \
            if len(table) else pd.Series(dtype=float)
        if len(d):
            ax.hist(d, bins=min(30, max(5, len(d) // 2)), color="#5fb3ff", edgecolor="#1b1d22")
            ax.axvline(s["diameter_median_nm"], color="yellow", lw=1)
            ax.set_title(f"n = {s['n_vesicles']}, median {s['diameter_median_nm']:.1f} nm", fontsize=9)
        else:
            ax.set_title("no sized vesicles", fontsize=9)
        ax.set_xlabel("diameter (nm)", fontsize=8)
        ax.set_ylabel("count", fontsize=8)

    return plot.render(draw)


def _detect(img, params, name, hist):
    """Worker body (thread) of detection: the library's analysis and its histogram's pixels."""
    res = analyze_tem_image(img, params, name)
    return res, (_render_hist(hist, res.vesicles) if res.ok else None)


def _remeasure(lab, px, prev_labels, prev_table, name, hist):
    """Worker body (thread) of Re-measure: the library's measurement of the edited labels and the
    histogram's pixels."""
    table = remeasure_labels(lab, px, previous_labels=prev_labels, previous_table=prev_table, name=name)
    return table, _render_hist(hist, table)


def _write_report(folder, name, layer_name, result, table, provenance, labels) -> Path:
    """Worker body (thread) of Report: the library's session report of the vesicles as edited."""
    from exoimage.experiment.run import write_session_report

    rec = tem_record(name, layer_name, result.image_row, table, provenance=provenance,
                     warnings=result.warnings, remeasured=True)
    overlay = draw_overlay(result.display, labels, rec.vesicles, pixel_size_nm=result.pixel_size_nm)
    return write_session_report(folder, [rec], name=f"napari: {name}", overlays={rec.rel: overlay})


class VesicleWidget(BackgroundJobs, QWidget):
    """Dock widget: vesicle detection and hand correction for one TEM image layer."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.result = None            # TemFileResult of the last detection
        self.table = None             # current measurement table (after re-measure)
        self.labels_layer = None
        self.points_layer = None
        self.image_layer = None
        self._prev_labels = None
        self._init_jobs()
        self._px = None
        self._params = None           # TemParams of the last detection
        self._labels_of = None
        self._edits = []              # the edit log of the current result (provenance of the report)

        lay = QVBoxLayout(self)
        form = QFormLayout()
        self._add_layer_combo(form, "2-D grey image layer of a negative-stain TEM micrograph")
        px_row = QHBoxLayout()
        self.px_spin = QDoubleSpinBox()
        self.px_spin.setDecimals(4)
        self.px_spin.setRange(0.0, 1000.0)
        self.px_spin.setSingleStep(0.1)
        self.px_spin.setSpecialValueText("missing")
        self.px_spin.setSuffix(" nm/px")
        self.px_spin.setToolTip("Pixel size in nm: pre-filled from the file's calibration; edit to override")
        self.px_source = QLabel("")
        px_row.addWidget(self.px_spin, 1)
        px_row.addWidget(self.px_source)
        form.addRow("Pixel size", px_row)
        lay.addLayout(form)
        # what the reader read off the burned-in scale bar, and the drawn-line fallback
        self.scale_bar_panel = ScaleBarPanel(self.viewer, self._calibrated_by_hand, self._error)
        lay.addWidget(self.scale_bar_panel)
        # every detector parameter, generated from TemParams' metadata (rules, units, help)
        self.tem_form = ParamForm(TemParams)
        lay.addWidget(self.tem_form.widget)

        self._add_run_controls(lay, "Detect vesicles")
        self.status = QLabel("Choose an image and press Detect.")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        # the library's warnings about the image (8-bit, JPEG, RGB export, ...)
        self.warnings_label = QLabel("")
        self.warnings_label.setWordWrap(True)
        self.warnings_label.setStyleSheet("color: #ffb060")
        lay.addWidget(self.warnings_label)

        box = QGroupBox("Vesicles (click a row to go to it)")
        bl = QVBoxLayout(box)
        self.table_view = QTableWidget(0, len(TABLE_COLUMNS))
        self.table_view.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table_view.setSortingEnabled(True)
        sort_ascending(self.table_view)
        self.table_view.setMinimumHeight(160)
        bl.addWidget(self.table_view)
        self.hist = PlotImage(1, height=2.2)
        bl.addWidget(self.hist.widget)
        lay.addWidget(box, 1)

        edit_row = QHBoxLayout()
        self.remeasure_btn = QPushButton("Re-measure")
        self.remeasure_btn.setToolTip("Recompute the table from the edited Labels layer (delete, paint, "
                                      "merge or split vesicles with napari's label tools first)")
        self.export_csv_btn = QPushButton("Export CSV…")
        self.export_csv_btn.setToolTip("The table, with the same columns as the command line's vesicles.csv")
        self.export_tif_btn = QPushButton("Export labels…")
        self.export_tif_btn.setToolTip("The label image as a calibrated TIFF (unit nm; Fiji and napari read it)")
        self.report_btn = QPushButton("Report…")
        self.report_btn.setToolTip(REPORT_TOOLTIP)
        for b in (self.remeasure_btn, self.export_csv_btn, self.export_tif_btn, self.report_btn):
            edit_row.addWidget(b)
        lay.addLayout(edit_row)
        self._set_have_result(False)

        self.run_btn.clicked.connect(self._slot(self.run, "detection"))
        self.remeasure_btn.clicked.connect(self._slot(self.remeasure, "re-measuring"))
        self.export_csv_btn.clicked.connect(self._slot(self._export_csv_dialog, "export"))
        self.export_tif_btn.clicked.connect(self._slot(self._export_labels_dialog, "export"))
        self.report_btn.clicked.connect(self._slot(self._report_dialog, "the report"))
        self.table_view.cellClicked.connect(lambda row, _col: self._slot(lambda: self._row_clicked(row),
                                                                         "going to the vesicle")())
        self.px_spin.valueChanged.connect(self._px_edited)
        self._refresh_layers()

    # ------------------------------------------------------------------ ui helpers

    def _on_layer_choice(self):
        layer = self._layer()
        if layer is None:
            self.px_spin.setValue(0.0)
            self._mark_px(None, "")
            self.scale_bar_panel.show_layer(None)
            return
        px, src = layer_pixel_size(layer)
        self.px_spin.blockSignals(True)
        self.px_spin.setValue(px or 0.0)
        self.px_spin.blockSignals(False)
        self._mark_px(px, src)
        self.scale_bar_panel.show_layer(layer)

    def _calibrated_by_hand(self, layer, px, src):
        """The scale-bar panel measured the pixel size on a line drawn over the bar."""
        self.px_spin.blockSignals(True)
        self.px_spin.setValue(px)
        self.px_spin.blockSignals(False)
        self._mark_px(px, "the line drawn over the bar")
        self._calibrate_layer(layer, px, src)

    def _mark_px(self, px, src):
        if px:
            self.px_source.setText(f"from {src}")
            self.px_source.setStyleSheet("")
            self.px_spin.setStyleSheet("")
        else:
            self.px_source.setText("not in file: enter it")
            self.px_source.setStyleSheet("color: #ff6060; font-weight: bold")
            self.px_spin.setStyleSheet("background-color: #6a2020")

    def _px_edited(self, value):
        self._mark_px(value or None, "you" if value else "")

    def params(self) -> TemParams:
        """The detector parameters of the form (raises :class:`FormError`, in the form's words)."""
        return self.tem_form.params()

    def _error(self, message: str):
        """Show an error; parameters it names are called by the form's labels."""
        super()._error(gui_words(message, self.tem_form, extra={"pixel_size_nm": '"Pixel size"'}))

    def _set_have_result(self, ok: bool):
        for b in (self.remeasure_btn, self.export_csv_btn, self.export_tif_btn, self.report_btn):
            b.setEnabled(ok)

    # ------------------------------------------------------------------ detection

    def run(self):
        """Start detection on the chosen layer in a background thread (returns at once)."""
        if self.busy:
            return
        layer = self._layer()
        if layer is None:
            self._error("no image layer: open a micrograph (File > Open) or a sample "
                        "(File > Open Sample > exoimage)")
            return
        px = self.px_spin.value() or None
        try:
            params = self.params()
            params.check()
            if px:
                check_value("Pixel size (nm)", px, PIXEL_SIZE_META)
            file_px, file_src = layer_pixel_size(layer)
            if px and file_px and abs(px - file_px) <= 1e-9 * file_px:
                src = file_src          # the file's calibration, untouched
            else:
                src = "given" if px else "none"
            img = image_from_layer(layer, px, source=src)
        except ParamError as exc:
            self._error(f"{exc.key}: {exc.problem}")
            return
        except (ImageReadError, ValueError) as exc:
            self._error(str(exc))
            return
        self.image_layer = layer
        self._name = layer_name_for_tables(layer)
        self._px = px
        self._params, self._edits = params, []
        if px:
            self._calibrate_layer(layer, px, src)
        self._start_job(_detect, (img, params, self._name, self.hist), self._on_result,
                        desc=f"exoimage: detecting vesicles in {layer.name}",
                        status=f"Detecting vesicles in {layer.name}…")

    def _calibrate_layer(self, layer, px, src):
        """Put the image layer at the pixel size used, so that results, scale bar and
        measurements in the viewer are in nm."""
        if tuple(layer.scale[-2:]) == (px, px) and str(layer.units[-1]) in ("nm", "nanometer"):
            return
        layer.scale = tuple(layer.scale[:-2]) + (px, px)
        layer.units = tuple(layer.units[:-2]) + ("nm", "nm")
        meta = dict(layer.metadata.get(META_KEY, {}))
        meta.update(pixel_size_nm=px, pixel_size_source=src)
        layer.metadata[META_KEY] = meta
        self.viewer.reset_view()

    def _on_result(self, out):
        res, pixels = out
        if not res.ok:
            # the same one-line message as `exoimage tem` prints
            self._error(f"{self._name}: {res.image_row['error']}")
            return
        self.result = res
        # the missing-calibration warning is the pixel-size box's red mark, not repeated here
        notes = list(dict.fromkeys(str(x) for x in res.warnings
                                   if getattr(x, "code", None) not in CALIBRATION_ONLY_WARNINGS))
        self.warnings_label.setText("\n".join(f"⚠ {m}" for m in notes))
        self._prev_labels = res.labels.copy()
        self._show(mark_detected(res.vesicles), res.labels, new_layers=True, hist=pixels)
        r = res.image_row
        self.status.setText(
            f"{r['n_vesicles']} vesicles sized, {r['n_border']} cut by the border "
            f"(polarity {r['polarity']}, {self._px:g} nm/px). Fix mistakes in the Labels layer, then Re-measure.")

    # ------------------------------------------------------------------ results

    def _layer_geometry(self):
        lay = self.image_layer
        return dict(scale=tuple(lay.scale), translate=tuple(lay.translate),
                    units=tuple(str(u) for u in lay.units) if hasattr(lay, "units") else None)

    def _show(self, table: pd.DataFrame, labels: np.ndarray | None, new_layers: bool = False, hist=None):
        """Table, layers and histogram (``hist``: its pixels as a worker drew them)."""
        self.table = table.reset_index(drop=True)
        geo = self._layer_geometry()
        units = {"units": geo["units"]} if geo["units"] else {}
        base = self.image_layer.name
        if new_layers and not self._gone(self.labels_layer) and self._labels_of is self.image_layer:
            # a new detection: the layers are updated in place (no layer removed and added, so the
            # user's style stays and napari does not re-check every layer's units)
            self.labels_layer.scale, self.labels_layer.translate = geo["scale"], geo["translate"]
            if geo["units"]:
                self.labels_layer.units = geo["units"]
            self.labels_layer.data = labels.astype(np.int32)
            if not self._gone(self.points_layer):
                self.points_layer.scale, self.points_layer.translate = geo["scale"], geo["translate"]
                if geo["units"]:
                    self.points_layer.units = geo["units"]
        elif new_layers or self._gone(self.labels_layer):
            for ly in (self.labels_layer, self.points_layer):
                if ly is not None and ly in self.viewer.layers:
                    self.viewer.layers.remove(ly)
            self.labels_layer = self.viewer.add_labels(
                labels.astype(np.int32), name=f"{base} vesicles", scale=geo["scale"],
                translate=geo["translate"], opacity=0.45, **units)
            self._labels_of = self.image_layer     # the image layer the Labels layer shows results of
            self.points_layer = None
        pts = self.table[["y_px", "x_px"]].to_numpy(float) if len(self.table) else np.zeros((0, 2))
        colors = np.where(self.table["touches_border"].astype(bool), "orange", "lime") if len(self.table) \
            else "lime"
        feats = self.table.reset_index(drop=True)
        if self.points_layer is None or self.points_layer not in self.viewer.layers:
            self.points_layer = self.viewer.add_points(
                pts, name=f"{base} vesicle table", scale=geo["scale"], translate=geo["translate"],
                features=feats, size=6, face_color=colors, border_color="black", border_width=0.1,
                text={"string": "{vesicle_id}", "color": "yellow", "size": 9, "translation": [-8, 0]},
                **units)
        else:
            self.points_layer.data = pts
            self.points_layer.features = feats
            self.points_layer.face_color = colors
            self.points_layer.refresh()
        self.points_layer.metadata["exoimage_table"] = "vesicles"
        show_scale_bar(self.viewer)
        self.viewer.layers.selection.active = self.labels_layer
        self._fill_table()
        if hist is not None:
            self.hist.show(hist)
        else:
            self._draw_hist()
        self._set_have_result(True)

    def _fill_table(self):
        t = self.table
        colors = ["#6b4a10" if b else None for b in t["touches_border"].astype(bool)] if len(t) else None
        fill_table(self.table_view, t, TABLE_COLUMNS, row_colors=colors,
                   formats={"diameter_nm": "{:.1f}", "feret_max_nm": "{:.1f}", "feret_min_nm": "{:.1f}",
                            "circularity": "{:.3f}", "aspect_ratio": "{:.3f}", "confidence": "{:.2f}",
                            "x_nm": "{:.0f}", "y_nm": "{:.0f}"})

    def _draw_hist(self):
        self.hist.show(_render_hist(self.hist, self.table))

    def _row_clicked(self, row, col=0):
        item = self.table_view.item(row, TABLE_COLUMNS.index("vesicle_id"))
        if item is None:
            return
        self.go_to(int(item.data(Qt.ItemDataRole.DisplayRole)))

    def go_to(self, vesicle_id: int):
        """Centre the view on a vesicle and select its label."""
        r = self.table[self.table["vesicle_id"] == vesicle_id]
        if r.empty:
            return
        r = r.iloc[0]
        world = self.labels_layer.data_to_world((float(r["y_px"]), float(r["x_px"])))
        camera(self.viewer).center = tuple(float(v) for v in world)
        d_nm = r["diameter_nm"] if np.isfinite(r["diameter_nm"]) else 200.0
        # about four diameters across a ~600 px canvas
        camera(self.viewer).zoom = 600.0 / (4.0 * max(float(d_nm), 1.0))
        self.labels_layer.selected_label = int(vesicle_id)

    # ------------------------------------------------------------------ edits

    def _layers_problem(self, action: str, *, labels: bool = True) -> str | None:
        """Why ``action`` cannot run on the layers as they are now (one line saying what to do),
        or None."""
        if self.result is None or self.table is None:
            return f"nothing to {action}: detect vesicles first"
        if not labels:
            return None
        detect = '"Detect vesicles"'
        if self._gone(self.labels_layer):
            name = self.labels_layer.name if self.labels_layer is not None else "vesicles"
            return (f'{self._name}: the Labels layer "{name}" was deleted, nothing to {action}: press {detect} '
                    f"again (edits made in the deleted layer are lost)")
        shape, want = np.shape(self.labels_layer.data), np.shape(self._prev_labels)
        if shape != want:
            return (f'{self._name}: the Labels layer "{self.labels_layer.name}" is now '
                    f'{"x".join(map(str, shape))} px but the image is {"x".join(map(str, want))} px: '
                    f"undo the change (Ctrl+Z) or press {detect} again")
        return None

    def remeasure(self):
        """Recompute the table from the (edited) Labels layer with the library, in a background
        thread (busy bar, Cancel); the table and layers are updated when it returns."""
        if self.busy:
            return
        problem = self._layers_problem("re-measure")
        if problem:
            self._error(problem)
            return
        lab = np.array(self.labels_layer.data, copy=True)  # the edits as they are now
        args = (lab, self._px, self._prev_labels, self.table.copy(), self._name, self.hist)
        self._start_job(_remeasure, args, lambda out: self._on_remeasured(lab, *out),
                        desc=f"exoimage: re-measuring {self._name}", status=f"Re-measuring {self._name}…",
                        what="re-measuring")

    def _on_remeasured(self, lab, table, pixels):
        before = len(self.table)
        log = edit_log(self._prev_labels, lab)   # which vesicles were deleted, added, redrawn
        self._prev_labels = lab
        self._edits.extend(log or ["re-measured with no label changed"])
        self._show(table, None, hist=pixels)
        n_sized = int((~table["touches_border"].astype(bool)).sum())
        self.status.setText(f"Re-measured: {len(table)} vesicles ({n_sized} sized), was {before}.")
        notify_info(f"{self._name}: re-measured {len(table)} vesicles")

    # ------------------------------------------------------------------ export

    def export_csv(self, path):
        """Write the table with the command line's vesicles.csv columns and ``origin``
        (detected/edited/added), and next to it ``<name>.provenance.json``: the input file, its
        SHA-256, the parameters, the exoimage version and the edit log."""
        import json

        problem = self._layers_problem("export", labels=False)
        if problem:
            raise ValueError(problem)
        write_table(self.table[EXPORT_COLUMNS], path)
        prov = asdict(self._provenance())
        prov["edits"] = list(prov["edits"])
        Path(path).with_suffix(".provenance.json").write_text(json.dumps(prov, indent=1, default=str))

    def _provenance(self):
        params = {"tem": asdict(self._params), "pixel_size_nm": self._px}
        return layer_provenance(self.image_layer, params, self._edits)

    def export_labels(self, path):
        """Write the (edited) label image as a calibrated TIFF (unit nm)."""
        problem = self._layers_problem("export")
        if problem:
            raise ValueError(problem)
        write_calibrated_tiff(path, np.asarray(self.labels_layer.data), self._px)

    def write_report(self, folder) -> Path:
        """The QC report for the vesicles as they are now (edits included), by the library."""
        return _write_report(folder, *self._report_args())

    def _report_args(self):
        """What the report is made of, taken from the widget and layers now (main thread)."""
        problem = self._layers_problem("report")
        if problem:
            raise ValueError(problem)
        return (self._name, self.image_layer.name, self.result, self.table[EXPORT_COLUMNS].copy(),
                self._provenance(),
                np.array(self.labels_layer.data, copy=True))

    _report_writer = staticmethod(_write_report)

    def _report_ready(self) -> bool:
        return not self._says_problem("report")

    def _export_csv_dialog(self):
        if self._says_problem("export", labels=False):
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export vesicle table", "vesicles.csv", "CSV (*.csv)")
        if path:
            self._guarded(self.export_csv, path, "table")

    def _export_labels_dialog(self):
        if self._says_problem("export"):
            return
        stem = self._name.rsplit(".", 1)[0] or "labels"
        path, _ = QFileDialog.getSaveFileName(self, "Export labels", f"{stem}_labels.tif", "TIFF (*.tif)")
        if path:
            self._guarded(self.export_labels, path, "labels")

    def _says_problem(self, action, **kw) -> bool:
        """Show why ``action`` cannot run now (before asking for a file name); True if it cannot."""
        problem = self._layers_problem(action, **kw)
        if problem:
            self._error(problem)
        return bool(problem)

    def _guarded(self, fn, path, what):
        try:
            fn(path)
        except (OSError, ValueError) as exc:
            self._error(f"{path}: cannot write {what} ({exc})")
            return
        self._succeeded()
        self.status.setText(f"Wrote {path}")
        notify_info(f"wrote {path}")
