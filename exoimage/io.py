"""Read microscope and blot images together with their spatial calibration.

One entry point, :func:`read_image`, turns any supported file into an
:class:`Image`: the 2-D pixel array in its original dtype, the pixel size in
nanometres (or ``None``), where that pixel size came from, and the metadata.

Calibration precedence
----------------------
1. an explicit ``pixel_size_nm`` passed by the caller (``source='given'``);
2. the file's own metadata (ImageJ, OME, FEI/Thermo, Zeiss SEM, Olympus SIS,
   TIFF resolution tags in cm, Gatan DM, MRC);
3. a burned-in scale bar, when the caller asks for it
   (``read_image(..., scale_bar='auto')``, see :mod:`exoimage.scalebar`; the TEM
   pipeline and the napari reader do): ``source='scale_bar'``;
4. none: ``pixel_size_nm is None`` and ``pixel_size_source == 'none'``.

Readers
-------
Each file format is a :class:`Reader` in a registry: a function that reads it,
one that reads its header only (the pixel budget is checked from it before the
reader decodes anything), the suffixes and leading magic bytes it takes, and
the pixel-size sources it may report. A new format is one
:func:`register_reader` call; :func:`read_image`, :func:`probe_image`, the
folder walk of the commands and the napari reader then take it.

Hostile files
-------------
Every reader parses the header first (:func:`probe_image`) and refuses, before
decoding a pixel, an image over the pixel budget (``max_pixels``, default
``DEFAULT_MAX_PIXELS``), complex data, XML with DOCTYPE/ENTITY declarations,
TIFF directory loops and codecs that size their own output. Measured peak
memory per pixel of an accepted image: ``PEAK_BYTES_PER_PIXEL``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import stat
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .warning_codes import coded

# tifffile reports what it finds wrong in a file through logging; without this an
# application that configured no logging gets those lines on stderr on top of our
# one-line error (an application that configures logging still receives them)
logging.getLogger("tifffile").addHandler(logging.NullHandler())

__all__ = [
    "Image",
    "ImageHeader",
    "ImageReadError",
    "Reader",
    "SUPPORTED_SUFFIXES",
    "SCALE_BAR_MODES",
    "READ_PATH_SOURCES",
    "DEFAULT_MAX_PIXELS",
    "MAX_BYTES_PER_SAMPLE",
    "PEAK_BYTES_PER_PIXEL",
    "PIXEL_SIZE_RANGE_NM",
    "probe_image",
    "read_image",
    "regular_file_stat",
    "register_reader",
    "unregister_reader",
    "readers",
    "reader_for",
    "supported_suffixes",
    "validate_image",
    "write_calibrated_tiff",
    "sha256_file",
    "unit_to_nm",
]

TIFF_SUFFIXES = (".tif", ".tiff")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
GATAN_SUFFIXES = (".dm3", ".dm4")
MRC_SUFFIXES = (".mrc",)
#: read through rosettasciio (the ``[em]`` extra, :mod:`exoimage.em_readers`): TIA, Velox/NCEM EMD,
#: JEOL Analysis Station, Phenom ELID
EM_SUFFIXES = (".emi", ".ser", ".emd", ".img", ".map", ".elid")
#: suffixes of the built-in readers (:func:`supported_suffixes` also lists registered ones)
SUPPORTED_SUFFIXES = TIFF_SUFFIXES + RASTER_SUFFIXES + GATAN_SUFFIXES + MRC_SUFFIXES + EM_SUFFIXES

#: ``read_image(scale_bar=...)``: 'auto' searches the pixels for a burned-in scale bar
#: (calibration when the file has none, a cross-check otherwise, the annotation mask);
#: 'off' does not (True and False are taken as 'auto' and 'off')
SCALE_BAR_MODES = ("auto", "off")

#: Pixel sizes (nm/px) we accept as a plausible electron-microscope calibration
#: when it comes from generic TIFF resolution tags.
PLAUSIBLE_EM_PIXEL_NM = (0.001, 1000.0)

#: Pixel sizes (nm/px) accepted at all: given by the caller (``pixel_size_nm=``,
#: ``--pixel-size``) or read from Gatan/MRC headers. 1e-4 nm (0.001 A) is far below
#: any microscope's sampling; 1e7 nm (1 cm) is far above a whole-membrane blot scan
#: (10-100 um/px) and the several um/px of low-magnification SEM calibrations.
#: Values outside are typing or unit mistakes.
PIXEL_SIZE_RANGE_NM = (1e-4, 1e7)
#: the same range under the name exoimage.params / experiment.toml validation uses
PLAUSIBLE_GIVEN_PIXEL_NM = PIXEL_SIZE_RANGE_NM

#: Default pixel budget: the largest image (height x width x samples) that is
#: decoded at all; larger declared sizes are refused from the header, before any
#: pixel is decoded. 16384^2 covers stitched TEM montages and 600-dpi scans of a
#: whole film; change it with ``max_pixels=``, ``--max-pixels`` or
#: ``[experiment] max_pixels``.
DEFAULT_MAX_PIXELS = 16384 * 16384

#: Byte budget per budgeted sample: an image is also refused when its decoded size
#: (height x width x samples x bytes per sample) exceeds ``max_pixels * 4`` bytes,
#: i.e. the pixel budget holds 8-, 16- and 32-bit samples, and 64-bit samples
#: (float64, int64) up to half of it. At the default budget that is 1 GiB of
#: decoded pixels (a 16384^2 float64 image, 2 GiB, is refused).
MAX_BYTES_PER_SAMPLE = 4

#: Measured peak memory of reading + analysing one image, in bytes per pixel
#: (``ImageHeader.n_pixels``), per analysis kind, as a batch task does it
#: (``analyze_tem_file`` + overlay + label TIFF; ``analyze_blot_file`` + overlay).
#: Measured by ``benchmarks/bench_memory.py``: peak RSS (VmHWM) of a fresh
#: one-core process minus its peak after imports (~260 MB, the fixed cost of a
#: worker, not included here). Simulated images (TEM "mixed" at 1 nm/px, blot
#: "clean"), 2 cores shared, exoimage 0.1.0:
#:
#: ====  =======================  ======================  ======================
#: kind  image                    read + analyse MB B/px  + overlay MB  B/px
#: ====  =======================  ======================  ======================
#: tem   1024^2 uint16             50   47.8              63   60.0
#: tem   2048^2 uint16            161   38.5             175   41.6
#: tem   4096^2 uint16            658   39.2             658   39.2
#: tem   2048^2 uint8 / f32 / f64 157 / 170 / 186         174 / 174 / 186 (41.4-44.4)
#: tem   2048^2 uint16 crowded    172   41.0             175   41.8
#: tem   real 3072^2 RGB JPEG     366   12.9 (3 samples) 373   13.2
#: blot  1024^2 uint16             48   45.6              52   49.8
#: blot  2048^2 uint16            126   30.1             160   38.2
#: blot  4096^2 uint16            449   26.7             486   29.0
#: blot  2048^2 uint8 / f32 / f64 123 / 134 / 151         157 / 168 / 185 (37.5-44.2)
#: blot  2048^2 realistic         135   32.1             168   40.2
#: blot  real 1200x1648 uint16     59   29.9              77   39.1
#: ====  =======================  ======================  ======================
#:
#: Value: the worst case at >= 2048^2 px (44.4 tem, 44.2 blot: float64 input)
#: plus ~12 %. Below ~2 Mpx a fixed ~20 MB (modules loaded on first use, fixed
#: buffers) dominates, which the worker's import baseline more than covers.
#: TEM re-measured after issue 13's second look on a band-passed image
#: (tests/test_hostile_readers.py, 2048^2 field): 62.9 B/px, so 62.9 + ~12 % = 70.
#: Issue 14 is to bring it back down; the table above predates that change.
PEAK_BYTES_PER_PIXEL = {"tem": 70.0, "blot": 50.0}

#: Most top-level IFDs a TIFF may chain (single image + thumbnails / reduced
#: levels; a stack is refused anyway). The chain is walked before tifffile sees
#: it: tifffile's own walk finds only loops that come back to the first 100 pages.
MAX_TIFF_PAGES = 64

#: Most SubIFDs (pyramid levels) one TIFF page may list.
MAX_TIFF_SUBIFDS = 64

#: Longest problem text an ImageReadError keeps (library messages can be huge).
MAX_PROBLEM_CHARS = 400

_CONTROL_RUN = re.compile(r"[\s\x00-\x1f\x7f]*[\x00-\x1f\x7f][\s\x00-\x1f\x7f]*")
_CONTROL_CHAR = re.compile(r"[\x00-\x1f\x7f]")


def _one_line(text: str) -> str:
    """``text`` with every run of control characters (newlines, tabs, ...) made one space."""
    return _CONTROL_RUN.sub(" ", text).strip()


class ImageReadError(ValueError):
    """A file could not be read or analysed; ``str(err)`` is one line naming the file.

    The problem text is sanitised here, whoever raises: newlines and other control
    characters become spaces, the file's full path inside it is shortened to the
    file name (the path is already at the start), and it is cut to
    ``MAX_PROBLEM_CHARS``. ``path`` keeps the path as given; ``problem`` the
    sanitised text without the path.
    """

    def __init__(self, path, problem: str):
        self.path = str(path) if path is not None else "<array>"
        text = str(problem)
        if path is not None:
            name = Path(self.path).name
            full = {self.path}
            try:
                full |= {str(Path(self.path).absolute()), str(Path(self.path).resolve())}
            except (OSError, RuntimeError):
                pass
            for f in sorted(full, key=len, reverse=True):
                if f and f != name:
                    text = text.replace(f, name)
        text = _one_line(text) or "unknown problem"
        if len(text) > MAX_PROBLEM_CHARS:
            text = text[: MAX_PROBLEM_CHARS - 3].rstrip() + "..."
        self.problem = text
        shown = _CONTROL_CHAR.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), self.path)
        super().__init__(f"{shown}: {text}")


@dataclass(frozen=True)
class ImageHeader:
    """What a file declares about its image, read from the header alone.

    Attributes
    ----------
    height, width : int
        Image size in px.
    samples : int
        Samples (channels) per pixel as decoded (1 grey, 3 RGB, 4 RGBA).
    itemsize : int
        Bytes per sample as decoded.
    n_frames : int
        Images in the file (pages of a stack, z-slices); more than 1 is refused
        by :func:`read_image`.
    dtype : str or None
        numpy dtype name of the samples when the header says (``'uint16'``).
    file_format : str
        ``'tiff'``, ``'png'``, ``'jpeg'``, ``'bmp'``, ``'dm3'``, ``'dm4'`` or ``'mrc'``
        (PNG/JPEG/BMP from the content, whatever the suffix says).
    """

    height: int
    width: int
    samples: int = 1
    itemsize: int = 1
    n_frames: int = 1
    dtype: str | None = None
    file_format: str = ""

    @property
    def n_pixels(self) -> int:
        """height x width x samples of one frame: what the pixel budget counts."""
        return int(self.height) * int(self.width) * int(self.samples)

    @property
    def nbytes(self) -> int:
        """Decoded size of one frame in bytes."""
        return self.n_pixels * int(self.itemsize)


def _resolve_max_pixels(max_pixels) -> int:
    if max_pixels is None:
        return DEFAULT_MAX_PIXELS
    if isinstance(max_pixels, bool):
        raise ValueError(f"max_pixels must be a positive whole number of pixels, got {max_pixels!r}")
    try:
        v = int(max_pixels)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"max_pixels must be a positive whole number of pixels, got {max_pixels!r}") from None
    if v != max_pixels or v < 1:
        raise ValueError(f"max_pixels must be a positive whole number of pixels, got {max_pixels!r}")
    return v


def _count(n: int, unit: str = "px") -> str:
    if n >= 100e6:
        return f"{n / 1e6:.0f} M{unit}"
    if n >= 1e6:
        return f"{n / 1e6:.3g} M{unit}"
    return f"{n} {unit}"


def _bytes(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n} bytes"


def _describe(hdr: ImageHeader) -> str:
    s = f"{hdr.width}x{hdr.height} px"
    if hdr.samples > 1:
        s += f" x {hdr.samples} samples"
    return s


def _check_budget(hdr: ImageHeader, p, max_pixels: int) -> None:
    """Refuse a declared size over the pixel budget or the byte budget (before decoding)."""
    if hdr.height < 1 or hdr.width < 1 or hdr.samples < 1:
        raise ImageReadError(p, f"header declares an empty or invalid size ({_describe(hdr)})")
    n = hdr.n_pixels
    if n > max_pixels:
        raise ImageReadError(p, f"image is {_describe(hdr)} ({_count(n)}), over the pixel budget of "
                                f"{_count(max_pixels)} (max_pixels = {max_pixels}; raise max_pixels "
                                f"if the machine has the memory)")
    limit = max_pixels * MAX_BYTES_PER_SAMPLE
    if hdr.nbytes > limit:
        raise ImageReadError(p, f"image is {_describe(hdr)} of {8 * hdr.itemsize}-bit samples "
                                f"({_bytes(hdr.nbytes)}), over the memory budget of {_bytes(limit)} "
                                f"(max_pixels x {MAX_BYTES_PER_SAMPLE} bytes; raise max_pixels to allow it)")


def _admit(hdr: ImageHeader, p, max_pixels: int) -> None:
    """Everything :func:`read_image` refuses from the header alone."""
    _check_budget(hdr, p, max_pixels)
    if hdr.dtype is not None and np.dtype(hdr.dtype).kind == "c":
        raise ImageReadError(p, f"complex-valued image ({hdr.dtype}) is not supported: exoimage measures "
                                f"real intensities; save the magnitude or the real part as its own image")


@dataclass
class Image:
    """A 2-D image with its calibration.

    Attributes
    ----------
    data : ndarray
        2-D pixel array in the file's dtype (RGB with equal channels is read
        as grey; real colour is converted to luminance and a warning recorded).
    pixel_size_nm : float or None
        Size of one (square) pixel in nanometres.
    pixel_size_source : str
        ``'given'``, ``'imagej'``, ``'ome'``, ``'fei'``, ``'zeiss'``,
        ``'olympus_sis'``, ``'tiff_resolution'``, ``'gatan'``, ``'mrc'``,
        ``'scale_bar'`` or ``'none'``.
    path : str or None
        File the image was read from.
    file_format : str
        ``'tiff'``, ``'png'``, ``'jpeg'``, ``'bmp'``, ``'dm3'``, ``'dm4'``,
        ``'mrc'`` or ``'array'``.
    white_is_zero : bool
        TIFF ``PhotometricInterpretation = WhiteIsZero``: raw values are the
        signal (e.g. chemiluminescence counts) but viewers display them
        inverted. ``data`` always holds the raw values.
    was_rgb : bool
        The file stored three or four channels.
    metadata : dict
        Calibration-related metadata found in the file.
    warnings : list of str
        Things a user should know (colour converted, lossy format, ...); each a
        :class:`~exoimage.warning_codes.CodedWarning` (text with a registered code).
    annotation_mask : ndarray of bool or None
        Pixels that are not specimen (a burned-in scale bar, its label, a
        databar strip), found by ``read_image(..., scale_bar='auto')``; None
        when no search was made.
    """

    data: np.ndarray
    pixel_size_nm: float | None = None
    pixel_size_source: str = "none"
    path: str | None = None
    file_format: str = "array"
    white_is_zero: bool = False
    was_rgb: bool = False
    metadata: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    annotation_mask: np.ndarray | None = field(default=None, repr=False)

    @property
    def shape(self):
        return self.data.shape

    @property
    def bit_depth(self) -> int:
        """Bits per sample of the stored data (8, 16, 32 or 64)."""
        return int(self.data.dtype.itemsize * 8)

    def displayed(self, dtype=np.float64) -> np.ndarray:
        """Pixel values as a viewer shows them (WhiteIsZero inverted), as ``dtype``."""
        img = self.data.astype(dtype)
        if self.white_is_zero:
            top = float(np.iinfo(self.data.dtype).max) if self.data.dtype.kind in "ui" else img.max()
            img = top - img
        return img

    @classmethod
    def from_array(cls, data, pixel_size_nm=None, *, path=None) -> "Image":
        """Wrap an array that did not come from a file."""
        data = np.asarray(data)
        src = "given" if pixel_size_nm is not None else "none"
        return cls(data=data, pixel_size_nm=_check_pixel_size(pixel_size_nm, path),
                   pixel_size_source=src, path=path)


# --------------------------------------------------------------------------
# Units

_UNIT_NM = {
    "nm": 1.0, "nanometer": 1.0, "nanometre": 1.0, "nanometers": 1.0, "nanometres": 1.0,
    "um": 1e3, "µm": 1e3, "μm": 1e3, "micron": 1e3, "microns": 1e3, "micrometer": 1e3,
    "micrometre": 1e3, "micrometers": 1e3, "\\u00b5m": 1e3,
    "a": 0.1, "å": 0.1, "Å".lower(): 0.1, "angstrom": 0.1, "ang": 0.1, "\\u00c5": 0.1,
    "mm": 1e6, "millimeter": 1e6, "cm": 1e7, "centimeter": 1e7,
    "m": 1e9, "meter": 1e9, "metre": 1e9, "pm": 1e-3, "picometer": 1e-3,
}


def unit_to_nm(unit: str) -> float | None:
    """Nanometres per one ``unit`` (``'µm'`` -> 1000), or None if not a length unit."""
    if unit is None:
        return None
    u = str(unit).strip().lower().replace("\u212b", "å")
    return _UNIT_NM.get(u)


def _check_pixel_size(value, path) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ImageReadError(path, f"pixel size {value!r} is not a number")
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ImageReadError(path, f"pixel size {value!r} is not a number") from None
    if not np.isfinite(v) or v <= 0:
        raise ImageReadError(path, f"pixel size must be a positive number of nm, got {value!r}")
    lo, hi = PIXEL_SIZE_RANGE_NM
    if not lo <= v <= hi:
        raise ImageReadError(path, f"pixel size {v:g} nm/px is outside the plausible range {lo:g} to {hi:g} "
                                   f"nm/px (the value is in nanometres per pixel: check the unit)")
    return v


def _file_pixel_size(value, source: str, img: "Image") -> float | None:
    """A pixel size from a file header, or None (with a warning) when it is not plausible."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if not np.isfinite(v) or v <= 0:
        return None
    if not PIXEL_SIZE_RANGE_NM[0] <= v <= PIXEL_SIZE_RANGE_NM[1]:
        img.warnings.append(f"{source} pixel size {v:g} nm is implausible; ignored")
        return None
    return v


