"""Sharing a run of overlapping bands by the lane's band shape (split Gaussian), not by Gaussian areas."""
import numpy as np
import pytest

from exoimage.blot.bands import band_skew, split_gauss, split_shares
from exoimage.blot.measure import _Reg, split_groups


def _band(x, vol, c, s_top, s_bottom):
    g = split_gauss(x, 1.0, c, s_top, s_bottom)
    return vol * g / g.sum()


def test_band_skew_recovers_the_shape_of_an_isolated_band():
    x = np.arange(60, dtype=float)
    rng = np.random.default_rng(0)
    for ratio in (1.0, 1.5, 0.7):
        y = _band(x, 1e4, 30.3, 5.0 * ratio, 5.0, ) + rng.normal(0, 2.0, len(x))
        assert band_skew(y) == pytest.approx(ratio, rel=0.05)


def test_skewed_pair_is_shared_by_its_shape_not_by_gaussian_areas():
    # two bands trailing towards the wells (s_top/s_bottom 1.6), the lower one's trail under the
    # upper one: the Gaussian model gives the upper band part of the lower one's volume
    x = np.arange(0, 70, dtype=float)
    s, k = 4.0, 1.6
    f = 2 / (1 + k)
    y = _band(x, 1000.0, 28.0, k * f * s, f * s) + _band(x, 1000.0, 40.0, k * f * s, f * s)
    sym = split_shares(x, y, [27.0, 39.0], [s, s], 1.0)
    skew = split_shares(x, y, [27.0, 39.0], [s, s], k)
    assert skew.sum() == pytest.approx(1.0)
    assert abs(skew[0] - 0.5) < 0.01
    assert abs(sym[0] - 0.5) > 2 * abs(skew[0] - 0.5)


def test_symmetric_bands_are_shared_as_gaussians_and_clipped_rows_are_left_out():
    x = np.arange(0, 60, dtype=float)
    y = _band(x, 3000.0, 25.0, 4.0, 4.0) + _band(x, 1000.0, 35.0, 4.0, 4.0)
    fr = split_shares(x, y, [25.0, 35.0], [4.0, 4.0], 1.0)
    np.testing.assert_allclose(fr, [0.75, 0.25], atol=0.005)
    top = y.copy()
    top[22:29] = np.minimum(top[22:29], 0.6 * y.max())  # a clipped (saturated) top
    fr = split_shares(x, top, [25.0, 35.0], [4.0, 4.0], 1.0, valid=top == y)
    # the flanks give the clipped band's model; its clipped rows still go to it
    assert fr[0] > 0.7


def _reg(a, b, cluster=None, y=np.nan, sigma=np.nan):
    return _Reg(a, b, a, b, y, sigma, np.nan, None, cluster, 1.0)


def test_a_gap_band_touching_two_clusters_joins_them_and_smears_are_not_shared():
    regs = [_reg(0, 9, 1, 105, 2), _reg(10, 19, 1, 115, 2), _reg(20, 29, None, 125, 2),
            _reg(30, 39, 2, 135, 2), _reg(40, 49, 2, 145, 2), _reg(60, 69, None, 165, 2)]
    assert split_groups(regs, 50) == [[0, 1, 2, 3, 4]]
    # a free row between the gap band and the next cluster: two groups
    regs[3] = _reg(31, 39, 2, 135, 2)
    assert split_groups(regs, 50) == [[0, 1], [3, 4]]
    # a member taller than the ball radius (a smear) or without a fitted centre: not shared out
    assert split_groups(regs, 9) == []
    regs[0] = _reg(0, 9, 1)
    assert split_groups(regs, 50) == [[3, 4]]
