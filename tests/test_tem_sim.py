"""The issue-13 TEM field scenarios, their truth, the benchmark's matcher and the textbook baseline."""

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from exoimage.simulate.baselines import textbook_tem
from exoimage.simulate.tem_fields import (FIELD_SCENARIOS, MATCH_RADIUS_FRAC, TRUTH_COLUMNS, field_shape,
                                          match_detections, simulate_field)

#: a small field per scenario: big enough for a few whole vesicles of its size range
SMALL = {"small_evs": (1.0, 260), "dense": (2.0, 300), "wide_range": (2.4, 400), "dark_grain": (1.0, 360),
         "granular_caps": (1.0, 260), "stain_pools": (0.7, 360), "lobed": (1.7, 360), "confounders": (1.0, 360),
         "meniscus": (1.0, 260)}


def _field(sc, seed=1):
    px, side = SMALL[sc]
    return simulate_field(sc, px, seed=seed, shape=(side, side))


def test_every_scenario_has_a_small_field():
    assert set(SMALL) == set(FIELD_SCENARIOS)


@pytest.mark.parametrize("sc", sorted(FIELD_SCENARIOS))
def test_deterministic_with_a_seed(sc):
    a, ta = _field(sc, seed=3)
    b, tb = _field(sc, seed=3)
    c, _ = _field(sc, seed=4)
    assert a.dtype == np.uint16 and a.shape == (SMALL[sc][1],) * 2
    assert np.array_equal(a, b)
    pd.testing.assert_frame_equal(ta, tb)
    assert not np.array_equal(a, c)
    assert list(ta.columns) == TRUTH_COLUMNS
    assert ta.is_vesicle.any(), "no vesicle in the field"


def _radial_profile(img, row, lo=0.5, hi=1.5, step=0.025):
    """Azimuthal mean of the image in rings of relative radius rho/R around a truth vesicle."""
    r = row.diameter_nm / row.pixel_size_nm / 2
    ext = int(r * hi) + 3
    y0, x0 = max(0, int(row.y_px) - ext), max(0, int(row.x_px) - ext)
    sub = img[y0:int(row.y_px) + ext + 1, x0:int(row.x_px) + ext + 1].astype(float)
    yy, xx = np.mgrid[y0:y0 + sub.shape[0], x0:x0 + sub.shape[1]]
    rho = np.hypot(yy - row.y_px, xx - row.x_px) / r
    bins = np.arange(lo, hi, step)
    prof = [sub[(rho >= b) & (rho < b + step)] for b in bins]
    keep = np.array([p.size > 0 for p in prof])  # rings cut by the border are left out
    return (bins + step)[keep], np.array([p.mean() for p in prof if p.size])


def _edge_at(img, row):
    """Relative radius of the steepest fall of the (lightly smoothed) radial profile."""
    b, prof = _radial_profile(img, row)
    g = np.diff(ndi.gaussian_filter1d(prof, 1.0))
    return b[np.argmin(g)]


@pytest.mark.parametrize("sc", [s for s in sorted(FIELD_SCENARIOS) if s not in ("lobed", "meniscus")])
def test_truth_outline_is_the_drawn_outer_edge(sc):
    """At each truth vesicle the image falls most steeply at the truth radius (light and dark
    polarity alike: both have their lighter body or rim inside and darker stain just outside), and
    at a place where truth says there is no vesicle it does not."""
    img, truth = _field(sc, seed=2)
    v = truth[truth.is_vesicle & ~truth.touches_border]
    assert len(v) >= 2
    edges = np.array([_edge_at(img, row) for row in v.itertuples()])
    assert abs(np.median(edges) - 1.0) <= 0.04, edges
    assert np.mean(np.abs(edges - 1.0) <= 0.1) >= 0.75, edges


