"""Run a whole experiment: one task per image, on local worker processes or a Dask cluster.

* Each task reads its own image, runs the library pipeline (:mod:`exoimage.tem`
  or :mod:`exoimage.blot`), writes its overlay (and label image) and finally a
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

The resume cache
----------------
One entry per task, named by its key (the SHA-256 of the input file, the
parameters, the exoimage version, the cache format and the image's relative
path; see :func:`task_key`):

* ``<key>.<table>.parquet`` - each table of the result (vesicles, lanes,
  bands, normalized), written first;
* ``<key>.json`` - the manifest, written last: the key's parts, the result's
  scalars (image row, overlay path, ...; JSON with explicit tags for numpy
  scalars, tuples and NA so that they come back exactly), for every table its
  file's SHA-256 and size, its columns, dtypes and ``attrs``, and the SHA-256
  of all that (an edited manifest is detected too). A failed task's entry has
  status ``failed`` and holds only its error row.

Every file is written to a temporary name and renamed. On load the manifest
must name exactly the expected key parts, every table file must match its
checksum, columns and dtypes, and the content must belong to the image (its
``image`` column and row); anything else - a corrupt, truncated, edited,
swapped or foreign entry - is recomputed, never used. Nothing is ever
unpickled: entries of the old pickle format (``<key>.pkl``) are ignored.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io as _io
import json
import logging
import math
import os
import re
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .experiment import Experiment, ImageTask
from .io import sha256_file
from .outputs import atomic_write_bytes, safe_stem

try:  # added by the readers branch; until it is merged, estimate from the file size
    from .io import PEAK_BYTES_PER_PIXEL, probe_image
except ImportError:  # pragma: no cover - depends on the merge order
    PEAK_BYTES_PER_PIXEL, probe_image = None, None

__all__ = ["task_key", "process_task", "run_tasks", "Progress", "estimate_task_bytes",
           "available_memory_bytes", "load_cache_entry", "CACHE_FORMAT", "RETRY_HINT"]

#: Version of the cache entry layout; part of every key, so a new layout never reads an old one.
CACHE_FORMAT = "exoimage-cache/2"

#: How a remembered failure can be retried (part of the error text, so users see it in images.csv).
RETRY_HINT = "not retried on rerun: exoimage run --retry-failed"

#: Dask ``distributed.scheduler.allowed-failures`` for the local cluster: a task may be running on
#: at most this many workers that die before it is marked failed (KilledWorker). Dask's default, 3,
#: makes one image too big for memory cost four worker deaths; 1 still forgives one unrelated death.
ALLOWED_FAILURES = 1

#: Dask ``distributed.scheduler.worker-saturation`` for the local cluster: at most one task per
#: one-thread worker, so a worker death implicates only the task that was running on it.
WORKER_SATURATION = 1.0

#: Fraction of the available memory (at the start of the run) that the tasks may use together;
#: the rest is left to this process (it holds the tables), the OS and the page cache.
MEMORY_USE_FRACTION = 0.85

#: Peak bytes of memory per byte of input file, used only when ``exoimage.io.probe_image`` /
#: ``PEAK_BYTES_PER_PIXEL`` are not available: an uncompressed 8-bit image holds one pixel per byte
#: and its analysis peaks at about 40 bytes per pixel (the TEM figure of PEAK_BYTES_PER_PIXEL).
#: Compressed files are underestimated by their compression ratio.
FALLBACK_BYTES_PER_FILE_BYTE = 40.0

#: Timeout (s) for connecting to a ``--scheduler``: long enough for a slow network, short enough
#: that a wrong address is reported at once.
SCHEDULER_CONNECT_TIMEOUT_S = 5.0

#: Upper bounds for what a cache entry may hold; larger ones are not read (recomputed).
MAX_MANIFEST_BYTES = 16 << 20   # a manifest holds one image row and some table metadata: ~10 kB
MAX_TABLE_BYTES = 1 << 30       # a table of ~1e7 vesicles is ~1 GB of Parquet
MAX_TABLE_ROWS = 50_000_000

#: errno values of a full disk or an exhausted quota: the run stops (nothing is an image's fault).
_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))

#: The result fields that are tables (stored as Parquet); every other field is a JSON scalar.
TABLE_FIELDS = ("vesicles", "lanes", "bands", "normalized")

_log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# keys


def _params_for(task: ImageTask, exp: Experiment) -> dict:
    max_pixels = getattr(exp, "max_pixels", None)
    extra = {"max_pixels": max_pixels} if max_pixels is not None else {}
    if task.kind == "tem":
        return {"tem": exp.tem_params, "pixel_size_nm": task.pixel_size_nm, **extra}
    spec = task.blot
    opts = {k: (str(v) if isinstance(v, Path) else v) for k, v in spec.options.items()}
    for k in ("control_image", "total_protein_image"):
        if k in spec.options:
            opts[k + "_sha256"] = sha256_file(spec.options[k])
    sheet_hash = sha256_file(spec.lane_sheet) if spec.lane_sheet else None
    return {"blot": opts, "marker": spec.marker, "lane_sheet_sha256": sheet_hash, **extra}


def _binding(task: ImageTask, exp: Experiment, file_hash: str) -> dict:
    """What a cache entry is bound to: everything its result depends on."""
    params = json.dumps(_params_for(task, exp), sort_keys=True, default=str)
    fields = {"format": CACHE_FORMAT, "sha256": file_hash, "kind": task.kind, "rel": task.rel,
              "sample": task.sample, "version": __version__,
              "params_sha256": hashlib.sha256(params.encode()).hexdigest()}
    blob = json.dumps(fields, sort_keys=True)
    return {"key": hashlib.sha256(blob.encode()).hexdigest()[:32], **fields}


def task_key(task: ImageTask, exp: Experiment, file_hash: str | None = None) -> tuple[str, str]:
    """(cache key, input SHA-256) of a task."""
    h = file_hash or sha256_file(task.path)
    return _binding(task, exp, h)["key"], h


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


# ---------------------------------------------------------------------------
# the cache: JSON values with explicit tags, Parquet tables

_TAG = "__exoimage__"
_NP_KINDS = "biufU"  # numpy scalar / array kinds that may be stored (never object or void)


def _enc(v):
    """A JSON-safe form of ``v`` that :func:`_dec` turns back into an equal value of the same type."""
    if isinstance(v, np.generic):
        if v.dtype.kind not in _NP_KINDS:
            raise TypeError(f"cannot cache numpy {v.dtype}")
        return {_TAG: "np", "dtype": v.dtype.str, "v": _enc(v.item())}
    if v is None or isinstance(v, (bool, str)):
        return v
    if type(v) is int:
        return v
    if type(v) is float:
        return v if math.isfinite(v) else {_TAG: "float", "v": repr(v)}
    if v is pd.NA:
        return {_TAG: "NA"}
    if isinstance(v, tuple):
        return {_TAG: "tuple", "v": [_enc(x) for x in v]}
    if isinstance(v, list):
        return [_enc(x) for x in v]
    if isinstance(v, dict):
        if all(type(k) is str for k in v) and _TAG not in v:
            return {k: _enc(x) for k, x in v.items()}
        return {_TAG: "dict", "v": [[_enc(k), _enc(x)] for k, x in v.items()]}
    if isinstance(v, np.ndarray) and v.dtype.kind in _NP_KINDS:
        return {_TAG: "ndarray", "dtype": v.dtype.str, "shape": list(v.shape), "v": _enc(v.ravel().tolist())}
    raise TypeError(f"cannot cache a value of type {type(v).__name__}")


def _np_dtype(s) -> np.dtype:
    if not isinstance(s, str) or not re.fullmatch(r"[<>|=]?[biufU]\d{1,3}", s):
        raise ValueError(f"bad dtype {s!r}")
    return np.dtype(s)


def _dec(v):
    if isinstance(v, list):
        return [_dec(x) for x in v]
    if not isinstance(v, dict):
        if v is None or isinstance(v, (bool, str, int, float)):
            return v
        raise ValueError("bad value")
    if _TAG not in v:
        return {k: _dec(x) for k, x in v.items()}
    tag = v[_TAG]
    if tag == "np":
        return _np_dtype(v["dtype"]).type(_dec(v["v"]))
    if tag == "float":
        if v["v"] not in ("nan", "inf", "-inf"):
            raise ValueError("bad float")
        return float(v["v"])
    if tag == "NA":
        return pd.NA
    if tag == "tuple":
        return tuple(_dec(x) for x in v["v"])
    if tag == "dict":
        return {_dec(k): _dec(x) for k, x in v["v"]}
    if tag == "ndarray":
        shape = [int(n) for n in v["shape"]]
        return np.array(_dec(v["v"]), dtype=_np_dtype(v["dtype"])).reshape(shape)
    raise ValueError(f"unknown tag {tag!r}")


def _dumps(obj) -> bytes:
    """Canonical JSON bytes (key order kept: a row's columns come back in their order)."""
    return json.dumps(obj, allow_nan=False, separators=(",", ":")).encode("utf-8")


def _frame_to_parquet(df: pd.DataFrame) -> tuple[bytes, dict]:
    """Parquet bytes and the metadata needed to rebuild ``df`` exactly (dtypes, attrs, object cells)."""
    if not all(type(c) is str for c in df.columns) or df.columns.duplicated().any():
        raise TypeError("cannot cache a table whose column names are not unique strings")
    store = df.copy()
    store.attrs = {}
    obj = [i for i, dt in enumerate(df.dtypes) if dt == object]
    for i in obj:  # mixed cells (bool / NA / None / str): one tagged JSON text per cell
        store.isetitem(i, pd.Series([_dumps(_enc(x)).decode() for x in df.iloc[:, i]], index=df.index,
                                    dtype=object))
    buf = _io.BytesIO()
    store.to_parquet(buf, engine="pyarrow", index=None)
    data = buf.getvalue()
    meta = {"columns": list(df.columns), "dtypes": [str(d) for d in df.dtypes], "object_columns": obj,
            "rows": len(df), "attrs": _enc(dict(df.attrs)), "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}
    return data, meta


def _frame_from_parquet(data: bytes, meta: dict) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if len(data) != meta["bytes"] or hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise ValueError("table checksum mismatch")
    pf = pq.ParquetFile(pa.BufferReader(data))
    if pf.metadata.num_rows != meta["rows"] or pf.metadata.num_rows > MAX_TABLE_ROWS:
        raise ValueError("row count mismatch")
    for field in pf.schema_arrow:  # plain types only: never an extension type
        t = field.type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
                or pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)):
            raise ValueError(f"unexpected column type {t}")
    df = pf.read().to_pandas()
    if list(df.columns) != meta["columns"]:
        raise ValueError("columns mismatch")
    for i in meta["object_columns"]:
        cells = [_dec(json.loads(s)) for s in df.iloc[:, int(i)]]
        df.isetitem(int(i), pd.Series(cells, index=df.index, dtype=object))
    if [str(d) for d in df.dtypes] != meta["dtypes"]:
        raise ValueError("dtypes mismatch")
    df.attrs = _dec(meta["attrs"])
    return df


