"""Quantify a blot with hand-edited lanes and band regions.

:func:`~exoimage.blot.quantify_blot` finds lanes and bands itself. An
interactive front end (the napari plugin) lets the user move, resize, add or
delete lanes and bands first. These functions convert between drawn outlines
and lanes/regions, and measure exactly the regions the user drew with
:func:`exoimage.blot.measure.measure`, the measurement ``quantify_blot`` uses:
the same region in the same lane gives the same numbers. Outlines drawn from a
detection and left unchanged give back the detected lanes and regions exactly
(``known``), so Detect then Quantify without edits reproduces ``quantify_blot``.

Geometry uses pixel-centre coordinates (pixel ``i`` spans ``i - 0.5 .. i + 0.5``),
as napari does: a lane covering columns ``a..b`` has its outline at
``a - 0.5`` and ``b + 0.5``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from .lanes import Lane
from .measure import REGION_COLUMNS, lane_traces, measure
from .pipeline import BlotParams, BlotResult

__all__ = ["lane_outline", "lanes_from_outlines", "band_outline", "regions_from_outlines",
           "regions_from_bands", "measure_bands", "lane_traces", "match_rows", "OUTLINE_TOL_PX"]

#: an outline within this distance (px, every vertex) of a known lane's outline is that lane,
#: unchanged (drawn outlines come back through the viewer as floats; an edit moves them further)
OUTLINE_TOL_PX = 1e-3


# --------------------------------------------------------------------------
# geometry <-> outlines


def lane_outline(lane: Lane) -> np.ndarray:
    """The lane as a 4-corner polygon, ``(4, 2)`` of (row, col): top-left, top-right,
    bottom-right, bottom-left (follows the lane's tilt)."""
    yt, yb = lane.y_top_px - 0.5, lane.y_bottom_px + 0.5
    st = lane.slope * (yt - lane.y_ref_px)
    sb = lane.slope * (yb - lane.y_ref_px)
    xl, xr = lane.x_left_px - 0.5, lane.x_right_px + 0.5
    return np.array([[yt, xl + st], [yt, xr + st], [yb, xr + sb], [yb, xl + sb]], float)


def lanes_from_outlines(outlines, shape, *, ladder_lane: int | None = None,
                        known: list[Lane] | None = None) -> list[Lane]:
    """Lanes from drawn outlines (rectangles, rotated rectangles or 4-point polygons).

    Parameters
    ----------
    outlines : list of array-like
        Each ``(n, 2)`` vertices (row, col), ``n >= 3``.
    shape : (int, int)
        Image shape; lanes are clipped to it.
    ladder_lane : int, optional
        Lane number (1-based, after sorting left to right) of the marker.
    known : list of Lane, optional
        The lanes the outlines were drawn from (:func:`lane_outline`). An outline
        still within :data:`OUTLINE_TOL_PX` of a known lane's outline gives that
        lane's geometry exactly (its reference row and tilt included, which the
        outline alone fixes only to the pixel); other outlines are measured.

    Returns
    -------
    list of Lane
        Grouped into membrane pieces (lanes whose rows overlap by more than half
        the shorter lane are on one piece; pieces numbered top to bottom), and
        numbered 1..N piece by piece, left to right, as :func:`~exoimage.blot.lanes.find_lanes`
        numbers them. The tilt is the shift of the
        outline's centre between its upper and lower vertices.
    """
    h, w = shape
    known_outlines = [(kl, lane_outline(kl)) for kl in (known or [])]
    lanes = []
    for k, o in enumerate(outlines):
        p = np.asarray(o, float)[:, -2:]
        if p.ndim != 2 or p.shape[0] < 3:
            raise ValueError(f"lane outline {k + 1} needs at least 3 corners")
        same = next((kl for kl, ko in known_outlines
                     if ko.shape == p.shape and np.abs(ko - p).max() <= OUTLINE_TOL_PX), None)
        if same is not None:
            # a known lane keeps its marker flag (find_lanes recognises marker lanes)
            lanes.append(replace(same, lane=0, piece=1))
            continue
        ymin, ymax = p[:, 0].min(), p[:, 0].max()
        yt = int(np.clip(round(ymin + 0.5), 0, h - 1))
        yb = int(np.clip(round(ymax - 0.5), 0, h - 1))
        if yb - yt < 2:
            raise ValueError(f"lane outline {k + 1} is less than 3 px tall")
        mid = 0.5 * (ymin + ymax)
        up, lo = p[p[:, 0] < mid], p[p[:, 0] >= mid]
        if len(up) == 0 or len(lo) == 0:
            up = lo = p
        yu, yl = up[:, 0].mean(), lo[:, 0].mean()
        xu, xlow = up[:, 1].mean(), lo[:, 1].mean()
        slope = float((xlow - xu) / (yl - yu)) if yl - yu > 1e-6 else 0.0
        width_u = up[:, 1].max() - up[:, 1].min() if len(up) > 1 else 0.0
        width_l = lo[:, 1].max() - lo[:, 1].min() if len(lo) > 1 else 0.0
        width = int(round(0.5 * (width_u + width_l) if width_u and width_l else max(width_u, width_l)))
        if width < 2:
            raise ValueError(f"lane outline {k + 1} is less than 2 px wide")
        yref = 0.5 * (yt + yb)
        xc = xu + slope * (yref - yu)
        xl = int(round(xc - (width - 1) / 2.0))
        xr = xl + width - 1
        xl, xr = max(0, xl), min(w - 1, xr)
        if xr - xl < 1:
            raise ValueError(f"lane outline {k + 1} lies outside the image")
        lanes.append(Lane(lane=0, piece=1, x_left_px=xl, x_right_px=xr, y_top_px=yt, y_bottom_px=yb,
                          y_ref_px=yref, slope=round(slope, 6)))
    _assign_pieces(lanes)
    lanes.sort(key=lambda ln: (ln.piece, ln.x_center_px))
    for i, ln in enumerate(lanes, start=1):
        ln.lane = i
        ln.is_ladder = (ladder_lane == i) if ladder_lane else ln.is_ladder
    return lanes


def _assign_pieces(lanes: list[Lane]) -> None:
    """Set ``piece``: lanes sharing more than half of the shorter one's rows are on one piece."""
    order = sorted(lanes, key=lambda ln: (ln.y_top_px, ln.x_center_px))
    groups: list[list[Lane]] = []
    for ln in order:
        for g in groups:
            top = max(ln.y_top_px, min(o.y_top_px for o in g))
            bottom = min(ln.y_bottom_px, max(o.y_bottom_px for o in g))
            shorter = min(ln.y_bottom_px - ln.y_top_px, max(o.y_bottom_px for o in g) - min(o.y_top_px for o in g))
            if bottom - top > 0.5 * shorter:
                g.append(ln)
                break
        else:
            groups.append([ln])
    groups.sort(key=lambda g: min(o.y_top_px for o in g))
    for k, g in enumerate(groups, start=1):
        for ln in g:
            ln.piece = k


def band_outline(lane: Lane, y_top_px: float, y_bottom_px: float) -> np.ndarray:
    """Rectangle ``(4, 2)`` (row, col) of a band region in ``lane`` (shifted with the lane's tilt)."""
    yc = 0.5 * (y_top_px + y_bottom_px)
    s = lane.slope * (yc - lane.y_ref_px)
    yt, yb = y_top_px - 0.5, y_bottom_px + 0.5
    xl, xr = lane.x_left_px - 0.5 + s, lane.x_right_px + 0.5 + s
    return np.array([[yt, xl], [yt, xr], [yb, xr], [yb, xl]], float)


def _same_lane(a: Lane, b: Lane) -> bool:
    """Same pixels: same columns, rows, reference row and tilt."""
    return (a.x_left_px, a.x_right_px, a.y_top_px, a.y_bottom_px, a.y_ref_px, a.slope) == \
           (b.x_left_px, b.x_right_px, b.y_top_px, b.y_bottom_px, b.y_ref_px, b.slope)


def regions_from_outlines(outlines, lanes: list[Lane], known: pd.DataFrame | None = None,
                          known_lanes: list[Lane] | None = None) -> tuple[pd.DataFrame, list[int]]:
    """Assign drawn band boxes to lanes.

    A box belongs to the lane whose centre (at the box's height) is nearest
    to the box's centre, if that distance is at most one lane width; its rows
    ``y_top..y_bottom`` come from the box (clipped to the lane).

    Parameters
    ----------
    outlines : list of array-like
        ``(n, 2)`` vertices (row, col) of each box.
    lanes : list of Lane
    known : DataFrame, optional
        One row per outline (same order) with the region each box showed when it
        was drawn: ``lane, y_top_px, y_bottom_px`` and what was recorded about it
        (any of :data:`~exoimage.blot.measure.REGION_COLUMNS`, e.g.
        ``BlotResult.regions`` or the bands table of the last detection). A box
        whose rows are unchanged, in a lane that is unchanged, keeps that record
        (fitted centre and width, snr, background method, deconvolved cluster),
        so it is measured exactly as before; other boxes are measured afresh.
    known_lanes : list of Lane, optional
        The lanes ``known``'s lane numbers refer to (the lanes the boxes were
        drawn in). Without them the lanes are taken as unchanged.

    Returns
    -------
    regions : DataFrame
        :data:`~exoimage.blot.measure.REGION_COLUMNS` and ``shape`` (index of the
        outline), one row per assigned box, input order; NaN where nothing is recorded.
    unassigned : list of int
        Indices of boxes that lie in no lane.
    """
    by_number = {ln.lane: ln for ln in (known_lanes or [])}
    rows, bad = [], []
    for k, o in enumerate(outlines):
        p = np.asarray(o, float)[:, -2:]
        yc, xc = p[:, 0].mean(), p[:, 1].mean()
        yt, yb = int(round(p[:, 0].min() + 0.5)), int(round(p[:, 0].max() - 0.5))
        best, dbest = None, np.inf
        for ln in lanes:
            if not (ln.y_top_px - 0.5 <= yc <= ln.y_bottom_px + 0.5):
                continue
            d = abs(xc - (ln.x_center_px + ln.slope * (yc - ln.y_ref_px)))
            if d < dbest and d <= ln.width_px:
                best, dbest = ln, d
        if best is None:
            bad.append(k)
            continue
        yt, yb = max(yt, best.y_top_px), min(max(yb, yt), best.y_bottom_px)
        row = {c: np.nan for c in REGION_COLUMNS}
        row.update(lane=best.lane, y_top_px=yt, y_bottom_px=yb, background_method=None, deconvolved=False,
                   shape=k)
        if known is not None and k < len(known):
            kr = known.iloc[k]
            try:
                same = int(kr["y_top_px"]) == yt and int(kr["y_bottom_px"]) == yb
            except (TypeError, ValueError):  # NaN: a box added by hand
                same = False
            if same and known_lanes is not None:
                try:
                    was = by_number.get(int(kr["lane"]))
                except (KeyError, TypeError, ValueError):
                    was = None
                same = was is not None and _same_lane(was, best)
            if same:
                row.update({c: kr[c] for c in REGION_COLUMNS[3:] if c in kr.index})
        rows.append(row)
    return pd.DataFrame(rows, columns=REGION_COLUMNS + ["shape"]), bad


def regions_from_bands(bands: pd.DataFrame) -> pd.DataFrame:
    """The regions of a bands table (``lane, y_top_px, y_bottom_px, y_px, sigma_px``)."""
    out = bands[["lane", "y_top_px", "y_bottom_px", "y_px", "sigma_px"]].reset_index(drop=True).copy()
    out[["lane", "y_top_px", "y_bottom_px"]] = out[["lane", "y_top_px", "y_bottom_px"]].astype(int)
    return out


# --------------------------------------------------------------------------
# measurement


def measure_bands(image, lanes: list[Lane], regions: pd.DataFrame, params: BlotParams | None = None,
                  *, name: str = "") -> BlotResult:
    """Measure the band regions the user drew, in the lanes the user drew.

    The same as :func:`exoimage.blot.measure.measure` (kept under this name):
    ``regions`` from :func:`regions_from_outlines` (or ``BlotResult.regions``),
    lanes from :func:`lanes_from_outlines` (or ``BlotResult.lane_geometry``).
    Lane and band detection settings of ``params`` are not used (nothing is detected).
    """
    return measure(image, lanes, regions, params, name=name)


def match_rows(before: pd.DataFrame, after: pd.DataFrame) -> dict:
    """Row numbers of ``before`` -> row numbers of ``after`` (two bands tables of one blot).

    Rows are numbered top to bottom, so adding or deleting a band can renumber
    them; a user who chose "row 3" means the same proteins afterwards. Each
    row of ``before`` maps to the row of ``after`` whose median band centre is
    nearest, if it lies within ``max(4, 2 x median sigma)`` px; rows with no
    counterpart are left out.
    """
    def centres(b):
        b = b[b["row"] > 0]
        g = b.groupby("row")
        return g["y_px"].median(), g["sigma_px"].median()

    yb, sb = centres(before)
    ya, _ = centres(after)
    out = {}
    if ya.empty:
        return out
    for r, y in yb.items():
        d = (ya - y).abs()
        tol = max(4.0, 2.0 * float(sb[r]) if np.isfinite(sb[r]) else 4.0)
        if d.min() <= tol:
            out[int(r)] = int(d.idxmin())
    return out
