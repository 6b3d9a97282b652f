"""Run a whole experiment: one task per image, on local worker processes or a Dask cluster.

* Each task reads its own image, runs the library pipeline (:mod:`exoimage.tem`
  or :mod:`exoimage.blot`), writes its overlay (and label image), makes the
  image's typed record (:mod:`exoimage.experiment.records`) and finally a
  cache entry in ``<out>/.cache/`` (see *The resume cache* below). A run killed
  at any moment (even ``kill -9``) leaves only whole files; a rerun skips
  finished images and redoes changed ones.
* Results do not depend on how they were computed: the pipeline is
  deterministic, the tables are assembled in a fixed order (sorted by image
  name) whatever the order in which tasks finished, and a freshly computed
  result is passed through the same encode/decode as a cached one, so a
  resumed run gives the same tables, byte for byte, as a fresh run.
* A failing image never stops the run: whatever goes wrong in its task (an
  exception, ``MemoryError``, the worker process dying - Dask's
  ``KilledWorker`` - or the scheduler being lost) becomes its error row with a
  one-line reason. A failure of the image's own task is remembered (a cache
  entry with status ``failed``), so a rerun does not loop on it: delete that
  entry or run ``exoimage run --retry-failed`` to try it again. Losing the
  scheduler is not the image's fault and is not remembered.
* Memory: :func:`estimate_task_bytes` estimates each task's peak memory before
  it starts. An image whose estimate exceeds the memory available to the run
  is an error row without running; otherwise tasks are started only while the
  estimates of the running ones add up to no more than that memory.

The resume cache is :mod:`exoimage.experiment.cache`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import sha256_file
from ..outputs import safe_stem
from .cache import (CACHE_FORMAT, DISK_FULL, TABLE_FIELDS, _binding, _dumps, _one_line, _params_for,
                    _provenance, decode_entry, encode_entry, load_cache_entry, remember_failure, task_key, write_entry)
from .layout import Experiment, ImageTask
from .records import BlotRecord, ImageRecord, Provenance, TemRecord, blot_record, error_record, tem_record

try:  # added by the readers branch; until it is merged, estimate from the file size
    from ..io import PEAK_BYTES_PER_PIXEL, probe_image
except ImportError:  # pragma: no cover - depends on the merge order
    PEAK_BYTES_PER_PIXEL, probe_image = None, None

__all__ = ["task_key", "process_task", "run_tasks", "Progress", "TaskOutcome", "estimate_task_bytes",
           "available_memory_bytes", "load_cache_entry", "CACHE_FORMAT", "TABLE_FIELDS", "RETRY_HINT"]

#: How a remembered failure can be retried (part of the error text, so users see it in images.csv).
RETRY_HINT = "not retried on rerun: exoimage run --retry-failed"

#: Dask ``distributed.scheduler.allowed-failures`` for the local cluster: a task may be running on
#: at most this many workers that die before it is marked failed (KilledWorker). Dask's default, 3,
#: makes one image too big for memory cost four worker deaths; 1 still forgives one unrelated death.
ALLOWED_FAILURES = 1

#: Dask ``distributed.scheduler.worker-saturation`` for the local cluster: at most one task per
#: one-thread worker, so a worker death implicates only the task that was running on it.
WORKER_SATURATION = 1.0

#: Dask settings for the worker processes of the local cluster (``distributed.nanny.pre-spawn-environ``
#: is the environment they are started with). Dask sets ``MALLOC_TRIM_THRESHOLD_=65536`` there; any
#: explicit value switches off glibc's dynamic mmap threshold, so every array above 128 kB is a fresh
#: ``mmap`` whose pages fault in again: a 2048^2 TEM field then took 1.5 M page faults and ~12 s CPU in
#: a worker against 60 k and ~6.5 s in-process. None leaves glibc's default (as in this process); a
#: value the user exported is still inherited by the workers.
WORKER_DASK_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}

#: Fraction of the available memory (at the start of the run) that the tasks may use together;
#: the rest is left to this process (it holds the tables), the OS and the page cache.
MEMORY_USE_FRACTION = 0.85

#: Peak bytes of memory per byte of input file, used only when ``exoimage.io.probe_image`` /
#: ``PEAK_BYTES_PER_PIXEL`` are not available: an uncompressed 8-bit image holds one pixel per byte
#: and its analysis peaks at about 40 bytes per pixel (the TEM figure of PEAK_BYTES_PER_PIXEL).
#: Compressed files are underestimated by their compression ratio.
FALLBACK_BYTES_PER_FILE_BYTE = 40.0

#: Seconds between two progress lines when stderr is not a terminal (a log file): often enough to see
#: that a long run moves, rarely enough that a run of thousands of images logs a few hundred lines.
LOG_INTERVAL_S = 30.0

#: A run left to its default executor (``workers=None``, no ``scheduler``) with at most
#: :data:`SMALL_RUN_IMAGES` images to compute, together at most :data:`SMALL_RUN_PIXELS` pixels (their
#: headers), runs in this process instead of a local Dask cluster: starting the cluster costs ~2-5 s of
#: wall time and ~1.5 s CPU per worker for its imports, and closing it ~1-2 s, more than splitting such a
#: run over the cores saves. Measured on the sample experiment (9 images, 2.3 Mpx; 2 shared cores):
#: in-process 11.4 s CPU / 22.8 s wall against 2 local workers 18.4 s CPU / 29.6 s wall. Results are
#: identical either way (tasks run with one BLAS thread in both). An explicit ``workers`` >= 1 always
#: gets worker processes (e.g. to keep an image that exhausts memory from stopping the run).
SMALL_RUN_IMAGES = 12
#: See :data:`SMALL_RUN_IMAGES` (2^23 px: two 2048^2 fields).
SMALL_RUN_PIXELS = 1 << 23

#: Timeout (s) for connecting to a ``--scheduler``: long enough for a slow network, short enough
#: that a wrong address is reported at once.
SCHEDULER_CONNECT_TIMEOUT_S = 5.0

_log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# memory


def estimate_task_bytes(task: ImageTask, exp: Experiment) -> int | None:
    """Estimated peak memory (bytes) of analysing one image, or None if it cannot be estimated.

    The image's header (no pixel decoding, :func:`exoimage.io.probe_image`) gives its
    pixel count, times the measured peak bytes per pixel of its analysis
    (:data:`exoimage.io.PEAK_BYTES_PER_PIXEL`); a blot's control / total-protein
    images are added. Without those (before the readers branch is merged), the
    files' sizes on disk times :data:`FALLBACK_BYTES_PER_FILE_BYTE`. An unreadable
    header gives None: the task then fails at once with the reader's error row
    (the reader checks the declared size before decoding).
    """
    paths = [Path(task.path)]
    if task.kind == "blot" and task.blot is not None:
        paths += [Path(task.blot.options[k]) for k in ("control_image", "total_protein_image")
                  if task.blot.options.get(k)]
    total = 0.0
    for p in paths:
        try:
            if probe_image is not None and PEAK_BYTES_PER_PIXEL is not None:
                header = probe_image(p, max_pixels=getattr(exp, "max_pixels", None))
                per_px = PEAK_BYTES_PER_PIXEL.get(task.kind, max(PEAK_BYTES_PER_PIXEL.values()))
                total += float(header.n_pixels) * float(per_px)
            else:
                total += p.stat().st_size * FALLBACK_BYTES_PER_FILE_BYTE
        except Exception:  # noqa: BLE001 - unreadable header: the task reports it
            return None
    return int(total)


def _cgroup_available() -> int | None:
    """Memory left under this process's cgroup limit (v2 or v1), or None if unlimited/unknown."""
    for limit_f, usage_f in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                             ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                              "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_f).read_text().strip()
            usage = int(Path(usage_f).read_text().strip())
        except (OSError, ValueError):
            continue
        if not limit.isdigit() or int(limit) >= 1 << 60:  # "max" or v1's "unlimited" sentinel
            return None
        return max(0, int(limit) - usage)
    return None


