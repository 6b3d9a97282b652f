"""Quantify one blot: lanes, bands, volumes, QC; file wrapper and overlay drawing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.signal import find_peaks

from ..io import Image, ImageReadError, read_image, validate_image
from ..params import check_instance
from . import bands as B
from .lanes import Lane, Piece, find_lanes, find_pieces, lanes_from_bounds
from .signal import (POLARITIES, clipped_masks, detect_ceiling, detect_polarity, image_warnings,
                     pixel_noise_sd, to_signal)

__all__ = ["BlotParams", "BlotResult", "BlotFileResult", "quantify_blot", "analyze_blot_file",
           "draw_blot_overlay", "measure_rectangle", "LANE_COLUMNS", "BAND_COLUMNS", "IMAGE_COLUMNS",
           "DEFAULT_BACKGROUND", "MAX_LANES", "MAX_LADDER_MARKERS", "NO_LANES"]

#: default background: rolling ball on the lane profile (see docs/blot.md)
DEFAULT_BACKGROUND = "auto"

#: most lanes a blot parameter may name: the widest common gels have 26-30 wells (e.g. 26-well
#: midi gels); 100 leaves room for several membrane pieces and bounds the work a typo can ask for
MAX_LANES = 100

#: most molecular-weight markers in a ladder: commercial ladders have 8-15 bands; 30 leaves room and
#: bounds the ladder matching (it tries the combinations of up to 3 missing markers)
MAX_LADDER_MARKERS = 30

#: the problem of a blot where no lane was found (it names the parameters; front ends reword it,
#: :func:`exoimage.params.reword`)
NO_LANES = "no lanes found (give the count, n_lanes, or the boundaries, lane_bounds)"

LANE_COLUMNS = ["image", "lane", "piece", "x_left_px", "x_right_px", "x_center_px", "width_px",
                "y_top_px", "y_bottom_px", "slope_dx_per_dy", "x_center_top_px", "x_center_bottom_px",
                "is_ladder", "n_bands", "lane_total", "background"]
BAND_COLUMNS = ["image", "lane", "row", "band_id", "y_px", "y_top_px", "y_bottom_px", "sigma_px",
                "volume", "background", "saturated", "saturated_px", "hot_px", "snr", "low_snr",
                "deconvolved", "is_ladder", "mw_kda", "background_method"]
IMAGE_COLUMNS = ["image", "status", "error", "polarity", "polarity_source", "dtype", "file_format",
                 "ceiling", "ceiling_source", "noise_sd", "n_pieces", "n_lanes", "n_rows", "n_bands",
                 "n_saturated_bands", "background", "warnings"]


@dataclass
class BlotParams:
    """Parameters of :func:`quantify_blot` (pixel units: px; intensities: raw linear units).

    Attributes
    ----------
    polarity : str
        ``'auto'``, ``'light-bands'`` or ``'dark-bands'``.
    n_lanes : int or None
        Force this many lanes per membrane piece.
    lane_bounds : list of (int, int) or None
        Explicit lanes ``[(x_left_px, x_right_px), ...]`` (inclusive), full height.
    background : str
        ``'auto'`` (default: ``'edge'`` for lanes with free membrane beside them,
        else ``'rolling-ball'``), ``'rolling-ball'``, ``'valley'``, ``'edge'`` or ``'none'``.
    ball_radius_px : float or None
        Rolling-ball radius along the lane, px (default: 10 % of the lane length, at least 25).
    min_snr : float
        Detection threshold: band peak / noise SD of the baseline-corrected lane profile.
    min_snr_px : float
        Detection threshold: band peak per pixel / pixel noise SD (same scale as ``snr``).
    low_snr : float
        Bands with ``snr`` (peak per pixel / pixel noise SD) below this are flagged ``low_snr``.
    resolve : bool
        Split overlapping bands by fitting Gaussians.
    ladder_lane : int or None
        Lane number (1-based) of the molecular-weight marker.
    ladder_kda : list of float or None
        Marker weights in kDa, largest first.
    edge_border_px : int
        Width of the strips beside a lane used by the ``'edge'`` background, px.
    row_regions : bool
        Give faint bands the region shape of their row's strong bands (same protein,
        same shape), instead of edges set by noise.
    """

    polarity: str = field(default="auto", metadata={
        "type": "str", "choices": ("auto",) + POLARITIES, "cli": "--polarity", "label": "Polarity",
        "help": "bands lighter (chemiluminescence) or darker (film) than the background in the raw values, "
                "or auto (WhiteIsZero TIFFs count as light-bands)"})
    n_lanes: int | None = field(default=None, metadata={
        "type": "int", "min": 1, "max": MAX_LANES, "optional": True, "aliases": ("lanes",), "cli": "--lanes",
        "metavar": "N", "label": "Lanes", "auto": "found automatically",
        "help": "number of lanes per membrane piece"})
    lane_bounds: list | None = field(default=None, metadata={
        "type": "int_pairs", "unit": "px", "min": 0, "max_len": MAX_LANES, "optional": True,
        "cli": "--lane-bounds", "label": "Lane bounds", "auto": "lanes found automatically", "advanced": True,
        "help": "explicit lanes as inclusive column ranges in px, e.g. 40-90,110-160 (full image height; "
                "overrides the lane count)"})
    # the choices: exoimage.blot.bands.BACKGROUNDS (a registry of backgrounds is coming, issue 11)
    background: str = field(default=DEFAULT_BACKGROUND, metadata={
        "type": "str", "choices": ("auto",) + B.BACKGROUNDS, "cli": "--background", "label": "Background",
        "help": "background under the bands: edge (median of the pixels beside the lane, per row), "
                "rolling-ball (on the lane profile), valley (valley-to-valley lines), none (raw sums = "
                "ImageJ RawIntDen); auto = rolling ball refined by a least-squares line through each "
                "band's flanks, and the lane-edge background under smears where lanes have free membrane "
                "beside them"})
    ball_radius_px: float | None = field(default=None, metadata={
        "type": "float", "unit": "px", "min": 0, "min_exclusive": True, "optional": True,
        "cli": "--ball-radius", "metavar": "PX", "label": "Ball radius", "auto": "10 % of the lane length, >= 25 px",
        "advanced": True, "decimals": 1, "help": "rolling-ball radius along the lane"})
    min_snr: float = field(default=4.0, metadata={
        "type": "float", "unit": "noise SD", "min": 0, "min_exclusive": True, "cli": "--min-snr", "metavar": "SD",
        "label": "Min band SNR", "decimals": 2, "help": "smallest band peak, in noise SDs of the lane profile"})
    min_snr_px: float = field(default=2.0, metadata={
        "type": "float", "unit": "noise SD", "min": 0, "min_exclusive": True, "cli": "--min-snr-px",
        "metavar": "SD", "label": "Min band SNR per pixel", "advanced": True, "decimals": 2,
        "help": "smallest band peak per pixel, in pixel noise SDs"})
    low_snr: float = field(default=3.0, metadata={
        "type": "float", "unit": "noise SD", "min": 0, "cli": "--low-snr", "metavar": "SD",
        "label": "Low SNR flag", "advanced": True, "decimals": 2,
        "help": "bands whose snr (peak per pixel / pixel noise SD) is lower are flagged low_snr"})
    resolve: bool = field(default=True, metadata={
        "type": "bool", "cli": "--resolve", "label": "Split overlapping bands", "advanced": True,
        "help": "split overlapping bands by fitting Gaussians"})
    ladder_lane: int | None = field(default=None, metadata={
        "type": "int", "min": 1, "max": MAX_LANES, "at_most": "n_lanes", "optional": True,
        "cli": "--ladder-lane", "metavar": "K", "label": "Ladder lane", "auto": "none",
        "help": "lane number (1 = leftmost) of the molecular-weight marker"})
    ladder_kda: list | None = field(default=None, metadata={
        "type": "float_list", "unit": "kDa", "min": 0, "min_exclusive": True, "min_len": 2,
        "max_len": MAX_LADDER_MARKERS, "requires": "ladder_lane", "optional": True,
        "cli": "--ladder-kda", "metavar": "KDA,...", "label": "Ladder weights", "auto": "none",
        "help": "marker weights in kDa, largest first, e.g. 250,150,100,75,50,37,25,20,15,10"})
    edge_border_px: int = field(default=3, metadata={
        "type": "int", "unit": "px", "min": 1, "cli": "--edge-border", "metavar": "PX",
        "label": "Edge strip width", "advanced": True,
        "help": "width of the strips beside a lane used by the edge background"})
    row_regions: bool = field(default=True, metadata={
        "type": "bool", "cli": "--row-regions", "label": "Row-shaped regions", "advanced": True,
        "help": "give faint bands the region shape of their row's strong bands (same protein, same shape) "
                "instead of edges set by noise"})

    def __post_init__(self):
        self.check()

    def check(self):
        """Check every field against its metadata (:mod:`exoimage.params`).

        Raises
        ------
        exoimage.params.ParamError
            (a ``ValueError``) naming the parameter, its value and the problem.
        """
        check_instance(self)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class BlotResult:
    """Result of :func:`quantify_blot`: tables plus geometry for drawing."""

    lanes: pd.DataFrame
    bands: pd.DataFrame
    lane_geometry: list
    pieces: list
    polarity: str
    polarity_source: str
    ceiling: float | None
    ceiling_source: str
    noise_sd: float
    warnings: list
    saturated_mask: np.ndarray
    hot_mask: np.ndarray
    ladder: dict = field(default_factory=dict)
    params: BlotParams | None = None


def measure_rectangle(data: np.ndarray, x: int, y: int, w: int, h: int) -> float:
    """Sum of the pixel values in a rectangle: ImageJ's RawIntDen (background ``none``)."""
    return float(np.asarray(data)[y:y + h, x:x + w].sum(dtype=np.float64))


