"""One measurement: measure() on detected regions reproduces quantify_blot; backgrounds registry.

quantify_blot = detection + exoimage.blot.measure.measure. Measuring the regions detection
recorded, or the outlines the napari widget draws from them (converted back as the widget
converts its Shapes layers), must give quantify_blot's bands to the last digit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from exoimage.blot import BAND_COLUMNS, BlotParams, quantify_blot
from exoimage.blot import background as G
from exoimage.blot.lanes import lanes_from_bounds
from exoimage.blot.manual import (band_outline, lane_outline, lanes_from_outlines, measure_bands,
                                  regions_from_outlines)
from exoimage.blot import measure as M
from exoimage.blot.measure import REGION_COLUMNS, lane_contexts, measure, prepare
from exoimage.blot.profile import lane_profile
from exoimage.io import read_image
from exoimage.simulate.blot import DEFAULT_LADDER_KDA, scenario, simulate_blot

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
KODAK = sorted((REAL / "blots_kodak").rglob("*.tif")) if (REAL / "blots_kodak").is_dir() else []


def _exact(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True)


def _plugin_path(img, det, params):
    """Detect -> Quantify with nothing edited, converted as the napari widget converts its layers
    (plugins/napari/src/napari_exoimage/_blot_widget.py: _draw_shapes, _shapes_data, quantify)."""
    lanes0 = det.lane_geometry
    lane_polys = [np.asarray(lane_outline(ln), float)[:, -2:] for ln in lanes0]
    by_lane = {ln.lane: ln for ln in lanes0}
    boxes = [np.asarray(band_outline(by_lane[int(b.lane)], b.y_top_px, b.y_bottom_px), float)[:, -2:]
             for b in det.bands.itertuples()]
    feats = det.bands.drop(columns=["piece"]).reset_index(drop=True)
    extra = [c for c in REGION_COLUMNS if c not in feats]
    feats = pd.concat([feats, det.regions[extra].reset_index(drop=True)], axis=1)
    lanes = lanes_from_outlines(lane_polys, img.data.shape if hasattr(img, "data") else img.shape,
                                ladder_lane=params.ladder_lane, known=lanes0)
    regions, unassigned = regions_from_outlines(boxes, lanes, known=feats, known_lanes=lanes0)
    assert unassigned == []
    return measure(img, lanes, regions, params)


def _check(img, params, *, plugin=True):
    det = quantify_blot(img, params)
    again = measure(img, det.lane_geometry, det.regions, params, pieces=det.pieces)
    _exact(again.bands, det.bands)
    _exact(again.lanes, det.lanes)
    _exact(again.regions, det.regions)
    assert again.warnings == det.warnings and again.ladder == det.ladder
    if plugin:
        p = _plugin_path(img, det, params)
        _exact(p.bands[BAND_COLUMNS], det.bands[BAND_COLUMNS])
        _exact(p.lanes, det.lanes)
    return det


# --------------------------------------------------------------------------
# simulated blots


@pytest.mark.parametrize("name", ["clean", "realistic", "dilution", "saturated", "film", "12bit"])
def test_measure_reproduces_quantify_blot_on_simulated_blots(name):
    sim = scenario(name, seed=2)
    det = _check(sim.data, BlotParams(ladder_lane=1, ladder_kda=list(DEFAULT_LADDER_KDA)))
    assert len(det.bands) > 20 and det.bands["mw_kda"].notna().any()


@pytest.mark.parametrize("bg", G.METHODS)
def test_measure_reproduces_quantify_blot_with_every_background(bg):
    sim = scenario("realistic", seed=4)
    det = _check(sim.data, BlotParams(background=bg))
    assert set(det.bands["background_method"]) == {bg}


def test_measure_reproduces_lane_totals_and_explicit_lanes():
    sim = scenario("clean", seed=5)
    bounds = [(int(r.x_left_px), int(r.x_right_px)) for r in sim.lanes.itertuples()]
    params = BlotParams(lane_bounds=bounds)
    det = quantify_blot(sim.data, params, lane_totals=True)
    m = measure(sim.data, det.lane_geometry, det.regions, params, pieces=det.pieces, lane_totals=True)
    _exact(m.bands, det.bands)
    _exact(m.lanes, det.lanes)
    assert m.lanes["lane_total"].notna().all()


def test_measuring_a_result_again_changes_nothing():
    # Quantify twice in the plugin: the measured regions carry everything measured
    sim = scenario("realistic", seed=1)
    det = quantify_blot(sim.data)
    m1 = measure(sim.data, det.lane_geometry, det.regions)
    m2 = measure(sim.data, m1.lane_geometry, m1.regions)
    _exact(m2.bands, m1.bands)
    _exact(m2.regions, m1.regions)


# --------------------------------------------------------------------------
# hand-drawn regions: auto's rule


def _hand(regions: pd.DataFrame) -> pd.DataFrame:
    """The same regions as if drawn by hand: rows only, nothing recorded."""
    return regions[["lane", "y_top_px", "y_bottom_px"]].copy()


def test_hand_drawn_regions_get_the_rule_detection_applies():
    # a smear (taller than the ball) in a blot with free membrane beside every lane: gap;
    # sharp bands: the rolling ball refined by the flanks - as detection chose
    sim = simulate_blot(seed=3, n_lanes=6, blotchy=0.2)
    det = quantify_blot(sim.data)
    assert "gap" in set(det.bands["background_method"])
    m = measure(sim.data, det.lane_geometry, _hand(det.regions))
    same = (det.regions["y_top_px"] == det.regions["fit_top_px"]) & \
           (det.regions["y_bottom_px"] == det.regions["fit_bottom_px"])
    assert same.sum() > 20
    assert (m.bands.loc[same, "background_method"] == det.bands.loc[same, "background_method"]).all()
    # isolated (not deconvolved), un-reshaped regions: the same volume as detected, in lanes
    # that lack none of the piece's band rows (where one is placed, the joined baseline's flank
    # reaches the neighbours' background rows, which detection records and a hand drawing lacks)
    prep = prepare(sim.data, det.params)
    cols = M._region_columns(det.regions)
    placed = M.piece_rows(det.lane_geometry, {ln.lane: M._lane_regions(cols, ln) for ln in det.lane_geometry},
                          lane_contexts(prep, det.lane_geometry, det.params))
    iso = same & ~det.bands["deconvolved"] & ~det.bands["lane"].isin(list(placed))
    assert iso.sum() > 5
    np.testing.assert_array_equal(m.bands.loc[iso, "volume"], det.bands.loc[iso, "volume"])


def test_hand_drawn_smear_rule_gap_edge_or_ball():
    # a region taller than the ball (a smear) drawn by hand, beside a sharp one
    sim = simulate_blot(seed=6, n_lanes=3, blotchy=0.0, ladder=False)
    bounds = [(int(r.x_left_px), int(r.x_right_px)) for r in sim.lanes.itertuples()][:2]
    two = lanes_from_bounds(bounds, sim.data.shape)
    ln = two[0]
    ctx = lane_contexts(prepare(sim.data, BlotParams()), two, BlotParams())[1]
    a, b = 100, 100 + int(ctx.radius_px) + 10
    regions = pd.DataFrame([dict(lane=1, y_top_px=20, y_bottom_px=30), dict(lane=1, y_top_px=a, y_bottom_px=b)])
    flank = G.flank_background(ctx.profile, [(20, 30), (a, b)], ctx.ball)

    def check(lanes, method, baseline):
        m = measure(sim.data, lanes, regions)
        assert list(m.bands["background_method"]) == ["rolling-ball", method]
        assert m.bands["volume"].iloc[0] == float((ctx.profile - flank)[20:31].sum())
        assert m.bands["volume"].iloc[1] == float((ctx.profile - baseline)[a:b + 1].sum())

    # free membrane beside both lanes and 3 gaps (one on each side of lane 1): the gap background
    assert ctx.free_px >= G.MIN_FREE_PX
    check(two, "gap", G.gap_background(ctx.signal, two[0], two))
    # one lane: only 2 gaps, no gap background: the lane-edge background
    one = lanes_from_bounds(bounds[:1], sim.data.shape)
    assert G.gap_background(ctx.signal, one[0], one) is None
    check(one, "edge", G.edge_background(ctx.signal, one[0], min(ctx.border_px, ctx.free_px)))
    # lanes touching (no free membrane beside them): the smear keeps the refined ball
    touching = lanes_from_bounds([(ln.x_left_px, ln.x_right_px), (ln.x_right_px + 1, ln.x_right_px + 60)],
                                 sim.data.shape)
    check(touching, "rolling-ball", flank)


def test_incomplete_deconvolved_cluster_is_measured_as_separate_regions():
    sim = scenario("realistic", seed=2)
    det = quantify_blot(sim.data)
    r = det.regions
    dec = r[r["deconvolved"]]
    sizes = dec.groupby(["lane", "cluster"]).size()
    lane, cl = sizes.idxmax()
    members = r.index[(r["lane"] == lane) & (r["cluster"] == cl)]
    assert len(members) >= 2
    kept = r.drop(index=members[0])  # one member deleted: the others' fractions no longer add up to 1
    m = measure(sim.data, det.lane_geometry, kept)
    plain = kept.copy()
    plain.loc[members[1:], ["deconvolved", "cluster", "fraction"]] = [False, np.nan, np.nan]
    _exact(m.bands, measure(sim.data, det.lane_geometry, plain).bands)
    left = (m.regions["lane"] == lane) & m.regions["y_top_px"].isin(r.loc[members[1:], "y_top_px"])
    assert left.sum() == len(members) - 1 and not m.regions.loc[left, "deconvolved"].any()
    # the complete cluster shares its joint volume by the fitted fractions
    full = det.bands.loc[members, "volume"].to_numpy()
    np.testing.assert_allclose(full / full.sum(), r.loc[members, "fraction"], rtol=1e-9)


def test_measure_bands_is_measure():
    sim = scenario("clean", seed=3)
    det = quantify_blot(sim.data)
    _exact(measure_bands(sim.data, det.lane_geometry, det.regions).bands,
           measure(sim.data, det.lane_geometry, det.regions).bands)


def test_unknown_lane_in_regions_is_refused():
    sim = scenario("clean", seed=3)
    det = quantify_blot(sim.data)
    bad = pd.DataFrame([dict(lane=99, y_top_px=10, y_bottom_px=20)])
    with pytest.raises(ValueError, match="lane\\(s\\) 99"):
        measure(sim.data, det.lane_geometry, bad)


# --------------------------------------------------------------------------
# the registry


def test_choices_come_from_the_registry():
    assert G.CHOICES[0] == "auto" and set(G.CHOICES) == {"auto", "rolling-ball", "valley", "edge", "none"}
    assert set(G.REGISTRY) == set(G.CHOICES) | {"flank", "gap"}
    from exoimage.blot.bands import BACKGROUNDS

    assert BACKGROUNDS == G.METHODS
    for name in G.CHOICES:
        BlotParams(background=name)


def test_a_new_background_is_one_registered_function():
    sim = scenario("clean", seed=3)
    det = quantify_blot(sim.data)

    @G.register("test-median")
    def median_of_lane(ctx, regions):
        return np.full(len(ctx.profile), float(np.median(ctx.profile)))

    try:
        params = BlotParams()
        params.background = "test-median"  # BlotParams' choices are being moved onto the registry
        m = measure(sim.data, det.lane_geometry, det.regions, params)
        assert set(m.bands["background_method"]) == {"test-median"}
        assert set(m.lanes["background"]) == {"test-median"}
        ln = det.lane_geometry[0]
        prof = lane_profile(prepare(sim.data, params).signal, ln)
        r = m.regions[m.regions["lane"] == ln.lane].iloc[0]
        a, b = int(r["y_top_px"]) - ln.y_top_px, int(r["y_bottom_px"]) - ln.y_top_px
        assert m.bands["volume"].iloc[0] == float((prof - np.median(prof))[a:b + 1].sum())
        with pytest.raises(ValueError, match="registered twice"):
            G.register("test-median")(median_of_lane)
    finally:
        del G.REGISTRY["test-median"]


# --------------------------------------------------------------------------
# real blots (../shared)


def _real(name):
    p = REAL / name
    if not p.is_file():
        pytest.skip(f"{p} is not available")
    return read_image(p)


def test_real_rhoa_blot_reproduced_by_measure_and_by_the_plugin_path():
    img = _real("wb_rhoa_chemi_16bit.tif")
    det = _check(img, BlotParams())
    # the upper piece's smears measured over the gap background, as the command line does
    assert det.lanes["piece"].nunique() == 2 and (det.bands["background_method"] == "gap").sum() >= 5


def test_real_kodak_blots_reproduced_by_measure_and_by_the_plugin_path():
    if not KODAK:
        pytest.skip("../shared/data/real/blots_kodak is not available")
    tilted = 0
    for path in KODAK:
        img = read_image(path)
        det = _check(img, BlotParams())
        tilted += any(ln.slope for ln in det.lane_geometry)
    # tilt is per membrane piece (issue 12): a strip with one band row has no tilt evidence, so
    # fewer images carry a tilted lane than when one grid spanned two offset strips (10 then, 8 now)
    assert len(KODAK) == 21 and tilted >= 6


def _weak_neighbour_blot(n_lanes=6, width=30, gap=0):
    """Lanes touching (no free gel: no gel envelope) on a flat membrane (1000 counts), in every lane a strong band (600/px at y=100, SD 4) and
    a weak one just below it (80/px at y=118, SD 4); lane, strong-band volume (truth)."""
    rng = np.random.default_rng(3)
    h, w = 220, n_lanes * (width + gap) + 2 * width
    y = np.arange(h)[:, None]
    prof = 600 * np.exp(-0.5 * ((y - 100) / 4.0) ** 2) + 80 * np.exp(-0.5 * ((y - 118) / 4.0) ** 2)
    img = np.full((h, w), 1000.0) + rng.normal(0, 2.0, (h, w))
    bounds = [(width + i * (width + gap), width + i * (width + gap) + width - 1) for i in range(n_lanes)]
    for a, b in bounds:
        img[:, a:b + 1] += prof
    return img.astype(np.uint16), lanes_from_bounds(bounds, (h, w)), 600 * 4.0 * np.sqrt(2 * np.pi) * width


def test_missing_weak_row_gives_the_strong_band_the_same_background():
    """A weak band next to a strong one, drawn (or detected) in all lanes but one: the strong
    band's baseline must not lie on the weak band in that lane (its row is a band row of the
    piece, kept out of the flank), so its volume matches the other lanes' and the truth."""
    img, lanes, truth = _weak_neighbour_blot()
    rows = []
    for ln in lanes:
        rows.append(dict(lane=ln.lane, y_top_px=88, y_bottom_px=111))
        if ln.lane != 4:                      # lane 4: the weak band was not found
            rows.append(dict(lane=ln.lane, y_top_px=112, y_bottom_px=128))
    res = measure(img, lanes, pd.DataFrame(rows), BlotParams(polarity="light-bands"))
    strong = res.bands[res.bands.y_px < 106].set_index("lane").volume
    others = strong.drop(4)
    assert abs(strong[4] / others.median() - 1) < 0.02
    assert abs(strong[4] / truth - 1) < 0.03
    # without the piece's rows the weak band lies in lane 4's flank: the test can fail
    prep = prepare(img, BlotParams(polarity="light-bands"))
    ctx = lane_contexts(prep, lanes, BlotParams(polarity="light-bands"))[4]
    regs = M._lane_regions(M._region_columns(pd.DataFrame(rows)), lanes[3])
    bg, _ = M._background(ctx, regs, "auto")
    alone = float((ctx.profile - bg)[88 - lanes[3].y_top_px:112 - lanes[3].y_top_px].sum())
    assert alone / truth - 1 < -0.04


