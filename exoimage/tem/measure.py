"""Measurements of outlines and label images: one row per vesicle, and per-image summaries.

Sizes come from the sub-pixel outline (detections) or from the pixel boundary
(hand-edited labels): equivalent-circle diameter, Feret diameters (largest
pairwise distance and smallest caliper width of the convex hull), circularity
(4 pi A / P^2) and aspect ratio. Vesicles cut by the image border are flagged
(``touches_border``) and not sized.
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from ..stats import size_summary

__all__ = ["VESICLE_COLUMNS", "measure_labels", "summarize_diameters"]

VESICLE_COLUMNS = [
    "image", "vesicle_id", "x_px", "y_px", "x_nm", "y_nm", "area_nm2", "diameter_nm",
    "feret_max_nm", "feret_min_nm", "circularity", "aspect_ratio", "touches_border",
    "contrast_snr", "confidence",
]



def shape_stats(poly: np.ndarray) -> dict:
    """Area, perimeter, solidity, circularity, Feret diameters and centroid of a polygon (row, col)."""
    y, x = poly[:, 0], poly[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    per = float(np.sum(np.hypot(np.diff(np.r_[x, x[0]]), np.diff(np.r_[y, y[0]]))))
    pts = poly[:, ::-1].astype(np.float32)
    hull = cv2.convexHull(pts)
    hull_area = float(cv2.contourArea(hull))
    # Feret diameters from the convex hull: max pairwise distance, min caliper width
    h = hull[:, 0, :].astype(np.float64)
    feret_max, feret_min = ferets(h)
    return dict(area=area, perimeter=per, solidity=area / hull_area if hull_area > 0 else 0.0,
                circularity=4 * np.pi * area / per ** 2 if per > 0 else 0.0,
                feret_max=feret_max, feret_min=feret_min,
                centroid=(float(np.mean(y)), float(np.mean(x))))


def _shape_stats_points(pts: np.ndarray) -> dict:
    hull = cv2.convexHull(pts[:, ::-1].astype(np.float32))
    feret_max, feret_min = ferets(hull[:, 0, :].astype(np.float64))
    return dict(feret_max=feret_max, feret_min=feret_min)


def ferets(h: np.ndarray):
    """(max Feret diameter, min caliper width) of a convex polygon's vertices ``h`` (n, 2)."""
    if h.shape[0] < 2:
        return 0.0, 0.0
    dmat = np.hypot(h[:, None, 0] - h[None, :, 0], h[:, None, 1] - h[None, :, 1])
    if h.shape[0] < 3:
        return float(dmat.max()), 0.0
    e = np.roll(h, -1, axis=0) - h
    n = np.hypot(e[:, 0], e[:, 1])
    ok = n > 1e-9
    rel = h[None, :, :] - h[:, None, :]  # (edge i, point j)
    cross = np.abs(e[:, None, 0] * rel[:, :, 1] - e[:, None, 1] * rel[:, :, 0])
    widths = cross.max(axis=1)[ok] / n[ok]
    return float(dmat.max()), float(widths.min()) if widths.size else 0.0


def star_mask(centre, radii, y0, y1, x0, x1):
    """Pixels of the box [y0:y1, x0:x1] whose centres lie inside a polar outline.

    The pixel-centre rule keeps the label area unbiased (a rasteriser that
    takes every pixel the outline touches makes labels ~1-2 % too large).
    """
    cy, cx = centre
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dy, dx = yy - cy, xx - cx
    theta = np.mod(np.arctan2(dy, dx), 2 * np.pi)
    ang = np.linspace(0, 2 * np.pi, len(radii), endpoint=False)
    r = np.interp(theta, ang, radii, period=2 * np.pi)
    return np.hypot(dy, dx) <= r


def vesicle_row(vid, st, px, border, score, min_contrast, confidence=float("nan")):
    """One row of :data:`VESICLE_COLUMNS` (``image`` empty) from shape statistics ``st``;
    ``confidence`` as :mod:`exoimage.tem.confidence` gives it."""
    cy, cx = st["centroid"]
    nan = float("nan")
    sized = not border
    area_nm2 = st["area"] * px * px
    return dict(
        image="", vesicle_id=vid, x_px=round(cx, 2), y_px=round(cy, 2),
        x_nm=round(cx * px, 2), y_nm=round(cy * px, 2),
        area_nm2=round(area_nm2, 2) if sized else nan,
        diameter_nm=round(2 * np.sqrt(area_nm2 / np.pi), 3) if sized else nan,
        feret_max_nm=round(st["feret_max"] * px, 3) if sized else nan,
        feret_min_nm=round(st["feret_min"] * px, 3) if sized else nan,
        circularity=round(min(1.0, st["circularity"]), 4) if sized else nan,
        aspect_ratio=round(st["feret_max"] / st["feret_min"], 4) if sized and st["feret_min"] > 0 else nan,
        touches_border=bool(border),
        contrast_snr=round(score, 3),
        confidence=round(float(confidence), 4),
    )