def _as_image(image) -> Image:
    if isinstance(image, Image):
        return image
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ImageReadError(None, f"expected a 2-D array, got shape {arr.shape}")
    return Image.from_array(arr)


def signal_of(img: Image, params: BlotParams):
    """(signal, polarity, polarity source): "more protein = larger number" in raw linear units."""
    if params.polarity == "auto":
        polarity = detect_polarity(img.data, img.white_is_zero)
        pol_src = "white_is_zero" if img.white_is_zero else "auto"
    else:
        polarity, pol_src = params.polarity, "given"
    return to_signal(img.data, polarity), polarity, pol_src


def quantify_blot(image, params: BlotParams | None = None, *, name: str = "", lane_totals: bool = False,
                  **overrides) -> BlotResult:
    """Find lanes and bands and measure band volumes in one blot image.

    Parameters
    ----------
    image : Image or ndarray
        Raw pixel values (never display-scaled data if raw exists).
    params : BlotParams, optional
        Parameters; keyword ``overrides`` replace single fields.
    name : str
        Value of the ``image`` column.
    lane_totals : bool
        Also compute each lane's whole-lane signal (``lane_total``, for
        total-protein normalisation) with the lane-edge background.

    Returns
    -------
    BlotResult
        ``lanes`` and ``bands`` tables (see ``LANE_COLUMNS``/``BAND_COLUMNS``),
        lane geometry, QC masks and the ladder fit.
    """
    params = params or BlotParams()
    if overrides:
        params = BlotParams(**{**params.as_dict(), **overrides})
    img = _as_image(image)
    data = img.data
    signal, polarity, pol_src = signal_of(img, params)
    ceiling, ceil_src = detect_ceiling(data, polarity)
    solid, hot = clipped_masks(data, ceiling, polarity)
    warns = list(img.warnings) + image_warnings(data, file_format=img.file_format, was_rgb=img.was_rgb,
                                                polarity=polarity)
    noise = pixel_noise_sd(signal)
    if params.lane_bounds:
        try:
            lanes = lanes_from_bounds(params.lane_bounds, data.shape)
        except ValueError as exc:
            raise ImageReadError(img.path, str(exc)) from None
        pieces = [Piece(1, 0, data.shape[0], 0, data.shape[1])]
    else:
        pieces = find_pieces(signal)
        lanes = find_lanes(signal, pieces, n_lanes=params.n_lanes)
    if params.ladder_lane:
        if not 1 <= params.ladder_lane <= len(lanes):
            raise ImageReadError(img.path, f"ladder lane {params.ladder_lane} does not exist "
                                           f"({len(lanes)} lanes found)")
        lanes[params.ladder_lane - 1].is_ladder = True

    solid_pts = np.nonzero(solid)
    hot_pts = np.nonzero(hot)
    rows_out = []
    lane_data = {}
    used = {}
    gaps = _lane_gaps(lanes, data.shape[1])
    det_profiles = {}
    lane_rows = []
    # pre-pass: profiles, baselines and the clearly detected bands of every lane
    # (support for weaker bands beside strong ones in the other lanes)
    pre = {}
    for ln in lanes:
        prof = B.lane_profile(signal, ln)
        radius = params.ball_radius_px or max(25.0, 0.1 * len(prof))
        rb = B.rolling_ball_background(prof, radius)
        c = prof - rb
        mad = 1.4826 * float(np.median(np.abs(c - np.median(c))))
        pn = max(noise * np.sqrt(ln.width_px), mad)
        cs = ndi.gaussian_filter1d(c, 1.5, mode="nearest")
        thr = params.min_snr * pn
        pk, _ = find_peaks(cs, height=max(thr, params.min_snr_px * noise * ln.width_px), prominence=thr)
        pre[ln.lane] = (prof, radius, rb, ln.y_top_px + pk)
    for ln in lanes:
        prof, radius, rb, _ = pre[ln.lane]
        n = len(prof)
        support = np.concatenate([pre[o.lane][3] for o in lanes
                                  if o.piece == ln.piece and o.lane != ln.lane and not o.is_ladder]
                                 + [np.zeros(0)]) - ln.y_top_px
        sup_tol = 6.0 + 0.03 * n  # rows may shift a little from lane to lane (smile)
        method = params.background
        free = min(gaps[o.lane] for o in lanes if o.piece == ln.piece)
        bg_edge = None
        if method in ("auto", "edge") and free >= 2:
            bg_edge = B.edge_background(signal, ln, min(params.edge_border_px, free))
        # bands are detected above the rolling ball (least noisy); broad bands (smears) the
        # ball partly eats get their regions redrawn above the lane-edge background below
        corr_det = prof - rb
        # profile noise: pixel noise summed over the lane width, or the spread of the
        # baseline-corrected profile itself (membrane texture), whichever is larger
        mad = 1.4826 * float(np.median(np.abs(corr_det - np.median(corr_det))))
        pnoise = max(noise * np.sqrt(ln.width_px), mad)
        fits = B.find_bands(corr_det, pnoise, min_snr=params.min_snr, resolve=params.resolve,
                            min_height=params.min_snr_px * noise * ln.width_px,
                            min_prominence=params.min_snr * noise * np.sqrt(ln.width_px),
                            support=support, support_tol_px=sup_tol)
        # second pass: the spread measured outside the bands found (a lane full of
        # bands, like a ladder, otherwise inflates the noise and hides faint bands)
        outside = np.ones(n, bool)
        for f in fits:
            outside[f.top:f.bottom + 1] = False
        if 0.2 * n <= outside.sum() <= 0.7 * n:  # only for lanes crowded with bands
            rest = corr_det[outside]
            mad2 = 1.4826 * float(np.median(np.abs(rest - np.median(rest))))
            pnoise2 = max(noise * np.sqrt(ln.width_px), mad2)
            if pnoise2 < 0.8 * pnoise:
                pnoise = pnoise2
                fits = B.find_bands(corr_det, pnoise, min_snr=params.min_snr, resolve=params.resolve,
                                    min_height=params.min_snr_px * noise * ln.width_px,
                                    min_prominence=params.min_snr * noise * np.sqrt(ln.width_px),
                            support=support, support_tol_px=sup_tol)
        det_profiles[ln.lane] = corr_det
        if method == "auto" and bg_edge is not None:
            # smears the ball ate before they could be detected: broad peaks above the
            # lane-edge background where no band was found
            fits = _add_broad_bands(fits, prof - bg_edge, radius, params.min_snr,
                                    noise * np.sqrt(ln.width_px))
        if method == "auto":
            # rolling ball under sharp bands (least noise); under bands broader than the
            # ball (smears, which the ball partly eats) the lane-edge background when
            # every lane of the piece has free membrane beside it
            if not any(f.bottom - f.top + 1 > radius for f in fits):
                bg_edge = None
            elif bg_edge is not None:
                _widen_broad_bands(fits, prof - bg_edge, radius, pnoise)
            method = "rolling-ball"
        elif method != "edge":
            bg_edge = None
        if method == "rolling-ball":
            bg = rb
            if params.background == "auto":
                # refine under every band: least-squares line through the flanks
                bg = B.flank_background(prof, _cluster_regions(fits), rb)
        elif method == "valley":
            bg = B.valley_background(prof, [(f.top, f.bottom) for f in fits])
        elif method == "edge":
            bg = bg_edge if bg_edge is not None else B.edge_background(signal, ln, params.edge_border_px)
            bg_edge = None
        else:
            bg = np.zeros(n)
        band_method = []
        smear_method = "edge"
        if bg_edge is not None:
            bg = bg.copy()
            # under smears: the gap background (quadratic across the lane through the
            # nearest gaps, follows a background curving across the lane), else the edges
            bg_gap = B.gap_background(signal, ln, lanes) if params.background == "auto" else None
            under = bg_edge if bg_gap is None else bg_gap
            smear_method = "edge" if bg_gap is None else "gap"
            for f in fits:
                if f.bottom - f.top + 1 > radius:
                    bg[f.top:f.bottom + 1] = under[f.top:f.bottom + 1]
        for f in fits:
            band_method.append(smear_method if (bg_edge is not None and f.bottom - f.top + 1 > radius)
                               else method)
        used[ln.lane] = "+".join(sorted(set(band_method))) if band_method else method
        sat_p = _mask_profile(solid_pts, ln)
        hot_p = _mask_profile(hot_pts, ln)
        net = prof - bg
        cluster_sum = {}
        for f in fits:
            if f.deconvolved:
                c = cluster_sum.setdefault(f.cluster, [n, -1])
                c[0], c[1] = min(c[0], f.top), max(c[1], f.bottom)
        for f, bm in zip(fits, band_method):
            region = slice(f.top, f.bottom + 1)
            if f.deconvolved:
                a, b = cluster_sum[f.cluster]
                vol = float(net[a:b + 1].sum()) * f.fraction
            else:
                vol = float(net[region].sum())
            rows_out.append(dict(
                image=name, lane=ln.lane, row=0, band_id=0,
                y_px=ln.y_top_px + f.y, y_top_px=ln.y_top_px + f.top, y_bottom_px=ln.y_top_px + f.bottom,
                sigma_px=f.sigma, volume=vol, background=float(bg[region].sum()), background_method=bm,
                saturated_px=int(sat_p[region].sum()) if sat_p is not None else 0,
                hot_px=int(hot_p[region].sum()) if hot_p is not None else 0,
                snr=float(f.peak / ln.width_px / noise), deconvolved=f.deconvolved,
                is_ladder=ln.is_ladder, piece=ln.piece))
        lane_data[ln.lane] = (net, bg, sat_p, hot_p, ln.y_top_px)
        tot = np.nan
        if lane_totals:
            eb = B.edge_background(signal, ln, params.edge_border_px)
            tot = float((prof - eb).sum())
        yt, yb = ln.y_top_px, ln.y_bottom_px
        lane_rows.append(dict(
            image=name, lane=ln.lane, piece=ln.piece, x_left_px=ln.x_left_px, x_right_px=ln.x_right_px,
            x_center_px=ln.x_center_px, width_px=ln.width_px, y_top_px=yt, y_bottom_px=yb,
            slope_dx_per_dy=ln.slope,
            x_center_top_px=ln.x_center_px + ln.slope * (yt - ln.y_ref_px),
            x_center_bottom_px=ln.x_center_px + ln.slope * (yb - ln.y_ref_px),
            is_ladder=ln.is_ladder, n_bands=sum(1 for r in rows_out if r["lane"] == ln.lane),
            lane_total=tot, background=used[ln.lane]))
    bands = pd.DataFrame(rows_out, columns=BAND_COLUMNS + ["piece"])
    lanes_df = pd.DataFrame(lane_rows, columns=LANE_COLUMNS)
    bands["saturated"] = bands["saturated_px"] > 0
    bands["low_snr"] = bands["snr"] < params.low_snr
    bands["mw_kda"] = np.nan

    # rows, per membrane piece, sample lanes only
    offsets = {}
    next_row = 0
    for pc in pieces:
        sample = [ln for ln in lanes if ln.piece == pc.index and not ln.is_ladder]
        if not sample:
            continue
        order = [ln.lane for ln in sample]
        max_shift = int(0.03 * (pc.y1 - pc.y0)) + 2
        off = B.lane_offsets(det_profiles, order, max_shift)
        offsets.update(off)
        m = bands["lane"].isin(order).to_numpy()
        if m.any():
            sub = bands[m]
            r = B.group_rows(sub["y_px"].to_numpy(), sub["sigma_px"].to_numpy(), sub["lane"].to_numpy(),
                             sub["lane"].map(off).to_numpy())
            bands.loc[m, "row"] = r + next_row
            next_row += int(r.max())
    if params.row_regions:
        _harmonise_row_regions(bands, lane_data)
    bands["saturated"] = bands["saturated_px"] > 0
    bands, ladder = _finish_bands(bands, lanes, offsets, params, img, warns)
    return BlotResult(lanes=lanes_df, bands=bands, lane_geometry=lanes, pieces=pieces, polarity=polarity,
                      polarity_source=pol_src, ceiling=ceiling, ceiling_source=ceil_src, noise_sd=noise,
                      warnings=warns, saturated_mask=solid, hot_mask=hot, ladder=ladder, params=params)