def test_meniscus_truth_is_the_outer_foot():
    """A meniscus vesicle's truth outline is the ramp's outer foot: the steepest fall (its middle)
    lies inside it, by about half the 5-10 nm meniscus (4-8 % of a 30 nm radius)."""
    img, truth = _field("meniscus", seed=2)
    v = truth[truth.is_vesicle & ~truth.touches_border]
    assert len(v) >= 2
    edges = np.array([_edge_at(img, row) for row in v.itertuples()])
    assert np.median(edges) < 0.97, edges
    assert np.median(edges) > 0.75, edges


@pytest.mark.parametrize("sc", ["small_evs", "dark_grain", "stain_pools", "wide_range"])
def test_polarity_of_truth_matches_the_image(sc):
    """Light vesicles: the ring just inside the edge is lighter than the ring just outside; dark
    vesicles: the body is darker than the field's median stain."""
    img, truth = _field(sc, seed=2)
    med = float(np.median(img))
    v = truth[truth.is_vesicle & ~truth.touches_border]
    for row in v.itertuples():
        b, prof = _radial_profile(img, row, 0.0, 1.4, 0.05)
        inner = prof[(b > 0.75) & (b <= 0.95)].mean()
        outer = prof[(b > 1.05) & (b <= 1.25)].mean()
        if row.polarity == "light":
            assert inner > outer, (sc, row)
        else:
            assert prof[b <= 0.7].mean() < med, (sc, row)
    assert (v.polarity == "dark").all() == (sc == "dark_grain")


def test_faint_vesicles_inside_stain_pools():
    img, truth = simulate_field("stain_pools", 0.7, seed=5, shape=(500, 500))
    v = truth[truth.is_vesicle & ~truth.touches_border]
    assert v.in_pool.any() and (~v.in_pool).any()

    def step(row):
        b, prof = _radial_profile(img, row, 0.0, 1.4, 0.05)
        return prof[(b > 0.75) & (b <= 0.95)].mean() - prof[(b > 1.05) & (b <= 1.25)].mean()

    assert np.median([step(r) for r in v[v.in_pool].itertuples()]) < \
        np.median([step(r) for r in v[~v.in_pool].itertuples()])


def test_size_ranges_and_confounders():
    _, t = simulate_field("small_evs", 2.0, seed=1, quick=True)
    d = t[t.is_vesicle].diameter_nm
    assert d.min() >= 30 and d.max() <= 62
    _, t = simulate_field("dense", 3.0, seed=1, quick=True)
    assert t.is_vesicle.sum() >= 200
    _, t = simulate_field("confounders", 1.0, seed=1, quick=True)
    kinds = set(t.kind[~t.is_vesicle])
    assert {"bar", "text", "crystal", "precipitate", "debris"} <= kinds
    assert t[t.kind == "debris"].diameter_nm.max() < 25
    _, t = simulate_field("granular_caps", 1.0, seed=1, quick=True)
    assert (t.kind == "granular_patch").any() and not t[t.kind == "granular_patch"].is_vesicle.any()
    _, t = simulate_field("wide_range", 2.4, seed=1, quick=True)
    d = t[t.is_vesicle].diameter_nm
    assert d.min() < 60 and d.max() > 250
    _, t = simulate_field("lobed", 1.7, seed=1, quick=True)
    d = t[t.is_vesicle].diameter_nm
    assert d.min() >= 120 and d.max() <= 215


def test_field_shape_clamped():
    assert field_shape("dense", 2.0) == (800, 800)
    assert field_shape("small_evs", 0.5)[0] <= 1400
    with pytest.raises(ValueError, match="unknown scenario"):
        simulate_field("nope", 1.0)


# ---------------------------------------------------------------------------------------------
# the benchmark's matcher


def _truth():
    return pd.DataFrame(dict(
        object_id=[1, 2, 3, 4], kind=["vesicle", "vesicle", "vesicle", "crystal"],
        is_vesicle=[True, True, True, False], x_px=[50.0, 150.0, 0.0, 100.0], y_px=[50.0, 60.0, 100.0, 150.0],
        diameter_nm=[40.0, 60.0, 50.0, 40.0], touches_border=[False, False, True, False],
        polarity="light", in_pool=False, pixel_size_nm=1.0))


