"""Outlines: the closed path around a candidate that follows its strongest outer edge.

Around each candidate the (smoothed) full-resolution image is sampled on a
polar grid of :data:`N_ANGLES` angles x :data:`N_RADII` radii from
``RHO_LO`` to ``RHO_HI`` times the candidate's radius. The outline is the
closed path, found by dynamic programming over two turns (so that it does not
depend on the start angle), that follows the strongest light-to-dark edge
going outwards (the body / stain boundary) with at most :data:`DP_MAX_STEP`
radial samples between neighbouring angles, each step costing
:data:`DP_JUMP_PENALTY`. Where a weaker fall further out closes an arc of angles and the level
between the two falls stays above the stain (a darker lobe of an irregular particle, not a stain
gap before a touching vesicle), the path is traced again to that outer fall (:data:`LOBE_RULE`). The edge position is refined to sub-pixel precision
by a parabola through the edge strength around the chosen sample. After selection the
outlines are moved out to the outer foot of the edge ramp in excess of the imaging blur
(:func:`outer_foot_shifts`, issue 13; docs/tem.md).

Edge strengths are in noise SDs of the image gradient at the smoothing used:
the smoothing grows with the candidate's size, in octave levels
(:func:`outline_levels`): large collapsed vesicles have broad, soft edges.

Values: set when the outline method was written and tuned (commits 027ecd5,
d509712, 2867a90) on the simulator's scenarios and the real ScanEV
micrograph; not measured one by one.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..stats import robust_sd

#: angles of the polar grid (3.75 degrees apart)
N_ANGLES = 96
#: radial samples of the polar grid, from RHO_LO to RHO_HI times the candidate's radius
N_RADII = 80
RHO_LO, RHO_HI = 0.35, 1.75
#: the dynamic programme: largest change of radial sample between neighbouring
#: angles, and the cost of each sample of change (in edge-strength units)
DP_MAX_STEP = 2
DP_JUMP_PENALTY = 0.15
#: an edge of the wrong sign counts at most this much against a path (noise SDs)
EDGE_COST_FLOOR = -5
#: the sub-pixel parabola moves the edge by at most half a radial sample
SUBPIXEL_MAX_SHIFT = 0.5
#: an angle is "at the limit" when its edge is within this many samples of either end
#: of the radial search
AT_LIMIT_SAMPLES = 1
#: map rows per cv2.remap call (it takes at most 32767 rows)
REMAP_CHUNK_ROWS = 32000
#: smoothing octave of a candidate: floor(log2(this x radius / base sigma)), at least 0
OUTLINE_SMOOTH_PER_RADIUS = 0.08
#: the 3x3 Sobel kernel's weights sum to 8: dividing by it gives the gradient per px
SOBEL3_NORM = 8.0
#: edge closure: this percentile of the edge strength around the outline
CLOSURE_PERCENTILE = 20
#: the "second look" (:func:`outline_levels` with ``detrend=True``) traces outlines on the
#: band-passed image G(sigma) - G(DETREND_RATIO x sigma): a broad halo or stain pool around a
#: vesicle (a ramp far stronger than the body / stain step) is removed, the step's gradient
#: still peaks at the step. 3.3: on the dark-EV crop (``../shared``) the edge SNR of the three
#: EVs rose from 0.7-2.7 to 3.9-6.1 noise SDs with 12 px at sigma 3.6, flat between 3 and 4.5
DETREND_RATIO = 3.3
#: the body of an outline is sampled at these fractions of its radius, its surround at these
#: (:func:`body_minus_surround`: the per-outline polarity evidence of the second look)
BODY_FRACS = (0.1, 0.25, 0.4, 0.55, 0.7)
SURROUND_FRACS = (1.1, 1.2, 1.3, 1.4)
#: the image is clipped to its median +- this many robust SDs before the wide Gaussian
DETREND_CLIP_SDS = 2.5
#: the wide Gaussian of the band-pass is computed on a copy shrunk so that its sigma spans this
#: many px (then enlarged bilinearly: the background is smooth)
DETREND_SHRUNK_SIGMA_PX = 4.0

#: cv2.remap refuses a source image with a side of SHRT_MAX (32767) px or more (OpenCV's
#: imgwarp.cpp assertion); such images (e.g. a 20 x 100000 px strip) are sampled per candidate
_CV_SHRT_MAX = 32767
_REMAP_MAX_SIDE = _CV_SHRT_MAX  # images with a side >= this are sampled crop by crop


def _remap_cropped(img: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, rows: int) -> np.ndarray:
    """``cv2.remap`` (bilinear, NaN outside) of an image too large for it, ``rows`` map rows at a time.

    Each block of ``rows`` map rows (one candidate) samples a crop of ``img`` that
    holds all its coordinates with a 2 px margin, clamped to the image, so every
    sample sees the same pixels, and the same border, as on the whole image: the
    integer offset subtracted from the float32 coordinates is exact.
    """
    H, W = img.shape
    prof = np.full(map_x.shape, np.nan, np.float32)
    for i in range(0, map_x.shape[0], rows):
        mx, my = map_x[i:i + rows], map_y[i:i + rows]
        fin = np.isfinite(mx) & np.isfinite(my)
        if not fin.any():
            continue
        x0 = int(max(0, np.floor(mx[fin].min()) - 2))
        x1 = int(min(W, np.ceil(mx[fin].max()) + 3))
        y0 = int(max(0, np.floor(my[fin].min()) - 2))
        y1 = int(min(H, np.ceil(my[fin].max()) + 3))
        if x1 <= x0 or y1 <= y0:
            continue  # every sample is outside the image: NaN
        if max(x1 - x0, y1 - y0) >= _CV_SHRT_MAX:
            raise ValueError(f"a vesicle candidate spans {max(x1 - x0, y1 - y0)} px: too large to sample")
        prof[i:i + rows] = cv2.remap(np.ascontiguousarray(img[y0:y1, x0:x1]), mx - np.float32(x0),
                                     my - np.float32(y0), cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))
    return prof


def _dp_path(cost: np.ndarray, max_step: int, jump_penalty: float) -> np.ndarray:
    """The closed path (C, N_ANGLES) of radial samples of largest total ``cost`` (C, N_ANGLES, M),
    at most ``max_step`` samples between neighbouring angles, ``jump_penalty`` per sample of
    change: dynamic programming over two turns so that it does not depend on the start angle."""
    C, A, M = cost.shape
    acc = cost[:, 0, :].copy()
    back = np.zeros((C, 2 * A, M), np.int8)
    offsets = np.arange(-max_step, max_step + 1)
    pen = (jump_penalty * np.abs(offsets)).astype(acc.dtype)[:, None, None]
    # acc shifted by each offset o (sh[:, j] = acc[:, j - o], -inf where j - o is outside), stacked
    # in the order of ``offsets``: argmax takes the first of equal values, as a strict ">" scan would
    padded = np.full((C, M + 2 * max_step), -np.inf, acc.dtype)
    for k in range(1, 2 * A):
        a = k % A
        padded[:, max_step:max_step + M] = acc
        stack = np.stack([padded[:, max_step - o:max_step - o + M] for o in offsets]) - pen
        arg = np.argmax(stack, axis=0)
        acc = np.take_along_axis(stack, arg[None], axis=0)[0] + cost[:, a, :]
        back[:, k, :] = offsets[arg].astype(np.int8)
    idx = np.argmax(acc, axis=1)
    path = np.zeros((C, 2 * A), np.int64)
    path[:, -1] = idx
    rows = np.arange(C)
    for k in range(2 * A - 1, 0, -1):
        path[:, k - 1] = path[:, k] - back[rows, k, path[:, k]]
    path = path[:, A:]  # the second turn
    return path


#: "outermost edge that closes" (issue 13, irregular particles with a darker lobe): at an angle
#: where a weaker fall lies further out than the path's edge, at least LOBE_MIN_GAP samples
#: beyond it and at least LOBE_MIN_EDGE noise SDs strong, and the (signed) level everywhere
#: between the two falls stays above the stain outside the outline by at least LOBE_LEVEL_FRAC of
#: the body's contrast over it (still particle, not a stain gap between two touching vesicles),
#: that fall is the edge; an outline with at least LOBE_MIN_ANGLES such angles is traced again
#: with the outer falls given the inner edge's strength and steps of up to LOBE_MAX_STEP samples
LOBE_RULE = True
LOBE_MIN_GAP = 4
LOBE_MIN_EDGE = 3.0
LOBE_LEVEL_FRAC = 0.35
LOBE_MIN_ANGLES = 6
LOBE_MAX_STEP = 4
#: the stain level: median over the angles of the profile LOBE_OUT_SAMPLES beyond the path's edge;
#: the body level the median LOBE_OUT_SAMPLES inside it
LOBE_OUT_SAMPLES = 4


#: candidates tested together by the lobe rule: its (candidates, angles, samples) temporaries are
#: float64, so bounding the chunk bounds its memory (the result does not depend on it)
LOBE_CHUNK = 64


def _outer_closing(prof, g, cost, path, sign, max_step, jump_penalty):
    """The path moved out to the outermost fall that closes (see LOBE_RULE) where there is one,
    LOBE_CHUNK candidates at a time (each candidate's outcome is its own)."""
    out = path.copy()
    for c0 in range(0, cost.shape[0], LOBE_CHUNK):
        sl = slice(c0, c0 + LOBE_CHUNK)
        out[sl] = _outer_closing_chunk(prof[sl], g[sl], cost[sl], path[sl], sign, max_step, jump_penalty)
    return out


def _outer_closing_chunk(prof, g, cost, path, sign, max_step, jump_penalty):
    """:func:`_outer_closing` on one chunk of candidates."""
    C, A, M = cost.shape
    s = sign * prof  # the particle is the higher side; NaN outside the image
    rows, ang = np.arange(C)[:, None], np.arange(A)[None, :]
    out_i = np.clip(path + LOBE_OUT_SAMPLES, 0, M - 1)
    in_i = np.clip(path - LOBE_OUT_SAMPLES, 0, M - 1)
    stain = np.nanmedian(s[rows, ang, out_i], axis=1)  # (C,)
    body = np.nanmedian(s[rows, ang, in_i], axis=1)
    contrast = body - stain
    floor_ = stain + LOBE_LEVEL_FRAC * contrast  # (C,)
    j = np.arange(M)[None, None, :]
    # running minimum of the level outwards from the path's edge
    below = np.where(j >= path[:, :, None], s, np.inf)
    below = np.nan_to_num(below, nan=-np.inf)
    runmin = np.minimum.accumulate(below, axis=2)
    # local maxima of the edge strength
    gl = np.pad(g, ((0, 0), (0, 0), (1, 1)), constant_values=-np.inf)
    peak = (g >= gl[:, :, :-2]) & (g >= gl[:, :, 2:]) & (g >= LOBE_MIN_EDGE)
    # the level up to the start of the fall (LOBE_OUT_SAMPLES before its peak) stays above the floor
    k = np.clip(j - LOBE_OUT_SAMPLES, 0, M - 1)
    rm_before = np.take_along_axis(runmin, np.broadcast_to(k, runmin.shape), axis=2)
    ok = peak & (j >= path[:, :, None] + LOBE_MIN_GAP) & (rm_before >= floor_[:, None, None])
    ok &= (contrast > 0)[:, None, None]
    # the fall ends at the stain: the level LOBE_OUT_SAMPLES beyond it is no higher than the stain
    # just outside the outline elsewhere plus LOBE_LEVEL_FRAC of the contrast (a fall within a lighter
    # background beyond a dark halo does not)
    after = np.take_along_axis(np.nan_to_num(s, nan=np.inf),
                               np.broadcast_to(np.clip(j + LOBE_OUT_SAMPLES, 0, M - 1), s.shape), axis=2)
    ok &= after <= floor_[:, None, None]
    has = ok.any(axis=2)  # (C, A)
    # a lobe is one arc of neighbouring angles: the longest circular run of such angles
    run = np.zeros(C, int)
    cur = np.zeros(C, int)
    for a in range(2 * A):
        cur = np.where(has[:, a % A], cur + 1, 0)
        run = np.maximum(run, np.minimum(cur, A))
    redo = np.flatnonzero(run >= LOBE_MIN_ANGLES)
    if redo.size == 0:
        return path
    # the outermost closing fall per angle gets (at least) the inner edge's strength
    outer = M - 1 - np.argmax(ok[:, :, ::-1], axis=2)
    g_in = g[rows, ang, path]
    c2 = cost[redo].copy()
    for ci_k, ci in enumerate(redo):
        for a in np.flatnonzero(has[ci]):
            jj = outer[ci, a]
            c2[ci_k, a, jj] = max(c2[ci_k, a, jj], g_in[ci, a])
            c2[ci_k, a, :jj - 1] = np.minimum(c2[ci_k, a, :jj - 1], 0.0)
    path = path.copy()
    path[redo] = _dp_path(c2, max(max_step, LOBE_MAX_STEP), jump_penalty)
    return path


#: granular caps (issue 13, :func:`cap_trim`, applied to the selected outlines before the outer-edge
#: shift by :func:`exoimage.tem.measure.to_outer_edge`): a cap of granules sticking out of a
#: vesicle's round outline is traced at the granules' outer fall, not at the body / stain step
#: beneath it. The outline's radii are fitted by a mean and CAP_HARMONICS Fourier terms
#: (:func:`robust_fourier_fit`: residuals outside the fit down-weighted beyond CAP_TUKEY_OUT robust
#: SDs, inside beyond CAP_TUKEY_IN, so a cap over up to ~40 % of the angles does not pull it out).
#: An arc of at least CAP_MIN_ANGLES neighbouring angles where the outline lies more than
#: CAP_MIN_EXCESS (fraction of the radius) outside the fit is a cap when what lies between the fit
#: and the outline (CAP_BAND_GAP x the radius clear of both) is brighter than the body: its
#: CAP_BAND_PERCENTILE-th percentile stands more than CAP_BRIGHT x the body's contrast (the median
#: level CAP_LEVEL_FRAC x the radius inside the outline over the stain as far outside it, over the
#: other angles) above the stain, and more than CAP_ABOVE_TOP x that contrast above the same
#: percentile of the body's interior (from CAP_INNER_FRAC of the radius out to the outline, other
#: angles: a cup's own bright rim is not brighter than itself) - granules on the vesicle, not a part
#: of it (a darker lobe of an irregular particle is no brighter than its body and stays outside).
#: There the outline is cut back to the fit + CAP_MARGIN x the radius. Applied to the selected
#: outlines only (in the outline programme itself, before selection, it cost F1: granular_caps
#: 1 nm/px 1.000 -> 0.980, lobed 0.7 1.000 -> 0.976). Quick bench median |error| granular_caps
#: 2.57 / 2.96 / 2.39 -> 2.00 / 1.72 / 1.95 % (0.5 / 1 / 2 nm/px), F1 unchanged; lobed, meniscus,
#: dense, small_evs, wide_range, confounders unchanged. Without the interior test 6 of the 9 ScanEV
#: outlines were cut (cups A / B 133 / 116 -> 130 / 112 nm, the collapsed EV -7 %), with it none;
#: CAP_BRIGHT 1.7 alone: caps 2.32 / 1.72 / 1.92; 3 harmonics follow the cap (2.2 / 1.75 / 2.1 off-line)
CAP_RULE = True
CAP_HARMONICS = 2
CAP_TUKEY_OUT, CAP_TUKEY_IN = 2.5, 4.0
CAP_FIT_ITER = 8
CAP_MIN_EXCESS = 0.06
CAP_MIN_ANGLES = 4
CAP_BAND_PERCENTILE = 90
CAP_BRIGHT = 1.5
CAP_LEVEL_FRAC = 0.07
CAP_BAND_GAP = 0.035
CAP_SMOOTH_FRAC = 0.04
CAP_INNER_FRAC = 0.3
CAP_ABOVE_TOP = 0.5
CAP_MARGIN = 0.02
#: the fit's robust SD is at least this fraction of the radius
CAP_MIN_SCALE = 0.01


def robust_fourier_fit(r: np.ndarray, harmonics: int = CAP_HARMONICS, c_out: float = CAP_TUKEY_OUT,
                       c_in: float = CAP_TUKEY_IN, n_iter: int = CAP_FIT_ITER,
                       min_scale: float = 1.0) -> np.ndarray:
    """Robust fit (C, A) of closed polar paths ``r`` (C, A), sampled at A equally spaced angles, by a
    mean and ``harmonics`` Fourier terms: iteratively reweighted least squares with Tukey's biweight,
    residuals above the fit cut at ``c_out`` robust SDs (1.4826 MAD, at least ``min_scale``), below
    it at ``c_in``, started from the median."""
    r = np.asarray(r, float)
    C, A = r.shape
    th = 2 * np.pi * np.arange(A) / A
    cols = [np.ones(A)]
    for k in range(1, harmonics + 1):
        cols += [np.cos(k * th), np.sin(k * th)]
    X = np.stack(cols, axis=1)  # (A, P)
    fit = np.repeat(np.median(r, axis=1, keepdims=True), A, axis=1)
    for _ in range(n_iter):
        res = r - fit
        scale = np.maximum(1.4826 * np.median(np.abs(res - np.median(res, axis=1, keepdims=True)), axis=1),
                           min_scale)[:, None]
        u = res / (np.where(res > 0, c_out, c_in) * scale)
        w = np.where(np.abs(u) < 1, (1 - u ** 2) ** 2, 0.0) + 1e-6
        XtW = X.T[None, :, :] * w[:, None, :]  # (C, P, A)
        beta = np.linalg.solve(XtW @ X[None], XtW @ r[:, :, None])[:, :, 0]
        fit = beta @ X.T
    return fit


def _arcs(flag: np.ndarray) -> list:
    """Circular runs of True in a 1-D bool array (not all True), as index arrays."""
    A = flag.size
    start = int(np.argmin(flag))  # an angle outside every run
    arcs, cur = [], []
    for a in (np.arange(A) + start) % A:
        if flag[a]:
            cur.append(a)
        elif cur:
            arcs.append(np.array(cur))
            cur = []
    if cur:
        arcs.append(np.array(cur))
    return arcs


def cap_trim(data32: np.ndarray, centre, radii) -> np.ndarray:
    """The radii (px) of a final polar outline with its granular caps cut back to its robust fit
    (see CAP_RULE); ``radii`` themselves where there is none.

    The levels are sampled on ``data32`` smoothed by CAP_SMOOTH_FRAC x the median radius (at least
    RAMP_SIGMA_PX); the body's side is the side of the outline whose level is higher there (the
    polarity of the outline itself)."""
    radii = np.asarray(radii, float)
    A = radii.size
    R = float(np.median(radii))
    if not R > 0:
        return radii
    fit = robust_fourier_fit(radii[None], min_scale=CAP_MIN_SCALE * R)[0]
    excess = (radii - fit) / np.maximum(fit, 1e-9)
    flag = excess > CAP_MIN_EXCESS
    if flag.sum() < CAP_MIN_ANGLES or flag.all():
        return radii
    sig = max(RAMP_SIGMA_PX, CAP_SMOOTH_FRAC * R)
    H, W = data32.shape
    ext = float(radii.max()) * (1 + CAP_LEVEL_FRAC) + 4 * sig + 2
    cy, cx = centre
    y0, y1 = max(0, int(cy - ext)), min(H, int(np.ceil(cy + ext)) + 1)
    x0, x1 = max(0, int(cx - ext)), min(W, int(np.ceil(cx + ext)) + 1)
    if y1 - y0 < 4 or x1 - x0 < 4:
        return radii
    sub = cv2.GaussianBlur(np.ascontiguousarray(data32[y0:y1, x0:x1], np.float32), (0, 0), sig)
    theta = np.linspace(0, 2 * np.pi, A, endpoint=False)

    def at(rr, th):
        mx = (cx - x0 + rr * np.cos(th)).astype(np.float32)
        my = (cy - y0 + rr * np.sin(th)).astype(np.float32)
        return cv2.remap(sub, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))

    un = ~flag
    inside = np.nanmedian(at(radii[un] - CAP_LEVEL_FRAC * R, theta[un]))
    outside = np.nanmedian(at(radii[un] + CAP_LEVEL_FRAC * R, theta[un]))
    if not np.isfinite(inside - outside) or inside == outside:
        return radii
    sign = 1.0 if inside > outside else -1.0
    body, stain = sign * inside, sign * outside
    contrast = body - stain
    out = radii.copy()
    step = max(0.5, 0.5 * sig)
    # the body's brightest: CAP_BAND_PERCENTILE of the interior (CAP_INNER_FRAC of the radius out to
    # CAP_BAND_GAP inside the outline) at the other angles
    rin = np.arange(CAP_INNER_FRAC * R, R, step)
    vin = sign * at(np.minimum(rin[None, :], radii[un, None] - CAP_BAND_GAP * R), np.repeat(theta[un, None], rin.size, 1))
    vin = vin[np.isfinite(vin)]
    top = np.percentile(vin, CAP_BAND_PERCENTILE) if vin.size else np.inf
    for arc in _arcs(flag):
        if arc.size < CAP_MIN_ANGLES:
            continue
        vals = []
        for a in arc:
            rr = np.arange(fit[a] + CAP_BAND_GAP * R, radii[a] - CAP_BAND_GAP * R, step)
            if rr.size:
                vals.append(sign * at(rr[None, :], np.full((1, rr.size), theta[a]))[0])
        v = np.concatenate(vals) if vals else np.zeros(0)
        v = v[np.isfinite(v)]
        if v.size and np.percentile(v, CAP_BAND_PERCENTILE) - stain > CAP_BRIGHT * contrast and \
                np.percentile(v, CAP_BAND_PERCENTILE) > top + CAP_ABOVE_TOP * contrast:
            out[arc] = np.minimum(radii[arc], fit[arc] + CAP_MARGIN * R)
    return out


