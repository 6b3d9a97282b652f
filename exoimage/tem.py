"""Find and measure extracellular vesicles in negative-stain TEM micrographs.

Method
------
1. **Working scale.** The image is area-averaged so that the smallest vesicle
   asked for (``min_diameter_nm``) spans about 10 working pixels; every size
   parameter is in nm and converted with the pixel size, so one setting works
   from 0.3 to 5 nm/px.
2. **Candidates.** A scale-normalised Laplacian-of-Gaussian over radii from
   ``min_diameter_nm/2`` to ``max_diameter_nm/2`` (an octave pyramid, so large
   scales stay cheap) marks blobs lighter than their surroundings (or darker,
   with ``polarity='dark'``). The LoG ignores smooth, uneven stain.
3. **Outlines.** Around each candidate the full-resolution image is sampled on
   a polar grid; the outline is the closed path, found by dynamic programming,
   that follows the strongest light-to-dark edge going outwards (the body /
   stain boundary) with bounded changes in radius between neighbouring angles.
   A collapsed, darker cup centre does not matter: the path looks for the
   outer edge, so the interior is filled by construction. The edge position is
   refined to sub-pixel precision.
4. **Decisions.** Outlines with an edge weaker than ``min_contrast`` times the
   noise of the image's gradient, outside the size range, too irregular, or
   sitting on annotation pixels are dropped; duplicates of the same vesicle are
   merged; an outline that swallows two or more good vesicles is replaced by
   them (touching vesicles are split), while small outlines inside a large
   well-outlined vesicle (folds of a collapsed vesicle) are dropped.
5. **Measurements** come from the sub-pixel outline: equivalent-circle
   diameter, Feret diameters, circularity, aspect ratio. Vesicles whose
   outline reaches the image border are flagged (``touches_border``) and not
   sized.

Everything is deterministic: the same input gives the same output, byte for byte.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import cv2
import numpy as np
import pandas as pd

from .io import PLAUSIBLE_GIVEN_PIXEL_NM, Image, ImageReadError, read_image, validate_image
from .params import check_instance

__all__ = [
    "TemParams",
    "PIXEL_SIZE_META",
    "NO_PIXEL_SIZE",
    "VesicleResult",
    "TemFileResult",
    "VESICLE_COLUMNS",
    "IMAGE_COLUMNS",
    "detect_vesicles",
    "measure_vesicles",
    "measure_labels",
    "summarize_diameters",
    "analyze_tem_file",
    "analyze_tem_image",
    "draw_overlay",
]

VESICLE_COLUMNS = [
    "image", "vesicle_id", "x_px", "y_px", "x_nm", "y_nm", "area_nm2", "diameter_nm",
    "feret_max_nm", "feret_min_nm", "circularity", "aspect_ratio", "touches_border",
    "contrast_snr", "confidence",
]

IMAGE_COLUMNS = [
    "image", "status", "error", "width_px", "height_px", "pixel_size_nm", "pixel_size_source",
    "polarity", "n_vesicles", "n_border", "diameter_mean_nm", "diameter_median_nm",
    "diameter_sd_nm", "d10_nm", "d50_nm", "d90_nm", "scale_bar_text", "scale_bar_length_px",
    "scale_bar_confidence", "scale_bar_box", "warnings",
]

_SCALE_BAR_KEYS = ("scale_bar_text", "scale_bar_length_px", "scale_bar_confidence", "scale_bar_box")


@dataclass
class TemParams:
    """Detector parameters; sizes in nm, contrast in units of the image's noise.

    Attributes
    ----------
    min_diameter_nm, max_diameter_nm : float
        Size range of reported vesicles (equivalent-circle diameter).
        Objects below the minimum are debris.
    min_contrast : float
        Minimum median edge strength of an outline, in noise standard
        deviations of the image gradient.
    polarity : {'auto', 'light', 'dark'}
        Whether vesicle bodies are lighter than the stain (classic negative
        stain), darker, or decided per image from which gives more and
        stronger outlines.
    min_circularity : float
        Outlines less round than this (4 pi A / P^2) are rejected.
    """

    min_diameter_nm: float = field(default=30.0, metadata={
        "type": "float", "unit": "nm", "min": 0, "min_exclusive": True, "below": "max_diameter_nm",
        "cli": "--min-diameter", "metavar": "NM", "label": "Min diameter", "decimals": 1,
        "help": "smallest vesicle diameter to report; anything smaller is debris"})
    max_diameter_nm: float = field(default=1000.0, metadata={
        "type": "float", "unit": "nm", "min": 0, "min_exclusive": True,
        "cli": "--max-diameter", "metavar": "NM", "label": "Max diameter", "decimals": 1,
        "help": "largest vesicle diameter to report"})
    min_contrast: float = field(default=3.0, metadata={
        "type": "float", "unit": "noise SD", "min": 0, "cli": "--min-contrast", "metavar": "SNR",
        "label": "Min contrast", "decimals": 2,
        "help": "minimum edge contrast of a vesicle's outline, in noise SDs of the image; "
                "raise it to drop faint objects"})
    polarity: str = field(default="auto", metadata={
        "type": "str", "choices": ("auto", "light", "dark"), "cli": "--polarity", "label": "Polarity",
        "help": "vesicle body lighter than the stain (classic negative stain), darker, or decided per image"})
    min_circularity: float = field(default=0.55, metadata={
        "type": "float", "min": 0, "max": 1, "cli": "--min-circularity", "metavar": "C",
        "label": "Min circularity", "advanced": True,
        "help": "outlines less round than this (4 pi area / perimeter^2; 1 = a circle) are rejected"})

    def __post_init__(self):
        self.check()

    def as_dict(self) -> dict:
        return asdict(self)

    def check(self):
        """Check every field against its metadata (:mod:`exoimage.params`).

        Raises
        ------
        exoimage.params.ParamError
            (a ``ValueError``) naming the parameter, its value and the problem.
        """
        check_instance(self)


#: rules of a pixel size given by the user (``--pixel-size``, ``[tem.pixel_size_nm]``), same
#: format as the field metadata above; the plausible range is :data:`exoimage.io.PLAUSIBLE_GIVEN_PIXEL_NM`
PIXEL_SIZE_META = {"type": "float", "unit": "nm", "min": PLAUSIBLE_GIVEN_PIXEL_NM[0],
                   "max": PLAUSIBLE_GIVEN_PIXEL_NM[1], "cli": "--pixel-size", "metavar": "NM", "optional": True,
                   "label": "Pixel size", "auto": "read from the file's calibration",
                   "help": "pixel size in nm/px; overrides the file's calibration"}

#: the problem of an image with no pixel size (it names the parameter; front ends reword it,
#: :func:`exoimage.params.reword`)
NO_PIXEL_SIZE = "no pixel size: give pixel_size_nm (nm per pixel)"


@dataclass
class VesicleResult:
    """What :func:`detect_vesicles` found in one image.

    Attributes
    ----------
    table : DataFrame
        One row per vesicle (see ``VESICLE_COLUMNS``; ``image`` is empty).
    labels : ndarray of int32
        Label image at the input's resolution; label ``k`` is ``vesicle_id`` ``k``.
    outlines : list of ndarray
        Sub-pixel outline of each vesicle, ``(n, 2)`` arrays of (row, col).
    pixel_size_nm : float
    polarity : str
        Polarity that was used ('light' or 'dark').
    """

    table: pd.DataFrame
    labels: np.ndarray
    outlines: list = field(default_factory=list)
    pixel_size_nm: float = 1.0
    polarity: str = "light"


# ---------------------------------------------------------------------------
# helpers


def _robust_sd(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    if a.size == 0:
        return 0.0
    med = np.median(a)
    return float(1.4826 * np.median(np.abs(a - med)))


def _working_factor(pixel_size_nm: float, min_diameter_nm: float, target_px: float = 10.0) -> int:
    """Integer downsampling factor so that the smallest vesicle spans ~target_px pixels."""
    return max(1, int(np.floor(min_diameter_nm / pixel_size_nm / target_px)))


def _downsample(img: np.ndarray, f: int) -> np.ndarray:
    if f == 1:
        return img
    h, w = img.shape
    return cv2.resize(img, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------------------
# 1-2: candidates


def _log_candidates(work: np.ndarray, r_min: float, r_max: float, sign: float,
                    exclude: np.ndarray | None):
    """Scale-space LoG blob candidates: list of (row, col, radius) in working px."""
    cands = []
    radii = r_min * 2.0 ** (np.arange(0, 64) / 3.0)
    radii = radii[radii <= r_max * 1.05]
    level_img = {0: work}
    for r in radii:
        level = max(0, int(np.floor(np.log2(r / 6.0)))) if r > 6.0 else 0
        if level not in level_img:
            prev = level_img[max(k for k in level_img if k < level)]
            img = prev
            for _ in range(level - max(k for k in level_img if k < level)):
                img = cv2.pyrDown(img)
            level_img[level] = img
        img = level_img[level]
        scale = 2.0 ** level
        s = r / np.sqrt(2.0) / scale
        if min(img.shape) < 4 * s:
            break
        # a grey closing (opening for dark bodies) fills the darker collapsed centre
        # of a cup with its rim's level, so the LoG sees the whole vesicle as a blob
        k = max(1, int(round(0.6 * s)))
        se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
        filled = cv2.morphologyEx(img, cv2.MORPH_CLOSE if sign > 0 else cv2.MORPH_OPEN, se)
        blur = cv2.GaussianBlur(filled, (0, 0), s)
        lap = cv2.Laplacian(blur, cv2.CV_32F, ksize=3)
        resp = (-sign) * lap * (s * s)
        noise = _robust_sd(resp[:: max(1, resp.shape[0] // 256), :: max(1, resp.shape[1] // 256)])
        thr = max(4.0 * noise, 1e-6)
        win = max(3, int(2 * s) | 1)
        mx = cv2.dilate(resp, cv2.getStructuringElement(cv2.MORPH_RECT, (win, win)))
        peaks = np.argwhere((resp >= mx) & (resp > thr))
        for y, x in peaks:
            yy, xx = (y + 0.5) * scale - 0.5, (x + 0.5) * scale - 0.5
            if exclude is not None:
                iy, ix = int(round(yy)), int(round(xx))
                if 0 <= iy < exclude.shape[0] and 0 <= ix < exclude.shape[1] and exclude[iy, ix]:
                    continue
            cands.append((yy, xx, float(r), float(resp[y, x] / noise)))
    return cands


def _mask_candidates(work_n: np.ndarray, r_min: float, r_max: float, sign: float,
                     exclude: np.ndarray | None):
    """Candidates from a filled foreground mask: centres of its distance-transform maxima.

    The LoG misses collapsed cups whose dark centre cancels the light rim at
    the vesicle's own scale; thresholding the light rim, closing it and
    filling holes gives the whole vesicle, whose inscribed-circle centre is a
    candidate with the inscribed radius as its scale.
    """
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max

    img = sign * work_n
    # background: a coarse median (robust to vesicles covering < half its window)
    # at a scale of a few hundred nm, so uneven stain does not leak into the mask
    bg_r = min(r_max, 8.0 * r_min * 6.7)  # ~800 nm with the default 30 nm minimum
    k = max(1, int(bg_r // 4))
    small = cv2.resize(img, (max(1, img.shape[1] // k), max(1, img.shape[0] // k)),
                       interpolation=cv2.INTER_AREA) if k > 1 else img
    bg_small = cv2.medianBlur(np.clip(small, -100, 100).astype(np.float32), 5)
    if min(bg_small.shape) >= 9:
        bg_small = ndi.median_filter(bg_small, size=9, mode="nearest")
    bg_small = cv2.GaussianBlur(bg_small, (0, 0), 2.0)
    bg = cv2.resize(bg_small, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    diff = cv2.GaussianBlur(img, (0, 0), 1.0) - bg
    thr = max(1.2, 2.0 * _robust_sd(diff[::2, ::2]))
    fg = diff > thr
    rad = max(1, int(round(r_min * 0.8)))
    se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rad + 1, 2 * rad + 1))
    fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_CLOSE, se)
    fg = ndi.binary_fill_holes(fg)
    fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN, se)
    dt = cv2.distanceTransform(fg, cv2.DIST_L2, 5)
    peaks = peak_local_max(dt, min_distance=max(2, int(r_min * 0.8)), threshold_abs=r_min * 0.6,
                           exclude_border=False)
    cands = []
    for y, x in peaks:
        if exclude is not None and exclude[y, x]:
            continue
        cands.append((float(y), float(x), float(max(dt[y, x], r_min)), float(dt[y, x])))
    return cands, fg.astype(bool), dt


def _hough_candidates(work_n: np.ndarray, r_min: float, r_max: float, sign: float,
                      exclude: np.ndarray | None, perfectness: float = 0.7):
    """Circle candidates from OpenCV's gradient Hough transform.

    Catches collapsed cups whose light rim is an open "C": neither a blob at
    the vesicle's scale nor a closed ring that hole-filling could complete.
    """
    # the transform's cost grows with the radius range and image size: run it per
    # octave of radii ([ra, 4 ra]) on a copy shrunk so that ra is ~4 px
    # Small vesicles are the mask's and the LoG's job; open cups matter from
    # about twice the minimum size up.
    cands = []
    ra = r_min * 1.6
    while ra <= r_max:
        rb = min(r_max, 4 * ra)
        # shrink so that ra is <= 8 px and the image <= ~768 px: the transform's
        # cost grows fast with both; octaves whose radii would fall below 4 px
        # are left to the LoG and the mask
        h = max(1.0, ra / 8.0, max(work_n.shape) / 768.0)
        if ra / h < 4.0 or min(work_n.shape) / h < 1.0:
            # (the second test: a strip thinner than one pixel at this scale, e.g.
            # 10 x 20000 px, would shrink to nothing; no circle of >= 4 px fits in it)
            ra = rb * 1.0001 if rb < r_max else r_max * 2
            continue
        img = cv2.resize(work_n, None, fx=1 / h, fy=1 / h, interpolation=cv2.INTER_AREA) if h > 1 else work_n
        sm = cv2.GaussianBlur(img, (0, 0), 1.5 if h == 1 else 1.0)
        u8 = np.clip(sign * sm * 8 * np.sqrt(h) + 128, 0, 255).astype(np.uint8)
        circles = cv2.HoughCircles(u8, cv2.HOUGH_GRADIENT_ALT, dp=1.5, minDist=max(2.0, ra / h),
                                   param1=60, param2=perfectness, minRadius=max(2, int(ra / h)),
                                   maxRadius=max(3, int(np.ceil(rb / h))))
        if circles is not None:
            for x, y, r in circles[0] * h:
                iy, ix = int(round(y)), int(round(x))
                if exclude is not None and 0 <= iy < exclude.shape[0] and 0 <= ix < exclude.shape[1] \
                        and exclude[iy, ix]:
                    continue
                cands.append((float(y), float(x), float(r), 0.0))
        ra = rb * 1.0001 if rb < r_max else r_max * 2
    return cands


def _suppress_same_scale(cands, radius_frac=0.5):
    """Drop candidates within radius_frac*r of a stronger candidate of similar radius."""
    if not cands:
        return cands
    from scipy.spatial import cKDTree

    c = np.array(sorted(cands, key=lambda t: (-t[3], t[0], t[1])), float)
    tree = cKDTree(c[:, :2])
    alive = np.ones(len(c), bool)
    for i in range(len(c)):
        if not alive[i]:
            continue
        for j in tree.query_ball_point(c[i, :2], radius_frac * c[i, 2] * 1.45):
            if j <= i or not alive[j]:
                continue
            ratio = c[j, 2] / c[i, 2]
            if 0.7 < ratio < 1.45 and np.hypot(*(c[j, :2] - c[i, :2])) < radius_frac * min(c[i, 2], c[j, 2]):
                alive[j] = False
    return [tuple(row) for row in c[alive]]


# ---------------------------------------------------------------------------
# 3: polar outlines

N_ANGLES = 96
N_RADII = 80
RHO_LO, RHO_HI = 0.35, 1.75


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


def _polar_outlines(img: np.ndarray, cands, sign: float, grad_noise: float, max_step: int = 2,
                    jump_penalty: float = 0.15):
    """Outline every candidate on a polar grid by dynamic programming.

    ``img`` is the (smoothed) full-resolution image; ``cands`` are (row, col,
    radius) in full-resolution pixels. Returns arrays: radii (C, N_ANGLES) in
    px, per-angle edge strengths (C, N_ANGLES) in noise units, and a mask of
    angles whose samples left the image.
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
        step = 32000
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
    cost = np.clip(g, -5, None)

    # DP over two turns so that the result does not depend on the start angle
    M = N_RADII
    acc = cost[:, 0, :].copy()
    back = np.zeros((C, 2 * N_ANGLES, M), np.int8)
    offsets = range(-max_step, max_step + 1)
    pen = {o: jump_penalty * abs(o) for o in offsets}
    for k in range(1, 2 * N_ANGLES):
        a = k % N_ANGLES
        best = np.full_like(acc, -np.inf)
        arg = np.zeros(acc.shape, np.int8)
        for o in offsets:
            sh = np.full_like(acc, -np.inf)
            if o > 0:
                sh[:, o:] = acc[:, :-o]
            elif o < 0:
                sh[:, :o] = acc[:, -o:]
            else:
                sh = acc
            cand = sh - pen[o]
            better = cand > best
            best = np.where(better, cand, best)
            arg = np.where(better, np.int8(o), arg)
        acc = best + cost[:, a, :]
        back[:, k, :] = arg
    idx = np.argmax(acc, axis=1)
    path = np.zeros((C, 2 * N_ANGLES), np.int64)
    path[:, -1] = idx
    rows = np.arange(C)
    for k in range(2 * N_ANGLES - 1, 0, -1):
        path[:, k - 1] = path[:, k] - back[rows, k, path[:, k]]
    path = path[:, N_ANGLES:]  # the second turn
    ang = np.arange(N_ANGLES)
    # sub-pixel: parabola through the edge strength around the chosen sample
    gm = g[rows[:, None], ang[None, :], np.clip(path - 1, 0, M - 1)]
    g0 = g[rows[:, None], ang[None, :], path]
    gp = g[rows[:, None], ang[None, :], np.clip(path + 1, 0, M - 1)]
    denom = gm - 2 * g0 + gp
    ok = np.abs(denom) > 1e-9
    delta = np.divide(0.5 * (gm - gp), denom, out=np.zeros_like(denom), where=ok)
    delta = np.clip(delta, -0.5, 0.5)
    delta = np.where((path > 0) & (path < M - 1), delta, 0.0)
    fpos = frac[0] + (path + delta) * (frac[1] - frac[0])
    radii = fpos * cr[:, :, 0]
    # an angle "left the image" if the outline sample at the chosen radius was outside
    left = outside[rows[:, None], ang[None, :], path]
    at_limit = (path <= 1) | (path >= M - 2)
    return radii, g0, left, at_limit


