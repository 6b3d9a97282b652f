"""Overlay pictures of detections: outlines (green sized, orange border-cut) with their ids."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

__all__ = ["draw_overlay"]

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


def _to_uint8(display: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(display[:: max(1, display.shape[0] // DISPLAY_SAMPLE_SIDE),
                                   :: max(1, display.shape[1] // DISPLAY_SAMPLE_SIDE)],
                           list(DISPLAY_PERCENTILES))
    if hi <= lo:
        hi = lo + 1
    return np.clip((display - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)


def draw_overlay(display: np.ndarray, labels: np.ndarray, table: pd.DataFrame,
                 max_side: int = 2048) -> np.ndarray:
    """RGB uint8 picture: outlines (green sized, orange border-cut) with their ids."""
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
    for vid in np.unique(lab):
        if vid == 0:
            continue
        m = (lab == vid).astype(np.uint8)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        colour = BORDER_RGB if vid in border_ids else SIZED_RGB
        cv2.drawContours(rgb, contours, -1, colour, thick)
        ys, xs = np.nonzero(m)
        cv2.putText(rgb, str(vid), (int(xs.mean()) + LABEL_OFFSET_PX[0], int(ys.mean()) + LABEL_OFFSET_PX[1]),
                    cv2.FONT_HERSHEY_SIMPLEX, font, ID_RGB, max(1, thick), cv2.LINE_AA)
    return rgb