def _cluster_regions(fits) -> list:
    """Band regions with the members of each deconvolved cluster joined into one."""
    out, clusters = [], {}
    for f in fits:
        if f.deconvolved:
            c = clusters.setdefault(f.cluster, [f.top, f.bottom])
            c[0], c[1] = min(c[0], f.top), max(c[1], f.bottom)
        else:
            out.append((f.top, f.bottom))
    return sorted(out + [tuple(c) for c in clusters.values()])


def _harmonise_row_regions(bands: pd.DataFrame, lane_data: dict, min_snr: float = 10.0) -> None:
    """Give every isolated band of a row the region shape of the row's strong bands.

    A faint copy of a band has its region edges set by noise; the same protein in
    the other lanes has the same shape, so the faint band's region is taken as its
    centre minus/plus the median distances from centre to top/bottom of the
    row's bands with ``snr >= min_snr`` (at least two), never overlapping its
    lane neighbours. Volumes and counts are recomputed over the new regions.
    """
    row = bands["row"].to_numpy()
    lane = bands["lane"].to_numpy()
    y = bands["y_px"].to_numpy(float)
    top0 = bands["y_top_px"].to_numpy().astype(int)
    bot0 = bands["y_bottom_px"].to_numpy().astype(int)
    snr = bands["snr"].to_numpy(float)
    iso = (row > 0) & ~bands["deconvolved"].to_numpy(bool)
    top, bot = top0.copy(), bot0.copy()
    vol = bands["volume"].to_numpy(float).copy()
    bgs = bands["background"].to_numpy(float).copy()
    sat = bands["saturated_px"].to_numpy().copy()
    hot = bands["hot_px"].to_numpy().copy()
    changed = False
    for r in np.unique(row[iso]):
        g = np.flatnonzero(iso & (row == r))
        strong = g[snr[g] >= min_snr]
        if len(strong) < 2:
            continue
        up = float(np.median(y[strong] - top0[strong]))
        down = float(np.median(bot0[strong] - y[strong]))
        for i in g:
            net, bg, sat_p, hot_p, y0 = lane_data[lane[i]]
            same = np.flatnonzero((lane == lane[i]) & (np.arange(len(y)) != i))
            t = int(round(y[i] - up))
            b = int(round(y[i] + down))
            above = same[y[same] < y[i]]
            below = same[y[same] > y[i]]
            if len(above):
                t = max(t, int(bot0[above].max()) + 1)
            if len(below):
                b = min(b, int(top0[below].min()) - 1)
            t, b = max(t, y0), min(b, y0 + len(net) - 1)
            if b < t:
                continue
            reg = slice(t - y0, b - y0 + 1)
            top[i], bot[i] = t, b
            vol[i] = float(net[reg].sum())
            bgs[i] = float(bg[reg].sum())
            sat[i] = int(sat_p[reg].sum()) if sat_p is not None else 0
            hot[i] = int(hot_p[reg].sum()) if hot_p is not None else 0
            changed = True
    if changed:
        bands["y_top_px"], bands["y_bottom_px"] = top, bot
        bands["volume"], bands["background"] = vol, bgs
        bands["saturated_px"], bands["hot_px"] = sat, hot


