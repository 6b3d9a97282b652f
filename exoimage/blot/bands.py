"""Bands in lane profiles (incl. smears and doublets), rows across lanes and molecular weight.

Lane profiles are in :mod:`.profile`, backgrounds in :mod:`.background` (their names are
re-exported here).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
import scipy
from scipy.optimize import least_squares
from .signal import find_peaks  # scipy.signal on first use

from ..stats import robust_sd

# lane profiles and backgrounds live in .profile and .background; the names are kept here
from .background import METHODS as BACKGROUNDS  # noqa: F401
from .background import edge_background, rolling_ball_background, valley_background  # noqa: F401
from .profile import lane_profile  # noqa: F401

__all__ = ["BACKGROUNDS", "lane_profile", "edge_background", "rolling_ball_background",
           "valley_background", "BandFit", "find_bands", "descend", "group_rows", "assign_rows",
           "lane_offsets", "ladder_calibration", "mw_from_y", "split_gauss", "band_skew", "split_shares"]


@dataclass
class BandFit:
    """One band in a lane profile (indices relative to the profile start)."""

    y: float            # centre (fitted), px
    sigma: float        # Gaussian SD (fitted), px
    top: int            # first row of the band region
    bottom: int         # last row of the band region (inclusive)
    peak: float         # peak of the background-corrected profile
    fraction: float     # share of its cluster's volume (1 for an isolated band)
    cluster: int
    deconvolved: bool
    hidden: bool = False  # found in a cluster fit's residual (no maximum or curvature peak of its own)


def _gauss_sum(p, x):
    p = np.asarray(p, dtype=float)
    if not len(p):
        return np.zeros_like(x, dtype=float)
    a, c, s = p[0::3, None], p[1::3, None], p[2::3, None]
    g = a * np.exp(-0.5 * ((x[None, :] - c) / s) ** 2)
    # summed component by component in order, as a loop would (same float result)
    out = g[0].copy()
    for row in g[1:]:
        out += row
    return out


#: the cluster fits of the current :func:`fit_cache` block, keyed on their exact inputs (None: none)
_FITS: contextvars.ContextVar = contextvars.ContextVar("exoimage_blot_fits", default=None)


@contextlib.contextmanager
def fit_cache():
    """Within this block a cluster fit with exactly the inputs of an earlier one is reused
    (a lane searched again with another noise or only the confirmed hidden bands, a cluster
    refitted from the same start): identical inputs give the identical fit. Nested blocks
    share the outer one's; the fits are dropped when the outermost block ends (per context,
    so threads do not share them)."""
    if _FITS.get() is not None:
        yield
        return
    token = _FITS.set({})
    try:
        yield
    finally:
        _FITS.reset(token)


def _fit_cluster(x, yv, centres, sigma0, centre_tol=None, sigma_max=None):
    """Least-squares sum of Gaussians; returns [(amp, centre, sigma), ...] sorted by centre.

    Centres stay within ``centre_tol`` px of their start and SDs below ``sigma_max``
    when given (a shoulder's component must not drift over its neighbour's plateau).
    Inside :func:`fit_cache` a fit with identical inputs is reused."""
    cache = _FITS.get()
    if cache is None:
        return _fit_cluster_uncached(x, yv, centres, sigma0, centre_tol, sigma_max)
    x = np.ascontiguousarray(x, dtype=float)
    yv = np.ascontiguousarray(yv, dtype=float)
    k = len(centres)

    def arr(v, fill):
        return np.ascontiguousarray(np.broadcast_to(np.asarray(fill if v is None else v, float), (k,))).tobytes()

    key = (x.tobytes(), yv.tobytes(), arr(centres, 0.0), arr(sigma0, 0.0), arr(centre_tol, np.nan),
           arr(sigma_max, np.nan))
    if key not in cache:
        cache[key] = tuple(_fit_cluster_uncached(x, yv, centres, sigma0, centre_tol, sigma_max))
    return list(cache[key])


def _fit_cluster_uncached(x, yv, centres, sigma0, centre_tol=None, sigma_max=None):
    """:func:`_fit_cluster` without the cache."""

    xr = x[None, :]
    last: dict = {}

    def parts(p):
        # the components' scaled offsets and Gaussians at ``p``, shared by the residual and
        # the Jacobian (the solvers ask for both at the same point)
        key = p.tobytes()
        if last.get("key") != key:
            q = np.array(p, dtype=float)  # a copy: a solver may reuse the array it passed
            a, c, s = q[0::3, None], q[1::3, None], q[2::3, None]
            u = (xr - c) / s
            last.update(key=key, a=a, s=s, u=u, g=np.exp(-0.5 * u * u))
        return last

    def fun(p):
        m = parts(p)
        ag = m["a"] * m["g"]
        out = ag[0].copy()
        for row in ag[1:]:  # summed in component order, as _gauss_sum does
            out += row
        return out - yv

    def jac_cols(p):
        # the Jacobian transposed: one row per parameter (MINPACK's columns, no transpose)
        m = parts(p)
        agu = m["a"] * m["g"] * m["u"]
        Jt = np.empty((len(p), len(x)))
        Jt[0::3] = m["g"]
        Jt[1::3] = agu / m["s"]
        Jt[2::3] = agu * m["u"] / m["s"]
        return Jt

    def jac(p, f=None):
        return np.ascontiguousarray(jac_cols(p).T)  # one row per profile row

    p0, lo, hi = [], [], []
    span = x[-1] - x[0] + 1
    k = len(centres)
    s0 = np.broadcast_to(np.asarray(sigma0, float), (k,))
    tol = np.broadcast_to(np.asarray(np.inf if centre_tol is None else centre_tol, float), (k,))
    smax = np.broadcast_to(np.asarray(span if sigma_max is None else sigma_max, float), (k,))
    for i, c in enumerate(centres):
        a0 = max(float(np.interp(c, x, yv)), 1e-9)
        p0 += [a0, c, s0[i]]
        lo += [0.0, max(x[0], c - tol[i]), 0.5]
        hi += [np.inf, min(x[-1], c + tol[i]), max(1.0, min(span, smax[i]))]
    p0 = np.clip(p0, np.array(lo) + 1e-9, np.array(hi) - 1e-9)
    # Levenberg-Marquardt (MINPACK, fast) first; the bounded trust-region method only
    # when that leaves the physical range (negative amplitude, centre outside, ...)
    lo, hi = np.array(lo), np.array(hi)
    x_fit, success = _solve_lm(fun, jac, p0, jac_cols)
    if not (success and np.all(x_fit >= lo) and np.all(x_fit <= hi)):
        x_fit = _solve_trf(fun, jac, p0, lo, hi)
    comps = [tuple(x_fit[3 * i:3 * i + 3]) for i in range(len(centres))]
    return sorted(comps, key=lambda c: c[1])


#: the cluster fits' solver settings (scipy.optimize.least_squares)
_LSQ = dict(x_scale="jac", ftol=1e-6, xtol=1e-6, gtol=1e-6)
_LM_NFEV, _TRF_NFEV = 200, 100

try:  # the solvers least_squares runs, called without its per-evaluation wrapping (scipy 1.16-1.x)
    from scipy.optimize._lsq.common import make_strictly_feasible as _feasible
    from scipy.optimize._lsq.trf import trf as _trf
    from scipy.optimize._minpack import _lmder
    _DIRECT = (1, 16) <= tuple(int(v) for v in scipy.__version__.split(".")[:2]) < (2, 0) and \
        list(inspect.signature(_trf).parameters)[:16] == [
            "fun", "jac", "x0", "f0", "J0", "lb", "ub", "ftol", "xtol", "gtol", "max_nfev", "x_scale",
            "loss_function", "tr_solver", "tr_options", "verbose"]
except (ImportError, ValueError, TypeError):  # pragma: no cover - other scipy layouts
    _DIRECT = False


def _solve_lm(fun, jac, p0, jac_cols=None):
    """``least_squares(fun, p0, jac=jac, method="lm", max_nfev=200, **_LSQ)``: ``(x, success)``.

    With scipy 1.16+ MINPACK's ``lmder`` is called as least_squares calls it (``x_scale="jac"``
    is MINPACK's own scaling, ``diag=None``; status 1-4 is success), without the wrapper
    least_squares puts around every evaluation of ``fun`` and ``jac`` (the same evaluations in
    the same order, so the identical result, in about half the time); ``jac_cols``, the
    Jacobian transposed, is handed to MINPACK as its columns (``col_deriv``)."""
    if not _DIRECT:
        res = least_squares(fun, p0, jac=jac, method="lm", max_nfev=_LM_NFEV, **_LSQ)
        return res.x, bool(res.success)
    cols = jac_cols is not None
    x, _info, status = _lmder(fun, jac_cols if cols else jac, p0.copy(), (), True, cols, _LSQ["ftol"], _LSQ["xtol"],
                              _LSQ["gtol"], _LM_NFEV, 100.0, None)
    return x, status in (1, 2, 3, 4)


def _solve_trf(fun, jac, p0, lo, hi):
    """``least_squares(fun, p0, jac=jac, bounds=(lo, hi), max_nfev=100, **_LSQ).x``; with scipy
    1.16+ its trust-region-reflective solver is called as least_squares calls it (start moved
    strictly inside the bounds, exact trust-region solver, linear loss), without the wrapping."""
    if not _DIRECT:
        return least_squares(fun, p0, jac=jac, bounds=(lo, hi), max_nfev=_TRF_NFEV, **_LSQ).x
    x0 = _feasible(np.asarray(p0, float), lo, hi)
    f0 = fun(x0)
    return _trf(fun, jac, x0, f0, jac(x0), lo, hi, _LSQ["ftol"], _LSQ["xtol"], _LSQ["gtol"], _TRF_NFEV,
                _LSQ["x_scale"], None, "exact", {}, 0).x


def descend(profile: np.ndarray, p: int, lo: int, hi: int, stop: float, slack: float = 0.0) -> tuple[int, int]:
    """Rows ``a..b`` around the peak at ``p``: outwards while the profile stays above
    ``stop`` and does not rise by more than ``slack`` (a valley ends it), within ``lo..hi``."""
    a = p
    while a > lo and profile[a - 1] > stop and profile[a - 1] <= profile[a] + slack:
        a -= 1
    b = p
    while b < hi and profile[b + 1] > stop and profile[b + 1] <= profile[b] + slack:
        b += 1
    return a, b


#: A curvature peak (a shoulder) is a band of its own only where the profile has fallen below this
#: share of a higher neighbouring maximum's height: within the half maximum of a band it is that
#: band's flat or notched top (an overloaded band, like the NEB ladder's 3 kb band), which two
#: Gaussians would fit as a false doublet. The half maximum is the band's conventional extent
#: (FWHM); not fitted.
FLAT_TOP = 0.5


def _on_top_of(cs: np.ndarray, c: int, q: int) -> bool:
    """Whether ``c`` lies on the top of the (higher) maximum at ``q``: the profile from
    ``q`` to ``c`` stays at or above :data:`FLAT_TOP` of the maximum's height."""
    lo, hi = min(c, q), max(c, q)
    return bool(cs[q] >= cs[c] and cs[lo:hi + 1].min() >= FLAT_TOP * cs[q])