def polar_outlines(img: np.ndarray, cands, sign: float, grad_noise: float, max_step: int = DP_MAX_STEP,
                   jump_penalty: float = DP_JUMP_PENALTY, sigma: float = 0.0):
    """Outline every candidate on a polar grid by dynamic programming.

    ``img`` is the (smoothed) full-resolution image; ``cands`` are (row, col,
    radius) in full-resolution pixels; ``sigma`` is the Gaussian smoothing of ``img`` (px): the
    gradient maximum of a smoothed curved edge of radius R lies sigma^2 / 2R inside it (the
    smoothed ring profile exp(-(r-R)^2/2 sigma^2)/sqrt(r R) peaks at r = R - sigma^2/2r), so each
    radius is moved out by that. Returns arrays: radii (C, N_ANGLES) in
    px, per-angle edge strengths (C, N_ANGLES) in noise units, a mask of
    angles whose samples left the image, and a mask of angles whose edge lies at
    either end of the radial search.
    """
    C = len(cands)
    theta = np.linspace(0, 2 * np.pi, N_ANGLES, endpoint=False).astype(np.float32)
    frac = np.linspace(RHO_LO, RHO_HI, N_RADII).astype(np.float32)
    cy = np.array([c[0] for c in cands], np.float32)[:, None, None]
    cx = np.array([c[1] for c in cands], np.float32)[:, None, None]
    cr = np.array([c[2] for c in cands], np.float32)[:, None, None]
    rho = cr * frac[None, None, :]  # (C,1,M)
    map_x = (cx + rho * np.cos(theta)[None, :, None]).reshape(C * N_ANGLES, N_RADII)
    map_y = (cy + rho * np.sin(theta)[None, :, None]).reshape(C * N_ANGLES, N_RADII)
    if max(img.shape) < _REMAP_MAX_SIDE:
        prof = np.empty_like(map_x)
        # remap is limited to 32767 rows: do it in chunks
        step = REMAP_CHUNK_ROWS
        for i in range(0, map_x.shape[0], step):
            prof[i:i + step] = cv2.remap(img, map_x[i:i + step], map_y[i:i + step], cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))
    else:
        prof = _remap_cropped(img, map_x, map_y, N_ANGLES)
    prof = prof.reshape(C, N_ANGLES, N_RADII)
    outside = np.isnan(prof)
    d_rho = (cr[:, :, 0] * (frac[1] - frac[0]))[:, :, None]  # px per radial sample
    # outward derivative; light inside -> dark outside gives a positive edge
    g = -sign * np.gradient(prof, axis=2) / d_rho / grad_noise
    g = np.nan_to_num(g, nan=0.0)
    cost = np.clip(g, EDGE_COST_FLOOR, None)

    M = N_RADII
    path = _dp_path(cost, max_step, jump_penalty)
    if LOBE_RULE:
        path = _outer_closing(prof, g, cost, path, sign, max_step, jump_penalty)
    rows = np.arange(C)
    ang = np.arange(N_ANGLES)
    # sub-pixel: parabola through the edge strength around the chosen sample
    gm = g[rows[:, None], ang[None, :], np.clip(path - 1, 0, M - 1)]
    g0 = g[rows[:, None], ang[None, :], path]
    gp = g[rows[:, None], ang[None, :], np.clip(path + 1, 0, M - 1)]
    denom = gm - 2 * g0 + gp
    ok = np.abs(denom) > 1e-9
    delta = np.divide(0.5 * (gm - gp), denom, out=np.zeros_like(denom), where=ok)
    delta = np.clip(delta, -SUBPIXEL_MAX_SHIFT, SUBPIXEL_MAX_SHIFT)
    delta = np.where((path > 0) & (path < M - 1), delta, 0.0)
    fpos = frac[0] + (path + delta) * (frac[1] - frac[0])
    radii = fpos * cr[:, :, 0]
    if sigma > 0:
        radii = radii + sigma ** 2 / (2.0 * np.maximum(radii, 1.0))
    # an angle "left the image" if the outline sample at the chosen radius was outside
    left = outside[rows[:, None], ang[None, :], path]
    at_limit = (path <= AT_LIMIT_SAMPLES) | (path >= M - 1 - AT_LIMIT_SAMPLES)
    return radii, g0, left, at_limit


