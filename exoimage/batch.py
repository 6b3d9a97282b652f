"""Run a whole experiment: one task per image, on local worker processes or a Dask cluster.

* Each task reads its own image, runs the library pipeline (:mod:`exoimage.tem`
  or :mod:`exoimage.blot`), writes its overlay (and label image) and finally a
  cache record ``<out>/.cache/<key>.pkl`` — written to a temporary file and
  renamed, so a run killed at any moment (even ``kill -9``) leaves only whole
  files. The key is the SHA-256 of the input file, the parameters and the
  exoimage version: a rerun skips finished images and redoes changed ones.
* Results do not depend on how they were computed: the pipeline is
  deterministic, and the tables are assembled in a fixed order (sorted by
  image name), whatever the order in which tasks finished.
* A failing image never stops the run: its error becomes a row.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
import time
from pathlib import Path

import pandas as pd

from . import __version__
from .experiment import Experiment, ImageTask
from .io import sha256_file
from .outputs import atomic_write_bytes, safe_stem

__all__ = ["task_key", "process_task", "run_tasks", "Progress"]


def _params_for(task: ImageTask, exp: Experiment) -> dict:
    if task.kind == "tem":
        return {"tem": exp.tem_params, "pixel_size_nm": task.pixel_size_nm}
    spec = task.blot
    opts = {k: (str(v) if isinstance(v, Path) else v) for k, v in spec.options.items()}
    for k in ("control_image", "total_protein_image"):
        if k in spec.options:
            opts[k + "_sha256"] = sha256_file(spec.options[k])
    sheet_hash = sha256_file(spec.lane_sheet) if spec.lane_sheet else None
    return {"blot": opts, "marker": spec.marker, "lane_sheet_sha256": sheet_hash}


def task_key(task: ImageTask, exp: Experiment, file_hash: str | None = None) -> tuple[str, str]:
    """(cache key, input SHA-256) of a task."""
    h = file_hash or sha256_file(task.path)
    blob = json.dumps({"sha256": h, "kind": task.kind, "params": _params_for(task, exp),
                       "version": __version__, "rel": task.rel,
                       "max_pixels": getattr(exp, "max_pixels", None)},  # a refusal depends on it
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32], h


def _blot_params(opts: dict):
    from .blot import BlotParams

    kda = opts.get("ladder_kda")
    if isinstance(kda, str):
        kda = [float(v) for v in kda.split(",")]
    bounds = opts.get("lane_bounds")
    return BlotParams(polarity=opts.get("polarity", "auto"), n_lanes=opts.get("lanes"),
                      lane_bounds=[tuple(b) for b in bounds] if bounds else None,
                      background=opts.get("background", "auto"), min_snr=opts.get("min_snr", 4.0),
                      ladder_lane=opts.get("ladder_lane"), ladder_kda=kda)


def process_task(job: dict) -> dict:
    """Analyse one image (runs inside a worker). ``job`` is a plain dict (picklable).

    BLAS/OpenMP are limited to one thread, as Dask's worker processes are: the
    few multi-threaded reductions (least-squares fits) then round the same way
    whichever executor runs the task, so results are identical to the last digit.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _process_task(job)


def _process_task(job: dict) -> dict:
    task: ImageTask = job["task"]
    out = Path(job["out"])
    t0 = time.perf_counter()
    if task.kind == "tem":
        result = _process_tem(task, job, out)
    else:
        result = _process_blot(task, job, out)
    result.update(kind=task.kind, rel=task.rel, sample=task.sample, sha256=job["sha256"],
                  seconds=round(time.perf_counter() - t0, 3))
    atomic_write_bytes(out / ".cache" / f"{job['key']}.pkl", pickle.dumps(result))
    return result


def _process_tem(task, job, out):
    from .io import write_calibrated_tiff
    from .outputs import save_png
    from .tem import TemParams, analyze_tem_file, draw_overlay

    params = TemParams(**job["exp_tem_params"])
    res = analyze_tem_file(task.path, pixel_size_nm=task.pixel_size_nm, params=params, name=task.rel,
                           max_pixels=job.get("max_pixels"))
    row = dict(res.image_row)
    row["sample"] = task.sample
    out_rec = {"image_row": row, "vesicles": None}
    if res.ok:
        stem = safe_stem(task.rel)
        save_png(out / "overlays" / f"{stem}.png", draw_overlay(res.display, res.labels, res.vesicles))
        write_calibrated_tiff(out / "labels" / f"{stem}.tif", res.labels, res.pixel_size_nm)
        v = res.vesicles.copy()
        v.insert(1, "sample", task.sample)
        out_rec["vesicles"] = v
        out_rec["overlay"] = f"overlays/{stem}.png"
    return out_rec