# ---------------------------------------------------------------------------
# 4: decisions


def _polygon(cy, cx, radii):
    theta = np.linspace(0, 2 * np.pi, radii.size, endpoint=False)
    return np.stack([cy + radii * np.sin(theta), cx + radii * np.cos(theta)], axis=1)


def _shape_stats(poly: np.ndarray) -> dict:
    y, x = poly[:, 0], poly[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    per = float(np.sum(np.hypot(np.diff(np.r_[x, x[0]]), np.diff(np.r_[y, y[0]]))))
    pts = poly[:, ::-1].astype(np.float32)
    hull = cv2.convexHull(pts)
    hull_area = float(cv2.contourArea(hull))
    # Feret diameters from the convex hull: max pairwise distance, min caliper width
    h = hull[:, 0, :].astype(np.float64)
    feret_max, feret_min = _ferets(h)
    return dict(area=area, perimeter=per, solidity=area / hull_area if hull_area > 0 else 0.0,
                circularity=4 * np.pi * area / per ** 2 if per > 0 else 0.0,
                feret_max=feret_max, feret_min=feret_min,
                centroid=(float(np.mean(y)), float(np.mean(x))))


def _star_mask(centre, radii, y0, y1, x0, x1):
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


def _poly_mask(poly, shape, offset=(0, 0)):
    from skimage.draw import polygon as _draw_polygon

    rr, cc = _draw_polygon(poly[:, 0] - offset[0], poly[:, 1] - offset[1], shape)
    m = np.zeros(shape, bool)
    m[rr, cc] = True
    return m


def _overlap(pa, pb):
    """(intersection, area a, area b) of two polygons in raster pixels of their common box."""
    y0 = min(pa[:, 0].min(), pb[:, 0].min())
    x0 = min(pa[:, 1].min(), pb[:, 1].min())
    y1 = max(pa[:, 0].max(), pb[:, 0].max())
    x1 = max(pa[:, 1].max(), pb[:, 1].max())
    s = max(y1 - y0, x1 - x0) / 100.0 + 1e-9  # a ~100 px raster is plenty to decide overlaps
    shape = (int((y1 - y0) / s) + 2, int((x1 - x0) / s) + 2)
    ma = np.zeros(shape, np.uint8)
    mb = np.zeros(shape, np.uint8)
    cv2.fillPoly(ma, [np.round((pa[:, ::-1] - [x0, y0]) / s).astype(np.int32)], 1)
    cv2.fillPoly(mb, [np.round((pb[:, ::-1] - [x0, y0]) / s).astype(np.int32)], 1)
    return float(np.count_nonzero(ma & mb)), float(np.count_nonzero(ma)), float(np.count_nonzero(mb))


def _resolve(objs):
    """Merge duplicates, split merged blobs, drop folds; returns the kept objects."""
    objs = sorted(objs, key=lambda o: (-o["quality"], -o["score"]))
    # boxes for quick rejection
    for o in objs:
        p = o["poly"]
        o["box"] = (p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max())

    def boxes_meet(a, b):
        return not (a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1])

    n = len(objs)
    contains = [[] for _ in range(n)]  # j mostly inside i (and smaller)
    dup = set()
    for i in range(n):
        for j in range(i + 1, n):
            a, b = objs[i], objs[j]
            if not boxes_meet(a["box"], b["box"]):
                continue
            inter, aa, ab = _overlap(a["poly"], b["poly"])
            if inter <= 0:
                continue
            union = aa + ab - inter
            if inter / union > 0.6:
                dup.add(j)  # j scores lower: the same vesicle found twice
            elif inter / min(aa, ab) > 0.6:
                big, small = (i, j) if aa >= ab else (j, i)
                contains[big].append(small)
            elif inter / min(aa, ab) > 0.15:
                # partial overlap of two different outlines: keep the better one
                dup.add(j)
    alive = [i not in dup for i in range(n)]
    # large outlines first: a big outline holding >=2 good, non-overlapping smaller
    # outlines that fill it is a merged blob; otherwise the smaller ones are folds.
    order = sorted(range(n), key=lambda k: -objs[k]["area"])
    for i in order:
        if not alive[i]:
            continue
        inner = [j for j in contains[i] if alive[j]]
        if not inner:
            continue
        good_inner = [j for j in inner if objs[j]["circularity"] > 0.8
                      and objs[j]["quality"] > 0.8 * objs[i]["quality"]]
        # the good inner outlines that do not overlap each other (best first): if
        # two or more of them fill the big outline, it is a merged blob
        parts = []
        for j in sorted(good_inner, key=lambda k: -objs[k]["quality"]):
            if all(_overlap(objs[j]["poly"], objs[k]["poly"])[0] < 0.15 * min(objs[j]["area"], objs[k]["area"])
                   for k in parts):
                parts.append(j)
        parts_area = sum(objs[j]["area"] for j in parts)
        if len(parts) >= 2 and parts_area > 0.55 * objs[i]["area"]:
            alive[i] = False
        elif len(inner) == 1 and objs[inner[0]]["quality"] > 1.5 * objs[i]["quality"] and \
                objs[inner[0]]["area"] > 0.6 * objs[i]["area"]:
            alive[i] = False
        else:
            for j in inner:
                alive[j] = False
    return [o for o, a in zip(objs, alive) if a]