def available_memory_bytes() -> int | None:
    """Memory available for new work now (bytes): the OS's estimate, bounded by the cgroup limit."""
    avail = None
    try:
        import psutil

        avail = int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - psutil missing: /proc/meminfo (Linux)
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError, IndexError):
            avail = None
    cg = _cgroup_available()
    if cg is not None:
        avail = cg if avail is None else min(avail, cg)
    return avail


def _gb(n) -> str:
    return f"{n / 1e9:.2f} GB" if n is not None else "unknown"


def memory_problem(path, kind: str, *, max_pixels: int | None = None) -> str | None:
    """Why analysing ``path`` now would not fit in memory (one line), or None if it fits.

    For the one-image-at-a-time commands (``exoimage tem``, ``exoimage blot``): the
    image's header (:func:`exoimage.io.probe_image`, nothing decoded) times the
    measured :data:`exoimage.io.PEAK_BYTES_PER_PIXEL` of ``kind`` against
    :func:`available_memory_bytes` x :data:`MEMORY_USE_FRACTION`. An image inside the
    pixel budget can still need more memory than the machine has (the default budget,
    16384^2 px, admits ~13 GB of analysis); it is refused before it is decoded. A header
    that cannot be read gives None: the reader then reports the file's problem itself.
    """
    if probe_image is None or PEAK_BYTES_PER_PIXEL is None:
        return None
    try:
        header = probe_image(path, max_pixels=max_pixels)
    except Exception:  # noqa: BLE001 - the reader reports it with its own one-line error
        return None
    need = float(header.n_pixels) * float(PEAK_BYTES_PER_PIXEL.get(kind, max(PEAK_BYTES_PER_PIXEL.values())))
    avail = available_memory_bytes()
    if avail is None:
        return None
    limit = avail * MEMORY_USE_FRACTION
    if need <= limit:
        return None
    return (f"not analysed: a {header.width}x{header.height} px image needs an estimated {_gb(need)} of memory, "
            f"more than the {_gb(limit)} available (free memory, use a larger machine, or crop the image)")



