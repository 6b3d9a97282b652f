"""The resume cache of a run: one entry per image, data only (JSON + Parquet), bound to its input.

One entry per task, named by its key (the SHA-256 of the input file, the
parameters, the exoimage version, the cache format and the image's relative
path; see :func:`task_key`):

* ``<key>.<table>.parquet`` - each table of the image's record
  (:class:`~exoimage.experiment.records.TemRecord` vesicles; :class:`~exoimage.experiment.records.BlotRecord`
  lanes, bands, normalized), written first;
* ``<key>.json`` - the manifest, written last: the key's parts, the record's
  other fields (:func:`exoimage.experiment.records.record_fields`: image row, provenance,
  warnings with their codes, overlay path, ...; JSON with explicit tags for numpy
  scalars, tuples and NA so that they come back exactly), for every table its
  file's SHA-256 and size, its columns, dtypes and ``attrs``, and the SHA-256
  of all that (an edited manifest is detected too). A failed task's entry has
  status ``failed`` and holds only its error row.

Every file is written to a temporary name and renamed. On load the manifest
must name exactly the expected key parts, every table file must match its
checksum, columns and dtypes, the record must have exactly the fields of its
kind, each of its type (:func:`exoimage.experiment.records.record_from_fields`), and the
content must belong to the image (its
``image`` column and row); anything else - a corrupt, truncated, edited,
swapped or foreign entry - is recomputed, never used. Nothing is ever
unpickled: entries of the old pickle format (``<key>.pkl``) are ignored.
"""

from __future__ import annotations

import errno
import hashlib
import io as _io
import json
import logging
import math
import os
import re
import stat
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..io import sha256_file
from ..outputs import atomic_write_bytes
from .layout import Experiment, ImageTask
from .records import RECORD_TYPES, ImageRecord, Provenance, record_fields, record_from_fields

__all__ = ["task_key", "load_cache_entry", "remember_failure", "encode_entry", "decode_entry", "write_entry",
           "CACHE_FORMAT", "TABLE_FIELDS"]

#: Version of the cache entry layout; part of every key, so a new layout never reads an old one.
CACHE_FORMAT = "exoimage-cache/3"

#: Upper bounds for what a cache entry may hold; larger ones are not read (recomputed).
MAX_MANIFEST_BYTES = 16 << 20   # a manifest holds one image row and some table metadata: ~10 kB
MAX_TABLE_BYTES = 1 << 30       # a table of ~1e7 vesicles is ~1 GB of Parquet
MAX_TABLE_ROWS = 50_000_000

#: errno values of a full disk or an exhausted quota: the run stops (nothing is an image's fault).
DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))

#: The record fields that are tables (stored as Parquet); every other field is a JSON value.
TABLE_FIELDS = tuple(dict.fromkeys(t for cls in RECORD_TYPES.values() for t in cls.TABLES))

_log = logging.getLogger(__name__)


def _one_line(exc) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__



# ---------------------------------------------------------------------------
# keys


def _ocr_engine(exp: Experiment) -> str | None:
    """The scale-bar OCR engine of ``exp``'s TEM images when it is not the default (None when it is)."""
    from ..scalebar import DEFAULT_OCR_ENGINE, _engine_name

    engine = _engine_name(getattr(exp, "ocr_engine", None))
    return None if engine == DEFAULT_OCR_ENGINE else engine


def _params_for(task: ImageTask, exp: Experiment) -> dict:
    max_pixels = getattr(exp, "max_pixels", None)
    extra = {"max_pixels": max_pixels} if max_pixels is not None else {}
    if task.kind == "tem":
        engine = _ocr_engine(exp)
        if engine is not None:  # a scale-bar label read by another engine can give another calibration
            extra["ocr_engine"] = engine
        return {"tem": exp.tem_params, "pixel_size_nm": task.pixel_size_nm, **extra}
    spec = task.blot
    opts = {k: (str(v) if isinstance(v, Path) else v) for k, v in spec.options.items()}
    for k in ("control_image", "total_protein_image"):
        if k in spec.options:
            opts[k + "_sha256"] = sha256_file(spec.options[k])
    sheet_hash = sha256_file(spec.lane_sheet) if spec.lane_sheet else None
    return {"blot": opts, "marker": spec.marker, "lane_sheet_sha256": sheet_hash, **extra}


def _binding(task: ImageTask, exp: Experiment, file_hash: str, params: dict | None = None) -> dict:
    """What a cache entry is bound to: everything its result depends on."""
    params = json.dumps(_params_for(task, exp) if params is None else params, sort_keys=True, default=str)
    fields = {"format": CACHE_FORMAT, "sha256": file_hash, "kind": task.kind, "rel": task.rel,
              "sample": task.sample, "version": __version__,
              "params_sha256": hashlib.sha256(params.encode()).hexdigest()}
    blob = json.dumps(fields, sort_keys=True)
    return {"key": hashlib.sha256(blob.encode()).hexdigest()[:32], **fields}


