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
  time the worker processes used per image, the peak memory (max RSS) of a worker, and whether
  the tables are identical;
* ``cluster``: a separately started dask.distributed cluster (2 workers);
* ``resume``: what a resumed run reused and recomputed after ``kill -9``;
* ``sample``: ``exoimage run sample_images`` end to end in a fresh process (target <= 8 s).

The machine's cores may be shared: CPU times are steadier than wall times; repeat.
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


def sample_end_to_end(out):
    """``exoimage run sample_images`` in a fresh process: (wall s, CPU s of it and its workers)."""
    if out.exists():
        shutil.rmtree(out)
    c0 = children_cpu_s()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "exoimage", "run", str(ROOT / "sample_images"), "--out", str(out),
                    "--no-progress"], check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - t0, children_cpu_s() - c0


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
    a = ap.parse_args()
    exp_dir = a.work / f"exp_{a.tem}_{a.blots}"
    t0 = time.perf_counter()
    make_experiment(exp_dir, a.tem, a.blots)
    print(f"experiment: {a.tem} TEM fields (2048x2048 uint16) + {a.blots} blots "
          f"(made in {time.perf_counter() - t0:.0f} s)")
    if "overhead" in a.only:
        overhead(exp_dir, a.work / "overhead")
    if {"workers", "cluster", "resume"} & set(a.only):
        c = children_cpu_s()
        t1, s1 = timed(exp_dir, a.work / "w1", workers=1)
        c1 = children_cpu_s() - c
        n = max(1, s1["n_images"])
        print(f"1 worker : {t1:7.1f} s  ({s1['n_ok']}/{s1['n_images']} ok; workers' CPU {c1 / n:.2f} s per image)")
    if "workers" in a.only:
        c = children_cpu_s()
        t2, s2 = timed(exp_dir, a.work / "w2", workers=2)
        c2 = children_cpu_s() - c
        print(f"2 workers: {t2:7.1f} s  ({s2['n_ok']}/{s2['n_images']} ok; workers' CPU {c2 / n:.2f} s per image) "
              f"-> speed-up {t1 / t2:.2f}x (target >= 1.85x; wall time: noisy on shared cores)")
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
        w, c = sample_end_to_end(a.work / "sample")
        print(f"sample experiment end to end (exoimage run sample_images): {w:.1f} s wall, {c:.1f} s CPU "
              f"(target <= 8 s)")


if __name__ == "__main__":
    main()
