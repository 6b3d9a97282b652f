"""Speed-ups of band finding that must not change a band: rows covered known before the fits
(``band_cover``) and fits reused on identical inputs (``fit_cache``)."""

import numpy as np

from exoimage.blot import bands as B
from exoimage.blot.bands import band_cover, find_bands, fit_cache


def _g(x, a, c, s):
    return a * np.exp(-0.5 * ((x - c) / s) ** 2)


def _ladder(seed):
    # runs of close bands of random heights and spacings (shoulders, blends, gaps), as in a ladder
    rng = np.random.default_rng(seed)
    x = np.arange(400, dtype=float)
    prof = np.zeros_like(x)
    c = 30.0
    while c < 370:
        prof += _g(x, rng.uniform(300, 8000), c, rng.uniform(3.5, 7.0))
        c += rng.uniform(8, 40)
    return prof + rng.normal(0, 10, len(x))


def _covered(fits, n):
    m = np.zeros(n, bool)
    for f in fits:
        m[f.top:f.bottom + 1] = True
    return m


def test_band_cover_is_the_rows_the_bands_cover():
    n_hidden = n_split = 0
    for seed in range(4):
        prof = _ladder(seed)
        for hidden in (False, True, np.array([60.0, 150.0, 240.0])):
            kw = dict(min_snr=4.0, hidden=hidden)
            fits = find_bands(prof, 10.0, **kw)
            assert np.array_equal(band_cover(prof, 10.0, **kw), _covered(fits, len(prof)))
            n_hidden += sum(f.hidden for f in fits)
            n_split += sum(f.deconvolved for f in fits)
    # the profiles exercise what could break the tiling: hidden bands and split clusters
    assert n_hidden > 0 and n_split > 0
    assert not band_cover(np.zeros(100), 10.0).any()


def test_fits_reused_in_a_fit_cache_block_are_the_same_fits(monkeypatch):
    prof = _ladder(3)
    fresh = find_bands(prof, 10.0, hidden=True)
    calls = []
    uncached = B._fit_cluster_uncached
    monkeypatch.setattr(B, "_fit_cluster_uncached", lambda *a: calls.append(1) or uncached(*a))
    with fit_cache():
        first = find_bands(prof, 10.0, hidden=True)
        n_first = len(calls)
        again = find_bands(prof, 10.0, hidden=True)
    assert n_first > 0 and len(calls) == n_first  # the second search fitted nothing anew
    assert first == fresh and again == fresh
    assert B._FITS.get() is None  # nothing kept after the block


def test_direct_solvers_give_least_squares_own_fits(monkeypatch):
    # the cluster fits call MINPACK / trust-region-reflective as least_squares does, without its
    # wrapping: every fit of the ladder profiles (LM, and the bounded fallback) is the same numbers
    from scipy.optimize import least_squares

    def via_least_squares_lm(fun, jac, p0, jac_cols=None):
        r = least_squares(fun, p0, jac=jac, method="lm", max_nfev=B._LM_NFEV, **B._LSQ)
        return r.x, bool(r.success)

    def via_least_squares_trf(fun, jac, p0, lo, hi):
        return least_squares(fun, p0, jac=jac, bounds=(lo, hi), max_nfev=B._TRF_NFEV, **B._LSQ).x

    profs = [_ladder(s) for s in range(3)]
    fast = [find_bands(p, 10.0, hidden=True) for p in profs]
    n_trf = []
    solve_trf = B._solve_trf
    monkeypatch.setattr(B, "_solve_trf", lambda *a: n_trf.append(1) or solve_trf(*a))
    assert [find_bands(p, 10.0, hidden=True) for p in profs] == fast
    monkeypatch.setattr(B, "_solve_lm", via_least_squares_lm)
    monkeypatch.setattr(B, "_solve_trf", via_least_squares_trf)
    assert [find_bands(p, 10.0, hidden=True) for p in profs] == fast
    assert len(n_trf) > 0  # the bounded fallback was exercised too


def test_row_median_is_numpys_median():
    from exoimage.blot.background import row_median

    rng = np.random.default_rng(0)
    for dtype in (np.uint8, np.uint16, np.float32, np.float64):
        for k in range(1, 8):
            v = np.clip(rng.normal(100, 40, (300, k)), 0, None).astype(dtype)
            v[:20] = v[:20, :1]  # ties
            want = np.median(v, axis=1).astype(np.float64)
            got = row_median(v)
            assert got.dtype == want.dtype and np.array_equal(got, want)
    v = rng.normal(size=(30, 3))
    v[4, 1] = np.nan
    assert np.array_equal(row_median(v), np.median(v, axis=1), equal_nan=True)
