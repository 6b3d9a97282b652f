"""Read microscope and blot images together with their spatial calibration.

One entry point, :func:`read_image`, turns any supported file into an
:class:`Image`: the 2-D pixel array in its original dtype, the pixel size in
nanometres (or ``None``), where that pixel size came from, and the metadata.

Calibration precedence
----------------------
1. an explicit ``pixel_size_nm`` passed by the caller (``source='given'``);
2. the file's own metadata (ImageJ, OME, FEI/Thermo, Zeiss SEM, Olympus SIS,
   TIFF resolution tags in cm, Gatan DM, MRC);
3. a burned-in scale bar, when the caller asks for it (see
   :mod:`exoimage.scalebar`);
4. none: ``pixel_size_nm is None`` and ``pixel_size_source == 'none'``.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .warning_codes import coded

__all__ = [
    "Image",
    "ImageReadError",
    "SUPPORTED_SUFFIXES",
    "read_image",
    "validate_image",
    "write_calibrated_tiff",
    "sha256_file",
    "unit_to_nm",
]

TIFF_SUFFIXES = (".tif", ".tiff")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
GATAN_SUFFIXES = (".dm3", ".dm4")
MRC_SUFFIXES = (".mrc",)
SUPPORTED_SUFFIXES = TIFF_SUFFIXES + RASTER_SUFFIXES + GATAN_SUFFIXES + MRC_SUFFIXES

#: Pixel sizes (nm/px) we accept as a plausible electron-microscope calibration
#: when it comes from generic TIFF resolution tags.
PLAUSIBLE_EM_PIXEL_NM = (0.001, 1000.0)

#: Pixel sizes (nm/px) accepted when a user gives one (command line, experiment.toml):
#: 1e-4 nm (below any atomic-resolution EM pixel) to 1e7 nm = 1 cm (a whole-slide scan);
#: anything outside is a typo or a unit mix-up (issue 10).
PLAUSIBLE_GIVEN_PIXEL_NM = (1e-4, 1e7)


class ImageReadError(ValueError):
    """A file could not be read or analysed; ``str(err)`` is one line naming the file."""

    def __init__(self, path, problem: str):
        self.path = str(path) if path is not None else "<array>"
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


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
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ImageReadError(path, f"pixel size {value!r} is not a number") from None
    if not np.isfinite(v) or v <= 0:
        raise ImageReadError(path, f"pixel size must be a positive number of nm, got {value!r}")
    return v


# --------------------------------------------------------------------------
# Public entry points


def read_image(path, pixel_size_nm: float | None = None) -> Image:
    """Read one 2-D image file with its calibration.

    Parameters
    ----------
    path : str or Path
        TIFF (incl. ImageJ/OME/FEI/Zeiss/Olympus, LZW/Deflate), PNG, JPEG, BMP,
        Gatan DM3/DM4 (needs ``ncempy``) or MRC (needs ``mrcfile``).
    pixel_size_nm : float, optional
        Explicit pixel size in nm; overrides anything in the file.

    Returns
    -------
    Image

    Raises
    ------
    ImageReadError
        Missing, empty, truncated, unsupported or multi-frame files, with a
        one-line message naming the file.
    """
    p = Path(path)
    if not p.exists():
        raise ImageReadError(p, "file not found")
    if p.is_dir():
        raise ImageReadError(p, "is a folder, not an image file")
    if p.stat().st_size == 0:
        raise ImageReadError(p, "file is empty (0 bytes)")
    suffix = p.suffix.lower()
    given = _check_pixel_size(pixel_size_nm, p)
    try:
        if suffix in TIFF_SUFFIXES:
            img = _read_tiff(p)
        elif suffix in RASTER_SUFFIXES:
            img = _read_raster(p)
        elif suffix in GATAN_SUFFIXES:
            img = _read_gatan(p)
        elif suffix in MRC_SUFFIXES:
            img = _read_mrc(p)
        else:
            raise ImageReadError(p, f"unsupported file type '{suffix or '(none)'}'; "
                                    f"supported: {', '.join(SUPPORTED_SUFFIXES)}")
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - every reader failure becomes one clear line
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageReadError(p, f"cannot read as {suffix[1:]} ({msg})") from exc
    img.path = str(p)
    if img.data.ndim != 2:
        raise ImageReadError(p, f"expected a 2-D image, got shape {img.data.shape}")
    if given is not None:
        if img.pixel_size_nm is not None:
            img.metadata["file_pixel_size_nm"] = img.pixel_size_nm
            img.metadata["file_pixel_size_source"] = img.pixel_size_source
        img.pixel_size_nm = given
        img.pixel_size_source = "given"
    return img


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


def _read_tiff(p: Path) -> Image:
    import tifffile

    with tifffile.TiffFile(str(p)) as tf:
        if not tf.pages:
            raise ImageReadError(p, "TIFF has no pages")
        series = tf.series[0]
        page = tf.pages[0]
        shape = tuple(series.shape)
        samples = getattr(page, "samplesperpixel", 1)
        n_frames = int(np.prod(shape)) // max(1, page.imagewidth * page.imagelength * samples)
        if n_frames > 1 or len(tf.series) > 1 and not _is_reduced_series(tf):
            raise ImageReadError(
                p, f"multi-frame TIFF (series shape {shape}); split it into single images first")
        data = page.asarray()
        white_is_zero = int(page.photometric) == 0
        img = Image(data=data, file_format="tiff", white_is_zero=white_is_zero)
        _calibrate_tiff(tf, page, img)
    return _to_grey(img, p)


def _is_reduced_series(tf) -> bool:
    # thumbnails / pyramid levels stored as extra series are fine
    return all(s.kind in ("reduced", "thumbnail") or s.shape == () for s in tf.series[1:])


def _calibrate_tiff(tf, page, img: Image) -> None:
    """Fill pixel size from the first TIFF metadata flavour that has one."""
    for name, fn in (("fei", _tiff_fei), ("zeiss", _tiff_zeiss), ("olympus_sis", _tiff_sis),
                     ("ome", _tiff_ome), ("imagej", _tiff_imagej),
                     ("tiff_resolution", _tiff_resolution)):
        try:
            value = fn(tf, page)
        except Exception as exc:  # noqa: BLE001
            img.warnings.append(coded("calibration_unparsed", f"could not parse {name} calibration ({exc})"))
            value = None
        if value is not None:
            if not (PLAUSIBLE_EM_PIXEL_NM[0] <= value <= PLAUSIBLE_EM_PIXEL_NM[1]) and name != "tiff_resolution":
                img.warnings.append(coded("calibration_implausible",
                                           f"{name} pixel size {value:g} nm is implausible; ignored"))
                continue
            img.pixel_size_nm = float(value)
            img.pixel_size_source = name
            img.metadata[f"{name}_pixel_size_nm"] = float(value)
            return


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


def _tiff_zeiss(tf, page):
    md = tf.sem_metadata
    if not md:
        return None
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
    md = tf.sis_metadata
    if not md:
        return None
    for key in ("pixelsizex", "PixelSizeX"):
        if key in md and md[key]:
            return float(md[key]) * 1e9  # metres -> nm
    return None


def _tiff_ome(tf, page):
    xml = tf.ome_metadata
    if not xml:
        return None
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


def _read_raster(p: Path) -> Image:
    import cv2

    buf = np.fromfile(str(p), dtype=np.uint8)
    data = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if data is None:
        raise ImageReadError(p, "not a readable image (corrupt or truncated?)")
    if data.ndim == 3:
        # OpenCV gives BGR(A); turn into RGB(A)
        data = data[..., [2, 1, 0] + ([3] if data.shape[2] == 4 else [])]
    fmt = {".jpg": "jpeg", ".jpeg": "jpeg"}.get(p.suffix.lower(), p.suffix.lower()[1:])
    img = Image(data=data, file_format=fmt)
    if fmt == "jpeg":
        img.warnings.append(coded("jpeg", "JPEG is lossy: pixel values are not the raw signal"))
    return _to_grey(img, p)


def _to_grey(img: Image, p: Path) -> Image:
    d = img.data
    if d.ndim == 3 and d.shape[-1] in (3, 4):
        img.was_rgb = True
        rgb = d[..., :3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            img.data = np.ascontiguousarray(rgb[..., 0])
        else:
            spread = np.abs(rgb.astype(np.int32) - rgb.mean(axis=-1, keepdims=True)).max()
            lum = rgb[..., 0] * 0.2125 + rgb[..., 1] * 0.7154 + rgb[..., 2] * 0.0721
            img.data = np.round(lum).astype(d.dtype) if d.dtype.kind in "ui" else lum
            if spread > 8:
                img.warnings.append(coded("rgb_converted", "colour image converted to grey (luminance)"))
            else:
                img.warnings.append(coded("rgb_converted",
                                           "near-grey RGB image converted to grey (channels differ slightly)"))
    return img


# --------------------------------------------------------------------------
# Gatan / MRC


def _read_gatan(p: Path) -> Image:
    try:
        from ncempy.io import dm
    except ImportError:
        raise ImageReadError(p, "reading Gatan DM files needs ncempy: pip install 'exoimage[gatan]'") from None
    with dm.fileDM(str(p)) as f:
        # ncempy numbers datasets without the leading RGBA thumbnail that
        # DigitalMicrograph writes first, but it assumes one whenever the file
        # holds more than one dataset: count real images ourselves and never
        # silently take the first of several.
        n_images = int(f.numObjects) - (1 if f.thumbnail else 0)
        if n_images > 1:
            raise ImageReadError(p, f"Gatan file holds {n_images} images; "
                                    f"only single-image files are supported (split it first)")
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
            nm_x = sx * fx
            img.pixel_size_nm = nm_x
            img.pixel_size_source = "gatan"
            img.metadata["gatan_pixel_size_nm"] = nm_x
            if fy and abs(sy * fy - nm_x) > 1e-3 * nm_x:
                img.warnings.append(coded("non_square_pixels",
                                           f"non-square pixels ({nm_x:g} x {sy * fy:g} nm); using x"))
    return img


def _read_mrc(p: Path) -> Image:
    try:
        import mrcfile
    except ImportError:
        raise ImageReadError(p, "reading MRC files needs mrcfile: pip install 'exoimage[mrc]'") from None
    with mrcfile.open(str(p), permissive=False) as m:
        data = np.asarray(m.data).copy()
        vx = float(m.voxel_size.x)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise ImageReadError(p, f"MRC file holds a stack {data.shape}; split it into single images first")
    img = Image(data=data, file_format="mrc")
    if vx > 0:
        img.pixel_size_nm = vx / 10.0  # Angstrom -> nm
        img.pixel_size_source = "mrc"
        img.metadata["mrc_pixel_size_nm"] = img.pixel_size_nm
    return img
