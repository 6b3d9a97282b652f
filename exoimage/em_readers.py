"""Electron-microscopy vendor formats read through rosettasciio (the optional ``exoimage[em]`` extra).

rosettasciio (HyperSpy's IO library, GPL-3.0-or-later) is never imported by
exoimage itself: only inside these readers, when a file of one of its formats
is opened, so the BSD-3-Clause core installs and runs without it (a file of
these formats then gets a one-line "needs rosettasciio" error).

Formats: FEI/Thermo Fisher TIA ``.emi``/``.ser``, Velox (and NCEM) ``.emd``,
JEOL Analysis Station ``.img``/``.map``, Phenom ``.elid``, and Gatan DM3/DM4
files that ncempy cannot read as one image (several datasets; or ncempy absent).

Which image of a multi-image file
---------------------------------
:func:`choose_image`: the **first 2-D real-space image** in the order
rosettasciio lists the file's datasets: a signal with exactly two axes, both
calibrated in a length unit (nm, µm, Å, m...), with real (not complex, not
RGB-record) samples. Reciprocal-space data (a diffraction pattern or FFT in
1/nm), spectra, line profiles and spectrum images are skipped. When no dataset
is a real-space image, the first 2-D image is taken without a calibration.
When several qualify, the choice and the others are named in a warning (never
page 0 silently).

Pixel budget
------------
Each probe loads the file with ``lazy=True`` (dask arrays over the file: the
declared shapes are read, no pixel is decoded), so :func:`exoimage.io.read_image`
refuses an over-budget image before the chosen one is computed. Phenom
archives cannot be loaded lazily and their bzip2 stream declares no size: the
probe decompresses it once in bounded chunks, counting, and refuses it past
the byte budget before rosettasciio sees it.

Non-square pixels
-----------------
Handled as the Gatan reader does: the x pixel size is used and a
``non_square_pixels`` warning shows both values.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import io as _io
from .io import ImageHeader, ImageReadError, Image, unit_to_nm
from .warning_codes import coded

__all__ = ["EM_FORMATS", "choose_image", "read_rsciio", "probe_rsciio", "rsciio_available"]

#: rosettasciio plugin, exoimage file_format, pixel_size_source and suffixes of each format
EM_FORMATS = {
    "tia": ("tia", "tia", (".emi", ".ser")),
    "emd": ("emd", "velox", (".emd",)),
    "jeol": ("jeol", "jeol", (".img", ".map")),
    "phenom": ("phenom", "phenom", (".elid",)),
    "gatan_rsciio": ("digitalmicrograph", "gatan", (".dm3", ".dm4")),
}

#: tolerance for x and y pixel sizes being "the same" (relative): rosettasciio's
#: float32 scales differ in the 7th digit at most
SQUARE_RTOL = 1e-3


def rsciio_available() -> bool:
    """True when rosettasciio can be imported."""
    try:
        import rsciio  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def _quiet_rsciio():
    # rosettasciio logs "Falling back to slow pure python code, because numba is not
    # installed" on import; a reader's user needs none of that on stderr
    log = logging.getLogger("rsciio")
    old = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(old)


def _plugin(p: Path, plugin: str):
    try:
        with _quiet_rsciio():
            import importlib

            return importlib.import_module(f"rsciio.{plugin}")
    except ImportError:
        raise ImageReadError(p, f"reading {p.suffix.lower()} files needs rosettasciio: "
                                f"pip install 'exoimage[em]'") from None


def _load(p: Path, plugin: str, max_pixels: int) -> list:
    mod = _plugin(p, plugin)
    if plugin == "phenom":
        _check_bz2(p, max_pixels)
        lazy = False
    else:
        lazy = True
    with _quiet_rsciio():
        kw = {"lazy": lazy}
        if plugin == "tia":
            kw["only_valid_data"] = True
        out = mod.file_reader(str(p), **kw)
    if not out:
        raise ImageReadError(p, "file holds no dataset")
    return list(out)


#: bytes read from the file per step of the Phenom size check
_BZ2_CHUNK = 1 << 20


def _check_bz2(p: Path, max_pixels: int) -> None:
    """A Phenom ELID archive (one bzip2 stream) must decompress to no more than the byte budget.

    bzip2 declares no size: the stream is decompressed once in bounded chunks and
    discarded, counting, and refused as soon as the count passes the budget
    (a "decompression bomb" never reaches rosettasciio).
    """
    import bz2

    limit = max_pixels * _io.MAX_BYTES_PER_SAMPLE
    dec = bz2.BZ2Decompressor()
    total = 0
    with open(p, "rb") as fh:
        while not dec.eof:
            chunk = fh.read(_BZ2_CHUNK) if dec.needs_input else b""
            if dec.needs_input and not chunk:
                raise ImageReadError(p, "truncated Phenom archive (the bzip2 stream ends early)")
            try:
                total += len(dec.decompress(chunk, max_length=_BZ2_CHUNK))
            except (OSError, EOFError, ValueError) as exc:
                raise ImageReadError(p, f"corrupt Phenom archive ({exc})") from None
            if total > limit:
                raise ImageReadError(p, f"archive decompresses to more than {limit} bytes, over the memory "
                                        f"budget (max_pixels x {_io.MAX_BYTES_PER_SAMPLE}; raise max_pixels "
                                        f"to allow it)")


def _axes_nm(sig: dict):
    """(nm per unit of y, nm per unit of x, y scale, x scale, units) of a 2-D signal's axes."""
    ax = sig.get("axes") or []
    (ay, axx) = ax[-2], ax[-1]
    return (unit_to_nm(ay.get("units")), unit_to_nm(axx.get("units")),
            float(ay.get("scale", 1.0)), float(axx.get("scale", 1.0)), (ay.get("units"), axx.get("units")))


