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
from scipy.signal import find_peaks

from ..stats import robust_sd as _robust_sd
from . import background as G
from .bands import BandFit, assign_rows, descend, find_bands
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
    rows, det = [], {}
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

        def find(pn):
            return find_bands(corr_det, pn, min_snr=params.min_snr, resolve=params.resolve,
                              min_height=params.min_snr_px * noise * ln.width_px,
                              min_prominence=params.min_snr * noise * np.sqrt(ln.width_px),
                              support=support, support_tol_px=sup_tol)

        fits = find(pnoise)
        # second pass: the spread measured outside the bands found (a lane full of
        # bands, like a ladder, otherwise inflates the noise and hides faint bands)
        outside = np.ones(n, bool)
        for f in fits:
            outside[f.top:f.bottom + 1] = False
        if 0.2 * n <= outside.sum() <= 0.7 * n:  # only for lanes crowded with bands
            pnoise2 = max(noise * np.sqrt(ln.width_px), _robust_sd(corr_det[outside]))
            if pnoise2 < 0.8 * pnoise:
                pnoise = pnoise2
                fits = find(pnoise)
        if auto and ctx.free_px >= G.MIN_FREE_PX:
            corr_edge = prof - G.REGISTRY["edge"].func(ctx, [])
            # smears the ball ate before they could be detected: broad peaks above the
            # lane-edge background where no band was found
            fits = _add_broad_bands(fits, corr_edge, radius, params.min_snr, noise * np.sqrt(ln.width_px))
            # the ball, narrower than a smear, cut its flanks: regions redrawn above the edges
            if any(f.bottom - f.top + 1 > radius for f in fits):
                _widen_broad_bands(fits, corr_edge, radius, pnoise)
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
        up = float(np.median(y[strong] - top0[strong]))
        down = float(np.median(bot0[strong] - y[strong]))
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