def _process_blot(task, job, out):
    from .blot import analyze_blot_file, draw_blot_overlay
    from .blot.normalize import read_lane_sheet
    from .blot.plan import NormalizationSpec, normalize_blot
    from .outputs import save_png

    spec = task.blot
    rec = {"image_row": None, "lanes": None, "bands": None, "normalized": None, "marker": spec.marker}
    try:
        params = _blot_params(spec.options)
    except ValueError as exc:
        rec["image_row"] = {"image": task.rel, "status": "error", "error": f"parameters: {exc}"}
        return rec
    res = analyze_blot_file(task.path, params, name=task.rel, max_pixels=job.get("max_pixels"))
    row = dict(res.image_row)
    row["marker"] = spec.marker
    rec["image_row"] = row
    if not res.ok:
        return rec
    try:
        sheet = read_lane_sheet(spec.lane_sheet) if spec.lane_sheet else None
        norm_spec = NormalizationSpec.from_mapping(spec.options)
        norms = normalize_blot(res, norm_spec, params, sheet, all_rows_as_target=True)
    except ValueError as exc:
        row.update(status="error", error=f"normalisation: {exc}")
        rec["lanes"], rec["bands"] = res.lanes, res.bands
        return rec
    stem = safe_stem(task.rel)
    save_png(out / "overlays" / f"{stem}.png", draw_blot_overlay(res.image, res.result))
    rec["overlay"] = f"overlays/{stem}.png"
    rec["lanes"], rec["bands"] = res.lanes, res.bands
    if norms:
        n = pd.concat(norms, ignore_index=True)
        n.insert(1, "marker", spec.marker or "")
        n.insert(2, "control_marker", spec.options.get("control_marker", ""))
        rec["normalized"] = n
        rec["linear_range"] = [t.attrs.get("linear_range") for t in norms]
    return rec


class Progress:
    """A one-line progress bar on stderr (only when it is a terminal)."""

    def __init__(self, total: int, stream=None, enabled: bool | None = None):
        self.total, self.done, self.failed = total, 0, 0
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.t0 = time.perf_counter()

    def update(self, ok: bool):
        self.done += 1
        self.failed += 0 if ok else 1
        if not self.enabled:
            return
        el = time.perf_counter() - self.t0
        rate = self.done / el if el > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        width = 30
        fill = int(width * self.done / max(1, self.total))
        eta = time.strftime("%M:%S", time.gmtime(left)) if left == left else "--:--"
        self.stream.write(f"\r[{'#' * fill}{'-' * (width - fill)}] {self.done}/{self.total} images, "
                          f"{self.failed} failed, {rate:.2f} img/s, {eta} left ")
        self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def run_tasks(exp: Experiment, out: Path, *, workers: int | None = None, scheduler: str | None = None,
              progress: Progress | None = None, log=None) -> tuple[list, dict]:
    """Analyse every image of ``exp``; returns (results in image order, run statistics).

    ``workers=0`` runs in this process (no Dask); otherwise a local
    ``dask.distributed`` cluster of ``workers`` processes (default: all cores),
    or the existing cluster at ``scheduler``.
    """
    out = Path(out)
    tasks = sorted(exp.tasks, key=lambda t: t.rel)
    jobs, results, cached = [], {}, 0
    for t in tasks:
        try:
            key, h = task_key(t, exp)
        except OSError as exc:
            results[t.rel] = {"kind": t.kind, "rel": t.rel, "sample": t.sample, "sha256": None,
                              "image_row": {"image": t.rel, "status": "error", "error": str(exc)}}
            continue
        cache = out / ".cache" / f"{key}.pkl"
        if cache.exists():
            try:
                results[t.rel] = pickle.loads(cache.read_bytes())
                cached += 1
                continue
            except Exception:  # noqa: BLE001 - unreadable cache: recompute
                pass
        jobs.append({"task": t, "out": str(out), "key": key, "sha256": h,
                     "exp_tem_params": exp.tem_params, "max_pixels": getattr(exp, "max_pixels", None)})
    progress = progress or Progress(len(jobs))
    stats = {"n_tasks": len(tasks), "n_cached": cached, "n_computed": len(jobs), "executor": "none"}
    t0 = time.perf_counter()
    if jobs:
        if workers == 0 and scheduler is None:
            stats["executor"] = "in-process"
            for j in jobs:
                r = _safe(j)
                results[r["rel"]] = r
                progress.update(r["image_row"].get("status") == "ok")
        else:
            from dask.distributed import Client, LocalCluster, as_completed

            if scheduler:
                client, cluster = Client(scheduler), None
                stats["executor"] = f"dask.distributed at {scheduler}"
            else:
                import os

                n = workers or os.cpu_count() or 1
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
                client = Client(cluster)
                stats["executor"] = f"local dask cluster, {n} worker process(es)"
            try:
                futures = client.map(_safe, jobs, pure=False)
                for fut in as_completed(futures):
                    r = fut.result()
                    results[r["rel"]] = r
                    progress.update(r["image_row"].get("status") == "ok")
            finally:
                client.close()
                if cluster is not None:
                    cluster.close()
    progress.close()
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    return [results[t.rel] for t in tasks], stats


def _safe(job: dict) -> dict:
    """process_task, turning any unexpected exception into an error row (the run goes on)."""
    try:
        return process_task(job)
    except Exception as exc:  # noqa: BLE001
        t = job["task"]
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {"kind": t.kind, "rel": t.rel, "sample": t.sample, "sha256": job.get("sha256"),
                "image_row": {"image": t.rel, "status": "error", "error": f"{type(exc).__name__}: {msg}"}}
