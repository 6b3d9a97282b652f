"""The TEM outline's outer-edge rule (issue 13): a blurred sharp step is sized at its half-height,
a graded stain meniscus at its outer foot (docs/tem.md, "Where the outline lies")."""

import cv2
import numpy as np
import pytest

from exoimage.simulate.tem_fields import _Canvas, _confetti
from exoimage.tem import detect_vesicles
from exoimage.tem.outline import GAUSS_10_90, edge_ramp, image_step_width

PX = 1.0


def _one_vesicle(meniscus_nm, seed):
    """A 240 px field at 1 nm/px with one 90 nm cup-free vesicle (and a little debris)."""
    rng = np.random.default_rng([seed, 13])
    cv = _Canvas(rng, (240, 240), PX)
    cv.background(uneven=0.05, texture=0.02)
    assert cv.vesicle(90.0, cup=0.0, irregularity=0.02, meniscus_nm=meniscus_nm)
    _confetti(cv, debris=40)
    img = cv.render()
    truth = cv.rows[0]
    return img, truth


@pytest.mark.parametrize("meniscus_nm", [0.0, 9.0])
@pytest.mark.parametrize("seed", [1, 2])
def test_diameter_at_the_outer_edge(meniscus_nm, seed):
    img, truth = _one_vesicle(meniscus_nm, seed)
    t = detect_vesicles(img, PX).table
    k = int(np.argmin(np.hypot(t.x_px - truth["x_px"], t.y_px - truth["y_px"])))
    err = t.diameter_nm.iloc[k] / truth["diameter_nm"] - 1
    # at the half-height (without the rule) the meniscus vesicles read 11-13 % small, the sharp ones
    # -0.8 %; the (linear, conservative) rule takes the meniscus ones to -7 % and leaves the sharp ones
    if meniscus_nm:
        assert -0.09 < err < 0.03, (meniscus_nm, seed, err)
    else:
        assert abs(err) < 0.03, (meniscus_nm, seed, err)


def test_ramp_of_a_blurred_step():
    """edge_ramp's 10-90 width of a Gaussian-blurred step disc is GAUSS_10_90 sigma, wherever it is;
    image_step_width of the same image finds that width from its edges alone."""
    import cv2

    yy, xx = np.mgrid[:200, :200]
    disc = (np.hypot(yy - 100, xx - 100) <= 50).astype(np.float32)
    sigma = 2.0
    noise = np.random.default_rng(0).normal(0, 0.01, disc.shape).astype(np.float32)
    img = cv2.GaussianBlur(disc, (0, 0), sigma) + noise
    e = edge_ramp(cv2.GaussianBlur(img, (0, 0), 1.0), (100.0, 100.0), np.full(96, 50.0))
    expect = GAUSS_10_90 * np.hypot(sigma, 1.0)
    assert e["width"] == pytest.approx(expect, rel=0.08)
    assert abs(e["t_half"]) < 0.5
    assert image_step_width(img) == pytest.approx(expect, rel=0.12)


def _lobe_image(lobe_level, gap):
    """A light disc (radius 40 px, level 1) on stain (0) with a darker round lobe (radius 16 px,
    ``lobe_level``) centred on its edge (``gap`` 0) or a separate disc ``gap`` px beyond it."""
    import cv2

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:200, :200].astype(float)
    img = np.zeros((200, 200), np.float32)
    body = np.hypot(yy - 100, xx - 90) < 40
    img[body] = 1.0
    img[(np.hypot(yy - 100, xx - 130 - gap) < 16) & ~body] = lobe_level
    img = cv2.GaussianBlur(img, (0, 0), 1.5) + rng.normal(0, 0.03, img.shape).astype(np.float32)
    return cv2.GaussianBlur(img, (0, 0), 1.0)


@pytest.mark.parametrize("gap", [0, 14])
def test_outline_follows_a_darker_lobe_but_not_a_touching_disc(gap):
    """The outermost edge that closes (outline.LOBE_RULE): a darker lobe on the body's edge is
    inside the outline (outer edge 56 px out along it), a separate disc beyond a stain gap is not."""
    import cv2

    from exoimage.stats import robust_sd
    from exoimage.tem.outline import polar_outlines

    sm = _lobe_image(0.5, gap)
    noise = robust_sd(cv2.Sobel(sm, cv2.CV_32F, 0, 1, ksize=3) / 8)
    radii = polar_outlines(sm, [(100.0, 90.0, 38.0)], +1.0, noise, sigma=1.0)[0][0]
    assert abs(radii[48] - 40) < 2  # the side away from the lobe: the body's edge
    assert abs(radii[0] - (56 if gap == 0 else 40)) < 2.5


def _step_with_tail(inside, tail_amp, tail_px, sigma=1.5, r0=50.0, n=200):
    """A disc of level ``inside`` (radius ``r0``) on a stain at 0.5 just outside it that goes on
    rising by ``tail_amp`` over ``tail_px`` (a halo's slow tail), blurred by ``sigma`` px."""
    yy, xx = np.mgrid[:n, :n].astype(np.float32)
    d = np.hypot(yy - n / 2, xx - n / 2) - r0
    out = 0.5 + tail_amp * (1 - np.exp(-np.clip(d, 0, None) / tail_px))
    img = np.where(d < 0, inside, out).astype(np.float32)
    return cv2.GaussianBlur(cv2.GaussianBlur(img, (0, 0), sigma), (0, 0), 1.0)


@pytest.mark.parametrize("inside", [0.0, 1.0])  # a dark body (monotone into the tail) / a light one
def test_ramp_is_the_step_not_the_halo_tail(inside):
    """The ramp of a sharp step followed by a halo's slow rise is the step's own blurred width (the
    halo tail is not the edge: measured to the window's far level it read the halo's width)."""
    import exoimage.tem.outline as O

    fine = _step_with_tail(inside, 0.4, 30.0)  # the simulator's dark halos: ~1-1.5 radii
    e = edge_ramp(fine, (100.0, 100.0), np.full(96, 50.0))
    expect = GAUSS_10_90 * np.hypot(1.5, 1.0)
    assert abs(e["width"] - expect) < 0.6, (e, expect)
    if inside == 0.0:  # without the slope bound the dark body's ramp runs on into the tail
        old = O.RAMP_SLOPE_FRAC
        try:
            O.RAMP_SLOPE_FRAC = 0.0
            assert edge_ramp(fine, (100.0, 100.0), np.full(96, 50.0))["width"] > expect + 2.0
        finally:
            O.RAMP_SLOPE_FRAC = old


def test_blur_from_sharp_features_not_one_wide_edge():
    """image_step_width reads the sharp debris's blur though a long wide edge (a missed meniscus
    vesicle) gives most of the strong edge points."""
    rng = np.random.default_rng(5)
    n = 400
    yy, xx = np.mgrid[:n, :n].astype(np.float32)
    img = np.zeros((n, n), np.float32)
    d = np.hypot(yy - 200, xx - 120) - 80  # the wide edge: a 12 px linear ramp round a big disc
    img += np.clip(-d / 12.0, 0, 1)
    for _ in range(6):  # small sharp debris (fewer edge points than the wide edge)
        cy, cx = rng.uniform(30, 370), rng.uniform(250, 370)
        img[np.hypot(yy - cy, xx - cx) < rng.uniform(3, 5)] = 1.0
    img = cv2.GaussianBlur(img, (0, 0), 1.5) + rng.normal(0, 0.01, img.shape).astype(np.float32)
    wb = image_step_width(img)
    expect = GAUSS_10_90 * np.hypot(1.5, 1.0)
    assert abs(wb - expect) < 0.15 * expect, (wb, expect)