def _found(t, dx=0.0, scale=1.0):
    v = t[t.is_vesicle]
    return pd.DataFrame(dict(x_px=v.x_px + dx, y_px=v.y_px, diameter_nm=v.diameter_nm * scale,
                             touches_border=v.touches_border))


def test_matcher_perfect_list_scores_one():
    t = _truth()
    m = match_detections(_found(t), t)
    assert (m["tp"], m["fp"], m["fn"], m["f1"]) == (2, 0, 0, 1.0)  # the border vesicle is out of play
    assert np.allclose(m["errors"], 0.0)
    m = match_detections(_found(t, scale=1.1), t)
    assert np.allclose(m["errors"], 0.1)


def test_matcher_shifted_list_scores_lower():
    t = _truth()
    # within 0.5 x radius of the 40 nm vesicle (r = 20 px -> 10 px): still matched
    assert match_detections(_found(t, dx=9.0), t)["f1"] == 1.0
    m = match_detections(_found(t, dx=12.0), t)  # beyond 10 px for the 40 nm one, within 15 for the 60 nm
    assert (m["tp"], m["fp"], m["fn"]) == (1, 1, 1) and m["f1"] < 1.0
    m = match_detections(_found(t, dx=20.0), t)
    assert m["tp"] == 0 and m["f1"] == 0.0
    assert MATCH_RADIUS_FRAC == 0.5


def test_matcher_one_to_one_and_false_positives_by_kind():
    t = _truth()
    f = _found(t)
    extra = pd.DataFrame(dict(x_px=[51.0, 101.0], y_px=[50.0, 149.0], diameter_nm=[40.0, 40.0],
                              touches_border=[False, False]))
    m = match_detections(pd.concat([f, extra], ignore_index=True), t)
    assert m["tp"] == 2 and m["fp"] == 2  # a duplicate on vesicle 1 and one on the crystal
    assert m["fp_on"] == {"crystal": 1}
    assert match_detections(f.iloc[:0], t)["fn"] == 2


def test_matcher_hungarian_beats_greedy():
    """Two vesicles, two detections: greedy closest-first pairs the middle detection with the
    wrong vesicle and loses one; the assignment finds both."""
    t = pd.DataFrame(dict(object_id=[1, 2], kind="vesicle", is_vesicle=True, x_px=[100.0, 118.0],
                          y_px=[100.0, 100.0], diameter_nm=[40.0, 40.0], touches_border=False,
                          polarity="light", in_pool=False, pixel_size_nm=1.0))
    f = pd.DataFrame(dict(x_px=[108.5, 91.0], y_px=[100.0, 100.0], diameter_nm=40.0, touches_border=False))
    assert match_detections(f, t)["tp"] == 2


def test_textbook_baseline_finds_clear_discs():
    img, truth = simulate_field("small_evs", 2.0, seed=1, quick=True)
    m = match_detections(textbook_tem(img, 2.0), truth)
    assert m["recall"] >= 0.8 and abs(np.median(m["errors"])) < 0.05
    assert match_detections(textbook_tem(img, 2.0, polarity="dark"), truth)["recall"] < 0.5


def test_lobed_truth_includes_the_lobe():
    """The union outline's area and centroid (a round body of radius 40 px with a lobe of 16 px
    just touching it outside: area pi (40^2 + 16^2), centroid pulled towards the lobe)."""
    from exoimage.simulate.tem_fields import _Canvas

    cv = _Canvas(np.random.default_rng(0), (8, 8), 1.0)
    area, ty, tx = cv._union_stats(100.0, 100.0, lambda t: np.full(np.shape(t), 40.0), (0.0, 56.0, 16.0), 72.0)
    assert area == pytest.approx(np.pi * (40 ** 2 + 16 ** 2), rel=0.01)
    assert tx == pytest.approx(100 + 56 * 16 ** 2 / (40 ** 2 + 16 ** 2), abs=0.3) and ty == pytest.approx(100, abs=0.1)
