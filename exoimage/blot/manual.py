"""Quantify a blot with hand-edited lanes and band regions.

:func:`~exoimage.blot.quantify_blot` finds lanes and bands itself. An
interactive front end (the napari plugin) lets the user move, resize, add or
delete lanes and bands first; these functions measure exactly the regions the
user drew, with the same profile, background, saturation and row logic as
``quantify_blot``, so both give the same volume for the same region.

Geometry uses pixel-centre coordinates (pixel ``i`` spans ``i - 0.5 .. i + 0.5``),
as napari does: a lane covering columns ``a..b`` has its outline at
``a - 0.5`` and ``b + 0.5``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io import ImageReadError
from . import bands as B
from .lanes import Lane, Piece
from .pipeline import BAND_COLUMNS, LANE_COLUMNS, BlotParams, BlotResult, _as_image, _finish_bands, _lane_gaps, signal_of
from .signal import clipped_masks, detect_ceiling, image_warnings, pixel_noise_sd

__all__ = ["lane_outline", "lanes_from_outlines", "band_outline", "regions_from_outlines",
           "regions_from_bands", "measure_bands", "lane_traces", "match_rows"]


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


def lanes_from_outlines(outlines, shape, *, ladder_lane: int | None = None) -> list[Lane]:
    """Lanes from drawn outlines (rectangles, rotated rectangles or 4-point polygons).

    Parameters
    ----------
    outlines : list of array-like
        Each ``(n, 2)`` vertices (row, col), ``n >= 3``.
    shape : (int, int)
        Image shape; lanes are clipped to it.
    ladder_lane : int, optional
        Lane number (1-based, after sorting left to right) of the marker.

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
    lanes = []
    for k, o in enumerate(outlines):
        p = np.asarray(o, float)[:, -2:]
        if p.ndim != 2 or p.shape[0] < 3:
            raise ValueError(f"lane outline {k + 1} needs at least 3 corners")
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
        ln.is_ladder = ladder_lane == i
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


def regions_from_outlines(outlines, lanes: list[Lane], known: pd.DataFrame | None = None
                          ) -> tuple[pd.DataFrame, list[int]]:
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
        One row per outline (same order) with the band each box showed when it
        was drawn (``y_top_px, y_bottom_px, y_px, sigma_px``, e.g. the bands
        table of the last detection). Boxes whose rows are unchanged keep that
        band's ``y_px`` and ``sigma_px`` (so rows are grouped exactly as
        before); others get NaN and are measured afresh.

    Returns
    -------
    regions : DataFrame
        ``lane, y_top_px, y_bottom_px, y_px, sigma_px, shape`` (``shape`` = index
        of the outline), one row per assigned box, input order.
    unassigned : list of int
        Indices of boxes that lie in no lane.
    """
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
        y, sd = np.nan, np.nan
        if known is not None and k < len(known):
            kr = known.iloc[k]
            try:
                same = int(kr["y_top_px"]) == yt and int(kr["y_bottom_px"]) == yb
            except (TypeError, ValueError):  # NaN: a box added by hand
                same = False
            if same:
                y, sd = float(kr["y_px"]), float(kr["sigma_px"])
        rows.append(dict(lane=best.lane, y_top_px=yt, y_bottom_px=yb, y_px=y, sigma_px=sd, shape=k))
    return pd.DataFrame(rows, columns=["lane", "y_top_px", "y_bottom_px", "y_px", "sigma_px", "shape"]), bad


def regions_from_bands(bands: pd.DataFrame) -> pd.DataFrame:
    """The regions of a bands table (``lane, y_top_px, y_bottom_px, y_px, sigma_px``)."""
    out = bands[["lane", "y_top_px", "y_bottom_px", "y_px", "sigma_px"]].reset_index(drop=True).copy()
    out[["lane", "y_top_px", "y_bottom_px"]] = out[["lane", "y_top_px", "y_bottom_px"]].astype(int)
    return out


# --------------------------------------------------------------------------
# measurement


def _prepare(image, params):
    img = _as_image(image)
    signal, polarity, pol_src = signal_of(img, params)
    return img, img.data, signal, polarity, pol_src


def _lane_background(signal, ln, prof, params, regions, free):
    """Baselines of one lane profile, as :func:`~exoimage.blot.quantify_blot` chooses them.

    Returns (rolling-ball baseline used for rows, chosen background, method per region).
    ``'auto'``: rolling ball refined by a line through each region's flanks, but the
    lane-edge background under regions taller than the ball when every lane has free
    membrane beside it (``free`` px, the smallest gap). This mirrors the choice made in
    :func:`~exoimage.blot.quantify_blot`; keep the two in step. One deliberate
    difference: under smears quantify_blot prefers the gap background (a quadratic
    across the lane through the nearest gaps, :func:`~exoimage.blot.bands.gap_background`);
    here the lane's own edges are kept, so that the volumes of a hand-drawn lane do not
    change when a neighbouring lane is moved.
    """
    radius = params.ball_radius_px or max(25.0, 0.1 * len(prof))
    rb = B.rolling_ball_background(prof, radius)
    method = params.background
    methods = [method] * len(regions)
    if method == "auto":
        bg = rb.copy()
        if regions:
            # as quantify_blot: refine under every band with a line through its flanks
            bg = B.flank_background(prof, regions, rb)
        methods = ["rolling-ball"] * len(regions)
        tall = [i for i, (a, b) in enumerate(regions) if b - a + 1 > radius]
        if tall and free >= 2:
            edge = B.edge_background(signal, ln, min(params.edge_border_px, free))
            for i in tall:
                a, b = regions[i]
                bg[a:b + 1] = edge[a:b + 1]
                methods[i] = "edge"
    elif method == "rolling-ball":
        bg = rb
    elif method == "valley":
        bg = B.valley_background(prof, regions)
    elif method == "edge":
        bg = B.edge_background(signal, ln, params.edge_border_px)
    else:
        bg = np.zeros(len(prof))
    return rb, bg, methods


def _lane_regions(regions: pd.DataFrame, ln: Lane) -> list[tuple]:
    """(top, bottom, y, sigma) of the lane's regions in profile indices (y, sigma NaN if unknown)."""
    r = regions[regions["lane"] == ln.lane]
    ys = r["y_px"] if "y_px" in r else pd.Series(np.nan, index=r.index)
    ss = r["sigma_px"] if "sigma_px" in r else pd.Series(np.nan, index=r.index)
    out = []
    n = ln.y_bottom_px - ln.y_top_px + 1
    for a, b, y, sd in zip(r["y_top_px"], r["y_bottom_px"], ys, ss):
        a, b = int(a) - ln.y_top_px, int(b) - ln.y_top_px
        a, b = max(0, a), min(n - 1, b)
        if b >= a:
            out.append((a, b, float(y) - ln.y_top_px, float(sd)))
    return sorted(out)