def _encode_entry(record: dict, binding: dict) -> tuple[dict, dict]:
    """(manifest, {table file name: bytes}) of a finished result."""
    scalars, tables, blobs = {}, {}, {}
    for k, v in record.items():
        if k in TABLE_FIELDS and v is not None:
            if not isinstance(v, pd.DataFrame):
                raise TypeError(f"{k} is not a table")
            data, meta = _frame_to_parquet(v)
            name = f"{binding['key']}.{k}.parquet"
            blobs[name] = data
            tables[k] = meta
        else:
            scalars[k] = _enc(v)
    manifest = {"binding": binding, "status": "done", "record": scalars, "tables": tables}
    return manifest, blobs


def _decode_entry(manifest: dict, blobs: dict) -> dict:
    record = {k: _dec(v) for k, v in manifest["record"].items()}
    for k, meta in manifest["tables"].items():
        if k not in TABLE_FIELDS or k in record:
            raise ValueError(f"unexpected table {k!r}")
        record[k] = _frame_from_parquet(blobs[f"{manifest['binding']['key']}.{k}.parquet"], meta)
    return record


def _read_regular(path: Path, limit: int) -> bytes:
    st = os.lstat(path)
    import stat

    if not stat.S_ISREG(st.st_mode):
        raise ValueError("not a regular file")
    if st.st_size > limit:
        raise ValueError("too large")
    with open(path, "rb") as fh:
        return fh.read(limit + 1)


