"""Quantifying hand-edited lanes and band regions (exoimage.blot.manual, used by the napari plugin)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from exoimage.blot import BlotParams, quantify_blot
from exoimage.blot.manual import (band_outline, lane_outline, lane_traces, lanes_from_outlines, match_rows,
                                  measure_bands, regions_from_bands, regions_from_outlines)
from exoimage.io import ImageReadError
from exoimage.simulate.blot import scenario


@pytest.fixture(scope="module")
def clean():
    sim = scenario("clean", seed=3)
    return sim, quantify_blot(sim.data)


def test_lane_outlines_round_trip(clean):
    sim, res = clean
    lanes = lanes_from_outlines([lane_outline(ln) for ln in res.lane_geometry], sim.data.shape)
    for a, b in zip(res.lane_geometry, lanes):
        assert (a.lane, a.x_left_px, a.x_right_px, a.y_top_px, a.y_bottom_px) == \
               (b.lane, b.x_left_px, b.x_right_px, b.y_top_px, b.y_bottom_px)
        assert b.slope == pytest.approx(a.slope, abs=1e-5)


def test_tilted_outline_gives_slope_and_order():
    # drawn right lane first; a parallelogram leaning right by 10 px over 100 rows
    quads = [np.array([[0, 100], [0, 120], [100, 130], [100, 110]]) - [0.5, 0.5],
             np.array([[0, 10], [0, 30], [100, 30], [100, 10]]) - [0.5, 0.5]]
    lanes = lanes_from_outlines(quads, (101, 200), ladder_lane=1)
    assert [ln.x_left_px for ln in lanes][0] == 10 and lanes[0].is_ladder and not lanes[1].is_ladder
    assert lanes[1].slope == pytest.approx(0.1)
    assert lanes[1].width_px == 20
    with pytest.raises(ValueError):
        lanes_from_outlines([np.array([[0, 0], [1, 0], [1, 1]])], (50, 50))
    # two strips of membrane: the lower piece's lanes come after the upper piece's
    rect = lambda y0, y1, x0, x1: np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], float) - 0.5  # noqa: E731
    lanes = lanes_from_outlines([rect(60, 100, 10, 30), rect(0, 40, 50, 70), rect(0, 40, 10, 30)], (101, 200))
    assert [(ln.piece, ln.x_left_px, ln.y_top_px) for ln in lanes] == [(1, 10, 0), (1, 50, 0), (2, 10, 60)]


@pytest.mark.parametrize("bg", ["rolling-ball", "none"])
def test_measure_bands_reproduces_quantify_blot(bg):
    sim = scenario("clean", seed=3)
    res = quantify_blot(sim.data, background=bg)
    # the regions quantify_blot returns (what the plugin re-measures on unchanged boxes): exact
    full = measure_bands(sim.data, res.lane_geometry, res.regions, BlotParams(background=bg))
    np.testing.assert_array_equal(full.bands["volume"].to_numpy(), res.bands["volume"].to_numpy())
    # from a bands table alone (no cluster fractions or fit windows): the bands not split from a
    # neighbour come back; a weak row placed in their cluster is re-fitted from the table's
    # centres, so they may differ in the 6th digit
    m = measure_bands(sim.data, res.lane_geometry, regions_from_bands(res.bands), BlotParams(background=bg))
    nd = ~res.bands["deconvolved"].to_numpy()
    np.testing.assert_allclose(m.bands["volume"].to_numpy()[nd], res.bands["volume"].to_numpy()[nd], rtol=1e-5)
    assert list(m.bands.columns) == list(res.bands.columns)
    assert list(m.lanes.columns) == list(res.lanes.columns)
    # the detected centres and widths are kept: rows are numbered exactly as by quantify_blot
    assert (m.bands["row"].to_numpy() == res.bands["row"].to_numpy()).all()
    assert np.allclose(m.bands["y_px"], res.bands["y_px"])


def test_auto_background_close_to_quantify_blot(clean):
    sim, res = clean
    m = measure_bands(sim.data, res.lane_geometry, regions_from_bands(res.bands))
    big = (res.bands["snr"] > 20).to_numpy() & ~res.bands["deconvolved"].to_numpy()
    np.testing.assert_allclose(m.bands["volume"].to_numpy()[big], res.bands["volume"].to_numpy()[big], rtol=0.05)


def test_band_boxes_assigned_to_lanes_and_moved_lane_measured(clean):
    sim, res = clean
    lanes = res.lane_geometry
    boxes = [band_outline(lanes[int(b.lane) - 1], b.y_top_px, b.y_bottom_px) for b in res.bands.itertuples()]
    boxes.append(np.array([[5, 0], [5, 3], [9, 3], [9, 0]], float))  # in no lane (left margin)
    regions, bad = regions_from_outlines(boxes, lanes)
    assert bad == [len(boxes) - 1]
    cols = ["lane", "y_top_px", "y_bottom_px"]
    assert (regions[cols].values == regions_from_bands(res.bands)[cols].values).all()
    assert regions["y_px"].isna().all()
    # with the bands the boxes were drawn from: unchanged boxes keep the fitted centre and width
    known = res.bands.copy()
    boxes[0] = boxes[0] + [[-3, 0], [-3, 0], [0, 0], [0, 0]]  # box 1 made 3 px taller
    kr, _ = regions_from_outlines(boxes, lanes, known=known)
    assert np.isnan(kr.loc[0, "y_px"]) and kr.loc[0, "y_top_px"] == res.bands.loc[0, "y_top_px"] - 3
    assert np.allclose(kr["y_px"].iloc[1:], res.bands["y_px"].iloc[1:])
    assert list(kr["shape"]) == list(range(len(boxes) - 1))
    base = measure_bands(sim.data, lanes, regions)
    # move lane 3 by half a lane pitch into the gap: its bands lose much of their volume
    outl = [lane_outline(ln) for ln in lanes]
    outl[2] = outl[2] + [0, 35]
    moved = lanes_from_outlines(outl, sim.data.shape)
    after = measure_bands(sim.data, moved, regions)
    v0 = base.bands.groupby("lane")["volume"].sum()
    v1 = after.bands.groupby("lane")["volume"].sum()
    assert v1[3] < 0.75 * v0[3]
    # lane 4's bands over lane-local backgrounds are unchanged; its smear's gap background
    # follows where the gaps between the lanes are (auto's rule, as in detection)
    local = (base.bands["lane"] == 4).to_numpy() & (base.bands["background_method"] == "rolling-ball").to_numpy()
    assert local.sum() >= 3
    np.testing.assert_allclose(after.bands["volume"].to_numpy()[local], base.bands["volume"].to_numpy()[local],
                               rtol=1e-12)
    assert set(base.bands.loc[base.bands["lane"] == 4, "background_method"]) == {"rolling-ball", "gap"}
    # with the lane-edge background every band of lane 4 stays as it was
    e0 = measure_bands(sim.data, lanes, regions, BlotParams(background="edge")).bands
    e1 = measure_bands(sim.data, moved, regions, BlotParams(background="edge")).bands
    assert e1.loc[e1["lane"] == 4, "volume"].sum() == pytest.approx(e0.loc[e0["lane"] == 4, "volume"].sum())


def test_measured_volumes_match_truth_with_every_background(clean):
    sim, res = clean
    truth = sim.bands[(~sim.bands["is_ladder"]) & (sim.bands["kind"] == "sharp")]
    for bg in ("auto", "rolling-ball", "valley", "edge"):
        m = measure_bands(sim.data, res.lane_geometry, regions_from_bands(res.bands), BlotParams(background=bg))
        ratios = []
        for t in truth.itertuples():
            b = m.bands[m.bands["lane"] == t.lane]
            d = (b["y_px"] - t.y_px).abs()
            if len(d) and d.min() < 5 and not b.loc[d.idxmin(), "deconvolved"]:
                ratios.append(b.loc[d.idxmin(), "volume"] / t.volume)
        ratios = np.array(ratios)
        assert len(ratios) > 10, bg
        # one scale for all (the sum over a band region misses the Gaussian tails): spread small
        assert np.std(ratios / np.median(ratios)) < 0.08, bg


def test_lane_traces_and_errors(clean):
    sim, res = clean
    tr = lane_traces(sim.data, res.lane_geometry, regions_from_bands(res.bands))
    assert set(tr) == set(res.lanes["lane"])
    t1 = tr[1]
    assert list(t1.columns) == ["y_px", "profile", "background"]
    assert (t1["background"] <= t1["profile"].max()).all()
    with pytest.raises(ImageReadError, match="no lanes"):
        measure_bands(sim.data, [], regions_from_bands(res.bands))


def test_saturated_band_flagged_in_drawn_region():
    sim = scenario("saturated", seed=1)
    res = quantify_blot(sim.data)
    assert res.bands["saturated"].any()
    m = measure_bands(sim.data, res.lane_geometry, regions_from_bands(res.bands))
    assert m.bands.loc[res.bands["saturated"].to_numpy(), "saturated"].all()


def test_match_rows_follows_renumbering(clean):
    sim, res = clean
    regions = regions_from_bands(res.bands)
    base = measure_bands(sim.data, res.lane_geometry, regions)
    assert match_rows(res.bands, base.bands) == {r: r for r in sorted(set(res.bands["row"]) - {0})}
    # add a band box above everything in lane 2: every row number below it moves down by one
    extra = pd.concat([regions, pd.DataFrame([dict(lane=2, y_top_px=5, y_bottom_px=15)])], ignore_index=True)
    after = measure_bands(sim.data, res.lane_geometry, extra)
    m = match_rows(base.bands, after.bands)
    assert all(m[r] == r + 1 for r in m) and len(m) == base.bands.loc[base.bands["row"] > 0, "row"].nunique()


def test_two_membrane_pieces_keep_their_rows(real_dir):
    from exoimage.io import read_image

    img = read_image(real_dir / "wb_rhoa_chemi_16bit.tif")
    res = quantify_blot(img)
    assert res.lanes["piece"].nunique() == 2
    lanes = lanes_from_outlines([lane_outline(ln) for ln in res.lane_geometry], img.data.shape)
    assert [ln.piece for ln in lanes] == list(res.lanes["piece"])
    assert [ln.lane for ln in lanes] == list(res.lanes["lane"])
    m = measure_bands(img, lanes, regions_from_bands(res.bands))
    assert (m.bands["row"].to_numpy() == res.bands["row"].to_numpy()).all()
    assert len(m.pieces) == 2