# ---------------------------------------------------------------------------
# public API


def _prepare(image, pixel_size_nm):
    if isinstance(image, Image):
        data = image.displayed(np.float32)
        px = pixel_size_nm if pixel_size_nm is not None else image.pixel_size_nm
        path = image.path
    else:
        data = np.asarray(image, dtype=np.float32)
        px = pixel_size_nm
        path = None
        if data.ndim != 2:
            raise ImageReadError(path, f"expected a 2-D image, got shape {data.shape}")
        validate_image(Image(data=data))
    if px is None:
        raise ImageReadError(path, NO_PIXEL_SIZE)
    if not np.isfinite(px) or px <= 0:
        raise ImageReadError(path, f"pixel size must be positive, got {px}")
    return data.astype(np.float32, copy=False), float(px)


def _closure(strength, left):
    """20th percentile of the edge strength around each outline (NaN-safe)."""
    with np.errstate(all="ignore"):
        v = np.nanpercentile(np.where(left, np.nan, strength), 20, axis=1)
    return np.nan_to_num(v, nan=-np.inf)


def _outline_levels(data32, cands, sign, s_full, cache):
    """Polar outlines with smoothing proportional to each candidate's size (octave levels)."""
    C = len(cands)
    radii = np.zeros((C, N_ANGLES))
    strength = np.zeros((C, N_ANGLES))
    left = np.zeros((C, N_ANGLES), bool)
    at_limit = np.zeros((C, N_ANGLES), bool)
    levels = np.array([max(0, int(np.floor(np.log2(max(1.0, 0.08 * c[2] / s_full))))) for c in cands], int)
    for lev in np.unique(levels):
        idx = np.flatnonzero(levels == lev)
        if lev not in cache:
            sigma = s_full * 2.0 ** lev
            smooth = cv2.GaussianBlur(data32, (0, 0), sigma)
            gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3) / 8.0
            step = max(1, int(sigma))
            cache[lev] = (smooth, _robust_sd(gy[::2 * step, ::2 * step]) or 1.0)
        smooth, grad_noise = cache[lev]
        r_, s_, l_, a_ = _polar_outlines(smooth, [cands[i] for i in idx], sign, grad_noise)
        radii[idx], strength[idx], left[idx], at_limit[idx] = r_, s_, l_, a_
    return radii, strength, left, at_limit