def _check_belongs(record: dict, binding: dict, manifest: dict) -> None:
    """The content must be the image's own: its name, kind, sample and input hash."""
    row = record.get("image_row")
    if record.get("rel") != binding["rel"] or record.get("kind") != binding["kind"] \
            or record.get("sha256") != binding["sha256"] or record.get("sample") != binding["sample"]:
        raise ValueError("entry is not this image's")
    if not isinstance(row, dict) or row.get("image") != binding["rel"] or row.get("status") not in ("ok", "error"):
        raise ValueError("bad image row")
    if not isinstance(row.get("error", ""), (str, type(None))) or "\n" in str(row.get("error") or ""):
        raise ValueError("bad error text")
    for k in TABLE_FIELDS:
        t = record.get(k)
        if t is not None and len(t) and "image" in t and not (t["image"].astype(object) == binding["rel"]).all():
            raise ValueError(f"{k} rows of another image")
        if t is not None and len(t) and k == "vesicles" and "sample" in t \
                and not (t["sample"].astype(object) == binding["sample"]).all():
            raise ValueError("vesicles of another sample")
    ov = record.get("overlay")
    if ov is not None:
        if not isinstance(ov, str) or not re.fullmatch(r"overlays/[^/\\]+\.png", ov) or ".." in ov:
            raise ValueError("bad overlay path")
    if manifest["status"] == "failed" and (row.get("status") != "error" or record.get("vesicles") is not None):
        raise ValueError("bad failure record")


