"""Granular caps (issue 13): an outline traced round granules sticking out of a vesicle is cut back
to its robust fit; a darker lobe of the particle is not (exoimage.tem.outline.cap_trim)."""

import numpy as np

from exoimage.tem.outline import N_ANGLES, cap_trim, robust_fourier_fit

R, CY, CX = 30.0, 64.0, 64.0
THETA = np.linspace(0, 2 * np.pi, N_ANGLES, endpoint=False)
ARC = np.abs(np.angle(np.exp(1j * (THETA - 1.0)))) < np.deg2rad(50)  # a 100 degree arc round 1 rad


def _field(extra):
    """A light disc (1.0) of radius R on stain (0.0), plus ``extra(rho, th)``, a little noise."""
    yy, xx = np.mgrid[0:128, 0:128].astype(float)
    rho, th = np.hypot(yy - CY, xx - CX), np.arctan2(yy - CY, xx - CX)
    img = np.clip(R + 0.5 - rho, 0, 1) + extra(rho, th)
    return (img + np.random.default_rng(0).normal(0, 0.03, img.shape)).astype(np.float32)


def _outer_radii(depth):
    r = np.full(N_ANGLES, R)
    r[ARC] = R * (1 + depth)
    return r


def test_robust_fit_ignores_a_cap():
    r = _outer_radii(0.25) + 0.3 * np.cos(2 * THETA)
    fit = robust_fourier_fit(r[None], min_scale=0.3)[0]
    assert np.max(np.abs(fit[ARC] - (R + 0.3 * np.cos(2 * THETA[ARC])))) < 0.02 * R


def test_granular_cap_cut_back():
    rng = np.random.default_rng(1)
    pos = [(a, R + rng.uniform(0.5, 6.0)) for a in rng.uniform(0.2, 1.8, 40)]

    yy, xx = np.mgrid[0:128, 0:128].astype(float)

    def granules(rho, th):  # bright granules, brighter than the body, in a band outside the arc
        out = np.zeros_like(rho)
        for a, rr in pos:
            out += 1.8 * (np.hypot(yy - CY - rr * np.sin(a), xx - CX - rr * np.cos(a)) < 2.0)
        return out

    img = _field(granules)
    traced = _outer_radii(0.28)
    got = cap_trim(img, (CY, CX), traced)
    assert np.median(np.abs(got[ARC] / R - 1)) < 0.04  # was 0.28 out
    assert np.allclose(got[~ARC], traced[~ARC])


def test_darker_lobe_kept():
    def lobe(rho, th):
        inarc = np.abs(np.angle(np.exp(1j * (th - 1.0)))) < np.deg2rad(50)
        return 0.5 * ((rho > R + 0.5) & (rho < R * 1.28) & inarc)

    img = _field(lobe)
    traced = _outer_radii(0.28)
    assert np.allclose(cap_trim(img, (CY, CX), traced), traced)


def test_round_outline_unchanged():
    img = _field(lambda rho, th: 0 * rho)
    traced = R + 0.4 * np.cos(3 * THETA)
    assert np.allclose(cap_trim(img, (CY, CX), traced), traced)
