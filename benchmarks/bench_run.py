"""Batch benchmark: a whole simulated experiment with 1 and 2 workers, a separate Dask
cluster, and a run killed midway then resumed.

    python benchmarks/bench_run.py                 # 200 TEM fields of 2048^2 + 20 blots (several minutes)
    python benchmarks/bench_run.py --tem 40 --blots 4   # a quicker look

Prints wall time per executor and the speed-up, the peak memory (max RSS) of the
worker processes, whether the tables are identical across executors, and what
a resumed run reused and recomputed after ``kill -9``.
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
    a = ap.parse_args()
    exp_dir = a.work / f"exp_{a.tem}_{a.blots}"
    t0 = time.perf_counter()
    make_experiment(exp_dir, a.tem, a.blots)
    print(f"experiment: {a.tem} TEM fields (2048x2048 uint16) + {a.blots} blots "
          f"(made in {time.perf_counter() - t0:.0f} s)")
    t1, s1 = timed(exp_dir, a.work / "w1", workers=1)
    print(f"1 worker : {t1:7.1f} s  ({s1['n_ok']}/{s1['n_images']} ok)")
    t2, s2 = timed(exp_dir, a.work / "w2", workers=2)
    print(f"2 workers: {t2:7.1f} s  -> speed-up {t1 / t2:.2f}x (target >= 1.8x)")
    print(f"peak RSS of a worker process: {peak_worker_rss_mb():.0f} MB")
    print(f"tables identical, 1 vs 2 workers: {same_tables(a.work / 'w1', a.work / 'w2')}")
    t3, _ = separate_cluster(exp_dir, a.work / "remote")
    print(f"separately started dask.distributed cluster (2 workers): {t3:.1f} s; tables identical: "
          f"{same_tables(a.work / 'w1', a.work / 'remote')}")
    done, total, t4, s4 = kill_and_resume(exp_dir, a.work / "killed")
    print(f"kill -9 after {done}/{total} images; resumed run: {s4['n_cached']} reused, "
          f"{s4['stats']['n_computed']} computed, {t4:.1f} s; tables identical to an uninterrupted run: "
          f"{same_tables(a.work / 'w1', a.work / 'killed')}; rows: "
          f"{len(pd.read_csv(a.work / 'killed' / 'images.csv'))} images (expected {a.tem})")


if __name__ == "__main__":
    main()
