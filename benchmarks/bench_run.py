"""Batch benchmark: a whole simulated experiment with 1 and 2 workers, a separate Dask
cluster, and a run killed midway then resumed.

    python benchmarks/bench_run.py                 # 200 TEM fields of 2048^2 + 20 blots (several minutes)
    python benchmarks/bench_run.py --tem 40 --blots 4   # a quicker look
    python benchmarks/bench_run.py --tem 6 --blots 0 --only overhead workers sample

Prints (``--only`` picks the parts):

* ``overhead``: per TEM image, in this process, the CPU time of detection (``analyze_tem_image``)
  against the rest of its task (reading the file with the scale-bar step, overlay, PNG, label
  TIFF, gallery pictures, record, cache entry; target <= 0.15 s), and the scale-bar step alone;
* ``workers``: wall time with 1 and 2 local workers and the speed-up (target >= 1.85x), the CPU
  time the worker processes and this process used per image, the speed-up the CPU times allow on
  two free cores (2 x CPU(1) / CPU(2): steadier than wall time when the cores are shared), the
  peak memory (max RSS) of a worker, and whether the tables are identical;
* ``cluster``: a separately started dask.distributed cluster (2 workers);
* ``resume``: what a resumed run reused and recomputed after ``kill -9``;
* ``sample``: ``exoimage run sample_images`` end to end in a fresh process (target <= 8 s): wall
  and CPU (the process and its workers), and the executor the run chose.

The machine's cores may be shared: CPU times are steadier than wall times. ``--repeat N`` runs the
``workers`` and ``sample`` parts N times and prints the median and the best of each figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exoimage.experiment import load_experiment  # noqa: E402
from exoimage.io import write_calibrated_tiff  # noqa: E402
from exoimage.experiment.run import run_experiment  # noqa: E402
from exoimage.simulate.blot import simulate_blot  # noqa: E402
from exoimage.simulate.tem import SCENARIOS, TemScene, simulate_tem  # noqa: E402

TABLES = ["vesicles", "images", "bands", "lanes", "normalized", "samples", "qc"]


def make_experiment(root: Path, n_tem: int, n_blots: int, size: int = 2048) -> None:
    if root.exists():
        return
    samples = ["S1", "S2", "S3", "S4"]
    for i in range(n_tem):
        s = samples[i % len(samples)]
        px = float(np.round(np.geomspace(0.8, 1.6, 5)[i % 5], 3))  # 1.6-3.3 um fields, 20-80 vesicles
        img, _ = simulate_tem(TemScene(shape=(size, size), pixel_size_nm=px, **SCENARIOS["mixed"]), seed=i)
        write_calibrated_tiff(root / "tem" / s / f"field_{i:03d}.tif", img, px)
    (root / "blots").mkdir(parents=True, exist_ok=True)
    for j in range(n_blots):
        sim = simulate_blot(n_lanes=9, seed=j)
        tifffile.imwrite(root / "blots" / f"blot_{j:02d}.tif", sim.data, compression="zlib")
        pd.DataFrame({"lane": range(1, 10), "sample": ["ladder"] + [samples[k % 4] for k in range(8)],
                      "group": [""] + [f"r{k // 4 + 1}" for k in range(8)]}).to_csv(
            root / "blots" / f"blot_{j:02d}.lanes.csv", index=False)


def overhead(exp_dir, out, n_max: int = 8):
    """Per TEM image (in this process): CPU s of detection and of the rest of its task."""
    import exoimage.tem as tem_pkg
    import exoimage.tem.pipeline as pipe
    from exoimage.experiment.batch import _binding, _params_for, process_task
    from exoimage.io import read_image, sha256_file

    exp = load_experiment(exp_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    det = []
    orig = pipe.analyze_tem_image

    def timed_detect(*a, **k):
        c = time.process_time()
        try:
            return orig(*a, **k)
        finally:
            det.append(time.process_time() - c)

    rows = []
    pipe.analyze_tem_image = timed_detect
    try:
        for t in sorted(exp.tem, key=lambda t: t.rel)[:n_max]:
            params = _params_for(t, exp)
            h = sha256_file(t.path)
            job = {"task": t, "out": str(out), "key": h[:16], "sha256": h, "binding": _binding(t, exp, h, params),
                   "params": params, "exp_tem_params": exp.tem_params, "max_pixels": None, "ocr_engine": None}
            del det[:]
            c = time.process_time()
            process_task(job)
            total = time.process_time() - c
            c = time.process_time()
            read_image(t.path, pixel_size_nm=t.pixel_size_nm, scale_bar="auto")
            auto = time.process_time() - c
            c = time.process_time()
            read_image(t.path, pixel_size_nm=t.pixel_size_nm, scale_bar="off")
            off = time.process_time() - c
            rows.append((t.rel, sum(det), total - sum(det), auto - off))
    finally:
        pipe.analyze_tem_image = orig
    del tem_pkg
    for rel, d, o, sb in rows:
        print(f"  {rel}: detection {d:6.2f} s, rest of the task {o:5.3f} s (scale-bar step {sb:5.3f} s)")
    if rows:
        d, o = np.median([r[1] for r in rows]), np.median([r[2] for r in rows])
        print(f"per TEM image (median of {len(rows)}, CPU): detection {d:.2f} s, overhead {o:.3f} s "
              f"(target <= 0.15 s)")


def children_cpu_s() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def sample_end_to_end(out, extra=()):
    """``exoimage run sample_images`` in a fresh process: (wall s, CPU s of it and its workers, executor)."""
    import json

    if out.exists():
        shutil.rmtree(out)
    c0 = children_cpu_s()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "exoimage", "run", str(ROOT / "sample_images"), "--out", str(out),
                    "--no-progress", *extra], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall, cpu = time.perf_counter() - t0, children_cpu_s() - c0
    return wall, cpu, json.loads((out / "run.json").read_text())["execution"]["executor"]


def med_best(xs) -> str:
    """'median (best b)' of repeated measurements, or the one value."""
    xs = list(xs)
    return f"{np.median(xs):.2f}" + (f" (best {min(xs):.2f})" if len(xs) > 1 else "")


def peak_worker_rss_mb() -> float:
    """Max RSS of any finished child process of this process (the Dask workers), MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def timed(exp_dir, out, **kw):
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    s = run_experiment(load_experiment(exp_dir), out, progress=False, **kw)
    return time.perf_counter() - t0, s


