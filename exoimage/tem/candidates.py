"""Vesicle candidates: where an outline is worth looking for, and at what size.

Three detectors propose ``(row, col, radius, strength)`` in working pixels
(the image area-averaged so that the smallest vesicle spans about
:data:`WORK_PX_PER_MIN_DIAMETER` px):

* :func:`mask_candidates` - a thresholded, closed and hole-filled foreground
  mask; its distance-transform maxima (collapsed cups whose dark centre cancels
  the light rim at the vesicle's own scale);
* :func:`log_candidates` - scale-normalised Laplacian-of-Gaussian blobs on an
  octave pyramid (faint vesicles outside the mask, and large ones);
* :func:`hough_candidates` - OpenCV's gradient Hough circles, per octave of
  radii (collapsed cups whose light rim is an open "C").

``sign`` is +1 for vesicle bodies lighter than the stain, -1 for darker.

Where the values come from: the constants below were set when the detector
was written and tuned on the simulator's scenarios (``tests/test_tem.py``:
F1 >= 0.9 and median diameter error <= 3 % in each) and on the real ScanEV
micrograph (cups and the collapsed vesicle found whole); the commit that
introduced each is named where it is known. None was measured on its own.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..stats import robust_sd

#: working pixels across the smallest vesicle (``min_diameter_nm``): the image is
#: area-averaged by an integer factor down to about this (module docstring of exoimage.tem)
WORK_PX_PER_MIN_DIAMETER = 10.0

# ---- Laplacian of Gaussian (commit 763bfb2, hole-filled LoG)
#: LoG radii per octave (scale-space step 2^(1/3)) and the most radii tried
LOG_SCALES_PER_OCTAVE = 3.0
LOG_MAX_SCALES = 64
#: radii are tried up to this factor above the largest radius asked for
LOG_RADIUS_MARGIN = 1.05
#: a radius is computed on the coarsest pyramid level where it still spans this many px
LOG_PYRAMID_RADIUS_PX = 6.0
#: no LoG scale whose sigma is more than 1/4 of the (pyramid level's) image side
LOG_MIN_SIDE_SIGMAS = 4
#: radius of the grey closing (opening for dark bodies) that fills a cup's darker
#: centre with its rim's level, in LoG sigmas
LOG_FILL_RADIUS_SIGMAS = 0.6
#: a LoG peak must stand this many robust SDs of the response above zero
LOG_PEAK_MIN_SNR = 2.5
#: the LoG response's noise is measured outside the foreground mask when that leaves at
#: least this share of the image (else on the whole image)
LOG_MIN_BACKGROUND_FRACTION = 0.2
#: floor of the LoG peak threshold (a flat response has a zero SD)
LOG_MIN_THRESHOLD = 1e-6
#: local-maximum window: this many sigmas (odd), at least LOG_MIN_PEAK_WINDOW px
LOG_PEAK_WINDOW_SIGMAS = 2
LOG_MIN_PEAK_WINDOW = 3

#: robust SDs of whole images are taken on a subsample of about this many px a side
NOISE_SAMPLE_SIDE = 256

# ---- foreground mask (commit d509712)
#: radius of the coarse background median, in smallest-vesicle radii: 8 x 6.7 = 53.6
#: (~800 nm with the default 30 nm minimum), robust to vesicles covering less than
#: half of it. Kept as the product ``8.0 * r * 6.7`` the detector was tuned with (the
#: same rounding).
MASK_BG_RADIUS_FACTORS = (8.0, 6.7)
#: ... and at most this share of the image's longer side: in a small field (a crop, or a
#: field at high magnification) a window spanning the whole field follows no stain pool or
#: unevenness, and the threshold below (robust SDs of image - background) then measures the
#: pools instead of the noise (issue 13, stain_pools: no light mask at all at 0.35 nm/px)
MASK_BG_MAX_SIDE_FRAC = 0.125
#: the image is shrunk by (background radius / this) before the background medians
MASK_BG_SHRINK_PER_RADIUS = 4
#: pixel values are clipped to +- this many noise SDs before the medians (hot pixels)
MASK_CLIP_SDS = 100
#: the two medians (px of the shrunk image) and the smoothing of the background
MASK_BG_MEDIAN_PX = 5
MASK_BG_MEDIAN2_PX = 9
MASK_BG_SMOOTH_PX = 2.0
#: smoothing of the image compared with the background (working px)
MASK_SMOOTH_PX = 1.0
#: foreground: above the background by this many robust SDs of the difference, and
#: by at least MASK_MIN_THRESHOLD noise SDs
MASK_THRESHOLD_SDS = 2.0
MASK_MIN_THRESHOLD = 1.2
#: radius of the closing and opening of the mask, in smallest-vesicle radii
MASK_CLOSE_RADIUS_FRAC = 0.8
#: distance-transform maxima: this far apart and this deep, in smallest-vesicle radii
MASK_PEAK_DISTANCE_FRAC = 0.8
MASK_PEAK_DEPTH_FRAC = 0.6

# ---- Hough circles (commits b96d1d1, 763bfb2, 1b71724)
#: OpenCV HOUGH_GRADIENT_ALT "perfectness" (param2) of a circle
HOUGH_PERFECTNESS = 0.7
#: open cups matter from this many smallest-vesicle radii up (smaller ones are the
#: mask's and the LoG's job)
HOUGH_MIN_RADIUS_FRAC = 1.6
#: ... and one more span [HOUGH_SMALL_RADIUS_FRAC, HOUGH_OCTAVE_SPAN x HOUGH_SMALL_RADIUS_FRAC] x
#: the smallest radius (overlapping the first of those; a span ending at HOUGH_MIN_RADIUS_FRAC
#: found few of them: dense 1.5 and 3 nm/px unchanged): in a crowded field (the ``dense`` scenario of
#: exoimage.simulate.tem_fields, 34 % covered) the vesicles inflate the noise estimates of the
#: mask and the LoG: the mask held 6 % of the field, and a small cup whose dark centre is wider
#: than the LoG's fill (a ring, not a blob) gave no candidate at all (40 of 306 vesicles at
#: 2 nm/px); their bright rims are circles. The spans above are unchanged.
HOUGH_SMALL_RADIUS_FRAC = 1.0
#: one transform per span of radii [ra, HOUGH_OCTAVE_SPAN * ra]
HOUGH_OCTAVE_SPAN = 4
#: ... and, for the band-passed image's circles (:func:`detrended_hough_candidates`), a second set of
#: spans HOUGH_FINE_SPAN wide: within a span the transform reports one circle per HOUGH's least
#: centre distance (the span's smallest radius), so a circle of a larger radius, near-concentric,
#: hides a smaller vesicle's rim (issue 13, stain_pools at 0.35 nm/px: a cup of radius 8 working
#: px in a stain pool had a 1.47 x circle at 0.4 radii off and no candidate of its own; spans of 2
#: alone lost another one at 0.7 nm/px the same way, the other way round). Light bodies only: for
#: dark bodies they added circles off the body's centre that won (dark_grain at 0.5 nm/px: an EV
#: outlined from 0.1 radii off its centre, 0.88 of its diameter instead of 0.97; another matched by a
#: 0.51 x outline)
HOUGH_FINE_SPAN = 2
#: each span runs on a copy shrunk so that ra <= HOUGH_MAX_RADIUS_PX and the image
#: <= HOUGH_MAX_SIDE_PX (the cost grows fast with both: 19 s -> 3 s on a dense 2048^2
#: field at 3 nm/px, commit 1b71724); spans whose radii would fall below
#: HOUGH_MIN_RADIUS_PX there are left to the LoG and the mask
HOUGH_MAX_RADIUS_PX = 8.0
HOUGH_MAX_SIDE_PX = 768.0
#: ... and a span whose smallest radius is under HOUGH_MAX_RADIUS_PX runs once more, on a copy enlarged
#: (bilinear) by up to this factor while the copy stays within HOUGH_MAX_SIDE_PX: a circle of 5-7 px has too few
#: edge pixels and accumulator cells for its perfectness to reach HOUGH_PERFECTNESS when its rim is
#: faint (issue 13, stain_pools at 1.4 nm/px: a cup of radius 6.8 working px inside a stain pool got
#: no candidate at all; at 1.5 x it gets a circle at 0.1 radii off, 0.94 x its radius). Both copies'
#: circles are kept: the enlarged copy alone lost a 32 nm pool cup at 0.7 nm/px that the unenlarged one
#: proposed (a 1.2 x circle 0.24 radii off)
HOUGH_MAX_ZOOM = 2.0
HOUGH_MIN_RADIUS_PX = 4.0
#: the next span starts just above the last one
HOUGH_NEXT_SPAN = 1.0001
#: smoothing before the transform: full-size and shrunk copies (px)
HOUGH_SMOOTH_PX = 1.5
HOUGH_SMOOTH_SHRUNK_PX = 1.0
#: grey levels per noise SD (x sqrt(shrink)) around mid-grey in the 8-bit copy the transform sees
HOUGH_GREY_PER_SD = 8
HOUGH_MID_GREY = 128
#: OpenCV parameters: accumulator resolution (dp), Canny's upper threshold (param1),
#: least distance between centres and smallest/largest radius (px)
HOUGH_DP = 1.5
HOUGH_CANNY_HIGH = 60
HOUGH_MIN_DIST_PX = 2.0
HOUGH_MIN_RADIUS_ARG = 2
HOUGH_MAX_RADIUS_ARG = 3

# ---- circles on the band-passed image (the second look)
#: the background removed before the second look's Hough transform: a Gaussian of this many
#: smallest-vesicle radii (a dark stain pool or halo around a vesicle is a few of its radii
#: wide; on the dark-EV crop in ../shared 2-6 gave the same three circles)
DETREND_HOUGH_RADII = 4.0

# ---- duplicates at the same scale
#: a weaker candidate closer than this share of the smaller radius to a stronger one ...
SAME_SCALE_DISTANCE_FRAC = 0.5
#: ... whose radius is within these ratios of it is the same blob
SAME_SCALE_RATIO = (0.7, 1.45)

#: an excluded (annotation) working pixel: more than this share of its input pixels excluded
EXCLUDE_FRACTION = 0.5


def working_factor(pixel_size_nm: float, min_diameter_nm: float,
                   target_px: float = WORK_PX_PER_MIN_DIAMETER) -> int:
    """Integer downsampling factor so that the smallest vesicle spans ~target_px pixels."""
    return max(1, int(np.floor(min_diameter_nm / pixel_size_nm / target_px)))


def downsample(img: np.ndarray, f: int) -> np.ndarray:
    """``img`` area-averaged by the integer factor ``f`` (itself when ``f == 1``)."""
    if f == 1:
        return img
    h, w = img.shape
    return cv2.resize(img, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)


def downsample_mask(mask: np.ndarray, f: int) -> np.ndarray:
    """A boolean mask at the working scale: working pixels more than half covered."""
    return downsample(mask.astype(np.float32), f) > EXCLUDE_FRACTION


def _subsample(a: np.ndarray) -> np.ndarray:
    return a[:: max(1, a.shape[0] // NOISE_SAMPLE_SIDE), :: max(1, a.shape[1] // NOISE_SAMPLE_SIDE)]


def log_candidates(work: np.ndarray, r_min: float, r_max: float, sign: float,
                   exclude: np.ndarray | None, background: np.ndarray | None = None):
    """Scale-space LoG blob candidates: list of (row, col, radius, strength) in working px.

    ``background`` (bool, working px), when given, holds the pixels the response's noise is
    measured on (outside the vesicles already found by the mask: in a crowded field the
    vesicles themselves would inflate it and hide the faint ones), when at least
    LOG_MIN_BACKGROUND_FRACTION of the image.
    """
    cands = []
    radii = r_min * 2.0 ** (np.arange(0, LOG_MAX_SCALES) / LOG_SCALES_PER_OCTAVE)
    radii = radii[radii <= r_max * LOG_RADIUS_MARGIN]
    level_img = {0: work}
    for r in radii:
        level = max(0, int(np.floor(np.log2(r / LOG_PYRAMID_RADIUS_PX)))) if r > LOG_PYRAMID_RADIUS_PX else 0
        if level not in level_img:
            prev = level_img[max(k for k in level_img if k < level)]
            img = prev
            for _ in range(level - max(k for k in level_img if k < level)):
                img = cv2.pyrDown(img)
            level_img[level] = img
        img = level_img[level]
        scale = 2.0 ** level
        s = r / np.sqrt(2.0) / scale
        if min(img.shape) < LOG_MIN_SIDE_SIGMAS * s:
            break
        # a grey closing (opening for dark bodies) fills the darker collapsed centre
        # of a cup with its rim's level, so the LoG sees the whole vesicle as a blob
        k = max(1, int(round(LOG_FILL_RADIUS_SIGMAS * s)))
        se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
        filled = cv2.morphologyEx(img, cv2.MORPH_CLOSE if sign > 0 else cv2.MORPH_OPEN, se)
        blur = cv2.GaussianBlur(filled, (0, 0), s)
        lap = cv2.Laplacian(blur, cv2.CV_32F, ksize=3)
        resp = (-sign) * lap * (s * s)
        bg = None
        if background is not None:
            bg = cv2.resize(background.astype(np.uint8), (img.shape[1], img.shape[0]),
                            interpolation=cv2.INTER_NEAREST).astype(bool) if level else background
        if bg is not None and bg.mean() >= LOG_MIN_BACKGROUND_FRACTION:
            noise = robust_sd(resp[bg][:: max(1, int(bg.sum()) // NOISE_SAMPLE_SIDE ** 2)])
        else:
            noise = robust_sd(_subsample(resp))
        thr = max(LOG_PEAK_MIN_SNR * noise, LOG_MIN_THRESHOLD)
        win = max(LOG_MIN_PEAK_WINDOW, int(LOG_PEAK_WINDOW_SIGMAS * s) | 1)
        mx = cv2.dilate(resp, cv2.getStructuringElement(cv2.MORPH_RECT, (win, win)))
        peaks = np.argwhere((resp >= mx) & (resp > thr))
        for y, x in peaks:
            yy, xx = (y + 0.5) * scale - 0.5, (x + 0.5) * scale - 0.5
            if exclude is not None:
                iy, ix = int(round(yy)), int(round(xx))
                if 0 <= iy < exclude.shape[0] and 0 <= ix < exclude.shape[1] and exclude[iy, ix]:
                    continue
            # a flat response (noise 0: a tiny or blank field) gives an infinite SNR, as before, without a warning
            snr = float(resp[y, x] / noise) if noise > 0 else float("inf")
            cands.append((yy, xx, float(r), snr))
    return cands


#: a component's centroid candidate is the same as one of its distance-transform peaks when
#: both centre and radius lie within this share of its radius (issue 13)
COMPONENT_SAME_FRAC = 0.2


def mask_candidates(work_n: np.ndarray, r_min: float, r_max: float, sign: float,
                    exclude: np.ndarray | None):
    """Candidates from a filled foreground mask: centres of its distance-transform maxima, and
    (light bodies) :func:`_component_candidates`.

    The LoG misses collapsed cups whose dark centre cancels the light rim at
    the vesicle's own scale; thresholding the light rim, closing it and
    filling holes gives the whole vesicle, whose inscribed-circle centre is a
    candidate with the inscribed radius as its scale.

    Returns ``(candidates, foreground mask, distance transform)``.
    """
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max

    img = sign * work_n
    # background: a coarse median (robust to vesicles covering < half its window)
    # at a scale of a few hundred nm, so uneven stain does not leak into the mask
    bg_r = min(r_max, MASK_BG_RADIUS_FACTORS[0] * r_min * MASK_BG_RADIUS_FACTORS[1],
               max(img.shape) * MASK_BG_MAX_SIDE_FRAC)
    k = max(1, int(bg_r // MASK_BG_SHRINK_PER_RADIUS))
    small = cv2.resize(img, (max(1, img.shape[1] // k), max(1, img.shape[0] // k)),
                       interpolation=cv2.INTER_AREA) if k > 1 else img
    bg_small = cv2.medianBlur(np.clip(small, -MASK_CLIP_SDS, MASK_CLIP_SDS).astype(np.float32), MASK_BG_MEDIAN_PX)
    if min(bg_small.shape) >= MASK_BG_MEDIAN2_PX:
        bg_small = ndi.median_filter(bg_small, size=MASK_BG_MEDIAN2_PX, mode="nearest")
    bg_small = cv2.GaussianBlur(bg_small, (0, 0), MASK_BG_SMOOTH_PX)
    bg = cv2.resize(bg_small, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    diff = cv2.GaussianBlur(img, (0, 0), MASK_SMOOTH_PX) - bg
    thr = max(MASK_MIN_THRESHOLD, MASK_THRESHOLD_SDS * robust_sd(diff[::2, ::2]))
    fg = diff > thr
    rad = max(1, int(round(r_min * MASK_CLOSE_RADIUS_FRAC)))
    se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rad + 1, 2 * rad + 1))
    fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_CLOSE, se)
    fg = ndi.binary_fill_holes(fg)
    fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN, se)
    dt = cv2.distanceTransform(fg, cv2.DIST_L2, 5)
    peaks = peak_local_max(dt, min_distance=max(2, int(r_min * MASK_PEAK_DISTANCE_FRAC)),
                           threshold_abs=r_min * MASK_PEAK_DEPTH_FRAC, exclude_border=False)
    cands = []
    for y, x in peaks:
        if exclude is not None and exclude[y, x]:
            continue
        cands.append((float(y), float(x), float(max(dt[y, x], r_min)), float(dt[y, x])))
    if sign > 0:
        # light bodies only: a dark body's mask holds its dark halo too, and neighbours' halos join
        # (dark_grain fields at 1 nm/px: two touching EVs proposed, and outlined, as one)
        cands += _component_candidates(fg, cands, r_min, r_max, exclude)
    return cands, fg.astype(bool), dt


def _component_candidates(fg, peaks, r_min, r_max, exclude):
    """The centroid of each component of the mask ``fg`` at the radius of its box (sqrt(w h) / 2):
    an irregular or lobed vesicle's inscribed circle (its distance-transform peak, in ``peaks``)
    lies well off its centre and is much smaller than it (issue 13). A component whose centroid and
    radius both lie within COMPONENT_SAME_FRAC of its radius of one of its peaks (a round vesicle)
    is not proposed again."""
    n, lab, stats, cents = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
    same = {}
    for y, x, r, _ in peaks:
        same.setdefault(int(lab[int(y), int(x)]), []).append((y, x, r))
    out = []
    for k in range(1, n):
        r = 0.5 * float(np.sqrt(stats[k, cv2.CC_STAT_WIDTH] * stats[k, cv2.CC_STAT_HEIGHT]))
        x, y = cents[k]
        iy, ix = int(round(y)), int(round(x))
        if not (r_min <= r <= r_max) or (exclude is not None and exclude[iy, ix]):
            continue
        if any(np.hypot(py - y, px - x) < COMPONENT_SAME_FRAC * r and abs(pr - r) < COMPONENT_SAME_FRAC * r
               for py, px, pr in same.get(k, ())):
            continue
        out.append((float(y), float(x), r, float(r)))
    return out


def hough_candidates(work_n: np.ndarray, r_min: float, r_max: float, sign: float,
                     exclude: np.ndarray | None, perfectness: float = HOUGH_PERFECTNESS,
                     span: float = HOUGH_OCTAVE_SPAN):
    """Circle candidates from OpenCV's gradient Hough transform.

    Catches collapsed cups whose light rim is an open "C": neither a blob at
    the vesicle's scale nor a closed ring that hole-filling could complete.
    """
    # the transform's cost grows with the radius range and image size: run it per
    # span of radii ([ra, span x ra]) on a shrunk copy (see HOUGH_MAX_RADIUS_PX)
    spans = []
    if HOUGH_SMALL_RADIUS_FRAC < HOUGH_MIN_RADIUS_FRAC and r_min * HOUGH_SMALL_RADIUS_FRAC <= r_max:
        spans.append((r_min * HOUGH_SMALL_RADIUS_FRAC, min(r_max, span * r_min * HOUGH_SMALL_RADIUS_FRAC)))
    ra = r_min * HOUGH_MIN_RADIUS_FRAC
    while ra <= r_max:
        rb = min(r_max, span * ra)
        spans.append((ra, rb))
        ra = rb * HOUGH_NEXT_SPAN if rb < r_max else r_max * 2
    cands = []
    for ra, rb in spans:
        h1 = max(1.0, ra / HOUGH_MAX_RADIUS_PX, max(work_n.shape) / HOUGH_MAX_SIDE_PX)
        hz = max(1.0 / HOUGH_MAX_ZOOM, ra / HOUGH_MAX_RADIUS_PX, max(work_n.shape) / HOUGH_MAX_SIDE_PX)
        for h in (h1, hz) if hz < h1 else (h1,):
            cands += _hough_at(work_n, ra, rb, h, sign, exclude, perfectness)
    return cands


def _hough_at(work_n, ra, rb, h, sign, exclude, perfectness):
    """:func:`hough_candidates`' circles of radii [ra, rb] on ``work_n`` resized by 1 / ``h``."""
    cands = []
    if ra / h < HOUGH_MIN_RADIUS_PX or min(work_n.shape) / h < 1.0:
        # (the second test: a strip thinner than one pixel at this scale, e.g.
        # 10 x 20000 px, would shrink to nothing; no circle of >= 4 px fits in it)
        return cands
    if h > 1:
        img = cv2.resize(work_n, None, fx=1 / h, fy=1 / h, interpolation=cv2.INTER_AREA)
    elif h < 1:
        img = cv2.resize(work_n, None, fx=1 / h, fy=1 / h, interpolation=cv2.INTER_LINEAR)
    else:
        img = work_n
    sm = cv2.GaussianBlur(img, (0, 0), HOUGH_SMOOTH_PX if h == 1 else HOUGH_SMOOTH_SHRUNK_PX)
    u8 = np.clip(sign * sm * HOUGH_GREY_PER_SD * np.sqrt(max(h, 1.0)) + HOUGH_MID_GREY, 0, 255).astype(np.uint8)
    circles = cv2.HoughCircles(u8, cv2.HOUGH_GRADIENT_ALT, dp=HOUGH_DP,
                               minDist=max(HOUGH_MIN_DIST_PX, ra / h),
                               param1=HOUGH_CANNY_HIGH, param2=perfectness,
                               minRadius=max(HOUGH_MIN_RADIUS_ARG, int(ra / h)),
                               maxRadius=max(HOUGH_MAX_RADIUS_ARG, int(np.ceil(rb / h))))
    if circles is not None:
        for x, y, r in circles[0] * h:
            iy, ix = int(round(y)), int(round(x))
            if exclude is not None and 0 <= iy < exclude.shape[0] and 0 <= ix < exclude.shape[1] \
                    and exclude[iy, ix]:
                continue
            cands.append((float(y), float(x), float(r), 0.0))
    return cands