def _provenance(task: ImageTask, file_hash, params: dict | None) -> Provenance:
    """The record's provenance: the input, its hash and the parameters (as JSON values)."""
    plain = json.loads(json.dumps(params, sort_keys=True, default=str)) if params is not None else {}
    return Provenance(input_path=str(task.path), sha256=file_hash, params=plain, version=__version__)


def task_key(task: ImageTask, exp: Experiment, file_hash: str | None = None) -> tuple[str, str]:
    """(cache key, input SHA-256) of a task."""
    h = file_hash or sha256_file(task.path)
    return _binding(task, exp, h)["key"], h


# ---------------------------------------------------------------------------
# JSON values with explicit tags, Parquet tables

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


def encode_entry(record: ImageRecord, binding: dict) -> tuple[dict, dict]:
    """(manifest, {table file name: bytes}) of a finished record."""
    fields, frames = record_fields(record)
    scalars = {k: _enc(v) for k, v in fields.items()}
    tables, blobs = {}, {}
    for k, v in frames.items():
        if v is None:
            continue
        data, meta = _frame_to_parquet(v)
        blobs[f"{binding['key']}.{k}.parquet"] = data
        tables[k] = meta
    manifest = {"binding": binding, "status": "done", "record": scalars, "tables": tables}
    return manifest, blobs


def decode_entry(manifest: dict, blobs: dict) -> ImageRecord:
    fields = {k: _dec(v) for k, v in manifest["record"].items()}
    frames = {}
    for k, meta in manifest["tables"].items():
        if k not in TABLE_FIELDS:
            raise ValueError(f"unexpected table {k!r}")
        frames[k] = _frame_from_parquet(blobs[f"{manifest['binding']['key']}.{k}.parquet"], meta)
    return record_from_fields(fields, frames)


def _read_regular(path: Path, limit: int) -> bytes:
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("not a regular file")
    if st.st_size > limit:
        raise ValueError("too large")
    with open(path, "rb") as fh:
        return fh.read(limit + 1)


def _check_belongs(record: ImageRecord, binding: dict, manifest: dict) -> None:
    """The content must be the image's own: its name, kind, sample and input hash."""
    row = record.image_row
    if record.rel != binding["rel"] or record.kind != binding["kind"] \
            or record.sha256 != binding["sha256"] or record.sample != binding["sample"]:
        raise ValueError("entry is not this image's")
    if not isinstance(row, dict) or row.get("image") != binding["rel"] or row.get("status") not in ("ok", "error"):
        raise ValueError("bad image row")
    if not isinstance(row.get("error", ""), (str, type(None))) or "\n" in str(row.get("error") or ""):
        raise ValueError("bad error text")
    for k in record.TABLES:
        t = getattr(record, k)
        if t is not None and len(t) and "image" in t and not (t["image"].astype(object) == binding["rel"]).all():
            raise ValueError(f"{k} rows of another image")
        if t is not None and len(t) and k == "vesicles" and "sample" in t \
                and not (t["sample"].astype(object) == binding["sample"]).all():
            raise ValueError("vesicles of another sample")
    ov = record.overlay
    if ov is not None:
        if not isinstance(ov, str) or not re.fullmatch(r"overlays/[^/\\]+\.png", ov) or ".." in ov:
            raise ValueError("bad overlay path")
    if manifest["status"] == "failed" and (row.get("status") != "error"
                                           or any(getattr(record, k) is not None for k in record.TABLES)):
        raise ValueError("bad failure record")


def load_cache_entry(out, binding: dict, *, retry_failed: bool = False) -> tuple[ImageRecord | None, str]:
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
        record = decode_entry(manifest, blobs)
        _check_belongs(record, binding, manifest)
        if record.overlay and not (Path(out) / record.overlay).is_file():
            raise ValueError("its overlay is missing")
        return record, status
    except Exception as exc:  # noqa: BLE001 - any doubt: recompute
        return None, f"rejected ({type(exc).__name__}: {_one_line(exc)})"


def write_entry(out: Path, manifest: dict, blobs: dict) -> None:
    """Tables first, the manifest last (each atomically): a half-written entry is never whole."""
    cache = out / ".cache"
    for name, data in blobs.items():
        atomic_write_bytes(cache / name, data)
    doc = {"entry": manifest, "entry_sha256": hashlib.sha256(_dumps(manifest)).hexdigest()}
    atomic_write_bytes(cache / f"{manifest['binding']['key']}.json", _dumps(doc))


def remember_failure(out: Path, binding: dict, record: ImageRecord) -> ImageRecord:
    """Cache a failed task's error row (so a rerun does not loop on it); returns it as a rerun reads it."""
    manifest, blobs = encode_entry(record, binding)
    manifest["status"] = "failed"
    try:
        write_entry(out, manifest, blobs)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise
        _log.warning("%s: failure not remembered (%s)", binding["rel"], _one_line(exc))
    return decode_entry(json.loads(_dumps(manifest)), blobs)