# --------------------------------------------------------------------------
# Public entry points


@dataclass(frozen=True)
class Reader:
    """One file format :func:`read_image` reads (an entry of the reader registry).

    Attributes
    ----------
    name : str
        Unique name of the entry (``'tiff'``).
    suffixes : tuple of str
        Lower-case file suffixes it takes, with the dot (``'.tif'``).
    read : callable
        ``read(path, max_pixels) -> Image``: decode the file and fill its
        calibration (``pixel_size_nm``, ``pixel_size_source``, ``metadata``,
        ``warnings``). Raise :class:`ImageReadError` for a problem; any other
        exception becomes "cannot read as <suffix> (...)".
    probe : callable
        ``probe(path, max_pixels) -> ImageHeader`` from the header alone, no
        pixel decoded. :func:`read_image` checks it against the pixel budget
        (and refuses complex data) before calling ``read``;
        :func:`probe_image` returns it.
    magic : tuple of bytes
        Leading bytes of the files it takes (any of them); empty for any
        content. Used only to choose among several readers of one suffix (the
        first whose magic matches; when none does, the first, whose own error
        message then says what is wrong).
    sources : tuple of str
        The ``pixel_size_source`` values it may report. :func:`read_image`
        itself adds ``'given'``, ``'scale_bar'`` and ``'none'``
        (:data:`READ_PATH_SOURCES`).
    """

    name: str
    suffixes: tuple
    read: Callable
    probe: Callable
    magic: tuple = ()
    sources: tuple = ()

    def __post_init__(self):
        sfx = tuple(str(x).lower() for x in self.suffixes)
        if not sfx or not all(x.startswith(".") and len(x) > 1 for x in sfx):
            raise ValueError(f"reader {self.name!r}: suffixes must be like '.tif', got {self.suffixes!r}")
        object.__setattr__(self, "suffixes", sfx)
        object.__setattr__(self, "magic", tuple(bytes(m) for m in self.magic))
        object.__setattr__(self, "sources", tuple(str(x) for x in self.sources))


