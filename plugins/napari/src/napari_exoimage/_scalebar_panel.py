"""Scale-bar panel of the vesicle widget: what the reader read off the burned-in bar, boxed on the
image, and the fallback of drawing a line over the bar and typing its length.

The reading itself is :func:`exoimage.io.read_image` ``(..., scale_bar="auto")``'s (the reader keeps
it in the layer's metadata); this panel only shows it and measures the drawn line.
"""

from __future__ import annotations

import math

import numpy as np
from qtpy.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                            QPushButton)

from exoimage.params import check_value
from exoimage.scalebar import LOW_CONFIDENCE
from exoimage.tem import PIXEL_SIZE_META

from ._common import META_KEY

#: the calibration source of a pixel size measured on a line drawn over the bar (registered in
#: exoimage.calibration, trusted: the user measured it)
DRAWN_SOURCE = "scale_bar_drawn"
UNITS_NM = {"nm": 1.0, "µm": 1000.0, "Å": 0.1}


def reading_boxes_name(layer) -> str:
    return f"{layer.name} scale bar read"


def line_layer_name(layer) -> str:
    return f"{layer.name} scale bar line"


class ScaleBarPanel(QGroupBox):
    """The reading of the image layer's scale bar, and a hand calibration from a drawn line.

    ``on_calibrated(layer, nm_per_px, source)`` is called when the drawn line calibrates the layer;
    ``on_error(message)`` shows a problem.
    """

    def __init__(self, viewer, on_calibrated, on_error):
        super().__init__("Scale bar")
        self.viewer = viewer
        self._on_calibrated = on_calibrated
        self._on_error = on_error
        self.layer = None
        form = QFormLayout(self)
        self.reading = QLabel("no image")
        self.reading.setWordWrap(True)
        form.addRow("Read", self.reading)
        self.draw_btn = QPushButton("Draw a line over the bar")
        self.draw_btn.setToolTip("Adds a Shapes layer in line mode: drag from one end of the scale bar to the "
                                 "other, then type the length its label says and press Calibrate")
        form.addRow(self.draw_btn)
        row = QHBoxLayout()
        self.length = QDoubleSpinBox()
        self.length.setDecimals(3)
        self.length.setRange(0.0, 1e6)
        self.length.setSpecialValueText("type it")
        self.length.setToolTip("The length written on the scale bar's label")
        self.unit = QComboBox()
        self.unit.addItems(list(UNITS_NM))
        row.addWidget(self.length, 1)
        row.addWidget(self.unit)
        form.addRow("Bar length", row)
        self.apply_btn = QPushButton("Calibrate from the line")
        self.apply_btn.setToolTip("Pixel size = typed length / length of the drawn line; the image layer "
                                  "is put at that scale")
        form.addRow(self.apply_btn)
        self.draw_btn.clicked.connect(self.start_line)
        self.apply_btn.clicked.connect(self.calibrate_from_line)

    # ------------------------------------------------------------------ the reading

    def show_layer(self, layer) -> None:
        """Show what the reader read off ``layer``'s scale bar, boxed in a Shapes layer."""
        self.layer = layer
        if layer is None:
            self.reading.setText("no image")
            return
        meta = layer.metadata.get(META_KEY, {})
        sb = meta.get("scale_bar") or {}
        text = sb.get("scale_bar_text")
        nm_px = sb.get("scale_bar_nm_per_px")
        if text and nm_px:
            conf = float(sb.get("scale_bar_confidence") or 0.0)
            msg = (f"'{text}' over {float(sb.get('scale_bar_length_px')):.1f} px = {float(nm_px):.4g} nm/px "
                   f"(confidence {conf:.2f})")
            if conf < LOW_CONFIDENCE:
                msg += " LOW CONFIDENCE: check the boxes, or draw a line over the bar"
            if meta.get("pixel_size_source") not in ("scale_bar", None):
                msg += f"; the pixel size used is the file's ({meta.get('pixel_size_source')})"
            self.reading.setText(msg)
            self.reading.setStyleSheet("color: #ff6060" if conf < LOW_CONFIDENCE else "")
        else:
            why = sb.get("scale_bar_check") or next(
                (str(w) for w in meta.get("warnings", []) if "scale bar" in str(w)), "no scale bar read")
            self.reading.setText(f"{why}; draw a line over the bar and type its length")
            self.reading.setStyleSheet("")
        self._show_boxes(layer, sb)

    def _show_boxes(self, layer, sb) -> None:
        boxes, what, colours = [], [], []
        for key, name, colour in (("scale_bar_box", "bar", "lime"), ("scale_bar_label_box", "label", "cyan")):
            b = sb.get(key)
            if b is None:
                continue
            if isinstance(b, str):
                b = [int(v) for v in b.split()]
            r0, c0, r1, c1 = (float(v) for v in b)
            # boxes are end-exclusive pixel indices; napari pixel centres sit on integers
            boxes.append(np.array([[r0 - 0.5, c0 - 0.5], [r1 - 0.5, c1 - 0.5]]))
            what.append(f"{name}: {sb.get('scale_bar_text')}" if name == "label" else
                        f"{name}: {float(sb.get('scale_bar_length_px') or 0):.1f} px")
            colours.append(colour)
        name = reading_boxes_name(layer)
        existing = self.viewer.layers[name] if name in self.viewer.layers else None
        if not boxes:
            if existing is not None:
                existing.data = []
            return
        if existing is None:
            self.viewer.add_shapes(boxes, shape_type="rectangle", edge_color=colours, face_color="transparent",
                                   edge_width=max(2.0, 0.002 * max(layer.data.shape[-2:])), name=name,
                                   features={"what": what}, text={"string": "{what}", "color": "yellow"},
                                   scale=tuple(layer.scale[-2:]), translate=tuple(layer.translate[-2:]))
        else:
            existing.data = []
            existing.features = {"what": []}
            existing.add_rectangles(boxes, edge_color=colours)
            existing.features = {"what": what}
            existing.scale = tuple(layer.scale[-2:])
            existing.translate = tuple(layer.translate[-2:])

    # ------------------------------------------------------------------ drawn line

    def start_line(self) -> None:
        """A Shapes layer in line mode over the image, to draw along the bar."""
        layer = self.layer
        if layer is None:
            self._on_error("no image layer: open a micrograph first")
            return
        name = line_layer_name(layer)
        if name in self.viewer.layers:
            lines = self.viewer.layers[name]
        else:
            lines = self.viewer.add_shapes(name=name, edge_color="magenta", edge_width=2.0,
                                           scale=tuple(layer.scale[-2:]), translate=tuple(layer.translate[-2:]))
        self.viewer.layers.selection.active = lines
        lines.mode = "add_line"

    def line_length_px(self) -> float | None:
        """Length in image pixels of the last line drawn over the bar, or None."""
        layer = self.layer
        name = line_layer_name(layer) if layer is not None else None
        if name is None or name not in self.viewer.layers:
            return None
        lines = self.viewer.layers[name]
        for data, kind in zip(reversed(lines.data), reversed(lines.shape_type)):
            if kind not in ("line", "path") or len(data) < 2:
                continue
            ends = np.asarray(data)[[0, -1], -2:]
            # shape coordinates -> world -> the image's pixels (the layers' scales may differ)
            world = ends * np.asarray(lines.scale[-2:]) + np.asarray(lines.translate[-2:])
            px = (world - np.asarray(layer.translate[-2:])) / np.asarray(layer.scale[-2:])
            return float(math.hypot(*(px[1] - px[0])))
        return None

    def calibrate_from_line(self) -> float | None:
        """Pixel size from the drawn line and the typed length; calibrates the layer. Returns nm/px."""
        layer = self.layer
        if layer is None:
            self._on_error("no image layer: open a micrograph first")
            return None
        length_px = self.line_length_px()
        if not length_px or length_px < 2:
            self._on_error("draw a line over the scale bar first (Draw a line over the bar), from end to end")
            return None
        if self.length.value() <= 0:
            self._on_error("type the length written on the scale bar (Bar length)")
            return None
        nm = self.length.value() * UNITS_NM[self.unit.currentText()]
        px = nm / length_px
        try:
            check_value("Pixel size (nm)", px, PIXEL_SIZE_META)
        except Exception as exc:  # noqa: BLE001 - ParamError: shown in the widget
            self._on_error(f"{nm:g} nm over {length_px:.1f} px = {px:.4g} nm/px: {getattr(exc, 'problem', exc)}")
            return None
        self.reading.setText(f"drawn line: {self.length.value():g} {self.unit.currentText()} over "
                             f"{length_px:.1f} px = {px:.4g} nm/px")
        self.reading.setStyleSheet("")
        self._on_calibrated(layer, px, DRAWN_SOURCE)
        for name in (line_layer_name(layer), reading_boxes_name(layer)):  # keep them over the image
            if name in self.viewer.layers:
                self.viewer.layers[name].scale = tuple(layer.scale[-2:])
                self.viewer.layers[name].translate = tuple(layer.translate[-2:])
        return px