def _add_broad_bands(fits, corr_edge: np.ndarray, radius: float, min_snr: float, pix_noise: float) -> list:
    """Broad bands (smears) found on the lane-edge-corrected profile, smoothed at the
    scale of the ball, where the rolling-ball detection found nothing. A candidate must
    stand ``min_snr`` noise SDs (robust spread of the smoothed profile, at least the
    pixel noise) above its surroundings and be broader than half the ball."""
    n = len(corr_edge)
    sig = max(3.0, radius / 6.0)
    ce = ndi.gaussian_filter1d(corr_edge, sig, mode="nearest")
    d = ce - ndi.uniform_filter1d(ce, max(3, int(8 * radius)), mode="nearest")
    spread = 1.4826 * float(np.median(np.abs(d - np.median(d))))
    thr = min_snr * max(spread, pix_noise)
    pk, props = find_peaks(ce, height=thr, prominence=thr)
    taken = np.zeros(n, bool)
    for f in fits:
        taken[max(0, f.top):f.bottom + 1] = True
    new = []
    for p in pk:
        if taken[p]:
            continue
        half = ce[p] / 2
        a = p
        while a > 0 and ce[a - 1] > half and not taken[a - 1]:
            a -= 1
        b = p
        while b < n - 1 and ce[b + 1] > half and not taken[b + 1]:
            b += 1
        hw = (b - a + 1) / 2.0
        if hw < 0.5 * radius:
            continue
        stop = 0.01 * ce[p]
        while a > 0 and ce[a - 1] > stop and ce[a - 1] <= ce[a] and not taken[a - 1]:
            a -= 1
        while b < n - 1 and ce[b + 1] > stop and ce[b + 1] <= ce[b] and not taken[b + 1]:
            b += 1
        taken[a:b + 1] = True
        new.append(B.BandFit(y=float(p), sigma=hw / 1.1774, top=int(a), bottom=int(b), peak=float(ce[p]),
                             fraction=1.0, cluster=-1 - len(new), deconvolved=False))
    if not new:
        return fits
    return sorted(list(fits) + new, key=lambda f: f.top)


