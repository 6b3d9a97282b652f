"""Tests of Western blot densitometry against simulator truth and hand-made fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from exoimage.blot import (analyze_blot_file, detect_ceiling, detect_polarity, draw_blot_overlay,
                           measure_rectangle, quantify_blot)
from exoimage.blot.bands import find_bands, group_rows, ladder_calibration, mw_from_y
from exoimage.blot.normalize import linear_range, normalize, parse_kda_range, replicate_stats
from exoimage.blot.signal import clipped_masks, image_warnings
from exoimage.cli import main
from exoimage.simulate.blot import scenario, simulate_blot

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LADDER = [250, 150, 100, 75, 50, 37, 25, 20, 15, 10]


@pytest.fixture(scope="module")
def clean():
    sim = scenario("clean", seed=3)
    res = quantify_blot(sim.data, ladder_lane=1, ladder_kda=LADDER)
    return sim, res


def _match(res, sim, lane_tol=0.25):
    """truth lane -> found lane (nearest centre)."""
    pitch = float(np.median(np.diff(sim.lanes["x_center_px"])))
    mp = {}
    for t in sim.lanes.itertuples():
        d = (res.lanes["x_center_px"] - t.x_center_px).abs()
        assert d.min() <= lane_tol * pitch, f"truth lane {t.lane} at x={t.x_center_px:.0f} not found"
        mp[t.lane] = int(res.lanes.loc[d.idxmin(), "lane"])
    return mp


def _volume_errors(res, sim, min_found=1.0):
    mp = _match(res, sim)
    errs, pairs = [], []
    truth = sim.bands[~sim.bands["is_ladder"] & ~sim.bands["saturated"]]
    missed = []
    for t in truth.itertuples():
        f = res.bands[res.bands["lane"] == mp[t.lane]]
        d = (f["y_px"] - t.y_px).abs()
        tol = 6 if t.kind == "sharp" else 25
        if not (len(d) and d.min() <= tol):
            missed.append(f"{t.name} of lane {t.lane}")
            continue
        pairs.append((t.row, t.volume, float(f.loc[d.idxmin(), "volume"])))
    assert len(pairs) >= min_found * len(truth), f"bands not found: {missed}"
    df = pd.DataFrame(pairs, columns=["row", "truth", "found"])
    for _, g in df.groupby("row"):
        s = np.sum(g.found * g.truth) / np.sum(g.truth ** 2)
        errs += list(np.abs(g.found / (s * g.truth) - 1))
    return np.array(errs)


# --------------------------------------------------------------------------- lanes and bands


def test_lanes_found_exactly_on_clean_blot(clean):
    sim, res = clean
    assert len(res.lanes) == len(sim.lanes)
    _match(res, sim, lane_tol=0.1)
    # numbered 1..N left to right
    assert res.lanes["lane"].tolist() == list(range(1, len(sim.lanes) + 1))
    assert res.lanes["x_center_px"].is_monotonic_increasing


@pytest.mark.parametrize("name", ["realistic", "dilution", "film"])
def test_lanes_found_exactly_in_hard_scenarios(name):
    sim = scenario(name, seed=11)
    res = quantify_blot(sim.data)
    assert len(res.lanes) == len(sim.lanes)
    _match(res, sim)


def test_tilted_lanes_follow_the_tilt():
    sim = simulate_blot(seed=4, tilt_deg=2.0, blotchy=0.0)
    res = quantify_blot(sim.data)
    assert len(res.lanes) == len(sim.lanes)
    slope = res.lanes["slope_dx_per_dy"].median()
    assert slope == pytest.approx(np.tan(np.deg2rad(2.0)), abs=0.012)


def test_lane_count_override_and_explicit_bounds(clean):
    sim, _ = clean
    res = quantify_blot(sim.data, n_lanes=5)
    assert len(res.lanes) == 5
    res = quantify_blot(sim.data, lane_bounds=[(110, 175), (180, 245)])
    assert res.lanes[["x_left_px", "x_right_px"]].values.tolist() == [[110, 175], [180, 245]]


def test_band_volumes_match_truth(clean):
    sim, res = clean
    e = _volume_errors(res, sim)
    assert np.median(e) < 0.02
    assert np.percentile(e, 90) < 0.06


def test_uneven_background_volumes():
    sim = scenario("realistic", seed=2)
    res = quantify_blot(sim.data)
    # faint smears on a blotchy background can be missed: allow one band in 30
    e = _volume_errors(res, sim, min_found=0.96)
    assert np.median(e) < 0.03


def test_smear_is_one_band_and_doublet_is_resolved(clean):
    sim, res = clean
    mp = _match(res, sim)
    for lane in range(2, len(sim.lanes) + 1):
        b = res.bands[res.bands["lane"] == mp[lane]]
        t = sim.bands[sim.bands["lane"] == lane].set_index("name")
        smear = b[(b["y_px"] - t.loc["cd63", "y_px"]).abs() < 40]
        assert len(smear) == 1, f"lane {lane}: smear split into {len(smear)} bands"
        for nm in ("doublet_a", "doublet_b"):
            assert (b["y_px"] - t.loc[nm, "y_px"]).abs().min() < 3, f"lane {lane}: {nm} not resolved"


def test_find_bands_resolves_hand_made_doublet():
    x = np.arange(200, dtype=float)
    prof = 1000 * np.exp(-0.5 * ((x - 90) / 4) ** 2) + 600 * np.exp(-0.5 * ((x - 101) / 4) ** 2)
    fits = find_bands(prof, noise=1.0)
    assert len(fits) == 2
    assert [round(f.y) for f in fits] == [90, 101]
    vol = [f.fraction * prof.sum() for f in fits]
    assert vol[0] == pytest.approx(1000 * 4 * np.sqrt(2 * np.pi), rel=0.02)
    assert vol[1] == pytest.approx(600 * 4 * np.sqrt(2 * np.pi), rel=0.03)


def test_rows_group_smiling_bands_and_ladder_gives_kda(clean):
    sim, res = clean
    b = res.bands[~res.bands["is_ladder"]]
    assert b["row"].nunique() == 5
    # every row holds one band from each sample lane
    assert (b.groupby("row")["lane"].nunique() == len(sim.lanes) - 1).all()
    # apparent weights of the sharp rows within 5 %
    for nm, kda in (("alix", 96), ("control", 15), ("doublet_a", 22)):
        y = sim.bands.loc[sim.bands["name"] == nm, "y_px"].iloc[0]
        near = b[(b["y_px"] - y).abs() < 4]
        assert near["mw_kda"].median() == pytest.approx(kda, rel=0.05)


def test_group_rows_uses_lane_offsets():
    y = np.array([100, 110, 108, 118])
    rows = group_rows(y, np.full(4, 3.0), np.array([1, 1, 2, 2]), np.array([0, 0, 8, 8]))
    assert rows.tolist() == [1, 2, 1, 2]


def test_ladder_tolerates_a_missing_marker():
    kda = np.array(LADDER, float)
    y = 50 + 40 * (np.log(250) - np.log(kda))
    y_missing = np.delete(y, 3)  # 75 kDa band missing
    yl, kl = ladder_calibration(y_missing, kda)
    assert 75 not in kl
    assert mw_from_y([y[3]], yl, kl)[0] == pytest.approx(75, rel=0.02)


# --------------------------------------------------------------------------- volumes == RawIntDen


def test_background_none_volume_equals_rawintden(clean):
    sim, _ = clean
    res = quantify_blot(sim.data, lane_bounds=[(112, 177), (182, 247)], background="none")
    d = sim.data
    assert len(res.bands) >= 8
    for b in res.bands[~res.bands["deconvolved"]].itertuples():
        ln = res.lanes.set_index("lane").loc[b.lane]
        raw = measure_rectangle(d, int(ln.x_left_px), int(b.y_top_px), int(ln.width_px),
                                int(b.y_bottom_px - b.y_top_px + 1))
        assert b.volume == raw  # exact, as ImageJ RawIntDen
        assert raw == float(d[int(b.y_top_px):int(b.y_bottom_px) + 1,
                              int(ln.x_left_px):int(ln.x_right_px) + 1].astype(np.int64).sum())


def test_measure_rectangle_is_rawintden():
    a = np.arange(100, dtype=np.uint16).reshape(10, 10)
    assert measure_rectangle(a, 2, 3, 4, 2) == sum(a[3:5, 2:6].ravel().tolist())


@pytest.mark.parametrize("bg", ["rolling-ball", "valley", "edge"])
def test_background_methods_recover_volumes(bg):
    sim = scenario("clean", seed=5)
    res = quantify_blot(sim.data, background=bg)
    e = _volume_errors(res, sim)
    assert np.median(e) < 0.05


# --------------------------------------------------------------------------- polarity and QC


def test_polarity_detection_and_override():
    sim = scenario("clean", seed=1)
    assert detect_polarity(sim.data) == "light-bands"
    inv = (65535 - sim.data).astype(np.uint16)
    assert detect_polarity(inv) == "dark-bands"
    # WhiteIsZero: raw counts are the signal whatever they look like
    assert detect_polarity(inv, white_is_zero=True) == "light-bands"
    r1 = quantify_blot(sim.data)
    r2 = quantify_blot(inv)
    assert r2.polarity == "dark-bands"
    v1 = r1.bands.groupby("lane")["volume"].sum().to_numpy()
    v2 = r2.bands.groupby("lane")["volume"].sum().to_numpy()
    np.testing.assert_allclose(v1, v2, rtol=1e-9)
    r3 = quantify_blot(inv, polarity="light-bands")
    assert r3.polarity == "light-bands"


def test_film_scan_8bit_dark_bands():
    sim = scenario("film", seed=2)
    res = quantify_blot(sim.data)
    assert res.polarity == "dark-bands"
    assert any("8-bit" in w for w in res.warnings)
    e = _volume_errors(res, sim)
    assert np.median(e) < 0.05


def test_saturation_flagged_hot_pixel_not():
    sim = scenario("saturated", seed=4)
    res = quantify_blot(sim.data)
    mp = _match(res, sim)
    sat_truth = sim.bands[sim.bands["saturated"]]
    assert len(sat_truth) >= 1
    for t in sat_truth.itertuples():
        f = res.bands[res.bands["lane"] == mp[t.lane]]
        i = (f["y_px"] - t.y_px).abs().idxmin()
        assert bool(f.loc[i, "saturated"])
    # nothing else flagged
    assert res.bands["saturated"].sum() == len(sat_truth)


def test_clipped_masks_solid_area_vs_hot_pixel():
    a = np.full((30, 30), 100, np.uint16)
    a[5:9, 5:10] = 65535   # solid clipped area
    a[20, 20] = 65535      # hot pixel
    a[25:27, 3:5] = 65535  # 2x2 dust speck
    ceiling, src = detect_ceiling(a, "light-bands")
    assert (ceiling, src) == (65535, "dtype")
    solid, hot = clipped_masks(a, ceiling, "light-bands")
    assert solid[5:9, 5:10].all() and solid.sum() == 20
    assert hot[20, 20] and hot[25:27, 3:5].all() and hot.sum() == 5


def test_lower_ceiling_from_histogram():
    rng = np.random.default_rng(0)
    a = np.clip(rng.normal(1500, 800, (200, 200)), 0, None).astype(np.uint16)
    a[50:60, 50:70] = 5000
    a = np.minimum(a, 4095)  # 12-bit camera clips at 4095
    assert detect_ceiling(a, "light-bands") == (4095, "histogram")
    b = np.clip(rng.normal(1500, 300, (200, 200)), 0, 4000).astype(np.uint16)
    b[5, 5] = 4090  # a single bright pixel is no ceiling
    assert detect_ceiling(b, "light-bands") == (None, "none")


def test_twelve_bit_saturation_detected():
    sim = scenario("12bit", seed=1)
    res = quantify_blot(sim.data)
    assert sim.bands["saturated"].any()
    assert res.ceiling == 4095 and res.ceiling_source == "histogram"
    assert res.bands["saturated"].sum() == sim.bands["saturated"].sum()


def test_contrast_adjustment_and_format_warnings():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 120, (200, 200)).astype(np.uint8) * 2  # every other value missing
    w = image_warnings(a, file_format="jpeg", was_rgb=True)
    text = " ".join(w)
    assert "8-bit" in text and "JPEG" in text and "RGB" in text and "gaps" in text
    assert image_warnings(rng.integers(1000, 3000, (300, 300)).astype(np.uint16)) == []


def test_low_snr_flag():
    sim = simulate_blot(seed=7, gain=0.1, blotchy=0.0, ladder=False, n_lanes=4)
    res = quantify_blot(sim.data, lane_bounds=[(40 + 70 * i + 10, 40 + 70 * i + 59) for i in range(4)])
    assert len(res.bands) >= 8
    assert (res.bands["low_snr"] == (res.bands["snr"] < 3)).all()
    assert 0 < res.bands["low_snr"].sum() < len(res.bands)
    strong = quantify_blot(scenario("clean", seed=1).data)
    assert not strong.bands.loc[~strong.bands["is_ladder"], "low_snr"].any()


# --------------------------------------------------------------------------- normalisation


def _toy_tables():
    lanes = pd.DataFrame({"lane": [1, 2, 3, 4], "is_ladder": [True, False, False, False],
                          "x_center_px": [10, 30, 50, 70], "width_px": [15] * 4})
    bands = pd.DataFrame({"lane": [2, 3, 4, 2, 3, 4], "row": [1, 1, 1, 2, 2, 2],
                          "volume": [100.0, 300.0, 50.0, 200.0, 200.0, 100.0],
                          "saturated": [False, True, False, False, False, False]})
    return lanes, bands


def test_normalisation_arithmetic_target_over_control():
    lanes, bands = _toy_tables()
    sheet = pd.DataFrame({"lane": [2, 3, 4], "sample": ["a", "a", "b"], "group": ["r1", "r2", "r1"]})
    n = normalize("x.tif", lanes, bands, target_rows=[1], control_rows=[2], reference_lane=2, sheet=sheet)
    assert n["lane"].tolist() == [2, 3, 4]
    np.testing.assert_allclose(n["ratio"], [0.5, 1.5, 0.5])
    np.testing.assert_allclose(n["relative"], [1.0, 3.0, 1.0])
    assert n["target_saturated"].tolist() == [False, True, False]
    st = replicate_stats(n).set_index("sample")
    assert st.loc["a", "n"] == 2
    assert st.loc["a", "mean"] == pytest.approx(2.0)
    assert st.loc["a", "sd"] == pytest.approx(np.std([1.0, 3.0], ddof=1))
    assert st.loc["a", "cv_pct"] == pytest.approx(100 * np.std([1.0, 3.0], ddof=1) / 2.0)


def test_normalisation_without_control_is_relative_to_reference():
    lanes, bands = _toy_tables()
    n = normalize("x.tif", lanes, bands, target_rows=[2], reference_lane=3)
    np.testing.assert_allclose(n["relative"], [1.0, 1.0, 0.5])
    assert (n["control"] == "none").all()
    ext = pd.Series({2: 10.0, 3: 20.0, 4: 40.0})
    n = normalize("x.tif", lanes, bands, target_rows=[1], control_by_lane=ext, control_name="tp",
                  reference_lane=2)
    np.testing.assert_allclose(n["ratio"], [10.0, 15.0, 1.25])
    with pytest.raises(ValueError, match="reference lane 1"):
        normalize("x.tif", lanes, bands, target_rows=[1], reference_lane=1)


def test_linear_range_drops_saturating_top_loads():
    load = np.array([1, 2, 4, 8, 16, 32.0])
    vol = np.array([10, 20, 40, 80, 130, 150.0])
    lr = linear_range(load, vol)
    assert lr["r2_all"] < 0.995
    assert lr["r2"] >= 0.995
    assert lr["inside"].tolist() == [True, True, True, True, False, False]
    assert lr["max_load_in_range"] == 8


def test_parse_kda():
    assert parse_kda_range("30-60") == (30, 60)
    lo, hi = parse_kda_range("44")
    assert lo < 44 < hi
    with pytest.raises(ValueError):
        parse_kda_range("abc")


def test_dilution_series_is_linear():
    sim = scenario("dilution", seed=3)
    res = quantify_blot(sim.data)
    mp = _match(res, sim)
    loads = [1.0, 0.5, 0.25, 0.125, 1.0, 0.5, 0.25]
    ctrl = sim.bands[sim.bands["name"] == "control"].set_index("lane")
    vols = []
    for lane in range(2, 9):
        f = res.bands[res.bands["lane"] == mp[lane]]
        vols.append(float(f.loc[(f["y_px"] - ctrl.loc[lane, "y_px"]).abs().idxmin(), "volume"]))
    lr = linear_range(loads, vols)
    assert lr["r2_all"] >= 0.99


# --------------------------------------------------------------------------- files and CLI


def test_bad_inputs_give_error_rows(tmp_path):
    (tmp_path / "empty.tif").write_bytes(b"")
    (tmp_path / "junk.tif").write_bytes(b"not a tiff at all")
    tifffile.imwrite(tmp_path / "flat.tif", np.full((50, 50), 7, np.uint16))
    for name in ("empty.tif", "junk.tif", "flat.tif", "missing.tif"):
        r = analyze_blot_file(tmp_path / name)
        assert not r.ok
        assert r.image_row["status"] == "error"
        assert name in r.image_row["error"] and "\n" not in r.image_row["error"]


def test_cli_end_to_end(tmp_path):
    sim_dir, out = tmp_path / "sim", tmp_path / "out"
    assert main(["simulate", "blot", "--out", str(sim_dir), "--n", "2", "--seed", "4"]) == 0
    (sim_dir / "broken.tif").write_bytes(b"xx")
    sheet = sim_dir / "blot_01_clean.lanes.csv"
    rc = main(["blot", str(sim_dir), "--out", str(out), "--ladder-lane", "1",
               "--ladder-kda", ",".join(map(str, LADDER)), "--target-kda", "30-60", "--control-kda", "15",
               "--lane-sheet", str(sheet)])
    assert rc == 0
    for f in ("lanes.csv", "bands.csv", "images.csv", "normalized.csv", "replicates.csv", "run.json"):
        assert (out / f).exists(), f
    images = pd.read_csv(out / "images.csv")
    assert images.set_index("image").loc["broken.tif", "status"] == "error"
    assert (images["status"] == "ok").sum() == 2
    lanes = pd.read_csv(out / "lanes.csv")
    assert {"image", "lane", "x_left_px", "x_right_px", "x_center_px", "slope_dx_per_dy"} <= set(lanes.columns)
    bands = pd.read_csv(out / "bands.csv")
    for c in ("image", "lane", "row", "band_id", "y_px", "y_top_px", "y_bottom_px", "volume", "background",
              "saturated", "snr", "mw_kda"):
        assert c in bands.columns
    norm = pd.read_csv(out / "normalized.csv")
    assert len(norm) == 14  # 7 sample lanes x 2 images
    truth = pd.read_csv(sim_dir / "blot_01_clean.truth.csv")
    t = truth[truth["name"] == "cd63"].set_index("lane")["volume"] / truth[truth["name"] == "control"].set_index("lane")["volume"]
    n1 = norm[norm["image"] == "blot_01_clean.tif"].set_index("lane")
    np.testing.assert_allclose(n1["relative"], (t / t.iloc[0]).loc[n1.index], rtol=0.05)
    run = json.loads((out / "run.json").read_text())
    assert run["command"] == "blot" and all(len(i["sha256"] or "") == 64 for i in run["inputs"][:2])
    assert len(list((out / "overlays").glob("*.png"))) == 2


def test_lane_totals_match_truth_for_total_protein():
    sim = scenario("clean", seed=8)
    res = quantify_blot(sim.data, lane_totals=True)
    mp = _match(res, sim)
    tot = res.lanes.set_index("lane")["lane_total"]
    truth = sim.bands.groupby("lane")["volume"].sum()
    for lane in range(2, len(sim.lanes) + 1):
        assert tot[mp[lane]] == pytest.approx(truth[lane], rel=0.05)


def test_cli_control_image_and_total_protein(tmp_path):
    sim = scenario("clean", seed=9)
    f = tmp_path / "blot.tif"
    tifffile.imwrite(f, sim.data)
    # the control row taken from a separate image (here the same membrane) by position
    out1, out2 = tmp_path / "a", tmp_path / "b"
    lad = ["--ladder-lane", "1"]
    assert main(["blot", str(f), "--out", str(out1), "--target-row", "1", "--control-row", "5"] + lad) == 0
    assert main(["blot", str(f), "--out", str(out2), "--target-row", "1", "--control-row", "5",
                 "--control-image", str(f), "--reference-lane", "3"] + lad) == 0
    n1 = pd.read_csv(out1 / "normalized.csv").set_index("lane")
    n2 = pd.read_csv(out2 / "normalized.csv").set_index("lane")
    np.testing.assert_allclose(n1["ratio"], n2["ratio"], rtol=1e-9)
    np.testing.assert_allclose(n2["relative"], n2["ratio"] / n2.loc[3, "ratio"], rtol=1e-12)
    t = sim.bands[sim.bands["row"] == 1].set_index("lane")["volume"] / \
        sim.bands[sim.bands["row"] == 5].set_index("lane")["volume"]
    np.testing.assert_allclose(n1["relative"], (t / t.loc[2]).loc[n1.index], rtol=0.03)
    out3 = tmp_path / "c"
    assert main(["blot", str(f), "--out", str(out3), "--target-row", "1", "--total-protein-image", str(f)]
                + lad) == 0
    n3 = pd.read_csv(out3 / "normalized.csv")
    assert n3["control"].str.startswith("total protein").all()
    assert np.isfinite(n3["ratio"]).all() and n3.loc[0, "relative"] == 1.0


def test_cli_nothing_analysed_exits_nonzero(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"nope")
    assert main(["blot", str(tmp_path / "bad.tif"), "--out", str(tmp_path / "o")]) == 1


def test_overlay_marks_saturation():
    sim = scenario("saturated", seed=4)
    res = quantify_blot(sim.data)
    rgb = draw_blot_overlay(sim.data, res)
    assert rgb.dtype == np.uint8 and rgb.shape == sim.data.shape + (3,)
    ys, xs = np.nonzero(res.saturated_mask)
    assert len(ys) and (rgb[ys, xs] == [255, 0, 0]).all()


# --------------------------------------------------------------------------- real images


def _real(name):
    p = SHARED / "data" / "real" / name
    if not p.exists():
        pytest.skip("../shared real data not available")
    return p


def test_real_rhoa_blot_lanes_on_both_pieces():
    r = analyze_blot_file(_real("wb_rhoa_chemi_16bit.tif"))
    assert r.ok
    assert r.image_row["polarity"] == "light-bands"
    assert r.image_row["n_pieces"] == 2
    per_piece = r.result.lanes.groupby("piece").size()
    # upper piece: 6 sample lanes; lower piece: marker lane + 6 sample lanes
    assert per_piece.loc[1] == 6
    assert per_piece.loc[2] in (6, 7)
    # lanes do not overlap and none is in the bubble field off the band columns
    for _, g in r.result.lanes.groupby("piece"):
        assert (g["x_left_px"].to_numpy()[1:] > g["x_right_px"].to_numpy()[:-1]).all()
    # the doublet of the upper piece (~30 px apart) is resolved in all six lanes, as two rows
    upper = r.result.lanes[r.result.lanes["piece"] == 1]["lane"]
    d = r.bands[r.bands["lane"].isin(upper) & (r.bands["y_px"] > 305) & (r.bands["y_px"] < 365)]
    per_row = d.groupby("row")["lane"].nunique()
    assert (per_row == 6).sum() == 2
    # the two strong bands of the lower piece are found in its lanes
    lower = r.result.lanes[r.result.lanes["piece"] == 2]["lane"]
    b = r.bands[r.bands["lane"].isin(lower)]
    assert ((b["y_px"] > 1080) & (b["y_px"] < 1125)).sum() >= 5
    assert ((b["y_px"] > 1320) & (b["y_px"] < 1380)).sum() >= 5


def test_real_dna_gel_four_lanes_many_bands():
    r = analyze_blot_file(_real("dna_ladder_gel_8bit.tif"))
    assert r.ok
    assert len(r.lanes) == 4
    assert (r.bands.groupby("lane").size() >= 15).all()
    # the closely spaced bands at the top (y ~ 180-250 px, ~14 px apart) are all resolved
    top = r.bands[(r.bands["y_px"] > 178) & (r.bands["y_px"] < 250)]
    assert (top.groupby("lane").size() == 5).all()
    # and the same band sits in the same row in every lane
    assert (r.bands.groupby("row")["lane"].nunique().loc[top["row"].unique()] == 4).all()
    assert any("8-bit" in w for w in r.result.warnings)