def smoothing_level(radius: float, s_full: float) -> int:
    """The smoothing octave of a candidate of ``radius`` px (see OUTLINE_SMOOTH_PER_RADIUS)."""
    return max(0, int(np.floor(np.log2(max(1.0, OUTLINE_SMOOTH_PER_RADIUS * radius / s_full)))))


def body_minus_surround(img: np.ndarray, centre, radii, inner=BODY_FRACS, outer=SURROUND_FRACS) -> float:
    """Median of ``img`` inside a polar outline (``inner`` fractions of its radius) minus the median
    just outside it (``outer`` fractions); NaN where no sample lies inside the image."""
    theta = np.linspace(0, 2 * np.pi, radii.size, endpoint=False)

    def med(fracs):
        rr = radii[:, None] * np.asarray(fracs)[None, :]
        mx = (centre[1] + rr * np.cos(theta)[:, None]).astype(np.float32)
        my = (centre[0] + rr * np.sin(theta)[:, None]).astype(np.float32)
        v = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))
        return np.nanmedian(v) if np.isfinite(v).any() else np.nan

    return float(med(inner) - med(outer))


#: interior profile of :func:`interior_dome`: the median over the angles of the image, smoothed by
#: DOME_SMOOTH_FRAC x the outline's radius (at least 1 px), at these fractions of the radius: the
#: centre, the band just inside the outline (where a vesicle's rim or cup wall lies), the body, just
#: outside (where the stain pooled around a vesicle makes a dark ring) and the background beyond
DOME_SMOOTH_FRAC = 0.08
DOME_CENTRE_FRACS = (0.0, 0.1, 0.2, 0.3, 0.4)
DOME_RIM_FRACS = (0.65, 0.75, 0.85, 0.95)
DOME_BODY_FRACS = tuple(np.round(np.arange(0.0, 0.951, 0.05), 2))
DOME_OUTSIDE_FRACS = (1.05, 1.15, 1.25)
DOME_RING_FRACS = (1.05, 1.15, 1.25, 1.35)
DOME_BEYOND_FRACS = (1.6, 1.8, 2.0)