def _curvature(corr: np.ndarray, sig_c: float):
    """Minus the second derivative of ``corr`` at scale ``sig_c`` and its robust SD; inside
    :func:`fit_cache` reused for another cluster of the lane at the same scale (the clusters'
    half-widths take few values)."""
    cache = _FITS.get()
    key = None
    if cache is not None:
        key = ("curvature", np.asarray(corr).dtype.str, np.ascontiguousarray(corr).tobytes(), float(sig_c))
        if key in cache:
            return cache[key]
    d2 = -ndi.gaussian_filter1d(corr, sig_c, order=2, mode="nearest")
    out = (d2, robust_sd(d2))
    if key is not None:
        d2.flags.writeable = False  # shared between clusters: read only
        cache[key] = out
    return out


def _with_shoulders(corr: np.ndarray, cs: np.ndarray, peaks: list, a: int, b: int, thr: float) -> list:
    """``peaks`` of the cluster ``a..b`` plus its shoulders: minima of the second derivative
    (scale 0.45 of the strongest peak's half-width) not already explained by a peak, nor
    lying on the flat top of a higher maximum (:data:`FLAT_TOP`)."""
    hp = max(peaks, key=lambda q: cs[q])
    half = cs[hp] / 2
    l = hp
    while l > a and cs[l] > half:
        l -= 1
    r = hp
    while r < b and cs[r] > half:
        r += 1
    sig_c = max(1.0, 0.45 * max(1.0, (r - l) / 2.0))
    d2, d2n = _curvature(corr, sig_c)
    seg = d2[a:b + 1]
    cpk, cpr = find_peaks(seg, prominence=max(0.05 * max(seg.max(), 1e-12), 4 * d2n))
    # a curvature bump mostly on the convex side: not the concave foot of a band in a valley
    cpk = [int(c + a) for c, pr in zip(cpk, cpr["prominences"])
           if cs[c + a] > 0.04 * cs[hp] and cs[c + a] > thr and d2[c + a] > -0.5 * pr]
    cand = sorted(set(peaks))
    for c in cpk:
        if all(abs(c - q) > 1.2 * sig_c for q in cand) and not any(_on_top_of(cs, c, q) for q in peaks):
            cand.append(c)
    return sorted(cand)


