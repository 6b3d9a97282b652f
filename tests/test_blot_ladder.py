"""Known ladders (data files), MW/size from the ladder lane, the mass-proportionality check,
and band finding on the real NEB 1 kb Plus gel (skipped without ../shared)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from exoimage.blot import BlotParams, quantify_blot
from exoimage.blot.ladders import LADDER_NAMES, load_ladder
from exoimage.blot.measure import ladder_mass_check
from exoimage.params import ParamError

GEL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "dna_ladder_gel_8bit.tif"


def test_known_ladders_are_complete_data():
    assert {"neb-1kb-plus", "pageruler-plus-prestained"} <= set(LADDER_NAMES)
    neb = load_ladder("neb-1kb-plus")
    assert neb.unit == "bp" and len(neb.sizes) == 19 and len(neb.masses_ng) == 19
    assert sum(neb.masses_ng) == pytest.approx(1000, abs=5)  # the vendor's table is per 1 ug loaded
    pr = load_ladder("pageruler-plus-prestained")
    assert pr.unit == "kDa" and pr.sizes[0] == 250 and pr.sizes[-1] == 10 and pr.masses_ng is None
    with pytest.raises(ValueError, match="unknown ladder"):
        load_ladder("no-such-ladder")


def test_ladder_param_is_checked():
    with pytest.raises(ParamError):
        BlotParams(ladder="no-such-ladder", ladder_lane=1)
    with pytest.raises(ParamError, match="ladder_lane"):
        BlotParams(ladder="neb-1kb-plus")


def test_mass_check_scale_errors_and_ratio():
    neb = load_ladder("neb-1kb-plus")
    y = np.arange(19) * 20.0 + 50
    vol = 1000.0 * np.array(neb.masses_ng)
    vol[0] *= 2.0  # one band twice too bright: the median scale ignores it
    bands = pd.DataFrame({"image": "g", "lane": 1, "y_px": y, "volume": vol})
    t = ladder_mass_check(bands, {"lane": 1, "y_px": list(y), "kda": list(neb.sizes)}, neb)
    assert t["error_pct"].iloc[0] == pytest.approx(100.0)
    assert np.allclose(t["error_pct"].iloc[1:], 0.0)
    assert t.attrs["mean_abs_error_pct"] == pytest.approx(100.0 / 19)
    assert t.attrs["ratio"] == pytest.approx(120 / 57) and t.attrs["ratio_expected"] == pytest.approx(120 / 57)


def test_known_protein_ladder_gives_mw_on_the_simulator():
    from exoimage.simulate.blot import simulate_blot

    kda = list(load_ladder("pageruler-plus-prestained").sizes)
    sim = simulate_blot(n_lanes=6, seed=4, ladder_kda=kda)
    res = quantify_blot(sim.data, ladder_lane=1, ladder="pageruler-plus-prestained")
    t = sim.bands[(~sim.bands["is_ladder"]) & (sim.bands["kind"] == "sharp")]
    errs = []
    for r in t.itertuples():
        f = res.bands[(res.bands["lane"] != 1)]
        i = (f["y_px"] - r.y_px).abs().idxmin()
        if abs(f.loc[i, "y_px"] - r.y_px) < 4:
            errs.append(abs(f.loc[i, "mw_kda"] / r.kda - 1))
    assert len(errs) >= 0.8 * len(t) and np.median(errs) < 0.05
    assert res.bands["size_bp"].isna().all()
    assert "check" not in res.ladder  # no published masses for a prestained marker


@pytest.fixture(scope="module")
def gel():
    if not GEL.exists():
        pytest.skip("../shared absent")
    from exoimage.io import read_image
    return read_image(GEL)


def test_real_gel_no_well_no_bottom_glow_and_3kb_is_one_band(gel):
    res = quantify_blot(gel)
    b = res.bands
    assert sorted(b["lane"].unique()) == [1, 2, 3, 4]
    # the wells (y < 130) and the glow across the bottom of the gel (y > 620) are not bands
    assert b["y_px"].between(150, 620).all()
    # the overloaded, flat-topped 3 kb band is one band in every lane
    assert (b[b["y_px"].between(255, 285)].groupby("lane").size() == 1).all()


def test_real_gel_ladder_sizes_and_mass_check(gel):
    res = quantify_blot(gel, ladder_lane=2, ladder="neb-1kb-plus")
    t = res.ladder["check"]
    # the well-resolved top half (10 kb .. 1.5 kb): volumes near proportional to mass (the lane's
    # scale is the median over all its matched bands)
    top = t[t["size"] >= 1500]
    assert len(top) == 8 and top["error_pct"].abs().mean() < 10 and top["error_pct"].abs().max() < 20
    assert t.attrs["ratio"] == pytest.approx(120 / 57, rel=0.08)
    lane2 = res.bands[res.bands["lane"] == 2]
    assert lane2["size_bp"].max() == pytest.approx(10000, rel=0.01)
    assert res.bands["mw_kda"].isna().all()


def test_real_gel_dense_bands_volumes_above_the_gel_and_shared_within_their_rows(gel):
    """Between the ladder's dense bands the profile never reaches the gel: the 3 kb / 1.5 kb ratio
    is the masses' (not inflated by a baseline through the valleys, 2.20-2.25 before), and the
    1.2-0.6 kb run's volumes are shared by the components' parts inside their cluster's rows (a
    component hanging past its window took +72-86 % for the 0.9 kb band before)."""
    lad = load_ladder("neb-1kb-plus")
    mass = np.array(lad.masses_ng, float)
    b = quantify_blot(gel).bands
    n19 = 0
    for _, g in b.groupby("lane"):
        if len(g) != 19:
            continue
        n19 += 1
        v = g.sort_values("y_px")["volume"].to_numpy(float)
        err = 100 * np.abs(v / (np.median(v / mass) * mass) - 1)
        assert v[5] / v[7] == pytest.approx(120 / 57, rel=0.03)
        assert err[8:14].mean() < 20
        # the 0.9 kb band, found in the residual on the 1.0 kb band's tail, is no broader than
        # one band may be (+21 to +42 % when it could widen to twice the lane's typical SD)
        assert err[10] < 20
    assert n19 >= 3