def interior_dome(data: np.ndarray, centre, radii, sign: float, noise: float) -> tuple:
    """(dome, step, ring) of a polar outline, in ``noise`` units of ``data`` (signed by ``sign``).

    ``dome`` is how far the centre of the body stands above the band just inside the outline
    (DOME_CENTRE_FRACS vs DOME_RIM_FRACS of the radius), ``step`` the body (DOME_BODY_FRACS)
    above just outside (DOME_OUTSIDE_FRACS), ``ring`` how far the darkest level just outside
    (DOME_RING_FRACS) lies below the background beyond (DOME_BEYOND_FRACS); each level is the
    median over the angles (levels of several fractions averaged), on ``data`` smoothed by
    DOME_SMOOTH_FRAC x the median radius. A rim or a cup makes ``dome`` <= 0, a flat disc ~0;
    an object brightest in its middle has ``dome`` > 0.
    """
    cy, cx = centre
    R = float(np.median(radii))
    s = max(1.0, DOME_SMOOTH_FRAC * R)
    ext = max(DOME_BEYOND_FRACS) * float(np.max(radii)) + 4 * s + 2
    H, W = data.shape
    y0, y1 = max(0, int(cy - ext)), min(H, int(np.ceil(cy + ext)) + 1)
    x0, x1 = max(0, int(cx - ext)), min(W, int(np.ceil(cx + ext)) + 1)
    if y1 - y0 < 2 or x1 - x0 < 2 or noise <= 0:
        return 0.0, 0.0, 0.0
    sub = cv2.GaussianBlur(np.ascontiguousarray(data[y0:y1, x0:x1], np.float32), (0, 0), s)
    theta = np.linspace(0, 2 * np.pi, radii.size, endpoint=False)

    def levels(fracs):
        rr = radii[:, None] * np.asarray(fracs, float)[None, :]
        mx = (cx - x0 + rr * np.cos(theta)[:, None]).astype(np.float32)
        my = (cy - y0 + rr * np.sin(theta)[:, None]).astype(np.float32)
        v = cv2.remap(sub, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return sign * np.median(v, axis=0) / noise

    c, rim, body, out, beyond = (float(np.mean(levels(f))) for f in (DOME_CENTRE_FRACS, DOME_RIM_FRACS,
                                                                      DOME_BODY_FRACS, DOME_OUTSIDE_FRACS,
                                                                      DOME_BEYOND_FRACS))
    ring = beyond - float(np.min(levels(DOME_RING_FRACS)))
    return c - rim, body - out, ring


def wide_background(img: np.ndarray, sigma: float) -> np.ndarray:
    """The smooth background of ``img``: a Gaussian of ``sigma`` px of the image clipped to its median
    +- DETREND_CLIP_SDS robust SDs (a very dark precipitate or a bright vesicle barely moves it, so
    the band-pass does not ring around them), computed on a shrunk copy (DETREND_SHRUNK_SIGMA_PX)."""
    sub = img[:: max(1, img.shape[0] // 256), :: max(1, img.shape[1] // 256)]
    mid, sd = float(np.median(sub)), robust_sd(sub)
    if sd > 0:
        img = np.clip(img, mid - DETREND_CLIP_SDS * sd, mid + DETREND_CLIP_SDS * sd)
    k = max(1, int(sigma / DETREND_SHRUNK_SIGMA_PX))
    if k == 1 or min(img.shape) < 4 * k:
        return cv2.GaussianBlur(img, (0, 0), sigma)
    h, w = img.shape
    small = cv2.resize(img, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / k)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def outline_levels(data32, cands, sign, s_full, cache, detrend: bool = False):
    """Polar outlines with smoothing proportional to each candidate's size (octave levels).

    ``s_full`` is the base smoothing sigma (px); candidate ``c`` is outlined on
    the image smoothed with ``s_full * 2**level`` (minus its DETREND_RATIO
    times wider smoothing when ``detrend``). ``cache`` (a dict) keeps each
    level's smoothed image and gradient noise between calls.
    """
    C = len(cands)
    radii = np.zeros((C, N_ANGLES))
    strength = np.zeros((C, N_ANGLES))
    left = np.zeros((C, N_ANGLES), bool)
    at_limit = np.zeros((C, N_ANGLES), bool)
    levels = np.array([smoothing_level(c[2], s_full) for c in cands], int)
    for lev in np.unique(levels):
        idx = np.flatnonzero(levels == lev)
        key = (int(lev), bool(detrend))
        if key not in cache:
            sigma = s_full * 2.0 ** lev
            plain = (int(lev), False)
            smooth = cache[plain][0] if plain in cache else cv2.GaussianBlur(data32, (0, 0), sigma)
            if detrend:
                smooth = smooth - wide_background(data32, DETREND_RATIO * sigma)
            gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3) / SOBEL3_NORM
            step = max(1, int(sigma))
            cache[key] = (smooth, robust_sd(gy[::2 * step, ::2 * step]) or 1.0)
        smooth, grad_noise = cache[key]
        r_, s_, l_, a_ = polar_outlines(smooth, [cands[i] for i in idx], sign, grad_noise,
                                        sigma=s_full * 2.0 ** lev)
        radii[idx], strength[idx], left[idx], at_limit[idx] = r_, s_, l_, a_
    return radii, strength, left, at_limit


def nan_percentile_rows(a: np.ndarray, q: float) -> np.ndarray:
    """``np.nanpercentile(a, q, axis=1)`` (linear interpolation) of a 2-D array, vectorised
    (numpy's runs a Python loop over the rows); NaN for a row without a finite value."""
    a = np.asarray(a, float)
    srt = np.sort(a, axis=1)  # NaN last
    n = np.sum(~np.isnan(a), axis=1)
    pos = (q / 100.0) * np.maximum(n - 1, 0)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    frac = pos - lo
    rows = np.arange(a.shape[0])
    v_lo, v_hi = srt[rows, lo], srt[rows, hi]
    out = v_lo + frac * (v_hi - v_lo)
    out[n == 0] = np.nan
    return out


def closure(strength, left):
    """The CLOSURE_PERCENTILE-th percentile of the edge strength around each outline (NaN-safe)."""
    v = nan_percentile_rows(np.where(left, np.nan, strength), CLOSURE_PERCENTILE)
    return np.nan_to_num(v, nan=-np.inf)


def polygon(cy, cx, radii):
    """(n, 2) array of (row, col) vertices of a polar outline centred at (cy, cx)."""
    theta = np.linspace(0, 2 * np.pi, radii.size, endpoint=False)
    return np.stack([cy + radii * np.sin(theta), cx + radii * np.cos(theta)], axis=1)


def polar_area(radii):
    """Area (px^2) of polar outlines ``radii`` (..., N) with equally spaced angles."""
    return 0.5 * np.sin(2 * np.pi / N_ANGLES) * np.sum(radii * np.roll(radii, -1, axis=-1), axis=-1)


#: outer-edge rule (issue 13, :func:`outer_foot_radii`): the edge ramp is measured on the image
#: smoothed by RAMP_SIGMA_PX, averaged along the outline at offsets -w..+w px from it (w =
#: RAMP_WINDOW_FRAC x the radius, clipped to RAMP_WINDOW_PX), every RAMP_STEP_PX
RAMP_SIGMA_PX = 1.0
RAMP_WINDOW_FRAC = 0.3
RAMP_WINDOW_PX = (3.0, 30.0)
RAMP_STEP_PX = 0.25
#: the ramp's width is the distance between its RAMP_HI and RAMP_LO levels (fractions of the fall
#: from the highest level inside the outline to the lowest outside, within the window)
RAMP_HI, RAMP_LO = 0.9, 0.1
#: the imaging blur's ramp width: STEP_PERCENTILE of the widths across the image's strongest edges
#: away from the outlines (:func:`image_step_width`); where there is none, BLUR_PERCENTILE of the
#: ramp widths of the field's well-contrasted outlines (the RAMP_CONTRAST_TOP share with the
#: largest fall, not border-cut). 25: on the simulator the former read 3.58 / 6.41 / 3.08 px where
#: a blurred step is 4.0 / 6.7 / 3.1 px wide (1, 0.5, 1.7 nm/px; seed 0), the 10th 3.3 / 5.7 / 2.8
#: (noise and grain peaks narrow the low tail), the median 3.9 / 7.1 / 3.7
BLUR_PERCENTILE = 10
STEP_PERCENTILE = 25
#: edges of the image within this many radii (plus RAMP_WINDOW_PX[0]) of an outline's centre are
#: not used for the blur (they are the vesicles' own edges)
OUTLINE_AWAY_FRAC = 1.3
#: 10-90 % width of a Gaussian-blurred step, in its sigmas (2 x 1.2816)
GAUSS_10_90 = 2.5631
#: how a ramp's width in excess of the blur's is taken (:func:`outer_foot_shifts`): "linear"
#: (w - w_blur) or "quadrature" (variance additivity). Quadrature is the better model of a
#: meniscus ramp blurred by the optics (ScanEV cups B / C 122 / 117 nm vs 117 / 113 linear; the
#: meniscus scenario at 0.5 / 2 nm/px -1 / -4 % vs -8 / -12 %), but it amplifies the small width
#: differences of sharp simulated steps next to a halo (quick bench: dense 1.5 nm/px median
#: |error| 1.0 -> 2.2 %, dark_grain 1 nm/px 2.1 -> 3.1 %, small_evs 0.5 1.2 -> 1.65 %): linear
EXCESS = "linear"
RAMP_CONTRAST_TOP = 0.5


#: the step's extent (:func:`step_bounds`): its fall ends, on either side of the outline's steepest
#: fall, where the profile's slope drops below RAMP_SLOPE_FRAC of that steepest slope (it turns, at a
#: rim's peak or a halo's extremum, or flattens into a halo's slow tail); slopes are taken over
#: RAMP_SLOPE_PX, the steepest within RAMP_PEAK_PX of the outline
RAMP_SLOPE_FRAC = 0.2
RAMP_SLOPE_PX = 1.0
RAMP_PEAK_PX = 2.0


def step_bounds(prof: np.ndarray, i0: int) -> tuple:
    """The step of a radial edge profile ``prof`` (sampled every RAMP_STEP_PX, the outline at
    index ``i0``): oriented by the slope at the outline (the inside is the higher side there), it
    runs from ``hi`` (the top of the step, inside) to ``lo`` (its foot, outside) across the
    contiguous stretch around the outline's steepest fall where the fall's slope stays at least
    RAMP_SLOPE_FRAC of its peak. A rim's peak inside, a halo's extremum or its slow tail outside
    are not the step (a dark body's ramp measured to the halo's far level reads the halo's width).
    Returns (sign, k_hi, k_lo): ``sign * prof`` falls from index ``k_hi`` to ``k_lo``; sign 0
    where there is no fall."""
    prof = np.asarray(prof, float)
    n = prof.size
    k = max(1, int(round(RAMP_SLOPE_PX / RAMP_STEP_PX)))
    g = np.full(n, 0.0)
    g[k:n - k] = (prof[:n - 2 * k] - prof[2 * k:]) / (2 * k)  # falling outwards > 0
    m = max(1, int(round(RAMP_PEAK_PX / RAMP_STEP_PX)))
    a, b = max(k, i0 - m), min(n - k, i0 + m + 1)
    if b <= a:
        return 0.0, 0, 0
    sign = 1.0 if g[a:b].sum() >= 0 else -1.0
    g = sign * g
    kp = a + int(np.argmax(g[a:b]))
    gp = g[kp]
    if not gp > 0:
        return 0.0, 0, 0
    lim = RAMP_SLOPE_FRAC * gp
    k_in = kp
    while k_in > k and g[k_in - 1] >= lim:
        k_in -= 1
    k_out = kp
    while k_out < n - k - 1 and g[k_out + 1] >= lim:
        k_out += 1
    # the step's top and foot: the profile's level k samples beyond the last steep slope
    return sign, max(0, k_in - k), min(n - 1, k_out + k)


def edge_ramp(fine: np.ndarray, centre, radii, valid=None) -> dict:
    """The edge ramp of a polar outline on ``fine`` (the image smoothed by RAMP_SIGMA_PX).

    The profile is sampled along every (valid, in-image) angle at ``radii + t`` and its median
    over the angles taken (the outline's own shape is followed, so this removes noise and a cap
    sticking out at a few angles, not the edge). Oriented so that the inside is the higher side
    at the outline, it falls from ``hi`` (the top of the step) to ``lo`` (its foot), the step
    being the steep stretch around the outline's steepest fall (:func:`step_bounds`: not a rim's
    peak inside nor a halo's extremum or tail outside); ``t_hi`` / ``t_lo`` are where it last
    exceeds RAMP_HI / first goes below RAMP_LO of that fall, ``t_half`` where it crosses half of it. Returns dict(width, t_half, t_lo,
    fall) in px (fall in image units); NaN where no profile could be sampled.
    """
    radii = np.asarray(radii, float)
    R = float(np.median(radii))
    w = float(np.clip(RAMP_WINDOW_FRAC * R, *RAMP_WINDOW_PX))
    t = np.arange(-w, w + RAMP_STEP_PX / 2, RAMP_STEP_PX)
    nan = dict(width=np.nan, t_half=np.nan, t_lo=np.nan, fall=np.nan)
    theta = np.linspace(0, 2 * np.pi, radii.size, endpoint=False)
    valid = np.ones(radii.size, bool) if valid is None else np.asarray(valid, bool)
    if not valid.any():
        return nan
    rr = np.maximum(radii[valid, None] + t[None, :], 0.0)
    th = theta[valid, None]
    mx = (centre[1] + rr * np.cos(th)).astype(np.float32)
    my = (centre[0] + rr * np.sin(th)).astype(np.float32)
    v = cv2.remap(fine, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))
    ok = np.isfinite(v).all(axis=1)
    if not ok.any():
        return nan
    v = v[ok].astype(float)
    i0 = int(np.argmin(np.abs(t)))
    prof = np.median(v, axis=0)
    sign, k_hi, k_lo = step_bounds(prof, i0)
    prof = sign * prof
    hi, lo = float(prof[k_hi]), float(prof[k_lo])
    if not (sign and hi > lo):
        return nan
    fall = hi - lo
    seg = (prof[k_hi:k_lo + 1] - lo) / fall  # from the step's inside top to its outside foot

    def cross(level):
        """first t (interpolated) from the peak outwards where ``seg`` goes below ``level``"""
        j = int(np.argmax(seg < level)) if np.any(seg < level) else seg.size - 1
        if j == 0:
            return float(t[k_hi])
        a, b = seg[j - 1], seg[j]
        f = (a - level) / (a - b) if a != b else 0.0
        return float(t[k_hi + j - 1] + f * RAMP_STEP_PX)

    t_hi, t_half, t_lo = cross(RAMP_HI), cross(0.5), cross(RAMP_LO)
    return dict(width=t_lo - t_hi, t_half=t_half, t_lo=t_lo, fall=fall)


def blur_ramp_width(widths, falls, border) -> float:
    """The ramp width a sharp step has in this image: the BLUR_PERCENTILE-th percentile of the
    ramp ``widths`` of the well-contrasted outlines (not ``border``-cut, the RAMP_CONTRAST_TOP
    share with the largest ``falls``; all outlines where none is left). One outline: its own width
    (no excess over the blur can be seen without a sharper edge to compare with)."""
    widths, falls, border = np.asarray(widths, float), np.asarray(falls, float), np.asarray(border, bool)
    ok = np.isfinite(widths) & np.isfinite(falls)
    if not ok.any():
        return np.nan
    sel = ok & ~border
    if not sel.any():
        sel = ok
    f = falls[sel]
    strong = f >= np.quantile(f, 1.0 - RAMP_CONTRAST_TOP)
    return float(np.percentile(widths[sel][strong], BLUR_PERCENTILE))


def outer_foot_shifts(data: np.ndarray, outlines, border=None, mask=None) -> tuple:
    """Radial shifts (px) that move each polar outline from its steepest fall to the outer foot of
    the part of its edge ramp that exceeds the imaging blur.

    ``outlines`` are (centre, radii) pairs traced at the steepest fall (the half-height of the
    edge); ``w`` is each one's ramp width (:func:`edge_ramp`). A sharp step blurred by the
    imaging has a ramp of width ``w_blur``: :func:`image_step_width` of the image's strongest
    edges away from the outlines (further than OUTLINE_AWAY_FRAC radii from every centre) and
    inside ``mask``, or, where there is none, :func:`blur_ramp_width` of the outlines; one
    vesicle alone works. A stain meniscus (a graded layer of stain at the vesicle's edge, which
    annotators count as vesicle) widens the ramp to ``w``. The outer edge is half-height +
    max(0, w - w_blur) / 2 (EXCESS "linear"): the half-height itself for a blurred sharp step (the
    simulator's truth, a sharp small vesicle), towards the ramp's outer foot for a meniscus.
    ``border`` marks border-cut outlines. Returns (shifts, widths, w_blur) in px.
    """
    data32 = np.asarray(data, np.float32)
    n = len(outlines)
    widths, falls = np.full(n, np.nan), np.full(n, np.nan)
    H, W = data32.shape
    for k, (centre, radii) in enumerate(outlines):
        radii = np.asarray(radii, float)
        ext = float(radii.max()) + RAMP_WINDOW_PX[1] + 4 * RAMP_SIGMA_PX + 2
        y0, y1 = max(0, int(centre[0] - ext)), min(H, int(np.ceil(centre[0] + ext)) + 1)
        x0, x1 = max(0, int(centre[1] - ext)), min(W, int(np.ceil(centre[1] + ext)) + 1)
        if y1 - y0 < 4 or x1 - x0 < 4:
            continue
        fine = cv2.GaussianBlur(np.ascontiguousarray(data32[y0:y1, x0:x1]), (0, 0), RAMP_SIGMA_PX)
        e = edge_ramp(fine, (centre[0] - y0, centre[1] - x0), radii)
        widths[k], falls[k] = e["width"], e["fall"]
    border = np.zeros(n, bool) if border is None else np.asarray(border, bool)
    # the blur from the specimen's other edges (grain, precipitate, debris): a vesicle's own edge
    # would measure its meniscus, not the blur
    away = np.ones(data32.shape, np.uint8)
    for centre, radii in outlines:
        r = float(np.max(radii)) * OUTLINE_AWAY_FRAC + RAMP_WINDOW_PX[0]
        cv2.circle(away, (int(round(centre[1])), int(round(centre[0]))), int(np.ceil(r)), 0, -1)
    away = away.astype(bool) if mask is None else away.astype(bool) & mask
    wb = image_step_width(data32, away)
    if not np.isfinite(wb):  # no other strong edge: the field's sharpest well-contrasted outlines
        wb = blur_ramp_width(widths, falls, border)
    ok = np.isfinite(widths) & np.isfinite(wb)
    if EXCESS == "quadrature":
        # variances add under convolution: the ramp's (w / GAUSS_10_90)^2 = blur's + meniscus's, and a
        # linear meniscus of full width a has variance a^2 / 12; its foot lies a / 2 beyond its middle
        a = np.where(ok, np.sqrt(np.maximum(0.0, widths ** 2 - wb ** 2)), 0.0) * np.sqrt(12.0) / GAUSS_10_90
    else:  # "linear": the widths' difference (a wide meniscus's 10-90 width is 0.8 a: conservative)
        a = np.where(ok, np.maximum(0.0, widths - wb), 0.0)
    return 0.5 * a, widths, wb


#: the image's own blur (:func:`image_step_width`): edge points are the local maxima of the gradient
#: (image smoothed by RAMP_SIGMA_PX) above STEP_GRAD_SDS gradient noise SDs, at most STEP_POINTS of
#: them (the strongest); the profile across each is sampled +- STEP_HALF_PX along the gradient
STEP_GRAD_SDS = 4.0
STEP_POINTS = 3000
STEP_HALF_PX = 10.0
#: the blur is the STEP_FEATURE_PERCENTILE-th percentile of the edge features' median widths (one
#: per connected run of strong gradient: a grain, a piece of debris, a missed vesicle's edge, so a
#: long wide edge does not outvote many small sharp ones; medians narrower than the measuring
#: smoothing's own GAUSS_10_90 x RAMP_SIGMA_PX are noise or grain peaks and left out) where there
#: are at least STEP_MIN_FEATURES such features; the STEP_PERCENTILE-th of the points' widths
#: otherwise. Quick bench (linear excess) against the points' 25th percentile: meniscus 1 nm/px
#: med|err| 11.7 -> 9.0 %, dark_grain 0.5 / 1 1.1 / 1.7 -> 0.5 / 0.9 %, wide_range 1.2 0.7 -> 0.3 %
STEP_MIN_FEATURES = 5
STEP_FEATURE_PERCENTILE = 10


def _fall_width(seg_t, prof):
    """10-90 % width (RAMP_HI / RAMP_LO) of a falling profile ``prof`` sampled at ``seg_t``
    (its middle sample is the steepest fall): levels from its highest value before the middle to
    its lowest after it; NaN where it does not fall."""
    i0 = prof.size // 2
    hi, lo = prof[:i0 + 1].max(), prof[i0:].min()
    if not hi > lo:
        return np.nan
    k_hi = int(np.argmax(prof[:i0 + 1]))
    seg = (prof[k_hi:] - lo) / (hi - lo)
    st = seg_t[k_hi:]

    def cross(level):
        j = int(np.argmax(seg < level))
        if j == 0:
            return np.nan
        a, b = seg[j - 1], seg[j]
        return st[j - 1] + (a - level) / (a - b) * (st[j] - st[j - 1])

    return cross(RAMP_LO) - cross(RAMP_HI)


def image_step_width(data: np.ndarray, mask=None) -> float:
    """The 10-90 % width (px) of the sharpest edges in ``data``: a low percentile of the median
    widths of its edge features (STEP_FEATURE_PERCENTILE; the widths are those of the profiles
    across its strongest edge points, smoothed by RAMP_SIGMA_PX as the ramps of :func:`edge_ramp`); ``mask`` (bool) marks the pixels to look at. NaN without
    strong edges. Every edge of the specimen (stain grain, precipitate, a vesicle's membrane) is at
    least as wide as the imaging blur makes a sharp step, so a low percentile measures that blur."""
    from ..stats import robust_sd as _rsd

    fine = cv2.GaussianBlur(np.asarray(data, np.float32), (0, 0), RAMP_SIGMA_PX)
    gx = cv2.Sobel(fine, cv2.CV_32F, 1, 0, ksize=3) / SOBEL3_NORM
    gy = cv2.Sobel(fine, cv2.CV_32F, 0, 1, ksize=3) / SOBEL3_NORM
    mag = np.hypot(gx, gy)
    noise = _rsd(gy[::2, ::2])
    if not noise > 0:
        return np.nan
    peak = (mag >= cv2.dilate(mag, np.ones((3, 3), np.uint8))) & (mag > STEP_GRAD_SDS * noise)
    b = int(STEP_HALF_PX) + 2
    peak[:b], peak[-b:], peak[:, :b], peak[:, -b:] = False, False, False, False
    if mask is not None:
        peak &= mask
    # a burned-in overlay (scale bar, text: the image's extreme value) is sharper than any optics
    a = np.asarray(data)
    sat = (a <= a.min()) | (a >= a.max())
    if sat.any():
        peak &= ~cv2.dilate(sat.astype(np.uint8), np.ones((2 * b + 1, 2 * b + 1), np.uint8)).astype(bool)
    ys, xs = np.nonzero(peak)
    if ys.size < 5:
        return np.nan
    order = np.argsort(mag[ys, xs])[::-1][:STEP_POINTS]
    ys, xs = ys[order], xs[order]
    ux, uy = gx[ys, xs] / mag[ys, xs], gy[ys, xs] / mag[ys, xs]  # uphill; the profile runs downhill
    t = np.arange(-STEP_HALF_PX, STEP_HALF_PX + RAMP_STEP_PX / 2, RAMP_STEP_PX).astype(np.float32)
    mx = (xs[:, None] - ux[:, None] * t[None, :]).astype(np.float32)
    my = (ys[:, None] - uy[:, None] * t[None, :]).astype(np.float32)
    v = cv2.remap(fine, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(float)
    w = np.array([_fall_width(t, p) for p in v])
    ok = np.isfinite(w)
    if ok.sum() < 5:
        return np.nan
    lab = cv2.connectedComponents((mag > STEP_GRAD_SDS * noise).astype(np.uint8), connectivity=8)[1]
    ids = lab[ys, xs][ok]
    w = w[ok]
    u, inv = np.unique(ids, return_inverse=True)
    med = np.array([np.median(w[inv == j]) for j in range(u.size)])
    med = med[med >= GAUSS_10_90 * RAMP_SIGMA_PX]
    if med.size < STEP_MIN_FEATURES:
        return float(np.percentile(w, STEP_PERCENTILE))
    return float(np.percentile(med, STEP_FEATURE_PERCENTILE))
