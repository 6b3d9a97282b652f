"""Lane profiles: a lane's pixels summed row by row, and counts of masked pixels per row."""

from __future__ import annotations

import numpy as np

from .lanes import Lane

__all__ = ["lane_index", "lane_profile", "mask_profile"]


def lane_index(lane: Lane, width: int, offsets: np.ndarray):
    """Rows and (rows x offsets) column indices of a lane, with a validity mask.

    ``offsets`` are columns relative to the lane's left edge at each row (the
    lane's tilt moves them by whole pixels); columns outside the image are
    clipped and marked invalid.
    """
    rows = np.arange(lane.y_top_px, lane.y_bottom_px + 1)
    cols = lane.x_left_px + lane.shift_at(rows)[:, None] + offsets[None, :]
    valid = (cols >= 0) & (cols < width)
    return rows, np.clip(cols, 0, width - 1), valid


def lane_profile(signal: np.ndarray, lane: Lane) -> np.ndarray:
    """Sum of the lane's pixels in every row (float64; rows ``y_top..y_bottom``).

    For a tilted lane the columns shift by whole pixels from row to row, so
    every pixel of the lane is counted exactly once.
    """
    h, w = signal.shape
    if lane.slope == 0:
        a, b = max(lane.x_left_px, 0), min(lane.x_right_px + 1, w)
        return signal[lane.y_top_px:lane.y_bottom_px + 1, a:b].sum(axis=1, dtype=np.float64)
    rows, cols, valid = lane_index(lane, w, np.arange(lane.width_px))
    vals = signal[rows[:, None], cols].astype(np.float64)
    return np.where(valid, vals, 0.0).sum(axis=1)


def mask_profile(points, lane: Lane):
    """Per row of the lane, how many of the given ``(ys, xs)`` pixels fall inside it
    (float; None if there are no points at all)."""
    ys, xs = points
    if len(ys) == 0:
        return None
    n = lane.y_bottom_px - lane.y_top_px + 1
    inr = (ys >= lane.y_top_px) & (ys <= lane.y_bottom_px)
    ys, xs = ys[inr], xs[inr]
    x0 = lane.x_left_px + lane.shift_at(ys)
    sel = (xs >= x0) & (xs < x0 + lane.width_px)
    return np.bincount(ys[sel] - lane.y_top_px, minlength=n).astype(float)