#: pixel-size sources :func:`read_image` sets itself, whatever the reader
READ_PATH_SOURCES = ("given", "scale_bar", "none")

_READERS: list = []


def register_reader(reader: Reader, *, replace: bool = False) -> Reader:
    """Add ``reader`` to the registry (after the others: for a suffix already taken it is
    chosen only by its ``magic``); ``replace=True`` replaces the entry of the same name in
    its place. Returns ``reader``."""
    if not isinstance(reader, Reader):
        raise TypeError(f"register_reader takes a Reader, got {type(reader).__name__}")
    for i, r in enumerate(_READERS):
        if r.name == reader.name:
            if not replace:
                raise ValueError(f"a reader named {reader.name!r} is already registered (replace=True replaces it)")
            _READERS[i] = reader
            return reader
    _READERS.append(reader)
    return reader


def unregister_reader(name: str) -> Reader:
    """Remove the reader named ``name`` from the registry and return it."""
    for i, r in enumerate(_READERS):
        if r.name == name:
            return _READERS.pop(i)
    raise KeyError(f"no reader named {name!r}")


def readers() -> tuple:
    """The registered readers, in the order they are tried."""
    return tuple(_READERS)


def supported_suffixes() -> tuple:
    """Every suffix some registered reader takes, in registry order (no repeats)."""
    out = []
    for r in _READERS:
        out.extend(x for x in r.suffixes if x not in out)
    return tuple(out)


def _unsupported(p: Path, suffix: str) -> ImageReadError:
    return ImageReadError(p, f"unsupported file type '{suffix or '(none)'}'; "
                             f"supported: {', '.join(supported_suffixes())}")


def _choose_reader(p: Path, suffix: str) -> Reader:
    found = [r for r in _READERS if suffix in r.suffixes]
    if not found:
        raise _unsupported(p, suffix)
    if len(found) == 1:
        return found[0]
    longest = max((len(m) for r in found for m in r.magic), default=0)
    head = b""
    if longest:
        try:
            with open(p, "rb") as fh:
                head = fh.read(longest)
        except OSError as exc:
            raise ImageReadError(p, f"cannot open ({exc.strerror or type(exc).__name__})") from None
    for r in found:
        if not r.magic or any(head.startswith(m) for m in r.magic):
            return r
    return found[0]


def reader_for(path) -> Reader:
    """The :class:`Reader` :func:`read_image` would use for ``path`` (by suffix, then magic bytes).

    Raises
    ------
    ImageReadError
        No reader takes the file's suffix.
    """
    p = Path(path)
    return _choose_reader(p, p.suffix.lower())


