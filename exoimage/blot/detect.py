"""Detect band regions in lanes: what :func:`~exoimage.blot.quantify_blot` finds before it measures.

:func:`detect_bands` gives a regions table (:data:`~exoimage.blot.measure.REGION_COLUMNS`)
that :func:`~exoimage.blot.measure.measure` turns into volumes: band rows (and, where
they were fitted, centres, widths, deconvolved clusters), the background method
chosen for each, and the rows under which the background is placed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .signal import find_peaks, median, robust_sd as _robust_sd  # scipy.signal on first use
from . import background as G
from .bands import BandFit, assign_rows, band_cover, descend, find_bands, fit_cache
from .lanes import Lane
from .measure import REGION_COLUMNS, Prepared, lane_contexts
from .pipeline import BlotParams

__all__ = ["detect_bands", "harmonise_row_regions"]

def detect_bands(prep: Prepared, lanes: list[Lane], params: BlotParams, *, contexts: dict | None = None
                 ) -> pd.DataFrame:
    """Band regions of every lane (regions table, lanes in order, bands top to bottom).

    Bands are peaks of the lane profile minus its rolling ball (``min_snr``,
    ``min_snr_px``; weaker peaks where another lane of the piece has a band),
    split into overlapping Gaussians when ``resolve``; with ``background = 'auto'``
    smears the ball ate are found above the lane-edge background and smears'
    regions redrawn above it. With ``row_regions`` the regions of isolated bands
    take their row's common shape (:func:`harmonise_row_regions`).
    ``contexts`` (from :func:`~exoimage.blot.measure.lane_contexts`) saves recomputing profiles.
    """
    with fit_cache():  # a lane's clusters are fitted again when it is searched again
        return _detect_bands(prep, lanes, params, contexts)


def _detect_bands(prep, lanes, params, contexts):
    contexts = contexts if contexts is not None else lane_contexts(prep, lanes, params)
    noise = prep.noise_sd
    auto = params.background == "auto"
    # pre-pass: the clearly detected bands of every lane (support for weaker bands beside
    # strong ones in the other lanes)
    peaks = {}
    for ln in lanes:
        ctx = contexts[ln.lane]
        c = ctx.profile - ctx.ball
        pn = max(noise * np.sqrt(ln.width_px), _robust_sd(c))
        cs = ndi.gaussian_filter1d(c, 1.5, mode="nearest")
        thr = params.min_snr * pn
        pk, _ = find_peaks(cs, height=max(thr, params.min_snr_px * noise * ln.width_px), prominence=thr)
        peaks[ln.lane] = ln.y_top_px + pk
    rows, det, lane_fits, finders = [], {}, {}, {}
    for ln in lanes:
        ctx = contexts[ln.lane]
        prof, radius = ctx.profile, ctx.radius_px
        n = len(prof)
        support = np.concatenate([peaks[o.lane] for o in lanes
                                  if o.piece == ln.piece and o.lane != ln.lane and not o.is_ladder]
                                 + [np.zeros(0)]) - ln.y_top_px
        sup_tol = 6.0 + 0.03 * n  # rows may shift a little from lane to lane (smile)
        # bands are detected above the rolling ball (least noisy); broad bands (smears) the
        # ball partly eats get their regions redrawn above the lane-edge background below
        corr_det = prof - ctx.ball
        det[ln.lane] = corr_det
        # profile noise: pixel noise summed over the lane width, or the spread of the
        # baseline-corrected profile itself (membrane texture), whichever is larger
        pnoise = max(noise * np.sqrt(ln.width_px), _robust_sd(corr_det))

        def find(pn, hidden=True, corr_det=corr_det, ln=ln, support=support, sup_tol=sup_tol, cover=False):
            return (band_cover if cover else find_bands)(
                corr_det, pn, min_snr=params.min_snr, resolve=params.resolve,
                min_height=params.min_snr_px * noise * ln.width_px,
                min_prominence=params.min_snr * noise * np.sqrt(ln.width_px),
                support=support, support_tol_px=sup_tol, hidden=hidden, hidden_tol_px=HIDDEN_TOL_PX)

        def lane_bands(hidden=True, corr_det=corr_det, prof=prof, ctx=ctx, ln=ln, find=find, n=n,
                       radius=radius, pnoise=pnoise):
            # second pass: the spread measured outside the bands found (a lane full of
            # bands, like a ladder, otherwise inflates the noise and hides faint bands);
            # the rows those bands cover are known before their fits (band_cover)
            outside = ~find(pnoise, hidden, cover=True)
            if 0.2 * n <= outside.sum() <= 0.7 * n:  # only for lanes crowded with bands
                pnoise2 = max(noise * np.sqrt(ln.width_px), _robust_sd(corr_det[outside]))
                if pnoise2 < 0.8 * pnoise:
                    pnoise = pnoise2
            fits = find(pnoise, hidden)
            if auto and ctx.free_px >= G.MIN_FREE_PX:
                corr_edge = prof - G.REGISTRY["edge"].func(ctx, [])
                # smears the ball ate before they could be detected: broad peaks above the
                # lane-edge background where no band was found
                fits = _add_broad_bands(fits, corr_edge, radius, params.min_snr, noise * np.sqrt(ln.width_px))
                # the ball, narrower than a smear, cut its flanks: regions redrawn above the edges
                if any(f.bottom - f.top + 1 > radius for f in fits):
                    _widen_broad_bands(fits, corr_edge, radius, pnoise)
            return fits

        fits = lane_bands()
        lane_fits[ln.lane] = fits
        finders[ln.lane] = lane_bands
    if params.resolve:
        _confirm_hidden(lanes, det, lane_fits, finders, params, noise)
    # structures of the gel itself (well row, cut edge, dye front) are not bands
    shared = _shared_with_gel(prep, lanes, contexts, det, lane_fits, params)
    for ln in lanes:
        ctx = contexts[ln.lane]
        fits = [f for i, f in enumerate(lane_fits[ln.lane]) if i not in shared[ln.lane]]
        regs = [G.Region(f.top, f.bottom, f.cluster if f.deconvolved else None) for f in fits]
        methods = G.auto_methods(ctx, regs) if auto else [params.background] * len(fits)
        for f, m in zip(fits, methods):
            y0 = ln.y_top_px
            rows.append(dict(lane=ln.lane, y_top_px=y0 + f.top, y_bottom_px=y0 + f.bottom, y_px=y0 + f.y,
                             sigma_px=f.sigma, snr=float(f.peak / ln.width_px / noise), background_method=m,
                             deconvolved=f.deconvolved, cluster=f.cluster if f.deconvolved else np.nan,
                             fraction=f.fraction, fit_top_px=y0 + f.top, fit_bottom_px=y0 + f.bottom))
    regions = pd.DataFrame(rows, columns=REGION_COLUMNS)
    if params.row_regions and len(regions):
        row, _ = assign_rows(lanes, regions["lane"].to_numpy(), regions["y_px"].to_numpy(),
                             regions["sigma_px"].to_numpy(), det)
        harmonise_row_regions(regions, row, lanes)
    return regions


#: A band found only in a cluster fit's residual (``BandFit.hidden``) is kept when at least this many
#: other lanes of its piece have a band at the same height (after the lanes' offsets, within
#: :data:`HIDDEN_TOL_PX`): the same fragment or protein run in several lanes (a ladder run twice,
#: replicate samples); a lump of one lane's smear or texture is not repeated. Two: a majority of
#: three lanes; a piece with fewer other lanes needs them all. Not fitted.
HIDDEN_LANES = 2
#: px: a hidden band's height is known to about this (a third of a typical band's FWHM)
HIDDEN_TOL_PX = 3.0


def _confirm_hidden(lanes, det, lane_fits, finders, params, noise) -> None:
    """Keep the hidden bands of ``lane_fits`` (in place) that :data:`HIDDEN_LANES` other lanes
    of the piece repeat; lanes with unconfirmed ones are detected again allowing only the
    confirmed ones."""
    from .bands import lane_offsets

    for pc in sorted({ln.piece for ln in lanes}):
        mine = sorted([ln for ln in lanes if ln.piece == pc], key=lambda o: o.x_left_px)
        if not any(f.hidden for ln in mine for f in lane_fits[ln.lane]):
            continue
        need = min(HIDDEN_LANES, len(mine) - 1)
        if need < 1:
            allowed = {ln.lane: [] for ln in mine}
        else:
            height = max(ln.y_bottom_px - ln.y_top_px + 1 for ln in mine)
            off = lane_offsets(det, [ln.lane for ln in mine], int(0.03 * height) + 2)
            ys = {ln.lane: np.array([ln.y_top_px + f.y for f in lane_fits[ln.lane]]) for ln in mine}
            anchors = {ln.lane: np.array([ln.y_top_px + f.y for f in lane_fits[ln.lane] if not f.hidden])
                       for ln in mine}
            allowed = {}
            for ln in mine:
                keep = []
                for f in lane_fits[ln.lane]:
                    if not f.hidden or not len(anchors[ln.lane]):
                        continue
                    # compared locally (a gel's smile changes down the lane): relative to the
                    # nearest band of its own, matched to the other lane's band nearest to it
                    y = ln.y_top_px + f.y
                    q = anchors[ln.lane][np.argmin(np.abs(anchors[ln.lane] - y))]
                    n_same = 0
                    for o in mine:
                        if o.lane == ln.lane or not len(anchors[o.lane]):
                            continue
                        a_o = anchors[o.lane]
                        q2 = a_o[np.argmin(np.abs(a_o - (q - off[ln.lane] + off[o.lane])))]
                        n_same += bool(np.abs(ys[o.lane] - (y + q2 - q)).min() <= HIDDEN_TOL_PX)
                    if n_same >= need:
                        keep.append(f.y)
                allowed[ln.lane] = keep
        for ln in mine:
            fits = lane_fits[ln.lane]
            n_hidden = sum(f.hidden for f in fits)
            if n_hidden == len(allowed[ln.lane]):
                continue
            lane_fits[ln.lane] = finders[ln.lane](np.asarray(allowed[ln.lane], float))


def harmonise_row_regions(regions: pd.DataFrame, row: np.ndarray, lanes: list[Lane],
                          min_snr: float = 10.0) -> None:
    """Give every isolated band of a row the region shape of the row's strong bands (in place).

    A faint copy of a band has its region edges set by noise; the same protein in
    the other lanes has the same shape, so the faint band's region
    (``y_top_px..y_bottom_px``) is taken as its centre minus/plus the median
    distances from centre to top/bottom of the row's bands with ``snr >= min_snr``
    (at least two), never overlapping its lane neighbours nor leaving its lane.
    ``row``: the row of every region (0: none). ``fit_top_px``/``fit_bottom_px``
    keep the rows as detected (the background is placed under those).
    """
    lane = regions["lane"].to_numpy()
    y = regions["y_px"].to_numpy(float)
    top0 = regions["y_top_px"].to_numpy().astype(int)
    bot0 = regions["y_bottom_px"].to_numpy().astype(int)
    snr = regions["snr"].to_numpy(float)
    iso = (row > 0) & ~regions["deconvolved"].to_numpy(bool)
    extent = {ln.lane: (ln.y_top_px, ln.y_bottom_px) for ln in lanes}
    top, bot = top0.copy(), bot0.copy()
    changed = False
    for r in np.unique(row[iso]):
        g = np.flatnonzero(iso & (row == r))
        strong = g[snr[g] >= min_snr]
        if len(strong) < 2:
            continue
        up = float(median(y[strong] - top0[strong]))
        down = float(median(bot0[strong] - y[strong]))
        for i in g:
            y_first, y_last = extent[lane[i]]
            same = np.flatnonzero((lane == lane[i]) & (np.arange(len(y)) != i))
            t = int(round(y[i] - up))
            b = int(round(y[i] + down))
            above = same[y[same] < y[i]]
            below = same[y[same] > y[i]]
            if len(above):
                t = max(t, int(bot0[above].max()) + 1)
            if len(below):
                b = min(b, int(top0[below].min()) - 1)
            t, b = max(t, y_first), min(b, y_last)
            if b < t:
                continue
            top[i], bot[i] = t, b
            changed = True
    if changed:
        regions["y_top_px"], regions["y_bottom_px"] = top, bot


#: A peak of a lane is a structure of the gel or membrane itself, not a band of the lane, when the
#: free gel beside the lane carries at least this share of it: the well row (wells are cut across the
#: whole gel, loaded or not), a membrane's cut edge, a dye front or a glow across the gel bottom. A
#: band is made in its lane; even one wider than the lane leaves most of its signal inside. Half:
#: the midpoint between "only in the lane" (0) and "as much beside as in it" (1); not fitted (the
#: NEB ladder gel's well row and bottom glow reach 1.0-1.9 in every lane, its bands below 0.05).
SHARED_FRACTION = 0.5
#: ... and when it is faint beside the lane's bands: its peak below this share of the lane's
#: strongest band's. A band wider than its lane rectangle (or a lane drawn off its band) also
#: shows beside it, but it is the lane's signal; the well row, a cut edge or a glow of the gel
#: are weak beside the bands run into the gel (the NEB gel: well and glow peaks under 5 % of the
#: strongest band's). A quarter: not fitted.
FAINT_FRACTION = 0.25


def _shared_fraction(ctx, off_c: np.ndarray | None, corr: np.ndarray, y0: int, y1: int) -> float:
    """Share of a lane's signal above its ball over image rows ``y0..y1`` that the gel
    beside the lane also carries (NaN where the lane has no such rows or no free gel)."""
    ln = ctx.lane
    a, b = max(0, y0 - ln.y_top_px), min(len(corr) - 1, y1 - ln.y_top_px)
    if off_c is None or b < a:
        return np.nan
    lane_sig = float(corr[a:b + 1].sum())
    return float(off_c[a:b + 1].sum()) / lane_sig if lane_sig > 0 else np.nan


def _shared_with_gel(prep, lanes, contexts, det, lane_fits, params) -> dict:
    """``{lane: indices of its fits}`` that are structures of the gel, not bands.

    Fits are taken as groups (a deconvolved cluster is one). Candidates are the
    topmost group of a lane (the well row, a cut edge) and groups with a broad member
    (taller than half the ball radius: a dye front, a glow across the gel). A candidate
    is dropped when the free gel beside the lane (:func:`~.background.off_lane_profile`
    above its own rolling ball) carries at least :data:`SHARED_FRACTION` of its signal
    over its rows, in its lane and in every other lane of the piece that has free gel
    beside it (a structure of the gel runs across the whole piece; a faint smear on a
    blotchy membrane does not look shared in every lane), and its peak is below
    :data:`FAINT_FRACTION` of the lane's strongest other band.
    """
    off = {}

    def off_of(ln):
        # the free gel beside a lane above its own ball, computed only for the lanes a faint
        # candidate needs (most candidates are a lane's strong top band: nothing to compare)
        if ln.lane not in off:
            o = G.off_lane_profile(prep.signal, ln, lanes, params.edge_border_px)
            off[ln.lane] = None if o is None else o - G.rolling_ball_background(o, contexts[ln.lane].radius_px)
        return off[ln.lane]

    out = {ln.lane: set() for ln in lanes}
    for ln in lanes:
        fits = lane_fits[ln.lane]
        if not fits:
            continue
        radius = contexts[ln.lane].radius_px
        groups = {}
        for i, f in enumerate(fits):
            groups.setdefault(("c", f.cluster) if f.deconvolved else ("b", i), []).append(i)
        top_key = min(groups, key=lambda k: min(fits[i].top for i in groups[k]))
        for key, idx in groups.items():
            broad = any(fits[i].bottom - fits[i].top + 1 > 0.5 * radius for i in idx)
            if not (key == top_key or broad):
                continue
            # faint beside the lane's bands: a band too wide for its lane rectangle also shows
            # beside it, but it is a lane's main signal, not a glow under it
            peak = float(det[ln.lane][min(fits[i].top for i in idx):max(fits[i].bottom for i in idx) + 1].max())
            rest = [fits[i].peak for i in range(len(fits)) if i not in idx]
            faint = bool(rest) and peak < FAINT_FRACTION * max(rest)
            if not faint or off_of(ln) is None:
                continue
            y0 = ln.y_top_px + min(fits[i].top for i in idx)
            y1 = ln.y_top_px + max(fits[i].bottom for i in idx)
            own = _shared_fraction(contexts[ln.lane], off[ln.lane], det[ln.lane], y0, y1)
            if not np.isfinite(own):
                continue
            others = [o for o in lanes if o.piece == ln.piece and o.lane != ln.lane and off_of(o) is not None]
            fr = [_shared_fraction(contexts[o.lane], off[o.lane], det[o.lane], y0, y1) for o in others]
            fr = [own] + [f for f in fr if np.isfinite(f)]
            if min(fr) >= SHARED_FRACTION:
                out[ln.lane].update(idx)
    return out


def _add_broad_bands(fits, corr_edge: np.ndarray, radius: float, min_snr: float, pix_noise: float) -> list:
    """Broad bands (smears) found on the lane-edge-corrected profile, smoothed at the
    scale of the ball, where the rolling-ball detection found nothing. A candidate must
    stand ``min_snr`` noise SDs (robust spread of the smoothed profile, at least the
    pixel noise) above its surroundings and be broader than half the ball."""
    n = len(corr_edge)
    sig = max(3.0, radius / 6.0)
    ce = ndi.gaussian_filter1d(corr_edge, sig, mode="nearest")
    d = ce - ndi.uniform_filter1d(ce, max(3, int(8 * radius)), mode="nearest")
    thr = min_snr * max(_robust_sd(d), pix_noise)
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
        new.append(BandFit(y=float(p), sigma=hw / 1.1774, top=int(a), bottom=int(b), peak=float(ce[p]),
                           fraction=1.0, cluster=-1 - len(new), deconvolved=False))
    if not new:
        return fits
    return sorted(list(fits) + new, key=lambda f: f.top)


def _widen_broad_bands(fits, corr_edge: np.ndarray, radius: float, noise: float) -> None:
    """Regions of broad bands (smears) redrawn on the lane-edge-corrected profile: the
    ball, narrower than the smear, cut its flanks when it was detected. A region grows
    down to 1 % of the peak (or a valley), never into a neighbouring band."""
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
        a, b = descend(ce, p, lo, hi, max(0.01 * ce[p], 0.0), noise)
        f.top, f.bottom = min(f.top, a), max(f.bottom, b)
