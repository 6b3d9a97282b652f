"""Overlay pictures of detections: outlines (green sized, orange border-cut) with their ids."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
from scipy import ndimage

__all__ = ["draw_overlay", "draw_scale_bar", "scale_bar_length_nm"]

#: display range: these percentiles of the image (on a subsample of about
#: DISPLAY_SAMPLE_SIDE px a side) map to black and white
DISPLAY_PERCENTILES = (0.5, 99.5)
DISPLAY_SAMPLE_SIDE = 512
#: outline thickness: 1 px per this many px of the picture's longer side (at least 1)
PX_PER_LINE_WIDTH = 700
#: id label size: OpenCV font scale 1 per PX_PER_FONT_SCALE px of the longer side (at
#: least MIN_FONT_SCALE), and its offset from the vesicle's centroid (px)
PX_PER_FONT_SCALE = 1600
MIN_FONT_SCALE = 0.4
LABEL_OFFSET_PX = (-8, 5)
#: RGB colours of sized and border-cut outlines and of the ids
SIZED_RGB = (0, 230, 0)
BORDER_RGB = (255, 150, 0)
ID_RGB = (255, 255, 0)
#: scale bar: a round length (1, 2 or 5 x 10^k nm) as near as possible to this share of the
#: picture's width, drawn white with a black edge in the lower left corner, its length above it
SCALE_BAR_WIDTH_FRACTION = 0.2
SCALE_BAR_NICE = (1, 2, 5)
SCALE_BAR_RGB = (255, 255, 255)
SCALE_BAR_EDGE_RGB = (0, 0, 0)


def scale_bar_length_nm(width_nm: float) -> float:
    """The round length (1, 2 or 5 x 10^k nm) nearest, on a log scale, to
    ``SCALE_BAR_WIDTH_FRACTION`` of a picture ``width_nm`` wide."""
    target = SCALE_BAR_WIDTH_FRACTION * width_nm
    k = np.floor(np.log10(target))
    choices = [m * 10.0 ** e for e in (k - 1, k, k + 1) for m in SCALE_BAR_NICE]
    return float(min(choices, key=lambda c: abs(np.log(c / target))))


def _bar_label(nm: float) -> str:
    return f"{nm / 1000:g} um" if nm >= 1000 else f"{nm:g} nm"


def draw_scale_bar(rgb: np.ndarray, nm_per_px: float) -> None:
    """Draw a scale bar in place on an RGB picture of ``nm_per_px`` nm per picture pixel."""
    h, w = rgb.shape[:2]
    length_nm = scale_bar_length_nm(w * nm_per_px)
    n = int(round(length_nm / nm_per_px))
    if n < 2 or n >= w:
        return
    thick = max(2, int(round(max(h, w) / 250)))
    x0, y1 = max(2, w // 40), h - max(2, h // 40)
    y0 = y1 - thick
    if y0 < 1:
        return
    cv2.rectangle(rgb, (x0 - 1, y0 - 1), (x0 + n, y1), SCALE_BAR_EDGE_RGB, 1)
    rgb[y0:y1, x0:x0 + n] = SCALE_BAR_RGB
    font = max(MIN_FONT_SCALE, max(h, w) / PX_PER_FONT_SCALE)
    org = (x0, max(10, y0 - thick))
    label = _bar_label(length_nm)
    cv2.putText(rgb, label, org, cv2.FONT_HERSHEY_SIMPLEX, font, SCALE_BAR_EDGE_RGB, max(2, thick), cv2.LINE_AA)
    cv2.putText(rgb, label, org, cv2.FONT_HERSHEY_SIMPLEX, font, SCALE_BAR_RGB, max(1, thick // 2), cv2.LINE_AA)


def _to_uint8(display: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(display[:: max(1, display.shape[0] // DISPLAY_SAMPLE_SIDE),
                                   :: max(1, display.shape[1] // DISPLAY_SAMPLE_SIDE)],
                           list(DISPLAY_PERCENTILES))
    if hi <= lo:
        hi = lo + 1
    # float64 (lo, hi are float64), in place: the same operations, one temporary instead of four
    x = np.subtract(display, lo, dtype=np.float64)
    x /= hi - lo
    x *= 255
    np.clip(x, 0, 255, out=x)
    return x.astype(np.uint8)


def _label_boxes(lab: np.ndarray):
    """(id, (row slice, column slice)) of every nonzero id of ``lab``, in increasing id order."""
    if lab.dtype.kind in "iu" and lab.size and 0 <= lab.min() and lab.max() <= lab.size:
        # (ids up to the pixel count: find_objects keeps a list as long as the largest id)
        return [(i + 1, sl) for i, sl in enumerate(ndimage.find_objects(lab)) if sl is not None]
    out = []  # negative, huge or non-integer ids: one scan of the picture per id
    for vid in np.unique(lab):
        if vid == 0:
            continue
        ys, xs = np.nonzero(lab == vid)
        out.append((vid, (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))))
    return out


def draw_overlay(display: np.ndarray, labels: np.ndarray, table: pd.DataFrame,
                 max_side: int = 2048, *, pixel_size_nm: float | None = None) -> np.ndarray:
    """RGB uint8 picture: outlines (green sized, orange border-cut) with their ids, and a
    scale bar (lower left) when ``pixel_size_nm`` (nm per image pixel) is given."""
    grey = _to_uint8(np.asarray(display, np.float32))
    scale = min(1.0, max_side / max(grey.shape))
    if scale < 1.0:
        # at least 1 px: a 10 x 100000 strip shrinks to 2048 x 0.2 px otherwise
        size = (max(1, int(grey.shape[1] * scale)), max(1, int(grey.shape[0] * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        lab = cv2.resize(labels.astype(np.int32).astype(np.float32), size,
                         interpolation=cv2.INTER_NEAREST).astype(np.int32)
    else:
        lab = labels
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    thick = max(1, int(round(max(rgb.shape) / PX_PER_LINE_WIDTH)))
    border_ids = set(table.loc[table["touches_border"].astype(bool), "vesicle_id"].astype(int)) \
        if len(table) else set()
    font = max(MIN_FONT_SCALE, max(rgb.shape) / PX_PER_FONT_SCALE)
    h, w = lab.shape[:2]
    # each vesicle in its bounding box (plus a 1 px frame of background, so that contours
    # are traced exactly as on the whole picture) instead of a scan of the whole picture
    for vid, (sy, sx) in _label_boxes(np.asarray(lab)):
        y0, y1 = max(0, sy.start - 1), min(h, sy.stop + 1)
        x0, x1 = max(0, sx.start - 1), min(w, sx.stop + 1)
        m = (lab[y0:y1, x0:x1] == vid).astype(np.uint8)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE, offset=(x0, y0))
        colour = BORDER_RGB if vid in border_ids else SIZED_RGB
        cv2.drawContours(rgb, contours, -1, colour, thick)
        ys, xs = np.nonzero(m)
        n = ys.size
        # centroid as the mean of whole-picture coordinates (the same float sums as before)
        cx, cy = (xs.sum() + n * x0) / n, (ys.sum() + n * y0) / n
        cv2.putText(rgb, str(vid), (int(cx) + LABEL_OFFSET_PX[0], int(cy) + LABEL_OFFSET_PX[1]),
                    cv2.FONT_HERSHEY_SIMPLEX, font, ID_RGB, max(1, thick), cv2.LINE_AA)
    if pixel_size_nm:
        draw_scale_bar(rgb, pixel_size_nm * display.shape[1] / rgb.shape[1])
    return rgb