def timed_cpu(exp_dir, out, **kw):
    """(wall s, workers' CPU s, this process's CPU s, summary) of one run."""
    c, m = children_cpu_s(), time.process_time()
    t, s = timed(exp_dir, out, **kw)
    return t, children_cpu_s() - c, time.process_time() - m, s


def same_tables(a: Path, b: Path) -> bool:
    for t in TABLES:
        x, y = pd.read_csv(a / f"{t}.csv"), pd.read_csv(b / f"{t}.csv")
        if not x.equals(y):
            return False
    return True


def separate_cluster(exp_dir, out, port=8799):
    env = {**os.environ}
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                              "--port", str(port), "--dashboard-address", ":0"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", f"tcp://127.0.0.1:{port}",
                               "--nworkers", "2", "--nthreads", "1", "--dashboard-address", ":0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        from distributed import Client

        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with Client(f"tcp://127.0.0.1:{port}", timeout=5) as c:
                    if len(c.scheduler_info()["workers"]) >= 2:
                        break
            except OSError:
                pass
            time.sleep(0.5)
        return timed(exp_dir, out, scheduler=f"tcp://127.0.0.1:{port}")
    finally:
        worker.terminate()
        sched.terminate()
        worker.wait(30)
        sched.wait(30)


def kill_and_resume(exp_dir, out):
    if out.exists():
        shutil.rmtree(out)
    p = subprocess.Popen([sys.executable, "-m", "exoimage", "run", str(exp_dir), "--out", str(out),
                          "--workers", "2", "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    total = len(load_experiment(exp_dir).tasks)
    cache = out / ".cache"
    while p.poll() is None and (not cache.exists() or len(list(cache.glob("*.pkl"))) < total // 2):
        time.sleep(0.2)
    p.send_signal(signal.SIGKILL)  # the main process; its Dask workers die with their nanny
    p.wait()
    time.sleep(3)
    done = len(list((out / ".cache").glob("*.pkl")))
    t, s = timed_resume(exp_dir, out)
    return done, total, t, s


def timed_resume(exp_dir, out):
    t0 = time.perf_counter()
    s = run_experiment(load_experiment(exp_dir), out, workers=2, progress=False)
    return time.perf_counter() - t0, s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tem", type=int, default=200)
    ap.add_argument("--blots", type=int, default=20)
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "run")
    parts = ("overhead", "workers", "cluster", "resume", "sample")
    ap.add_argument("--only", nargs="+", choices=parts, default=list(parts), help="the parts to run (default: all)")
    ap.add_argument("--repeat", type=int, default=1, help="run the workers and sample parts this many times")
    ap.add_argument("--sample-workers", type=int, nargs="*", default=[],
                    help="also time the sample experiment with these --workers values (e.g. 0 2)")
    a = ap.parse_args()
    exp_dir = a.work / f"exp_{a.tem}_{a.blots}"
    t0 = time.perf_counter()
    make_experiment(exp_dir, a.tem, a.blots)
    print(f"experiment: {a.tem} TEM fields (2048x2048 uint16) + {a.blots} blots "
          f"(made in {time.perf_counter() - t0:.0f} s)")
    if "overhead" in a.only:
        overhead(exp_dir, a.work / "overhead")
    if {"workers", "cluster", "resume"} & set(a.only):
        import exoimage.experiment.report, matplotlib.pyplot, scipy.stats  # noqa: F401,E401 - this process's
        # imports paid before the first timed run, so its CPU per image compares across runs
        runs1 = [timed_cpu(exp_dir, a.work / "w1", workers=1) for _ in range(a.repeat if "workers" in a.only else 1)]
        s1 = runs1[0][3]
        n = max(1, s1["n_images"])
        print(f"1 worker : wall {med_best(r[0] for r in runs1)} s; CPU per image: workers "
              f"{med_best(r[1] / n for r in runs1)} s, this process {med_best(r[2] / n for r in runs1)} s "
              f"({s1['n_ok']}/{s1['n_images']} ok)")
    if "workers" in a.only:
        runs2 = [timed_cpu(exp_dir, a.work / "w2", workers=2) for _ in range(a.repeat)]
        s2 = runs2[0][3]
        print(f"2 workers: wall {med_best(r[0] for r in runs2)} s; CPU per image: workers "
              f"{med_best(r[1] / n for r in runs2)} s, this process {med_best(r[2] / n for r in runs2)} s "
              f"({s2['n_ok']}/{s2['n_images']} ok)")
        w1, w2 = np.median([r[0] for r in runs1]), np.median([r[0] for r in runs2])
        c1, c2 = np.median([r[1] for r in runs1]), np.median([r[1] for r in runs2])
        print(f"speed-up 2 vs 1 worker: wall {w1 / w2:.2f}x (medians; best "
              f"{min(r[0] for r in runs1) / min(r[0] for r in runs2):.2f}x; noisy on shared cores), from the "
              f"workers' CPU time 2 x {c1:.1f} / {c2:.1f} s = {2 * c1 / c2:.2f}x (the speed-up on two free cores "
              f"when the images split evenly; target >= 1.85x)")
        print(f"peak RSS of a worker process: {peak_worker_rss_mb():.0f} MB")
        print(f"tables identical, 1 vs 2 workers: {same_tables(a.work / 'w1', a.work / 'w2')}")
    if "cluster" in a.only:
        t3, _ = separate_cluster(exp_dir, a.work / "remote")
        print(f"separately started dask.distributed cluster (2 workers): {t3:.1f} s; tables identical: "
              f"{same_tables(a.work / 'w1', a.work / 'remote')}")
    if "resume" in a.only:
        done, total, t4, s4 = kill_and_resume(exp_dir, a.work / "killed")
        print(f"kill -9 after {done}/{total} images; resumed run: {s4['n_cached']} reused, "
              f"{s4['stats']['n_computed']} computed, {t4:.1f} s; tables identical to an uninterrupted run: "
              f"{same_tables(a.work / 'w1', a.work / 'killed')}; rows: "
              f"{len(pd.read_csv(a.work / 'killed' / 'images.csv'))} images (expected {a.tem})")
    if "sample" in a.only:
        for extra in [[], *(["--workers", str(w)] for w in a.sample_workers)]:
            runs = [sample_end_to_end(a.work / "sample", extra) for _ in range(a.repeat)]
            opt = " ".join(extra) or "default executor"
            print(f"sample experiment end to end (exoimage run sample_images, {opt}: {runs[0][2]}): "
                  f"wall {med_best(r[0] for r in runs)} s, CPU {med_best(r[1] for r in runs)} s (target <= 8 s)")


if __name__ == "__main__":
    main()