def test_weak_row_found_in_few_lanes_takes_its_share_in_every_lane():
    """A weak band overlapping a strong one, found (a deconvolved pair) in 3 of 8 lanes; in the
    others detection's strong-band region reaches into it. The weak band's row is a band row of
    the piece (PIECE_ROW_MIN_LANES) and takes its share of the strong band's rows in every
    lane, so the strong band's volume is the same in all lanes and matches the truth."""
    rng = np.random.default_rng(1)
    h, w, width, gap, n = 220, 8 * 48 + 40, 40, 8, 8
    y = np.arange(h)[:, None]
    prof = 600 * np.exp(-0.5 * ((y - 100) / 4.0) ** 2) + 180 * np.exp(-0.5 * ((y - 114) / 4.0) ** 2)
    img = np.full((h, w), 1000.0) + rng.normal(0, 2.0, (h, w))
    bounds = [(20 + i * (width + gap), 20 + i * (width + gap) + width - 1) for i in range(n)]
    for a, b in bounds:
        img[:, a:b + 1] += prof
    lanes = lanes_from_bounds(bounds, (h, w))
    truth = 600 * 4.0 * np.sqrt(2 * np.pi) * width
    rows = []
    for ln in lanes:
        if ln.lane <= 3:
            rows += [dict(lane=ln.lane, y_top_px=86, y_bottom_px=107, y_px=100.0, sigma_px=4.0, deconvolved=True,
                          cluster=0, fraction=0.75),
                     dict(lane=ln.lane, y_top_px=108, y_bottom_px=128, y_px=114.0, sigma_px=4.0, deconvolved=True,
                          cluster=0, fraction=0.25)]
        else:
            rows.append(dict(lane=ln.lane, y_top_px=86, y_bottom_px=112, y_px=100.0, sigma_px=4.0,
                             deconvolved=False, cluster=np.nan, fraction=1.0))
    regions = pd.DataFrame(rows)
    params = BlotParams(polarity="light-bands")
    res = measure(img.astype(np.uint16), lanes, regions, params)
    strong = res.bands[res.bands.y_px < 106].set_index("lane").volume
    assert np.abs(strong / truth - 1).max() < 0.03
    # measuring the result again gives the same numbers
    again = measure(img.astype(np.uint16), res.lane_geometry, res.regions, params)
    np.testing.assert_array_equal(again.bands.volume, res.bands.volume)
    # the weak band's rows alone (not a row of the piece) would give it to the strong band
    # where it was not found: the test can fail
    cols = M._region_columns(regions)
    ctx = lane_contexts(prepare(img.astype(np.uint16), params), lanes, params)
    lane_regs = {ln.lane: M._lane_regions(cols, ln) for ln in lanes}
    placed = M.piece_rows(lanes, lane_regs, ctx)
    assert sorted(placed) == [4, 5, 6, 7, 8]
    ln = lanes[4]
    bg, _ = M._background(ctx[ln.lane], lane_regs[ln.lane], "auto", placed[ln.lane])
    whole = float((ctx[ln.lane].profile - bg)[86 - ln.y_top_px:113 - ln.y_top_px].sum())
    assert whole / truth - 1 > 0.05
