"""Writing results: input discovery, output names, atomic files, tables and provenance.

Shared by every command (``exoimage tem``, ``exoimage blot``, ``exoimage run``)
so that all of them find inputs, name outputs and record provenance the same way.

Identity of an input
--------------------
An input is known everywhere (tables, cache keys, overlay and label names, the
report) by its path relative to the folder it was found in (``gel1/CD63.tif``),
never by its bare file name. :func:`safe_stem` turns that relative path into a
file-name stem that is unique and the same on every run and machine.

Hostile folders
---------------
Discovery never opens a file. Entries that cannot be inputs are not skipped
silently: a FIFO, socket or device with an image suffix, a broken symbolic
link, a symbolic link pointing to its own folder or a parent (a loop), or a
folder that cannot be listed becomes an :class:`InputFile` with ``error`` set,
which every command reports as that input's error row. Symbolic links to
folders elsewhere are followed.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import os
import platform
import re
import secrets
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .io import sha256_file, supported_suffixes

__all__ = ["InputFile", "find_inputs", "walk_folder", "display_text", "atomic_write_bytes", "write_table",
           "write_run_json", "safe_stem", "save_png", "mpl_literal", "neutralize_formula", "one_line",
           "MAX_STEM_BYTES", "MAX_WALK_ENTRIES"]

#: Longest stem :func:`safe_stem` returns, in UTF-8 bytes. File names are limited to
#: 255 bytes on ext4/XFS/Btrfs/APFS and NTFS (255 UTF-16 units), but to 143 bytes on
#: eCryptfs (encrypted home folders); 120 leaves room for the longest suffix a
#: command appends (``_scalebar.png``, 13 bytes) under the smaller limit.
MAX_STEM_BYTES = 120
#: Hex digits of SHA-256 of the relative path appended to a stem (40 bits: a collision
#: needs two inputs whose readable parts are equal too).
_HASH_LEN = 10
#: Longest part of the final name kept in a temporary file's name (``.<part>.<random>.tmp``),
#: so temporary names stay far under every file-name limit whatever the final name.
_TMP_NAME_BYTES = 80
#: Directory entries one folder walk looks at before it stops with an error entry:
#: far more than any experiment holds, bounds a walk through links that multiply
#: paths (a folder holding two links to the next, 30 deep, is 2**30 paths).
MAX_WALK_ENTRIES = 1_000_000

_FILE_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISDIR, "a folder"))


def _kind(mode: int) -> str:
    for test, name in _FILE_KINDS:
        if test(mode):
            return name
    return "something else"


@dataclass(frozen=True)
class InputFile:
    """One input: its path, the name used for it in tables, and a discovery error.

    ``rel`` is the path relative to the folder it was found in (posix, as
    :func:`display_text`), or the file's name for a file named explicitly.
    ``error`` is a one-line reason when the entry cannot be read at all (not a
    regular file, broken link, link loop, unlistable folder); such an input is
    never opened and becomes an error row.
    """

    path: Path
    rel: str
    error: str | None = None


def display_text(text: str) -> str:
    """``text`` safe to print and store: one line, valid UTF-8, reversible.

    File names may hold bytes that are not UTF-8 (``os.fsdecode`` keeps them as
    lone surrogates), newlines or terminal escapes. Those become ``\\xNN`` /
    ``\\n`` escapes and a backslash becomes ``\\\\``, so two different names
    never look the same. Ordinary names are returned unchanged.
    """
    text = str(text)
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for ch in text:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif 0xDC80 <= o <= 0xDCFF:  # a byte that is not UTF-8 (surrogateescape)
            out.append(f"\\x{o - 0xDC00:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


def _entry_error(path: Path) -> tuple[os.stat_result | None, str | None]:
    """(stat following links, None) or (None, problem) for an entry that cannot be followed."""
    try:
        return os.stat(path), None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, "symbolic link loop (the link leads back to itself); not followed"
        if exc.errno == errno.ENOENT and os.path.islink(path):
            return None, f"broken symbolic link (to {display_text(os.readlink(path))})"
        return None, f"cannot be read ({exc.strerror or type(exc).__name__})"


def _not_regular(mode: int) -> str:
    return f"{_kind(mode)}, not a regular file; not read"


def walk_folder(root, suffixes=None, *, prefix: str = "",
                max_entries: int = MAX_WALK_ENTRIES) -> list[InputFile]:
    """Every input under ``root`` (recursively, sorted), with the entries that cannot be inputs.

    Files with one of ``suffixes`` (case-insensitive) are inputs; hidden files
    and folders (name starting with ``.``) are skipped. Symbolic links are
    followed, with loop protection: a link to the folder it is in or to one of
    its parents is an error entry (``rel`` ending in ``/``), never walked. A
    FIFO, socket or device with one of ``suffixes``, a broken link (with one of
    ``suffixes`` or no suffix: it may have been a folder) and a folder that
    cannot be listed are error entries too (``error`` is the problem, without
    the path). Nothing is opened.

    Parameters
    ----------
    root : path
        A folder.
    suffixes : tuple of str, optional
        Lower-case suffixes of the files to take (``.tif``, ...); default every
        suffix a registered reader takes (:func:`exoimage.io.supported_suffixes`).
    prefix : str
        Put before every ``rel`` (``"tem/"``: names relative to the experiment folder).
    max_entries : int
        Directory entries to look at before stopping with an error entry (see
        :data:`MAX_WALK_ENTRIES`).

    Returns
    -------
    list of InputFile
        Sorted by the parts of ``rel`` (``prefix`` + path relative to ``root``, posix).
    """
    root = Path(root)
    suffixes = tuple(s.lower() for s in (supported_suffixes() if suffixes is None else suffixes))
    out: list[InputFile] = []
    seen = 0
    try:
        st = os.stat(root)
    except OSError as exc:
        return [InputFile(root, prefix or display_text(root.name) + "/",
                          f"folder cannot be read ({exc.strerror or type(exc).__name__})")]
    # depth-first with an explicit stack; each item: (folder, rel parts, (dev, ino) of it and its parents)
    stack = [(root, (), frozenset({(st.st_dev, st.st_ino)}))]
    while stack:
        folder, parts, ancestors = stack.pop()
        try:
            with os.scandir(folder) as it:
                names = sorted(e.name for e in it)
        except OSError as exc:
            out.append(InputFile(folder, prefix + "/".join(parts) + "/",
                                 f"folder cannot be listed ({exc.strerror or type(exc).__name__})"))
            continue
        for name in names:
            seen += 1
            if seen > max_entries:
                return sorted(out, key=_rel_key) + [InputFile(
                    root, prefix or display_text(root.name) + "/",
                    f"more than {max_entries} entries in this folder tree (links multiplying paths?); "
                    "stopped looking")]
            if name.startswith("."):
                continue
            path = folder / name
            rel_parts = parts + (display_text(name),)
            rel = prefix + "/".join(rel_parts)
            suffix = os.path.splitext(name)[1].lower()
            est, err = _entry_error(path)
            if est is None:
                if suffix in suffixes or not suffix:  # no suffix: it may have been a folder
                    out.append(InputFile(path, rel, err))
                continue
            if stat.S_ISDIR(est.st_mode):
                key = (est.st_dev, est.st_ino)
                if key in ancestors:
                    to = display_text(os.readlink(path)) if os.path.islink(path) else "a mount"
                    out.append(InputFile(path, rel + "/", f"symbolic link loop (to {to}: its own folder or "
                                                          "a parent); not followed"))
                    continue
                stack.append((path, rel_parts, ancestors | {key}))
            elif suffix in suffixes:
                if _is_companion(name, names):
                    continue
                if stat.S_ISREG(est.st_mode):
                    out.append(InputFile(path, rel))
                else:
                    out.append(InputFile(path, rel, _not_regular(est.st_mode)))
    return sorted(out, key=_rel_key)


#: FEI TIA writes an image as ``X.emi`` (metadata) plus ``X_1.ser`` (``X_2.ser``, ...: the
#: data); reading the .emi reads its .ser, so a .ser beside its .emi is not a second input
_TIA_SER = re.compile(r"^(?P<stem>.+)_\d+\.ser$", re.IGNORECASE)


def _is_companion(name: str, names) -> bool:
    """``name`` is the data file of another input in the same folder (a TIA ``X_1.ser`` beside ``X.emi``)."""
    m = _TIA_SER.match(name)
    if not m:
        return False
    stem = m.group("stem").lower()
    return any(n.lower() == stem + ".emi" for n in names)


def _rel_key(f: InputFile):
    return tuple(f.rel.rstrip("/").split("/"))


def find_inputs(paths, suffixes=None) -> list[InputFile]:
    """Expand files and folders (recursively, :func:`walk_folder`) into a list of inputs.

    Files named explicitly are kept whatever their suffix (so that a wrong file
    gets an error row rather than vanishing); one that is not a regular file
    (FIFO, device, ...) gets ``error`` and is never opened. Inside folders only
    files with one of ``suffixes`` are taken; hidden files and folders are
    skipped; symbolic links are followed with loop protection.

    ``rel`` is the path relative to the folder given (the file name for a file
    given). When two different files would get the same ``rel`` (``d1/x.tif`` and
    ``d2/x.tif`` given as ``d1 d2``), both are named by the path as given
    instead (``d1/x.tif``, ``d2/x.tif``). The same file reached twice by the same
    path (a folder and a file in it, or a path given twice) is taken once.
    """
    found: list[tuple[InputFile, str]] = []  # (input, its path as given, for disambiguation)
    seen = set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for f in walk_folder(p, suffixes):
                key = os.path.abspath(f.path)
                if key not in seen:
                    seen.add(key)
                    found.append((f, display_text(f.path.as_posix()) + ("/" if f.rel.endswith("/") else "")))
            continue
        key = os.path.abspath(p)
        if key in seen:
            continue
        seen.add(key)
        rel = display_text(p.name)
        err = None
        if os.path.lexists(p):
            est, err = _entry_error(p)
            if est is not None and not stat.S_ISREG(est.st_mode):
                err = _not_regular(est.st_mode)
        found.append((InputFile(p, rel, err), display_text(p.as_posix())))
    counts: dict[str, int] = {}
    for f, _ in found:
        counts[f.rel] = counts.get(f.rel, 0) + 1
    return [f if counts[f.rel] == 1 else InputFile(f.path, given, f.error) for f, given in found]


_PLAIN_REL = re.compile(r"[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*\.tif")
_HASH_TAIL = re.compile(r"-[0-9a-f]{%d}$" % _HASH_LEN)


def _truncate_utf8(text: str, n_bytes: int) -> str:
    b = text.encode("utf-8", "surrogateescape")
    if len(b) <= n_bytes:
        return text
    return b[:n_bytes].decode("utf-8", "ignore")


def safe_stem(rel: str) -> str:
    """A flat, unique, stable file-name stem for an input's relative path.

    ``sub/good.tif`` -> ``sub__good``: the suffix is dropped, ``/`` becomes
    ``__`` and every character other than letters, digits, ``-``, ``_`` and
    ``.`` becomes ``_`` (a leading ``.`` too: no hidden outputs). That alone
    would map ``f 1.tif``, ``f_1.tif`` and ``f_1.png`` to one name, so it is
    kept as is only for a *plain* relative path, for which the mapping can be
    undone: lower-case ASCII letters, digits, ``.``, ``_``, ``-`` (each part
    starting with a letter or digit), no ``__``, suffix ``.tif``, the stem within
    :data:`MAX_STEM_BYTES` and not ending like a hash. Any other path gets
    ``-`` and the first 10 hex digits of the SHA-256 of its exact relative path
    (UTF-8) appended, its readable part cut to fit (``f_1.png`` -> ``f_1-476d285e82``).

    So the stem depends on the relative path only (the same on every run and
    machine, whatever other files are present); different relative paths give
    different stems, also on case-insensitive file systems (a plain stem is
    lower case, a hashed one differs in its hash); and every stem is at most
    :data:`MAX_STEM_BYTES` UTF-8 bytes, so output names (stem + suffix) and
    their temporary names stay under every file system's name limit.
    """
    rel = str(rel)
    last = rel.rsplit("/", 1)[-1]
    dot = last.rfind(".")
    base = rel[: len(rel) - len(last) + dot] if dot > 0 else rel
    readable = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in base.replace("/", "__"))
    if readable.startswith("."):
        readable = "_" + readable[1:]
    if (_PLAIN_REL.fullmatch(rel) and "__" not in rel and not _HASH_TAIL.search(readable)
            and len(readable) <= MAX_STEM_BYTES):
        return readable
    digest = hashlib.sha256(rel.encode("utf-8", "surrogateescape")).hexdigest()[:_HASH_LEN]
    return f"{_truncate_utf8(readable, MAX_STEM_BYTES - 1 - _HASH_LEN)}-{digest}"


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename: never a half-written file.

    The file's mode follows the umask like any newly created file (``0o666 &
    ~umask``, e.g. 0644), not 0600 as :func:`tempfile.mkstemp` would leave it;
    the temporary file is ``.<name, cut>.<random>.tmp`` in the same folder, short
    whatever the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    short = _truncate_utf8(path.name, _TMP_NAME_BYTES)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{short}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)  # the kernel applies the umask
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 random names taken
        raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path.parent))
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


#: First characters that make a spreadsheet (Excel, LibreOffice, Google Sheets) read a
#: CSV cell as a formula (OWASP "CSV Injection"): such text cells get a leading "'".
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralize_formula(value):
    """``value`` with a leading ``'`` if it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _csv_text(v: str) -> str:
    # a carriage return becomes a line feed: Python's csv writer quotes a cell holding
    # "\n" (the line terminator) but not one holding a lone "\r", which then splits the row
    return neutralize_formula(v).replace("\r\n", "\n").replace("\r", "\n")