def measure_labels(labels: np.ndarray, pixel_size_nm: float) -> pd.DataFrame:
    """Measure every object of a label image (e.g. after hand corrections).

    The outline of each label is its pixel boundary traced with OpenCV
    (pixel-edge contour, so area = pixel count); objects touching the image
    border are flagged and not sized. Columns as :data:`VESICLE_COLUMNS`;
    ``contrast_snr`` and ``confidence`` are NaN because no image is involved.
    """
    labels = np.asarray(labels)
    rows = []
    H, W = labels.shape
    from skimage.measure import regionprops

    for rp in regionprops(labels.astype(np.int32)):
        minr, minc, maxr, maxc = rp.bbox
        border = minr == 0 or minc == 0 or maxr == H or maxc == W
        area = float(rp.area)
        per = float(rp.perimeter_crofton) if area > 1 else 4.0
        cy, cx = rp.centroid
        coords = rp.coords.astype(np.float32)
        # pixel corners for Feret diameters
        corners = np.concatenate([coords + [dy, dx] for dy in (-0.5, 0.5) for dx in (-0.5, 0.5)])
        st = _shape_stats_points(corners)
        st.update(area=area, circularity=4 * np.pi * area / per ** 2 if per > 0 else 0.0,
                  centroid=(cy, cx))
        row = vesicle_row(int(rp.label), st, pixel_size_nm, border, float("nan"), 1.0)
        row["contrast_snr"] = float("nan")
        row["confidence"] = float("nan")
        rows.append(row)
    return pd.DataFrame(rows, columns=VESICLE_COLUMNS)


def summarize_diameters(table: pd.DataFrame) -> dict:
    """Per-image statistics of the sized (not border-cut) vesicles (:func:`exoimage.stats.size_summary`)."""
    border = table["touches_border"].astype(bool)
    st = size_summary(table.loc[~border, "diameter_nm"].to_numpy(float), int(border.sum()), bootstrap=False,
                      decimals=3)
    return dict(n_vesicles=st["n"], n_border=int(border.sum()), diameter_mean_nm=st["mean_nm"],
                diameter_median_nm=st["median_nm"], diameter_sd_nm=st["sd_nm"], d10_nm=st["d10_nm"],
                d50_nm=st["d50_nm"], d90_nm=st["d90_nm"])


def to_outer_edge(data: np.ndarray, objs: list, exclude_mask=None) -> list:
    """The detected objects with their outlines moved to the outer edge (issue 13's edge rule).

    Each outline is traced at its edge's steepest fall (half-height); it is moved out by
    :func:`~exoimage.tem.outline.outer_foot_shifts` (half the edge ramp's width in excess of a sharp
    step's in this image), and its polygon and shape statistics are recomputed. See docs/tem.md,
    "Where the outline lies".
    """
    from .outline import CAP_RULE, cap_trim, outer_foot_shifts, polygon

    if not objs:
        return objs
    if CAP_RULE:  # granular caps cut back to the outline's robust fit (outline.CAP_RULE)
        d32 = np.asarray(data, np.float32)
        objs = [{**o, "radii": cap_trim(d32, o["centre"], o["radii"])} for o in objs]
    shifts, widths, wb = outer_foot_shifts(data, [(o["centre"], o["radii"]) for o in objs],
                                           [o["border"] for o in objs],
                                           None if exclude_mask is None else ~np.asarray(exclude_mask, bool))
    out = []
    for o, s, w in zip(objs, shifts, widths):
        radii = np.asarray(o["radii"], float) + float(s)
        poly = polygon(o["centre"][0], o["centre"][1], radii)
        st = shape_stats(poly)
        out.append({**o, "radii": radii, "poly": poly, "stats": st, "area": st["area"],
                    "circularity": st["circularity"], "edge_shift_px": float(s), "ramp_width_px": float(w),
                    "blur_width_px": float(wb)})
    return out
