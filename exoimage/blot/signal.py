"""Turn raw blot pixels into a linear "more protein = larger number" signal, with QC.

Functions here work on plain numpy arrays so that they can be tested with
hand-made fixtures.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..stats import MAD_TO_SD, median, robust_sd  # noqa: F401 (median, robust_sd: used by lanes/detect/background)
from ..warning_codes import coded

__all__ = ["POLARITIES", "detect_polarity", "to_signal", "detect_ceiling", "clipped_masks", "histogram_gap_fraction",
           "image_warnings", "pixel_noise_sd", "median", "robust_sd"]


def find_peaks(x, *args, **kwargs):
    """``scipy.signal.find_peaks``, with scipy.signal imported on first use: its import (it brings
    scipy.optimize and scipy.stats) costs ~0.4-0.7 s CPU, which a run's main process and a worker
    that analyses no blot then never pay."""
    from scipy.signal import find_peaks as _find_peaks

    return _find_peaks(x, *args, **kwargs)


def peak_widths(x, peaks, *args, **kwargs):
    """``scipy.signal.peak_widths``, imported on first use (see :func:`find_peaks`)."""
    from scipy.signal import peak_widths as _peak_widths

    return _peak_widths(x, peaks, *args, **kwargs)

#: ``light-bands``: bands are brighter (larger raw values) than the background
#: (chemiluminescence, fluorescence, stained gels); ``dark-bands``: bands are
#: darker (film, colorimetric scans).
POLARITIES = ("light-bands", "dark-bands")


def _small(data: np.ndarray, max_side: int = 400) -> np.ndarray:
    """Block-mean reduction of a 2-D array to at most ``max_side`` px per side (float64)."""
    f = max(1, int(np.ceil(max(data.shape) / max_side)))
    h, w = data.shape[0] // f * f, data.shape[1] // f * f
    if data.dtype.kind in "ui" and data.dtype.itemsize <= 4 and f > 1:
        # integers: the block sums are exact in int64 (and so in any float64 order), so adding the
        # block's rows, then its columns, one slice at a time gives the mean's values 6x faster
        r = data[:h, :w].reshape(h // f, f, w)
        acc = r[:, 0].astype(np.int64)
        for i in range(1, f):
            acc += r[:, i]
        c = acc.reshape(h // f, w // f, f)
        tot = c[:, :, 0].copy()
        for i in range(1, f):
            tot += c[:, :, i]
        return tot / float(f * f)
    return data[:h, :w].astype(np.float64).reshape(h // f, f, w // f, f).mean(axis=(1, 3))


#: structure wider than this fraction of the image's longer side is background (gradients, blotches,
#: a smear row's broad rise), removed before the tails vote: bands and lanes are narrower. Every
#: fraction from 0.1 to 0.4 decides the same (simulated blots: 0 wrong of 1300, the tails'
#: smallest ratio 1.24 at 0.1, 2.23 at 0.2, 1.64 at 0.4; real Kodak, NEB gel, RhoA, sample blots:
#: 0 wrong, smallest 2.95); below 0.1 flat-topped saturated bands ring and lose their tail (50-84 wrong)
POLARITY_BACKGROUND_FRAC = 0.2
#: the background is smoothed on a copy reduced to about this many px per side (its scale is a
#: fifth of the image: the reduction changes nothing that is kept, and costs a thousandth)
POLARITY_BACKGROUND_SIDE = 64


def detect_polarity(data: np.ndarray, white_is_zero: bool = False) -> str:
    """Decide whether bands are lighter or darker than the background.

    Parameters
    ----------
    data : ndarray
        Raw 2-D pixel values.
    white_is_zero : bool
        The TIFF said WhiteIsZero: raw values are detector counts (signal), so
        bands are the large raw values whatever a viewer shows.

    Returns
    -------
    str
        ``'light-bands'`` or ``'dark-bands'``. Bands are on the side of the longer
        tail (0.5th/99.5th percentiles about the median) of a block-averaged copy (so
        that single hot pixels do not vote) with its background removed: structure
        wider than :data:`POLARITY_BACKGROUND_FRAC` of the image (a gradient, blotches,
        a smear's broad rise shift the median and lengthen either tail). Linear in the
        data: an offset or a gain changes nothing.
    """
    if white_is_zero:
        return "light-bands"
    s = _small(data)
    r = s - _large_scale(s, POLARITY_BACKGROUND_FRAC)
    lo, med, hi = np.percentile(r, [0.5, 50, 99.5])
    return "light-bands" if (hi - med) >= (med - lo) else "dark-bands"


def _large_scale(s: np.ndarray, frac: float) -> np.ndarray:
    """``s`` smoothed by a Gaussian of SD ``frac`` x its longer side (reflected at the edges),
    computed on a block-mean copy of about :data:`POLARITY_BACKGROUND_SIDE` px per side and
    interpolated back (linear) to ``s``'s shape."""
    k = max(1, int(max(s.shape) // POLARITY_BACKGROUND_SIDE))
    h, w = s.shape[0] // k * k, s.shape[1] // k * k
    if k == 1 or h < k or w < k:
        return ndi.gaussian_filter(s, frac * max(s.shape), mode="nearest")
    c = s[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3))
    g = ndi.gaussian_filter(c, frac * max(c.shape), mode="nearest")
    # block centres at (i + 0.5) k - 0.5 in s's pixels
    yi = np.clip((np.arange(s.shape[0]) + 0.5) / k - 0.5, 0, g.shape[0] - 1)
    xi = np.clip((np.arange(s.shape[1]) + 0.5) / k - 0.5, 0, g.shape[1] - 1)
    return ndi.map_coordinates(g, np.meshgrid(yi, xi, indexing="ij"), order=1, mode="nearest")


def _dtype_top(data: np.ndarray) -> float:
    if data.dtype.kind in "ui":
        return float(np.iinfo(data.dtype).max)
    return float(np.nanmax(data))


def to_signal(data: np.ndarray, polarity: str) -> np.ndarray:
    """Linear signal (float64): raw values for light bands, ``dtype max - raw`` for dark bands."""
    if polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {POLARITIES}, got {polarity!r}")
    if polarity == "light-bands":
        return data.astype(np.float64)
    return _dtype_top(data) - data.astype(np.float64)


def detect_ceiling(data: np.ndarray, polarity: str = "light-bands", *, min_pileup: int = 4,
                   pileup_factor: float = 5.0) -> tuple[float | None, str]:
    """Raw value at which the detector clips, and how it was found.

    For light bands the ceiling is the dtype maximum when any pixel reaches it;
    otherwise the data maximum when pixels pile up there (a 12- or 14-bit camera
    stored in 16 bits clips at 4095 or 16383): at least ``min_pileup`` pixels at
    the maximum and ``pileup_factor`` times more than the mean count of each of
    the 16 values just below. For dark bands the same is done at the bottom
    (floor 0 or a pile-up at the minimum).

    Returns
    -------
    (value, source)
        ``value`` in raw units (None if nothing clips) and ``'dtype'``,
        ``'histogram'`` or ``'none'``.
    """
    flat = data.ravel()
    dark = polarity == "dark-bands"
    ext = float(flat.min() if dark else flat.max())
    if data.dtype.kind in "ui":
        limit = 0.0 if dark else float(np.iinfo(data.dtype).max)
        if (dark and np.iinfo(data.dtype).min == 0 and ext <= 0) or (not dark and ext >= limit):
            return limit, "dtype"
    n_at = int(np.count_nonzero(flat == ext))
    if n_at < min_pileup:
        return None, "none"
    if data.dtype.kind in "ui":
        if dark:
            near = flat[(flat > ext) & (flat <= ext + 16)]
        else:
            near = flat[(flat < ext) & (flat >= ext - 16)]
        per_value = near.size / 16.0
    else:
        span = float(flat.max() - flat.min()) or 1.0
        d = span / 4096
        near = flat[(np.abs(flat - ext) > 0) & (np.abs(flat - ext) <= 16 * d)]
        per_value = near.size / 16.0
    if n_at >= pileup_factor * per_value + min_pileup:
        return ext, "histogram"
    return None, "none"


def clipped_masks(data: np.ndarray, ceiling: float | None, polarity: str) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of (solid clipped pixels, isolated clipped pixels).

    A pixel at the ceiling is *solid* if it survives a 3x3 morphological
    opening of the clipped mask (it belongs to a clipped area of at least 3x3
    px: a saturated band); the rest are hot pixels or dust specks.
    """
    if ceiling is None:
        z = np.zeros(data.shape, bool)
        return z, z
    mask = (data <= ceiling) if polarity == "dark-bands" else (data >= ceiling)
    if not mask.any():
        return mask, mask.copy()
    import cv2

    k = np.ones((3, 3), np.uint8)
    solid = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, k).astype(bool)
    return solid, mask & ~solid


#: :func:`_robust_sd_counts` histograms values within this many counts of the smallest
_COUNTS_SPAN = 1 << 20


def _robust_sd_counts(d: np.ndarray) -> float | None:
    """:func:`robust_sd` of whole-number float64 values by counting instead of partitioning
    (the differences of an integer image: few distinct values, which numpy's partition handles
    slowly): the order statistics from a histogram, the median of two middle values and the
    products as numpy forms them (whole and half numbers far below 2**52 are exact). None
    when ``d`` is not such an array (not float64, not finite, not whole, or spread wider than
    :data:`_COUNTS_SPAN`)."""
    if d.dtype != np.float64 or d.size == 0:
        return None
    lo, hi = float(d.min()), float(d.max())
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi - lo > _COUNTS_SPAN:
        return None
    v = d.ravel()
    if not np.array_equal(v, np.rint(v)):
        return None
    iv = (v - lo).astype(np.int64)
    n = iv.size

    def middle(cum, scale):
        # numpy's median of the values cum counts (in units of 1 / scale): the middle one, or
        # the mean of the two middle ones (their sum halved)
        k = n // 2
        b = float(np.searchsorted(cum, k, side="right")) / scale
        if n % 2:
            return b
        return (float(np.searchsorted(cum, k - 1, side="right")) / scale + b) / 2

    med = middle(np.cumsum(np.bincount(iv)), 1.0) + lo
    # |v - med| doubled is a whole number even when med is a half number
    dev2 = np.abs(2 * iv - int(round(2 * (med - lo))))
    mad = middle(np.cumsum(np.bincount(dev2)), 2.0)
    return float(MAD_TO_SD * np.float64(mad))


def pixel_noise_sd(signal: np.ndarray) -> float:
    """Robust per-pixel noise SD: MAD of horizontal neighbour differences / sqrt(2)."""
    h, w = signal.shape
    # at most ~400 rows are used: only those are differenced
    step = max(1, h // 400) if h * (w - 1) > 400_000 else 1
    d = np.diff(signal[::step], axis=1)
    sd = _robust_sd_counts(d)
    sd = (robust_sd(d) if sd is None else sd) / np.sqrt(2)
    if sd <= 0:
        sd = float(np.std(d)) / np.sqrt(2)
    return float(max(sd, 1e-12))


#: a value "should occur" where the histogram around it holds at least this many pixels per value:
#: a Poisson count with mean 5 is zero with probability e^-5 < 1 %, so an empty value there is a
#: gap and not chance (the sparse bright tail of a raw capture holds 0-2 pixels per value)
GAP_DENSE_COUNT = 5.0
#: the neighbourhood of values the expected count is averaged over (a stretch by k leaves k-1 of
#: every k values empty: any k up to ~7 leaves the window mean as dense as the unstretched count)
GAP_WINDOW = 15
#: a judgement needs this many dense values (fewer: too few values to tell a pattern)
GAP_MIN_DENSE_VALUES = 32
#: stretched: more than this fraction of the dense values never occur (a 1.25x stretch empties 20 %)
GAP_EMPTY_FRAC = 0.2
#: most histogram bins counted: a 16-bit range (larger ranges only up to a quarter of the pixel count)
GAP_MAX_BINS = 1 << 16


def histogram_gap_fraction(counts: np.ndarray) -> tuple[float, int]:
    """(fraction of empty values, number of values judged) where the histogram is dense.

    A value is judged only where the mean count of the ``GAP_WINDOW`` values around it is at
    least ``GAP_DENSE_COUNT`` (every value is expected to occur there); empty values in the sparse
    tails of an unadjusted image are chance, not a stretch.
    """
    c = np.asarray(counts, float)
    if not len(c):
        return 0.0, 0
    local = ndi.uniform_filter1d(c, GAP_WINDOW, mode="constant")
    dense = local >= GAP_DENSE_COUNT
    n = int(dense.sum())
    if not n:
        return 0.0, 0
    return float(np.count_nonzero(c[dense] == 0) / n), n


def _percentiles_from_counts(counts: np.ndarray, n: int, qs) -> tuple[int, ...] | None:
    """``int(np.percentile(x, q))`` for each ``q`` of non-negative integers ``x`` (``n`` values)
    from their histogram ``counts`` (``np.bincount(x)``): numpy's linear estimate between the
    order statistics at ``floor(q/100 (n-1))`` and the next, taken by its own formula. None (ask
    numpy) where rounding could make the answer differ from numpy's: an index within 1e-6 of a
    whole number (the floor) or an estimate within 1e-6 of one (its integer part)."""
    cum = np.cumsum(counts)
    out = []
    for q in qs:
        idx = q / 100.0 * (n - 1)
        k = int(np.floor(idx))
        t = idx - k
        if min(t, 1.0 - t) < 1e-6 or k + 1 >= n:
            return None
        # the k-th and (k+1)-th smallest values (0-based): the first values whose cumulative
        # count exceeds k and k + 1
        a, b = (int(v) for v in np.searchsorted(cum, [k, k + 1], side="right"))
        if a == b:
            out.append(a)
            continue
        v = a + (b - a) * t if t < 0.5 else b - (b - a) * (1.0 - t)
        if abs(v - round(v)) < 1e-6:
            return None
        out.append(int(v))
    return tuple(out)


def image_warnings(data: np.ndarray, *, file_format: str = "array", was_rgb: bool = False,
                   polarity: str = "light-bands") -> list[str]:
    """Warnings about data that is not raw linear signal (quantities are still reported).

    Each is a :class:`~exoimage.warning_codes.CodedWarning` whose code is
    registered with ``lossy=True`` (the QC check "raw linear data" reads the code).

    8-bit data, JPEG, RGB, and signs of contrast adjustment: a histogram with
    regularly missing values (stretched) or a large fraction of pixels at both
    the black and white ends (clipped by display scaling).
    """
    out = []
    if data.dtype == np.uint8 or data.dtype == np.int8:
        out.append(coded("eight_bit", "8-bit image: limited dynamic range; quantify the imager's 16-bit raw "
                                      "file if it exists"))
    if file_format == "jpeg":
        out.append(coded("jpeg", "JPEG: lossy compression changed the pixel values; results are approximate"))
    if was_rgb:
        out.append(coded("rgb_converted", "RGB image converted to grey: probably an export, not raw data"))
    if data.dtype.kind in "ui":
        flat = data.ravel()
        full = np.bincount(flat) if data.dtype.kind == "u" and data.dtype.itemsize <= 2 else None
        lo_hi = _percentiles_from_counts(full, flat.size, (0.5, 99.5)) if full is not None else None
        if lo_hi is None:
            lo, hi = np.percentile(flat, [0.5, 99.5])
            lo, hi = int(lo), int(hi)
        else:
            lo, hi = lo_hi
        rng = hi - lo + 1
        # the histogram's size is bounded (a uint32 image spanning 0..2e9 would otherwise ask for a
        # 16 GB bincount); only its dense part is judged, so a wide sparse tail does not matter
        if 32 <= rng <= max(GAP_MAX_BINS, flat.size // 4):
            if full is not None:
                counts = np.zeros(rng, np.int64)
                part = full[lo:hi + 1]
                counts[:len(part)] = part
            else:
                counts = np.bincount(flat[(flat >= lo) & (flat <= hi)].astype(np.int64) - lo, minlength=rng)
            empty, n_dense = histogram_gap_fraction(counts)
            if n_dense >= GAP_MIN_DENSE_VALUES and empty > GAP_EMPTY_FRAC:
                out.append(coded("histogram_gaps",
                                 f"histogram has gaps ({100 * empty:.0f}% of the values in its dense part never "
                                 f"occur): contrast was probably stretched"))
        top = np.iinfo(data.dtype).max
        if full is not None:
            f_top = (int(full[top]) if top < len(full) else 0) / flat.size
            f_bot = int(full[0]) / flat.size
        else:
            f_top = np.count_nonzero(flat == top) / flat.size
            f_bot = np.count_nonzero(flat == 0) / flat.size
        if f_top > 0.005 and f_bot > 0.005:
            out.append(coded("display_clipped",
                             f"{100 * f_bot:.1f}% of pixels at 0 and {100 * f_top:.1f}% at {top}: "
                             f"display levels were probably adjusted (clipped both ends)"))
    return out