def _half_width(cs: np.ndarray, p: int, a: int, b: int) -> float:
    """Half width at half maximum (px, at least 1) of the peak at ``p`` within ``a..b``.

    Each side ends where the profile falls to half the peak or stops falling (a
    neighbouring band); of the sides that reached half the steeper one counts (a
    band on another's tail looks broader on that side), else the wider one."""
    half = cs[p] / 2
    l = p
    while l > a and cs[l] > half and cs[l - 1] <= cs[l]:
        l -= 1
    r = p
    while r < b and cs[r] > half and cs[r + 1] <= cs[r]:
        r += 1
    sides = [w for w, end in ((p - l, cs[l]), (r - p, cs[r])) if end <= half]
    return max(1.0, float(min(sides) if sides else max(p - l, r - p)))


#: A band hidden in a cluster (a shoulder with no curvature minimum of its own, like the NEB ladder's
#: 0.9-0.6 kb bands on the tail of the 1.0 kb band) is added where the residual of the cluster's
#: Gaussian fit has a bump that (a) stands ``min_snr`` SDs out, the SD being the profile noise and a
#: share of the fitted profile for the Gaussian's misfit of a real band's shape (this share,
#: 3 % of the highest fitted value within a typical half-width: a band's shape misfit scales with its
#: height over its whole extent; an exoimage default, not fitted), and (b) improves the noise-weighted fit by more
#: than the Bayesian information criterion charges for three more parameters (3 ln n). Not fitted
#: to the ladder's count.
SHAPE_ERROR = 0.03
#: at most this many bands are added to one cluster from its residual (the NEB 0.9-0.6 kb group
#: needs three); more would be fitting noise structure
MAX_RESIDUAL_BANDS = 4
#: bands are looked for in the residual of clusters of at least this many maxima only (and in the gap
#: between two clusters of this many together): close bands, as in a ladder; an isolated band's
#: misfit is its shape, not a hidden band
MIN_CLUSTER_PEAKS = 2
#: a band added from the residual or a split must lie at least this many of the lane's typical
#: half-widths (HWHM) from every other band: 1.5 HWHM = 1.77 SD, just under the 2 SD at which two
#: equal Gaussians show a dip (Sparrow's limit), so the shoulder regime; closer components fit a
#: band's non-Gaussian top (the NEB 3 kb and 10 kb bands), not two bands. Not fitted.
MIN_SEPARATION_HW = 1.5
#: a fitted component broader (SD) than the lane's typical band by this factor or more is tried as
#: two bands (a blend with no dip): the SD of two equal bands :data:`MIN_SEPARATION_HW` apart,
#: sqrt(1 + (d / 2 sigma)^2); beyond ``SPLIT_MAX`` (three or more bands' worth) of the lane's typical
#: band, or of the cluster's other components where they are broader (bands broaden down a gel), it
#: is a smear and kept whole. Not fitted.
SPLIT_MIN = float(np.sqrt(1.0 + (MIN_SEPARATION_HW * 1.1774 / 2.0) ** 2))
SPLIT_MAX = 3.0


def _misfit_var(model: np.ndarray, noise: float, hw_lane: float) -> np.ndarray:
    """Variance of a cluster fit's residual that is not a band: the profile noise and
    :data:`SHAPE_ERROR` of the highest fitted value within a typical half-width (a band's
    shape misfit scales with its height over its whole extent, flanks included)."""
    env = ndi.maximum_filter1d(np.clip(model, 0, None), size=2 * int(np.ceil(hw_lane)) + 1, mode="nearest")
    return noise ** 2 + (SHAPE_ERROR * env) ** 2


def _may_be_allowed(x, starts, centre_tol, js, allowed, tol) -> bool:
    """Whether the ``js``-th (in order) fitted centres of a fit started at ``starts`` with
    centres within ``centre_tol`` of them (and inside ``x``) can each be within ``tol`` of an
    ``allowed`` one (None: all are allowed). The j-th smallest fitted centre lies between the
    j-th smallest lower and upper bounds, so False means no fit could be kept: not worth one."""
    if allowed is None:
        return True
    al = np.asarray(allowed, float)
    if not len(al):
        return False
    lo = np.sort([max(x[0], q - t) for q, t in zip(starts, centre_tol)])
    hi = np.sort([min(x[-1], q + t) for q, t in zip(starts, centre_tol)])
    slack = tol + 1e-6  # float margin: only ever keeps a fit that could be skipped
    return all(bool(np.any((al >= lo[j] - slack) & (al <= hi[j] + slack))) for j in js)


def _sd_max(starts, hws, orig, s_lane) -> np.ndarray:
    """Upper bounds of the components' SDs: twice their own half-width's SD for the bands found
    with a maximum or shoulder (``orig``), and :data:`SPLIT_MIN` of the lane's typical SD for a
    band added from a fit's residual: it has no shape of its own to measure, and one broader than
    that would be taken for two bands (a hidden band fitted broader swallows its neighbours' tails:
    the NEB 0.9 kb band on the 1.0 kb band's)."""
    return np.array([2.0 * h / 1.1774 if q in orig else SPLIT_MIN * s_lane for q, h in zip(starts, hws)])