def _widen_broad_bands(fits, corr_edge: np.ndarray, radius: float, noise: float) -> None:
    """Regions of broad bands (smears) redrawn on the lane-edge-corrected profile: the
    ball, narrower than the smear, cut its flanks when it was detected. A region grows
    down to 1 % of the peak (or a valley), never into a neighbouring band."""
    from scipy import ndimage as ndi

    ce = ndi.gaussian_filter1d(corr_edge, 2.0, mode="nearest")
    n = len(ce)
    order = sorted(range(len(fits)), key=lambda i: fits[i].top)
    for k, i in enumerate(order):
        f = fits[i]
        if f.deconvolved or f.bottom - f.top + 1 <= radius:
            continue
        lo = fits[order[k - 1]].bottom + 1 if k > 0 else 0
        hi = fits[order[k + 1]].top - 1 if k + 1 < len(order) else n - 1
        p = int(np.clip(round(f.y), lo, hi))
        stop = max(0.01 * ce[p], 0.0)
        a = p
        while a > lo and ce[a - 1] > stop and ce[a - 1] <= ce[a] + noise:
            a -= 1
        b = p
        while b < hi and ce[b + 1] > stop and ce[b + 1] <= ce[b] + noise:
            b += 1
        f.top, f.bottom = min(f.top, a), max(f.bottom, b)