def _pieces(lanes: list[Lane]) -> list[Piece]:
    """The membrane pieces the lanes define (their bounding boxes)."""
    out = []
    for pc in sorted({ln.piece for ln in lanes}):
        g = [ln for ln in lanes if ln.piece == pc]
        out.append(Piece(pc, min(ln.y_top_px for ln in g), max(ln.y_bottom_px for ln in g) + 1,
                         min(ln.x_left_px for ln in g), max(ln.x_right_px for ln in g) + 1))
    return out


def lane_traces(image, lanes: list[Lane], regions: pd.DataFrame | None = None,
                params: BlotParams | None = None) -> dict:
    """Lane profile and chosen background of every lane, for plotting.

    Returns ``{lane: DataFrame(y_px, profile, background)}`` in signal units
    (bands positive), rows ``y_top..y_bottom`` of the lane.
    """
    params = params or BlotParams()
    regions = regions if regions is not None else pd.DataFrame(columns=["lane", "y_top_px", "y_bottom_px"])
    _, data, signal, _, _ = _prepare(image, params)
    gaps = _lane_gaps(lanes, data.shape[1])
    out = {}
    for ln in lanes:
        prof = B.lane_profile(signal, ln)
        regs = [(a, b) for a, b, _, _ in _lane_regions(regions, ln)]
        _, bg, _ = _lane_background(signal, ln, prof, params, regs, min(gaps.values()))
        out[ln.lane] = pd.DataFrame({"y_px": np.arange(ln.y_top_px, ln.y_bottom_px + 1),
                                     "profile": prof, "background": bg})
    return out


