"""Measure band regions in lanes: profile -> background -> volume -> rows -> ladder.

One measurement for every front end: :func:`~exoimage.blot.quantify_blot` detects
lanes and band regions (:mod:`.detect`) and measures them here; the manual path
(:func:`exoimage.blot.manual.measure_bands`) and the napari plugin measure the
lanes and regions a user drew, here too. The same regions give the same numbers.

A regions table (:data:`REGION_COLUMNS`) has one row per band region; only
``lane, y_top_px, y_bottom_px`` are required. The other columns record what
detection found about a region, so that measuring detected regions reproduces
detection's numbers exactly; where they are missing or NaN (a region drawn by
hand) they are measured:

``y_px, sigma_px``
    Fitted centre and SD (px); else the centroid and SD of the region's net
    (background-subtracted, clipped at 0) profile.
``snr``
    Band peak per pixel over the pixel noise SD; else the net profile's maximum
    in the region per pixel of lane width over the pixel noise SD.
``background_method``
    The method detection chose (used with ``background = 'auto'``); else
    ``auto``'s rule (:mod:`.background`).
``deconvolved, cluster, fraction``
    Members of one deconvolved cluster (same ``lane`` and ``cluster``) share
    the net volume of their joint rows: by the lane's band shape refitted to the
    net profile (:func:`split_groups`, :func:`lane_skews`) where every member has
    ``y_px`` and ``sigma_px`` and none is a smear, else by ``fraction``; the
    fractions measured are written back. A cluster whose fractions do not add up
    to 1 (a member deleted or redrawn) is measured as separate regions.
``fit_top_px, fit_bottom_px``
    The rows detection found for the band, under which the background is
    placed; the volume is summed over ``y_top_px..y_bottom_px``, which may be
    reshaped to its row's common shape (``BlotParams.row_regions``). Else the
    region's own rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..io import Image, ImageReadError
from . import background as G
from .bands import assign_rows, band_skew, ladder_calibration, mw_from_y, split_shares
from .ladders import load_ladder
from .lanes import Lane, Piece
from .pipeline import BAND_COLUMNS, LANE_COLUMNS, BlotParams, BlotResult, _as_image, signal_of
from .profile import lane_profile, mask_profile
from .signal import clipped_masks, detect_ceiling, image_warnings, pixel_noise_sd

__all__ = ["REGION_COLUMNS", "LADDER_CHECK_COLUMNS", "ladder_mass_check", "measure", "prepare", "Prepared", "lane_contexts", "lane_traces", "pieces_of",
           "lane_gaps", "piece_rows", "PIECE_ROW_SHARE", "PIECE_ROW_MIN_LANES"]

#: columns of a regions table (see the module docstring); the first three are required
REGION_COLUMNS = ["lane", "y_top_px", "y_bottom_px", "y_px", "sigma_px", "snr", "background_method",
                  "deconvolved", "cluster", "fraction", "fit_top_px", "fit_bottom_px"]
#: bands whose volume is below this many SDs of the volume's pixel noise (or negative) are flagged
#: ``below_noise``: 2 SD, the usual two-sided 95 % limit of "different from zero"
BELOW_NOISE_SD = 2.0
#: a deconvolved cluster is measured as one when its members' fractions add up to 1 within this
#: (they are areas / their sum, exact to rounding)
FRACTION_SUM_TOL = 1e-6


@dataclass
class Prepared:
    """An image made ready for detection and measurement (signal, QC masks, noise)."""

    image: Image
    signal: np.ndarray
    polarity: str
    polarity_source: str
    ceiling: float | None
    ceiling_source: str
    saturated_mask: np.ndarray
    hot_mask: np.ndarray
    warnings: list
    noise_sd: float


def prepare(image, params: BlotParams) -> Prepared:
    """Signal (polarity), detector ceiling and clipped-pixel masks, image warnings, pixel noise."""
    img = _as_image(image)
    data = img.data
    if data.dtype == np.int8:
        # no imager writes signed 8-bit: such a file is a conversion, and its negative
        # values are not detector counts
        raise ImageReadError(img.path, "signed 8-bit image (int8): not a raw detector image (imagers write "
                                       "unsigned 8- or 16-bit counts); quantify the imager's original file")
    signal, polarity, pol_src = signal_of(img, params)
    ceiling, ceil_src = detect_ceiling(data, polarity)
    solid, hot = clipped_masks(data, ceiling, polarity)
    warns = list(img.warnings) + image_warnings(data, file_format=img.file_format, was_rgb=img.was_rgb,
                                                polarity=polarity)
    return Prepared(img, signal, polarity, pol_src, ceiling, ceil_src, solid, hot, warns, pixel_noise_sd(signal))


def lane_gaps(lanes: list[Lane], width: int) -> dict:
    """Smallest free margin (px) beside each lane: to its neighbours in the same piece,
    or to the image side. Lanes overlapping this one are not counted as neighbours."""
    return {ln.lane: G.lane_gap(ln, lanes, width) for ln in lanes}


def lane_contexts(prep: Prepared, lanes: list[Lane], params: BlotParams) -> dict:
    """``{lane: LaneContext}``: profile, rolling ball, radius and free margin of every lane."""
    gaps = lane_gaps(lanes, prep.signal.shape[1])
    out = {}
    for ln in lanes:
        prof = lane_profile(prep.signal, ln)
        radius = G.ball_radius_px(len(prof), params.ball_radius_px)
        free = min(gaps[o.lane] for o in lanes if o.piece == ln.piece)
        out[ln.lane] = G.LaneContext(prep.signal, ln, lanes, prof, G.rolling_ball_background(prof, radius),
                                     radius, free, params.edge_border_px)
    return out


def pieces_of(lanes: list[Lane]) -> list[Piece]:
    """The membrane pieces the lanes define (their bounding boxes)."""
    out = []
    for pc in sorted({ln.piece for ln in lanes}):
        g = [ln for ln in lanes if ln.piece == pc]
        out.append(Piece(pc, min(ln.y_top_px for ln in g), max(ln.y_bottom_px for ln in g) + 1,
                         min(ln.x_left_px for ln in g), max(ln.x_right_px for ln in g) + 1))
    return out


# --------------------------------------------------------------------------
# regions


def _col(regions: pd.DataFrame, name: str, default) -> np.ndarray:
    if name in regions:
        return regions[name].to_numpy()
    return np.full(len(regions), default, dtype=object)


def _num(v) -> float:
    """``v`` as a finite float, else NaN (missing, None, text)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return np.nan
    return f if np.isfinite(f) else np.nan