def _mask_profile(points, lane: Lane):
    """Per row of the lane, how many of the given (ys, xs) pixels fall inside it (None if none)."""
    ys, xs = points
    if len(ys) == 0:
        return None
    n = lane.y_bottom_px - lane.y_top_px + 1
    inr = (ys >= lane.y_top_px) & (ys <= lane.y_bottom_px)
    ys, xs = ys[inr], xs[inr]
    x0 = lane.x_left_px + lane.shift_at(ys)
    sel = (xs >= x0) & (xs < x0 + lane.width_px)
    return np.bincount(ys[sel] - lane.y_top_px, minlength=n).astype(float)


def _finish_bands(bands, lanes, offsets, params, img, warns, *, need_bands: bool = False):
    """Molecular weights from the ladder (a failure is a warning), then band ids in lane/y order."""
    ladder = {}
    if params.ladder_lane and params.ladder_kda and (len(bands) or not need_bands):
        try:
            ladder = _apply_ladder(bands, lanes, offsets, params, img.path)
        except ImageReadError as exc:
            warns.append(f"no molecular weights: {exc.problem}")
    bands = bands.sort_values(["lane", "y_px"], kind="stable").reset_index(drop=True)
    bands["band_id"] = np.arange(1, len(bands) + 1)
    return bands[BAND_COLUMNS + ["piece"]], ladder