def load_cache_entry(out, binding: dict, *, retry_failed: bool = False) -> tuple[dict | None, str]:
    """A cached result if its entry is whole, unedited and this task's own; else (None, why).

    Returns ``(record, status)`` with status ``'done'`` or ``'failed'`` (a
    remembered failure; None with ``retry_failed``), or ``(None, reason)``:
    ``'missing'``, or why the entry was rejected (it is then recomputed).
    """
    cache = Path(out) / ".cache"
    key = binding["key"]
    mpath = cache / f"{key}.json"
    if not os.path.lexists(mpath):
        return None, "missing"
    try:
        doc = json.loads(_read_regular(mpath, MAX_MANIFEST_BYTES))
        if not isinstance(doc, dict) or set(doc) != {"entry", "entry_sha256"}:
            raise ValueError("not a cache manifest")
        manifest = doc["entry"]
        if hashlib.sha256(_dumps(manifest)).hexdigest() != doc["entry_sha256"]:
            raise ValueError("manifest checksum mismatch (edited)")
        if not isinstance(manifest, dict) or manifest.get("binding") != binding:
            raise ValueError("made for another input, parameters or version")
        status = manifest.get("status")
        if status not in ("done", "failed") or not isinstance(manifest.get("record"), dict) \
                or not isinstance(manifest.get("tables"), dict):
            raise ValueError("malformed manifest")
        if status == "failed" and retry_failed:
            return None, "retry"
        blobs = {}
        for k in manifest["tables"]:
            if k not in TABLE_FIELDS:
                raise ValueError(f"unexpected table {k!r}")
            name = f"{key}.{k}.parquet"
            blobs[name] = _read_regular(cache / name, MAX_TABLE_BYTES)
        record = _decode_entry(manifest, blobs)
        _check_belongs(record, binding, manifest)
        if record.get("overlay") and not (Path(out) / record["overlay"]).is_file():
            raise ValueError("its overlay is missing")
        return record, status
    except Exception as exc:  # noqa: BLE001 - any doubt: recompute
        return None, f"rejected ({type(exc).__name__}: {_one_line(exc)})"


def _write_entry(out: Path, manifest: dict, blobs: dict) -> None:
    """Tables first, the manifest last (each atomically): a half-written entry is never whole."""
    cache = out / ".cache"
    for name, data in blobs.items():
        atomic_write_bytes(cache / name, data)
    doc = {"entry": manifest, "entry_sha256": hashlib.sha256(_dumps(manifest)).hexdigest()}
    atomic_write_bytes(cache / f"{manifest['binding']['key']}.json", _dumps(doc))


def _remember_failure(out: Path, job: dict, record: dict) -> dict:
    """Cache a failed task's error row (so a rerun does not loop on it); returns it as a rerun reads it."""
    manifest, blobs = _encode_entry(record, job["binding"])
    manifest["status"] = "failed"
    try:
        _write_entry(out, manifest, blobs)
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise
        _log.warning("%s: failure not remembered (%s)", job["task"].rel, _one_line(exc))
    return _decode_entry(json.loads(_dumps(manifest)), blobs)


# ---------------------------------------------------------------------------
# one task


def _blot_params(opts: dict):
    """The blot's BlotParams from its validated experiment.toml options (other keys ignored)."""
    from .blot import BlotParams
    from .params import from_mapping

    return from_mapping(BlotParams, opts)


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
    try:
        manifest, blobs = _encode_entry(result, job["binding"])
        decoded = _decode_entry(json.loads(_dumps(manifest)), blobs)  # exactly what a resumed run reads
    except Exception as exc:  # noqa: BLE001 - a value the cache cannot hold: use it, recompute next time
        result["_not_cached"] = _one_line(exc)
        return result
    try:
        _write_entry(out, manifest, blobs)
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise
        decoded["_not_cached"] = _one_line(exc)  # e.g. a hostile .cache/<key>.json folder: not cached
    return decoded


