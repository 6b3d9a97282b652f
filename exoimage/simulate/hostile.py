"""A hostile (or merely clumsy) experiment folder, built on demand, with what each case must give.

:func:`build_hostile_folder` writes an experiment folder in the layout
``exoimage run`` reads (``tem/<sample>/``, ``blots/``, ``nta/<sample>/``): a few
good simulated images whose numbers must not change, and one file (or folder)
per hostile case: decompression bombs of every reader, files that are not what
their name says, non-regular files, symlink tricks, colliding and over-long
names, user text that a spreadsheet or matplotlib would interpret, and numbers
an NTA export must never pass QC with.

Nothing is committed as a binary: the test suite (``tests/test_hostile_folder.py``)
and ``benchmarks/bench_hostile.py`` build the folder at run time and check each
case's outcome against :attr:`HostileCase.expect`.

Every bomb is *small on disk* and *huge when decoded*: a reader that decodes
before it checks the declared size runs out of memory, one that checks first
answers at once.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas  # noqa: F401  (the type of case_outcomes)

__all__ = ["HostileCase", "build_hostile_folder", "case_outcomes", "run_measured", "tiff_bomb", "png_bomb", "bmp_bomb",
           "jpeg_bomb", "mrc_bomb", "ome_entity_tiff"]


@dataclass(frozen=True)
class HostileCase:
    """One case of the hostile folder.

    Attributes
    ----------
    name : str
        Short identifier.
    kind : str
        ``'tem'``, ``'blot'`` or ``'nta'``: which analysis sees it.
    rel : str
        Path relative to the experiment folder (as ``exoimage run`` names it).
    expect : str
        ``'ok'`` (analysed, status ok), ``'error'`` (an error row whose reason
        matches ``reason``), ``'not_pass'`` (NTA: an error row or a QC that is
        not PASS), or ``'ok_or_error'`` (either, but never a crash or a hang).
    reason : str
        Regular expression (case-insensitive) the error text must match.
    """

    name: str
    kind: str
    rel: str
    expect: str
    reason: str = ""


# --------------------------------------------------------------------------
# Bombs: tiny files declaring huge images


def _tiff_entry(tag: int, typ: int, count: int, value: int) -> bytes:
    if typ == 3 and count == 1:  # SHORT, left-justified in the 4-byte field
        return struct.pack("<HHIHH", tag, typ, count, value, 0)
    return struct.pack("<HHII", tag, typ, count, value)


def tiff_bomb(path, width: int = 40000, height: int = 40000, tile: int = 1024) -> Path:
    """A deflate-tiled uint16 TIFF whose every tile is the same compressed block of zeros.

    40000 x 40000 (the default) decodes to 3.2 GB from a file of about 20 kB.
    """
    path = Path(path)
    block = zlib.compress(bytes(tile * tile * 2), 9)
    n = -(-width // tile) * -(-height // tile)
    header = 8
    n_entries = 11
    ifd_size = 2 + 12 * n_entries + 4
    offsets_at = header + ifd_size
    counts_at = offsets_at + 4 * n
    data_at = counts_at + 4 * n
    entries = [
        _tiff_entry(256, 4, 1, width), _tiff_entry(257, 4, 1, height),
        _tiff_entry(258, 3, 1, 16), _tiff_entry(259, 3, 1, 8),  # deflate
        _tiff_entry(262, 3, 1, 1), _tiff_entry(277, 3, 1, 1), _tiff_entry(284, 3, 1, 1),
        _tiff_entry(322, 3, 1, tile), _tiff_entry(323, 3, 1, tile),
        _tiff_entry(324, 4, n, offsets_at), _tiff_entry(325, 4, n, counts_at),
    ]
    with open(path, "wb") as fh:
        fh.write(b"II*\x00" + struct.pack("<I", header))
        fh.write(struct.pack("<H", n_entries) + b"".join(entries) + struct.pack("<I", 0))
        fh.write(struct.pack(f"<{n}I", *([data_at] * n)))
        fh.write(struct.pack(f"<{n}I", *([len(block)] * n)))
        fh.write(block)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(path, width: int = 30000, height: int = 30000) -> Path:
    """An 8-bit grey PNG of zeros: 30000 x 30000 (900 MB decoded) in under 1 MB."""
    path = Path(path)
    comp = zlib.compressobj(9)
    row_block = bytes(width + 1) * 500  # 500 rows: filter byte + pixels
    parts = []
    left = height
    while left > 0:
        k = min(500, left)
        parts.append(comp.compress(row_block[: k * (width + 1)]))
        left -= k
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts))
                     + _png_chunk(b"IEND", b""))
    return path


def bmp_bomb(path, width: int = 50000, height: int = 50000) -> Path:
    """A 24-bit BMP header declaring 50000 x 50000 px (7.5 GB) with no pixel data."""
    path = Path(path)
    row = (width * 3 + 3) // 4 * 4
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, row * height & 0xFFFFFFFF, 2835, 2835, 0, 0)
    head = b"BM" + struct.pack("<IHHI", 14 + 40 + 64, 0, 0, 14 + 40)
    path.write_bytes(head + info + bytes(64))
    return path


def jpeg_bomb(path, width: int = 65000, height: int = 65000) -> Path:
    """A small real JPEG whose frame header (SOF0) is patched to declare 65000 x 65000 px."""
    import cv2

    path = Path(path)
    ok, buf = cv2.imencode(".jpg", np.full((16, 16), 128, np.uint8))
    data = bytearray(buf.tobytes())
    i = data.find(b"\xff\xc0")
    if i < 0:  # pragma: no cover - OpenCV writes baseline JPEG
        raise RuntimeError("no SOF0 marker in the encoded JPEG")
    struct.pack_into(">HH", data, i + 5, height, width)
    path.write_bytes(bytes(data))
    return path


def mrc_bomb(path, nx: int = 40000, ny: int = 40000, nz: int = 1) -> Path:
    """An MRC2014 header declaring nx x ny x nz int16 voxels, with no data behind it."""
    path = Path(path)
    h = bytearray(1024)
    struct.pack_into("<iiii", h, 0, nx, ny, nz, 1)  # mode 1 = int16
    struct.pack_into("<iii", h, 28, nx, ny, nz)
    struct.pack_into("<fff", h, 40, float(nx), float(ny), float(nz))
    struct.pack_into("<fff", h, 52, 90.0, 90.0, 90.0)
    struct.pack_into("<iii", h, 64, 1, 2, 3)
    h[208:212] = b"MAP "
    h[212:216] = b"\x44\x44\x00\x00"
    struct.pack_into("<i", h, 104, 20140)  # nversion
    path.write_bytes(bytes(h) + bytes(64))
    return path


def ome_entity_tiff(path) -> Path:
    """A small TIFF whose OME-XML description is a 'billion laughs' entity expansion."""
    import tifffile

    path = Path(path)
    ents = ['<!ENTITY a0 "lol">'] + [f'<!ENTITY a{i} "{("&a" + str(i - 1) + ";") * 10}">' for i in range(1, 10)]
    xml = ('<?xml version="1.0"?><!DOCTYPE OME [' + "".join(ents) + ']>'
           '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0">'
           '<Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" SizeX="64" SizeY="64" SizeC="1" '
           'SizeZ="1" SizeT="1" PhysicalSizeX="1.0" PhysicalSizeXUnit="&a9;"/></Image></OME>')
    tifffile.imwrite(str(path), np.zeros((64, 64), np.uint16), description=xml, metadata=None)
    return path


# --------------------------------------------------------------------------
# The folder


def _tem_field(seed: int, size: int = 512, pixel_size_nm: float = 1.0):
    from .tem import TemScene, simulate_tem

    img, _ = simulate_tem(TemScene(shape=(size, size), pixel_size_nm=pixel_size_nm), seed=seed)
    return img


def _write_tem(path: Path, seed: int, fmt: str = "tif") -> Path:
    from ..io import write_calibrated_tiff

    path.parent.mkdir(parents=True, exist_ok=True)
    img = _tem_field(seed)
    if fmt == "png":
        import cv2

        cv2.imwrite(str(path), (img >> 8).astype(np.uint8))
    else:
        write_calibrated_tiff(path, img, 1.0)
    return path


def _write_blot(path: Path, seed: int, dtype=None, scale: float | None = None) -> Path:
    import tifffile

    from .blot import simulate_blot

    path.parent.mkdir(parents=True, exist_ok=True)
    sim = simulate_blot(n_lanes=5, height=300, seed=seed)
    data = sim.data
    if scale is not None:
        data = (data.astype(np.float64) / max(1.0, float(data.max())) * scale).astype(dtype)
    elif dtype is not None:
        data = data.astype(dtype)
    tifffile.imwrite(str(path), data, photometric="minisblack")
    return path


def _nanosight(path: Path, **kw) -> Path:
    from .nta import nanosight_summary

    path.parent.mkdir(parents=True, exist_ok=True)
    raw, _ = nanosight_summary(**kw)
    path.write_bytes(raw)
    return path


def build_hostile_folder(root, *, nta_huge_mb: int = 200) -> list[HostileCase]:
    """Write the hostile experiment folder under ``root``; return its cases.

    Parameters
    ----------
    root : path
        Folder to create (must not exist or be empty). The layout is that of
        ``exoimage run``: ``root/tem``, ``root/blots``, ``root/nta``.
    nta_huge_mb : int
        Size of the over-large NanoSight export, MB (written as real CSV lines).

    Returns
    -------
    list of HostileCase
        Good inputs (``expect='ok'``) first, then the hostile cases. Every simulated
        field is 1 nm/px; run ``exoimage tem`` on the folder with ``--pixel-size 1``
        (the folder's experiment.toml gives ``exoimage run`` the one uncalibrated PNG's).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tem, blots, nta = root / "tem", root / "blots", root / "nta"
    cases: list[HostileCase] = []

    def case(name, kind, rel, expect, reason=""):
        cases.append(HostileCase(name, kind, rel, expect, reason))

    # good TEM images: their numbers must not change whatever else is in the folder
    for s, seed in (("S1", 1), ("S2", 2)):
        _write_tem(tem / s / "good.tif", seed)
        case(f"good_tem_{s}", "tem", f"tem/{s}/good.tif", "ok")

    bad = tem / "B"
    bad.mkdir(parents=True)
    budget = r"budget|too large|max.?pixels"
    tiff_bomb(bad / "bomb_tiff_3p2GB.tif")
    case("tiff_bomb", "tem", "tem/B/bomb_tiff_3p2GB.tif", "error", budget)
    png_bomb(bad / "bomb_png_900MB.png")
    case("png_bomb", "tem", "tem/B/bomb_png_900MB.png", "error", budget)
    bmp_bomb(bad / "bomb_bmp.bmp")
    case("bmp_bomb", "tem", "tem/B/bomb_bmp.bmp", "error", budget)
    jpeg_bomb(bad / "bomb_jpeg.jpg")
    case("jpeg_bomb", "tem", "tem/B/bomb_jpeg.jpg", "error", budget)
    mrc_bomb(bad / "bomb.mrc")
    case("mrc_bomb", "tem", "tem/B/bomb.mrc", "error", budget + "|size|truncated|short")
    ome_entity_tiff(bad / "ome_entities.tif")
    case("ome_entities", "tem", "tem/B/ome_entities.tif", "error", r"entit|doctype|xml")

    good_bytes = (tem / "S1" / "good.tif").read_bytes()
    (bad / "truncated.tif").write_bytes(good_bytes[: len(good_bytes) // 2])
    case("truncated_tiff", "tem", "tem/B/truncated.tif", "error", r"truncat|cannot read|corrupt")
    (bad / "text_as.tif").write_text("this is not an image\n")
    case("text_as_tiff", "tem", "tem/B/text_as.tif", "error", r"not a|cannot read")
    (bad / "empty.tif").write_bytes(b"")
    case("empty_file", "tem", "tem/B/empty.tif", "error", r"empty")
    import tifffile

    tifffile.imwrite(str(bad / "constant.tif"), np.zeros((64, 64), np.uint16))
    case("constant", "tem", "tem/B/constant.tif", "error", r"constant")
    nan = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    nan[3, 3] = np.nan
    tifffile.imwrite(str(bad / "nan.tif"), nan)
    case("nan_pixels", "tem", "tem/B/nan.tif", "error", r"nan")
    tifffile.imwrite(str(bad / "one_px.tif"), np.ones((1, 1), np.uint16))
    case("one_pixel", "tem", "tem/B/one_px.tif", "error", r"too small")
    cplx = (np.random.default_rng(1).random((64, 64)) + 1j).astype(np.complex64)
    tifffile.imwrite(str(bad / "complex.tif"), cplx)
    case("complex_tiff", "tem", "tem/B/complex.tif", "error", r"complex")
    strip = np.random.default_rng(2).integers(0, 255, (10, 100000), dtype=np.uint8)
    tifffile.imwrite(str(bad / "strip_10x100000.tif"), strip)
    case("thin_strip", "tem", "tem/B/strip_10x100000.tif", "ok_or_error")

    # names
    names = tem / "N"
    long_name = "L" * 240 + ".tif"
    _write_tem(names / long_name, 3)
    case("long_name", "tem", f"tem/N/{long_name}", "ok")
    for i, n in enumerate(("f 1.tif", "f_1.tif", "f_1.png")):
        _write_tem(names / n, 10 + i, fmt="png" if n.endswith(".png") else "tif")
        case(f"collide_{i}", "tem", f"tem/N/{n}", "ok")

    # the PNG has no calibration: exoimage run gets it from experiment.toml, exoimage tem from
    # --pixel-size 1 (every simulated field here is 1 nm/px)
    (root / "experiment.toml").write_text('[tem.pixel_size_nm]\n"N/f_1.png" = 1.0\n', encoding="utf-8")

    # non-regular files and links
    fifo = bad / "fifo.tif"
    if hasattr(os, "mkfifo"):
        os.mkfifo(fifo)
        case("fifo", "tem", "tem/B/fifo.tif", "error", r"not a regular|fifo|pipe|special")
    elsewhere = root / "elsewhere"
    _write_tem(elsewhere / "S3" / "linked.tif", 4)
    os.symlink(os.path.relpath(elsewhere / "S3", tem), tem / "S3")
    case("symlinked_sample", "tem", "tem/S3/linked.tif", "ok_or_error")
    _write_tem(tem / "S4" / "good.tif", 5)
    case("good_tem_S4", "tem", "tem/S4/good.tif", "ok")
    os.symlink("..", tem / "S4" / "loop")  # a link to its own ancestor

    # user text a spreadsheet or matplotlib would interpret
    formula = '=HYPERLINK("x","y")'
    _write_tem(tem / formula / "f.tif", 6)
    case("formula_sample", "tem", f"tem/{formula}/f.tif", "ok")
    maths = "$\\alpha$ 10%_{x}"
    _write_tem(tem / maths / "f.tif", 7)
    case("mathtext_sample", "tem", f"tem/{maths}/f.tif", "ok")

    # blots
    _write_blot(blots / "gel1" / "CD63.tif", 21)
    _write_blot(blots / "gel2" / "CD63.tif", 22)
    case("same_stem_gel1", "blot", "blots/gel1/CD63.tif", "ok")
    case("same_stem_gel2", "blot", "blots/gel2/CD63.tif", "ok")
    _write_blot(blots / "u32.tif", 23, dtype=np.uint32, scale=2e9)
    case("uint32_blot", "blot", "blots/u32.tif", "ok_or_error")
    i8 = (np.random.default_rng(3).integers(-100, 100, (200, 300))).astype(np.int8)
    tifffile.imwrite(str(blots / "int8.tif"), i8)
    case("int8_blot", "blot", "blots/int8.tif", "error", r"signed|int8")
    tiff_bomb(blots / "bomb.tif")
    case("blot_bomb", "blot", "blots/bomb.tif", "error", budget)

    # NTA
    _nanosight(nta / "N1" / "N1-ExperimentSummary.csv")
    case("good_nta", "nta", "nta/N1/N1-ExperimentSummary.csv", "ok")
    _nanosight(nta / "N2" / "neg-ExperimentSummary.csv", conc_cell=(-2.0e7, -2.1e7, -1.9e7))
    case("negative_concentration", "nta", "nta/N2/neg-ExperimentSummary.csv", "not_pass")
    raw, _ = __import__("exoimage.simulate.nta", fromlist=["nanosight_summary"]).nanosight_summary()
    text = raw.decode("cp1252")
    lines = text.split("\r\n")
    for i, line in enumerate(lines):
        if line.lower().startswith("concentration (particles / ml)"):
            cells = line.split(",")
            lines[i] = ",".join([cells[0]] + ["abc"] * (len(cells) - 1))
            break
    (nta / "N3").mkdir(parents=True)
    (nta / "N3" / "text-ExperimentSummary.csv").write_bytes("\r\n".join(lines).encode("cp1252"))
    case("text_in_numbers", "nta", "nta/N3/text-ExperimentSummary.csv", "not_pass")
    huge = nta / "N4" / "huge-ExperimentSummary.csv"
    huge.parent.mkdir(parents=True)
    block = ("1.5,2.5,3.5,4.5,5.5,6.5,7.5,8.5,9.5,10.5\r\n" * 20000).encode()
    with open(huge, "wb") as fh:
        fh.write(raw[:2000])
        for _ in range(max(1, nta_huge_mb * (1 << 20) // len(block))):
            fh.write(block)
    case("huge_nta_csv", "nta", "nta/N4/huge-ExperimentSummary.csv", "error", r"too large|over|limit|size")
    return cases


# --------------------------------------------------------------------------
# Checking what a command made of the folder

#: table (relative to the output folder), its name column and the prefix that turns that
#: column into the case's ``rel``, per command and analysis kind
_TABLES = {
    "tem": {"tem": ("images.csv", "image", "tem/")},
    "blot": {"blot": ("images.csv", "image", "blots/")},
    "run": {"tem": ("images.csv", "image", ""), "blot": ("blot_images.csv", "image", ""),
            "nta": ("nta_files.csv", "file", "")},
}


def case_outcomes(cases, out, command: str) -> "pandas.DataFrame":
    """One row per case that ``command`` sees: what it expected, what the tables say, passed or not.

    Parameters
    ----------
    cases : list of HostileCase
        As returned by :func:`build_hostile_folder`.
    out : path
        The command's output folder.
    command : str
        ``'tem'`` (``exoimage tem ROOT/tem``), ``'blot'`` (``exoimage blot ROOT/blots``)
        or ``'run'`` (``exoimage run ROOT``).

    Returns
    -------
    pandas.DataFrame
        ``case, kind, rel, expect, status, error, passed``; a case with no row
        in the tables has status ``'missing'`` and never passes.
    """
    import re

    import pandas as pd

    from ..outputs import display_text

    out = Path(out)
    rows = []
    tables = {}
    for kind, (fname, col, prefix) in _TABLES[command].items():
        f = out / fname
        t = pd.read_csv(f, dtype=str, keep_default_na=False) if f.exists() else pd.DataFrame()
        tables[kind] = {prefix + str(v).lstrip("'"): r for v, r in zip(t.get(col, []), t.to_dict("records"))}
    qc = out / "qc.csv"
    qc = pd.read_csv(qc, dtype=str, keep_default_na=False) if qc.exists() else pd.DataFrame()
    for c in cases:
        if c.kind not in tables:
            continue
        r = tables[c.kind].get(display_text(c.rel))
        status = (r or {}).get("status", "missing") if r is not None else "missing"
        error = (r or {}).get("error", "") if r is not None else ""
        if c.expect == "ok":
            passed = status == "ok"
        elif c.expect == "error":
            passed = status == "error" and bool(re.search(c.reason, error, re.I)) and "\n" not in error
        elif c.expect == "ok_or_error":
            passed = status in ("ok", "error") and "\n" not in error
        elif c.expect == "not_pass":
            sample = c.rel.split("/")[1]
            fails = (len(qc) and ((qc["item"] == sample) & (qc["status"] == "FAIL")).any())
            passed = status == "error" or bool(fails)
        else:  # pragma: no cover
            raise ValueError(f"unknown expectation {c.expect!r}")
        rows.append(dict(case=c.name, kind=c.kind, rel=c.rel, expect=c.expect, status=status,
                         error=error, passed=bool(passed)))
    return pd.DataFrame(rows, columns=["case", "kind", "rel", "expect", "status", "error", "passed"])


def run_measured(cmd, *, timeout: float = 600.0, env=None) -> dict:
    """Run ``cmd``; return its exit code, wall time, stderr and the peak RSS of its whole process tree.

    The tree (the command and every process it starts, e.g. Dask workers) is
    sampled every 50 ms with psutil; ``peak_rss_mb`` is the largest sum seen.
    A command still running after ``timeout`` s is killed (``returncode`` None).
    """
    import subprocess
    import tempfile
    import time

    import psutil

    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, env=env)
        ps = psutil.Process(proc.pid)
        peak = 0
        rc = None
        while True:
            try:
                rss = ps.memory_info().rss + sum(ch.memory_info().rss for ch in ps.children(recursive=True))
                peak = max(peak, rss)
            except psutil.Error:
                pass
            rc = proc.poll()
            if rc is not None:
                break
            if time.perf_counter() - t0 > timeout:
                for ch in ps.children(recursive=True):
                    ch.kill()
                proc.kill()
                proc.wait()
                rc = None
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - t0
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    return {"returncode": rc, "seconds": round(seconds, 2), "peak_rss_mb": round(peak / 2**20, 1),
            "stderr": stderr}