def _lane_gaps(lanes, width) -> dict:
    """Smallest free margin (px) beside each lane: to its neighbours in the same piece,
    or to the image side."""
    out = {}
    for ln in lanes:
        left = min([ln.x_left_px - o.x_right_px - 1 for o in lanes
                    if o.piece == ln.piece and o.x_right_px < ln.x_left_px] + [ln.x_left_px])
        right = min([o.x_left_px - ln.x_right_px - 1 for o in lanes
                     if o.piece == ln.piece and o.x_left_px > ln.x_right_px] + [width - 1 - ln.x_right_px])
        out[ln.lane] = min(left, right)
    return out


def _apply_ladder(bands, lanes, offsets, params, path) -> dict:
    lad = lanes[params.ladder_lane - 1]
    lb = bands[bands["lane"] == lad.lane]
    if len(lb) < 2:
        raise ImageReadError(path, f"ladder lane {lad.lane}: found {len(lb)} bands, need at least 2")
    kda = [float(k) for k in params.ladder_kda]
    # keep the strongest bands if there are far more than markers
    if len(lb) > len(kda) + 3:
        lb = lb.nlargest(len(kda) + 3, "volume")
    try:
        y_l, k_l = B.ladder_calibration(lb["y_px"].to_numpy(), kda)
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
    bands.loc[m, "mw_kda"] = B.mw_from_y(y_eq, y_l, k_l)
    return {"lane": lad.lane, "y_px": y_l.tolist(), "kda": k_l.tolist()}


# --------------------------------------------------------------------------
# files


@dataclass
class BlotFileResult:
    """Outcome of :func:`analyze_blot_file` (``ok`` False: see ``image_row['error']``)."""

    ok: bool
    image_row: dict
    lanes: pd.DataFrame
    bands: pd.DataFrame
    result: BlotResult | None = None
    image: Image | None = None


