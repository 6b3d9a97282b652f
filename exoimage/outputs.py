"""Writing results: input discovery, atomic files, tables and provenance.

Shared by every command (``exoimage tem``, ``exoimage blot``, ``exoimage run``)
so that all of them find inputs, name outputs and record provenance the same way.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .io import SUPPORTED_SUFFIXES, sha256_file

__all__ = ["InputFile", "find_inputs", "atomic_write_bytes", "write_table", "write_run_json",
           "safe_stem", "save_png"]


@dataclass(frozen=True)
class InputFile:
    """One input: its path and the name used for it in tables (relative to its root)."""

    path: Path
    rel: str


def find_inputs(paths, suffixes=SUPPORTED_SUFFIXES) -> list[InputFile]:
    """Expand files and folders (recursively) into a sorted list of inputs.

    Files named explicitly are kept whatever their suffix (so that a wrong file
    gets an error row rather than vanishing); inside folders only files with
    one of ``suffixes`` are taken. Hidden files and folders are skipped.
    """
    out: list[InputFile] = []
    seen = set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                rel_parts = f.relative_to(p).parts
                if any(part.startswith(".") for part in rel_parts):
                    continue
                if f.is_file() and f.suffix.lower() in suffixes:
                    key = f.resolve()
                    if key not in seen:
                        seen.add(key)
                        out.append(InputFile(f, f.relative_to(p).as_posix()))
        else:
            key = p.resolve() if p.exists() else p
            if key not in seen:
                seen.add(key)
                out.append(InputFile(p, p.name))
    return out


def safe_stem(rel: str) -> str:
    """A flat file-name stem for an input's relative path (``a/b.tif`` -> ``a__b``)."""
    stem = rel.rsplit(".", 1)[0] if "." in Path(rel).name else rel
    return "".join(c if (c.isalnum() or c in "-_.") else "_" for c in stem.replace("/", "__"))


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_table(df: pd.DataFrame, path, *, parquet: bool = False) -> None:
    """Write a table as CSV (and Parquet next to it when asked), atomically."""
    path = Path(path)
    atomic_write_bytes(path, df.to_csv(index=False, lineterminator="\n").encode("utf-8"))
    if parquet:
        import io as _io
        buf = _io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write_bytes(path.with_suffix(".parquet"), buf.getvalue())


def save_png(path, rgb: np.ndarray) -> None:
    """Save an RGB uint8 array as PNG, atomically."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OSError(f"{path}: could not encode PNG")
    atomic_write_bytes(path, buf.tobytes())


def write_run_json(out_dir, command: str, params: dict, inputs: list[InputFile], extra=None) -> dict:
    """Record version, parameters and the SHA-256 of every input in ``out_dir/run.json``."""
    files = []
    for f in inputs:
        entry = {"image": f.rel, "path": str(f.path)}
        try:
            entry["sha256"] = sha256_file(f.path)
        except OSError as exc:
            entry["sha256"] = None
            entry["error"] = str(exc)
        files.append(entry)
    record = {
        "exoimage_version": __version__,
        "command": command,
        "parameters": params,
        "inputs": files,
        "python": platform.python_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if extra:
        record.update(extra)
    atomic_write_bytes(Path(out_dir) / "run.json",
                       json.dumps(record, indent=2, default=_json_default).encode("utf-8"))
    return record


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