def _is_image(sig: dict) -> bool:
    d = sig.get("data")
    dt = getattr(d, "dtype", None)
    shape = tuple(getattr(d, "shape", ()))
    if len(shape) != 2 or len(sig.get("axes") or []) != 2 or dt is None:
        return False
    return dt.names is None and dt.kind in "uifb"


def _title(sig: dict) -> str:
    return str(((sig.get("metadata") or {}).get("General") or {}).get("title") or "untitled")


def choose_image(signals: list) -> tuple[int, list]:
    """Index of the image exoimage reads in rosettasciio's ``signals``, and the other candidates.

    The rule (module docstring): the first 2-D real-space image; else the first
    2-D image of any calibration; ``-1`` when there is none. The second value
    lists ``(index, title, shape)`` of the other 2-D real-space images.
    """
    images = [i for i, s in enumerate(signals) if _is_image(s)]
    real = [i for i in images if all(_axes_nm(signals[i])[:2])]
    pool = real or images
    if not pool:
        return -1, []
    pick = pool[0]
    others = [(i, _title(signals[i]), tuple(signals[i]["data"].shape)) for i in pool[1:]]
    return pick, others


def _describe_all(signals: list) -> str:
    return "; ".join(f"{_title(s)} {tuple(getattr(s.get('data'), 'shape', ()))}" for s in signals[:6])


def _pick(p: Path, signals: list):
    i, others = choose_image(signals)
    if i < 0:
        raise ImageReadError(p, f"file holds no 2-D image (datasets: {_describe_all(signals)})")
    return i, signals[i], others


def _header(p: Path, sig: dict, file_format: str) -> ImageHeader:
    d = sig["data"]
    h, w = (int(v) for v in d.shape)
    dt = np.dtype(d.dtype)
    return ImageHeader(h, w, 1, dt.itemsize, 1, dt.name, file_format)


def probe_rsciio(p: Path, fmt: str, max_pixels: int) -> ImageHeader:
    """ImageHeader of the image :func:`read_rsciio` would read, without decoding it."""
    plugin, _source, _ = EM_FORMATS[fmt]
    signals = _load(p, plugin, max_pixels)
    _, sig, _ = _pick(p, signals)
    return _header(p, sig, _file_format(p, fmt))


def _file_format(p: Path, fmt: str) -> str:
    return p.suffix.lower()[1:]


def _source(p: Path, fmt: str) -> str:
    if fmt != "emd":
        return EM_FORMATS[fmt][1]
    try:
        from rsciio.emd._api import is_EMD_Velox

        return "velox" if is_EMD_Velox(str(p)) else "emd"
    except Exception:  # noqa: BLE001 - the reader would have failed first
        return "emd"


def read_rsciio(p: Path, fmt: str, max_pixels: int) -> Image:
    """Read the chosen image (:func:`choose_image`) of a file through rosettasciio, calibrated."""
    plugin, _, _ = EM_FORMATS[fmt]
    signals = _load(p, plugin, max_pixels)
    i, sig, others = _pick(p, signals)
    hdr = _header(p, sig, _file_format(p, fmt))
    _io._admit(hdr, p, max_pixels)  # before anything is decoded
    d = sig["data"]
    if hasattr(d, "compute"):
        d = d.compute(scheduler="synchronous")
    data = np.array(d)
    img = Image(data=data, file_format=_file_format(p, fmt))
    img.metadata["dataset_index"] = i
    img.metadata["dataset_title"] = _title(sig)
    img.metadata["datasets_in_file"] = len(signals)
    if others:
        img.warnings.append(coded("several_images", (
            f"file holds {1 + len(others)} 2-D images; read dataset {i} '{_title(sig)}' "
            f"{tuple(data.shape)} (the first real-space image); not read: "
            + ", ".join(f"{j} '{t}' {s}" for j, t, s in others))))
    fy, fx, sy, sx, units = _axes_nm(sig)
    source = _source(p, fmt)
    if fx and fy:
        nm_x = _io._file_pixel_size(sx * fx, source, img)
        if nm_x is not None:
            img.pixel_size_nm = nm_x
            img.pixel_size_source = source
            img.metadata[f"{source}_pixel_size_nm"] = nm_x
            nm_y = sy * fy
            if abs(nm_y - nm_x) > SQUARE_RTOL * nm_x:
                img.warnings.append(coded("non_square_pixels",
                                          f"non-square pixels ({nm_x:g} x {nm_y:g} nm); using x"))
    elif any(units):
        img.metadata["axes_units"] = f"{units[0]}, {units[1]}"
    return img


def _reader(fmt: str) -> _io.Reader:
    _, source, suffixes = EM_FORMATS[fmt]
    sources = ("velox", "emd") if fmt == "emd" else (source,)
    return _io.Reader(fmt, suffixes, lambda p, mp: read_rsciio(p, fmt, mp),
                      lambda p, mp: probe_rsciio(p, fmt, mp), (), sources)


def _register() -> None:
    for fmt in ("tia", "emd", "jeol", "phenom"):
        _io.register_reader(_reader(fmt), replace=True)