# ---------------------------------------------------------------------------
# one task


def _blot_params(opts: dict):
    """The blot's BlotParams from its validated experiment.toml options (other keys ignored)."""
    from ..blot import BlotParams
    from ..params import from_mapping

    return from_mapping(BlotParams, opts)


def process_task(job: dict) -> TaskOutcome:
    """Analyse one image (runs inside a worker). ``job`` is a plain dict (picklable).

    BLAS/OpenMP are limited to one thread, as Dask's worker processes are: the
    few multi-threaded reductions (least-squares fits) then round the same way
    whichever executor runs the task, so results are identical to the last digit.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _process_task(job)


def _process_task(job: dict) -> TaskOutcome:
    task: ImageTask = job["task"]
    out = Path(job["out"])
    t0 = time.perf_counter()
    if task.kind == "tem":
        record = _process_tem(task, job, out)
    else:
        record = _process_blot(task, job, out)
    record = replace(record, seconds=round(time.perf_counter() - t0, 3))
    try:
        manifest, blobs = encode_entry(record, job["binding"])
        decoded = decode_entry(json.loads(_dumps(manifest)), blobs)  # exactly what a resumed run reads
    except Exception as exc:  # noqa: BLE001 - a value the cache cannot hold: use it, recompute next time
        return TaskOutcome(record, not_cached=_one_line(exc))
    try:
        write_entry(out, manifest, blobs)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise
        return TaskOutcome(decoded, not_cached=_one_line(exc))  # e.g. a hostile .cache/<key>.json folder
    return TaskOutcome(decoded)


def _max_pixels_kw(job: dict) -> dict:
    mp = job.get("max_pixels")
    return {"max_pixels": mp} if mp is not None else {}


@contextlib.contextmanager
def _ocr_engine_env(engine):
    """The run's scale-bar OCR engine (``exoimage run --ocr``) for the duration of one task, in whatever
    process runs it (a local worker or a Dask worker on another machine)."""
    from ..scalebar import OCR_ENGINE_ENV

    if engine is None:
        yield
        return
    old = os.environ.get(OCR_ENGINE_ENV)
    os.environ[OCR_ENGINE_ENV] = engine
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(OCR_ENGINE_ENV, None)
        else:
            os.environ[OCR_ENGINE_ENV] = old


def _job_provenance(job: dict) -> Provenance:
    return _provenance(job["task"], job.get("sha256"), job.get("params"))


def _process_tem(task, job, out) -> TemRecord:
    from ..io import write_calibrated_tiff
    from ..outputs import save_png
    from ..params import from_mapping
    from ..tem import TemParams, analyze_tem_file, draw_overlay

    params = from_mapping(TemParams, job["exp_tem_params"])
    with _ocr_engine_env(job.get("ocr_engine")):
        res = analyze_tem_file(task.path, pixel_size_nm=task.pixel_size_nm, params=params, name=task.rel,
                               **_max_pixels_kw(job))
    overlay = None
    if res.ok:
        from .report import gallery_pictures, write_gallery_entry

        stem = safe_stem(task.rel)
        overlay = f"overlays/{stem}.png"
        rgb = draw_overlay(res.display, res.labels, res.vesicles, pixel_size_nm=res.pixel_size_nm)
        png = save_png(out / overlay, rgb)
        write_calibrated_tiff(out / "labels" / f"{stem}.tif", res.labels, res.pixel_size_nm)
        # the report's gallery pictures, made here from the overlay just drawn (the BGR array the
        # PNG holds) instead of decoding every overlay again in the main process
        write_gallery_entry(out, overlay, png, gallery_pictures(np.ascontiguousarray(rgb[..., ::-1]),
                                                                res.vesicles, res.image_row))
    return tem_record(task.rel, task.sample, res.image_row, res.vesicles if res.ok else None,
                      provenance=_job_provenance(job), warnings=res.warnings, overlay=overlay)


def _process_blot(task, job, out) -> BlotRecord:
    from ..blot import analyze_blot_file, draw_blot_overlay
    from ..blot.normalize import read_lane_sheet
    from ..blot.plan import NormalizationSpec, normalize_blot
    from ..outputs import save_png

    spec = task.blot
    prov = _job_provenance(job)
    try:
        params = _blot_params(spec.options)
    except ValueError as exc:
        return error_record("blot", task.rel, None, f"parameters: {exc}", marker=spec.marker, provenance=prov)
    res = analyze_blot_file(task.path, params, name=task.rel, **_max_pixels_kw(job))
    warns = res.result.warnings if res.result is not None else (res.image.warnings if res.image is not None else [])
    common = dict(marker=spec.marker, provenance=prov, warnings=warns)
    if not res.ok:
        return blot_record(task.rel, res.image_row, **common)
    try:
        sheet = read_lane_sheet(spec.lane_sheet) if spec.lane_sheet else None
        norm_spec = NormalizationSpec.from_mapping(spec.options)
        norms = normalize_blot(res, norm_spec, params, sheet, all_rows_as_target=True)
    except ValueError as exc:
        row = {**res.image_row, "status": "error", "error": f"normalisation: {exc}"}
        return blot_record(task.rel, row, lanes=res.lanes, bands=res.bands, **common)
    stem = safe_stem(task.rel)
    save_png(out / "overlays" / f"{stem}.png", draw_blot_overlay(res.image, res.result))
    return blot_record(task.rel, res.image_row, lanes=res.lanes, bands=res.bands,
                       normalized=pd.concat(norms, ignore_index=True) if norms else None,
                       control_marker=spec.options.get("control_marker", ""),
                       linear_range=[t.attrs.get("linear_range") for t in norms], overlay=f"overlays/{stem}.png",
                       ladder_check=res.result.ladder.get("check"), **common)


def _error_record(task: ImageTask, sha256, reason: str, params: dict | None = None) -> ImageRecord:
    extra = {"marker": task.blot.marker} if task.kind == "blot" and task.blot is not None else None
    return error_record(task.kind, task.rel, task.sample, " ".join(reason.split()),
                        marker=task.blot.marker if task.blot is not None else None, row_extra=extra,
                        provenance=_provenance(task, sha256, params))


@dataclass
class TaskOutcome:
    """What a task hands back: its record, and how the run must treat it.

    Attributes
    ----------
    record : ImageRecord
    failure : dict or None
        The task itself failed (an exception): ``{"errno": ...}`` (a full disk
        stops the run; any other failure is remembered in the cache).
    not_cached : str or None
        Why the record could not be cached (it is used; the image is recomputed next time).
    """

    record: ImageRecord
    failure: dict | None = None
    not_cached: str | None = None


def _safe(job: dict) -> TaskOutcome:
    """process_task, turning any exception (MemoryError too) into a failure (the run goes on)."""
    try:
        return process_task(job)
    except Exception as exc:  # noqa: BLE001
        t = job["task"]
        rec = _error_record(t, job.get("sha256"), f"{t.path}: analysis failed ({type(exc).__name__}: "
                                                  f"{_one_line(exc)}); {RETRY_HINT}", job.get("params"))
        return TaskOutcome(rec, failure={"errno": getattr(exc, "errno", None) if isinstance(exc, OSError) else None})


# ---------------------------------------------------------------------------
# progress


class Progress:
    """Progress of a run's images on stderr, with rate and ETA (``tqdm``).

    On a terminal: tqdm's bar (images done / to compute, failed, img/s, time
    left). On a file or a pipe (a log), where an animated bar would write
    carriage returns: one plain line every :data:`LOG_INTERVAL_S` seconds and
    a summary line at the end. ``enabled=False``: nothing at all;
    ``enabled=True``: the bar even when ``stream`` is not a terminal.
    """

    def __init__(self, total: int | None = None, stream=None, enabled: bool | None = None,
                 log_interval_s: float | None = None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.log_interval_s = LOG_INTERVAL_S if log_interval_s is None else log_interval_s
        self.total, self.done, self.failed, self.reused = total or 0, 0, 0, 0
        self._bar = None
        self._t0 = self._last_line = time.perf_counter()
        self._started = False
        if total is not None:
            self.start(total)

    @property
    def _tty(self) -> bool:
        try:
            return bool(self.stream.isatty())
        except (AttributeError, ValueError):  # closed or not a real stream
            return False

    def start(self, total: int, reused: int = 0) -> None:
        """Begin (again) with ``total`` images to compute; ``reused`` were taken from the cache."""
        self.close()
        self.total, self.done, self.failed, self.reused = int(total), 0, 0, int(reused)
        self._t0 = self._last_line = time.perf_counter()
        self._started = True
        if self.enabled is False or self.total == 0:
            return
        if self.enabled or self._tty:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, file=self.stream, unit="img", desc="exoimage run",
                             dynamic_ncols=True, leave=True, postfix="0 failed")

    def update(self, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self.failed} failed", refresh=False)
            self._bar.update(1)
        elif self._logging and time.perf_counter() - self._last_line >= self.log_interval_s:
            self._line()

    @property
    def _logging(self) -> bool:
        return self._started and self.enabled is not False and self.total > 0 and self._bar is None

    def _line(self, final: bool = False) -> None:
        from tqdm import tqdm

        el = time.perf_counter() - self._t0
        # "33% 3/9 [00:12<00:24, 4.10s/img]": done/total [elapsed<left, rate]
        meter = " ".join(tqdm.format_meter(self.done, self.total, el, unit="img", ncols=0).split())
        reused = f", {self.reused} reused" if self.reused else ""
        head = "exoimage run: done " if final else "exoimage run: "
        self.stream.write(f"{head}{meter}, {self.failed} failed{reused}\n")
        self.stream.flush()
        self._last_line = time.perf_counter()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._logging:
            self._line(final=True)
        self._started = False


# ---------------------------------------------------------------------------
# the run

def connect_scheduler(address: str, timeout: float = SCHEDULER_CONNECT_TIMEOUT_S):
    """A ``dask.distributed.Client`` for ``address``, or ValueError with one line saying why not."""
    from dask.distributed import Client

    try:
        return Client(address, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - malformed, unreachable, refused, timed out
        raise ValueError(f"scheduler {address}: cannot connect ({type(exc).__name__}: "
                         f"{_one_line(exc)})") from None


def run_tasks(exp: Experiment, out: Path, *, workers: int | None = None, scheduler: str | None = None,
              progress: Progress | None = None, log=None, retry_failed: bool = False) -> tuple[list, dict]:
    """Analyse every image of ``exp``; returns (records in image order, run statistics).

    ``workers=0`` runs in this process (no Dask), one image at a time; otherwise a
    local ``dask.distributed`` cluster of ``min(workers, cores)`` processes
    (default: all cores), or the existing cluster at ``scheduler``. By default
    (``workers=None``) a small run (:func:`small_run`) runs in this process.
    ``retry_failed`` recomputes images whose failure a previous run remembered.

    Raises
    ------
    ValueError
        ``workers`` < 0 or an unreachable ``scheduler`` (before any work).
    OSError
        The disk is full (``ENOSPC`` / ``EDQUOT``) while writing results: the
        run stops; every entry already written stays whole.
    """
    out = Path(out)
    if workers is not None and (not isinstance(workers, (int, np.integer)) or workers < 0):
        raise ValueError(f"workers must be a whole number >= 0, got {workers!r}")
    tasks = sorted(exp.tasks, key=lambda t: t.rel)
    jobs, results = [], {}
    stats = {"n_tasks": len(tasks), "n_cached": 0, "n_failed_remembered": 0, "n_cache_rejected": 0,
             "n_refused_memory": 0, "n_not_cached": 0, "n_lost": 0, "executor": "none"}
    for t in tasks:
        if getattr(t, "error", None):  # found at discovery (FIFO, link loop...): never opened or hashed
            results[t.rel] = error_record(t.kind, t.rel, t.sample, t.error,
                                          marker=t.blot.marker if t.blot is not None else None,
                                          provenance=_provenance(t, None, None))
            continue
        params = None
        try:
            params = _params_for(t, exp)
            h = sha256_file(t.path)
            binding = _binding(t, exp, h, params)
        except OSError as exc:
            results[t.rel] = _error_record(t, None, str(exc), params)
            continue
        rec, status = load_cache_entry(out, binding, retry_failed=retry_failed)
        if rec is not None:
            results[t.rel] = rec
            stats["n_cached"] += 1
            stats["n_failed_remembered"] += status == "failed"
            continue
        if status.startswith("rejected"):
            stats["n_cache_rejected"] += 1
            _log.info("%s: cache entry %s, recomputing", t.rel, status)
        jobs.append({"task": t, "out": str(out), "key": binding["key"], "sha256": h, "binding": binding,
                     "params": params, "exp_tem_params": exp.tem_params,
                     "max_pixels": getattr(exp, "max_pixels", None),
                     "ocr_engine": getattr(exp, "ocr_engine", None)})
    progress = progress or Progress()
    progress.start(len(jobs), reused=stats["n_cached"])
    stats["n_computed"] = len(jobs)
    t0 = time.perf_counter()

    def finish(job, outcome, remember: bool):
        if not isinstance(outcome, TaskOutcome):  # an error record made here (memory, lost scheduler)
            outcome = TaskOutcome(outcome)
        rec, fail = outcome.record, outcome.failure
        if outcome.not_cached:
            stats["n_not_cached"] += 1
        if fail is not None:
            if fail.get("errno") in DISK_FULL:
                raise OSError(fail["errno"], os.strerror(fail["errno"]), str(out))
            if remember:
                rec = remember_failure(out, job["binding"], rec)
        results[job["task"].rel] = rec
        progress.update(rec.ok)

    if jobs:
        budget = available_memory_bytes()
        budget = int(budget * MEMORY_USE_FRACTION) if budget else None
        small = workers is None and scheduler is None and small_run(jobs, exp)
        if (workers == 0 or small) and scheduler is None:
            stats["executor"] = "in-process" + (" (small run)" if small else "")
            stats["memory_budget_bytes"] = budget
            for j in jobs:
                if _refuse_over_memory(j, exp, budget, budget, stats, finish):
                    continue
                finish(j, _safe(j), True)
        else:
            _run_dask(jobs, exp, out, workers, scheduler, budget, stats, finish)
    progress.close()
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    return [results[t.rel] for t in tasks], stats


def small_run(jobs, exp) -> bool:
    """Whether ``jobs`` are few and small enough to run in this process by default (:data:`SMALL_RUN_IMAGES`,
    :data:`SMALL_RUN_PIXELS`; headers only, no pixel decoded). A header that cannot be read counts as small:
    its task fails at once with the reader's error row."""
    if len(jobs) > SMALL_RUN_IMAGES or probe_image is None:
        return False
    total = 0
    for j in jobs:
        t = j["task"]
        paths = [Path(t.path)]
        if t.kind == "blot" and t.blot is not None:
            paths += [Path(t.blot.options[k]) for k in ("control_image", "total_protein_image")
                      if t.blot.options.get(k)]
        for p in paths:
            try:
                total += int(probe_image(p, max_pixels=getattr(exp, "max_pixels", None)).n_pixels)
            except Exception:  # noqa: BLE001 - unreadable header: the task reports it
                continue
            if total > SMALL_RUN_PIXELS:
                return False
    return True