def _max_pixels_kw(job: dict) -> dict:
    mp = job.get("max_pixels")
    return {"max_pixels": mp} if mp is not None else {}


def _process_tem(task, job, out):
    from .io import write_calibrated_tiff
    from .outputs import save_png
    from .params import from_mapping
    from .tem import TemParams, analyze_tem_file, draw_overlay

    params = from_mapping(TemParams, job["exp_tem_params"])
    res = analyze_tem_file(task.path, pixel_size_nm=task.pixel_size_nm, params=params, name=task.rel,
                           **_max_pixels_kw(job))
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
    res = analyze_blot_file(task.path, params, name=task.rel, **_max_pixels_kw(job))
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


def _one_line(exc) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _error_record(task: ImageTask, sha256, reason: str) -> dict:
    row = {"image": task.rel, "status": "error", "error": " ".join(reason.split())}
    if task.kind == "blot" and task.blot is not None:
        row["marker"] = task.blot.marker
    return {"kind": task.kind, "rel": task.rel, "sample": task.sample, "sha256": sha256, "image_row": row}


def _safe(job: dict) -> dict:
    """process_task, turning any exception (MemoryError too) into a failure (the run goes on)."""
    try:
        return process_task(job)
    except Exception as exc:  # noqa: BLE001
        t = job["task"]
        rec = _error_record(t, job.get("sha256"), f"{t.path}: analysis failed ({type(exc).__name__}: "
                                                  f"{_one_line(exc)}); {RETRY_HINT}")
        rec["_failure"] = {"errno": getattr(exc, "errno", None) if isinstance(exc, OSError) else None}
        return rec


# ---------------------------------------------------------------------------
# progress


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
    """Analyse every image of ``exp``; returns (results in image order, run statistics).

    ``workers=0`` runs in this process (no Dask), one image at a time; otherwise a
    local ``dask.distributed`` cluster of ``min(workers, cores)`` processes
    (default: all cores), or the existing cluster at ``scheduler``.
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
            results[t.rel] = {"kind": t.kind, "rel": t.rel, "sample": t.sample, "sha256": None,
                              "image_row": {"image": t.rel, "status": "error", "error": t.error}}
            continue
        try:
            h = sha256_file(t.path)
            binding = _binding(t, exp, h)
        except OSError as exc:
            results[t.rel] = _error_record(t, None, str(exc))
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
                     "exp_tem_params": exp.tem_params, "max_pixels": getattr(exp, "max_pixels", None)})
    progress = progress or Progress(len(jobs))
    stats["n_computed"] = len(jobs)
    t0 = time.perf_counter()

    def finish(job, rec, remember: bool):
        fail = rec.pop("_failure", None)
        if rec.pop("_not_cached", None):
            stats["n_not_cached"] += 1
        if fail is not None:
            if fail.get("errno") in _DISK_FULL:
                raise OSError(fail["errno"], os.strerror(fail["errno"]), str(out))
            if remember:
                rec = _remember_failure(out, job, rec)
        results[job["task"].rel] = rec
        progress.update(rec["image_row"].get("status") == "ok")

    if jobs:
        budget = available_memory_bytes()
        budget = int(budget * MEMORY_USE_FRACTION) if budget else None
        if workers == 0 and scheduler is None:
            stats["executor"] = "in-process"
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
                                                f"(free memory or use a larger machine)"), False)
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
                              "distributed.scheduler.worker-saturation": WORKER_SATURATION}):
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
                finish(j, _error_record(t, j["sha256"], (
                    f"{t.path}: analysis failed: the worker process analysing it died "
                    f"{exc.allowed_failures + 1} time(s) (KilledWorker; most likely out of memory, worker "
                    f"limit {_gb(limit)}); {RETRY_HINT}")) | {"_failure": {}}, True)
            except Exception as exc:  # noqa: BLE001 - scheduler lost, cancelled: not this image's fault
                lost = (f"lost contact with the Dask scheduler ({type(exc).__name__}); rerun to analyse it")
                finish(j, _error_record(j["task"], j["sha256"], f"{j['task'].path}: not analysed: {lost}"), False)
                stats["n_lost"] += 1
                break
            else:
                finish(j, rec, True)
            fill()
        if lost:
            for j in list(running.values()) + list(pending):
                finish(j, _error_record(j["task"], j["sha256"], f"{j['task'].path}: not analysed: {lost}"), False)
                stats["n_lost"] += 1
    finally:
        try:
            client.close()
            if cluster is not None:
                cluster.close()
        except Exception:  # noqa: BLE001 - a lost cluster may fail to close cleanly
            pass
