"""The fast selections (exoimage.stats.median / robust_sd, the blot module's) give exactly NumPy's /
SciPy's values (speed work, issues 12 and 14)."""

import warnings

import numpy as np
import pytest
from scipy import ndimage as ndi

from exoimage.blot.lanes import _percentile_rows
from exoimage.stats import MAD_TO_SD, median, robust_sd


def stats_robust_sd(x):
    """The definition, with NumPy's median (what robust_sd computed before its fast median)."""
    a = np.asarray(x)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return 0.0
    return float(MAD_TO_SD * np.median(np.abs(a - np.median(a))))


def _arrays(rng, n=400):
    for _ in range(n):
        nd = int(rng.integers(1, 3))
        shape = tuple(int(v) for v in rng.integers(1, 9, size=nd))
        dt = (np.float32, np.float64, np.int64, np.uint16)[int(rng.integers(0, 4))]
        a = rng.normal(size=shape) * 10
        if rng.random() < 0.5:
            a = np.round(a)  # ties
        a = a.astype(dt)
        if a.dtype.kind == "f" and rng.random() < 0.2:
            a.ravel()[rng.integers(0, a.size)] = np.nan
        if a.dtype.kind == "f" and rng.random() < 0.1:
            a.ravel()[rng.integers(0, a.size)] = np.inf
        yield a


def test_median_is_numpys_median():
    rng = np.random.default_rng(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for a in _arrays(rng):
            for ax in [None] + list(range(-a.ndim, a.ndim)):
                m0, m1 = np.median(a, axis=ax), median(a, ax)
                assert type(m0) is type(m1)
                assert np.asarray(m0).dtype == np.asarray(m1).dtype
                assert np.array_equal(m0, m1, equal_nan=True), (a, ax, m0, m1)
    big = rng.normal(size=(301, 400)).astype(np.float32)
    for ax in (None, 0, 1):
        assert np.array_equal(np.median(big, axis=ax), median(big, ax))


def test_robust_sd_is_stats_robust_sd():
    rng = np.random.default_rng(3)
    for a in _arrays(rng):
        assert robust_sd(a) == stats_robust_sd(a) or (np.isnan(robust_sd(a)) and np.isnan(stats_robust_sd(a)))
    assert robust_sd(np.array([])) == 0.0
    x = rng.normal(size=100_001).astype(np.float32)
    assert robust_sd(x) == stats_robust_sd(x)


@pytest.mark.parametrize("k", [1, 3, 15, 25])
def test_percentile_rows_is_scipys_filter(k):
    rng = np.random.default_rng(k)
    a = np.round(rng.normal(size=(37, 53)) * 5)  # ties
    for pct in (5, 20, 50):
        ref = ndi.percentile_filter(a, pct, size=(1, k), mode="nearest")
        assert np.array_equal(_percentile_rows(a, pct, k), ref)
        assert np.array_equal(_percentile_rows(a.T, pct, k).T, ndi.percentile_filter(a, pct, size=(k, 1),
                                                                                      mode="nearest"))
    a[3, 4] = np.nan  # the 2-D filter's own answer where values are not finite
    np.testing.assert_array_equal(_percentile_rows(a, 20, k), ndi.percentile_filter(a, 20, size=(1, k),
                                                                                      mode="nearest"))


def test_shear_is_a_per_pixel_roll():
    from exoimage.blot.lanes import _shear

    rng = np.random.default_rng(5)
    img = rng.normal(size=(60, 41)).astype(np.float32)
    for slope in (0.03, -0.1, 0.7, -2.5):
        for yref in (0.0, 29.4, 80.0):
            shifts = np.rint(-slope * (np.arange(60) - yref)).astype(int)
            idx = (np.arange(41)[None, :] - shifts[:, None]) % 41
            assert np.array_equal(_shear(img, slope, yref), np.take_along_axis(img, idx, axis=1))
    assert _shear(img, 0.0, 3.0) is img


def test_percentiles_from_counts_is_numpys_percentile():
    from exoimage.blot.signal import _percentiles_from_counts

    rng = np.random.default_rng(7)
    checked = 0
    for trial in range(600):
        n = int(rng.integers(2, 5000))
        x = [rng.integers(0, 65536, n), rng.integers(0, 40, n), rng.exponential(300, n),
             rng.integers(0, 256, n)][trial % 4].astype(np.uint16)
        got = _percentiles_from_counts(np.bincount(x), x.size, (0.5, 99.5))
        if got is None:  # numpy is asked where rounding could decide
            continue
        checked += 1
        assert got == tuple(int(v) for v in np.percentile(x, [0.5, 99.5]))
    assert checked > 550


def test_image_warnings_histogram_path_matches_the_general_one():
    from exoimage.blot.signal import image_warnings

    rng = np.random.default_rng(8)
    raw = rng.poisson(800, (300, 200)).astype(np.uint16)
    stretched = (raw.astype(np.int64) * 3 // 2).astype(np.uint16)  # every third value empty
    for d in (raw, stretched):
        # uint32 goes through np.percentile and the masked bincount, uint16 through one histogram
        assert image_warnings(d) == image_warnings(d.astype(np.uint32))
    assert any("histogram has gaps" in str(w) for w in image_warnings(stretched))
    assert not image_warnings(raw)


def test_small_integer_block_means_are_the_float_ones():
    from exoimage.blot.signal import _small

    rng = np.random.default_rng(9)
    for dt, top in ((np.uint16, 65536), (np.uint8, 256), (np.int16, 32767), (np.uint32, 1 << 32)):
        d = rng.integers(0, top, (1203, 901)).astype(dt)
        f = int(np.ceil(1203 / 400))
        h, w = 1203 // f * f, 901 // f * f
        ref = d[:h, :w].astype(np.float64).reshape(h // f, f, w // f, f).mean(axis=(1, 3))
        assert np.array_equal(_small(d), ref)


def test_robust_sd_by_counting_whole_numbers():
    from exoimage.blot.signal import _robust_sd_counts

    rng = np.random.default_rng(10)
    for t in range(500):
        n = int(rng.integers(1, 2000))
        d = [rng.integers(-5, 6, n).astype(float), np.round(rng.normal(0, 30, n)),
             rng.integers(-65535, 65536, n).astype(float), np.round(rng.normal(1000, 3, n)),
             np.full(n, float(rng.integers(-9, 9)))][t % 5]
        assert _robust_sd_counts(d) == stats_robust_sd(d)
    # not whole numbers, not finite, not float64: left to robust_sd
    assert _robust_sd_counts(np.array([0.5, 1.0])) is None
    assert _robust_sd_counts(np.array([np.inf, 1.0])) is None
    assert _robust_sd_counts(np.array([1.0, 2.0], np.float32)) is None