def _refuse_over_memory(job, exp, limit, budget, stats, finish) -> bool:
    """Estimate the job's memory (kept in job['estimate']); an error row if no worker could hold it."""
    est = estimate_task_bytes(job["task"], exp)
    job["estimate"] = est
    if est is None or limit is None or est <= limit:
        return False
    t = job["task"]
    stats["n_refused_memory"] += 1
    finish(job, _error_record(t, job["sha256"], f"{t.path}: not analysed: needs an estimated {_gb(est)} of "
                                                f"memory, more than the {_gb(limit)} a worker can have "
                                                f"(free memory or use a larger machine)", job["params"]), False)
    return True


@contextlib.contextmanager
def _quiet_dask_logs():
    """Dask's own log lines (tracebacks of a lost connection, worker restarts) off while we run:
    every failure becomes an error row with its reason instead."""
    loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)
               if n == "distributed" or n.startswith("distributed.")] + [logging.getLogger("distributed")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _run_dask(jobs, exp, out, workers, scheduler, budget, stats, finish):
    import distributed  # noqa: F401 - its loggers exist from here on

    with _quiet_dask_logs():
        _run_dask_quiet(jobs, exp, out, workers, scheduler, budget, stats, finish)


def _run_dask_quiet(jobs, exp, out, workers, scheduler, budget, stats, finish):
    import dask
    from dask.distributed import Client, LocalCluster, as_completed
    from distributed.scheduler import KilledWorker

    cluster = None
    if scheduler:
        client = connect_scheduler(scheduler)
        stats["executor"] = f"dask.distributed at {scheduler}"
        try:
            info = client.scheduler_info(n_workers=-1)
        except TypeError:  # older distributed
            info = client.scheduler_info()
        ws = list(info.get("workers", {}).values())
        slots = max(1, sum(int(w.get("nthreads", 1)) for w in ws))
        limits = [int(w.get("memory_limit") or 0) for w in ws]
        limit = max(limits) if limits and all(limits) else None   # the largest worker
        budget = sum(limits) if limits and all(limits) else None  # all workers together
    else:
        cores = os.cpu_count() or 1
        slots = min(workers or cores, cores)
        limit = budget  # one worker alone may use all of it; the sum of running estimates stays below
        with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                              "distributed.scheduler.worker-saturation": WORKER_SATURATION,
                              **WORKER_DASK_CONFIG}):
            cluster = LocalCluster(n_workers=slots, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.CRITICAL,
                                   memory_limit=budget if budget else "auto")
            client = Client(cluster)
        stats["executor"] = f"local dask cluster, {slots} worker process(es)"
    stats.update(n_workers=slots, memory_budget_bytes=budget, worker_memory_limit_bytes=limit)
    try:
        pending = deque(j for j in jobs if not _refuse_over_memory(j, exp, limit, budget, stats, finish))
        running: dict = {}
        ac = as_completed()

        def fill():
            while pending:
                est = pending[0]["estimate"] or 0
                used = sum(j["estimate"] or 0 for j in running.values())
                if running and (len(running) >= slots or (budget is not None and used + est > budget)):
                    return
                j = pending.popleft()
                fut = client.submit(_safe, j, pure=False, key=f"exoimage-{j['key']}-{time.time_ns()}")
                running[fut] = j
                ac.add(fut)

        fill()
        lost = None
        for fut in ac:
            j = running.pop(fut)
            try:
                rec = fut.result()
            except KilledWorker as exc:
                t = j["task"]
                finish(j, TaskOutcome(_error_record(t, j["sha256"], (
                    f"{t.path}: analysis failed: the worker process analysing it died "
                    f"{exc.allowed_failures + 1} time(s) (KilledWorker; most likely out of memory, worker "
                    f"limit {_gb(limit)}); {RETRY_HINT}"), j["params"]), failure={}), True)
            except Exception as exc:  # noqa: BLE001 - scheduler lost, cancelled: not this image's fault
                lost = (f"lost contact with the Dask scheduler ({type(exc).__name__}); rerun to analyse it")
                finish(j, _error_record(j["task"], j["sha256"], f"{j['task'].path}: not analysed: {lost}",
                                        j["params"]), False)
                stats["n_lost"] += 1
                break
            else:
                finish(j, rec, True)
            fill()
        if lost:
            for j in list(running.values()) + list(pending):
                finish(j, _error_record(j["task"], j["sha256"], f"{j['task'].path}: not analysed: {lost}",
                                        j["params"]), False)
                stats["n_lost"] += 1
    finally:
        try:
            client.close()
            if cluster is not None:
                cluster.close()
        except Exception:  # noqa: BLE001 - a lost cluster may fail to close cleanly
            pass