def _detect_one_polarity(data, px, params, sign, exclude, quick: bool = False):
    """Outlines of one polarity; ``quick`` (for the polarity decision) skips the
    Hough candidates and the re-centring pass."""
    f = _working_factor(px, params.min_diameter_nm)
    work = _downsample(data, f)
    wpx = px * f
    noise = _robust_sd((work[1:, :] - work[:-1, :])[::2, ::2]) / np.sqrt(2)
    if noise <= 0:
        noise = float(work.std()) or 1.0
    work_n = ((work - np.median(work)) / noise).astype(np.float32)
    exclude_w = None
    if exclude is not None:
        exclude_w = _downsample(exclude.astype(np.float32), f) > 0.5
    r_min = 0.5 * params.min_diameter_nm / wpx
    r_max = 0.5 * min(params.max_diameter_nm, 0.6 * max(data.shape) * px) / wpx
    mask_cands, fg, dt = _mask_candidates(work_n, r_min, r_max, sign, exclude_w)
    # The LoG adds what the foreground mask missed: faint vesicles outside it,
    # and inside it blobs much larger than the mask's inscribed circle there
    # (a large collapsed vesicle whose mask is only its brighter folds); other
    # LoG responses inside the mask are rim fragments of vesicles already proposed.
    log_cands = _log_candidates(work_n, r_min * 0.9, r_max, sign, exclude_w)
    hf, wf = fg.shape

    def _new(c):
        iy, ix = min(hf - 1, int(round(c[0]))), min(wf - 1, int(round(c[1])))
        return not fg[iy, ix]

    log_cands = [c for c in log_cands if _new(c)]
    cands = mask_cands + _suppress_same_scale(log_cands)
    if not quick:
        cands += _hough_candidates(work_n, r_min, r_max, sign, exclude_w)
    if not cands:
        return []
    # Outlines on the full-resolution image, smoothed in proportion to the
    # candidate's size (large collapsed vesicles have broad, soft edges: a
    # wider smoothing keeps their edge and removes more noise), in a few
    # octave-spaced levels; edge strength is in noise units of each level.
    full_cands = [((y + 0.5) * f - 0.5, (x + 0.5) * f - 0.5, r * f) for y, x, r, _ in cands]
    s_full = max(0.8, 1.2 * f)
    data32 = data.astype(np.float32, copy=False)
    cache = {}
    radii, strength, left, at_limit = _outline_levels(data32, full_cands, sign, s_full, cache)
    if not quick:
        # one refinement: re-centre each outline on its centroid at its own size
        # (Hough and LoG centres of irregular vesicles can be well off-centre)
        theta = np.linspace(0, 2 * np.pi, N_ANGLES, endpoint=False)
        refined = []
        for (cy, cx, _), r in zip(full_cands, radii):
            ry, rx = cy + np.mean(r * np.sin(theta)), cx + np.mean(r * np.cos(theta))
            area = 0.5 * np.sin(2 * np.pi / N_ANGLES) * np.sum(r * np.roll(r, -1))
            refined.append((ry, rx, max(np.sqrt(max(area, 1e-9) / np.pi), 0.5 * r_min * f)))
        r2, s2, l2, a2 = _outline_levels(data32, refined, sign, s_full, cache)
        # keep whichever outline of the two has the better closed edge
        better = _closure(s2, l2) > _closure(strength, left)
        radii[better], strength[better], left[better], at_limit[better] = r2[better], s2[better], l2[better], a2[better]
        full_cands = [refined[i] if better[i] else full_cands[i] for i in range(len(full_cands))]
    H, W = data.shape
    # cheap, vectorised first cut: size, edge strength, closure
    dtheta = 2 * np.pi / N_ANGLES
    area = 0.5 * np.sin(dtheta) * np.sum(radii * np.roll(radii, -1, axis=1), axis=1)
    d_nm_all = 2 * np.sqrt(np.maximum(area, 0) / np.pi) * px
    valid = ~left
    strength_in = np.where(valid, strength, np.nan)
    with np.errstate(all="ignore"):
        score_all = np.nanmedian(strength_in, axis=1)
        qual_all = np.nanpercentile(strength_in, 20, axis=1)
        coverage_all = np.nanmean(np.where(valid, strength > 0.5 * params.min_contrast, np.nan), axis=1)
    xy = np.stack([radii * np.cos(np.linspace(0, 2 * np.pi, N_ANGLES, endpoint=False)),
                   radii * np.sin(np.linspace(0, 2 * np.pi, N_ANGLES, endpoint=False))], axis=2)
    seg = np.roll(xy, -1, axis=1) - xy
    perim = np.hypot(seg[..., 0], seg[..., 1]).sum(axis=1)
    circ_all = 4 * np.pi * area / np.maximum(perim, 1e-9) ** 2
    keep = ((d_nm_all >= params.min_diameter_nm * 0.999) & (circ_all >= params.min_circularity * 0.95) & (d_nm_all <= params.max_diameter_nm)
            & (valid.sum(axis=1) >= N_ANGLES * 0.3) & (np.nan_to_num(score_all) >= params.min_contrast)
            & (np.nan_to_num(qual_all) >= 0.5 * params.min_contrast)
            & (np.nan_to_num(coverage_all) >= 0.8) & (at_limit.mean(axis=1) <= 0.25))
    objs = []
    for k in np.flatnonzero(keep):
        cy, cx, cr = full_cands[k]
        poly = _polygon(cy, cx, radii[k])
        st = _shape_stats(poly)
        border = bool(left[k].any() or (poly[:, 0] < 0.5).any() or (poly[:, 1] < 0.5).any()
                      or (poly[:, 0] > H - 1.5).any() or (poly[:, 1] > W - 1.5).any())
        score = float(score_all[k])
        coverage = float(coverage_all[k])
        quality = float(qual_all[k])
        if not border and (st["circularity"] < params.min_circularity or st["solidity"] < 0.8):
            continue
        objs.append(dict(poly=poly, centre=(cy, cx), radii=radii[k], score=score, quality=quality, coverage=coverage, border=border,
                         area=st["area"], circularity=st["circularity"], stats=st))
    return _resolve(objs)