@dataclass
class _Reg:
    """One region of a lane: window ``a..b`` and background rows ``fa..fb`` (profile indices)."""

    a: int
    b: int
    fa: int
    fb: int
    y: float          # absolute px, NaN: measure
    sigma: float
    snr: float
    method: str | None
    cluster: object   # key of a deconvolved cluster, or None
    fraction: float


def _lane_regions(cols: dict, ln: Lane) -> list[_Reg]:
    """The lane's regions in table order, clipped to the lane (empty ones dropped), with
    deconvolved clusters kept only when complete (their fractions add up to 1)."""
    n = ln.y_bottom_px - ln.y_top_px + 1
    out = []
    for i in np.flatnonzero(cols["lane"] == ln.lane):
        a = max(0, int(cols["y_top_px"][i]) - ln.y_top_px)
        b = min(n - 1, int(cols["y_bottom_px"][i]) - ln.y_top_px)
        if b < a:
            continue
        fa, fb = _num(cols["fit_top_px"][i]), _num(cols["fit_bottom_px"][i])
        if np.isfinite(fa) and np.isfinite(fb) and fb >= fa:
            fa, fb = max(0, int(fa) - ln.y_top_px), min(n - 1, int(fb) - ln.y_top_px)
        else:
            fa, fb = a, b
        dec, cl, fr = cols["deconvolved"][i], _num(cols["cluster"][i]), _num(cols["fraction"][i])
        key = int(cl) if isinstance(dec, (bool, np.bool_)) and dec and np.isfinite(cl) and np.isfinite(fr) else None
        m = cols["background_method"][i]
        out.append(_Reg(a, b, fa, fb, _num(cols["y_px"][i]), _num(cols["sigma_px"][i]), _num(cols["snr"][i]),
                        m if isinstance(m, str) and m else None, key, fr if key is not None else 1.0))
    sums = {}
    for r in out:
        if r.cluster is not None:
            sums.setdefault(r.cluster, []).append(r.fraction)
    bad = {k for k, v in sums.items() if len(v) < 2 or abs(sum(v) - 1.0) > FRACTION_SUM_TOL}
    for r in out:
        if r.cluster in bad:
            r.cluster, r.fraction = None, 1.0
    return out


def _region_columns(regions: pd.DataFrame) -> dict:
    missing = [c for c in ("lane", "y_top_px", "y_bottom_px") if c not in regions]
    if missing:
        raise ValueError(f"regions table lacks column(s) {', '.join(missing)}")
    cols = {c: _col(regions, c, np.nan) for c in REGION_COLUMNS}
    cols["lane"] = regions["lane"].to_numpy()
    cols["background_method"] = _col(regions, "background_method", None)
    cols["deconvolved"] = _col(regions, "deconvolved", False)
    return cols


# --------------------------------------------------------------------------
# rows of the tables


def band_row(name: str, ln: Lane, *, top: int, bottom: int, y_px: float, sigma_px: float, volume: float,
             background: float, method: str, saturated_px: int, hot_px: int, snr: float,
             deconvolved: bool) -> dict:
    """One row of the bands table (``top``/``bottom`` in profile indices of ``ln``)."""
    return dict(image=name, lane=ln.lane, row=0, band_id=0, y_px=y_px, y_top_px=ln.y_top_px + top,
                y_bottom_px=ln.y_top_px + bottom, sigma_px=sigma_px, volume=volume, background=background,
                background_method=method, saturated_px=saturated_px, hot_px=hot_px, snr=snr,
                deconvolved=deconvolved, is_ladder=ln.is_ladder, piece=ln.piece)