def _residual_bands(x, yv, peaks, hws, hw_lane, cs, maxima, thr, min_snr=4.0, allowed=None, tol=3.0):
    """``peaks`` and half-widths of a cluster plus the bands its fit residual shows
    (:data:`SHAPE_ERROR`, :data:`MAX_RESIDUAL_BANDS`) and the set of those added; with
    ``allowed`` (profile indices) only bands whose fitted centre is within ``tol`` of one."""

    def ok(*cs_):
        return allowed is None or all(len(allowed) and np.abs(np.asarray(allowed) - v).min() <= tol for v in cs_)

    noise = thr / min_snr if thr > 0 else 1.0
    hw_of = dict(zip((int(q) for q in peaks), (float(h) for h in hws)))
    s_lane = hw_lane / 1.1774
    penalty = 3.0 * np.log(len(x))  # BIC: three more parameters

    ps = sorted(hw_of)
    orig = set(ps)
    h0 = np.array([hw_of[q] for q in ps])
    comps = _fit_cluster(x, yv, ps, h0 / 1.1774, 1.5 * h0, 2.0 * h0 / 1.1774)
    added, tries = 0, 0
    excluded = np.zeros(len(x), bool)
    while added < MAX_RESIDUAL_BANDS and tries < MAX_RESIDUAL_BANDS + 1:
        tries += 1
        model = _gauss_sum(np.ravel(comps), x)
        var = _misfit_var(model, noise, hw_lane)
        res = yv - model
        rs = ndi.gaussian_filter1d(res, max(1.0, 0.5 * s_lane), mode="nearest")
        centres = np.array([c[1] for c in comps])
        far = np.min(np.abs(x[:, None] - centres[None, :]), axis=1) >= hw_lane
        z = np.where(far & ~excluded, rs / np.sqrt(var), -np.inf)
        i = int(np.argmax(z))
        c = int(x[i])
        if not np.isfinite(z[i]) or z[i] < min_snr or rs[i] < thr:
            break
        excluded |= np.abs(x - c) < hw_lane
        if c in hw_of or any(_on_top_of(cs, c, q) for q in maxima):
            continue
        trial_of = dict(hw_of)
        trial_of[c] = hw_lane
        tps = sorted(trial_of)
        s0 = np.array([s_lane if q == c else comps[ps.index(q)][2] for q in tps])
        h = np.array([trial_of[q] for q in tps])
        chi_old = float(np.sum(res ** 2 / var))
        # a component at c explains at most the residual around it: not worth a fit below the penalty
        if float(np.sum((res ** 2 / var)[np.abs(x - c) <= 2 * s_lane])) <= penalty:
            continue
        if not _may_be_allowed(x, tps, 1.5 * h, [tps.index(c)], allowed, tol):
            continue
        trial = _fit_cluster(x, yv, tps, s0, 1.5 * h, _sd_max(tps, h, orig, s_lane))
        chi_new = float(np.sum((yv - _gauss_sum(np.ravel(trial), x)) ** 2 / var))
        tc = np.array([t[1] for t in trial])
        j = tps.index(c)
        gaps = np.abs(np.delete(tc, j) - tc[j])
        cj = int(np.clip(round(tc[j]), 0, len(cs) - 1))
        if any(_on_top_of(cs, cj, q) for q in maxima):
            continue
        if chi_old - chi_new <= penalty or (len(gaps) and gaps.min() < MIN_SEPARATION_HW * hw_lane) \
                or not ok(tc[j]):
            continue
        hw_of, ps, comps = trial_of, tps, trial
        added += 1
    # a component much broader than the lane's bands but not a smear may be two bands with no
    # dip between them: split it in two where that fits better by the same criterion
    for q in sorted(ps, key=lambda q: -comps[ps.index(q)][2]):
        if added >= MAX_RESIDUAL_BANDS:
            break
        amp, cen, sig = comps[ps.index(q)]
        # a smear is broad against the bands beside it: bands broaden down a gel, so the
        # cluster's other components (where they are broader than the lane's typical band)
        # set the upper limit
        others = [c[2] for k, c in zip(ps, comps) if k != q]
        s_here = max(s_lane, float(np.median(others))) if others else s_lane
        if not SPLIT_MIN * s_lane < sig <= SPLIT_MAX * s_here:
            continue
        model = _gauss_sum(np.ravel(comps), x)
        var = _misfit_var(model, noise, hw_lane)
        chi_old = float(np.sum((yv - model) ** 2 / var))
        c1, c2 = int(round(cen - 0.8 * sig)), int(round(cen + 0.8 * sig))
        if c1 in hw_of or c2 in hw_of or c1 < x[0] or c2 > x[-1]:
            continue
        trial_of = {k: v for k, v in hw_of.items() if k != q}
        trial_of[c1] = trial_of[c2] = hw_lane
        tps = sorted(trial_of)
        s0 = np.array([s_lane if k in (c1, c2) else comps[ps.index(k)][2] for k in tps])
        h = np.array([trial_of[k] for k in tps])
        if not _may_be_allowed(x, tps, 1.5 * h, [tps.index(c1), tps.index(c2)], allowed, tol):
            continue
        trial = _fit_cluster(x, yv, tps, s0, 1.5 * h, 2.0 * h / 1.1774)
        chi_new = float(np.sum((yv - _gauss_sum(np.ravel(trial), x)) ** 2 / var))
        tc = np.array([t[1] for t in trial])
        ta = np.array([t[0] for t in trial])
        j1, j2 = tps.index(c1), tps.index(c2)
        gaps = np.abs(tc[:, None] - tc[None, [j1, j2]])
        gaps[[j1, j2], [0, 1]] = np.inf
        if chi_old - chi_new <= penalty or gaps.min() < MIN_SEPARATION_HW * hw_lane or min(ta[j1], ta[j2]) < thr \
                or not ok(tc[j1], tc[j2]):
            continue
        hw_of, ps, comps = trial_of, tps, trial
        added += 1
    if not added:
        return list(peaks), hws, set()
    return ps, np.array([hw_of[q] for q in ps]), set(ps) - set(int(q) for q in peaks)