def _choose_polarity(data, px, params, exclude_mask):
    """('light' or 'dark', outlines or None): the polarity whose outlines are more and stronger.

    Decided by the summed edge strength of the outlines, on a copy shrunk so
    that the smallest vesicle still spans ~8 px (both polarities there cost a
    fraction of one full pass). When the image cannot be shrunk, both full
    passes are run and the winner's outlines are returned. Ties go to
    'light', the classic negative-stain appearance.
    """
    k = max(1, int(np.floor(params.min_diameter_nm / px / 8.0)))
    small = _downsample(data, k)
    ex = None if exclude_mask is None or k == 1 else _downsample(exclude_mask.astype(np.float32), k) > 0.5
    if k == 1:
        ex = exclude_mask
    light = _detect_one_polarity(small, px * k, params, +1.0, ex, quick=k > 1)
    dark = _detect_one_polarity(small, px * k, params, -1.0, ex, quick=k > 1)
    pol = "light" if sum(o["score"] for o in light) >= sum(o["score"] for o in dark) else "dark"
    return pol, ((light if pol == "light" else dark) if k == 1 else None)


def detect_vesicles(image, pixel_size_nm: float | None = None, params: TemParams | None = None,
                    *, exclude_mask: np.ndarray | None = None, **kwargs) -> VesicleResult:
    """Find vesicles and measure them.

    Parameters
    ----------
    image : ndarray or Image
        2-D micrograph (any dtype). An :class:`~exoimage.io.Image` is used as a
        viewer shows it (WhiteIsZero inverted).
    pixel_size_nm : float, optional
        Pixel size in nm; required unless ``image`` is an Image that has one.
    params : TemParams, optional
        Detector parameters; keyword arguments override single fields
        (``min_diameter_nm=40``).
    exclude_mask : ndarray of bool, optional
        Pixels that are not specimen (scale bar, labels, databar strip).
        Candidates centred there are ignored.

    Returns
    -------
    VesicleResult
    """
    params = TemParams(**{**(params.as_dict() if params else {}), **kwargs})
    params.check()
    data, px = _prepare(image, pixel_size_nm)
    objs = None
    if params.polarity == "auto":
        polarity, objs = _choose_polarity(data, px, params, exclude_mask)
    else:
        polarity = params.polarity
    if objs is None:
        objs = _detect_one_polarity(data, px, params, 1.0 if polarity == "light" else -1.0, exclude_mask)
    # order: top-to-bottom, left-to-right, for stable ids
    objs.sort(key=lambda o: (round(o["stats"]["centroid"][0]), o["stats"]["centroid"][1]))
    labels = np.zeros(data.shape, np.int32)
    rows = []
    outlines = []
    for vid, o in enumerate(objs, start=1):
        poly = o["poly"]
        y0 = max(0, int(np.floor(poly[:, 0].min())))
        x0 = max(0, int(np.floor(poly[:, 1].min())))
        y1 = min(data.shape[0], int(np.ceil(poly[:, 0].max())) + 1)
        x1 = min(data.shape[1], int(np.ceil(poly[:, 1].max())) + 1)
        m = _star_mask(o["centre"], o["radii"], y0, y1, x0, x1)
        sub = labels[y0:y1, x0:x1]
        sub[m & (sub == 0)] = vid
        st = o["stats"]
        rows.append(_row(vid, st, px, o["border"], o["score"], params.min_contrast))
        outlines.append(poly)
    table = pd.DataFrame(rows, columns=VESICLE_COLUMNS)
    return VesicleResult(table=table, labels=labels, outlines=outlines, pixel_size_nm=px,
                         polarity=polarity)