def regular_file_stat(path, *, error=None, kind: str = "an image file") -> os.stat_result:
    """``os.stat`` of an input that must be a regular file; anything else is one ``error`` line.

    Missing, unreadable, a folder, a FIFO, socket or device (never opened: reading a FIFO
    would block) each raise ``error(path, problem)`` (default :class:`ImageReadError`);
    ``kind`` says what the file should have been. Shared by the image and NTA readers.
    """
    error = error or ImageReadError
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(path, "file not found") from None
    except OSError as exc:
        raise error(path, f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(path, f"is a folder, not {kind}")
    if not stat.S_ISREG(st.st_mode):
        raise error(path, f"not a regular file (a FIFO, socket or device), not {kind}")
    return st


def _check_file(path) -> tuple[Path, str, Reader]:
    p = Path(path)
    st = regular_file_stat(p)
    if st.st_size == 0:
        raise ImageReadError(p, "file is empty (0 bytes)")
    suffix = p.suffix.lower()
    return p, suffix, _choose_reader(p, suffix)


def _reader_failure(p: Path, suffix: str, exc: Exception) -> ImageReadError:
    text = str(exc).strip()
    msg = text.splitlines()[0] if text else type(exc).__name__
    if isinstance(exc, MemoryError):
        msg = "out of memory"
    return ImageReadError(p, f"cannot read as {suffix[1:]} ({msg})")


def probe_image(path, *, max_pixels: int | None = None) -> ImageHeader:
    """Read what a file declares about its image (size, samples, dtype) from its header only.

    No pixel is decoded: this is cheap for any file, and safe for one that
    declares a huge image in a few bytes.

    Parameters
    ----------
    path : str or Path
        Any file :func:`read_image` reads.
    max_pixels : int, optional
        Pixel budget (default ``DEFAULT_MAX_PIXELS``); see :func:`read_image`.

    Returns
    -------
    ImageHeader

    Raises
    ------
    ImageReadError
        The file is missing or unreadable, its header is malformed, or it
        declares an image over the pixel or byte budget.
    """
    budget = _resolve_max_pixels(max_pixels)
    p, suffix, reader = _check_file(path)
    try:
        hdr = reader.probe(p, budget)
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - every reader failure becomes one clear line
        raise _reader_failure(p, suffix, exc) from exc
    _check_budget(hdr, p, budget)
    return hdr


def _scale_bar_mode(scale_bar) -> str:
    if scale_bar is True:
        return "auto"
    if scale_bar is False or scale_bar is None:
        return "off"
    if isinstance(scale_bar, str) and scale_bar in SCALE_BAR_MODES:
        return scale_bar
    raise ValueError(f"scale_bar must be one of {', '.join(SCALE_BAR_MODES)} (or True/False), got {scale_bar!r}")


def read_image(path, pixel_size_nm: float | None = None, *, max_pixels: int | None = None,
               scale_bar: str | bool = "off") -> Image:
    """Read one 2-D image file with its calibration.

    Parameters
    ----------
    path : str or Path
        TIFF (incl. ImageJ/OME/FEI/Zeiss/Olympus, LZW/Deflate), PNG, JPEG, BMP,
        Gatan DM3/DM4 (needs ``ncempy``) or MRC (needs ``mrcfile``), or any
        format of a registered :class:`Reader`.
    pixel_size_nm : float, optional
        Explicit pixel size in nm; overrides anything in the file. Must lie in
        ``PIXEL_SIZE_RANGE_NM``.
    max_pixels : int, optional
        Pixel budget: files declaring more than ``max_pixels`` samples
        (height x width x samples) or more than ``max_pixels * MAX_BYTES_PER_SAMPLE``
        decoded bytes are refused from their header, before decoding.
        Default ``DEFAULT_MAX_PIXELS`` (16384^2).
    scale_bar : {'off', 'auto'} or bool
        ``'auto'``: search the pixels for a burned-in scale bar
        (:mod:`exoimage.scalebar`) once, and use it three ways. With no pixel
        size from the file or the caller, its label is read (OCR) and calibrates
        the image (``pixel_size_source='scale_bar'``); with the file's own
        calibration (and OCR installed) it is read and cross-checked (a warning
        when they disagree by more than 2 %); given a pixel size, its label is
        not read. The reading goes into ``metadata`` (``scale_bar_text``,
        ``scale_bar_length_px``, ``scale_bar_confidence``, ``scale_bar_box``,
        ``scale_bar_check``) and the bar, its label and any databar strip into
        ``annotation_mask``. A failure (OCR not installed for an uncalibrated
        image, ...) is a warning, never an error. ``'off'`` (default): no search
        (blots, and callers that only want the file's own calibration).

    Returns
    -------
    Image

    Raises
    ------
    ImageReadError
        Missing, empty, truncated, unsupported, over-budget, complex-valued or
        multi-frame files, with a one-line message naming the file.
    ValueError
        ``max_pixels`` is not a positive whole number, or ``scale_bar`` is not a mode.
    """
    budget = _resolve_max_pixels(max_pixels)
    mode = _scale_bar_mode(scale_bar)
    p, suffix, reader = _check_file(path)
    given = _check_pixel_size(pixel_size_nm, p)
    try:
        _admit(reader.probe(p, budget), p, budget)
        img = reader.read(p, budget)
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - every reader failure becomes one clear line
        raise _reader_failure(p, suffix, exc) from exc
    img.path = str(p)
    if img.data.ndim != 2:
        raise ImageReadError(p, f"expected a 2-D image, got shape {img.data.shape}")
    if img.data.dtype.kind == "c":  # a reader whose header did not tell
        raise ImageReadError(p, f"complex-valued image ({img.data.dtype}) is not supported: exoimage "
                                f"measures real intensities; save the magnitude or the real part as its own image")
    if given is not None:
        if img.pixel_size_nm is not None:
            img.metadata["file_pixel_size_nm"] = img.pixel_size_nm
            img.metadata["file_pixel_size_source"] = img.pixel_size_source
        img.pixel_size_nm = given
        img.pixel_size_source = "given"
    if mode == "auto":
        _scale_bar_step(img)
    return img


def _scale_bar_step(img: Image) -> None:
    """The scale-bar step of ``read_image(..., scale_bar='auto')``, in place.

    One search for the burned-in scale bar serves calibration (when the image
    has no pixel size), the cross-check against the file's own calibration (a
    warning when they disagree) and the mask that keeps the bar, its label and
    any databar strip out of a detection (``img.annotation_mask``).
    """
    try:
        from .scalebar import annotation_mask, calibrate_from_scale_bar, find_scale_bar, ocr_available
    except ImportError:
        return
    try:
        # one search: the label is read (OCR) when it calibrates or cross-checks the image
        read_label = img.pixel_size_nm is None or (img.pixel_size_source != "given" and ocr_available())
        bar = find_scale_bar(img.data, ocr=read_label)
        if bar is not None and read_label:
            img = calibrate_from_scale_bar(img, bar)
        elif img.pixel_size_nm is None:
            img = calibrate_from_scale_bar(img, bar)  # no bar: says so
        img.annotation_mask = annotation_mask(img.data, bar)
    except Exception as exc:  # noqa: BLE001 - OCR missing etc.: say so, stay as calibrated
        img.warnings.append(coded("scale_bar_not_read", f"scale bar not read ({exc})"))


def validate_image(img: Image, *, min_size_px: int = 8) -> None:
    """Raise :class:`ImageReadError` if ``img`` cannot be analysed.

    Rejects images smaller than ``min_size_px`` on a side, images containing
    NaN or infinity, and constant images.
    """
    d = img.data
    if d.size == 0:
        raise ImageReadError(img.path, "image has no pixels")
    if min(d.shape) < min_size_px:
        raise ImageReadError(img.path, f"image is too small ({d.shape[1]}x{d.shape[0]} px; "
                                       f"need at least {min_size_px}x{min_size_px})")
    if d.dtype.kind == "f":
        if not np.isfinite(d).all():
            bad = int((~np.isfinite(d)).sum())
            raise ImageReadError(img.path, f"image contains {bad} NaN/infinite pixels")
    lo, hi = d.min(), d.max()
    if lo == hi:
        raise ImageReadError(img.path, f"image is constant (every pixel = {lo})")


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes.

    Raises ``OSError`` for anything but a regular file (a FIFO would block
    forever, a device never end), checked before and after opening it.
    """
    import os
    import stat

    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(f"{path}: not a regular file (FIFO, socket, device or folder); not read")
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with open(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # replaced since the check
            raise OSError(f"{path}: not a regular file (FIFO, socket, device or folder); not read")
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def write_calibrated_tiff(path, data: np.ndarray, pixel_size_nm: float | None) -> None:
    """Write ``data`` as an ImageJ TIFF whose calibration Fiji and napari read (unit nm)."""
    import tifffile

    kwargs = {}
    if pixel_size_nm:
        kwargs["resolution"] = (1.0 / pixel_size_nm, 1.0 / pixel_size_nm)
        kwargs["metadata"] = {"unit": "nm"}
    data = np.asarray(data)
    if data.dtype.kind in "iub" and data.dtype not in (np.uint8, np.uint16):
        # ImageJ TIFF holds uint8, uint16 or float32 only
        if data.min(initial=0) < 0 or data.max(initial=0) > 65535:
            raise ValueError(f"{path}: values outside 0..65535 cannot be stored as an ImageJ label TIFF")
        data = data.astype(np.uint16)
    elif data.dtype.kind == "f" and data.dtype != np.float32:
        data = data.astype(np.float32)
    import io as _io

    from .outputs import atomic_write_bytes

    buf = _io.BytesIO()
    tifffile.imwrite(buf, data, imagej=True, compression="zlib", **kwargs)
    # temporary file + rename (never a half-written file), mode following the umask
    atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------
# TIFF


#: tifffile's special-format series readers we never need: each would parse its own
#: metadata (OME-XML, Leica/Philips/Ventana XML, Micro-Manager/NDTiff JSON, LSM
#: and ScanImage headers) into page lists sized from declared numbers, or open the
#: other files an OME-XML names. With them off, a file is one page plus, at most,
#: thumbnails and reduced levels, or it is a stack (refused). ImageJ, tifffile's
#: own "shaped" and Olympus SIS series stay on (bounded by the pages and file size).
_TIFF_FLAGS_OFF = {f"is_{k}": False for k in (
    "ome", "lsm", "mmstack", "ndtiff", "fluoview", "stk", "svs", "scn", "qpi", "ndpi", "bif", "avs",
    "eer", "philips", "scanimage", "nih", "mdgel")}

#: TIFF compressions decoded by an image codec that sizes its output from its own
#: embedded header, not from the TIFF's (imagecodecs' JPEG 2000, WebP, JPEG XL,
#: PNG, JPEG XR, old-style JPEG...): refused. JPEG (7) is allowed and its embedded
#: SOF is checked against the tile/strip size; EER and Jetraw decode into a buffer
#: of the TIFF's size. Every other codec (LZW, Deflate, Zstd, LZMA, PackBits)
#: writes into a buffer of the declared strip/tile size.
_TIFF_JPEG = 7
_TIFF_SHAPE_BOUNDED_CODECS = {7, 65000, 65001, 65002, 48124}


def _tiff_page_count(p: Path) -> int | None:
    """Number of top-level IFDs, walked with loop detection and a cap; None if not a TIFF header."""
    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(16)
        bo = {b"II": "<", b"MM": ">"}.get(head[:2])
        if bo is None or len(head) < 8:
            return None
        version = struct.unpack(bo + "H", head[2:4])[0]
        if version == 42:
            off = struct.unpack(bo + "I", head[4:8])[0]
            cnt_fmt, entry, nxt_fmt = "H", 12, "I"
        elif version == 43 and len(head) >= 16:
            off = struct.unpack(bo + "Q", head[8:16])[0]
            cnt_fmt, entry, nxt_fmt = "Q", 20, "Q"
        else:
            return None
        cnt_size, nxt_size = struct.calcsize(cnt_fmt), struct.calcsize(nxt_fmt)
        seen: set[int] = set()
        while off:
            if off in seen:
                raise ImageReadError(p, f"corrupt TIFF: the chain of image directories loops "
                                        f"(page {len(seen) + 1} points back to an earlier one)")
            if off + cnt_size > size:
                break  # tifffile reports a broken chain itself
            seen.add(off)
            if len(seen) > MAX_TIFF_PAGES:
                raise ImageReadError(p, f"multi-frame TIFF (more than {MAX_TIFF_PAGES} pages); "
                                        f"split it into single images first")
            fh.seek(off)
            n_tags = struct.unpack(bo + cnt_fmt, fh.read(cnt_size))[0]
            if n_tags > 4096:  # tifffile's own limit: a corrupt page
                break
            fh.seek(off + cnt_size + n_tags * entry)
            raw = fh.read(nxt_size)
            if len(raw) < nxt_size:
                break
            off = struct.unpack(bo + nxt_fmt, raw)[0]
            if off >= size:
                break
    return len(seen)


def _open_tiff(p: Path):
    import tifffile

    _tiff_page_count(p)
    return tifffile.TiffFile(str(p), **_TIFF_FLAGS_OFF)


_XML_DECL = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def _check_xml_text(text, p: Path, what: str) -> None:
    """Refuse XML carrying a DOCTYPE/ENTITY declaration (entity expansion, external entities)."""
    if text is None:
        return
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else bytes(text)
    if _XML_DECL.search(raw):
        raise ImageReadError(p, f"{what} contains a DOCTYPE/ENTITY declaration; refused "
                                f"(XML entities can expand to gigabytes; OME-XML never needs them)")


def _tiff_header(tf, p: Path, max_pixels: int):
    """ImageHeader of a TIFF's first page (the one read), with every check that needs no decoding.

    Returns ``(header, (page, series shape))``. Refuses: no pages, XML with
    DOCTYPE/ENTITY, a first page over the budget, a 3-D page, too many SubIFDs,
    tiles padding the image over the budget, image-codec compressions, JPEG
    tiles/strips whose own header is larger than the tile/strip. Only then is
    ``tf.series`` computed (from at most ``MAX_TIFF_PAGES`` pages).
    """
    if not tf.pages:
        raise ImageReadError(p, "TIFF has no pages")
    sis_page = _sis_grey_page(tf)
    page = sis_page if sis_page is not None else tf.pages.first
    for code in (270, 700):  # ImageDescription (OME-XML and others), XMP
        for tag in page.tags.getall(code, ()):
            if isinstance(tag.value, (str, bytes)):
                _check_xml_text(tag.value, p, "TIFF metadata (XML)")
    h, w = int(page.imagelength), int(page.imagewidth)
    samples = int(getattr(page, "samplesperpixel", 1) or 1)
    dtype = page.dtype
    itemsize = dtype.itemsize if dtype is not None else max(1, math.ceil(int(page.bitspersample) / 8))
    hdr0 = ImageHeader(h, w, samples, itemsize, 1, dtype.name if dtype is not None else None, "tiff")
    _check_budget(hdr0, p, max_pixels)
    depth = int(getattr(page, "imagedepth", 1) or 1)
    if depth > 1:
        raise ImageReadError(p, f"TIFF page is a 3-D volume ({depth} slices of {w}x{h} px); "
                                f"only single 2-D images are supported")
    for pg in tf.pages:
        if pg is not None and len(getattr(pg, "subifds", None) or ()) > MAX_TIFF_SUBIFDS:
            raise ImageReadError(p, f"TIFF page lists more than {MAX_TIFF_SUBIFDS} sub-images (SubIFDs); "
                                    f"corrupt or not a single image")
    _check_tiff_segments(page, p, hdr0, max_pixels)
    if sis_page is not None:
        return hdr0, (page, tuple(int(v) for v in page.shape))
    series = tf.series
    if not series:
        raise ImageReadError(p, "TIFF has no image data")
    shape = tuple(int(v) for v in series[0].shape)
    n_frames = max(1, math.prod(shape) // max(1, w * h * samples))
    # extra series that are not thumbnails / reduced levels are more images
    n_frames += sum(1 for s in series[1:] if not (s.kind in ("reduced", "thumbnail") or s.shape == ()))
    hdr = ImageHeader(h, w, samples, itemsize, n_frames, hdr0.dtype, "tiff")
    return hdr, (page, shape)


#: Olympus SIS calibration tags (tifffile reads both as the SIS block)
_SIS_TAGS = (33560, 33471)


def _sis_grey_page(tf):
    """The calibrated grey page of an Olympus SIS "preview + image" TIFF, or None.

    Olympus SIS (e.g. Quemesa cameras) may store an 8-bit RGB preview first and
    the calibrated grey image after it. The rule: exactly one page carries the
    SIS tag and is a single-sample 2-D image, and every other page is an RGB(A)
    preview of the same width and height; that page is the image. Any other
    multi-page layout is left to the multi-frame check.
    """
    pages = list(tf.pages)
    if len(pages) < 2 or any(pg is None for pg in pages):
        return None
    sis = [pg for pg in pages if any(pg.tags.get(c) is not None for c in _SIS_TAGS)]
    if len(sis) != 1:
        return None
    grey = sis[0]
    if int(getattr(grey, "samplesperpixel", 1) or 1) != 1 or int(getattr(grey, "imagedepth", 1) or 1) != 1:
        return None
    for pg in pages:
        if pg is grey:
            continue
        if (int(getattr(pg, "samplesperpixel", 1) or 1) not in (3, 4)
                or (int(pg.imagelength), int(pg.imagewidth)) != (int(grey.imagelength), int(grey.imagewidth))):
            return None
    return grey


def _check_tiff_segments(page, p: Path, hdr: ImageHeader, max_pixels: int) -> None:
    """Tiles and compressed segments of the first page decode to no more than the budget."""
    if page.is_tiled:
        tw, tl = int(page.tilewidth), int(page.tilelength)
        if tw < 1 or tl < 1:
            raise ImageReadError(p, f"TIFF declares tiles of {tw}x{tl} px")
        padded = math.ceil(hdr.width / tw) * tw * math.ceil(hdr.height / tl) * tl * hdr.samples
        if padded > max_pixels:
            raise ImageReadError(p, f"TIFF tiles of {tw}x{tl} px cover {_count(padded)} "
                                    f"({hdr.width}x{hdr.height} px image), over the pixel budget of "
                                    f"{_count(max_pixels)} (max_pixels = {max_pixels})")
        seg_h, seg_w = tl, tw
    else:
        seg_h, seg_w = max(1, int(page.rowsperstrip or hdr.height)), hdr.width
    comp = int(page.compression)
    import tifffile

    if comp in tifffile.TIFF.IMAGE_COMPRESSIONS and comp not in _TIFF_SHAPE_BOUNDED_CODECS:
        try:
            name = tifffile.COMPRESSION(comp).name
        except ValueError:
            name = str(comp)
        raise ImageReadError(p, f"TIFF compression {name} ({comp}) is not supported (its decoder sizes the "
                                f"image from its own header); save the image uncompressed, LZW or Deflate")
    if comp == _TIFF_JPEG:
        with open(p, "rb") as fh:
            for off, n in zip(page.dataoffsets, page.databytecounts):
                if not n:
                    continue
                sof = _jpeg_sof(fh, int(off), int(off) + int(n))
                if sof is None:
                    raise ImageReadError(p, "JPEG-compressed TIFF segment has no readable JPEG header")
                jh, jw = sof[0], sof[1]
                if jh > seg_h or jw > seg_w:
                    raise ImageReadError(p, f"JPEG data inside the TIFF declares {jw}x{jh} px, more than its "
                                            f"{seg_w}x{seg_h} px tile/strip; corrupt or hostile file")


def _read_tiff(p: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image:
    with _open_tiff(p) as tf:
        hdr, (page, shape) = _tiff_header(tf, p, max_pixels)
        _admit(hdr, p, max_pixels)
        if hdr.n_frames > 1:
            raise ImageReadError(
                p, f"multi-frame TIFF (series shape {shape}); split it into single images first")
        data = page.asarray()
        white_is_zero = int(page.photometric) == 0
        img = Image(data=data, file_format="tiff", white_is_zero=white_is_zero)
        if page is not tf.pages.first:
            img.metadata["tiff_page"] = int(page.index)  # the calibrated page (_sis_grey_page)
        _calibrate_tiff(tf, page, img)
    return _to_grey(img, p)


def _tiff_parsers():
    from . import tiff_dialects as td

    return (("tvips", td.tiff_tvips), ("fei", _tiff_fei), ("zeiss", _tiff_zeiss), ("olympus_sis", _tiff_sis),
            ("jeol_sightx", td.tiff_jeol_sightx), ("gatan", td.tiff_gatan),
            ("ome", _tiff_ome), ("imagej", _tiff_imagej), ("tiff_resolution", _tiff_resolution))


def _calibrate_tiff(tf, page, img: Image) -> None:
    """Fill pixel size from the first TIFF metadata flavour that has one.

    A vendor value outside ``PIXEL_SIZE_RANGE_NM`` is a unit mistake: ignored with
    a warning showing it. One inside it but outside ``PLAUSIBLE_EM_PIXEL_NM`` (a
    low-magnification SEM field is several um/px) is used, with a warning showing it.
    """
    for name, fn in _tiff_parsers():
        try:
            value = fn(tf, page)
        except Exception as exc:  # noqa: BLE001
            img.warnings.append(coded("calibration_unparsed", f"could not parse {name} calibration ({exc})"))
            value = None
        if value is not None:
            if not np.isfinite(value) or value <= 0 or not (
                    PIXEL_SIZE_RANGE_NM[0] <= value <= PIXEL_SIZE_RANGE_NM[1]):
                img.warnings.append(coded("calibration_implausible",
                                           f"{name} pixel size {value:g} nm is implausible; ignored"))
                continue
            if not (PLAUSIBLE_EM_PIXEL_NM[0] <= value <= PLAUSIBLE_EM_PIXEL_NM[1]):
                img.warnings.append(coded("calibration_unusual", (
                    f"{name} pixel size {value:g} nm/px is outside {PLAUSIBLE_EM_PIXEL_NM[0]:g}-"
                    f"{PLAUSIBLE_EM_PIXEL_NM[1]:g} nm/px, unusual for TEM (a low-magnification SEM field?); "
                    f"used as the file says")))
            img.pixel_size_nm = float(value)
            img.pixel_size_source = name
            img.metadata[f"{name}_pixel_size_nm"] = float(value)
            _check_tiff_square(name, tf, page, img)
            return


#: x and y pixel sizes closer than this (relative) are square (vendors store float32)
SQUARE_PIXEL_RTOL = 1e-3


def _tiff_pixel_y(name, tf, page):
    """The y pixel size (nm) the chosen TIFF calibration states, where it states one; else None."""
    from . import tiff_dialects as td

    if name == "tvips":
        v = (tf.tvips_metadata or {}).get("PixelSizeY")
        return float(v) if v else None
    if name == "gatan":
        sy, uy = td._tag(page, td.GATAN_SCALE_Y), td._tag(page, td.GATAN_UNIT_Y)
        f = unit_to_nm(uy.decode("utf-8", "replace") if isinstance(uy, bytes) else uy) if uy is not None else None
        return float(sy) * f if sy is not None and f else None
    if name == "olympus_sis":
        for code in _SIS_TAGS:
            tag = page.tags.get(code)
            if tag is not None and isinstance(tag.value, dict) and tag.value.get("pixelsizey"):
                return float(tag.value["pixelsizey"]) * 1e9
        return None
    if name == "fei":
        for section in ("Scan", "EScan", "Image"):
            sec = (tf.fei_metadata or {}).get(section) or {}
            if "PixelHeight" in sec:
                return float(sec["PixelHeight"]) * 1e9
        return None
    return None


def _check_tiff_square(name, tf, page, img: Image) -> None:
    """Non-square pixels: the x size is kept, with a warning showing both (as the DM reader does)."""
    try:
        y = _tiff_pixel_y(name, tf, page)
    except Exception:  # noqa: BLE001 - the x value was parsed; a broken y entry is no calibration
        y = None
    x = img.pixel_size_nm
    if y is not None and np.isfinite(y) and abs(y - x) > SQUARE_PIXEL_RTOL * x:
        img.warnings.append(coded("non_square_pixels", f"non-square pixels ({x:g} x {y:g} nm); using x"))


def _tiff_fei(tf, page):
    md = tf.fei_metadata
    if not md:
        return None
    for section in ("Scan", "EScan", "Image"):
        sec = md.get(section) or {}
        for key in ("PixelWidth", "pixelwidth"):
            if key in sec:
                return float(sec[key]) * 1e9  # metres -> nm
    return None


#: Zeiss SmartSEM stores its pixel size for the 1024-px "store resolution"; an
#: image stored at another width scales it by 1024 / width (rosettasciio
#: ``_axes_zeiss``: ``CZ_SEM[''][3] * 1024 / width``; confirmed on a real 512-px
#: file by its burned-in 200 nm bar)
ZEISS_STORE_WIDTH_PX = 1024


def _tiff_zeiss(tf, page):
    md = tf.sem_metadata
    if not md:
        return None
    nm = _tiff_zeiss_1k(md)
    if nm is None:
        return None
    return nm * ZEISS_STORE_WIDTH_PX / int(page.imagewidth)


def _tiff_zeiss_1k(md):
    """Zeiss's pixel size (nm) at the 1024-px store resolution: the precise SI value, else the text tag."""
    prim = md.get("")
    if isinstance(prim, (tuple, list)) and len(prim) > 3:
        try:
            v = float(prim[3])
        except (TypeError, ValueError):
            v = 0.0
        if np.isfinite(v) and v > 0:
            return v * 1e9  # metres -> nm
    for key in ("ap_image_pixel_size", "ap_pixel_size"):
        if key in md:
            val = md[key]
            # tifffile gives ('Image Pixel Size', value, unit), or
            # ('Image Pixel Size', '2.4nm') when no space separates the unit
            if isinstance(val, (tuple, list)) and len(val) >= 3:
                number, unit = float(val[1]), str(val[2])
            else:
                text = val[-1] if isinstance(val, (tuple, list)) and val else val
                m = re.match(r"\s*([0-9.eE+-]+)\s*([A-Za-zµμ]+)", str(text))
                if not m:
                    continue
                number, unit = float(m.group(1)), m.group(2)
            scale = unit_to_nm(unit)
            if scale:
                return number * scale
    return None


def _tiff_sis(tf, page):
    md = None
    for code in _SIS_TAGS:  # the page read (the calibrated page of a preview + image file)
        tag = page.tags.get(code)
        if tag is not None and isinstance(tag.value, dict):
            md = tag.value
    md = md or tf.sis_metadata
    if not md:
        return None
    for key in ("pixelsizex", "PixelSizeX"):
        if key in md and md[key]:
            return float(md[key]) * 1e9  # metres -> nm
    return None


def _ome_xml(page) -> str | None:
    """The OME-XML in the first ImageDescription, if it is one (tifffile's own test)."""
    desc = page.description
    if not desc or not desc[-10:].strip().endswith("OME>"):
        return None
    return desc


def _tiff_ome(tf, page):
    xml = _ome_xml(page)
    if not xml:
        return None
    _check_xml_text(xml, tf.filehandle.path, "OME-XML")  # already refused in _tiff_header
    root = ET.fromstring(xml)
    for el in root.iter():
        if el.tag.endswith("Pixels") and "PhysicalSizeX" in el.attrib:
            unit = el.attrib.get("PhysicalSizeXUnit", "µm")
            scale = unit_to_nm(unit)
            if scale is None:
                raise ValueError(f"unknown OME unit {unit!r}")
            return float(el.attrib["PhysicalSizeX"]) * scale
    return None


def _tiff_imagej(tf, page):
    md = tf.imagej_metadata
    if not md or "unit" not in md:
        return None
    unit = str(md["unit"])
    scale = unit_to_nm(unit)
    if scale is None:
        # ImageJ writes 'pixel' or 'inch' for uncalibrated images
        return None
    xres = _xres(page)
    if not xres:
        return None
    return scale / xres


def _xres(page):
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    num, den = tag.value
    if not den or not num:
        return None
    return num / den


def _tiff_resolution(tf, page):
    tag = page.tags.get("ResolutionUnit")
    unit = int(tag.value) if tag is not None else 2
    if unit != 3:  # only centimetres: inch values are screen/print dpi
        return None
    xres = _xres(page)
    if not xres:
        return None
    nm = 1e7 / xres
    if PLAUSIBLE_EM_PIXEL_NM[0] <= nm <= PLAUSIBLE_EM_PIXEL_NM[1]:
        return nm
    return None


# --------------------------------------------------------------------------
# PNG / JPEG / BMP


_PNG_SIG = b"\x89PNG\r\n\x1a\n"
#: PNG colour type -> samples OpenCV decodes it to (IMREAD_UNCHANGED): grey, -, RGB,
#: palette (expanded to RGB), grey + alpha (to BGRA), RGBA. A tRNS chunk adds
#: alpha to RGB and palette images (not to grey).
_PNG_SAMPLES = {0: 1, 2: 3, 3: 3, 4: 4, 6: 4}
#: JPEG start-of-frame markers (baseline, extended, progressive, lossless; Huffman and arithmetic)
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_sof(fh, start: int, end: int):
    """(height, width, components, precision) from the first SOF of the JPEG stream at ``start``, or None.

    Walks the marker segments by their lengths (never into the entropy-coded data).
    """
    fh.seek(start)
    if fh.read(2) != b"\xff\xd8":
        return None
    while fh.tell() + 4 <= end:
        if fh.read(1) != b"\xff":
            return None  # not at a marker: corrupt
        m = fh.read(1)
        while m == b"\xff":  # fill bytes
            m = fh.read(1)
        if not m:
            return None
        mk = m[0]
        if mk == 0x01 or 0xD0 <= mk <= 0xD8:  # markers without a length
            continue
        if mk in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        seg = fh.read(2)
        if len(seg) < 2:
            return None
        length = struct.unpack(">H", seg)[0]
        if length < 2:
            return None
        if mk in _JPEG_SOF:
            body = fh.read(6)
            if len(body) < 6:
                return None
            precision, height, width, comps = struct.unpack(">BHHB", body)
            return height, width, comps, precision
        fh.seek(fh.tell() - 2 + length)
    return None


def _raster_header(p: Path) -> ImageHeader:
    """Size, samples and bit depth of a PNG, JPEG or BMP from its header (by content, not suffix)."""
    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(128)
        if head.startswith(_PNG_SIG):
            if len(head) < 33 or head[12:16] != b"IHDR":
                raise ImageReadError(p, "not a readable image (corrupt PNG: no IHDR header)")
            w, h, depth, ctype = struct.unpack(">IIBB", head[16:26])
            if ctype not in _PNG_SAMPLES or depth not in (1, 2, 4, 8, 16):
                raise ImageReadError(p, f"not a readable image (corrupt PNG: colour type {ctype}, bit depth {depth})")
            samples = _PNG_SAMPLES[ctype]
            if ctype in (2, 3) and _png_has_trns(fh, size):
                samples = 4
            item = 2 if depth == 16 else 1
            return ImageHeader(h, w, samples, item, 1, "uint16" if item == 2 else "uint8", "png")
        if head.startswith(b"\xff\xd8"):
            sof = _jpeg_sof(fh, 0, size)
            if sof is None:
                raise ImageReadError(p, "not a readable image (corrupt JPEG: no frame header before the image data)")
            h, w, comps, precision = sof
            if h == 0:
                raise ImageReadError(p, "JPEG without a height in its frame header (DNL) is not supported")
            item = 2 if precision > 8 else 1
            return ImageHeader(h, w, 1 if comps == 1 else 3, item, 1, "uint16" if item == 2 else "uint8",
                               "jpeg")
        if head.startswith(b"BM"):
            if len(head) < 34:
                raise ImageReadError(p, "not a readable image (truncated BMP header)")
            dib = struct.unpack("<I", head[14:18])[0]
            if dib == 12:
                w, h, _, bits = struct.unpack("<HHHH", head[18:26])
                comp, alpha = 0, False
            elif dib >= 40:
                w, h, _, bits, comp = struct.unpack("<iiHHI", head[18:34])
                h = abs(h)  # negative height = rows stored top-down
                alpha = False
                if dib >= 56 and comp in (3, 6) and bits == 32:
                    alpha = struct.unpack("<I", head[66:70] if len(head) >= 70 else b"\0\0\0\0")[0] != 0
            else:
                raise ImageReadError(p, f"not a readable image (corrupt BMP: header size {dib})")
            if w <= 0 or h <= 0:
                raise ImageReadError(p, f"not a readable image (corrupt BMP: size {w}x{h})")
            if bits <= 8:
                samples = 1 if _bmp_grey_palette(fh, 14 + dib, bits, dib == 12) else 3
            else:
                samples = 4 if alpha else 3
            return ImageHeader(h, w, samples, 1, 1, "uint8", "bmp")
    raise ImageReadError(p, "not a readable image (the content is not PNG, JPEG or BMP)")


def _png_has_trns(fh, size: int) -> bool:
    """A tRNS chunk before the image data (walks chunk headers only)."""
    pos = 8
    for _ in range(10000):
        if pos + 8 > size:
            return False
        fh.seek(pos)
        n, kind = struct.unpack(">I4s", fh.read(8))
        if kind == b"tRNS":
            return True
        if kind in (b"IDAT", b"IEND"):
            return False
        pos += 12 + n
    return False


def _bmp_grey_palette(fh, offset: int, bits: int, core: bool) -> bool:
    n = 1 << bits
    entry = 3 if core else 4
    fh.seek(offset)
    pal = fh.read(n * entry)
    if len(pal) < entry:
        return False
    arr = np.frombuffer(pal[: len(pal) // entry * entry], np.uint8).reshape(-1, entry)[:, :3]
    return bool((arr == arr[:, :1]).all())


def _read_raster(p: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image:
    import cv2

    hdr = _raster_header(p)
    _admit(hdr, p, max_pixels)
    buf = np.fromfile(str(p), dtype=np.uint8)
    data = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    del buf
    if data is None:
        raise ImageReadError(p, "not a readable image (corrupt or truncated?)")
    if data.shape[:2] != (hdr.height, hdr.width):
        raise ImageReadError(p, f"decoded size {data.shape[1]}x{data.shape[0]} px differs from the header's "
                                f"{hdr.width}x{hdr.height} px")
    if data.ndim == 3:
        # OpenCV gives BGR(A); turn into RGB(A)
        data = data[..., [2, 1, 0] + ([3] if data.shape[2] == 4 else [])]
    fmt = hdr.file_format
    img = Image(data=data, file_format=fmt)
    if fmt == "jpeg":
        img.warnings.append(coded("jpeg", "JPEG is lossy: pixel values are not the raw signal"))
    return _to_grey(img, p)


#: rows converted to grey at a time (bounds the float temporaries to ~1M px)
_GREY_CHUNK_PX = 1 << 20


def _to_grey(img: Image, p: Path) -> Image:
    d = img.data
    if d.ndim == 3 and d.shape[-1] in (3, 4):
        img.was_rgb = True
        rgb = d[..., :3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            img.data = np.ascontiguousarray(rgb[..., 0])
        else:
            # row blocks: the same numbers as on the whole array, float temporaries of ~1M px
            step = max(1, _GREY_CHUNK_PX // max(1, d.shape[1]))
            out, spread = None, 0.0
            for r0 in range(0, d.shape[0], step):
                c = rgb[r0:r0 + step]
                spread = max(spread, float(np.abs(c.astype(np.int32) - c.mean(axis=-1, keepdims=True)).max()))
                lum = c[..., 0] * 0.2125 + c[..., 1] * 0.7154 + c[..., 2] * 0.0721
                lum = np.round(lum).astype(d.dtype) if d.dtype.kind in "ui" else lum
                if out is None:
                    out = np.empty(d.shape[:2], lum.dtype)
                out[r0:r0 + step] = lum
            img.data = out
            if spread > 8:
                img.warnings.append(coded("rgb_converted", "colour image converted to grey (luminance)"))
            else:
                img.warnings.append(coded("rgb_converted",
                                           "near-grey RGB image converted to grey (channels differ slightly)"))
    return img


# --------------------------------------------------------------------------
# Gatan / MRC


def _open_gatan(p: Path):
    try:
        from ncempy.io import dm
    except ImportError:
        raise ImageReadError(p, "reading Gatan DM files needs ncempy: pip install 'exoimage[gatan]'") from None
    return dm.fileDM(str(p))


def _gatan_header(f, p: Path):
    """(ImageHeader, dataset index) of the one image in an open ncempy ``fileDM``, from its tags only."""
    # ncempy numbers datasets without the leading RGBA thumbnail that
    # DigitalMicrograph writes first, but it assumes one whenever the file
    # holds more than one dataset: count real images ourselves and never
    # silently take the first of several.
    n_images = int(f.numObjects) - (1 if f.thumbnail else 0)
    if n_images > 1:
        raise ImageReadError(p, f"Gatan file holds {n_images} images; choosing one needs rosettasciio "
                                f"(pip install 'exoimage[em]'), or split it first")
    ii = 0 if f.numObjects == 1 else 1  # the index ncempy's getDataset(0) reads
    try:
        x, y = int(f.xSize[ii]), int(f.ySize[ii])
        z, z2 = int(f.zSize[ii]), int(f.zSize2[ii])
        code = int(f.dataType[ii])
    except (IndexError, TypeError, ValueError):
        raise ImageReadError(p, "Gatan file has no image (no dimensions / data type tags)") from None
    dt = getattr(f, "_DM2NPDataTypes", {}).get(code)  # ncempy's own DM -> numpy table
    dtype = np.dtype(dt) if dt is not None else None
    return ImageHeader(y, x, 1, dtype.itemsize if dtype is not None else 4, max(1, z) * max(1, z2),
                       dtype.name if dtype is not None else None, p.suffix.lower()[1:]), ii


def _read_gatan(p: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image:
    if _gatan_via_rsciio(p):
        from . import em_readers

        return em_readers.read_rsciio(p, "gatan_rsciio", max_pixels)
    with _open_gatan(p) as f:
        hdr, _ = _gatan_header(f, p)
        _admit(hdr, p, max_pixels)
        ds = f.getDataset(0)
        data = np.asarray(ds["data"])
        sizes = list(ds.get("pixelSize", []))
        units = list(ds.get("pixelUnit", []))
    img = Image(data=data, file_format=p.suffix.lower()[1:])
    if data.ndim != 2:
        raise ImageReadError(p, f"Gatan file holds a {data.ndim}-D dataset {data.shape}; "
                                f"only single 2-D images are supported")
    if sizes and units:
        sx, ux = float(sizes[-1]), units[-1]
        sy, uy = float(sizes[-2]) if len(sizes) > 1 else sx, units[-2] if len(units) > 1 else ux
        fx, fy = unit_to_nm(ux), unit_to_nm(uy)
        if fx:
            nm_x = _file_pixel_size(sx * fx, "gatan", img)
            if nm_x is not None:
                img.pixel_size_nm = nm_x
                img.pixel_size_source = "gatan"
                img.metadata["gatan_pixel_size_nm"] = nm_x
                if fy and abs(sy * fy - nm_x) > 1e-3 * nm_x:
                    img.warnings.append(coded("non_square_pixels",
                                              f"non-square pixels ({nm_x:g} x {sy * fy:g} nm); using x"))
    return img


#: MRC headers are 1024 bytes (MRC2014)
_MRC_HEADER_BYTES = 1024


def _mrc_header(p: Path):
    """(ImageHeader, data shape) of an MRC file from its 1024-byte header, checked against the file size."""
    try:
        from mrcfile import utils as mrc_utils
        from mrcfile.dtypes import HEADER_DTYPE
    except ImportError:
        raise ImageReadError(p, "reading MRC files needs mrcfile: pip install 'exoimage[mrc]'") from None
    size = p.stat().st_size
    with open(p, "rb") as fh:
        raw = fh.read(_MRC_HEADER_BYTES)
    if raw[:2] == b"\x1f\x8b" or raw[:3] == b"BZh":
        raise ImageReadError(p, "compressed MRC (gzip/bzip2) is not supported: decompress it first")
    if len(raw) < _MRC_HEADER_BYTES:
        raise ImageReadError(p, f"too short for an MRC file ({len(raw)} bytes; the header alone is 1024)")
    header = np.frombuffer(raw, dtype=HEADER_DTYPE).reshape(()).copy().view(np.recarray)
    if bytes(header.map)[:3] != b"MAP":
        raise ImageReadError(p, "not an MRC file (no 'MAP' identifier in the header)")
    header.dtype = header.dtype.newbyteorder(mrc_utils.byte_order_from_machine_stamp(header.machst))
    nx, ny, nz = int(header.nx), int(header.ny), int(header.nz)
    if min(nx, ny, nz) < 1:
        raise ImageReadError(p, f"MRC header declares an invalid size ({nx} x {ny} x {nz})")
    dtype = mrc_utils.data_dtype_from_header(header)
    shape = tuple(int(v) for v in mrc_utils.data_shape_from_header(header))
    n_frames = math.prod(shape) // (nx * ny)
    hdr = ImageHeader(ny, nx, 1, dtype.itemsize, n_frames, dtype.name, "mrc")
    need = _MRC_HEADER_BYTES + max(0, int(header.nsymbt)) + math.prod(shape) * dtype.itemsize
    return hdr, (shape, need, size)


def _read_mrc(p: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image:
    hdr, (shape, need, size) = _mrc_header(p)
    _admit(hdr, p, max_pixels)
    if hdr.n_frames > 1:
        raise ImageReadError(p, f"MRC file holds a stack {shape}; split it into single images first")
    if need > size:
        raise ImageReadError(p, f"truncated MRC file: the header declares {need} bytes, the file has {size}")
    import mrcfile

    with mrcfile.open(str(p), permissive=False) as m:
        data = np.asarray(m.data).copy()
        vx = float(m.voxel_size.x)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise ImageReadError(p, f"MRC file holds a stack {data.shape}; split it into single images first")
    img = Image(data=data, file_format="mrc")
    nm = _file_pixel_size(vx / 10.0, "mrc", img) if vx > 0 else None  # Angstrom -> nm
    if nm is not None:
        img.pixel_size_nm = nm
        img.pixel_size_source = "mrc"
        img.metadata["mrc_pixel_size_nm"] = img.pixel_size_nm
    return img


# --------------------------------------------------------------------------
# The built-in readers


def _probe_tiff(p: Path, max_pixels: int) -> ImageHeader:
    with _open_tiff(p) as tf:
        hdr, _ = _tiff_header(tf, p, max_pixels)
    return hdr


def _probe_raster(p: Path, max_pixels: int) -> ImageHeader:
    return _raster_header(p)


def _gatan_via_rsciio(p: Path) -> bool:
    """Read this DM file through rosettasciio: ncempy is missing, or the file holds several images."""
    from . import em_readers

    if not em_readers.rsciio_available():
        return False
    try:
        from ncempy.io import dm
    except ImportError:
        return True
    # on_memory=False: plain file reads, no mmap (closing ncempy's mmap fails with
    # "cannot close exported pointers exist" while arrays parsed from it are alive)
    with dm.fileDM(str(p), on_memory=False) as f:
        return int(f.numObjects) - (1 if f.thumbnail else 0) > 1


def _probe_gatan(p: Path, max_pixels: int) -> ImageHeader:
    if _gatan_via_rsciio(p):
        from . import em_readers

        return em_readers.probe_rsciio(p, "gatan_rsciio", max_pixels)
    with _open_gatan(p) as f:
        hdr, _ = _gatan_header(f, p)
    return hdr


def _probe_mrc(p: Path, max_pixels: int) -> ImageHeader:
    return _mrc_header(p)[0]


#: classic and BigTIFF, little- and big-endian
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
#: DigitalMicrograph files start with their version as a big-endian int32 (3 or 4)
_GATAN_MAGIC = (b"\x00\x00\x00\x03", b"\x00\x00\x00\x04")
#: the TIFF calibrations :func:`_calibrate_tiff` tries, in its order
_TIFF_SOURCES = ("tvips", "fei", "zeiss", "olympus_sis", "jeol_sightx", "gatan", "ome", "imagej",
                 "tiff_resolution")

register_reader(Reader("tiff", TIFF_SUFFIXES, _read_tiff, _probe_tiff, _TIFF_MAGIC, _TIFF_SOURCES))
register_reader(Reader("raster", RASTER_SUFFIXES, _read_raster, _probe_raster, (_PNG_SIG, b"\xff\xd8", b"BM")))
register_reader(Reader("gatan", GATAN_SUFFIXES, _read_gatan, _probe_gatan, _GATAN_MAGIC, ("gatan",)))
#: (MRC's identifier "MAP " lies at byte 208, not at the start: no magic)
register_reader(Reader("mrc", MRC_SUFFIXES, _read_mrc, _probe_mrc, (), ("mrc",)))

# the electron-microscopy vendor formats read through rosettasciio (optional extra, imported
# only when such a file is read): TIA .emi/.ser, Velox .emd, JEOL .img/.map, Phenom .elid
from . import em_readers as _em_readers  # noqa: E402

_em_readers._register()