def _gap_bands(clusters: list, cs: np.ndarray, thr: float, hw_lane: float, allowed, tol: float) -> list:
    """``clusters`` plus a band of its own in every gap between two neighbouring clusters of a run
    (together at least :data:`MIN_CLUSTER_PEAKS` maxima) whose rows all stay above ``thr`` and
    span at least :data:`MIN_SEPARATION_HW` typical half-widths: signal no band's region holds,
    a band without a maximum of its own (marked ``gap``, a hidden band); with ``allowed`` only
    where its highest row is within ``tol`` of one."""
    out = []
    for i, cl in enumerate(clusters):
        out.append(cl)
        if i + 1 == len(clusters):
            break
        nxt = clusters[i + 1]
        a, b = cl["b"] + 1, nxt["a"] - 1
        if b - a + 1 < MIN_SEPARATION_HW * hw_lane or len(cl["peaks"]) + len(nxt["peaks"]) < MIN_CLUSTER_PEAKS:
            continue
        if not bool(np.all(cs[a:b + 1] > thr)):
            continue
        p = a + int(np.argmax(cs[a:b + 1]))
        if allowed is not None and not (len(allowed) and np.abs(np.asarray(allowed) - p).min() <= tol + 0.5 * (b - a)):
            continue
        out.append({"a": a, "b": b, "peaks": [p], "gap": True})
    return out


def _find_clusters(corr, noise, min_snr, smooth_px, resolve, min_height, min_prominence, support,
                   support_tol_px, hidden, hidden_tol_px):
    """The band clusters of :func:`find_bands` before any fit (``None``: no band), with the
    values its fits need: ``(clusters, cs, thr, maxima, hw_lane, look, allowed)``."""
    n = len(corr)
    cs = ndi.gaussian_filter1d(corr, smooth_px, mode="nearest")
    thr = min_snr * noise
    floor = thr if min_prominence is None else min(thr, min_prominence)
    pk, props = find_peaks(cs, height=thr, prominence=floor)
    if len(pk):
        # a peak standing less than ``thr`` above its surroundings is still a band when
        # its dip is deep relative to its own height (a band beside a stronger one)
        strict = props["prominences"] >= thr
        ok = strict | (props["prominences"] >= 0.25 * cs[pk])
        if support is not None and len(support):
            sup = np.asarray(support, float)
            near = np.array([np.abs(sup - p).min() <= support_tol_px for p in pk])
        else:
            near = np.zeros(len(pk), bool)
        # the absolute height floor (per-pixel signal) applies to bands on their own; a
        # peak standing ``min_snr`` profile-noise SDs out where another lane has a clear
        # band (a faint copy of the same protein) is a band too
        high = cs[pk] >= min_height
        pk = pk[(strict & (high | near)) | (ok & near & high)]
    if not len(pk):
        return None
    maxima = set(int(q) for q in pk)
    hw_lane = float(np.median([_half_width(cs, int(q), 0, n - 1) for q in pk]))
    # band region per peak
    regions = []
    for p in pk:
        # half-maximum half-width of this peak
        half = cs[p] / 2
        l = p
        while l > 0 and cs[l] > half:
            l -= 1
        r = p
        while r < n - 1 and cs[r] > half:
            r += 1
        hwp = max(1.0, (r - l) / 2.0)
        # region: down to 0.5 % of the peak or a valley, but at most 3 half-widths
        # (about 3.5 sigma) from the peak, so that faint and strong copies of the
        # same band get regions of the same shape (noise does not cut weak tails)
        stop = 0.005 * cs[p]
        lim_a, lim_b = max(0, int(np.floor(p - 3 * hwp))), min(n - 1, int(np.ceil(p + 3 * hwp)))
        regions.append(list(descend(cs, p, lim_a, lim_b, stop, noise)))
    # merge regions that touch into clusters
    clusters = []
    for (a, b), p in zip(regions, pk):
        if clusters and a <= clusters[-1]["b"] + 1:
            clusters[-1]["b"] = max(clusters[-1]["b"], b)
            clusters[-1]["peaks"].append(p)
        else:
            clusters.append({"a": a, "b": b, "peaks": [p]})
    look = resolve and hidden is not False and hidden is not None
    allowed = None if hidden is True or not look else np.asarray(hidden, float)
    if look and allowed is not None and not len(allowed):
        look = False
    if look:
        clusters = _gap_bands(clusters, cs, thr, hw_lane, allowed, hidden_tol_px)
    return clusters, cs, thr, maxima, hw_lane, look, allowed


def band_cover(corr: np.ndarray, noise: float, **kwargs) -> np.ndarray:
    """Rows (bool mask over ``corr``) that the bands of :func:`find_bands` ``(corr, noise, **kwargs)``
    cover, without fitting them: every cluster's bands tile its region exactly (a single
    band spans it, split bands meet at their split points), so this is the union of the
    clusters' regions (incl. above-threshold gaps when hidden bands are looked for)."""
    cover = np.zeros(len(corr), bool)
    args = inspect.signature(_find_bands).bind(corr, noise, **kwargs)
    args.apply_defaults()
    found = _find_clusters(**args.arguments)
    if found is not None:
        for cl in found[0]:
            cover[cl["a"]:cl["b"] + 1] = True
    return cover