def detrended_hough_candidates(work_n: np.ndarray, r_min: float, r_max: float, sign: float,
                               exclude: np.ndarray | None):
    """:func:`hough_candidates` on ``work_n`` minus its smooth background (DETREND_HOUGH_RADII).

    A vesicle inside a dark stain pool or broad halo has its rim edge on a
    ramp that the 8-bit copy of :func:`hough_candidates` clips or drowns;
    without the background the rim is a circle again.
    """
    from .outline import wide_background

    det = work_n - wide_background(work_n, DETREND_HOUGH_RADII * r_min)
    d = (det[1:, :] - det[:-1, :])[::2, ::2]
    noise = robust_sd(d) / np.sqrt(2) if d.size else 0.0
    if not noise > 0:
        return []
    det = (det / noise).astype(np.float32)
    cands = hough_candidates(det, r_min, r_max, sign, exclude)
    if sign > 0:
        cands += hough_candidates(det, r_min, r_max, sign, exclude, span=HOUGH_FINE_SPAN)
    return cands


def suppress_same_scale(cands, radius_frac=SAME_SCALE_DISTANCE_FRAC):
    """Drop candidates within radius_frac*r of a stronger candidate of similar radius."""
    if not cands:
        return cands
    from scipy.spatial import cKDTree

    lo, hi = SAME_SCALE_RATIO
    c = np.array(sorted(cands, key=lambda t: (-t[3], t[0], t[1])), float)
    tree = cKDTree(c[:, :2])
    alive = np.ones(len(c), bool)
    for i in range(len(c)):
        if not alive[i]:
            continue
        for j in tree.query_ball_point(c[i, :2], radius_frac * c[i, 2] * hi):
            if j <= i or not alive[j]:
                continue
            ratio = c[j, 2] / c[i, 2]
            if lo < ratio < hi and np.hypot(*(c[j, :2] - c[i, :2])) < radius_frac * min(c[i, 2], c[j, 2]):
                alive[j] = False
    return [tuple(row) for row in c[alive]]