def _row(vid, st, px, border, score, min_contrast):
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
        confidence=round(float(1.0 / (1.0 + np.exp(-(score - 1.5 * min_contrast) / (0.3 * min_contrast)))), 4),
    )


def measure_vesicles(image, pixel_size_nm: float | None = None, **kwargs) -> pd.DataFrame:
    """One row per vesicle (see :data:`VESICLE_COLUMNS`): ``detect_vesicles(...).table``."""
    return detect_vesicles(image, pixel_size_nm, **kwargs).table


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
        row = _row(int(rp.label), st, pixel_size_nm, border, float("nan"), 1.0)
        row["contrast_snr"] = float("nan")
        row["confidence"] = float("nan")
        rows.append(row)
    return pd.DataFrame(rows, columns=VESICLE_COLUMNS)


def _shape_stats_points(pts: np.ndarray) -> dict:
    hull = cv2.convexHull(pts[:, ::-1].astype(np.float32))
    feret_max, feret_min = _ferets(hull[:, 0, :].astype(np.float64))
    return dict(feret_max=feret_max, feret_min=feret_min)


def _ferets(h: np.ndarray):
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


def summarize_diameters(table: pd.DataFrame) -> dict:
    """Per-image statistics of the sized (not border-cut) vesicles."""
    d = table.loc[~table["touches_border"].astype(bool), "diameter_nm"].dropna().to_numpy(float)
    nan = float("nan")
    out = dict(n_vesicles=int(d.size), n_border=int(table["touches_border"].astype(bool).sum()),
               diameter_mean_nm=nan, diameter_median_nm=nan, diameter_sd_nm=nan,
               d10_nm=nan, d50_nm=nan, d90_nm=nan)
    if d.size:
        q = np.percentile(d, [10, 50, 90])
        out.update(diameter_mean_nm=round(float(d.mean()), 3),
                   diameter_median_nm=round(float(np.median(d)), 3),
                   diameter_sd_nm=round(float(d.std(ddof=1)), 3) if d.size > 1 else nan,
                   d10_nm=round(float(q[0]), 3), d50_nm=round(float(q[1]), 3),
                   d90_nm=round(float(q[2]), 3))
    return out