def _csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells and headers cannot be spreadsheet formulas.

    Only text (object, string and categorical columns, and string column names)
    is touched; numeric columns are never changed (a negative number stays a number).
    """
    out = None
    for i, c in enumerate(df.columns):
        col = df.iloc[:, i]
        if not (col.dtype == object or pd.api.types.is_string_dtype(col.dtype)
                or isinstance(col.dtype, pd.CategoricalDtype)):
            continue
        vals = col.astype(object)
        mask = vals.map(lambda v: isinstance(v, str) and (v.startswith(FORMULA_START) or "\r" in v)).to_numpy(bool)
        if mask.any():
            if out is None:
                out = df.copy()
            new = vals.copy()
            new[mask] = [_csv_text(v) for v in vals[mask]]
            out.isetitem(i, new)
    names = [_csv_text(c) if isinstance(c, str) else c for c in df.columns]
    if names != list(df.columns):
        out = (out if out is not None else df.copy())
        out.columns = names
    return out if out is not None else df


def write_table(df: pd.DataFrame, path, *, parquet: bool = False) -> None:
    """Write a table as CSV (and Parquet next to it when asked), atomically.

    Every CSV of exoimage is written here. Text cells (and column names) that
    start with ``= + - @``, a tab or a carriage return get a leading ``'``, so
    a spreadsheet shows a sample folder named ``=HYPERLINK(...)`` as text
    instead of running it (OWASP CSV injection); a carriage return in text
    becomes a line feed (so the cell is quoted and the row stays whole);
    numeric columns are untouched. The Parquet file keeps the text exactly.
    """
    path = Path(path)
    atomic_write_bytes(path, _csv_safe(df).to_csv(index=False, lineterminator="\n").encode("utf-8"))
    if parquet:
        import io as _io
        buf = _io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write_bytes(path.with_suffix(".parquet"), buf.getvalue())


def mpl_literal(text) -> str:
    """User text (a sample, marker, file or lane-sheet name) for a matplotlib figure, shown as is.

    matplotlib reads text between two ``$`` as mathtext (``$\\alpha$`` becomes a
    Greek letter, ``$x^$`` raises and loses the figure); each ``$`` is escaped
    as ``\\$``, which matplotlib shows as a plain ``$`` (every ``$`` escaped: no
    mathtext at all). Use it for every title, label, legend entry, tick label
    and annotation that holds user text. Legend entries starting with ``_`` are
    hidden by matplotlib when labels are picked up from the artists: pass
    labels to ``legend`` explicitly.
    """
    return str(text).replace("$", r"\$")


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` of an unexpected exception, for an error row."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    msg = lines[0] if lines else ""
    if isinstance(exc, MemoryError):
        return "out of memory" + (f" ({msg})" if msg else "")
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


#: zlib level of the PNG pictures written with libdeflate (:func:`png_bytes`)
PNG_DEFLATE_LEVEL = 1


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(bgr: np.ndarray, path="picture") -> bytes:
    """A BGR (OpenCV order; or greyscale) uint8 array as PNG file bytes (``path`` names it in the error).

    8-bit RGB / greyscale pictures are written with the PNG "Sub" filter and compressed by libdeflate
    (``imagecodecs``, level :data:`PNG_DEFLATE_LEVEL`): a 2048^2 TEM overlay in ~70 ms and ~6 MB
    against ~120-170 ms and ~10 MB with OpenCV's encoder; the pixels are the same (lossless). Other
    pictures (or without libdeflate) go through ``cv2.imencode``.
    """
    import struct

    import imagecodecs

    a = np.asarray(bgr)
    if (a.dtype == np.uint8 and a.size and (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3))
            and getattr(getattr(imagecodecs, "DEFLATE", None), "available", False)):
        h, w = a.shape[:2]
        ch = 1 if a.ndim == 2 else 3
        rows = (a if ch == 1 else a[..., ::-1]).reshape(h, w * ch)  # PNG holds RGB
        raw = np.empty((h, 1 + w * ch), np.uint8)
        raw[:, 0] = 1  # filter type 1 (Sub): each byte minus the byte one pixel to its left, mod 256
        raw[:, 1:1 + ch] = rows[:, :ch]
        np.subtract(rows[:, ch:], rows[:, :-ch], out=raw[:, 1 + ch:])
        ihdr = struct.pack(">IIBBBBB", w, h, 8, 0 if ch == 1 else 2, 0, 0, 0)
        idat = imagecodecs.deflate_encode(raw, level=PNG_DEFLATE_LEVEL, raw=False)  # a zlib stream
        return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", bytes(idat))
                + _png_chunk(b"IEND", b""))
    import cv2

    ok, buf = cv2.imencode(".png", a)
    if not ok:
        raise OSError(f"{path}: could not encode PNG")
    return buf.tobytes()


def save_png(path, rgb: np.ndarray) -> bytes:
    """Save an RGB uint8 array as PNG, atomically; returns the file's bytes."""
    data = png_bytes(np.ascontiguousarray(rgb[..., ::-1]), path)
    atomic_write_bytes(path, data)
    return data


def write_run_json(out_dir, command: str, params: dict, inputs: list[InputFile], extra=None) -> dict:
    """Record version, parameters and the SHA-256 of every input in ``out_dir/run.json``."""
    files = []
    for f in inputs:
        entry = {"image": f.rel, "path": display_text(f.path)}
        if getattr(f, "error", None):
            entry["sha256"] = None
            entry["error"] = f.error  # never opened (not a regular file, link loop, ...)
        else:
            try:
                entry["sha256"] = sha256_file(f.path)
            except OSError as exc:
                entry["sha256"] = None
                entry["error"] = display_text(str(exc))
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