def lane_row(name: str, ln: Lane, *, n_bands: int, lane_total: float, background: str) -> dict:
    """One row of the lanes table."""
    yt, yb = ln.y_top_px, ln.y_bottom_px
    return dict(image=name, lane=ln.lane, piece=ln.piece, x_left_px=ln.x_left_px, x_right_px=ln.x_right_px,
                x_center_px=ln.x_center_px, width_px=ln.width_px, y_top_px=yt, y_bottom_px=yb,
                slope_dx_per_dy=ln.slope, x_center_top_px=ln.x_center_px + ln.slope * (yt - ln.y_ref_px),
                x_center_bottom_px=ln.x_center_px + ln.slope * (yb - ln.y_ref_px), is_ladder=ln.is_ladder,
                n_bands=n_bands, lane_total=lane_total, background=background)


# --------------------------------------------------------------------------
# measurement


def _background(ctx: G.LaneContext, regs: list[_Reg], method: str, rows: list | None = None):
    """(baseline, method per region) of one lane, placed under the regions' background rows.

    ``rows``: rows ``(top, bottom)`` (profile indices) of the piece's band rows this lane
    lacks (:func:`piece_rows`); they are kept out of the baseline as band rows and joined
    with the regions they touch, as a deconvolved cluster's members are, but not measured."""
    bg_regs = [G.Region(r.fa, r.fb, r.cluster, r.method) for r in regs]
    bg, methods = G.lane_background(method, ctx, _joined_rows(bg_regs, rows or []))
    return bg, methods[:len(regs)]


