"""TEM benchmark: exoimage beside the textbook recipe on simulated fields, real-check rows, speed.

Run from the repository root (one core is enough; ``--quick`` keeps a full run under ~10 min):

    python benchmarks/bench_tem.py --quick          # fields + real-check + speed (2048^2 only)
    python benchmarks/bench_tem.py                  # the same with more fields per cell, 4096^2 timing
    python benchmarks/bench_tem.py --only fields    # fields | legacy | realcheck | speed | real

fields (issue 13): every :data:`exoimage.simulate.tem_fields.FIELD_SCENARIOS` scenario at each
of its pixel sizes; fields (seeds 1, 2, ...) are added until a cell holds enough truth vesicles
not cut by the border. exoimage runs as every front end runs it (``analyze_tem_image`` on an
array with its pixel size: scale-bar/annotation mask, auto polarity, defaults); the textbook
recipe is :func:`exoimage.simulate.baselines.textbook_tem` (Otsu + fill holes + opening +
distance-transform watershed, equivalent diameter) with the polarity a user would pick by eye
(the scenario's). Matching (:func:`~exoimage.simulate.tem_fields.match_detections`): a
detection matches a truth vesicle when its centre lies within 0.5 x the truth RADIUS of the
truth centre, one to one by the Hungarian assignment (scipy linear_sum_assignment); border-cut
vesicles are out of play. Columns: F1, precision, recall, median |diameter error| and median
bias (found / truth - 1, truth = equivalent-circle diameter of the outer edge), and the false
positives that sit on a non-vesicle object (precipitate, debris, crystal, granular patch, bar, text).

legacy: the original scenarios of :mod:`exoimage.simulate.tem` with their original rule (within
half the truth diameter, closest first) and their original inline textbook recipe, unchanged so
old numbers stay comparable.

realcheck: ``../shared/tools/real-check --only tem --json`` run on this checkout, its rows printed.

speed (issue 14): one file read from disk and analysed end to end in a fresh process on one core
(OpenCV and BLAS limited to one thread), best of N: the floor (reading + one Gaussian pass), the
ratio, peak RSS (ru_maxrss of the process), per-stage times (exclusive CPU-wall time of every
function of ``exoimage.tem.*``, measured by wrapping them in a separate run; the wrapped run is a
little slower than the plain one, whose total is the figure), the textbook recipe and, where
installed, imagedataextractor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

cv2.setNumThreads(1)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exoimage.io import Image, read_image, write_calibrated_tiff  # noqa: E402
from exoimage.simulate.baselines import textbook_tem  # noqa: E402
from exoimage.simulate.tem import SCENARIOS, TemScene, match_to_truth, simulate_tem  # noqa: E402
from exoimage.simulate.tem_fields import FIELD_SCENARIOS, match_detections, simulate_field  # noqa: E402
from exoimage.tem import analyze_tem_image, detect_vesicles, draw_overlay, measure_labels  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
SHARED = ROOT.parent / "shared"
SCEN = ["clean", "mixed", "crowded", "cups", "low_contrast", "uneven"]
PIXELS = [0.5, 1.0, 2.0, 4.0]
#: fields-section targets (issue 13): F1 and median |diameter error| in every cell
TARGET_F1, TARGET_ERR = 0.97, 2.0


# ---------------------------------------------------------------------------------------------
# fields (issue 13)


def run_exoimage(img: np.ndarray, px: float):
    """exoimage as the front ends run it on an array with a pixel size (defaults, auto polarity)."""
    res = analyze_tem_image(Image.from_array(img, px))
    if not res.ok:
        raise RuntimeError(res.image_row.get("error"))
    return res.vesicles


def _pool(ms):
    """Pooled figures of a list of :func:`match_detections` results."""
    tp, fp, fn = (sum(m[k] for m in ms) for k in ("tp", "fp", "fn"))
    e = np.concatenate([m["errors"] for m in ms]) if ms else np.zeros(0)
    fp_on = {}
    for m in ms:
        for k, v in m["fp_on"].items():
            fp_on[k] = fp_on.get(k, 0) + v
    return dict(n=tp + fn, tp=tp, fp=fp, fn=fn,
                f1=2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0,
                precision=tp / (tp + fp) if tp + fp else 1.0, recall=tp / (tp + fn) if tp + fn else 1.0,
                med=float(np.median(np.abs(e))) * 100 if e.size else float("nan"),
                bias=float(np.median(e)) * 100 if e.size else float("nan"), fp_on=fp_on)


def field_cell(scenario: str, px: float, *, quick: bool, min_n: int, max_fields: int):
    """Pooled scores of exoimage and the textbook recipe on fields of one scenario x pixel size."""
    ours, tb, n, fields, secs = [], [], 0, 0, [0.0, 0.0]
    for seed in range(1, max_fields + 1):
        img, truth = simulate_field(scenario, px, seed=seed, quick=quick)
        ves = truth[truth.is_vesicle]
        pol = "dark" if (ves.polarity == "dark").mean() > 0.5 else "light"
        t0 = time.perf_counter()
        ours.append(match_detections(run_exoimage(img, px), truth))
        t1 = time.perf_counter()
        tb.append(match_detections(textbook_tem(img, px, polarity=pol), truth))
        secs[0] += t1 - t0
        secs[1] += time.perf_counter() - t1
        n += ours[-1]["tp"] + ours[-1]["fn"]
        fields += 1
        if n >= min_n:
            break
    return dict(side=img.shape[0], fields=fields, ours=_pool(ours), tb=_pool(tb), secs=secs)


def _fp_on(d):
    return ",".join(f"{k[:6]}{v}" for k, v in sorted(d.items())) or "-"


def fields(quick: bool, only_scen=None):
    min_n, max_fields = (40, 3) if quick else (100, 8)
    print(f"\n== Simulated fields (issue 13): exoimage | textbook Otsu+watershed; >= {min_n} truth vesicles "
          f"per cell or {max_fields} fields; match = centre within 0.5 x truth radius, Hungarian ==")
    hdr = (f"{'scenario':13s} {'nm/px':>5s} {'side':>5s} {'fld':>3s} {'n':>4s} | {'F1':>5s} {'P':>5s} {'R':>5s} "
           f"{'med|e|':>6s} {'bias':>6s} {'FP on non-EV':>12s} | {'F1':>5s} {'P':>5s} {'R':>5s} {'med|e|':>6s} "
           f"{'bias':>6s} {'FP on non-EV':>12s} | {'s ours':>6s} {'s tb':>5s}")
    print(f"{'':34s} | {'exoimage':^47s} | {'textbook':^47s} |")
    print(hdr)
    rows, worst = [], dict(f1=1.0, err=0.0, cell_f1="", cell_err="")
    for sc, spec in FIELD_SCENARIOS.items():
        if only_scen and sc not in only_scen:
            continue
        for px in spec.pixel_sizes:
            c = field_cell(sc, px, quick=quick, min_n=min_n, max_fields=max_fields)
            o, t = c["ours"], c["tb"]
            print(f"{sc:13s} {px:5.2f} {c['side']:5d} {c['fields']:3d} {o['n']:4d} | "
                  f"{o['f1']:5.3f} {o['precision']:5.3f} {o['recall']:5.3f} {o['med']:5.2f}% {o['bias']:+5.1f}% "
                  f"{_fp_on(o['fp_on']):>12s} | {t['f1']:5.3f} {t['precision']:5.3f} {t['recall']:5.3f} "
                  f"{t['med']:5.1f}% {t['bias']:+5.1f}% {_fp_on(t['fp_on']):>12s} | "
                  f"{c['secs'][0]:6.1f} {c['secs'][1]:5.1f}", flush=True)
            rows.append(dict(scenario=sc, px=px, **{f"ours_{k}": v for k, v in o.items()},
                             **{f"tb_{k}": v for k, v in t.items()}))
            if o["f1"] < worst["f1"]:
                worst.update(f1=o["f1"], cell_f1=f"{sc} @ {px}")
            if o["med"] > worst["err"]:
                worst.update(err=o["med"], cell_err=f"{sc} @ {px}")
    allo = [r for r in rows]
    if allo:
        tp = sum(r["ours_tp"] for r in allo)
        fp = sum(r["ours_fp"] for r in allo)
        fn = sum(r["ours_fn"] for r in allo)
        print(f"exoimage overall F1 {2 * tp / max(1, 2 * tp + fp + fn):.3f} (tp {tp}, fp {fp}, fn {fn}); worst cell "
              f"F1 {worst['f1']:.3f} ({worst['cell_f1']}; target >= {TARGET_F1}), worst median |diameter error| "
              f"{worst['err']:.2f} % ({worst['cell_err']}; target <= {TARGET_ERR} %)")
    OUT.mkdir(parents=True, exist_ok=True)
    import pandas as pd
    pd.DataFrame([{k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in r.items()} for r in rows]).to_csv(
        OUT / "bench_tem_fields.csv", index=False)
    return rows


# ---------------------------------------------------------------------------------------------
# legacy: the original scenarios, rule and textbook recipe (unchanged)

def textbook(img: np.ndarray, px: float, min_d_nm: float = 30.0):
    """Otsu + fill holes + distance-transform watershed (the common Fiji/scikit-image recipe)."""
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    sm = ndi.gaussian_filter(img.astype(np.float32), 1.5)
    fg = ndi.binary_fill_holes(sm > threshold_otsu(sm))
    min_r = min_d_nm / 2 / px
    fg = ndi.binary_opening(fg, iterations=max(1, int(min_r / 3)))
    dt = ndi.distance_transform_edt(fg)
    peaks = peak_local_max(dt, min_distance=max(2, int(min_r)), labels=ndi.label(fg)[0])
    markers = np.zeros(img.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    lab = watershed(-dt, markers, mask=fg)
    t = measure_labels(lab, px)
    return t[(t.diameter_nm >= min_d_nm) | t.touches_border]


def accuracy(seeds, min_n=60):
    print(f"\n== Accuracy on simulated fields (2048^2 at <= 1 nm/px, else 1024^2; >= {min_n} vesicles "
          "per row) ==")
    print(f"{'scenario':13s} {'nm/px':>5s} {'n':>4s} | {'F1':>6s} {'med|err|':>8s} {'bias':>7s} | "
          f"{'F1 otsu':>7s} {'med|err|':>8s} {'bias':>7s}")
    worst = {"f1": 1.0, "err": 0.0}
    for sc in SCEN:
        for px in PIXELS:
            agg = {"ours": [], "tb": []}
            n = 0
            size = 2048 if px <= 1.0 else 1024
            for seed in range(1, 40):
                if n >= min_n and seed > len(seeds):
                    break
                img, truth = simulate_tem(TemScene(shape=(size, size), pixel_size_nm=px, **SCENARIOS[sc]),
                                          seed=seed)
                truth["pixel_size_nm"] = px
                agg["ours"].append(match_to_truth(detect_vesicles(img, px).table, truth))
                agg["tb"].append(match_to_truth(textbook(img, px), truth))
                n += agg["ours"][-1]["tp"] + agg["ours"][-1]["fn"]
            row = []
            for k in ("ours", "tb"):
                tp = sum(m["tp"] for m in agg[k])
                fp = sum(m["fp"] for m in agg[k])
                fn = sum(m["fn"] for m in agg[k])
                f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
                e = np.concatenate([m["errors"] for m in agg[k]])
                med = float(np.median(np.abs(e))) * 100 if e.size else float("nan")
                bias = float(np.median(e)) * 100 if e.size else float("nan")
                row += [f1, med, bias]
                if k == "ours":
                    worst["f1"] = min(worst["f1"], f1)
                    worst["err"] = max(worst["err"], med)
            print(f"{sc:13s} {px:5.1f} {n:4d} | {row[0]:6.3f} {row[1]:7.2f}% {row[2]:+6.2f}% | "
                  f"{row[3]:7.3f} {row[4]:7.2f}% {row[5]:+6.2f}%")
    print(f"worst scenario: F1 {worst['f1']:.3f} (target >= 0.97), "
          f"median |diameter error| {worst['err']:.2f} % (target <= 2 %)")



# ---------------------------------------------------------------------------------------------
# real-check TEM rows


def realcheck():
    tool = SHARED / "tools" / "real-check"
    if not tool.exists():
        print("\n(real-check rows: ../shared absent, skipped)")
        return None
    print("\n== real-check --only tem (real micrographs; this checkout) ==")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, str(tool), "--only", "tem", "--json"], capture_output=True, text=True,
                       env=env, cwd=str(ROOT), timeout=900)
    try:
        res = json.loads(p.stdout)
    except json.JSONDecodeError:
        print(f"real-check gave no JSON (exit {p.returncode}): {p.stderr.strip().splitlines()[-1:]}")
        return None
    print(f"exoimage {res['exoimage'].get('version')} from {res['exoimage'].get('path')}")
    for r in res["checks"]:
        ok = {True: "PASS", False: "FAIL", None: "info"}[r["passed"]]
        print(f"  {ok:4s}  {r['check']}: {r['figure']}  [target: {r['target']}]")
    print(f"  real-check tem: {res['passed']}/{res['total']} pass ({res['seconds']} s)")
    return res


# ---------------------------------------------------------------------------------------------
# speed (issue 14)


def _instrument():
    """Wrap every function of ``exoimage.tem.*`` (in every module namespace that holds it) with an
    exclusive-time counter; returns the {name: [seconds, calls]} dict it fills."""
    import functools
    import importlib
    import inspect
    import pkgutil

    import exoimage.tem as pkg

    mods = [importlib.import_module(f"exoimage.tem.{m.name}") for m in pkgutil.iter_modules(pkg.__path__)]
    mods.append(pkg)
    acc, stack = {}, []

    def wrap(f):
        name = f"{f.__module__.rsplit('.', 1)[-1]}.{f.__name__}"

        @functools.wraps(f)
        def w(*a, **k):
            stack.append(0.0)
            t0 = time.process_time()
            try:
                return f(*a, **k)
            finally:
                dt = time.process_time() - t0
                child = stack.pop()
                if stack:
                    stack[-1] += dt
                s = acc.setdefault(name, [0.0, 0])
                s[0] += dt - child
                s[1] += 1
        return w

    funcs = {}
    for m in mods:
        for obj in vars(m).values():
            if inspect.isfunction(obj) and obj.__module__.startswith("exoimage.tem"):
                funcs[id(obj)] = obj
    wrapped = {i: wrap(f) for i, f in funcs.items()}
    for m in mods:
        for name, obj in list(vars(m).items()):
            if id(obj) in wrapped:
                setattr(m, name, wrapped[id(obj)])
    return acc


def _time_child(path: str, what: str, px: str = "") -> None:
    """Run inside a fresh process: time one pipeline; print JSON {seconds, rss_mb, stages}."""
    import resource

    pxv = float(px) if px else None
    stages = _instrument() if what == "ours-stages" else None
    if what.startswith("ours"):  # import cost out of the timing, as in a batch worker
        import exoimage.tem.pipeline  # noqa: F401
    if what == "ide":
        import imagedataextractor  # noqa: F401
    t0, c0 = time.perf_counter(), time.process_time()
    img = read_image(path, pixel_size_nm=pxv)
    t_read = time.process_time() - c0
    if what == "floor":
        cv2.GaussianBlur(img.data.astype(np.float32), (0, 0), 2.0)
    elif what.startswith("ours"):
        from exoimage.tem import analyze_tem_image as _an  # the (possibly wrapped) pipeline
        res = _an(img)
        assert res.ok, res.image_row.get("error")
    elif what == "textbook":
        textbook_tem(img.displayed(np.float32), img.pixel_size_nm)
    elif what == "ide":
        import imagedataextractor as ide
        ide.extract(path)  # its own pipeline on the file (as published)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = dict(seconds=cpu, wall=wall, read=t_read, rss_mb=rss)
    if stages is not None:
        out["stages"] = {k: v for k, v in stages.items()}
    print(json.dumps(out))


def _child(path, what, px, timeout=600):
    p = subprocess.run([sys.executable, __file__, "--child", str(path), what, str(px or "")],
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _have(mod):
    import importlib.util
    return importlib.util.find_spec(mod) is not None


def speed(sizes, pixels=(1.0, 1.6), repeats=3, stages=True):
    print(f"\n== Speed and memory (one core, fresh process, read + analyse; CPU seconds of the process, "
          f"best of {repeats}) ==")
    OUT.mkdir(parents=True, exist_ok=True)
    cases = []
    for size in sizes:
        for px in pixels:
            img, truth = simulate_tem(TemScene(shape=(size, size), pixel_size_nm=px, **SCENARIOS["mixed"]), seed=1)
            path = OUT / f"speed_{size}_{px}.tif"
            write_calibrated_tiff(path, img, px)
            nves = int((truth.kind == "vesicle").sum())
            cases.append((f"{size}^2 @ {px} nm/px, {nves} vesicles", path, None))
    scan = SHARED / "data" / "real" / "ev_tem_negative_stain.jpg"
    if scan.exists():
        cases.append(("real ScanEV 3072^2 @ 0.624 nm/px (JPEG)", scan, 0.624))
    ide = _have("imagedataextractor")
    whats = ["floor", "ours", "textbook"] + (["ide"] if ide else [])
    print(f"{'field':42s} | {'floor s':>7s} | {'exoimage s':>10s} {'x floor':>7s} {'RSS MB':>7s} | "
          f"{'textbook s':>10s} {'RSS MB':>7s}" + (f" | {'IDE s':>6s}" if ide else ""))
    all_stages, res_plain = [], {}
    for label, path, px in cases:
        res = {}
        for what in whats:
            best, mem = np.inf, 0.0
            for _ in range(1 if what == "ide" else repeats):
                try:
                    r = _child(path, what, px)
                except Exception as exc:  # noqa: BLE001 -- report, go on
                    print(f"  {what} on {label}: failed ({exc})")
                    best = float("nan")
                    break
                best, mem = min(best, r["seconds"]), max(mem, r["rss_mb"])
            res[what] = (best, mem)
        f, o, t = res["floor"], res["ours"], res["textbook"]
        res_plain[label] = o[0]
        line = (f"{label:42s} | {f[0]:7.3f} | {o[0]:10.3f} {o[0] / f[0]:6.1f}x {o[1]:7.0f} | "
                f"{t[0]:10.3f} {t[1]:7.0f}")
        if ide:
            line += f" | {res['ide'][0]:6.2f}"
        print(line, flush=True)
        if stages:
            try:
                all_stages.append((label, _child(path, "ours-stages", px)))
            except Exception as exc:  # noqa: BLE001
                print(f"  per-stage run on {label}: failed ({exc})")
    if not ide:
        print("imagedataextractor: not installed here, not measured")
    for label, r in all_stages:
        st = sorted(r["stages"].items(), key=lambda kv: -kv[1][0])
        total = r["seconds"] - r["read"]
        named = sum(v[0] for v in r["stages"].values())
        print(f"\nper-stage exclusive CPU time, {label} (wrapped run: analyse {total:.3f} s, "
              f"read {r['read']:.3f} s):")
        for k, (sec, calls) in st:
            if sec < 0.005 * max(total, 1e-9):
                continue
            print(f"  {k:42s} {sec:7.3f} s {100 * sec / max(total, 1e-9):5.1f} %  ({calls} calls)")
        print(f"  {'(outside exoimage.tem functions)':42s} {max(0.0, total - named):7.3f} s")
        print(f"  {'(instrumentation overhead vs the plain run)':42s} "
              f"{total - (res_plain.get(label, total) - r['read']):+7.3f} s")
    print("not measured here: the scale-bar search of read_image (the synthetic files are calibrated; "
          "ScanEV is given --pixel-size), batch/Dask costs (benchmarks/bench_run.py)")


def real():
    path = ROOT.parent / "shared" / "data" / "real" / "ev_tem_negative_stain.jpg"
    if not path.exists():
        print("\n(real micrograph not available: ../shared absent)")
        return
    print("\n== Real micrograph (ev_tem_negative_stain.jpg) ==")
    img = read_image(path, scale_bar="auto")  # as `exoimage tem` and the napari reader read it
    px_src = img.pixel_size_source
    if img.pixel_size_nm is None:
        print(f"scale bar not read ({'; '.join(img.warnings)}); using the hand-measured 0.624 nm/px")
        img.pixel_size_nm, px_src = 0.624, "hand-measured"
    from exoimage.tem import analyze_tem_image
    t0 = time.perf_counter()
    res = analyze_tem_image(img, name=path.name)
    dt = time.perf_counter() - t0
    OUT.mkdir(parents=True, exist_ok=True)
    from exoimage.outputs import save_png
    save_png(OUT / "real_tem_overlay.png", draw_overlay(res.display, res.labels, res.vesicles))
    print(f"pixel size {img.pixel_size_nm:.4f} nm ({px_src}); {len(res.vesicles)} objects in {dt:.2f} s; "
          f"overlay: {OUT / 'real_tem_overlay.png'}")
    print(res.vesicles[["vesicle_id", "x_px", "y_px", "diameter_nm", "touches_border", "contrast_snr"]]
          .to_string(index=False))




def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller fields, fewer per cell, 2048^2 timing only")
    ap.add_argument("--child", nargs=3, metavar=("PATH", "WHAT", "PX"), help=argparse.SUPPRESS)
    ap.add_argument("--only", choices=["fields", "legacy", "realcheck", "speed", "real"], action="append")
    ap.add_argument("--scenario", action="append", help="fields: only these scenarios")
    a = ap.parse_args()
    if a.child:
        _time_child(*a.child)
        return
    only = set(a.only or ["fields", "realcheck", "speed"] + ([] if a.quick else ["legacy", "real"]))
    t0 = time.perf_counter()
    if "fields" in only:
        fields(a.quick, a.scenario)
    if "legacy" in only:
        accuracy([1] if a.quick else [1, 2])
    if "realcheck" in only:
        realcheck()
    if "real" in only:
        real()
    if "speed" in only:
        speed([2048] if a.quick else [2048, 4096], repeats=2 if a.quick else 3)
    print(f"\nbench_tem: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