@dataclass
class TemFileResult:
    """Result of the TEM pipeline on one file (what every front end consumes)."""

    image_row: dict
    vesicles: pd.DataFrame | None = None
    labels: np.ndarray | None = None
    display: np.ndarray | None = None
    pixel_size_nm: float | None = None
    outlines: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.image_row.get("status") == "ok"


def _error_row(name, message, img: Image | None = None) -> dict:
    row = {c: None for c in IMAGE_COLUMNS}
    row.update(image=name, status="error", error=message, n_vesicles=0, n_border=0)
    if img is not None:
        row.update(width_px=img.data.shape[1] if img.data.ndim >= 2 else None,
                   height_px=img.data.shape[0], pixel_size_nm=img.pixel_size_nm,
                   pixel_size_source=img.pixel_size_source, warnings="; ".join(img.warnings))
        row.update(_scale_bar_fields(img))
    return row


def analyze_tem_image(img: Image, params: TemParams | None = None, name: str | None = None,
                      exclude_mask: np.ndarray | None = None) -> TemFileResult:
    """Run the TEM pipeline on an already-read image (the plugin and batch use this)."""
    params = params or TemParams()
    name = name or (img.path or "")
    try:
        validate_image(img)
        if img.pixel_size_nm is None:
            raise ImageReadError(img.path, NO_PIXEL_SIZE)
        if exclude_mask is None:
            exclude_mask = _annotation_mask(img)
        res = detect_vesicles(img, params=params, exclude_mask=exclude_mask)
    except ImageReadError as exc:
        return TemFileResult(image_row=_error_row(name, exc.problem, img))
    table = res.table.copy()
    table["image"] = name
    row = dict(image=name, status="ok", error="", width_px=img.data.shape[1],
               height_px=img.data.shape[0], pixel_size_nm=img.pixel_size_nm,
               pixel_size_source=img.pixel_size_source, polarity=res.polarity,
               warnings="; ".join(img.warnings))
    row.update(summarize_diameters(table))
    row.update(_scale_bar_fields(img))
    return TemFileResult(image_row=row, vesicles=table, labels=res.labels,
                         display=img.displayed(), pixel_size_nm=img.pixel_size_nm,
                         outlines=res.outlines)


