"""The TEM pipeline on one image or file: what every front end (CLI, batch, plugin) runs.

:func:`analyze_tem_file` = :func:`exoimage.io.read_image` (with the scale-bar
step: calibration from a burned-in bar, its cross-check against the file's
calibration and the annotation mask) + :func:`analyze_tem_image` (detection,
measurement, the per-image row). Errors become an error row, never an
exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..io import Image, ImageReadError, read_image, validate_image
from .detect import detect_vesicles
from .measure import summarize_diameters
from .params import NO_PIXEL_SIZE, TemParams

__all__ = ["IMAGE_COLUMNS", "TemFileResult", "analyze_tem_image", "analyze_tem_file"]

IMAGE_COLUMNS = [
    "image", "status", "error", "width_px", "height_px", "pixel_size_nm", "pixel_size_source",
    "polarity", "n_vesicles", "n_border", "diameter_mean_nm", "diameter_median_nm",
    "diameter_sd_nm", "d10_nm", "d50_nm", "d90_nm", "scale_bar_text", "scale_bar_length_px",
    "scale_bar_confidence", "scale_bar_box", "warnings",
]

_SCALE_BAR_KEYS = ("scale_bar_text", "scale_bar_length_px", "scale_bar_confidence", "scale_bar_box")


@dataclass
class TemFileResult:
    """Result of the TEM pipeline on one file (what every front end consumes)."""

    image_row: dict
    vesicles: pd.DataFrame | None = None
    labels: np.ndarray | None = None
    display: np.ndarray | None = None
    pixel_size_nm: float | None = None
    outlines: list = field(default_factory=list)
    #: the image's warnings (:class:`~exoimage.warning_codes.CodedWarning`; their text is ``image_row['warnings']``)
    warnings: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.image_row.get("status") == "ok"


def _error_row(name, message, img: Image | None = None) -> dict:
    row = {c: None for c in IMAGE_COLUMNS}
    row.update(image=name, status="error", error=message, n_vesicles=0, n_border=0)
    if img is not None:
        row.update(width_px=img.data.shape[1] if img.data.ndim >= 2 else None,
                   height_px=img.data.shape[0], pixel_size_nm=img.pixel_size_nm,
                   pixel_size_source=img.pixel_size_source, warnings="; ".join(img.warnings))
        row.update(_scale_bar_fields(img))
    return row


def analyze_tem_image(img: Image, params: TemParams | None = None, name: str | None = None,
                      exclude_mask: np.ndarray | None = None) -> TemFileResult:
    """Run the TEM pipeline on an already-read image (the plugin and batch use this).

    ``exclude_mask`` (pixels that are not specimen) defaults to the image's own
    ``annotation_mask`` (found by ``read_image(..., scale_bar='auto')``), else to
    the scale bar, label and databar found here without OCR.
    """
    params = params or TemParams()
    name = name or (img.path or "")
    try:
        validate_image(img)
        if img.pixel_size_nm is None:
            raise ImageReadError(img.path, NO_PIXEL_SIZE)
        if exclude_mask is None:
            exclude_mask = img.annotation_mask if img.annotation_mask is not None else _annotation_mask(img)
        res = detect_vesicles(img, params=params, exclude_mask=exclude_mask)
    except ImageReadError as exc:
        return TemFileResult(image_row=_error_row(name, exc.problem, img), warnings=list(img.warnings))
    table = res.table.copy()
    table["image"] = name
    row = dict(image=name, status="ok", error="", width_px=img.data.shape[1],
               height_px=img.data.shape[0], pixel_size_nm=img.pixel_size_nm,
               pixel_size_source=img.pixel_size_source, polarity=res.polarity,
               warnings="; ".join(img.warnings))
    row.update(summarize_diameters(table))
    row.update(_scale_bar_fields(img))
    return TemFileResult(image_row=row, vesicles=table, labels=res.labels,
                         display=img.displayed(), pixel_size_nm=img.pixel_size_nm,
                         outlines=res.outlines, warnings=list(img.warnings))


def _scale_bar_fields(img: Image) -> dict:
    """The scale-bar reading recorded in the image's metadata (empty when none was read)."""
    out = {k: img.metadata.get(k) for k in _SCALE_BAR_KEYS}
    if out["scale_bar_box"] is not None:
        out["scale_bar_box"] = " ".join(str(int(v)) for v in out["scale_bar_box"])
    return out


def _annotation_mask(img: Image):
    """Scale bar / label / databar pixels, when the scale-bar module is available."""
    try:
        from ..scalebar import annotation_mask
    except ImportError:
        return None
    return annotation_mask(img.data)


def analyze_tem_file(path, pixel_size_nm: float | None = None, params: TemParams | None = None,
                     name: str | None = None, *, max_pixels: int | None = None) -> TemFileResult:
    """Read one file and run the TEM pipeline; errors become an error row, never an exception.

    The file is read with ``read_image(path, pixel_size_nm, max_pixels=max_pixels,
    scale_bar='auto')``: calibrated from a burned-in scale bar when it has no
    pixel size, the bar cross-checked against its own calibration otherwise, and
    the bar, its label and any databar strip kept out of the detection.
    ``max_pixels`` is the pixel budget of :func:`exoimage.io.read_image` (None: its default).
    """
    name = name or str(path)
    try:
        img = read_image(path, pixel_size_nm=pixel_size_nm, max_pixels=max_pixels, scale_bar="auto")
    except ImageReadError as exc:
        return TemFileResult(image_row=_error_row(name, exc.problem))
    return analyze_tem_image(img, params, name)
