"""Blot widget: detect lanes and bands, let the user fix them, quantify, normalise, export.

Detection is :func:`exoimage.blot.quantify_blot`; quantifying the user's
lanes and band boxes is :func:`exoimage.blot.measure.measure`, the measurement
``quantify_blot`` itself uses (boxes and lanes left as detected keep what
detection recorded about them, so they give the command line's numbers);
normalisation is :func:`exoimage.blot.plan.normalize_blot` (as ``exoimage blot``); the
parameter forms are generated from the parameters' metadata (``_forms.ParamForm``). The plugin only
converts between Shapes layers and those functions' inputs and outputs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from matplotlib.colors import to_rgba
import pandas as pd
from qtpy.QtWidgets import (QAbstractItemView, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout,
                            QLabel, QPushButton, QTableWidget, QVBoxLayout, QWidget)

from exoimage.blot import BAND_COLUMNS, LANE_COLUMNS, BlotParams, quantify_blot
from exoimage.blot.manual import (band_outline, lane_outline, lane_traces, lanes_from_outlines, match_rows,
                                  regions_from_bands, regions_from_outlines)
from exoimage.blot.measure import REGION_COLUMNS, measure
from exoimage.blot.normalize import NORMALIZED_COLUMNS, default_reference_lane
from exoimage.blot.pipeline import NO_LANES
from exoimage.blot.plan import NormalizationSpec, normalize_blot
from exoimage.io import ImageReadError, validate_image
from exoimage.outputs import write_table

from ._common import (CALIBRATION_ONLY_WARNINGS, BackgroundJobs, PlotImage, camera, fill_table, image_from_layer,
                      layer_name_for_tables, layer_provenance, notify_info, notify_warning, sort_ascending)
from ._forms import ParamForm, gui_words

BAND_TABLE_COLUMNS = ["band_id", "lane", "row", "volume", "qc", "background", "snr", "saturated", "saturated_px",
                      "low_snr", "below_noise", "hot_px", "deconvolved", "mw_kda", "y_px", "background_method"]
LANE_COLOR, LADDER_COLOR = "lime", "magenta"
BAND_COLOR, SATURATED_COLOR, LOW_SNR_COLOR = "yellow", "red", "orange"
REPORT_TOOLTIP = ("Write the QC report (report.html, the same report as `exoimage run`) for the lanes and "
                  "bands as last quantified, into a folder")


def band_qc(bands: pd.DataFrame) -> list[str]:
    """Per band, what the library's flags say about its volume ("" when nothing): ``saturated``,
    ``negative volume`` (background above the band), ``below noise`` (within 2 noise SDs of zero,
    the library's ``below_noise``), ``low SNR``, ``hot pixels``."""
    out = []
    for b in bands.itertuples():
        why = []
        if bool(b.saturated):
            why.append("saturated")
        vol = float(b.volume)
        if np.isfinite(vol) and vol < 0:
            why.append("negative volume")
        if bool(getattr(b, "below_noise", False)):
            why.append("below noise")
        if bool(b.low_snr):
            why.append("low SNR")
        if int(getattr(b, "hot_px", 0) or 0) > 0:
            why.append("hot pixels")
        out.append(", ".join(why))
    return out


def _flag_note(bands: pd.DataFrame) -> str:
    """``', 2 below noise (1 negative): see the qc column'`` or ``''``."""
    if not len(bands) or "below_noise" not in bands:
        return ""
    nsub, nneg = int(bands["below_noise"].astype(bool).sum()), int((bands["volume"] < 0).sum())
    if not (nsub or nneg):
        return ""
    return f", {max(nsub, nneg)} below noise ({nneg} negative): not measurements, see the qc column"


def ladder_notes(res, params) -> list[str]:
    """What the library leaves unsaid about molecular weights: the sample lanes on a membrane
    piece with no ladder lane get no ``mw_kda`` (the ladder calibrates its own piece only)."""
    if not (getattr(params, "ladder_kda", None) or getattr(params, "ladder", None)) or not len(res.bands):
        return []
    lanes = res.lanes
    if "piece" not in lanes or not lanes["is_ladder"].astype(bool).any():
        return []
    with_ladder = set(lanes.loc[lanes["is_ladder"].astype(bool), "piece"])
    out = []
    for piece, g in lanes[~lanes["is_ladder"].astype(bool)].groupby("piece"):
        if piece in with_ladder:
            continue
        b = res.bands[res.bands["lane"].isin(g["lane"])]
        if len(b) and b["mw_kda"].isna().all():
            ln = sorted(int(v) for v in g["lane"])
            span = f"{ln[0]}-{ln[-1]}" if len(ln) > 1 else str(ln[0])
            out.append(f"lanes {span} (piece {int(piece)}) have no ladder on their piece: no molecular "
                       f"weights (mw_kda) there; a ladder lane on that piece would give them")
    return out


def _detect(img, params, name, plot, plot_state, token):
    """Worker body (thread): the library's detection, with the command line's checks, and the
    lanes' profiles for the plot; ``(result, traces)``."""
    validate_image(img)
    res = quantify_blot(img, params, name=name)
    if len(res.lanes) == 0:
        raise ImageReadError(img.path, NO_LANES)
    token.check()
    regions = res.regions if res.regions is not None else regions_from_bands(res.bands)
    traces = lane_traces(img, res.lane_geometry, regions, params)
    token.check()
    return res, traces, _render_plots(plot, traces, plot_state[0], res.bands, None, "", plot_state[1])


def _quantify(img, name, params, spec, lane_outlines, band_outlines, known, shown_lanes, prev_bands, plot,
              plot_state, token):
    """Worker body (thread) of Quantify: the user's outlines to lanes and regions, the library's
    measurement, the rows followed through the edits, the normalisation and the lane profiles,
    with a cancel check between the stages. Returns a SimpleNamespace (``res``, ``norm``,
    ``unassigned``, ``rows`` = (target, control) as renumbered, ``note``, ``traces``)."""
    lanes = lanes_from_outlines(lane_outlines, img.data.shape, ladder_lane=params.ladder_lane, known=shown_lanes)
    token.check()
    regions, unassigned = regions_from_outlines(band_outlines, lanes, known=known, known_lanes=shown_lanes)
    token.check()
    res = measure(img, lanes, regions, params, name=name)
    token.check()
    target, control = list(spec.target_rows or []), list(spec.control_rows or [])
    if prev_bands is not None:
        mapping = match_rows(prev_bands, res.bands)
        lost = [r for r in target + control if r not in mapping]
        if lost:
            raise ValueError(f"row(s) {', '.join(map(str, lost))} no longer hold any band")
        target, control = [mapping[r] for r in target], [mapping[r] for r in control]
    spec = replace(spec, target_rows=target or None, control_rows=control or None)
    norm, note = None, ""
    if spec.target_rows or spec.target_kda:
        if spec.target_rows:
            ref, note = default_reference_lane(res.lanes, res.bands, spec.target_rows, spec.control_rows or [],
                                               spec.reference_lane)
            if spec.reference_lane is None and ref is not None:
                spec = replace(spec, reference_lane=ref)
        measured = SimpleNamespace(lanes=res.lanes, bands=res.bands, image_row={"image": name})
        norm = normalize_blot(measured, spec, params)[0]
    token.check()
    traces = lane_traces(img, res.lane_geometry, res.regions, params)
    token.check()
    pixels = _render_plots(plot, traces, plot_state[0], res.bands, norm, note or "", plot_state[1])
    return SimpleNamespace(res=res, norm=norm, unassigned=unassigned, rows=(target, control), note=note or "",
                           traces=traces, plot=pixels)


def _fill_shapes(layer, shapes, shape_type, feats, edge, face):
    """Replace the shapes and features of ``layer`` in place; the edge width the user chose for
    the layer (its current one) is kept. Shapes that are where they were (Quantify on boxes the
    user left alone) are not re-set: napari rebuilds every mesh when the data is set."""
    width = float(layer.current_edge_width)
    layer.selected_data = set()
    old = layer.data
    same = len(old) == len(shapes) and all(
        np.shape(o)[-1] == 2 and np.shape(o) == np.shape(n) and np.allclose(np.asarray(o, float), n, atol=1e-9)
        for o, n in zip(old, shapes)) and list(layer.shape_type) == [shape_type] * len(shapes)
    if not same:
        layer.data = (list(shapes), [shape_type] * len(shapes)) if len(shapes) else []
    layer.features = feats.reset_index(drop=True)
    if len(shapes):
        layer.edge_color = edge if isinstance(edge, str) else np.asarray([to_rgba(c) for c in edge], float)
        layer.face_color = face if isinstance(face, str) else np.asarray([to_rgba(c) for c in face], float)
        if not same:
            layer.edge_width = [width] * len(shapes)


def _plot_lane(traces, lane):
    """The lane a profile plot shows: ``lane`` (text) if it has a profile, else the first one."""
    if lane and lane.isdigit() and int(lane) in traces:
        return int(lane)
    return min(traces) if traces else None


def _render_plots(plot, traces, lane, bands, normalized, note, background_name):
    """Pixels of the two plots (lane profile; normalised values), drawn on a figure of their own
    (a worker may call this)."""
    lane = _plot_lane(traces, lane)

    def draw(axes):
        ax1, ax2 = axes
        if lane is not None:
            tr = traces[lane]
            ax1.plot(tr["y_px"], tr["profile"], color="#d0d0d0", lw=1, label="lane profile")
            ax1.plot(tr["y_px"], tr["background"], color="#5fb3ff", lw=1, label="background")
            for b in bands[bands["lane"] == lane].itertuples():
                ax1.axvspan(b.y_top_px, b.y_bottom_px, color="red" if b.saturated else "yellow", alpha=0.25)
            ax1.set_title(f"lane {lane}: profile and {background_name} background", fontsize=9)
            ax1.set_xlabel("row (px)", fontsize=8)
            ax1.legend(fontsize=7, facecolor="#262930", labelcolor="#d0d0d0", loc="upper right")
        n = normalized
        if n is not None and len(n):
            cols = ["#ff5050" if s else "#5fb3ff" for s in n["target_saturated"]]
            ax2.bar(n["lane"].astype(str), n["relative"].fillna(0.0), color=cols)
            for i, (v, ratio) in enumerate(zip(n["relative"], n["ratio"])):
                if not np.isfinite(v):
                    # no target (or control) band in this lane, or none in the reference lane
                    ax2.text(i, 0.05, "no band" if not np.isfinite(ratio) else "no reference", rotation=90,
                             ha="center", va="bottom", fontsize=7, color="#ffb060")
            ax2.axhline(1.0, color="#d0d0d0", lw=0.8, ls="--")
            ctrl = n["control"].iloc[0]
            ax2.set_title(f"row(s) {n['target_rows'].iloc[0]} / {ctrl}, relative to lane "
                          f"{int(n['reference_lane'].iloc[0])} (red: saturated)", fontsize=9)
            if note:
                ax2.set_xlabel(note[:90] + ("…" if len(note) > 90 else ""), fontsize=7, color="#ffb060")
            else:
                ax2.set_xlabel("lane", fontsize=8)
            ax2.set_ylabel("relative", fontsize=8)
        else:
            ax2.set_title("normalised values: enter target rows and press Quantify", fontsize=9)

    return plot.render(draw)


def _write_report(folder, name, result, img, params, normalized, provenance) -> Path:
    """Worker body (thread) of Report: the library's session report of the blot as quantified."""
    from exoimage.blot import draw_blot_overlay
    from exoimage.experiment.records import blot_record_from_result
    from exoimage.experiment.run import write_session_report

    rec = blot_record_from_result(name, result, img, params=params, normalized=normalized, provenance=provenance)
    return write_session_report(folder, [rec], name=f"napari: {name}",
                                overlays={rec.rel: draw_blot_overlay(img, result)})


class BlotWidget(BackgroundJobs, QWidget):
    """Dock widget: Western blot lanes, bands, QC and normalisation for one image layer."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.image_layer = None
        self.lanes_layer = None
        self.bands_layer = None
        self.detected = None        # BlotResult of the last detection
        self.result = None          # BlotResult of the last Quantify
        self.normalized = None      # DataFrame (NORMALIZED_COLUMNS) or None
        self.traces = {}
        self._img = None
        self._init_jobs()
        self._rows_basis = None     # the bands table whose row numbers the user sees
        self._shown_lanes = []      # the lanes the Shapes layers were drawn from
        self.reference_note = ""    # why the normalised values have no reference, or ""
        self._warned = set()        # the warnings already notified for this image

        lay = QVBoxLayout(self)
        form = QFormLayout()
        self._add_layer_combo(form, "2-D grey image layer of a blot (raw file from the imager if you have it)")
        lay.addLayout(form)
        # every blot parameter, generated from BlotParams' metadata (rules, units, help)
        self.blot_form = ParamForm(BlotParams)
        lay.addWidget(self.blot_form.widget)
        ed = self.blot_form.editors
        self.polarity, self.background, self.n_lanes = ed["polarity"], ed["background"], ed["n_lanes"]
        self.min_snr, self.ladder_lane, self.ladder_kda = ed["min_snr"], ed["ladder_lane"], ed["ladder_kda"]

        self._add_run_controls(lay, "Detect lanes && bands")

        qbox = QGroupBox("Quantify the lanes and bands as drawn")
        qf = QFormLayout(qbox)
        # what to normalise: every field of NormalizationSpec, from its metadata
        self.norm_form = ParamForm(NormalizationSpec, advanced_title="By weight, control images")
        qf.addRow(self.norm_form.widget)
        ed = self.norm_form.editors
        self.target_rows, self.control_rows = ed["target_rows"], ed["control_rows"]
        self.reference_lane = ed["reference_lane"]
        self.target_rows.setPlaceholderText("e.g. 1")
        self.control_rows.setPlaceholderText("e.g. 7 (empty: no loading control)")
        self.quantify_btn = QPushButton("Quantify")
        self.quantify_btn.setToolTip("Measure the lanes and band boxes as they are now: move, resize, add or "
                                     "delete them in the Shapes layers first")
        qf.addRow(self.quantify_btn)
        lay.addWidget(qbox)
        self.status = QLabel("Choose a blot image and press Detect.")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        # the library's warnings about the image and the analysis (8-bit, JPEG, ladder, ...)
        self.warnings_label = QLabel("")
        self.warnings_label.setWordWrap(True)
        self.warnings_label.setStyleSheet("color: #ffb060")
        lay.addWidget(self.warnings_label)

        rbox = QGroupBox("Results")
        rl = QVBoxLayout(rbox)
        prow = QHBoxLayout()
        prow.addWidget(QLabel("Profile of lane"))
        self.profile_lane = QComboBox()
        prow.addWidget(self.profile_lane, 1)
        rl.addLayout(prow)
        self.plots = PlotImage(2, height=1.9)
        rl.addWidget(self.plots.widget)
        self.band_table = QTableWidget(0, len(BAND_TABLE_COLUMNS))
        self.band_table.setHorizontalHeaderLabels(BAND_TABLE_COLUMNS)
        self.band_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.band_table.setSortingEnabled(True)
        sort_ascending(self.band_table)
        self.band_table.setMinimumHeight(150)
        rl.addWidget(self.band_table)
        lay.addWidget(rbox, 1)

        erow = QHBoxLayout()
        self.export_btn = QPushButton("Export CSV…")
        self.export_btn.setToolTip("bands.csv, lanes.csv and (with target rows) normalized.csv, "
                                   "with the command line's columns")
        self.report_btn = QPushButton("Report…")
        self.report_btn.setEnabled(False)
        self.report_btn.setToolTip(REPORT_TOOLTIP)
        erow.addWidget(self.export_btn)
        erow.addWidget(self.report_btn)
        lay.addLayout(erow)
        self.quantify_btn.setEnabled(False)
        self.export_btn.setEnabled(False)
        self.report_btn.setEnabled(False)

        self.run_btn.clicked.connect(self._slot(self.detect, "detection"))
        self.quantify_btn.clicked.connect(self._slot(self.quantify, "quantifying"))
        self.export_btn.clicked.connect(self._slot(self._export_dialog, "export"))
        self.report_btn.clicked.connect(self._slot(self._report_dialog, "the report"))
        self.profile_lane.currentTextChanged.connect(self._slot(self._draw_plots, "drawing the profile"))
        self.band_table.cellClicked.connect(lambda row, _col: self._slot(lambda: self._row_clicked(row),
                                                                         "going to the band")())
        self._refresh_layers()

    # ------------------------------------------------------------------ helpers

    def params(self) -> BlotParams:
        """The blot parameters of the form (raises :class:`FormError`, in the form's words)."""
        return self.blot_form.params()

    def norm_spec(self) -> NormalizationSpec:
        """What to normalise, from the form (raises :class:`FormError`, in the form's words)."""
        return self.norm_form.params()

    def _error(self, message: str):
        """Show an error; parameters it names are called by the forms' labels."""
        super()._error(gui_words(message, self.blot_form, self.norm_form))

    def _geometry(self):
        ly = self.image_layer
        kw = dict(scale=tuple(ly.scale), translate=tuple(ly.translate))
        if hasattr(ly, "units"):
            kw["units"] = tuple(str(u) for u in ly.units)
        return kw

    # ------------------------------------------------------------------ detection

    def detect(self):
        """Find lanes and bands in a background thread; results become two editable Shapes layers."""
        if self.busy:
            return
        layer = self._layer()
        if layer is None:
            self._error("no image layer: open a blot (File > Open) or the sample "
                        "(File > Open Sample > exoimage)")
            return
        try:
            params = self.params()
            img = image_from_layer(layer, None)
        except (ImageReadError, ValueError) as exc:
            self._error(str(exc))
            return
        self.image_layer, self._img, self._name = layer, img, layer_name_for_tables(layer)
        self._start_job(_detect, (img, params, self._name, self.plots, self._plot_state()), self._on_detected,
                        desc=f"exoimage: finding lanes and bands in {layer.name}",
                        status=f"Finding lanes and bands in {layer.name}…")

    def _show_warnings(self, res, params):
        """The library's warnings of ``res`` and the plugin's notes on it: in the dock (all of them)
        and as notifications (those not shown for this image before)."""
        notes = [str(x) for x in res.warnings if getattr(x, "code", None) not in CALIBRATION_ONLY_WARNINGS]
        notes += ladder_notes(res, params)
        notes = list(dict.fromkeys(notes))
        self.warnings_label.setText("\n".join(f"⚠ {m}" for m in notes))
        self.warnings_label.setToolTip("warnings of the exoimage library about this image and its analysis")
        for m in notes:
            if m not in self._warned:
                self._warned.add(m)
                notify_warning(f"{self._name}: {m}")

    def _on_detected(self, out):
        res, traces, pixels = out
        self._warned = set()
        self._show_warnings(res, res.params or self.params())
        self.detected, self.result, self.normalized, self.traces = res, None, None, traces
        self._rows_basis = res
        self.export_btn.setEnabled(False)
        self.report_btn.setEnabled(False)
        self._draw_shapes(res.lane_geometry, res.bands, res.regions)
        self._show_result(res, pixels)
        self.quantify_btn.setEnabled(True)
        sat = int(res.bands["saturated"].sum())
        self.status.setText(
            f"{len(res.lanes)} lanes, {len(res.bands)} bands in {res.bands.loc[res.bands['row'] > 0, 'row'].nunique()}"
            f" rows ({res.polarity}), {sat} saturated{_flag_note(res.bands)}. Move, resize, add or delete lanes "
            f"and bands in the "
            f"Shapes layers, choose the rows, then press Quantify.")

    # ------------------------------------------------------------------ shapes

    def _draw_shapes(self, lanes, bands: pd.DataFrame, regions: pd.DataFrame | None = None):
        """Show library geometry in the lanes and bands Shapes layers: the existing layers are
        updated in place (same layer objects, their style, the active layer kept), created only
        when missing; the bands' features carry the bands table and what was recorded about each
        region."""
        self._shown_lanes = list(lanes)
        base = self.image_layer.name
        lane_polys = [lane_outline(ln) for ln in lanes]
        lane_feats = pd.DataFrame({"lane": [ln.lane for ln in lanes], "is_ladder": [ln.is_ladder for ln in lanes]})
        lane_edge = [LADDER_COLOR if ln.is_ladder else LANE_COLOR for ln in lanes]
        by_lane = {ln.lane: ln for ln in lanes}
        boxes = [band_outline(by_lane[int(b.lane)], b.y_top_px, b.y_bottom_px) for b in bands.itertuples()]
        colors = [SATURATED_COLOR if b.saturated else (LOW_SNR_COLOR if b.low_snr else BAND_COLOR)
                  for b in bands.itertuples()]
        faces = [(1, 0, 0, 0.35) if c == SATURATED_COLOR else (0, 0, 0, 0) for c in colors]
        feats = bands.drop(columns=[c for c in ("piece",) if c in bands]).reset_index(drop=True)
        if regions is not None and len(regions) == len(feats):
            extra = [c for c in REGION_COLUMNS if c not in feats]
            feats = pd.concat([feats, regions[extra].reset_index(drop=True)], axis=1)
        # row numbers (what Target/Control rows refer to) beside each row's rightmost band
        feats["tag"] = ""
        rowed = feats[feats["row"] > 0]
        if len(rowed):
            feats.loc[rowed.groupby("row")["lane"].idxmax().to_numpy(), "tag"] = \
                "r" + rowed.loc[rowed.groupby("row")["lane"].idxmax(), "row"].astype(str).to_numpy()
        new = []
        if self._gone(self.lanes_layer):
            self.lanes_layer = self._new_shapes(f"{base} lanes", lane_feats, 2.0, {
                "string": "{lane}", "color": "lime", "size": 10, "anchor": "upper_left", "translation": [-12, 0]})
            new.append(self.lanes_layer)
        if self._gone(self.bands_layer):
            self.bands_layer = self._new_shapes(f"{base} bands", feats, 1.5, {
                "string": "{tag}", "color": "cyan", "size": 10, "anchor": "upper_right", "translation": [6, 16]})
            new.append(self.bands_layer)
        _fill_shapes(self.lanes_layer, lane_polys, "polygon", lane_feats, lane_edge, "transparent")
        _fill_shapes(self.bands_layer, boxes, "rectangle", feats, colors, faces)
        if new:
            self.viewer.layers.selection.active = new[0]

    def _new_shapes(self, name, feats, width, text):
        """An empty Shapes layer at the image's geometry, with the columns of ``feats``."""
        ly = self.viewer.add_shapes(None, shape_type="polygon", name=name, face_color="transparent",
                                    edge_width=width, features=feats.iloc[:0], text=text, **self._geometry())
        ly.current_edge_width = width
        return ly

    def _shapes_data(self, layer):
        """Shapes vertices in the image's pixel coordinates."""
        return [np.asarray(d, float)[:, -2:] for d in layer.data]

    # ------------------------------------------------------------------ quantify

    def quantify(self):
        """Measure the lanes and bands as drawn now and normalise if rows are given, in a background
        thread (busy bar, Cancel); the layers, table and plots are updated when it returns."""
        if self.busy:
            return
        if self._img is None or self.lanes_layer is None:
            self._error("nothing to quantify: detect lanes and bands first")
            return
        gone = [ly.name for ly in (self.lanes_layer, self.bands_layer) if self._gone(ly)]
        if gone:
            self._error(f'{self._name}: the Shapes layer {" and ".join(map(repr, gone))} was deleted, nothing to '
                        f'quantify: press "Detect lanes & bands" again (edits made in it are lost)')
            return
        if self._gone(self.image_layer):
            self._error(f'{self._name}: the image layer "{self.image_layer.name}" was deleted: open the blot '
                        f'again and press "Detect lanes & bands"')
            return
        try:
            params, spec = self.params(), self.norm_spec()
        except ValueError as exc:
            self._error(f"{self._name}: {exc}")
            return
        feats = self.bands_layer.features.copy()
        known = feats if {"lane", "y_top_px", "y_bottom_px"} <= set(feats.columns) else None
        prev = self._rows_basis.bands if self._rows_basis is not None else None
        args = (self._img, self._name, params, spec, self._shapes_data(self.lanes_layer),
                self._shapes_data(self.bands_layer), known, list(self._shown_lanes), prev, self.plots,
                self._plot_state())
        self._start_job(_quantify, args, lambda out: self._on_quantified(out, params, spec),
                        desc=f"exoimage: quantifying {self._name}", status=f"Quantifying {self._name}…")

    def _on_quantified(self, out, params, spec):
        res, norm = out.res, out.norm
        if self._gone(self.image_layer):
            self._error(f'{self._name}: the image layer "{self.image_layer.name}" was deleted while quantifying: '
                        f'open the blot again and press "Detect lanes & bands"')
            return
        self._say_renumbered(list(spec.target_rows or []), list(spec.control_rows or []), *out.rows)
        self.reference_note = out.note
        if out.note:
            notify_warning(f"{self._name}: {out.note}")
        if out.unassigned:
            notify_warning(f"{self._name}: {len(out.unassigned)} band box(es) lie in no lane and were ignored")
        self.result, self.normalized, self.traces = res, norm, out.traces
        self._show_warnings(res, params)
        self._rows_basis = res
        self._draw_shapes(res.lane_geometry, res.bands, res.regions)
        self._show_result(res, out.plot)
        self.export_btn.setEnabled(True)
        self.report_btn.setEnabled(True)
        sat = int(res.bands["saturated"].sum())
        msg = f"Quantified {len(res.bands)} bands in {len(res.lanes)} lanes; {sat} saturated{_flag_note(res.bands)}"
        if norm is not None:
            msg += f"; normalised row(s) {norm['target_rows'].iloc[0]} to lane {int(norm['reference_lane'].iloc[0])}"
            if norm["target_saturated"].any():
                msg += " (saturated target bands: values are underestimates)"
            if self.reference_note:
                msg += f"; {self.reference_note}"
        self.status.setText(msg + ".")
        notify_info(f"{self._name}: {msg}")

    def _say_renumbered(self, target, control, new_t, new_c):
        """The chosen rows renumbered like the new result (adding or deleting a band can
        shift row numbers; the user means the same proteins): the form follows, and says so."""
        if (new_t, new_c) != (target, control):
            self.target_rows.setText(",".join(map(str, new_t)))
            self.control_rows.setText(",".join(map(str, new_c)))
            notify_info(f"{self._name}: rows renumbered after your edits: target {','.join(map(str, target))}"
                        f" is now {','.join(map(str, new_t))}"
                        + (f", control {','.join(map(str, control))} is now {','.join(map(str, new_c))}"
                           if control else ""))

    # ------------------------------------------------------------------ display

    def _show_result(self, res, pixels=None):
        """Table, lane choice and plots of ``res``; ``pixels``: the plots as a worker drew them."""
        b = res.bands
        # saturated: dark red; negative or sub-noise volume (below_noise) or low SNR: dark orange
        below = b["below_noise"] if "below_noise" in b else b["low_snr"] & False
        colors = ["#7a1f1f" if s else ("#6b4a10" if (lo or bn) else None)
                  for s, lo, bn in zip(b["saturated"], b["low_snr"], below)]
        b = b.assign(qc=band_qc(b))
        fill_table(self.band_table, b, BAND_TABLE_COLUMNS, row_colors=colors,
                   formats={"volume": "{:.4g}", "background": "{:.4g}", "snr": "{:.1f}", "mw_kda": "{:.1f}",
                            "y_px": "{:.1f}"})
        cur = self.profile_lane.currentText()
        self.profile_lane.blockSignals(True)
        self.profile_lane.clear()
        self.profile_lane.addItems([str(k) for k in sorted(self.traces)])
        if cur in [str(k) for k in self.traces]:
            self.profile_lane.setCurrentText(cur)
        self.profile_lane.blockSignals(False)
        if pixels is not None:
            self.plots.show(pixels)
        else:
            self._draw_plots()

    def _plot_state(self):
        """What the plots show, as plain values a worker can draw from: (lane, background name)."""
        return self.profile_lane.currentText(), self.background.currentText()

    def _draw_plots(self):
        """Redraw the plots for the lane chosen now (the combo box; on the GUI thread: one plot)."""
        res = self.result or self.detected
        if res is None:
            return
        lane, bg = self._plot_state()
        self.plots.show(_render_plots(self.plots, self.traces, lane, res.bands, self.normalized,
                                      self.reference_note, bg))

    def _row_clicked(self, row, col=0):
        res = self.result or self.detected
        item = self.band_table.item(row, 0)
        if res is None or item is None:
            return
        b = res.bands[res.bands["band_id"] == int(item.text())]
        if b.empty:
            return
        b = b.iloc[0]
        ln = next(x for x in res.lane_geometry if x.lane == int(b["lane"]))
        y = float(b["y_px"])
        x = ln.x_center_px + ln.slope * (y - ln.y_ref_px)
        camera(self.viewer).center = tuple(float(v) for v in self.image_layer.data_to_world((y, x)))
        self.profile_lane.setCurrentText(str(int(b["lane"])))

    # ------------------------------------------------------------------ export

    def export(self, folder) -> list[Path]:
        """Write bands.csv, lanes.csv and (if normalised) normalized.csv into ``folder``."""
        if self.result is None:
            raise ValueError("nothing to export: press Quantify first")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        out = [folder / "bands.csv", folder / "lanes.csv"]
        write_table(self.result.bands[BAND_COLUMNS], out[0])
        write_table(self.result.lanes[LANE_COLUMNS], out[1])
        if self.normalized is not None:
            out.append(folder / "normalized.csv")
            write_table(self.normalized[NORMALIZED_COLUMNS], out[2])
        return out

    def write_report(self, folder) -> Path:
        """The QC report for the blot as last quantified, by the library."""
        return _write_report(folder, *self._report_args())

    def _report_args(self):
        """What the report is made of, as last quantified (main thread)."""
        from dataclasses import asdict

        if self.result is None:
            raise ValueError("nothing to report: press Quantify first")
        params = getattr(self.result, "params", None) or self.params()
        return (self._name, self.result, self._img, params, self.normalized,
                layer_provenance(self.image_layer, {"blot": asdict(params)}))

    _report_writer = staticmethod(_write_report)

    def _export_dialog(self):
        folder = QFileDialog.getExistingDirectory(self, "Export blot tables into folder")
        if not folder:
            return
        try:
            paths = self.export(folder)
        except (OSError, ValueError) as exc:
            self._error(f"{folder}: cannot write tables ({exc})")
            return
        self._succeeded()
        self.status.setText("Wrote " + ", ".join(p.name for p in paths) + f" to {folder}")
        notify_info(f"wrote {len(paths)} tables to {folder}")