def measure_bands(image, lanes: list[Lane], regions: pd.DataFrame, params: BlotParams | None = None,
                  *, name: str = "") -> BlotResult:
    """Measure the band regions the user drew, in the lanes the user drew.

    Parameters
    ----------
    image : Image or ndarray
        Raw pixel values.
    lanes : list of Lane
        E.g. from :func:`lanes_from_outlines` or ``BlotResult.lane_geometry``.
    regions : DataFrame
        ``lane, y_top_px, y_bottom_px`` (rows, inclusive), e.g. from
        :func:`regions_from_outlines`; optional ``y_px, sigma_px`` (a
        detected band's fitted centre and width) are kept where finite.
    params : BlotParams, optional
        ``polarity``, ``background``, ``ball_radius_px``, ``edge_border_px``,
        ``low_snr``, ``ladder_lane``/``ladder_kda`` are used; lane and band
        detection settings are not (nothing is detected).

    Returns
    -------
    BlotResult
        Same tables as :func:`~exoimage.blot.quantify_blot`. A band's
        ``volume`` is the background-subtracted lane profile summed over its
        rows (identical to ``quantify_blot`` for the same region and
        background); ``y_px`` and ``sigma_px`` are the given ones or else the
        centroid and SD of the net signal in the region; ``snr`` is the net peak per pixel over the
        pixel noise; ``deconvolved`` is False.
    """
    params = params or BlotParams()
    img, data, signal, polarity, pol_src = _prepare(image, params)
    if not lanes:
        raise ImageReadError(img.path, "no lanes to quantify: draw at least one lane")
    ceiling, ceil_src = detect_ceiling(data, polarity)
    solid, hot = clipped_masks(data, ceiling, polarity)
    warns = list(img.warnings) + image_warnings(data, file_format=img.file_format, was_rgb=img.was_rgb,
                                                polarity=polarity)
    noise = pixel_noise_sd(signal)
    if params.ladder_lane:
        for ln in lanes:
            ln.is_ladder = ln.lane == params.ladder_lane
    solid_f = solid.astype(np.float32) if solid.any() else None
    hot_f = hot.astype(np.float32) if hot.any() else None
    band_rows, lane_rows, det = [], [], {}
    gaps = _lane_gaps(lanes, data.shape[1])
    for ln in lanes:
        prof = B.lane_profile(signal, ln)
        full = _lane_regions(regions, ln)
        regs = [(a, b) for a, b, _, _ in full]
        rb, bg, methods = _lane_background(signal, ln, prof, params, regs, min(gaps.values()))
        det[ln.lane] = prof - rb
        net = prof - bg
        sat_p = B.lane_profile(solid_f, ln) if solid_f is not None else None
        hot_p = B.lane_profile(hot_f, ln) if hot_f is not None else None
        for (a, b, y0, sd0), bm in zip(full, methods):
            seg = net[a:b + 1]
            pos = np.clip(seg, 0, None)
            yy = np.arange(a, b + 1, dtype=float)
            if np.isfinite(y0) and np.isfinite(sd0) and a <= y0 <= b:
                yc, sd = y0, sd0  # a detected band, unchanged: keep its fitted centre and width
            elif pos.sum() > 0:
                yc = float((pos * yy).sum() / pos.sum())
                sd = float(np.sqrt((pos * (yy - yc) ** 2).sum() / pos.sum()))
            else:
                yc, sd = 0.5 * (a + b), 0.0
            band_rows.append(dict(
                image=name, lane=ln.lane, row=0, band_id=0, y_px=ln.y_top_px + yc,
                y_top_px=ln.y_top_px + a, y_bottom_px=ln.y_top_px + b, sigma_px=sd,
                volume=float(seg.sum()), background=float(bg[a:b + 1].sum()),
                saturated_px=int(sat_p[a:b + 1].sum()) if sat_p is not None else 0,
                hot_px=int(hot_p[a:b + 1].sum()) if hot_p is not None else 0,
                snr=float(seg.max() / ln.width_px / noise) if len(seg) else 0.0,
                deconvolved=False, is_ladder=ln.is_ladder, background_method=bm, piece=ln.piece))
        yt, yb = ln.y_top_px, ln.y_bottom_px
        lane_rows.append(dict(
            image=name, lane=ln.lane, piece=ln.piece, x_left_px=ln.x_left_px, x_right_px=ln.x_right_px,
            x_center_px=ln.x_center_px, width_px=ln.width_px, y_top_px=yt, y_bottom_px=yb,
            slope_dx_per_dy=ln.slope, x_center_top_px=ln.x_center_px + ln.slope * (yt - ln.y_ref_px),
            x_center_bottom_px=ln.x_center_px + ln.slope * (yb - ln.y_ref_px), is_ladder=ln.is_ladder,
            n_bands=len(regs), lane_total=np.nan,
            background="+".join(sorted(set(methods))) if methods else params.background))
    bands = pd.DataFrame(band_rows, columns=BAND_COLUMNS + ["piece"])
    bands["saturated"] = bands["saturated_px"] > 0
    bands["low_snr"] = bands["snr"] < params.low_snr
    bands["mw_kda"] = np.nan
    # rows per membrane piece, sample lanes only, numbered on from the piece above (as quantify_blot)
    offsets = {}
    next_row = 0
    for pc in sorted({ln.piece for ln in lanes}):
        sample = [ln.lane for ln in lanes if ln.piece == pc and not ln.is_ladder]
        m = bands["lane"].isin(sample).to_numpy()
        if not sample or not m.any():
            continue
        h = max(ln.y_bottom_px - ln.y_top_px + 1 for ln in lanes if ln.piece == pc)
        off = B.lane_offsets(det, sample, int(0.03 * h) + 2)
        offsets.update(off)
        sub = bands[m]
        r = B.group_rows(sub["y_px"].to_numpy(), sub["sigma_px"].to_numpy(), sub["lane"].to_numpy(),
                         sub["lane"].map(off).to_numpy())
        bands.loc[m, "row"] = r + next_row
        next_row += int(r.max())
    bands, ladder = _finish_bands(bands, lanes, offsets, params, img, warns, need_bands=True)
    lanes_df = pd.DataFrame(lane_rows, columns=LANE_COLUMNS)
    return BlotResult(lanes=lanes_df, bands=bands, lane_geometry=list(lanes),
                      pieces=_pieces(lanes), polarity=polarity, polarity_source=pol_src,
                      ceiling=ceiling, ceiling_source=ceil_src, noise_sd=noise, warnings=warns,
                      saturated_mask=solid, hot_mask=hot, ladder=ladder, params=params)



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