def _image_row(name, result: BlotResult | None, img: Image | None, params: BlotParams, error: str = ""):
    row = {c: None for c in IMAGE_COLUMNS}
    row.update(image=name, status="error" if error else "ok", error=error, background=params.background)
    if img is not None:
        row.update(dtype=str(img.data.dtype), file_format=img.file_format)
    if result is not None:
        b = result.bands
        row.update(polarity=result.polarity, polarity_source=result.polarity_source, ceiling=result.ceiling,
                   ceiling_source=result.ceiling_source, noise_sd=result.noise_sd, n_pieces=len(result.pieces),
                   n_lanes=len(result.lanes), n_rows=int(b.loc[b["row"] > 0, "row"].nunique()),
                   n_bands=len(b), n_saturated_bands=int(b["saturated"].sum()),
                   warnings="; ".join(result.warnings))
    return row


def analyze_blot_file(path, params: BlotParams | None = None, *, name: str | None = None,
                      lane_totals: bool = False) -> BlotFileResult:
    """Read and quantify one blot file; every failure becomes an error row naming the file."""
    params = params or BlotParams()
    name = name or str(path)
    empty_l, empty_b = pd.DataFrame(columns=LANE_COLUMNS), pd.DataFrame(columns=BAND_COLUMNS)
    img = None
    try:
        img = read_image(path)
        validate_image(img)
        res = quantify_blot(img, params, name=name, lane_totals=lane_totals)
        if len(res.lanes) == 0:
            raise ImageReadError(path, NO_LANES)
    except ImageReadError as exc:
        return BlotFileResult(False, _image_row(name, None, img, params, str(exc)), empty_l, empty_b, None, img)
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the run
        msg = f"{path}: analysis failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        return BlotFileResult(False, _image_row(name, None, img, params, msg), empty_l, empty_b, None, img)
    return BlotFileResult(True, _image_row(name, res, img, params), res.lanes,
                          res.bands[BAND_COLUMNS], res, img)


# --------------------------------------------------------------------------
# overlay


def draw_blot_overlay(image, result: BlotResult, *, max_side: int | None = None) -> np.ndarray:
    """RGB uint8 picture: lanes (green, ladder magenta), band regions (yellow,
    deconvolved cyan), row numbers, solid saturated pixels red, hot pixels orange."""
    import cv2

    img = _as_image(image)
    disp = img.displayed() if img.white_is_zero else img.data.astype(np.float64)
    if result.polarity == "light-bands" and img.white_is_zero:
        disp = img.data.astype(np.float64)  # show counts, bands bright
    lo, hi = np.percentile(disp, [0.5, 99.8])
    g = np.clip((disp - lo) / max(hi - lo, 1e-12), 0, 1)
    g = (np.sqrt(g) * 255).astype(np.uint8)
    rgb = np.dstack([g, g, g])
    rgb[result.saturated_mask] = (255, 0, 0)
    rgb[result.hot_mask] = (255, 140, 0)
    th = max(1, int(round(max(img.data.shape) / 800)))
    fs = 0.4 * th
    for ln in result.lane_geometry:
        col = (255, 0, 255) if ln.is_ladder else (0, 220, 0)
        yt, yb = ln.y_top_px, ln.y_bottom_px
        st, sb = int(ln.shift_at(yt)), int(ln.shift_at(yb))
        pts = np.array([[ln.x_left_px + st, yt], [ln.x_right_px + st, yt], [ln.x_right_px + sb, yb],
                        [ln.x_left_px + sb, yb]], np.int32)
        cv2.polylines(rgb, [pts], True, col, th)
        cv2.putText(rgb, str(ln.lane), (int(ln.x_center_px + st) - 6 * th, yt + 14 * th),
                    cv2.FONT_HERSHEY_SIMPLEX, fs, col, th)
    geo = {ln.lane: ln for ln in result.lane_geometry}
    for b in result.bands.itertuples():
        ln = geo[b.lane]
        s = int(ln.shift_at(b.y_px))
        col = (0, 200, 255) if b.deconvolved else (255, 220, 0)
        if b.saturated:
            col = (255, 0, 0)
        cv2.rectangle(rgb, (ln.x_left_px + s + th, int(b.y_top_px)), (ln.x_right_px + s - th, int(b.y_bottom_px)),
                      col, max(1, th // 2 + (1 if th == 1 else 0)))
        cv2.line(rgb, (ln.x_left_px + s + 2 * th, int(round(b.y_px))), (ln.x_right_px + s - 2 * th, int(round(b.y_px))),
                 col, 1)
        if b.row and ln.lane == min(L for L in result.bands.loc[result.bands["row"] == b.row, "lane"]):
            cv2.putText(rgb, f"r{b.row}", (max(0, ln.x_left_px + s - 28 * th), int(b.y_px) + 4 * th),
                        cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 255, 255), th)
    if max_side and max(rgb.shape[:2]) > max_side:
        f = max_side / max(rgb.shape[:2])
        rgb = cv2.resize(rgb, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    return rgb