def _find_bands(corr: np.ndarray, noise: float, *, min_snr: float = 4.0, smooth_px: float = 1.5,
               resolve: bool = True, min_height: float = 0.0,
               min_prominence: float | None = None, support=None,
               support_tol_px: float = 6.0, hidden=False, hidden_tol_px: float = 3.0) -> list[BandFit]:
    """Bands in a background-corrected lane profile.

    Parameters
    ----------
    corr : ndarray
        Lane profile minus its (rolling-ball) baseline.
    noise : float
        Noise SD of one profile value (sum over the lane width).
    min_snr : float
        A band's peak must stand ``min_snr`` noise SDs above the baseline and
        its neighbourhood.
    smooth_px : float
        Gaussian smoothing (px) before peak finding.
    min_height : float
        Absolute minimum peak height (profile units) of a band on its own; a
        peak with ``support`` (another lane has a band at that height) needs
        only the ``min_snr`` criterion.
    min_prominence : float, optional
        Peaks whose prominence is below ``min_snr * noise`` but at least this
        (and at least a quarter of their height) are kept too when another lane
        has a band within ``support_tol_px`` of them (``support``: profile
        indices): a band next to a stronger one on a textured membrane, where
        ``noise`` is inflated, is real when the same protein shows in other lanes.
    resolve : bool
        Split overlapping bands (close doublets, shoulders) by fitting a sum of
        Gaussians whose centres start at the curvature minima of the profile.
    hidden : bool or array of float
        With ``resolve``, also bands without a maximum or curvature peak of their own
        (``BandFit.hidden``): in the fit residual of clusters of several bands
        (:func:`_residual_bands`) and in above-threshold gaps between such clusters
        (:func:`_gap_bands`). ``True``: all found; an array (profile indices): only those
        within ``hidden_tol_px`` of one (confirmed by other lanes); ``False``: none (the
        bands are exactly those found without looking).

    Returns
    -------
    list of BandFit
        Band regions run from where the corrected profile falls to 1 % of the
        peak (or the noise level, or the valley to the next band), padded by
        half the band's half-width; overlapping bands share a cluster region
        split at the point where the fitted components are equal.
    """
    found = _find_clusters(corr, noise, min_snr, smooth_px, resolve, min_height, min_prominence, support,
                           support_tol_px, hidden, hidden_tol_px)
    if found is None:
        return []
    clusters, cs, thr, maxima, hw_lane, look, allowed = found
    out: list[BandFit] = []
    for ci, cl in enumerate(clusters):
        a, b = cl["a"], cl["b"]
        peaks = list(cl["peaks"])
        if resolve:
            peaks = _with_shoulders(corr, cs, peaks, a, b, thr)
        # half-widths of the cluster's peaks (a shoulder's own is not measurable: the
        # lane's typical band's)
        hws = np.array([_half_width(cs, q, a, b) if q in maxima else hw_lane for q in peaks])
        hp = max(peaks, key=lambda q: cs[q])
        hw = float(hws[peaks.index(hp)])
        a2, b2 = a, b
        # do not pad into the next cluster
        if ci > 0:
            a2 = max(a2, clusters[ci - 1]["b"] + 1)
        if ci + 1 < len(clusters):
            b2 = min(b2, clusters[ci + 1]["a"] - 1)
        x = np.arange(a2, b2 + 1, dtype=float)
        yv = corr[a2:b2 + 1]
        added = set()
        if look and len(x) >= 5 and len(cl["peaks"]) >= MIN_CLUSTER_PEAKS and (allowed is None or len(allowed)):
            peaks, hws, added = _residual_bands(x, yv, peaks, hws, hw_lane, cs, maxima, thr, min_snr,
                                                allowed, hidden_tol_px)
            hp = max(peaks, key=lambda q: cs[q])
            hw = float(hws[peaks.index(hp)])
        if len(peaks) == 1:
            p = peaks[0]
            tot = float(np.clip(yv, 0, None).sum())
            c = float(np.sum(x * np.clip(yv, 0, None)) / tot) if tot > 0 else float(p)
            out.append(BandFit(y=c, sigma=hw / 1.1774, top=a2, bottom=b2, peak=float(cs[p]),
                               fraction=1.0, cluster=ci, deconvolved=False, hidden=bool(cl.get("gap"))))
            continue
        # centres within 1.5 typical half-widths of where they were found, SDs at most
        # twice the typical one (a component must not swallow its neighbours' flanks)
        tol, smax = 1.5 * hws, _sd_max(peaks, hws, set(peaks) - added, hw_lane / 1.1774)
        comps = _fit_cluster(x, yv, peaks, hws / 1.1774, tol, smax)
        # drop components that vanished or merged, refit once
        keep = []
        for comp in comps:
            if comp[0] * comp[2] * 2.5066 < 2 * thr:
                continue
            if keep and abs(comp[1] - keep[-1][1]) < 0.8 * min(comp[2], keep[-1][2]):
                continue
            keep.append(comp)
        if not keep:
            keep = [max(comps, key=lambda c: c[0] * c[2])]
        if len(keep) != len(comps) and len(keep) > 1:
            keep = _fit_cluster(x, yv, [c[1] for c in keep], float(np.mean([c[2] for c in keep])),
                                float(tol.max()), float(smax.max()))
        if len(keep) == 1:
            amp, c, s = keep[0]
            out.append(BandFit(y=float(c), sigma=float(s), top=a2, bottom=b2, peak=float(amp),
                               fraction=1.0, cluster=ci, deconvolved=False))
            continue
        # each component's share of the cluster's rows (the volume shared is their sum): a
        # component at the window's end whose Gaussian runs on past it (into the next
        # cluster's rows) gets only what lies inside, not its whole area
        areas = np.array([_gauss_sum(k, x).sum() for k in keep])
        fr = areas / areas.sum()
        # split points between neighbours: where the two fitted components are equal
        splits = []
        for k1, k2 in zip(keep[:-1], keep[1:]):
            xx = np.arange(int(k1[1]), int(np.ceil(k2[1])) + 1, dtype=float)
            g1 = k1[0] * np.exp(-0.5 * ((xx - k1[1]) / k1[2]) ** 2)
            g2 = k2[0] * np.exp(-0.5 * ((xx - k2[1]) / k2[2]) ** 2)
            splits.append(int(xx[np.argmin(np.abs(g1 - g2))]) if len(xx) else int(k1[1]))
        bounds = [a2] + splits + [b2 + 1]
        for i, (amp, c, s) in enumerate(keep):
            top = bounds[i] if i == 0 else bounds[i]
            bottom = bounds[i + 1] - 1
            start = min(peaks, key=lambda q: abs(q - c))
            out.append(BandFit(y=float(c), sigma=float(s), top=int(top), bottom=int(max(top, bottom)),
                               peak=float(amp), fraction=float(fr[i]), cluster=ci, deconvolved=True,
                               hidden=start in added))
    return out


@functools.wraps(_find_bands)
def find_bands(*args, **kwargs):
    with fit_cache():
        return _find_bands(*args, **kwargs)


def lane_offsets(profiles: dict, order: list, max_shift: int) -> dict:
    """Vertical offset of each lane relative to the first (smile/tilt of rows), px.

    Adjacent lanes' corrected profiles are cross-correlated (shift within
    ``max_shift``) and the shifts accumulated from left to right.
    """
    off = {order[0]: 0.0} if order else {}
    for l1, l2 in zip(order[:-1], order[1:]):
        a, b = profiles[l1], profiles[l2]
        n = min(len(a), len(b))
        a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
        lags = np.arange(-max_shift, max_shift + 1)
        # xc[k] = sum_i a[i] b[i + k] over the overlap: b padded with zeros, one window per lag
        bp = np.concatenate([np.zeros(max_shift), b, np.zeros(max_shift)])
        xc = np.lib.stride_tricks.sliding_window_view(bp, n)[:len(lags)] @ a
        m = int(np.argmax(xc))
        k = float(lags[m])
        if 0 < m < len(lags) - 1:
            den = xc[m - 1] - 2 * xc[m] + xc[m + 1]
            if den < 0:
                k += 0.5 * (xc[m - 1] - xc[m + 1]) / den
        off[l2] = off[l1] + k
    return off