def _joined_rows(regs: list[G.Region], rows: list) -> list[G.Region]:
    """``regs`` followed by ``rows`` as regions, each row joined (one ``cluster`` key) with
    the regions it overlaps or nearly touches (fewer than :data:`MIN_FLANK_PX` free rows
    between them: no flank) and with those regions' whole clusters."""
    if not rows:
        return regs
    items = list(regs) + [G.Region(int(r[0]), int(r[1])) for r in rows]
    parent = list(range(len(items)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first = {}
    for i, r in enumerate(regs):
        if r.cluster is not None:
            parent[find(i)] = find(first.setdefault(r.cluster, i))
    for j in range(len(regs), len(items)):
        p = items[j]
        for i, r in enumerate(items):
            if i != j and r.top <= p.bottom + MIN_FLANK_PX and p.top <= r.bottom + MIN_FLANK_PX:
                parent[find(i)] = find(j)
    joined = {find(j) for j in range(len(regs), len(items))}
    return [r._replace(cluster=("piece-row", find(i))) if find(i) in joined else r for i, r in enumerate(items)]


#: fewest free rows on a side that give a flank line (:func:`~.background.flank_background`'s 3)
MIN_FLANK_PX = 3
#: a row of a membrane piece is a band row of every sample lane of the piece (for the
#: baseline) when more than this share of them hold a band in it: a simple majority
PIECE_ROW_SHARE = 0.5
#: ... or when at least this many of them do (three lanes finding a band at one row is a row of
#: the piece, not one lane's noise or a mark across two lanes: a weak band next to a strong one
#: is found in a few lanes only, and where it is placed its share is kept off the strong band's
#: volume in every lane alike, see :func:`_with_rows`)
PIECE_ROW_MIN_LANES = 3


def piece_rows(lanes: list[Lane], regs: dict, contexts: dict) -> dict:
    """``{lane: [(top, bottom, y_px, sigma_px), ...]}``: the band rows of its piece a sample
    lane lacks (profile indices; the centre in absolute px and the SD are the members'
    offset-corrected medians, NaN where no member has a fitted centre and SD).

    A weak band next to a strong one is found in some lanes and not in others; where it is
    found the strong band is fitted with it and its baseline runs under both, where it is not
    the strong band's flank lies on it, so the strong band's volume would depend on whether
    its neighbour was detected in that lane. The regions of a piece's sample lanes are grouped
    into rows (:func:`~exoimage.blot.bands.assign_rows` on their rows' mid-points, a quarter
    of their height as SD, corrected for the lanes' offsets: the regions' rows alone decide,
    so regions drawn by hand give detection's rows); a row that holds a band in more than
    :data:`PIECE_ROW_SHARE` of the lanes, or in at least :data:`PIECE_ROW_MIN_LANES`, is a band
    row of every lane, placed in a lane without one at the median of the members'
    offset-corrected tops and bottoms. A row is not placed where one of the lane's regions is
    centred inside it or covers its centre (the band is there, counted in another row).
    """
    ids, ys, sds, ext, fit = [], [], [], [], []
    for ln in lanes:
        if ln.is_ladder:
            continue
        for r in regs.get(ln.lane, []):
            ids.append(ln.lane)
            ys.append(ln.y_top_px + 0.5 * (r.a + r.b))
            sds.append(0.25 * (r.b - r.a + 1))
            ext.append((ln.y_top_px + r.a, ln.y_top_px + r.b))
            fit.append((r.y, r.sigma))
    out = {}
    if not ids:
        return out
    det = {ln.lane: contexts[ln.lane].profile - contexts[ln.lane].ball for ln in lanes}
    row, off = assign_rows(lanes, np.array(ids), np.array(ys), np.array(sds), det)
    ids, ys, ext, fit = np.array(ids), np.array(ys, float), np.array(ext, float), np.array(fit, float)
    by_lane = {ln.lane: ln for ln in lanes}
    for pc in sorted({ln.piece for ln in lanes}):
        sample = [ln.lane for ln in lanes if ln.piece == pc and not ln.is_ladder]
        for rw in sorted(set(row[np.isin(ids, sample)].tolist())):
            m = row == rw
            have = set(ids[m].tolist())
            if len(have) < PIECE_ROW_MIN_LANES and len(have) <= PIECE_ROW_SHARE * len(sample):
                continue
            o = np.array([off[v] for v in ids[m]])
            lo, hi = float(np.median(ext[m, 0] - o)), float(np.median(ext[m, 1] - o))
            ok = np.isfinite(fit[m]).all(1)
            yc, sg = ((float(np.median(fit[m][ok, 0] - o[ok])), float(np.median(fit[m][ok, 1])))
                      if ok.any() else (np.nan, np.nan))
            for lane_no in sample:
                if lane_no in have:
                    continue
                ln = by_lane[lane_no]
                a = max(0, int(round(lo + off[lane_no])) - ln.y_top_px)
                b = min(ln.y_bottom_px - ln.y_top_px, int(round(hi + off[lane_no])) - ln.y_top_px)
                c = 0.5 * (a + b)
                own = regs.get(lane_no, [])
                if b < a or any(a <= 0.5 * (r.a + r.b) <= b or r.a <= c <= r.b for r in own):
                    continue
                out.setdefault(lane_no, []).append((a, b, yc + off[lane_no], sg))
    return out


def measure(image, lanes: list[Lane], regions: pd.DataFrame, params: BlotParams | None = None, *,
            name: str = "", pieces: list[Piece] | None = None, lane_totals: bool = False) -> BlotResult:
    """Measure band regions in lanes.

    Parameters
    ----------
    image : Image or ndarray
        Raw pixel values.
    lanes : list of Lane
        E.g. ``BlotResult.lane_geometry`` or :func:`exoimage.blot.manual.lanes_from_outlines`.
    regions : DataFrame
        Band regions (:data:`REGION_COLUMNS`; ``lane, y_top_px, y_bottom_px`` required),
        e.g. ``BlotResult.regions`` or :func:`exoimage.blot.manual.regions_from_outlines`.
    params : BlotParams, optional
        ``polarity``, ``background``, ``ball_radius_px``, ``edge_border_px``, ``low_snr``,
        ``ladder_lane``/``ladder_kda`` are used (nothing is detected).
    name : str
        Value of the ``image`` column.
    pieces : list of Piece, optional
        Membrane pieces (default: the lanes' bounding boxes).
    lane_totals : bool
        Also compute each lane's whole-lane signal with the lane-edge background.

    Returns
    -------
    BlotResult
        ``lanes``/``bands`` tables as :func:`~exoimage.blot.quantify_blot` gives them and
        ``regions``, the regions as measured (one row per band, same order).
    """
    params = params or BlotParams()
    prep = prepare(image, params)
    if not lanes:
        raise ImageReadError(prep.image.path, "no lanes to quantify: draw at least one lane")
    return measure_prepared(prep, lanes, regions, params, name=name, pieces=pieces, lane_totals=lane_totals)


def measure_prepared(prep: Prepared, lanes: list[Lane], regions: pd.DataFrame, params: BlotParams, *,
                     name: str = "", pieces: list[Piece] | None = None, lane_totals: bool = False,
                     contexts: dict | None = None) -> BlotResult:
    """:func:`measure` on an image already :func:`prepare`-d (``contexts``: from
    :func:`lane_contexts` for these lanes and parameters, to save recomputing them)."""
    lanes = [replace(ln) for ln in lanes]
    if params.ladder_lane:
        if not any(ln.lane == params.ladder_lane for ln in lanes):
            raise ImageReadError(prep.image.path, f"ladder lane {params.ladder_lane} does not exist "
                                                  f"({len(lanes)} lanes found)")
        for ln in lanes:
            ln.is_ladder = ln.lane == params.ladder_lane
    cols = _region_columns(regions)
    unknown = sorted(set(np.asarray(cols["lane"]).tolist()) - {ln.lane for ln in lanes})
    if unknown:
        raise ValueError(f"regions refer to lane(s) {', '.join(map(str, unknown))}, which do not exist")
    if contexts is None or any(contexts.get(ln.lane) is None or contexts[ln.lane].lane != ln for ln in lanes):
        contexts = lane_contexts(prep, lanes, params)
    masks = _points(prep.saturated_mask), _points(prep.hot_mask)
    band_rows, region_rows, lane_rows = [], [], []
    lane_regs = {ln.lane: _lane_regions(cols, ln) for ln in lanes}
    missing = piece_rows(lanes, lane_regs, contexts)
    bgs = {ln.lane: _background(contexts[ln.lane], lane_regs[ln.lane], params.background, missing.get(ln.lane))
           for ln in lanes}
    skews = lane_skews(lanes, lane_regs, {k: contexts[k].profile - v[0] for k, v in bgs.items()}, contexts,
                       prep.noise_sd)
    for ln in lanes:
        ctx = contexts[ln.lane]
        regs = lane_regs[ln.lane]
        b_rows, r_rows, methods = _measure_lane(name, ctx, ln, regs, params, prep.noise_sd, masks,
                                                bgs[ln.lane], skews[ln.lane], missing.get(ln.lane))
        band_rows += b_rows
        region_rows += r_rows
        tot = np.nan
        if lane_totals:
            tot = float((ctx.profile - G.edge_background(prep.signal, ln, params.edge_border_px)).sum())
        lane_rows.append(lane_row(name, ln, n_bands=len(regs), lane_total=tot,
                                  background=G.lane_label(params.background, methods)))
    det = {ln.lane: contexts[ln.lane].profile - contexts[ln.lane].ball for ln in lanes}
    bands, regs_out, ladder, warns = _finish(pd.DataFrame(band_rows, columns=BAND_COLUMNS + ["piece"]),
                                             pd.DataFrame(region_rows, columns=REGION_COLUMNS),
                                             lanes, det, params, prep)
    return BlotResult(lanes=pd.DataFrame(lane_rows, columns=LANE_COLUMNS), bands=bands, lane_geometry=lanes,
                      pieces=list(pieces) if pieces is not None else pieces_of(lanes), polarity=prep.polarity,
                      polarity_source=prep.polarity_source, ceiling=prep.ceiling,
                      ceiling_source=prep.ceiling_source, noise_sd=prep.noise_sd, warnings=warns,
                      saturated_mask=prep.saturated_mask, hot_mask=prep.hot_mask, ladder=ladder, params=params,
                      regions=regs_out)


def _points(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero(mask)`` of an image mask; a mask with no pixel set (the usual case) is only
    tested, not scanned for indices (several ms on a large image)."""
    if not mask.any():
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    return np.nonzero(mask)


#: an isolated band teaches its lane's band shape (:func:`lane_skews`) when its region's both
#: ends have fallen below this share of its peak (its flanks are its own) ...
SHAPE_END_SHARE = 0.1
#: ... and its peak stands this many profile-noise SDs out
SHAPE_MIN_SNR = 10.0


def lane_skews(lanes: list[Lane], regs: dict, nets: dict, contexts: dict, noise: float) -> dict:
    """``{lane: s_top / s_bottom}``: the band shape of each lane for sharing a cluster's volume.

    Real bands are not Gaussian: on the NEB ladder gel an isolated band's profile trails towards
    the wells (s_top / s_bottom 1.3-1.8), so two symmetric Gaussians give the upper band of a pair
    the lower one's trailing edge. The shape is learned where it can be seen: the ratio of the half widths
    at half maximum (:func:`~exoimage.blot.bands.band_skew`) of every isolated band of the lane (no
    cluster, not a smear: at most the ball radius tall) whose region ends below
    :data:`SHAPE_END_SHARE` of its peak on both sides and whose peak stands
    :data:`SHAPE_MIN_SNR` profile-noise SDs out; a lane's is the median over all such bands of
    its membrane piece (one gel or membrane, one run: one shape; a lane's own one or two bands
    are too few: 0.4-2.6 between the lanes of one Kodak membrane, 0.7-2.0 as piece medians),
    else 1 (a Gaussian). ``nets``: ``{lane: profile minus its background}``.
    """
    own = {}
    for ln in lanes:
        net, out = nets[ln.lane], []
        pn = noise * np.sqrt(ln.width_px)
        for r in regs.get(ln.lane, []):
            if r.cluster is not None or r.b - r.a + 1 > contexts[ln.lane].radius_px or r.b - r.a < 4:
                continue
            seg = net[r.a:r.b + 1]
            pk = float(seg.max())
            if pk < SHAPE_MIN_SNR * pn or max(seg[0], seg[-1]) > SHAPE_END_SHARE * pk:
                continue
            k = band_skew(seg)
            if np.isfinite(k):
                out.append(k)
        own[ln.lane] = out
    res = {}
    for ln in lanes:
        v = [q for o in lanes if o.piece == ln.piece for q in own[o.lane]]
        res[ln.lane] = float(np.median(v)) if v else 1.0
    return res


def split_groups(regs: list, radius_px: float) -> list[list[int]]:
    """Groups of a lane's regions (indices) whose joint rows :func:`_cluster_shares` shares out.

    A group is a complete deconvolved cluster, together with any region that lies between
    two such clusters touching both (no free row on either side: a band found in the gap
    between two clusters, ``BandFit.hidden``; it lies on both clusters' tails and they on
    its, so the three are one run of overlapping bands) and those clusters' runs. A group
    with a member taller than ``radius_px`` (a smear: it has no band shape) or one without a
    fitted centre and SD (drawn by hand) is not shared out (the regions' ``fraction`` is)."""
    order = sorted(range(len(regs)), key=lambda i: regs[i].a)
    key = {i: regs[i].cluster for i in order}
    for j in range(1, len(order) - 1):
        p, q, n = (regs[order[j + d]] for d in (-1, 0, 1))
        if q.cluster is None and p.cluster is not None and n.cluster is not None and q.a == p.b + 1 \
                and n.a == q.b + 1:
            k_p, k_n = key[order[j - 1]], key[order[j + 1]]
            for i in order:
                if key[i] == k_n:
                    key[i] = k_p
            key[order[j]] = k_p
    groups = {}
    for i in order:
        if key[i] is not None:
            groups.setdefault(key[i], []).append(i)
    return [g for g in groups.values()
            if all(np.isfinite(regs[i].y) and np.isfinite(regs[i].sigma)
                   and min(regs[i].b - regs[i].a + 1, BAND_SPAN_SD * regs[i].sigma) <= radius_px for i in g)]


#: a band's own extent is this many of its fitted SDs (+-3 SD: 99.7 % of a Gaussian); a region
#: taller than the ball whose fitted band is not (a neighbour's rows joined it) is no smear
BAND_SPAN_SD = 6.0


def _cluster_shares(regs: list, net: np.ndarray, ln: Lane, radius_px: float, skew: float,
                    clipped: np.ndarray | None = None) -> dict:
    """``{region index: (share, (a, b))}``: each group's (:func:`split_groups`) net volume over
    its rows ``a..b`` shared among its bands by the lane's band shape fitted to the net profile
    (:func:`~exoimage.blot.bands.split_shares`, ``skew``: :func:`lane_skews`), not by the
    Gaussian areas detection fitted above the rolling ball: the ball rises into a run of
    overlapping bands, and what it cut is shared as the bands' shapes share it."""
    out = {}
    for g in split_groups(regs, radius_px):
        a, b = min(regs[i].a for i in g), max(regs[i].b for i in g)
        fr = split_shares(np.arange(a, b + 1), net[a:b + 1], [regs[i].y - ln.y_top_px for i in g],
                          [regs[i].sigma for i in g], skew,
                          None if clipped is None else clipped[a:b + 1] == 0)
        out.update((i, (float(f), (a, b))) for i, f in zip(g, fr))
    return out


def _with_rows(regs: list[_Reg], rows: list | None, ln: Lane) -> list[_Reg]:
    """``regs`` followed by the piece's band rows the lane lacks (:func:`piece_rows`) as
    regions of their own, each joined (one ``cluster`` key, as :func:`_joined_rows` joins
    them for the baseline) with the regions it overlaps or nearly touches.

    Where a weak band of a row is found in a lane it shares its joint rows with its strong
    neighbour; where it is not found there, the neighbour's region would keep the weak band's
    signal. Placed as a member of the neighbour's cluster (the row's centre and SD), it takes
    its share in every lane alike (the share itself is not reported: no band was found)."""
    if not rows:
        return regs
    jr = _joined_rows([G.Region(r.fa, r.fb, r.cluster, r.method) for r in regs], rows)
    out = [replace(r, cluster=j.cluster) for r, j in zip(regs, jr)]
    # a row whose centre is off its rows in this lane (cut at the lane's end) is no member
    out += [_Reg(int(w[0]), int(w[1]), int(w[0]), int(w[1]), float(w[2]), float(w[3]), np.nan, None, j.cluster,
                 np.nan) for w, j in zip(rows, jr[len(regs):])
            if w[0] <= float(w[2]) - ln.y_top_px <= w[1]]
    return out


def _measure_lane(name: str, ctx: G.LaneContext, ln: Lane, regs: list[_Reg], params: BlotParams,
                  noise: float, masks, bg_methods, skew: float = 1.0, rows: list | None = None
                  ) -> tuple[list, list, list]:
    """Band rows, region rows and background methods of one lane's regions (``bg_methods``:
    :func:`_background`'s baseline and methods; ``skew``: :func:`lane_skews`; ``rows``: the
    piece's band rows the lane lacks, :func:`piece_rows`, which share clusters' rows as members
    (:func:`_with_rows`) without being measured)."""
    bg, methods = bg_methods
    net = ctx.profile - bg
    sat_p, hot_p = mask_profile(masks[0], ln), mask_profile(masks[1], ln)
    share = _cluster_shares(_with_rows(regs, rows, ln), net, ln, ctx.radius_px, skew, sat_p)
    span = {}
    for r in regs:
        if r.cluster is not None:
            c = span.setdefault(r.cluster, [r.a, r.b])
            c[0], c[1] = min(c[0], r.a), max(c[1], r.b)
    # a cluster's fractions as shared out (normalised within the cluster where a gap band
    # joined it to another: they add up to 1, so measuring these regions again shares alike)
    csum = {}
    for i, r in enumerate(regs):
        if r.cluster is not None and i in share:
            csum[r.cluster] = csum.get(r.cluster, 0.0) + share[i][0]
    band_rows, region_rows = [], []
    for i, (r, m) in enumerate(zip(regs, methods)):
        seg = net[r.a:r.b + 1]
        if i in share:
            fr, (a, b) = share[i]
            vol = float(net[a:b + 1].sum()) * fr
        elif r.cluster is not None:
            a, b = span[r.cluster]
            vol = float(net[a:b + 1].sum()) * r.fraction
        else:
            vol = float(seg.sum())
        if np.isfinite(r.y) and np.isfinite(r.sigma):
            # as detected: the fitted centre and width (a deconvolved component's centre
            # may lie just outside its share of the cluster's rows)
            y, sd = r.y, r.sigma
        else:
            pos = np.clip(seg, 0, None)
            yy = np.arange(r.a, r.b + 1, dtype=float)
            if pos.sum() > 0:
                yc = float((pos * yy).sum() / pos.sum())
                sd = float(np.sqrt((pos * (yy - yc) ** 2).sum() / pos.sum()))
            else:
                yc, sd = 0.5 * (r.a + r.b), 0.0
            y = ln.y_top_px + yc
        snr = r.snr if np.isfinite(r.snr) else float(seg.max() / ln.width_px / noise)
        band_rows.append(band_row(
            name, ln, top=r.a, bottom=r.b, y_px=y, sigma_px=sd, volume=vol,
            background=float(bg[r.a:r.b + 1].sum()), method=m,
            saturated_px=int(sat_p[r.a:r.b + 1].sum()) if sat_p is not None else 0,
            hot_px=int(hot_p[r.a:r.b + 1].sum()) if hot_p is not None else 0,
            snr=snr, deconvolved=r.cluster is not None))
        region_rows.append(dict(lane=ln.lane, y_top_px=ln.y_top_px + r.a, y_bottom_px=ln.y_top_px + r.b,
                                y_px=y, sigma_px=sd, snr=snr, background_method=m,
                                deconvolved=r.cluster is not None,
                                cluster=r.cluster if r.cluster is not None else np.nan,
                                fraction=share[i][0] / csum[r.cluster] if i in share and r.cluster is not None
                                and csum[r.cluster] > 0 else r.fraction, fit_top_px=ln.y_top_px + r.fa,
                                fit_bottom_px=ln.y_top_px + r.fb))
    return band_rows, region_rows, methods


def _finish(bands: pd.DataFrame, regions: pd.DataFrame, lanes: list[Lane], det: dict, params: BlotParams,
            prep: Prepared):
    """QC flags, rows, molecular weights (a failure is a warning), then band ids in lane/y order."""
    bands["saturated"] = bands["saturated_px"] > 0
    bands["low_snr"] = bands["snr"] < params.low_snr
    # a volume within BELOW_NOISE_SD noise SDs of zero (or negative) is not a measured signal: the
    # SD of a region's sum of R rows x W columns of independent pixel noise is noise_sd*sqrt(R*W)
    width = bands["lane"].map({ln.lane: ln.width_px for ln in lanes}).to_numpy(float)
    rows_n = (bands["y_bottom_px"] - bands["y_top_px"] + 1).to_numpy(float)
    vol_sd = prep.noise_sd * np.sqrt(np.clip(rows_n * width, 1.0, None))
    bands["below_noise"] = bands["volume"].to_numpy(float) < BELOW_NOISE_SD * vol_sd
    bands["mw_kda"] = np.nan
    bands["size_bp"] = np.nan
    rows, offsets = assign_rows(lanes, bands["lane"].to_numpy(), bands["y_px"].to_numpy(),
                                bands["sigma_px"].to_numpy(), det)
    if len(bands):
        bands["row"] = rows
    warns = list(prep.warnings)
    ladder = {}
    known = load_ladder(params.ladder) if params.ladder else None
    sizes = list(known.sizes) if known is not None else params.ladder_kda
    column = "size_bp" if known is not None and known.unit == "bp" else "mw_kda"
    if params.ladder_lane and sizes:
        try:
            ladder = _apply_ladder(bands, lanes, offsets, params, prep.image.path, sizes, column)
        except ImageReadError as exc:
            warns.append(f"no molecular weights: {exc.problem}")
        if ladder and known is not None and known.masses_ng is not None:
            ladder["check"] = ladder_mass_check(bands, ladder, known)
    order = bands.sort_values(["lane", "y_px"], kind="stable").index
    bands = bands.loc[order].reset_index(drop=True)
    regions = regions.loc[order].reset_index(drop=True)
    bands["band_id"] = np.arange(1, len(bands) + 1)
    return bands[BAND_COLUMNS + ["piece"]], regions, ladder, warns


def lane_traces(image, lanes: list[Lane], regions: pd.DataFrame | None = None,
                params: BlotParams | None = None) -> dict:
    """Lane profile and the background :func:`measure` subtracts, for every lane, for plotting.

    Returns ``{lane: DataFrame(y_px, profile, background)}`` in signal units
    (bands positive), rows ``y_top..y_bottom`` of the lane.
    """
    params = params or BlotParams()
    regions = regions if regions is not None else pd.DataFrame(columns=["lane", "y_top_px", "y_bottom_px"])
    prep = prepare(image, params)
    cols = _region_columns(regions)
    out = {}
    contexts = lane_contexts(prep, lanes, params)
    lane_regs = {ln.lane: _lane_regions(cols, ln) for ln in lanes}
    missing = piece_rows(lanes, lane_regs, contexts)
    for lane_no, ctx in contexts.items():
        ln = ctx.lane
        bg, _ = _background(ctx, lane_regs[ln.lane], params.background, missing.get(ln.lane))
        out[lane_no] = pd.DataFrame({"y_px": np.arange(ln.y_top_px, ln.y_bottom_px + 1),
                                     "profile": ctx.profile, "background": bg})
    return out


def _apply_ladder(bands, lanes, offsets, params, path, sizes, column="mw_kda") -> dict:
    """Apparent molecular weights (``column``: ``mw_kda`` or ``size_bp``) of all bands of
    the ladder's piece from the marker ``sizes`` (largest first), in place; the fit."""
    lad = next(ln for ln in lanes if ln.lane == params.ladder_lane)
    lb = bands[bands["lane"] == lad.lane]
    if len(lb) < 2:
        raise ImageReadError(path, f"ladder lane {lad.lane}: found {len(lb)} bands, need at least 2")
    kda = [float(k) for k in sizes]
    # keep the strongest bands if there are far more than markers
    if len(lb) > len(kda) + 3:
        lb = lb.nlargest(len(kda) + 3, "volume")
    try:
        y_l, k_l = ladder_calibration(lb["y_px"].to_numpy(), kda)
    except ValueError as exc:
        raise ImageReadError(path, f"ladder lane {lad.lane}: {exc}") from None
    # smile: offset of the ladder lane from a fit of the sample lanes' offsets against x
    same = [ln for ln in lanes if ln.piece == lad.piece and ln.lane in offsets]
    xs = np.array([ln.x_center_px for ln in same])
    os_ = np.array([offsets[ln.lane] for ln in same])
    if len(xs) >= 4:
        coef = np.polyfit(xs, os_, 2)
    elif len(xs) >= 2:
        coef = np.polyfit(xs, os_, 1)
    else:
        coef = np.array([0.0])
    lad_off = float(np.polyval(coef, lad.x_center_px))
    m = (bands["piece"] == lad.piece).to_numpy()
    lane_off = bands.loc[m, "lane"].map(lambda L: offsets.get(L, lad_off)).to_numpy(float)
    y_eq = bands.loc[m, "y_px"].to_numpy() - lane_off + lad_off
    bands.loc[m, column] = mw_from_y(y_eq, y_l, k_l)
    return {"lane": lad.lane, "y_px": y_l.tolist(), "kda": k_l.tolist(), "unit": "bp" if column == "size_bp" else "kDa"}


#: columns of the mass-proportionality check (:func:`ladder_mass_check`, ``ladder_check.csv``)
LADDER_CHECK_COLUMNS = ["image", "ladder", "lane", "size", "unit", "y_px", "volume", "mass_ng", "expected_volume",
                        "error_pct"]


def ladder_mass_check(bands: pd.DataFrame, ladder: dict, known) -> pd.DataFrame:
    """Volume against the vendor's mass for every matched band of the ladder lane.

    The lane's scale is the median of volume / mass (robust to one misassigned band);
    ``error_pct`` = 100 * (volume / (scale * mass) - 1). The table's ``attrs`` hold the
    mean |error| (%) and, with ``known.ratio_bands``, the volume ratio of those two bands
    and the vendor's mass ratio. An image row's ``image`` is filled by the caller's table.
    """
    lb = bands[bands["lane"] == ladder["lane"]]
    mass = dict(zip(known.sizes, known.masses_ng))
    rows = []
    for y, sz in zip(ladder["y_px"], ladder["kda"]):
        i = (lb["y_px"] - y).abs().idxmin()
        rows.append(dict(image=lb.loc[i, "image"], ladder=known.name, lane=ladder["lane"], size=float(sz),
                         unit=known.unit, y_px=float(y), volume=float(lb.loc[i, "volume"]),
                         mass_ng=float(mass.get(float(sz), np.nan))))
    t = pd.DataFrame(rows, columns=LADDER_CHECK_COLUMNS)
    if not len(t):
        return t
    ok = t["mass_ng"] > 0
    scale = float(np.median(t.loc[ok, "volume"] / t.loc[ok, "mass_ng"])) if ok.any() else np.nan
    t["expected_volume"] = scale * t["mass_ng"]
    t["error_pct"] = 100 * (t["volume"] / t["expected_volume"] - 1)
    t.attrs["mean_abs_error_pct"] = float(t["error_pct"].abs().mean())
    t.attrs["n_bands"] = int(len(t))
    t.attrs["n_sizes"] = len(known.sizes)
    if known.ratio_bands:
        a, b = (t[t["size"] == v] for v in known.ratio_bands)
        if len(a) and len(b):
            t.attrs["ratio"] = float(a["volume"].iloc[0] / b["volume"].iloc[0])
        t.attrs["ratio_expected"] = float(mass[known.ratio_bands[0]] / mass[known.ratio_bands[1]])
    return t
