"""Benchmark of ``exoimage blot`` on simulated blots (truth known) and the real images.

Run:  python benchmarks/bench_blot.py [--quick]

Prints, for exoimage and for a Gel-Analyzer recipe baseline (equal fixed lanes,
mean lane profile, straight baseline under each peak): lanes found exactly,
median / 90th-percentile relative band-volume error (after one scale factor per
row), target/control ratio error, dilution-series R², saturation flags; then
blots with a single protein row (sharp, faint, or a smear only) beside a ladder
(the sample experiment's geometry); then the two real images (overlays in benchmarks/out/) and the speed on a
1648x1200 16-bit blot on one core.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.signal import find_peaks

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exoimage.blot import BlotParams, analyze_blot_file, draw_blot_overlay, quantify_blot  # noqa: E402
from exoimage.outputs import save_png  # noqa: E402
from exoimage.simulate.blot import scenario  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
SHARED = ROOT.parent / "shared" / "data" / "real"


def match_bands(found: pd.DataFrame, truth: pd.DataFrame, lane_map: dict, tol_px: float = 6.0) -> pd.DataFrame:
    """Pair truth bands with found bands (same lane, nearest y within tol, one-to-one)."""
    rows = []
    for tl, fl in lane_map.items():
        t = truth[truth["lane"] == tl]
        f = found[found["lane"] == fl]
        used = set()
        for r in t.sort_values("volume", ascending=False).itertuples():
            tol = tol_px if r.kind == "sharp" else 25.0
            if len(f) == 0:
                rows.append(dict(lane=tl, row=r.row, truth=r.volume, found=np.nan, sat_t=r.saturated, sat_f=False))
                continue
            d = (f["y_px"] - r.y_px).abs()
            d = d[~d.index.isin(used)]
            if len(d) and d.min() <= tol:
                i = d.idxmin()
                used.add(i)
                rows.append(dict(lane=tl, row=r.row, truth=r.volume, found=f.loc[i, "volume"],
                                 sat_t=r.saturated, sat_f=bool(f.loc[i, "saturated"])))
            else:
                rows.append(dict(lane=tl, row=r.row, truth=r.volume, found=np.nan, sat_t=r.saturated, sat_f=False))
    return pd.DataFrame(rows)


def rel_errors(m: pd.DataFrame) -> np.ndarray:
    """Relative errors after one least-squares scale factor per row (ladder and saturated excluded)."""
    errs = []
    m = m[(m["row"] > 0) & ~m["sat_t"] & m["found"].notna()]
    for _, g in m.groupby("row"):
        s = np.sum(g["found"] * g["truth"]) / np.sum(g["truth"] ** 2)
        errs += list(np.abs(g["found"] / (s * g["truth"]) - 1))
    return np.array(errs)


def lane_map_for(found_lanes: pd.DataFrame, truth_lanes: pd.DataFrame, pitch: float):
    """truth lane -> found lane when every truth lane has exactly one found lane within 0.25 pitch."""
    mp = {}
    ok = len(found_lanes) == len(truth_lanes)
    for t in truth_lanes.itertuples():
        d = (found_lanes["x_center_px"] - t.x_center_px).abs()
        if len(d) and d.min() <= 0.25 * pitch:
            mp[t.lane] = int(found_lanes.loc[d.idxmin(), "lane"])
        else:
            ok = False
    return mp, ok and len(set(mp.values())) == len(mp)


# --------------------------------------------------------------------------
# Gel-Analyzer recipe baseline


def gel_analyzer(data: np.ndarray, n_lanes: int, x0: float, x1: float, light: bool) -> pd.DataFrame:
    """ImageJ Gel Analyzer recipe: equal rectangles, mean profile across the lane,
    a straight line under each peak between the profile minima around it."""
    s = data.astype(float) if light else float(np.iinfo(data.dtype).max) - data.astype(float)
    w = (x1 - x0) / n_lanes
    rows = []
    for i in range(n_lanes):
        a, b = int(round(x0 + i * w)), int(round(x0 + (i + 1) * w))
        prof = s[:, a:b].mean(axis=1)
        ps = ndi.gaussian_filter1d(prof, 1.5)
        noise = 1.4826 * np.median(np.abs(np.diff(ps))) + 1e-9
        pk, pr = find_peaks(ps, prominence=8 * noise)
        mins = [0] + [int(np.argmin(ps[p1:p2]) + p1) for p1, p2 in zip(pk[:-1], pk[1:])] + [len(ps) - 1]
        for j, p in enumerate(pk):
            lo = int(pr["left_bases"][j]) if j == 0 else mins[j]
            hi = int(pr["right_bases"][j]) if j == len(pk) - 1 else mins[j + 1]
            lo = max(lo, p - 60)
            hi = min(hi, p + 60)
            xs = np.arange(lo, hi + 1)
            line = np.interp(xs, [lo, hi], [ps[lo], ps[hi]])
            area = float(np.clip(prof[lo:hi + 1] - line, 0, None).sum())
            rows.append(dict(lane=i + 1, y_px=float(p), volume=area, saturated=False))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------


def run_sim(n_seeds: int = 3):
    scen = ["clean", "realistic", "dilution", "saturated", "film", "12bit"]
    stats = {k: dict(lanes_ok=0, n=0, errs=[], ratio=[], r2=[], sat_tp=0, sat_fn=0, sat_fp=0, missed=0, truth=0)
             for k in ("exoimage", "gel-analyzer")}
    per_scen = []
    for sc in scen:
        for seed in range(n_seeds):
            sim = scenario(sc, seed=100 + seed)
            tl = sim.lanes
            pitch = float(np.median(np.diff(tl["x_center_px"])))
            res = quantify_blot(sim.data, ladder_lane=1, ladder_kda=sim.settings["ladder_kda"],
                                background=os.environ.get("BLOT_BACKGROUND", "auto"))
            x0 = float(tl["x_left_px"].min() - 0.15 * pitch)
            x1 = float(tl["x_right_px"].max() + 0.15 * pitch)
            ga = gel_analyzer(sim.data, len(tl), x0, x1, sim.settings["polarity"] == "light-bands")
            ga_lanes = pd.DataFrame({"lane": np.arange(1, len(tl) + 1),
                                     "x_center_px": x0 + (np.arange(len(tl)) + 0.5) * (x1 - x0) / len(tl)})
            for tool, found, flanes in (("exoimage", res.bands, res.lanes), ("gel-analyzer", ga, ga_lanes)):
                st = stats[tool]
                mp, ok = lane_map_for(flanes, tl, pitch)
                st["n"] += 1
                st["lanes_ok"] += int(ok)
                m = match_bands(found, sim.bands, mp)
                st["missed"] += int(m["found"].isna().sum())
                st["truth"] += len(m)
                e = rel_errors(m)
                st["errs"] += list(e)
                if tool == "exoimage":
                    per_scen.append((sc, seed, ok, np.median(e) if len(e) else np.nan,
                                     np.percentile(e, 90) if len(e) else np.nan, m["found"].isna().sum()))
                # ratio: alix (row 1) / control (row 5) per lane, relative to the first sample lane
                good = m[(m["row"] > 0)]
                piv_t = good.pivot_table(index="lane", columns="row", values="truth")
                piv_f = good.pivot_table(index="lane", columns="row", values="found")
                sat_lanes = set(m.loc[m["sat_t"], "lane"])
                if 1 in piv_t and 5 in piv_t:
                    rt = (piv_t[1] / piv_t[5]).drop(index=list(sat_lanes), errors="ignore")
                    rf = (piv_f.get(1) / piv_f.get(5)).reindex(rt.index)
                    ref = rt.index[0]
                    rel_t, rel_f = rt / rt[ref], rf / rf[ref]
                    st["ratio"] += list(np.abs(rel_f / rel_t - 1).dropna())
                if sc == "dilution":
                    loads = [1.0, 0.5, 0.25, 0.125, 1.0, 0.5, 0.25]
                    for row in (1, 5):
                        if row in piv_f:
                            y = piv_f[row].reindex(range(2, 9)).to_numpy()
                            x = np.array(loads)
                            k = np.isfinite(y)
                            if k.sum() >= 3:
                                st["r2"].append(np.corrcoef(x[k], y[k])[0, 1] ** 2)
                st["sat_tp"] += int((m["sat_t"] & m["sat_f"]).sum())
                st["sat_fn"] += int((m["sat_t"] & ~m["sat_f"]).sum())
                st["sat_fp"] += int((~m["sat_t"] & m["sat_f"]).sum())
    print("\nper scenario (exoimage): scenario seed lanes_exact median_err p90_err missed_bands")
    for r in per_scen:
        print(f"  {r[0]:10s} {r[1]} {str(r[2]):5s} {100 * r[3]:6.2f}% {100 * r[4]:6.2f}% {r[5]}")
    print(f"\nsimulated blots: {len(scen)} scenarios x {n_seeds} seeds")
    print(f"{'metric':38s} {'exoimage':>12s} {'gel-analyzer':>14s}   target")
    def fmt(tool, key):
        st = stats[tool]
        if key == "lanes":
            return f"{st['lanes_ok']}/{st['n']}"
        if key in ("med", "p90"):
            e = np.array(st["errs"])
            if not len(e):
                return "n/a"
            return f"{100 * (np.median(e) if key == 'med' else np.percentile(e, 90)):.2f} %"
        if key == "ratio":
            e = np.array(st["ratio"])
            return f"{100 * np.median(e):.2f} %" if len(e) else "n/a"
        if key == "ratio90":
            e = np.array(st["ratio"])
            return f"{100 * np.percentile(e, 90):.2f} %" if len(e) else "n/a"
        if key == "r2":
            return f"{min(st['r2']):.4f}" if st["r2"] else "n/a"
        if key == "sat":
            return f"{st['sat_tp']}/{st['sat_tp'] + st['sat_fn']} (fp {st['sat_fp']})"
        if key == "nb":
            return str(len(st["errs"]))
        if key == "missed":
            return f"{st['missed']}/{st['truth']}"
    for label, key, target in (("lanes found exactly", "lanes", "all"),
                               ("truth bands not found (incl. ladder)", "missed", ""),
                               ("bands compared (not ladder/saturated)", "nb", ""),
                               ("median rel. band-volume error", "med", "<= 2 %"),
                               ("p90 rel. band-volume error", "p90", "<= 6 %"),
                               ("target/control ratio error (median)", "ratio", "<= 2 %"),
                               ("target/control ratio error (p90)", "ratio90", ""),
                               ("dilution R^2 (worst row)", "r2", ">= 0.995"),
                               ("saturated bands flagged", "sat", "all, fp 0")):
        print(f"{label:38s} {fmt('exoimage', key):>12s} {fmt('gel-analyzer', key):>14s}   {target}")


# few band rows: the geometry of the sample experiment's marker blots (7 lanes with the
# ladder in lane 1, 420 px tall, one protein row; sample_images/make_samples.py)
FEW_ROWS = {
    # a CD63 smear only (no sharp sample band at all), on the default blotchy background
    "smear-only": dict(rows=[("cd63", 42.0, "smear", 1.0e6, 0.0)], loads=[1.0, 1.0, 1.8, 1.8, 0.6, 0.6]),
    # the same smear on a smooth (gradient only) background
    "smear-smooth": dict(rows=[("cd63", 42.0, "smear", 1.0e6, 0.0)], loads=[1.0, 1.0, 1.8, 1.8, 0.6, 0.6],
                         blotchy=0.0),
    # one sharp row, the ladder brighter than any sample band (TSG101)
    "one-sharp": dict(rows=[("tsg101", 44.0, "sharp", 4.0e5, 3.0)], loads=[1.0, 1.0, 1.3, 1.3, 0.7, 0.7]),
    # one row, faint in four lanes (calnexin: 0.05 vs 0.6)
    "one-faint": dict(rows=[("calnexin", 90.0, "sharp", 4.0e5, 3.0)],
                      loads=[0.05, 0.05, 0.05, 0.05, 0.6, 0.6]),
}


def run_few_rows(n_seeds: int = 3):
    """Blots with a single protein row (sharp, faint or a smear only) and a ladder."""
    from exoimage.simulate.blot import simulate_blot

    print("\nfew band rows (7 lanes incl. ladder, 420 px, one row): scenario seed lanes_exact "
          "ladder_is_lane1 median_err max_err missed mw_err(median)")
    summary = {}
    for sc, kw in FEW_ROWS.items():
        for seed in range(n_seeds):
            kw2 = dict(kw)
            rng = np.random.default_rng(seed)
            kw2["loads"] = [v * rng.uniform(0.92, 1.08) for v in kw["loads"]]
            sim = simulate_blot(n_lanes=7, height=420, seed=300 + seed, smile_px=3.0, noise=1.0, dust=2, **kw2)
            tl = sim.lanes
            pitch = float(np.median(np.diff(tl["x_center_px"])))
            res = quantify_blot(sim.data, ladder_lane=1, ladder_kda=sim.settings["ladder_kda"])
            mp, ok = lane_map_for(res.lanes, tl, pitch)
            lad = ok and mp.get(1) == 1
            m = match_bands(res.bands, sim.bands, mp)
            e = rel_errors(m)
            t = sim.bands[~sim.bands["is_ladder"]]
            mw = []
            for r in t.itertuples():
                f = res.bands[(res.bands["lane"] == mp.get(r.lane, -1))]
                if len(f):
                    i = (f["y_px"] - r.y_px).abs().idxmin()
                    mw.append(abs(f.loc[i, "mw_kda"] / r.kda - 1))
            mw_med = float(np.nanmedian(mw)) if mw else np.nan
            miss = int(m.loc[m["row"] > 0, "found"].isna().sum())
            st = summary.setdefault(sc, dict(ok=0, n=0, errs=[], mw=[], missed=0))
            st["ok"] += int(ok and lad)
            st["n"] += 1
            st["errs"] += list(e)
            st["mw"].append(mw_med)
            st["missed"] += miss
            print(f"  {sc:12s} {seed} {str(ok):5s} {str(lad):5s} {100 * np.median(e) if len(e) else np.nan:6.2f}% "
                  f"{100 * e.max() if len(e) else np.nan:6.2f}% {miss} {100 * mw_med:5.1f}%")
    print(f"{'scenario':14s} {'lanes+ladder':>12s} {'median err':>11s} {'p90 err':>8s} {'missed':>7s} {'mw err':>7s}")
    for sc, st in summary.items():
        e = np.array(st["errs"])
        print(f"{sc:14s} {st['ok']:>9d}/{st['n']:<2d} {100 * np.median(e):10.2f}% {100 * np.percentile(e, 90):7.2f}% "
              f"{st['missed']:>7d} {100 * np.nanmax(st['mw']):6.1f}%")


def run_real():
    OUT.mkdir(parents=True, exist_ok=True)
    if not SHARED.exists():
        print("\nreal images: ../shared absent, skipped")
        return
    for fn in ("wb_rhoa_chemi_16bit.tif", "dna_ladder_gel_8bit.tif"):
        p = SHARED / fn
        t = time.perf_counter()
        r = analyze_blot_file(p, BlotParams())
        dt = time.perf_counter() - t
        if not r.ok:
            print(f"{fn}: error {r.image_row['error']}")
            continue
        pieces = r.lanes.groupby("piece").size().to_dict()
        print(f"\n{fn}: {len(r.lanes)} lanes (per piece {pieces}), {len(r.bands)} bands, "
              f"{r.image_row['n_rows']} rows, {dt:.2f} s; bands per lane "
              f"{r.bands.groupby('lane').size().to_dict()}")
        out = OUT / f"{Path(fn).stem}_overlay.png"
        save_png(out, draw_blot_overlay(r.image, r.result, max_side=1400))
        print(f"  overlay: {out}")


# NEB 1 kb Plus DNA Ladder: ng per band per 1 ug, top to bottom (exoimage/blot/ladders/neb_1kb_plus.toml)
NEB_RATIO_IDX = (5, 7)  # 3 kb and 1.5 kb in the 19-band list


def _ladder_figures(bands: pd.DataFrame, mass: np.ndarray):
    """real-check's rule: per lane (bands top to bottom) the count; for lanes with all 19 bands
    the mean |volume / (median scale * mass) - 1| and the 3 kb / 1.5 kb volume ratio."""
    counts, errs, ratios = [], [], []
    for _, b in bands.groupby("lane"):
        b = b.sort_values("y_px")
        counts.append(len(b))
        if len(b) != len(mass):
            continue
        v = b["volume"].to_numpy(float)
        k = np.median(v / mass)
        errs += list(np.abs(v / (k * mass) - 1))
        ratios.append(v[NEB_RATIO_IDX[0]] / v[NEB_RATIO_IDX[1]])
    return counts, errs, ratios


def run_ladder():
    """The real NEB 1 kb Plus gel: bands per lane, volume vs the vendor's masses, 3 kb / 1.5 kb,
    exoimage (automatic, real-check's rule; and with --ladder, its mass check on the bands it
    matched to sizes) beside the Gel-Analyzer recipe on the same lanes."""
    from exoimage.blot.ladders import load_ladder

    p = SHARED / "dna_ladder_gel_8bit.tif"
    if not p.exists():
        print("\nladder gel: ../shared absent, skipped")
        return
    neb = load_ladder("neb-1kb-plus")
    mass = np.array(neb.masses_ng, float)
    target = neb.masses_ng[NEB_RATIO_IDX[0]] / neb.masses_ng[NEB_RATIO_IDX[1]]
    r = analyze_blot_file(p, BlotParams())
    lanes = r.lanes
    pitch = float(np.median(np.diff(lanes["x_center_px"]))) if len(lanes) > 1 else 100.0
    x0 = float(lanes["x_left_px"].min() - 0.15 * pitch)
    x1 = float(lanes["x_right_px"].max() + 0.15 * pitch)
    ga = gel_analyzer(r.image.data, len(lanes), x0, x1, True)
    print(f"\nladder gel (NEB 1 kb Plus, 19 bands/lane; target mean |err| <= 10 %, 3kb/1.5kb {target:.3f} +- 3 %)")
    print(f"{'metric':38s} {'exoimage':>26s} {'gel-analyzer':>26s}")
    figs = {}
    for tool, b in (("exoimage", r.bands), ("gel-analyzer", ga)):
        c, e, q = _ladder_figures(b, mass)
        figs[tool] = (",".join(map(str, c)), f"{100 * np.mean(e):.1f} %" if e else "n/a (no 19-band lane)",
                      ",".join(f"{x:.3f}" for x in q) or "n/a")
    for i, label in enumerate(("bands per lane", "mean |err| vs mass (19-band lanes)", "3kb/1.5kb per lane")):
        print(f"{label:38s} {figs['exoimage'][i]:>26s} {figs['gel-analyzer'][i]:>26s}")
    # with the ladder named: sizes assigned (missing ones chosen by the log-size fit), mass check,
    # with the default background and with the gel beside the lane (edge) named
    for bg in ("auto", "edge"):
        for lane in sorted(lanes["lane"]):
            rr = analyze_blot_file(p, BlotParams(ladder_lane=int(lane), ladder="neb-1kb-plus", background=bg))
            t = rr.result.ladder.get("check") if rr.ok else None
            if t is None or not len(t):
                print(f"  --ladder neb-1kb-plus --background {bg}, lane {lane}: no mass check")
                continue
            top = t[t["size"] >= 1000]
            print(f"  --ladder neb-1kb-plus --background {bg:5s} lane {lane}: {len(t)}/{len(mass)} bands matched, "
                  f"mean |err| {t.attrs['mean_abs_error_pct']:5.1f} % (10-1 kb: {top['error_pct'].abs().mean():4.1f} %), "
                  f"3kb/1.5kb {t.attrs.get('ratio', np.nan):.3f}")


def run_speed():
    sim = scenario("realistic", seed=5, n_lanes=14, height=1648, width=1200)
    data = sim.data
    quantify_blot(data)  # warm-up
    ts, cpu = [], []
    for _ in range(7):
        t, c = time.perf_counter(), time.process_time()
        quantify_blot(data)
        ts.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    print(f"\nspeed: {data.shape[1]}x{data.shape[0]} {data.dtype} blot ({len(sim.lanes)} lanes), one thread: "
          f"wall median {np.median(ts):.3f} s (min {min(ts):.3f} s), CPU median {np.median(cpu):.3f} s "
          f"per image   target <= 0.25 s   (machine load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="Blot benchmark: exoimage beside a Gel Analyzer recipe on simulated "
                                             "blots, few-row blots, the real sample blots, the ladder gel, speed.")
    ap.add_argument("--quick", action="store_true", help="one seed per scenario instead of three")
    quick = ap.parse_args().quick
    run_sim(1 if quick else 3)
    run_few_rows(1 if quick else 3)
    run_real()
    run_ladder()
    run_speed()