def group_rows(y: np.ndarray, sigma: np.ndarray, lane: np.ndarray, offset: np.ndarray,
               min_gap_px: float = 3.0) -> np.ndarray:
    """Group bands of different lanes into rows (1..R, top to bottom).

    Band heights are corrected by their lane's offset (smile), sorted, and a
    new row starts where the gap to the previous band exceeds
    ``max(min_gap_px, 0.6 * smaller sigma)``, or where the previous row
    already holds a band of the same lane. Then neighbouring rows that share
    no lane and whose mean heights differ by at most 1.2 band SDs are merged.
    """
    n = len(y)
    if n == 0:
        return np.zeros(0, int)
    yc = np.asarray(y, float) - np.asarray(offset, float)
    order = np.argsort(yc)
    rows = np.zeros(n, int)
    r = 1
    members = set()
    prev = None
    for i in order:
        if prev is not None:
            gap = yc[i] - yc[prev]
            tol = max(min_gap_px, 0.6 * min(sigma[i], sigma[prev]))
            if gap > tol or lane[i] in members:
                r += 1
                members = set()
        rows[i] = r
        members.add(lane[i])
        prev = i
    # merge neighbouring rows that share no lane and sit within about one band SD
    # of each other (a lane whose offset was misjudged by a few px)
    sig = np.asarray(sigma, float)
    while True:
        ids = sorted(set(rows.tolist()), key=lambda k: yc[rows == k].mean())
        merged = False
        for r1, r2 in zip(ids[:-1], ids[1:]):
            m1, m2 = rows == r1, rows == r2
            if set(lane[m1].tolist()) & set(lane[m2].tolist()):
                continue
            tol = max(min_gap_px, 1.2 * float(np.median(np.concatenate([sig[m1], sig[m2]]))))
            if abs(yc[m2].mean() - yc[m1].mean()) <= tol:
                rows[m2] = r1
                merged = True
                break
        if not merged:
            break
    # renumber 1..R from the top
    ids = sorted(set(rows.tolist()), key=lambda k: yc[rows == k].mean())
    remap = {k: i + 1 for i, k in enumerate(ids)}
    return np.array([remap[k] for k in rows.tolist()], int)


def assign_rows(lanes, lane: np.ndarray, y: np.ndarray, sigma: np.ndarray, profiles: dict):
    """Row numbers of bands across the sample lanes of each membrane piece.

    Per piece (top to bottom), the sample lanes' offsets (smile) come from their
    baseline-corrected ``profiles`` (:func:`lane_offsets`, shifts up to 3 % of the
    piece height + 2 px) and their bands are grouped by :func:`group_rows`; rows
    are numbered on from the piece above. Ladder lanes' bands get row 0.

    Parameters
    ----------
    lanes : list of Lane
    lane, y, sigma : ndarray
        Lane number, centre (px) and SD (px) of every band.
    profiles : dict
        ``{lane: profile minus its rolling ball}``.

    Returns
    -------
    rows : ndarray of int
    offsets : dict
        ``{lane: offset px}`` of every sample lane (used to place the ladder).
    """
    lane = np.asarray(lane)
    rows = np.zeros(len(lane), int)
    offsets = {}
    next_row = 0
    for pc in sorted({ln.piece for ln in lanes}):
        mine = [ln for ln in lanes if ln.piece == pc]
        order = [ln.lane for ln in mine if not ln.is_ladder]
        if not order:
            continue
        height = max(ln.y_bottom_px - ln.y_top_px + 1 for ln in mine)
        off = lane_offsets(profiles, order, int(0.03 * height) + 2)
        offsets.update(off)
        m = np.isin(lane, order)
        if m.any():
            r = group_rows(np.asarray(y, float)[m], np.asarray(sigma, float)[m], lane[m],
                           np.array([off[v] for v in lane[m]], float))
            rows[m] = r + next_row
            next_row += int(r.max())
    return rows, offsets


def ladder_calibration(y_bands, kda, *, max_missing: int = 3):
    """Match ladder bands (top to bottom) to marker weights (largest first).

    Returns the matched ``(y_px, kda)`` arrays. When fewer bands than markers
    were found, the assignment (which markers are missing, up to
    ``max_missing``) with the straightest log(kDa)-vs-y relation is chosen;
    when more were found, the extra bands that fit worst are dropped.
    """
    from itertools import combinations

    yb = np.sort(np.asarray(y_bands, float))
    kd = np.sort(np.asarray(kda, float))[::-1]
    if len(yb) < 2 or len(kd) < 2:
        raise ValueError(f"need at least 2 ladder bands and 2 marker weights, found {len(yb)} bands "
                         f"for {len(kd)} markers")

    def score(ys, ks):
        cols = [ys, np.ones_like(ys)]
        res = np.linalg.lstsq(np.vstack(cols).T, np.log(ks), rcond=None)[1]
        return float(res[0]) if len(res) else 0.0

    if len(yb) == len(kd):
        return yb, kd
    if len(yb) < len(kd):
        miss = len(kd) - len(yb)
        if miss > max_missing:
            raise ValueError(f"ladder lane has {len(yb)} bands but {len(kd)} marker weights were given "
                             f"(more than {max_missing} missing)")
        best = min(combinations(range(len(kd)), len(yb)), key=lambda idx: score(yb, kd[list(idx)]))
        return yb, kd[list(best)]
    extra = len(yb) - len(kd)
    if extra > max_missing:
        # keep it simple: the strongest are chosen by the caller; here take the best-fitting subset of the top ones
        yb = yb[:len(kd) + max_missing]
        extra = max_missing
    best = min(combinations(range(len(yb)), len(kd)), key=lambda idx: score(yb[list(idx)], kd))
    return yb[list(best)], kd