def _scale_bar_fields(img: Image) -> dict:
    """The scale-bar reading recorded in the image's metadata (empty when none was read)."""
    out = {k: img.metadata.get(k) for k in _SCALE_BAR_KEYS}
    if out["scale_bar_box"] is not None:
        out["scale_bar_box"] = " ".join(str(int(v)) for v in out["scale_bar_box"])
    return out


def _annotation_mask(img: Image):
    """Scale bar / label / databar pixels, when the scale-bar module is available."""
    try:
        from .scalebar import annotation_mask
    except ImportError:
        return None
    return annotation_mask(img.data)


def analyze_tem_file(path, pixel_size_nm: float | None = None, params: TemParams | None = None,
                     name: str | None = None) -> TemFileResult:
    """Read one file and run the TEM pipeline; errors become an error row, never an exception."""
    name = name or str(path)
    try:
        img = read_image(path, pixel_size_nm=pixel_size_nm)
    except ImageReadError as exc:
        return TemFileResult(image_row=_error_row(name, exc.problem))
    exclude = None
    try:
        from .scalebar import annotation_mask, calibrate_from_scale_bar, find_scale_bar, ocr_available
    except ImportError:
        pass
    else:
        # One search for the burned-in scale bar serves calibration (when the file
        # has no pixel size), the cross-check against the file's own calibration
        # (a warning when they disagree) and the mask that keeps the bar, its
        # label and any databar strip out of the detection.
        try:
            bar = find_scale_bar(img.data, ocr=False)
            if bar is not None and (img.pixel_size_nm is None or
                                    (img.pixel_size_source != "given" and ocr_available())):
                bar = find_scale_bar(img.data, ocr=True)
                img = calibrate_from_scale_bar(img, bar)
            elif img.pixel_size_nm is None:
                img = calibrate_from_scale_bar(img, bar)  # no bar: says so
            exclude = annotation_mask(img.data, bar)
        except Exception as exc:  # noqa: BLE001 - OCR missing etc.: say so, stay as calibrated
            img.warnings.append(f"scale bar not read ({exc})")
    return analyze_tem_image(img, params, name, exclude_mask=exclude)


# ---------------------------------------------------------------------------
# drawing


def _to_uint8(display: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(display[:: max(1, display.shape[0] // 512), :: max(1, display.shape[1] // 512)],
                           [0.5, 99.5])
    if hi <= lo:
        hi = lo + 1
    return np.clip((display - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)


def draw_overlay(display: np.ndarray, labels: np.ndarray, table: pd.DataFrame,
                 max_side: int = 2048) -> np.ndarray:
    """RGB uint8 picture: outlines (green sized, orange border-cut) with their ids."""
    grey = _to_uint8(np.asarray(display, np.float32))
    scale = min(1.0, max_side / max(grey.shape))
    if scale < 1.0:
        # at least 1 px: a 10 x 100000 strip shrinks to 2048 x 0.2 px otherwise
        size = (max(1, int(grey.shape[1] * scale)), max(1, int(grey.shape[0] * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        lab = cv2.resize(labels.astype(np.int32).astype(np.float32), size,
                         interpolation=cv2.INTER_NEAREST).astype(np.int32)
    else:
        lab = labels
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    thick = max(1, int(round(max(rgb.shape) / 700)))
    border_ids = set(table.loc[table["touches_border"].astype(bool), "vesicle_id"].astype(int)) \
        if len(table) else set()
    font = max(0.4, max(rgb.shape) / 1600)
    for vid in np.unique(lab):
        if vid == 0:
            continue
        m = (lab == vid).astype(np.uint8)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        colour = (255, 150, 0) if vid in border_ids else (0, 230, 0)
        cv2.drawContours(rgb, contours, -1, colour, thick)
        ys, xs = np.nonzero(m)
        cv2.putText(rgb, str(vid), (int(xs.mean()) - 8, int(ys.mean()) + 5), cv2.FONT_HERSHEY_SIMPLEX,
                    font, (255, 255, 0), max(1, thick), cv2.LINE_AA)
    return rgb