def mw_from_y(y, y_ladder, kda_ladder) -> np.ndarray:
    """Apparent molecular weight: log-linear interpolation between marker bands,
    linear extrapolation of log(kDa) beyond the first/last pair."""
    y = np.asarray(y, float)
    yl = np.asarray(y_ladder, float)
    lk = np.log(np.asarray(kda_ladder, float))
    o = np.argsort(yl)
    yl, lk = yl[o], lk[o]
    out = np.interp(y, yl, lk)
    lo, hi = y < yl[0], y > yl[-1]
    if lo.any():
        out[lo] = lk[0] + (y[lo] - yl[0]) * (lk[1] - lk[0]) / (yl[1] - yl[0])
    if hi.any():
        out[hi] = lk[-1] + (y[hi] - yl[-1]) * (lk[-1] - lk[-2]) / (yl[-1] - yl[-2])
    return np.exp(out)


# --------------------------------------------------------------------------
# band shape: a split Gaussian (one SD above the centre, another below) for sharing a
# cluster's volume among its bands


def split_gauss(x: np.ndarray, amp: float, c: float, s_top: float, s_bottom: float) -> np.ndarray:
    """A split Gaussian: ``amp * exp(-u^2/2)`` with ``u = (x - c) / s_top`` above the centre
    (``x < c``, towards the wells) and ``(x - c) / s_bottom`` below it."""
    x = np.asarray(x, float)
    s = np.where(x < c, s_top, s_bottom)
    return amp * np.exp(-0.5 * ((x - c) / s) ** 2)


def band_skew(yv: np.ndarray) -> float:
    """``s_top / s_bottom`` of the split Gaussian (:func:`split_gauss`) fitted by least squares
    to one band's profile ``yv`` (rows top to bottom); NaN where the fit fails. The fit weighs
    the band's flanks, where a neighbour's share is decided, not only its half maximum."""
    yv = np.asarray(yv, float)
    x = np.arange(len(yv), dtype=float)
    p = int(np.argmax(yv))
    pos = np.clip(yv, 0, None)
    sd = float(np.sqrt((pos * (x - p) ** 2).sum() / max(pos.sum(), 1e-12))) or 1.0

    def parts(q):
        below = x >= q[1]
        s = np.where(below, q[3], q[2])
        u = (x - q[1]) / s
        return below, s, u, np.exp(-0.5 * u * u)

    def fun(q):
        return q[0] * parts(q)[3] - yv

    def jac_cols(q):
        below, s, u, e = parts(q)
        ae = q[0] * e
        Jt = np.empty((4, len(x)))
        Jt[0] = e
        Jt[1] = ae * u / s
        Jt[2] = np.where(below, 0.0, ae * u * u / s)
        Jt[3] = np.where(below, ae * u * u / s, 0.0)
        return Jt

    q, ok = _solve_lm(fun, lambda q, f=None: np.ascontiguousarray(jac_cols(q).T),
                      np.array([max(yv[p], 1e-9), float(p), sd, sd]), jac_cols)
    if not (ok and q[0] > 0 and q[2] > 0 and q[3] > 0 and 0 <= q[1] <= len(yv) - 1):
        return np.nan
    return float(q[2] / q[3])


#: a run of at least this many overlapping bands takes its SDs from a straight line against
#: position (:func:`split_shares`): three, the fewest that a line does not pass through exactly
SD_TREND_MIN_BANDS = 3


def split_shares(x: np.ndarray, yv: np.ndarray, centres, sigmas, skew: float, valid=None) -> np.ndarray:
    """Shares of a cluster's rows ``x`` (profile ``yv``) among its bands (they add up to 1).

    Every band is a split Gaussian (:func:`split_gauss`) of top/bottom SD ratio ``skew`` (the
    lane's band shape, :func:`band_skew`) whose mean SD is the band's Gaussian SD from
    ``sigmas`` (in a run of :data:`SD_TREND_MIN_BANDS` or more, the straight line through them
    against position); amplitudes and centres (within 1.5 half-widths of ``centres``) are
    fitted to ``yv`` by least squares over the ``valid`` rows (default all; rows with clipped
    pixels are no measurement of the shape). Each row's signal ``yv`` then goes to the bands in
    proportion to their fitted models at that row: the shares keep the observed profile (a
    band's real, non-model shape stays with the band that dominates its rows) and add up to 1.
    With ``skew`` 1 the bands are Gaussians, detection's model."""
    x = np.asarray(x, float)
    yv = np.asarray(yv, float)
    k = len(centres)
    f = 2.0 / (1.0 + skew)
    sd = np.asarray(sigmas, float)
    if k >= SD_TREND_MIN_BANDS:
        # bands broaden steadily down a gel: in a run of three or more the SDs follow a straight
        # line against position (a shoulder's own SD, found in a neighbour's tail, is poorly known)
        cc = np.asarray(centres, float)
        sd = np.maximum(np.polyval(np.polyfit(cc, sd, 1), cc), 0.5)
    s_top, s_bot = skew * f * sd, f * sd

    def parts(q):
        c = q[1::2, None]
        below = x[None, :] >= c
        s = np.where(below, s_bot[:, None], s_top[:, None])
        u = (x[None, :] - c) / s
        e = np.exp(-0.5 * u * u)
        return e, u, s

    wt = np.ones(len(x)) if valid is None else np.asarray(valid, float)

    def fun(q):
        e, _, _ = parts(q)
        return wt * ((q[0::2, None] * e).sum(0) - yv)

    def jac(q):
        e, u, s = parts(q)
        J = np.empty((len(x), 2 * k))
        J[:, 0::2] = e.T
        J[:, 1::2] = (q[0::2, None] * e * u / s).T
        return J * wt[:, None]

    p0, lo, hi = [], [], []
    for c, sg in zip(centres, sd):
        t = 1.5 * 1.1774 * sg
        p0 += [max(float(np.interp(c, x, yv)), 1e-9), c]
        lo += [0.0, max(x[0], c - t)]
        hi += [np.inf, min(x[-1], c + t)]
    lo, hi = np.array(lo), np.array(hi)
    p0 = np.clip(p0, lo + 1e-9, hi - 1e-9)
    q = least_squares(fun, p0, jac=jac, bounds=(lo, hi), **_LSQ).x
    e, u, _ = parts(q)
    # each row's signal goes to the bands in proportion to their models there (log domain: far
    # from every centre the models underflow, their ratio does not)
    lg = np.log(np.maximum(q[0::2], 1e-300))[:, None] - 0.5 * u * u
    w = np.exp(lg - lg.max(0))
    w /= w.sum(0)
    sh = (w * yv[None, :]).sum(1)
    tot = float(yv.sum())
    return sh / tot if tot != 0 else np.full(k, 1.0 / k)
