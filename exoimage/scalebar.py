"""Calibration from scale bars burned into the pixels.

Many micrographs reach the analyst as JPEG/PNG/TIFF exports whose only
calibration is a bar drawn into the image with a label such as ``500 nm``,
``0.2 µm`` or ``1 um``, either directly over the image or inside a black or
white databar strip along the bottom (or top) edge.

* :func:`find_scale_bar` finds the bar geometrically and measures its length
  to the pixel, then reads its label with OCR: PP-OCR's recogniser (rapidocr,
  ONNX models shipped in its wheel; a default dependency) on a cut-out of the
  label line only, or Tesseract (``engine="tesseract"``, optional).
* :func:`annotation_mask` marks the bar, its label and any databar strip so
  that image analyses can ignore them.
* :func:`calibrate_from_scale_bar` fills an :class:`~exoimage.io.Image`'s pixel
  size from the bar when nothing better is known.

How the bar is found
--------------------
The image is normalised to 0..1 by its own minimum and maximum. For each
polarity, the pixels within 0.12 of the extreme (black bars near 0, white bars
near 1) are kept, a horizontal opening removes everything with runs shorter
than ~1.5 % of the image width (text strokes, noise), and each remaining
connected component is examined row by row: the *bar rows* are those whose
longest run is at least 85 % of the component's longest run; their median left
and right ends give the bar. A candidate must be thin (length >= 5 x
thickness), rectangular (ends agree between rows), uniform, in contrast with
the rows just above and below it, not touching the left/right image border
and shorter than 97 % of the width. End caps/ticks do not change the result:
they are removed by the opening, and the length is measured along the bar
rows, i.e. **from the outer edge of one end to the outer edge of the other**.
The length is refined to sub-pixel precision from the partial coverage of the
end pixels (anti-aliased or JPEG-softened ends).

Boxes are ``(row0, col0, row1, col1)`` with exclusive ``row1``/``col1``, like
Python slices; a solid bar covering columns 192..992 has ``length_px = 801``.

Only horizontal bars are detected; bars must be close to the darkest or the
brightest value of the grey image or, in a colour export, of its chroma
(max - min channel: yellow, green, red, cyan overlays). A label touching the
bar, noise breaking the bar's runs and end caps lost to noise are handled
(rows joined, ends followed outwards, caps looked for at both ends).

How the label is read
---------------------
Text components of the bar's colour near the bar are grouped into lines; the
candidate lines above, below, right and left of the bar are tried nearest
first, lines above/below that are neither centred on the bar nor flush with an
end after the aligned ones, and a line beside the bar only when it is wholly
beyond its end and vertically centred on it (other databar text is not the
label). PP-OCR reads the line with everything else blanked; when that reading
is not sure (score < 0.9, or a check below fails) it also reads the raw
cut-out and a wider one; readings that disagree are capped at 0.4 (a reading that
is another's without its decimal point does not disagree when a point is seen drawn
between the digits). At most :data:`MAX_OCR_LINES` label lines are read per image,
over all its planes (grey, chroma, colour channels) and the vertical retry.
Accepted units: nm, µm (written ``µm``, ``μm`` or ``um``), Å (``A`` is read
as Å), mm. Decimal points and commas are both decimal separators.

``confidence`` is the bar's geometry score times the OCR's confidence, capped
by checks against the geometry (each failed check: <= 0.4, below
:data:`LOW_CONFIDENCE`): the label value is a 1-2-5 number (1.5/2.5/3/4:
<= 0.85; anything else <= 0.4); a label above/below is centred or flush; the
characters read are not fewer than the glyphs drawn; a drawn decimal point is
read (a dot-sized mark in a gap between two glyphs, clear of both - a dot within a glyph, as
in a dotted zero, is none - or a point too small to be a component: ink low in a gap between
digits at least 0.35 text heights wide); the label does not touch the bar (glyph rows merged into the bar are lost: 'n'
reads as 'u'); no cut-out reads another number; in a databar printing ``HFW``, the reading agrees
with HFW / image width (2 % plus the HFW's printed precision; a printed magnification is not used,
it needs the detector's pixel pitch); mm readings (<= 0.45); a coloured bar shorter than 400 px
(JPEG chroma). Failed checks are listed in ``ScaleBar.checks``.

OCR confusions of µ: Tesseract's English model has no reliable µ, it reads it
as ``u``, ``p``, ``y`` or ``j``; all of ``um``, ``pm``, ``ym``, ``jm`` are
therefore taken as **micrometres**. Picometre scale bars do not occur on
TEM/SEM micrographs (a 1 pm bar is 1/100 of an atom), so ``pm`` is never read
as picometres.

Without an OCR engine this module still imports, ``find_scale_bar(...,
ocr=False)`` and :func:`annotation_mask` work, and ``find_scale_bar(...,
ocr=True)`` raises :class:`OCRUnavailableError`. The engine is ``engine=``,
else the ``EXOIMAGE_OCR_ENGINE`` environment variable, else ``rapidocr``.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field

import numpy as np

from .warning_codes import coded

try:  # optional extra (``--ocr tesseract``)
    import pytesseract as _pytesseract
except ImportError:  # pragma: no cover - exercised via monkeypatch in tests
    _pytesseract = None

__all__ = [
    "ScaleBar",
    "OCRUnavailableError",
    "find_scale_bar",
    "annotation_mask",
    "calibrate_from_scale_bar",
    "parse_label",
    "ocr_available",
    "require_ocr",
    "preview_rgb",
    "LOW_CONFIDENCE",
    "DISAGREEMENT_TOLERANCE",
]

#: below this confidence a scale-bar calibration gets a warning
LOW_CONFIDENCE = 0.5
#: relative difference between bar and metadata pixel size that gets a warning
DISAGREEMENT_TOLERANCE = 0.02

#: OCR engines that can read a label; the first is the default (a default dependency)
OCR_ENGINES = ("rapidocr", "tesseract")
DEFAULT_OCR_ENGINE = OCR_ENGINES[0]
OCR_INSTALL_HINT = ("reading scale-bar labels needs OCR: pip install rapidocr onnxruntime "
                    "(default dependencies of exoimage)")
TESSERACT_INSTALL_HINT = ("the tesseract engine needs pip install 'exoimage[ocr]' "
                          "and apt-get install tesseract-ocr")

_WHITELIST = "0123456789.,nmuµμpAÅ"
#: nm/px a scale-bar reading may give (TEM/SEM/AFM micrographs); outside -> misread
PLAUSIBLE_PIXEL_NM = (0.001, 10000.0)
_UNIT_NM = {"nm": 1.0, "µm": 1e3, "mm": 1e6, "Å": 0.1}


class OCRUnavailableError(RuntimeError):
    """pytesseract or the tesseract program is missing."""


@dataclass
class ScaleBar:
    """A scale bar found in an image.

    Boxes are ``(row0, col0, row1, col1)``, end-exclusive.
    ``label_text`` is the reading in normal form (``'0.2 µm'``) and
    ``ocr_text`` what Tesseract returned (``'0,2um'``).
    ``value``/``unit``/``nm_per_px`` are None when the label was not read
    (``ocr=False``, or OCR failed; then ``label_text`` holds what OCR saw).
    ``unit`` is one of ``'nm'``, ``'µm'``, ``'Å'``, ``'mm'``.
    """

    length_px: float
    bar_box: tuple
    label_text: str | None = None
    label_box: tuple | None = None
    value: float | None = None
    unit: str | None = None
    nm_per_px: float | None = None
    confidence: float = 0.0
    strip_box: tuple | None = None
    polarity: str = "dark"
    thickness_px: int = 0
    geometry_score: float = 0.0
    ocr_confidence: float | None = None
    ocr_text: str | None = None
    extra_boxes: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    ocr_engine: str | None = None
    orientation: str = "horizontal"

    @property
    def length_nm(self) -> float | None:
        if self.value is None or self.unit is None:
            return None
        return self.value * _UNIT_NM[self.unit]


# --------------------------------------------------------------------------
# OCR availability


#: environment variable naming the OCR engine used when none is given (``exoimage tem --ocr`` sets it,
#: so that the batch's worker processes read labels the same way)
OCR_ENGINE_ENV = "EXOIMAGE_OCR_ENGINE"


def _engine_name(engine) -> str:
    import os

    name = (os.environ.get(OCR_ENGINE_ENV) or DEFAULT_OCR_ENGINE) if engine is None else engine
    if name not in OCR_ENGINES:
        raise ValueError(f"OCR engine must be one of {', '.join(OCR_ENGINES)}, got {engine!r}")
    return name


def ocr_available(engine: str | None = None) -> bool:
    """True when the OCR ``engine`` (default :data:`DEFAULT_OCR_ENGINE`) can be used."""
    name = _engine_name(engine)
    if name == "rapidocr":
        return _module_present("rapidocr") and _module_present("onnxruntime")
    if _pytesseract is None:
        return False
    cmd = getattr(getattr(_pytesseract, "pytesseract", None), "tesseract_cmd", "tesseract")
    return shutil.which(cmd) is not None


def _module_present(name: str) -> bool:
    import importlib.util
    import sys

    if name in sys.modules:
        return sys.modules[name] is not None  # None: import blocked
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require_ocr(engine: str | None = None):
    """Raise :class:`OCRUnavailableError` when the OCR ``engine`` cannot be used."""
    name = _engine_name(engine)
    if name == "rapidocr":
        if not ocr_available(name):
            raise OCRUnavailableError(f"rapidocr/onnxruntime is not installed; {OCR_INSTALL_HINT}")
        return
    if _pytesseract is None:
        raise OCRUnavailableError(f"pytesseract is not installed; {TESSERACT_INSTALL_HINT}")
    if not ocr_available(name):
        raise OCRUnavailableError(f"the tesseract program is not installed; {TESSERACT_INSTALL_HINT}")


_RAPID_REC = None


def _rapid_recogniser():
    """PP-OCR's text-line recogniser (rapidocr, ONNX model shipped in its wheel), loaded once per process.

    Only the recognition model is used: the lines to read are found here
    geometrically, so detection (and its cost) is skipped. One thread: the
    batch runs one image per core.
    """
    global _RAPID_REC
    if _RAPID_REC is None:
        import logging

        from rapidocr import RapidOCR

        eng = RapidOCR(params={"Global.log_level": "error",
                               "EngineConfig.onnxruntime.intra_op_num_threads": 1,
                               "EngineConfig.onnxruntime.inter_op_num_threads": 1})
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        _RAPID_REC = eng._load_rec_model()
    return _RAPID_REC


#: PP-OCR readings of cut-outs already read, keyed by their pixels: the same line found again (the
#: looser text share, another plane of a colour export) is not read twice. Bounded; oldest dropped.
_READ_CACHE: dict = {}
READ_CACHE_SIZE = 256


def _rapid_read(images) -> list:
    """Read text lines (uint8 grey, dark text on white) with PP-OCR: [(text, score 0..1)]."""
    import hashlib

    from rapidocr.ch_ppocr_rec import TextRecInput

    keys = [(im.shape, hashlib.blake2b(np.ascontiguousarray(im).tobytes(), digest_size=16).digest())
            for im in images]
    todo = [i for i, k in enumerate(keys) if k not in _READ_CACHE]
    if todo:
        rec = _rapid_recogniser()
        imgs = [np.ascontiguousarray(np.repeat(images[i][..., None], 3, axis=2)) for i in todo]
        out = rec(TextRecInput(img=imgs))
        for i, t, sc in zip(todo, out.txts, out.scores):
            _READ_CACHE[keys[i]] = (str(t), float(sc))
    res = [_READ_CACHE[k] for k in keys]
    while len(_READ_CACHE) > READ_CACHE_SIZE:
        _READ_CACHE.pop(next(iter(_READ_CACHE)))
    return res


# --------------------------------------------------------------------------
# Label parsing

_DIGIT_LOOKALIKES = str.maketrans({"O": "0", "o": "0", "S": "5", "s": "5", "l": "1", "I": "1", "B": "8"})
_MICRO_ALIASES = ("pum", "uum", "yum", "µm", "μm", "um", "pm", "ym", "jm", "µ", "μ")
_LABEL_RE = re.compile(r"(\d*[.,]?\d+)(nm|µm|mm|Å)$")


def parse_label(text: str):
    """Parse an OCR'd label into ``(value, unit)`` or ``None``.

    >>> parse_label("0,2 um")
    (0.2, 'µm')
    >>> parse_label("500nm")
    (500.0, 'nm')
    """
    if not text:
        return None
    # drop stray punctuation standing alone, then all white space
    t = "".join(w for w in str(text).split() if w.strip(".,'`-_:;"))
    t = t.replace("\u212b", "Å").replace("\u00c5", "Å")
    t = t.rstrip(".,").lstrip(",")
    # µ confusions (see module docstring): everything micro-like -> µm
    for alias in _MICRO_ALIASES:
        if t.endswith(alias):
            t = t[: -len(alias)] + "µm"
            break
    else:
        if t.endswith("A"):
            t = t[:-1] + "Å"
        elif t.endswith("nnm") or t.endswith("rnn"):  # doubled stroke of 'm'
            t = t[:-3] + "nm"
    u = re.search(r"(nm|µm|mm|Å)$", t)
    if u:  # letters OCR confuses with digits, in the number part only
        t = t[:u.start()].translate(_DIGIT_LOOKALIKES) + u.group(1)
    m = _LABEL_RE.search(t)
    if not m:
        return None
    num = m.group(1).replace(",", ".")
    # the number must be the whole of what precedes the unit (no stray digits)
    if m.start() != 0:
        prefix = t[: m.start()]
        if any(ch.isdigit() for ch in prefix):
            return None
    if re.fullmatch(r"0\d+", num):  # '02 µm': a lost decimal point ('0.2 µm')
        num = "0." + num[1:]
    try:
        value = float(num)
    except ValueError:
        return None
    if not np.isfinite(value) or value <= 0:
        return None
    return value, m.group(2)


# --------------------------------------------------------------------------
# Geometry helpers


class _Norm:
    """A 2-D image normalised to 0..1 by its own minimum and maximum, computed only where looked at.

    ``n[key]`` gives the normalised float32 values of ``data[key]``; the
    near-black/near-white masks of the whole image are computed once each.
    A full float copy of a 4096 x 4096 image would cost more than the whole
    scale-bar search is allowed (benchmarks/bench_scalebar.py).
    """

    def __init__(self, d: np.ndarray):
        d = np.asarray(d)
        if d.ndim != 2:
            raise ValueError(f"expected a 2-D image, got shape {d.shape}")
        if d.dtype.kind == "b":
            d = d.astype(np.uint8)
        if d.dtype.kind == "f":
            finite = np.isfinite(d)
            if not finite.all():
                d = np.where(finite, d, np.nanmin(np.where(finite, d, np.inf)) if finite.any() else 0)
        elif d.dtype.kind not in "ui":
            d = d.astype(np.float32)
        self.d = d
        self.shape = d.shape
        lo, hi = (float(d.min()), float(d.max())) if d.size else (0.0, 0.0)
        self.lo = lo
        self.inv = 1.0 / (hi - lo) if hi > lo else 0.0
        self.hi = hi
        self._masks = {}

    def __getitem__(self, key):
        v = self.d[key]
        return (np.asarray(v, np.float32) - np.float32(self.lo)) * np.float32(self.inv)

    def full(self) -> np.ndarray:
        return self[...]

    def mask(self, polarity: str) -> np.ndarray:
        """uint8 mask of the pixels within ``_TOL`` of the darkest ('dark') or brightest ('bright') value."""
        if polarity not in self._masks:
            rng = self.hi - self.lo
            if rng <= 0:
                m = np.zeros(self.shape, np.uint8)
            elif polarity == "dark":
                m = (self.d <= self.lo + _TOL * rng).view(np.uint8)
            else:
                m = (self.d >= self.hi - _TOL * rng).view(np.uint8)
            self._masks[polarity] = m
        return self._masks[polarity]


def _normalise(data: np.ndarray) -> _Norm:
    d = np.asarray(data)
    if d.ndim == 3 and d.shape[-1] in (3, 4):
        import cv2

        rgb = np.ascontiguousarray(d[..., :3])
        if rgb.dtype == np.uint8:  # fast path: the exact channel sum (3 x the mean; _Norm rescales it)
            r, g, b = cv2.split(rgb)
            d = cv2.add(cv2.add(r, g, dtype=cv2.CV_16U), b, dtype=cv2.CV_16U)
        else:
            d = rgb.astype(np.float32).mean(axis=-1)
    return _Norm(d)


_TOL = 0.12


#: shortest bar, as a share of the image width: software draws bars of 5-30 % of the width; shorter
#: straight dark/bright runs are edges of the specimen (the flat top of a stained vesicle rim)
MIN_BAR_FRACTION = 0.03
#: geometry score (0..1) below which a bar-like shape is not masked out of the analysis
MASK_MIN_SCORE = 0.5


def _open_rows(mask: np.ndarray, k: int, close: int = 0) -> np.ndarray:
    """Horizontal opening (1 x ``k``) of a uint8 mask, computed only on rows holding >= ``k`` pixels.

    With ``close`` > 0 the rows are first closed (1 x ``close + 1``): a bar's row whose run is broken
    by a few pixels of noise or JPEG outside the colour tolerance stays one run.

    The kernel is one row tall, so rows are independent and rows with fewer
    than ``k`` pixels open to nothing: the result equals the opening of the
    whole mask.
    """
    import cv2

    counts = cv2.reduce(mask, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel()
    rows = np.flatnonzero(counts >= k)
    out = np.zeros_like(mask)
    if len(rows):
        sub = np.ascontiguousarray(mask[rows])
        if close:  # gaps of up to ``close`` px (noise, JPEG) do not break a run
            sub = cv2.morphologyEx(sub, cv2.MORPH_CLOSE, np.ones((1, close + 1), np.uint8),
                                   borderType=cv2.BORDER_CONSTANT, borderValue=0)
        out[rows] = cv2.morphologyEx(sub, cv2.MORPH_OPEN, np.ones((1, k), np.uint8),
                                     borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return out


def _components(mask: np.ndarray, min_run: int = 1):
    """Connected components (8-connected) of an opened uint8 mask: (x, y, w, h, area, own-pixels mask).

    The mask holds horizontal runs of at least ``min_run`` pixels, so it is
    first labelled at 1/f of its width (f = ``min_run`` // 4, max-pooled
    columns: no run is lost), and each coarse component is then labelled
    exactly inside its own box. Same components as labelling the whole image
    (each reported once), for a fraction of the cost on 4096 x 4096 images.
    """
    import cv2

    H, W = mask.shape
    f = max(1, min_run // 4)
    # only the rows holding pixels (an opened mask has few): pooled and labelled in their row range
    rows = np.flatnonzero(cv2.reduce(mask, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel())  # (REDUCE_MAX is 100x slower)
    if not len(rows):
        return
    ra, rb = int(rows[0]), int(rows[-1]) + 1
    if f > 1:
        pooled = cv2.dilate(mask[ra:rb], np.ones((1, f), np.uint8), anchor=(0, 0),
                            borderType=cv2.BORDER_CONSTANT, borderValue=0)
        coarse = np.ascontiguousarray(pooled[:, ::f])
    else:
        coarse = np.ascontiguousarray(mask[ra:rb])
    nlab, _, stats, _ = cv2.connectedComponentsWithStats(coarse, connectivity=8)
    seen = set()
    for i in range(1, nlab):
        x, y, w, h, _a = (int(v) for v in stats[i])
        y += ra
        xa, xb = max(0, x * f - f), min(W, (x + w) * f + f)
        sub = np.ascontiguousarray(mask[y:y + h, xa:xb])
        n2, lab, st2, _ = cv2.connectedComponentsWithStats(sub, connectivity=8)
        for j in range(1, n2):
            x2, y2, w2, h2, area = (int(v) for v in st2[j])
            key = (x2 + xa, y2 + y, w2, h2, area)
            if key in seen:
                continue
            seen.add(key)
            yield x2 + xa, y2 + y, w2, h2, area, lab[y2:y2 + h2, x2:x2 + w2] == j


def _row_runs(mask_rows: np.ndarray):
    """For each row of a boolean 2-D array: (start, end_exclusive, length) of its longest run."""
    h, w = mask_rows.shape
    pad = np.zeros((h, w + 2), np.int8)
    pad[:, 1:-1] = mask_rows
    diff = np.diff(pad, axis=1)
    starts_out = np.full(h, -1)
    ends_out = np.full(h, -1)
    lens = np.zeros(h, int)
    rs, cs = np.nonzero(diff == 1)
    re_, ce = np.nonzero(diff == -1)
    # starts and ends come in matching order row by row
    if len(rs):
        ln = ce - cs
        order = np.lexsort((-ln, rs))
        rs_o = rs[order]
        first = np.ones(len(rs_o), bool)
        first[1:] = rs_o[1:] != rs_o[:-1]
        idx = order[first]
        starts_out[rs[idx]] = cs[idx]
        ends_out[rs[idx]] = ce[idx]
        lens[rs[idx]] = ln[idx]
    return starts_out, ends_out, lens


@dataclass
class _Cand:
    polarity: str
    r0: int
    r1: int
    c0: int
    c1: int
    length: float
    thickness: int
    score: float
    comp_box: tuple  # bounding box of the (unopened) component incl. caps
    colour: float
    bg: float


def _bar_candidates(n: np.ndarray, max_candidates: int = 8, polarities=("dark", "bright")) -> list:
    import cv2

    H, W = n.shape
    kmin = int(max(11, round(0.015 * W))) | 1  # odd: an even opening kernel shifts by 1 px
    out = []
    for polarity in polarities:
        colour = 0.0 if polarity == "dark" else 1.0
        raw8 = n.mask(polarity)
        opened = _open_rows(raw8, kmin, close=EXTEND_GAP)
        for x, y, w, h, area, sub in _components(opened, kmin):
            if w < kmin or w >= 0.97 * W:
                continue
            if area < kmin:
                continue
            st, en, ln = _row_runs(sub)
            lmax = ln.max()
            if lmax < kmin:
                continue
            rows = np.nonzero(ln >= 0.85 * lmax)[0]
            # largest contiguous block of bar rows
            if len(rows) > 1:
                breaks = np.nonzero(np.diff(rows) > 1)[0]
                blocks = np.split(rows, breaks + 1)
                rows = max(blocks, key=lambda b: (len(b), ln[b].sum()))
            t = len(rows)
            c0 = int(np.median(st[rows])) + x
            c1 = int(np.median(en[rows])) + x
            L = c1 - c0
            if L < max(kmin, MIN_BAR_FRACTION * W) or t * 5 > L:
                continue
            if c0 <= 0 or c1 >= W:
                continue
            r0, r1 = int(rows[0]) + y, int(rows[-1]) + y + 1
            if r0 <= 0 or r1 >= H:
                continue
            # rectangularity: ends agree between rows
            end_dev = float(np.mean(np.abs(st[rows] + x - c0)) + np.mean(np.abs(en[rows] + x - c1))) / 2
            s_rect = float(np.clip(1.0 - (end_dev - 0.5) / 2.0, 0, 1))
            # uniformity inside the bar
            inner = n[r0:r1, c0:c1]
            if t >= 3:
                inner = n[r0 + 1:r1 - 1, c0 + 1:c1 - 1]
            s_uni = float(np.clip(1.0 - (float(inner.std()) - 0.04) / 0.1, 0, 1))
            bar_val = float(np.median(inner))
            # rows of the bar the run test missed (a label touching it, JPEG damage at the edges)
            join = max(t + 1, L // 5)  # beyond L/5 rows it is a block, not a bar (the thinness test)
            while r0 > 1 and join > 0 and _bar_like(n[r0 - 1, c0:c1], bar_val) > ROW_JOIN_FRACTION:
                r0 -= 1
                join -= 1
            while r1 < H - 1 and join > 0 and _bar_like(n[r1, c0:c1], bar_val) > ROW_JOIN_FRACTION:
                r1 += 1
                join -= 1
            t = r1 - r0
            if t * 5 > L:
                continue
            # contrast with the rows just above and below (2 px away); a robust
            # percentile, so that a label touching the bar (a minority of the
            # row's pixels) does not hide the contrast
            above = n[max(0, r0 - 3):r0, c0:c1]
            below = n[r1:min(H, r1 + 3), c0:c1]
            ca = _row_contrast(above[0 if above.shape[0] < 3 else 1], bar_val) if above.size else 0
            cb = _row_contrast(below[-1 if below.shape[0] < 3 else 1], bar_val) if below.size else 0
            s_con = float(np.clip((min(ca, cb) - 0.15) / 0.3, 0, 1))
            score = min(s_rect, s_uni, s_con)
            if score <= 0.05:
                continue
            # ends the opening cut short (noise or JPEG breaking the runs): follow the bar's rows outwards
            c0, c1 = _extend_ends(n, r0, r1, c0, c1, bar_val)
            L = c1 - c0
            if c0 <= 0 or c1 >= W or L >= 0.97 * W:
                continue
            # end caps / ticks: the unopened mask's component through the bar, in the end columns only
            # (a label touching the bar's middle is not a cap)
            cb_box = _cap_box(raw8, r0, r1, c0, c1)
            # background next to the ends (outline or image)
            bg_left = n[r0:r1, max(0, c0 - 4):max(0, c0 - 2)]
            bg_right = n[r0:r1, min(W, c1 + 2):min(W, c1 + 4)]
            bgs = [float(np.median(b)) for b in (bg_left, bg_right) if b.size]
            bg = float(np.mean(bgs)) if bgs else 1 - colour
            length = _subpixel_length(n, r0, r1, c0, c1, bar_val)
            out.append(_Cand(polarity, r0, r1, c0, c1, length, t, score, cb_box, bar_val, bg))
    out = [a for a in out if not any(_is_backing(a, b) for b in out)]
    # text strokes and other short marks next to a real bar are not bars
    good = [c.length for c in out if c.score > 0.5]
    if good:
        out = [c for c in out if c.length >= 0.35 * max(good)]
    out.sort(key=lambda c: (c.score > 0.5, c.length * c.score), reverse=True)
    return out[:max_candidates]


def _extend_ends(n, r0, r1, c0, c1, bar_val):
    """Move the bar's ends outwards while the bar's rows stay bar-coloured and the rows beside do not.

    A glyph touching the end of the bar reaches above or below the bar's rows,
    a continuation of the bar does not; gaps of up to ``EXTEND_GAP`` columns
    (noise) are crossed when the bar goes on after them.
    """
    H, W = n.shape
    t = r1 - r0
    above = max(0, r0 - 2)
    below = min(H - 1, r1 + 1)

    def is_bar(c):
        col = n[r0:r1, c]
        if np.mean(np.abs(col - bar_val) < 0.3) < 0.7:
            return False
        return abs(float(n[above, c]) - bar_val) >= 0.3 and abs(float(n[below, c]) - bar_val) >= 0.3

    for step in (-1, 1):
        c = c0 - 1 if step < 0 else c1
        gap = 0
        last = None
        while 0 < c < W - 1 and gap <= EXTEND_GAP:
            if is_bar(c):
                last, gap = c, 0
            else:
                gap += 1
            c += step
        if last is not None:
            if step < 0:
                c0 = last
            else:
                c1 = last + 1

    # end caps: a tick (bar-coloured above or below the bar's rows) at one end means caps at both;
    # a tick just outside the other end (the run test lost it to noise) belongs to the bar
    def is_tick(c):
        if not 0 <= c < W:
            return False
        if np.mean(np.abs(n[r0:r1, c] - bar_val) < 0.3) < 0.7:
            return False
        return abs(float(n[above, c]) - bar_val) < 0.3 or abs(float(n[below, c]) - bar_val) < 0.3

    reach = CAP_SEARCH_PX + max(1, t)
    left_in = any(is_tick(c) for c in range(c0, min(c1, c0 + reach)))
    right_in = any(is_tick(c) for c in range(max(c0, c1 - reach), c1))
    if right_in and not left_in:
        out = [c for c in range(c0 - 1, max(-1, c0 - 1 - reach), -1) if is_tick(c)]
        if out and np.all(np.diff([c0] + out) >= -(EXTEND_GAP + 1)):
            c0 = min(out)
    if left_in and not right_in:
        out = [c for c in range(c1, min(W, c1 + reach)) if is_tick(c)]
        if out and np.all(np.diff([c1 - 1] + out) <= EXTEND_GAP + 1):
            c1 = max(out) + 1
    if not left_in and not right_in:
        # both caps outside the ends found (a thin bar whose run test stopped at the caps' inner edges:
        # the caps' columns have bar-coloured pixels above/below, so they are not 'bar' columns): a
        # tick right next to each end, caps come in pairs
        def outer(start, step):
            last = None
            for k in range(reach):
                c = start + step * k
                if not is_tick(c):
                    if last is None and k == 0:
                        continue  # one column of JPEG/noise softening between the end and the cap
                    break
                last = c
            return last

        lo, hi = outer(c0 - 1, -1), outer(c1, 1)
        if lo is not None and hi is not None:
            c0, c1 = lo, hi + 1
    return c0, c1


def _cap_box(raw8, r0, r1, c0, c1):
    """Box of the bar with its end caps (components of the raw mask at the bar's end columns)."""
    import cv2

    H, W = raw8.shape
    L = c1 - c0
    reach = max(4, L // 4)
    wr0, wr1 = max(0, r0 - reach), min(H, r1 + reach)
    win = raw8[wr0:wr1, c0:c1]
    _, lab = cv2.connectedComponents(win, connectivity=8)
    mid = lab[(r0 + r1) // 2 - wr0, :]
    ids = np.unique(mid[mid > 0])
    box = (r0, c0, r1, c1)
    if not len(ids):
        return box
    e = max(3, min(L // 10, 3 * (r1 - r0) + 3))
    ends = np.concatenate([lab[:, :e], lab[:, -e:]], axis=1)
    rr = np.nonzero(np.isin(ends, ids).any(axis=1))[0]
    if len(rr):
        box = (int(min(rr.min() + wr0, r0)), c0, int(max(rr.max() + wr0 + 1, r1)), c1)
    return box


#: columns beyond a bar's end searched for its end cap (plus the bar's thickness)
CAP_SEARCH_PX = 4
#: columns of non-bar pixels an end may cross when the bar goes on after them (noise, JPEG)
EXTEND_GAP = 2
#: a row next to a bar whose pixels are this bar-coloured (share) is part of the bar
ROW_JOIN_FRACTION = 0.9
#: percentile of |row - bar colour| taken as a row's contrast: text touching the bar covers well under 40 %
#: of the row next to it (strokes of a label spanning part of the bar)
ROW_CONTRAST_PERCENTILE = 60


def _bar_like(row, bar_val) -> float:
    return float(np.mean(np.abs(row - bar_val) < 0.25)) if row.size else 0.0


def _row_contrast(row, bar_val) -> float:
    return float(np.percentile(np.abs(row - bar_val), ROW_CONTRAST_PERCENTILE))


def _is_backing(a: _Cand, b: _Cand) -> bool:
    """``a`` is the outline or backing box of bar ``b`` (opposite colour, touching it, at least as long)."""
    if a.polarity == b.polarity:
        return False
    touching = (0 <= b.r0 - a.r1 <= 2) or (0 <= a.r0 - b.r1 <= 2)
    inside = a.c0 - 1 <= b.c0 and b.c1 <= a.c1 + 1
    return touching and inside and b.length >= 0.5 * a.length


def _subpixel_length(n, r0, r1, c0, c1, bar_val) -> float:
    """Bar length from the coverage of the pixels around each end."""
    H, W = n.shape
    rows = slice(r0 + 1, r1 - 1) if (r1 - r0) >= 3 else slice(r0, r1)
    prof = n[rows, max(0, c0 - 4):min(W, c1 + 4)].mean(axis=0)
    off = max(0, c0 - 4)
    total = float(c1 - c0)

    def cov(v, bg):
        den = bg - bar_val
        if abs(den) < 0.2:
            return None
        return float(np.clip((bg - v) / den, 0, 1))

    # left end: columns c0-1 (outside) and c0 (inside); background 3..4 px out
    for side in ("left", "right"):
        if side == "left":
            if c0 - 4 < 0:
                continue
            bg = float(np.median(prof[0:2]))
            out_px, in_px = c0 - 1 - off, c0 - off
        else:
            if c1 + 4 > W:
                continue
            bg = float(np.median(prof[-2:]))
            out_px, in_px = c1 - off, c1 - 1 - off
        a = cov(prof[out_px], bg)
        b = cov(prof[in_px], bg)
        if a is None or b is None:
            continue
        total += a - (1.0 - b)
    return total


# --------------------------------------------------------------------------
# Databar strips


class _EdgeProfile:
    """Share of each row in the near-darkest/brightest mask of ``n``, counted from the bottom or top edge.

    Rows are computed in blocks as they are asked for: a strip search looks at the first row of each
    edge and walks inward only as far as strip-coloured rows go, so most images cost a few rows, not
    two masks of the whole image (``n.mask`` is used when it is already made).
    """

    BLOCK = 64

    def __init__(self, n, polarity, edge):
        self.n, self.polarity, self.edge = n, polarity, edge
        self.H, self.W = n.shape
        self.vals = np.zeros(0)

    def _row_shares(self, a, b):  # rows a..b-1 counted from the edge
        import cv2

        n = self.n
        rows = slice(self.H - b, self.H - a) if self.edge == "bottom" else slice(a, b)
        if self.polarity in n._masks:
            m = n._masks[self.polarity][rows]
        else:
            rng = n.hi - n.lo
            d = n.d[rows]
            if rng <= 0:
                m = np.zeros(d.shape, np.uint8)
            elif self.polarity == "dark":
                m = (d <= n.lo + _TOL * rng).view(np.uint8)
            else:
                m = (d >= n.hi - _TOL * rng).view(np.uint8)
        v = cv2.reduce(np.ascontiguousarray(m), 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel() / float(self.W)
        return v[::-1] if self.edge == "bottom" else v

    def __len__(self):
        return self.H

    def __getitem__(self, key):
        stop = (key + 1) if isinstance(key, (int, np.integer)) else (self.H if key.stop is None else key.stop)
        stop = min(self.H, stop)
        while len(self.vals) < stop:
            a = len(self.vals)
            b = min(self.H, max(stop, a + self.BLOCK))
            self.vals = np.concatenate([self.vals, self._row_shares(a, b)])
        return self.vals[key]


def _find_strip(n: np.ndarray):
    """Return ``(row0, 0, row1, W)`` of a black or white databar strip along the bottom/top, or None."""
    import cv2

    H, W = n.shape
    best = None
    limit = int(0.4 * H)
    for colour in (0.0, 1.0):
        polarity = "dark" if colour == 0.0 else "bright"
        for edge in ("bottom", "top"):
            prof = _EdgeProfile(n, polarity, edge)
            if prof[0] < 0.5:
                continue
            # walk inward while rows are mostly strip-coloured, allowing text rows (block by block)
            stop, i = None, 0
            while i < limit:
                blk = prof[i:min(limit, i + _EdgeProfile.BLOCK)]
                below = np.flatnonzero(blk < 0.35)
                if len(below):
                    stop = i + int(below[0])
                    break
                i += len(blk)
            if stop is None:
                continue
            clean = np.flatnonzero(prof[:stop] >= 0.97)
            hgt = int(clean[-1]) + 1 if len(clean) else 0
            if hgt < 8 or hgt >= limit:
                continue
            # sharp edge: the rows just beyond are image, not strip
            beyond = prof[hgt:hgt + 3]
            if len(beyond) == 0 or beyond.max() > 0.6:
                continue
            body = prof[:hgt]
            if body.mean() < 0.6:
                continue
            box = (H - hgt, 0, H, W) if edge == "bottom" else (0, 0, hgt, W)
            if best is None or hgt > best[2] - best[0]:
                best = box
    return best


# --------------------------------------------------------------------------
# Label lines


@dataclass
class _Line:
    box: tuple  # r0, c0, r1, c1
    comps: list  # component boxes (r0, c0, r1, c1, label id)
    where: str
    distance: float
    labels: np.ndarray = None  # component label image of the search window
    origin: tuple = (0, 0)  # window offset (row, col)
    soft: float = 0.5  # colour distance at which a pixel stops being text
    ink: np.ndarray = None  # |pixel - text colour| over the search window (0: text colour)
    trimmed: int = 0  # components cut off its ends as micrograph blobs (see _trim_line_ends)


#: share of the text-background contrast within which a pixel is text: first half of it; when no line
#: is found that way, more (thin strokes of ~10 px labels under JPEG break apart at one half)
TEXT_SHARES = (0.5, 0.7)


def _label_lines(n: np.ndarray, bar: _Cand, strip=None) -> list:
    """Candidate text lines next to the bar, nearest first."""
    for share in TEXT_SHARES:
        lines = _label_lines_at(n, bar, strip, share)
        if lines:
            return lines
    return []


def _label_lines_at(n: np.ndarray, bar: _Cand, strip, share: float) -> list:
    """:func:`_label_lines` with text pixels within ``share`` of the contrast of the text colour."""
    import cv2

    H, W = n.shape
    L = bar.c1 - bar.c0
    reach = int(max(40, 0.6 * L))
    wr0, wr1 = max(0, bar.r0 - reach), min(H, bar.r1 + reach)
    if strip is not None and strip[0] <= bar.r0 and bar.r1 <= strip[2]:
        wr0, wr1 = max(wr0, strip[0]), min(wr1, strip[2])
    side = int(max(1.5 * reach, 0.3 * W))  # a label beside the bar can be longer than a short bar
    wc0, wc1 = max(0, bar.c0 - side), min(W, bar.c1 + side)
    win = n[wr0:wr1, wc0:wc1]
    bg = bar.bg if abs(bar.bg - bar.colour) > 0.2 else 1.0 - bar.colour
    contrast = abs(bg - bar.colour)
    # hysteresis: glyphs are the pixels closer to the text colour than to the
    # background, in components holding some pixels of (almost) the text colour
    dist = ink = np.abs(win - bar.colour)
    text = (dist < share * contrast).astype(np.uint8)
    # blank the bar and its caps (with a 1 px margin)
    cr0, cc0, cr1, cc1 = bar.comp_box
    text[max(0, cr0 - 1 - wr0):max(0, cr1 + 1 - wr0), max(0, cc0 - 1 - wc0):max(0, cc1 + 1 - wc0)] = 0
    nlab, lab, stats, _ = cv2.connectedComponentsWithStats(text, connectivity=8)
    strong = np.zeros(nlab, bool)
    # (the looser pass also looks further for the strong pixels: its strokes are the faint ones)
    strong[np.unique(lab[(dist < min(0.3 * contrast, 0.25) * share / TEXT_SHARES[0]) & (text > 0)])] = True
    strong[0] = False
    lab = np.where(strong[lab], lab, 0)
    comps, dots = [], []
    for i in range(1, nlab):
        if not strong[i]:
            continue
        x, y, w, h, area = stats[i]
        if h < 5 or area < 5:
            if area >= 2 and w <= 3 * h + 2 and h <= 3 * w + 2:  # decimal point / comma
                dots.append((y + wr0, x + wc0, y + h + wr0, x + w + wc0, i))
            continue
        if h > reach or w > 1.2 * L + 20:
            continue
        if area > 0.9 * w * h and w > 3 * h:  # solid bars/strip edges are not glyphs
            continue
        if area > 0.85 * w * h and w > 4 and h > 4:  # solid blocks: only a bold full stop
            if w <= 2 * h and h <= 2 * w:
                dots.append((y + wr0, x + wc0, y + h + wr0, x + w + wc0, i))
            continue
        comps.append((y + wr0, x + wc0, y + h + wr0, x + w + wc0, i))
    if not comps:
        return []
    lines = []
    mid = (bar.r0 + bar.r1) / 2
    for where in ("above", "below", "right", "left"):
        if where == "above":
            cand = [c for c in comps if c[2] <= bar.r0 and c[3] > bar.c0 - 0.3 * L and c[1] < bar.c1 + 0.3 * L]
            key = lambda c: bar.r0 - c[2]  # noqa: E731
        elif where == "below":
            cand = [c for c in comps if c[0] >= bar.r1 and c[3] > bar.c0 - 0.3 * L and c[1] < bar.c1 + 0.3 * L]
            key = lambda c: c[0] - bar.r1  # noqa: E731
        elif where == "right":
            cand = [c for c in comps if c[1] >= bar.c1 and c[0] <= mid + 2 * bar.thickness and c[2] >= mid - 2 * bar.thickness]
            key = lambda c: c[1] - bar.c1  # noqa: E731
        else:
            cand = [c for c in comps if c[3] <= bar.c0 and c[0] <= mid + 2 * bar.thickness and c[2] >= mid - 2 * bar.thickness]
            key = lambda c: bar.c0 - c[3]  # noqa: E731
        if not cand:
            continue
        seen = set()
        # a label line above/below the bar does not cross the bar's rows: it grows through components
        # on its own side only (grown through others and then cut, it chained across the micrograph)
        pool = comps if where not in ("above", "below") else \
            [c for c in comps if (c[2] <= bar.r0 if where == "above" else c[0] >= bar.r1)]
        for seed in sorted(cand, key=key)[:6]:
            grown = _grow_line(seed, pool)
            line = _trim_line_ends(grown)
            trimmed = len(grown) - len(line)
            if len(line) >= 3:  # drop blobs reaching far above/below the glyphs' common band
                tops = np.median([c[0] for c in line])
                bots = np.median([c[2] for c in line])
                hmed = bots - tops
                lo, hi = tops - 0.6 * hmed, bots + 0.6 * hmed
                line = [(max(c[0], int(lo)), c[1], min(c[2], int(np.ceil(hi))), c[3], c[4]) for c in line]
            ids = frozenset(c[4] for c in line)
            if not line or ids in seen:
                continue
            seen.add(ids)
            r0 = min(c[0] for c in line)
            r1 = max(c[2] for c in line)
            c0 = min(c[1] for c in line)
            c1 = max(c[3] for c in line)
            h = r1 - r0
            if len(line) < 2 and (c1 - c0) < 1.5 * h:  # one lone blob is not a label
                continue
            if len(line) > 40:
                continue
            # decimal points, commas and broken-off stroke pieces inside the line's band
            for d in dots:
                if (d[0] >= r0 - 0.1 * h and d[2] <= r1 + 0.3 * h
                        and d[1] >= c0 - 0.3 * h and d[3] <= c1 + 0.3 * h):
                    line.append(d)
            c0 = min(c[1] for c in line)
            c1 = max(c[3] for c in line)
            dist = key((r0, c0, r1, c1)) / max(h, 1)
            if dist > 3.0:
                continue
            if where in ("right", "left"):
                # beside the bar: wholly beyond its end and vertically centred on it
                beyond = c0 >= bar.c1 - 1 if where == "right" else c1 <= bar.c0 + 1
                if not beyond or abs((r0 + r1) / 2 - mid) > max(BESIDE_CENTRE_TOLERANCE * h, 2 * bar.thickness):
                    continue
            if where in ("above", "below") and not _aligned(c0, c1, h, bar):
                # other text of a databar or an annotation near the bar: tried after the aligned lines
                dist += MISALIGNED_PENALTY
            lines.append(_Line((r0, c0, r1, c1), line, where, dist, lab, (wr0, wc0), 0.5 * contrast, ink,
                               trimmed))
    lines.sort(key=lambda ln: ln.distance)
    return lines


#: the widest gap between glyphs of one label, in glyph heights (the space in '0.5 µm' of wide fonts
#: such as OpenCV's Hershey faces is ~1.2 heights)
WORD_GAP = 2.0


#: a label beside the bar has its vertical centre within this many text heights of the bar's
#: (software centres it; a line merely overlapping the bar's rows is other text)
BESIDE_CENTRE_TOLERANCE = 0.5
#: added to the distance (in text heights) of a line above/below the bar that is neither centred on
#: it nor flush with an end, so that an aligned label further away is read first
MISALIGNED_PENALTY = 3.0


def _aligned(c0, c1, h, bar) -> bool:
    """A label above/below the bar is centred on it or flush with one of its ends."""
    L = bar.c1 - bar.c0
    tol = max(0.06 * L, 0.5 * h, 3)
    return (abs((c0 + c1) / 2 - (bar.c0 + bar.c1) / 2) <= tol
            or abs(c0 - bar.c0) <= tol or abs(c1 - bar.c1) <= tol)


#: a component at an end of a label line taller than this many times the line's median component
#: height is a blob of the micrograph the line grew into, not a glyph (label glyphs, x-height letters
#: and µ included, are within ~0.6-1.3 digit heights of each other)
LINE_END_MAX_HEIGHT = 1.5


def _trim_line_ends(line):
    """Drop micrograph blobs a grown line chained on at its ends: components much taller than the
    line's median, or further from their neighbour than :data:`WORD_GAP` median heights (the gap of
    the growth is measured against the line's height, which a blob raises).

    A glyph merged with a stain is as tall as a blob and can be cut too ('0' of '0.5 µm'): a trimmed
    line is therefore never read from its blanked cut-out alone (see :func:`_rapid_vote`)."""
    if len(line) < 3:
        return line
    line = sorted(line, key=lambda c: c[1])
    med = float(np.median([c[2] - c[0] for c in line]))
    changed = True
    while changed and len(line) > 2:
        changed = False
        for end, nb in ((0, 1), (-1, -2)):
            c, d = line[end], line[nb]
            gap = max(c[1] - d[3], d[1] - c[3], 0)
            if (c[2] - c[0]) > LINE_END_MAX_HEIGHT * med or gap > WORD_GAP * med:
                line.pop(end)
                changed = True
                break
    return line


def _grow_line(seed, comps):
    """Components on the same text line as ``seed``, chained by small horizontal gaps."""
    line = [seed]
    changed = True
    while changed:
        changed = False
        r0 = min(c[0] for c in line)
        r1 = max(c[2] for c in line)
        h = r1 - r0
        c0 = min(c[1] for c in line)
        c1 = max(c[3] for c in line)
        for c in comps:
            if c in line:
                continue
            ov = min(r1, c[2]) - max(r0, c[0])
            ch = c[2] - c[0]
            if ov < 0.5 * min(h, ch) or ch > 2.2 * h:
                continue
            gap = max(c[1] - c1, c0 - c[3], 0)
            if gap <= WORD_GAP * max(h, ch):  # a line seeded by 'u' or 'm' is x-height tall, digits taller
                line.append(c)
                changed = True
    return line


# --------------------------------------------------------------------------
# OCR


def _ocr_line(n: np.ndarray, line: _Line, bar: _Cand, engine: str = DEFAULT_OCR_ENGINE):
    """OCR one label line; returns (text, confidence 0..1)."""
    import cv2

    H, W = n.shape
    r0, c0, r1, c1 = line.box
    h = r1 - r0
    m = max(3, int(0.4 * h))
    R0, C0, R1, C1 = max(0, r0 - m), max(0, c0 - m), min(H, r1 + m), min(W, c1 + m)
    # pixels of the line's components (dilated to keep anti-aliased edges);
    # everything else - the bar, other text, the image - is blanked
    wr0, wc0 = line.origin
    ids = np.array([c[4] for c in line.comps])
    keep = np.zeros((R1 - R0, C1 - C0), np.uint8)
    lh, lw = line.labels.shape
    a0, b0 = max(R0, wr0), max(C0, wc0)
    a1, b1 = min(R1, wr0 + lh), min(C1, wc0 + lw)
    if a1 > a0 and b1 > b0:
        sub = line.labels[a0 - wr0:a1 - wr0, b0 - wc0:b1 - wc0]
        keep[a0 - R0:a1 - R0, b0 - C0:b1 - C0] = np.isin(sub, ids)
    crop = n[R0:R1, C0:C1]
    # hysteresis: grow the components into fainter (anti-aliased) text pixels
    weak = (np.abs(crop - bar.colour) < 1.4 * line.soft).astype(np.uint8)
    br0, bc0, br1, bc1 = bar.comp_box
    weak[max(0, br0 - 1 - R0):max(0, br1 + 1 - R0), max(0, bc0 - 1 - C0):max(0, bc1 + 1 - C0)] = 0
    _, wl = cv2.connectedComponents(weak, connectivity=8)
    hit = np.unique(wl[(keep > 0) & (wl > 0)])
    keep = (keep > 0) | (np.isin(wl, hit) & (wl > 0))
    keep = cv2.dilate(keep.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=1) > 0
    # dark text on white: 0 at the text colour, 1 at the background colour
    grey = np.clip(np.abs(crop - bar.colour) / max(2 * line.soft, 1e-3), 0, 1)
    grey = np.where(keep, grey, 1.0)
    img8 = (grey * 255).astype(np.uint8)
    if engine == "rapidocr":
        raw8 = (np.clip(np.abs(crop - bar.colour) / max(2 * line.soft, 1e-3), 0, 1) * 255).astype(np.uint8)
        raw8[~keep & (np.abs(crop - bar.colour) < line.soft)] = 255  # the bar and other marks, not the image
        # a wider cut-out of the raw pixels: glyphs the component search missed (faint, thin strokes)
        # are in it; above/below the bar it spans the bar's width, beside it 2 heights more outwards
        if line.where in ("above", "below"):  # towards the bar's ends, 3 text heights at most (PP-OCR's
            # cost grows with the width)
            wc0, wc1 = max(min(c0, bar.c0), c0 - 3 * h), min(max(c1, bar.c1), c1 + 3 * h)
        elif line.where == "right":  # also towards the bar: glyphs close to its end (a leading '0.' or
            # digit) can be left out of the line by the component search; the bar itself is blanked below
            wc0, wc1 = max(bar.c1 + 1, c0 - 2 * h), c1 + 2 * h
        else:
            wc0, wc1 = c0 - 2 * h, min(bar.c0 - 1, c1 + 2 * h)
        wc0, wc1 = max(0, wc0 - m), min(W, wc1 + m)
        wide = n[R0:R1, wc0:wc1]
        wide8 = (np.clip(np.abs(wide - bar.colour) / max(2 * line.soft, 1e-3), 0, 1) * 255).astype(np.uint8)
        br0, bc0, br1, bc1 = bar.comp_box
        wide8[max(0, br0 - 1 - R0):max(0, br1 + 1 - R0), max(0, bc0 - 1 - wc0):max(0, bc1 + 1 - wc0)] = 255
        return _rapid_vote(n, line, bar, [img8, raw8, wide8], h)
    # Reads restricted to the label alphabet at a few text heights, plus
    # unrestricted reads; the majority value+unit wins and the share of reads
    # agreeing with it is the OCR confidence. (Tesseract's own word confidence is unreliable with a
    # whitelist: often 0 for a perfect read.)
    reads = []  # (text, parsed or None)
    micro = _has_descender(line)

    def read(height, whitelist):
        im = _prepare(img8, h, height)
        cfg = f"--psm 7 -c tessedit_char_whitelist={_WHITELIST}" if whitelist else "--psm 7"
        t = _tesseract(im, cfg)
        if micro:
            t = _micro_fix(t)
        reads.append((t, _plausible(parse_label(t), bar.length)))

    for height, wl in ((36, True), (36, False), (28, True), (48, True)):
        read(height, wl)

    def tally():
        v = {}
        for t, p in reads:
            if p:
                v.setdefault((p[0], p[1]), []).append(t)
        return v

    votes = tally()
    if not votes or max(len(x) for x in votes.values()) < 3:
        for height, wl in ((28, False), (60, True), (22, True)):
            read(height, wl)
        votes = tally()
    if not votes:
        texts = [t for t, _ in reads if t]
        return (texts[0] if texts else ""), 0.0
    order = {k: i for i, k in enumerate(votes)}  # first-read order breaks ties
    best = max(votes, key=lambda k: (len(votes[k]), k[1] != "mm", -order[k]))
    agree = len(votes[best]) / len(reads)
    text = votes[best][0]
    conf = 0.95 * agree
    if best[1] == "mm":  # mm bars are rare on micrographs and 'µm' can read as 'mm'
        conf = min(conf, 0.45)
    return text, float(conf)


#: label lines shorter than this (px) are always read three ways (blanked, raw, wide cut-outs)
SMALL_TEXT_PX = 14
#: a PP-OCR line score (mean character probability) at which one cut-out is read as sure
SURE_SCORE = 0.9
#: PP-OCR's recogniser input height (rapidocr config ``Rec.rec_img_shape``)
_REC_HEIGHT = 48


def _rapid_vote(n, line, bar, images, h):
    """PP-OCR reads of one label line (blanked and raw cut-outs); (text, confidence)."""
    micro = _has_descender(line)
    prepared = []
    for im in images:
        scale = 0.7 * _REC_HEIGHT / max(h, 1)  # glyphs ~70 % of the input height, as in training crops
        interp = cv2_inter(scale)
        im = _resize(im, scale, interp)
        pad = max(4, int(0.15 * _REC_HEIGHT))
        prepared.append(_pad(im, pad))
    reads = []

    corrected = set()

    def run(ims):
        for text, score in _rapid_read(ims):
            t = _normalise_ocr_text(text)
            if micro:
                t = _micro_fix(t)
            raw = parse_label(t)
            p = _plausible(raw, bar.length)
            if p is None and raw and raw[1] == "mm":  # 'nm' read as 'mm' (impossible as mm): a correction
                p = _plausible((raw[0], "nm"), bar.length)
                if p:
                    corrected.add(len(reads))
            compact = "".join(t.split())
            if raw is None and not micro and compact.endswith(_NM_LOOKALIKES):  # 'n' of small text read as 'r' or 'h'
                p = _plausible(parse_label(compact[:-2] + "nm"), bar.length)
                if p:
                    corrected.add(len(reads))
            reads.append((t, score, p))

    # PP-OCR costs ~0.1 s per cut-out on one core: the blanked cut-out first; the raw and wide ones
    # only when it leaves a doubt (no reading, a low score, or a reading the geometry disputes), or
    # for small text, which loses glyphs (a leading '0.') in the blanked cut-out alone
    run(prepared[:1])
    p0 = reads[0][2]
    small = h < SMALL_TEXT_PX
    if small or line.trimmed or not (p0 and reads[0][1] >= SURE_SCORE and _label_cues(line, bar, reads[0][0], p0)[0] >= 1.0):
        run(prepared[1:])
    parsed = [(t, sc, p) for t, sc, p in reads if p]
    keys = [(p[0], p[1]) for _, _, p in parsed]
    if len(images) >= 3 and len(reads) > 1 and (len(set(keys)) != 1 or len(keys) < 2):
        # no reading, cut-outs that disagree, or one reading alone: read the raw and wide cut-outs again denoised (noise and
        # JPEG blocks break thin strokes of small glyphs): upscaled with cubic interpolation first, so
        # the median filter smooths the blocks without erasing strokes 1-2 px wide
        run([_denoised(im, h) for im in images[1:3]])
        parsed = [(t, sc, p) for t, sc, p in reads if p]
        if not parsed:
            # still nothing: the raw cut-outs hold the micrograph behind the label (a dark blob or a
            # gradient as dark as the text, seen as text by the recogniser): flattened to its background
            run([_flattened(im, h) for im in images[1:3]])
            parsed = [(t, sc, p) for t, sc, p in reads if p]
    if not parsed:
        texts = [t for t, _, _ in reads if t]
        return (texts[0] if texts else ""), 0.0
    votes = {}
    for r in parsed:
        key = next((k for k in votes if _same(k, r[2])), r[2])
        votes.setdefault(key, []).append(r)
    # most votes; then the reading the geometry checks accept (round value, glyph count, decimal point);
    # then the reading with more digits (the usual misread drops a glyph); then score
    best = max(votes, key=lambda k: (len(votes[k]), _label_cues(line, bar, votes[k][0][0], k)[0],
                                     len(re.sub(r"\D", "", _fmt(k[0]))), sum(r[1] for r in votes[k])))
    # the widest cut-out (last read) holds every pixel of the others: when it reads the same number with
    # glyphs in front ('0.5 µm' where the line alone gives '5 µm'), those glyphs were cut off the line
    # (not when a wide cut-out, plain or denoised, itself gives the majority reading)
    wide = reads[2][2] if len(reads) >= 3 else None
    wide_agrees = any(r[2] and _same(r[2], best) for i, r in enumerate(reads) if i in (2, 4))
    # (its raw pixels also hold the micrograph, whose blobs can read as digits: '20.2 µm' over '0.2 µm';
    # so not when the geometry checks accept the wide reading less than the majority's)
    if wide and wide[1] == best[1] and not wide_agrees and _extends(_fmt(wide[0]), _fmt(best[0])) and \
            _label_cues(line, bar, reads[2][0], wide)[0] >= _label_cues(line, bar, votes[best][0][0], best)[0]:
        best = next(k for k in votes if _same(k, wide))
    agree = votes[best]
    score = min(r[1] for r in agree)
    # a minority reading that is the best one without its decimal point ('15 µm' beside '1.5 µm': the
    # blanked cut-out loses a point too small to be a component of the line) does not dispute it when
    # the geometry sees a point drawn between the digits: that cue and the other cut-outs agree
    for k in [k for k in votes if k != best and len(votes[k]) < len(agree)]:
        if k[1] == best[1] and _drops_point(_fmt(k[0]), _fmt(best[0])) and \
                "a decimal point is drawn but none was read" in _label_cues(line, bar, votes[k][0][0], k)[1]:
            del votes[k]
    # a cut-out whose reading has no unit but another number ('25' beside '15 µm'): it disagrees too
    other_number = any(p is None and _number(t) is not None and abs(_number(t) - best[0]) > 1e-9 * best[0]
                       for t, _, p in reads)
    if len(votes) > 1 or other_number:  # cut-outs disagree: never confident
        conf = min(DISAGREEING_CUE_CONFIDENCE, score)
    elif len(reads) == 1:  # one sure reading the geometry agrees with
        conf = 0.9 * score
    elif len(agree) == len(reads):  # every cut-out gives the same reading
        conf = 0.95 * score
    elif len(agree) >= 2:
        conf = 0.8 * score
    else:  # one reading, the others unreadable
        conf = 0.6 * score
    if best[1] == "mm":
        conf = min(conf, 0.45)
    if any(i in corrected for i, r in enumerate(reads) if r in agree):
        conf = min(conf, DISAGREEING_CUE_CONFIDENCE)
        return f"{_fmt(best[0])} {best[1]}", float(conf)  # the corrected reading (the caller re-parses)
    return agree[0][0], float(conf)


_POINT_NOTE = "a decimal point is drawn but none was read"


def _restore_point(text, parsed, notes):
    """The reading with its decimal point put back, or None.

    PP-OCR drops the point of small labels ('25 µm' for '2.5 µm'); when the geometry sees a point
    drawn between the glyphs and the number read is two digits, the point can only stand between
    them. Not when the second digit is 0 ('1.0 µm' is not printed on a scale bar; a '10' with a
    speck in its gap stays 10). The caller keeps the result below LOW_CONFIDENCE: it is a correction.
    """
    if _POINT_NOTE not in notes:
        return None
    return _with_point(text, parsed)


def _with_point(text, parsed):
    """The reading of a two-digit number without a point (``'25 µm'``) with the point put between its
    digits (``(2.5, 'µm')``), or None (a point or comma already read, not two digits, or a 0 in
    either: '1.0 µm' and '0.5' read as '05' are not this case). Which cue says a point was dropped
    is the caller's: a point drawn in the glyph gap (:func:`_restore_point`) or the databar's field
    width agreeing only with the point put back (:func:`_databar_check`)."""
    m = re.match(r"\D*(\d+)(?:[.,]\d+)?", "".join(str(text).split()))
    if not m or re.search(r"[.,]", m.group(0)):
        return None
    digits = m.group(1)
    if len(digits) != 2 or digits[0] == "0" or digits[1] == "0":
        return None
    value = float(digits[0] + "." + digits[1])
    if abs(value * 10 - parsed[0]) > 1e-9 * parsed[0]:
        return None
    return value, parsed[1]


def _drops_point(without: str, with_point: str) -> bool:
    """``without`` is ``with_point`` with its decimal point left out (``'15'`` of ``'1.5'``; ``'5'``
    of ``'0.5'``, as ``'05'`` parses)."""
    if "." not in with_point or "." in without:
        return False
    digits = with_point.replace(".", "")
    return without in (digits, digits.lstrip("0"))


def _number(text: str) -> float | None:
    """The first number in an OCR reading (decimal point or comma), or None."""
    m = re.search(r"\d*[.,]?\d+", "".join(str(text).split()))
    try:
        return float(m.group(0).replace(",", ".")) if m else None
    except ValueError:
        return None


#: upscaling before the median filter of :func:`_denoised`, and the filter's size at that scale
DENOISE_UPSCALE, DENOISE_MEDIAN = 3, 5


def _denoised(im, h):
    """A cut-out upscaled (cubic) and median-filtered, ready for the recogniser like the others."""
    import cv2

    up = cv2.resize(im, None, fx=DENOISE_UPSCALE, fy=DENOISE_UPSCALE, interpolation=cv2.INTER_CUBIC)
    up = cv2.medianBlur(up, DENOISE_MEDIAN)
    scale = 0.7 * _REC_HEIGHT / max(h * DENOISE_UPSCALE, 1)
    return _pad(_resize(up, scale, cv2_inter(scale)), max(4, int(0.15 * _REC_HEIGHT)))


#: unit endings PP-OCR gives for 'nm' in small text (the 'n' loses its shoulder or gains an ascender)
_NM_LOOKALIKES = ("rm", "hm", "om")


def _flattened(im, h):
    """A cut-out divided by its local background (a closing wider than a glyph), then prepared.

    Text is dark (0) on a light background; the closing (a disc ~0.4 text heights wide) removes the
    strokes, so what it leaves is the micrograph's shading, and the division levels it to white.
    """
    import cv2

    k = 2 * max(2, int(round(0.2 * h))) + 1
    bg = cv2.morphologyEx(im, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    bg = cv2.GaussianBlur(bg, (0, 0), 1.0)
    flat = np.clip(im.astype(np.float32) / np.maximum(bg.astype(np.float32), 1.0), 0, 1)
    flat8 = (flat * 255).astype(np.uint8)
    # the glyph rows from the row profile of the dark pixels (a line box can hold a blob of the
    # micrograph and be twice the text height): long horizontal runs (what is left of the bar) left out
    ink = (flat8 < 128).astype(np.uint8)
    L = max(3, 2 * int(h))
    ink[cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, L), np.uint8)) > 0] = 0
    prof = ink.sum(axis=1)
    gh = h
    if prof.max() > 0:
        on = prof >= max(2, 0.15 * prof.max())
        runs, r = [], 0
        while r < len(on):
            if on[r]:
                e = r
                while e + 1 < len(on) and on[e + 1]:
                    e += 1
                runs.append((int(prof[r:e + 1].sum()), r, e + 1))
                r = e + 1
            else:
                r += 1
        _, a, b = max(runs) if runs else (0, 0, 0)
        if runs and 0.3 * h <= b - a < h:
            gh = b - a
            m = max(2, int(round(0.4 * gh)))
            flat8 = flat8[max(0, a - m):b + m]
    scale = 0.7 * _REC_HEIGHT / max(gh, 1)
    return _pad(_resize(flat8, scale, cv2_inter(scale)), max(4, int(0.15 * _REC_HEIGHT)))


def _extends(longer: str, shorter: str) -> bool:
    """``longer``'s digits hold all of ``shorter``'s, in order, and more: the shorter reading lost
    glyphs anywhere in the number ('0.5' over '5'; '200' over '20', where a stain crossing the last
    '0' merged it into a blob the line search dropped)."""
    da, db = re.sub(r"\D", "", longer), re.sub(r"\D", "", shorter)
    if len(da) <= len(db):
        return False
    it = iter(da)
    return all(ch in it for ch in db)


def cv2_inter(scale):
    import cv2

    return cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA


def _resize(im, scale, interp):
    import cv2

    if abs(scale - 1) <= 0.05:
        return im
    return cv2.resize(im, (max(1, int(round(im.shape[1] * scale))), max(1, int(round(im.shape[0] * scale)))),
                      interpolation=interp)


def _pad(im, pad):
    import cv2

    return cv2.copyMakeBorder(im, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255)


def _normalise_ocr_text(text: str) -> str:
    """Unicode look-alikes PP-OCR returns for the label characters."""
    t = str(text)
    for a, b in (("\u03bc", "µ"), ("\uff4d", "m"), ("\u3000", " "), ("\uff0c", ","), ("\u3002", "."),
                 ("\uff0e", "."), ("\u00b7", "."), ("\u2126", ""), ("\u2014", "-")):
        t = t.replace(a, b)
    return t


def _has_descender(line: _Line) -> bool:
    """A glyph reaching well below the baseline: in a scale-bar label only µ (or μ) does that."""
    big = [c for c in line.comps if (c[2] - c[0]) >= 0.5 * (line.box[2] - line.box[0])]
    if len(big) < 2:
        return False
    big = sorted(big, key=lambda c: c[1])
    bottoms = np.array([c[2] for c in big])
    heights = np.array([c[2] - c[0] for c in big])
    base = float(np.median(bottoms))
    hmed = float(np.median(heights))
    # µ follows the number: the first glyph is a digit, whatever hangs below it (a stain blob or a
    # vesicle edge merged with a '1') is not a descender
    return bool(np.any(bottoms[1:] > base + 0.18 * hmed))


def _micro_fix(text: str) -> str:
    """Repair a µ misread as n/m/a digit, or lost, when the label has a descender glyph."""
    t = "".join(str(text).split())
    if not t.endswith("m") or len(t) < 2:
        return text
    if t.endswith(("nm", "mm")):
        return t[:-2] + "µm"
    prev = t[-2]
    if prev in "uµμpyj":
        return t
    if prev.isdigit():
        # '0.253m': the µ was read as a digit, unless the number is complete without it
        return t[:-2] + "µm" if len(t) >= 3 else t[:-1] + "µm"
    return t[:-2] + "µm"


def _prepare(img8, h, height):
    import cv2

    scale = height / max(h, 1)
    if abs(scale - 1) > 0.1:
        interp = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
        img8 = cv2.resize(img8, None, fx=scale, fy=scale, interpolation=interp)
    return cv2.copyMakeBorder(img8, 20, 20, 20, 20, cv2.BORDER_CONSTANT, value=255)


def _plausible(parsed, length_px):
    """Drop readings giving an impossible pixel size for an electron micrograph."""
    if not parsed:
        return None
    nm_px = parsed[0] * _UNIT_NM[parsed[1]] / max(length_px, 1e-9)
    if not (PLAUSIBLE_PIXEL_NM[0] <= nm_px <= PLAUSIBLE_PIXEL_NM[1]):
        return None
    return parsed


def _same(a, b) -> bool:
    return a[1] == b[1] and abs(a[0] - b[0]) <= 1e-9 * max(a[0], b[0])


def _tesseract(img8, cfg) -> str:
    d = _pytesseract.image_to_data(img8, config=cfg, output_type=_pytesseract.Output.DICT)
    return " ".join(str(w).strip() for w in d.get("text", []) if str(w).strip())


# --------------------------------------------------------------------------
# Public API


def find_scale_bar(data: np.ndarray, ocr: bool = True, engine: str | None = None) -> ScaleBar | None:
    """Find a burned-in scale bar and (with ``ocr=True``) read its label.

    Returns None when no bar-like object is found. When a bar is found but
    its label cannot be read, ``value``/``unit``/``nm_per_px`` are None and
    ``label_text`` holds what OCR saw (or None).

    Raises
    ------
    OCRUnavailableError
        ``ocr=True`` but pytesseract or tesseract is missing.
    """
    engine = _engine_name(engine)
    if ocr:
        require_ocr(engine)
    best = None
    planes = _planes(data)
    # one OCR budget for the whole image, shared by the planes of a colour export and the vertical
    # retry (per plane, six planes could OCR 24 lines: > 1 s for a label that stays unread)
    budget = [MAX_OCR_LINES]
    strip = None
    for k, make in enumerate(planes):
        n = make()
        if k == 0:
            strip = [_find_strip(n)]
        # a databar strip is black or white: the grey plane's strip is every plane's (in the chroma,
        # 'dark' is every grey pixel: looked for there, it cost two walks over 40 % of the image)
        result = _search(n, ocr, engine, strips=strip, polarities=_plane_polarities(k), budget=budget)
        if result is None:
            continue
        if ocr:
            result.ocr_engine = engine
        thin = k == 2
        if k == 1 and result.nm_per_px is not None:
            # planes 1 and 2: the chroma and its thin lines raised; 3-5 the colour channels
            k = 1 if _remeasure_in_channels(result, planes, skip=1) == 1 else 3
        if thin and result.nm_per_px is not None:
            k = 1 if not _thin_ends_in_channels(result, planes) else 3
        if thin:  # a line only the raising made bar-coloured: never a sure reading
            result.checks.append("thin coloured bar: found with its thin lines raised in the chroma")
            result.confidence = min(result.confidence, DISAGREEING_CUE_CONFIDENCE)
        if k > 0:  # found in the chroma or one channel of a colour export
            result.checks.append("coloured bar: measured in the chroma (JPEG keeps it at half resolution)"
                                 if k <= 2 else "coloured bar: measured in one colour channel (JPEG keeps "
                                 "its colour at half resolution)")
            if result.length_px < CHROMA_SURE_LENGTH_PX:
                result.confidence = min(result.confidence, DISAGREEING_CUE_CONFIDENCE)
        if best is None:
            best = result
        if result.nm_per_px is not None or (not ocr and result.label_box is not None):
            return result
    if best is None or best.geometry_score < VERTICAL_RETRY_SCORE:
        # no horizontal bar: a vertical one, searched on the image turned a quarter clockwise (a label
        # written bottom-to-top beside it then reads left to right)
        d = np.asarray(data)
        if d.ndim in (2, 3) and min(d.shape[:2]) >= 16:
            turned = np.ascontiguousarray(np.rot90(d, -1))
            # the grey and chroma planes only (and the chroma's thin lines), no databar strip (strips run along the bottom or top
            # edge): the single channels of a colour export only sharpen what the chroma already
            # shows, and five more full searches would take a 4096^2 image past its time budget
            for k, make in enumerate(_planes(turned)):
                if k > 2:
                    break
                n = make()
                result = _search(n, ocr, engine, strips=False, polarities=_plane_polarities(k), budget=budget)
                if result is None or result.geometry_score < VERTICAL_RETRY_SCORE:
                    continue
                result = _unturn(result, d.shape[0])
                if ocr:
                    result.ocr_engine = engine
                if result.nm_per_px is not None or not ocr:
                    return result
                best = best or result
                break
    return best


def _remeasure_in_channels(result: ScaleBar, planes, skip: int = 0) -> int:
    """Length of a bar read in the chroma plane, measured again in the colour channel where it is sharpest.

    JPEG keeps the chroma at half resolution, each channel mixes it with the full-resolution luminance:
    the same bar (same rows, ends within :data:`THIN_END_SEARCH_PX`, covering >= 90 % of it) found in a channel with a better geometry score gives the
    length. Returns 2 when a channel's length was used, else 1 (the plane the length comes from).
    """
    r0, c0, r1, c1 = result.bar_box
    best = None
    for _ in range(skip):  # the chroma's thin-line plane, when the bar was found in the chroma itself
        next(planes, None)
    for make in planes:  # the remaining planes: the channels
        n = make()
        # only a window around the bar is searched (same value range as the whole channel, so the
        # same masks): the bar's rows and ends, and margins wide enough for its contrast and caps
        H, W = n.shape
        t = r1 - r0
        wr0, wr1 = max(0, r0 - 8 * t - 32), min(H, r1 + 8 * t + 32)
        wc0, wc1 = max(0, c0 - 64), min(W, c1 + 64)
        win = _Norm(n.d[wr0:wr1, wc0:wc1])
        win.lo, win.hi, win.inv = n.lo, n.hi, n.inv
        for cand in _bar_candidates(win):
            cr0, cr1, cc0, cc1 = cand.r0 + wr0, cand.r1 + wr0, cand.c0 + wc0, cand.c1 + wc0
            # the same bar: same rows, ends within a JPEG chroma block (+ margin) of the chroma's, which
            # its half resolution and the near-brightest tolerance (noisy colour) can move or cut short
            tol = max(3, THIN_END_SEARCH_PX)
            if abs(cr0 - r0) <= 3 and abs(cc0 - c0) <= tol and abs(cc1 - c1) <= tol and \
                    min(cc1, c1) - max(cc0, c0) >= 0.9 * (c1 - c0) and \
                    not _runs_into_label(result.label_box, cr0, cr1, cc0, cc1, c0, c1):
                if cand.score >= MASK_MIN_SCORE and (best is None or cand.score > best[0].score):
                    best = (cand, (cr0, cc0, cr1, cc1))
    if best is None:
        return 1
    result.length_px = float(best[0].length)
    result.bar_box = tuple(int(v) for v in best[1])
    result.nm_per_px = result.value * _UNIT_NM[result.unit] / best[0].length
    return 2


def _runs_into_label(label_box, r0, r1, c0, c1, old_c0, old_c1) -> bool:
    """A channel's bar (rows r0..r1, columns c0..c1) grown beyond the chroma's (old_c0..old_c1) up to
    within 1 px of a label beside it on its rows: the bar merged with the label's first glyph."""
    if label_box is None:
        return False
    lr0, lc0, lr1, lc1 = label_box
    if lr1 <= r0 or lr0 >= r1:
        return False
    right = c1 > old_c1 and lc0 >= old_c1 - 1 and c1 >= lc0 - 1
    left = c0 < old_c0 and lc1 <= old_c0 + 1 and c0 <= lc1 + 1
    return right or left


#: below this geometry score of the best horizontal candidate, vertical bars are looked for too
VERTICAL_RETRY_SCORE = 0.5


def _unturn(bar: ScaleBar, H: int) -> ScaleBar:
    """Boxes of a bar found on ``np.rot90(image, -1)`` back in the image's coordinates.

    On the turned image, pixel (r, c) is pixel (H - 1 - c, r) of the image.
    """
    def back(b):
        if b is None:
            return None
        r0, c0, r1, c1 = b
        return (H - c1, r0, H - c0, r1)

    bar.bar_box = back(bar.bar_box)
    bar.label_box = back(bar.label_box)
    bar.strip_box = None  # strips run along the bottom or top edge only
    bar.extra_boxes = [back(b) for b in bar.extra_boxes]
    bar.orientation = "vertical"
    return bar


def _plane_polarities(k: int) -> tuple:
    """Bar colours looked for in plane ``k`` of :func:`_planes`.

    In the chroma planes (1 and 2) only bright bars: the chroma's low end is every grey pixel (the
    whole micrograph, one component spanning the image that costs more to label than the rest of
    the search), and a grey bar is the grey plane's (0) to find, not the chroma's.
    """
    return ("bright",) if k in (1, 2) else ("dark", "bright")


def _planes(data):
    """Makers (zero-argument callables) of the planes searched for a bar, in order, each built when called.

    The grey image, then (RGB exports only) the chroma image where coloured bars and labels stand
    out, the chroma with its thin lines raised, and each colour channel. A plane skipped (not
    called) costs nothing: on a 4096 x 4096 colour export each costs ~10-30 ms.
    """
    d = np.asarray(data)
    if not (d.ndim == 3 and d.shape[-1] in (3, 4) and d.dtype == np.uint8):
        yield lambda: _normalise(d)
    if d.ndim == 3 and d.shape[-1] in (3, 4):
        import cv2

        if d.dtype not in (np.uint8, np.uint16, np.float32):
            d = d.astype(np.float32)
        # numpy's max over a length-3 axis is slow; cv2.split copies the channels out fastest (once:
        # the grey plane of an 8-bit export is their sum, as _normalise makes it)
        r, g, b = cv2.split(np.ascontiguousarray(d[..., :3]))
        if d.dtype == np.uint8:
            yield lambda: _Norm(cv2.add(cv2.add(r, g, dtype=cv2.CV_16U), b, dtype=cv2.CV_16U))
        chroma = cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))
        full = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(d.dtype, float(d.max()) or 1.0)
        if float(chroma.max()) >= COLOUR_MIN_CHROMA * full:
            yield lambda: _normalise(chroma)
            yield lambda: _normalise(_thin_lines_raised(chroma))
            # each channel alone: a coloured overlay has full contrast in at least one (yellow or cyan
            # in blue or red against grey), and a channel keeps the luminance's full resolution that
            # the JPEG chroma lacks (thin bars, small labels)
            for ch in (r, g, b):
                yield lambda ch=ch: _normalise(ch)


def _thin_lines_raised(chroma: np.ndarray) -> np.ndarray:
    """The chroma image with thin horizontal lines raised to the full colour (clipped at its maximum).

    JPEG keeps the chroma at half resolution: a 1-2 px coloured bar comes out at about half the
    chroma of the label beside it, too faint for the near-brightest mask. Its excess over the
    vertical opening (:data:`THIN_LINE_PX` px tall: the white top-hat, zero inside thicker strokes)
    is added twice, so a line at half the colour reaches the full colour while the thick glyphs and
    the grey field keep their values.
    """
    import cv2

    c = chroma if chroma.dtype in (np.uint8, np.uint16, np.float32) else chroma.astype(np.float32)
    top = cv2.morphologyEx(c, cv2.MORPH_TOPHAT, np.ones((THIN_LINE_PX, 1), np.uint8))
    cmax = c.max()
    if c.dtype == np.uint8:  # c + 2 top in one pass, saturated at 255
        out = cv2.addWeighted(c, 1.0, top, 2.0, 0.0)
        return out if cmax == 255 else np.minimum(out, cmax, out=out)
    out = cv2.add(c, cv2.add(top, top))  # integer types saturate: no overflow
    return np.minimum(out, cmax, out=out)


def _thin_ends_in_channels(result: ScaleBar, planes) -> bool:
    """Ends of a thin bar found in the chroma, measured again in the colour channel where it shows best.

    The chroma's 16 px JPEG blocks (4:2:0) move a thin line's ends by up to a block; each channel
    carries the full-resolution luminance. In the channel where the bar's rows differ most from the
    rows just above and below, the ends are where that difference (the larger of the two sides: an
    end tick makes one side bar-coloured) falls to half its median along the bar, looked for within
    :data:`THIN_END_SEARCH_PX` of the chroma's ends (linear interpolation between columns). When the
    line still runs at the end of that window (the chroma's top-hat lost it where a label touches it,
    0 px gap: bar and glyphs are one tall shape there), the window grows on that side, up to the
    image's edge, for as long as the channel shows the line. Returns True when the length was
    measured there.
    """
    r0, c0, r1, c1 = result.bar_box
    t = r1 - r0

    def profile(n, a, b):
        bar = n[r0:r1, a:b].mean(axis=0)
        above = n[r0 - 3:r0 - 1, a:b].mean(axis=0)
        below = n[r1 + 1:r1 + 3, a:b].mean(axis=0)
        return bar, above, below

    best = None
    for make in planes:  # the remaining planes: the channels
        n = make()
        H, W = n.shape
        if r0 < 3 or r1 + 3 > H:
            return False
        a, b = max(0, c0 - THIN_END_SEARCH_PX), min(W, c1 + THIN_END_SEARCH_PX)
        bar, above, below = profile(n, a, b)
        inner = slice(c0 - a + THIN_END_SEARCH_PX, c1 - a - THIN_END_SEARCH_PX)
        if inner.stop - inner.start < 8:
            return False
        sign = np.sign(np.median((bar - 0.5 * (above + below))[inner]))
        prof = np.maximum(sign * (bar - above), sign * (bar - below))
        level = float(np.median(prof[inner]))
        if best is None or level > best[0]:
            best = (level, prof, a, b, inner, n, sign)
    if best is None or best[0] < THIN_MIN_CONTRAST:
        return False
    level, prof, a, b, inner, n, sign = best
    half = 0.5 * level
    W = n.shape[1]
    mid = (inner.start + inner.stop) // 2 + a  # image column of the bar's middle (kept while growing)
    grown = False
    while True:
        hi = prof >= half
        # the run of columns above half the level through the bar's middle
        m = mid - a
        if not hi[m]:
            return False
        lo_i = m
        while lo_i > 0 and hi[lo_i - 1]:
            lo_i -= 1
        hi_i = m
        while hi_i < len(prof) - 1 and hi[hi_i + 1]:
            hi_i += 1
        grow_l, grow_r = lo_i == 0 and a > 0, hi_i == len(prof) - 1 and b < W
        if not (grow_l or grow_r):
            break
        step = max(c1 - c0, 4 * THIN_END_SEARCH_PX)
        a, b = (max(0, a - step) if grow_l else a), (min(W, b + step) if grow_r else b)
        bar, above, below = profile(n, a, b)
        prof = np.maximum(sign * (bar - above), sign * (bar - below))
        grown = True
    if lo_i == 0 or hi_i == len(prof) - 1:
        return False  # the run reaches the image's edge: no end found

    def cross(i_in, i_out):  # column where the profile crosses half, between an inside and an outside column
        p_in, p_out = prof[i_in], prof[i_out]
        return i_in + (i_out - i_in) * (p_in - half) / max(p_in - p_out, 1e-6)

    left = cross(lo_i, lo_i - 1) + 0.5  # pixel edges: the half-level crossing at a column's centre
    right = cross(hi_i, hi_i + 1) + 0.5
    length = float(right - left)
    if length < result.length_px - 2 * THIN_END_SEARCH_PX or (
            not grown and length > result.length_px + 2 * THIN_END_SEARCH_PX):
        return False
    if grown:
        result.checks.append("thin coloured bar: its line runs on past the chroma's end in one channel "
                             "(a label touching it)")
    result.length_px = length
    result.bar_box = (r0, int(a + lo_i), r1, int(a + hi_i + 1))
    result.nm_per_px = result.value * _UNIT_NM[result.unit] / length
    return True


#: the thin bar's ends are looked for this far (px) beyond and inside the chroma's ends (a JPEG chroma
#: block, 16 px, plus margin)
THIN_END_SEARCH_PX = 24
#: a thin bar's rows differ from the rows beside by at least this (normalised channel) to be measured
THIN_MIN_CONTRAST = 0.1


#: rows a thin coloured line spans at most after JPEG's chroma subsampling (1-2 px bars: 2-3 rows)
THIN_LINE_PX = 5


#: a coloured bar's ends are blurred by JPEG's half-resolution chroma (up to ~2 px per end): shorter bars
#: than this (2 x 2 px = 1 %) give low-confidence readings
CHROMA_SURE_LENGTH_PX = 400
#: a colour export's bar is looked for in its chroma (max - min channel) when some pixel reaches this
#: share of the full scale (saturated overlay colours: yellow, green, red, cyan reach 1.0)
COLOUR_MIN_CHROMA = 0.5


#: label lines OCR'd per image at most (each costs ~0.04-0.2 s), over all its planes and orientations:
#: the nearest lines of the best bars
MAX_OCR_LINES = 4


def _search(n, ocr, engine, strips=True, polarities=("dark", "bright"), budget=None):
    """The best bar of one plane and its reading; ``budget`` is a one-element list holding the label
    lines the image may still OCR (decremented here; a fresh :data:`MAX_OCR_LINES` when None).

    ``strips``: True to look for a databar strip in this plane, False for none, or a list holding the
    strip box (or None) already found in another plane of the same image (the grey plane's)."""
    strip = strips[0] if isinstance(strips, list) else (_find_strip(n) if strips else None)
    cands = _bar_candidates(n, polarities=polarities)
    if not cands:
        return None
    best = None
    budget = [MAX_OCR_LINES] if budget is None else budget
    for cand in cands[:4]:
        result = None
        # text pixels within half the contrast of the text colour first; when that gives no line or no
        # readable one, more of it (thin strokes of small labels broken apart by JPEG)
        for share in TEXT_SHARES:
            lines = _label_lines_at(n, cand, strip, share)
            if result is None or (result.label_box is None and lines):
                result = _make_result(cand, lines, strip)
            if not ocr:
                if lines:
                    break
                continue
            for line in lines[:3 if share == TEXT_SHARES[0] else 2]:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
                text, conf = _ocr_line(n, line, cand, engine)
                parsed = _plausible(parse_label(text), cand.length) if conf > 0 else None
                if parsed:
                    cue, notes = _label_cues(line, cand, text, parsed)
                    restored = _restore_point(text, parsed, notes)
                    if restored is not None:
                        parsed = restored  # (ocr_text keeps what PP-OCR read)
                        notes = notes + ["decimal point restored where the geometry sees it drawn"]
                        cue = min(cue, DISAGREEING_CUE_CONFIDENCE)
                    result.ocr_text = text
                    result.label_text = f"{_fmt(parsed[0])} {parsed[1]}"
                    result.label_box = tuple(int(v) for v in line.box)
                    result.value, result.unit = parsed
                    result.nm_per_px = parsed[0] * _UNIT_NM[parsed[1]] / cand.length
                    result.ocr_confidence = conf
                    result.confidence = float(np.clip(min(cand.score * conf, cue), 0, 1))
                    result.checks = notes
                    break
                if result.label_text is None and text:
                    result.label_text = result.ocr_text = text
                    result.ocr_confidence = conf
            if result.nm_per_px is not None:
                break
        lines = result.label_box is not None
        if ocr and result.nm_per_px is not None and strip is not None and strip[0] <= cand.r0 \
                and cand.r1 <= strip[2] and result.confidence >= LOW_CONFIDENCE:
            _databar_check(n, strip, cand, result, engine)
        if best is None:
            best = result
        if (not ocr and lines) or result.nm_per_px is not None:
            best = result
            break
    return best


#: the databar's horizontal field width and the bar's reading agree within this (plus the HFW's own
#: printed precision)
HFW_TOLERANCE = 0.02
_HFW_RE = re.compile(r"HFW[:=]?(\d+(?:[.,]\d+)?)(nm|µm|um|mm)", re.IGNORECASE)


def _databar_check(n, strip, cand, result, engine) -> None:
    """Cross-check a reading with the databar's horizontal field width (FEI/Thermo ``HFW 2.07 µm``).

    The strip's other text lines are read (PP-OCR only, in one batch); an ``HFW`` field gives the
    image's nm/px as HFW / image width. A reading that disagrees by more than :data:`HFW_TOLERANCE`
    (plus half a unit of the HFW's last printed digit) is capped at
    :data:`DISAGREEING_CUE_CONFIDENCE` (the check is listed in ``checks``); an agreeing one is left as
    it is (agreement never raises a confidence). Nothing happens when
    the strip has no readable HFW. A printed magnification is not used: turning it into nm/px needs
    the detector's pixel pitch (TEM cameras) or the vendor's reference display width (SEM), which the
    image does not carry.
    """
    import cv2

    if engine != "rapidocr":
        return
    H, W = n.shape
    r0, r1 = strip[0], strip[2]
    sub = n[r0:r1, :]
    contrast = abs(cand.bg - cand.colour) if abs(cand.bg - cand.colour) > 0.2 else 1.0
    dist = np.abs(sub - cand.colour)
    text = (dist < 0.5 * contrast).astype(np.uint8)
    blank = [cand.comp_box] + ([result.label_box] if result.label_box else [])
    for b0, c0, b1, c1 in blank:
        text[max(0, b0 - 2 - r0):max(0, b1 + 2 - r0), max(0, c0 - 2):min(W, c1 + 2)] = 0
    nlab, _, stats, _ = cv2.connectedComponentsWithStats(text, connectivity=8)
    comps = [(int(y) + r0, int(x), int(y + h) + r0, int(x + w), i) for i, (x, y, w, h, a) in enumerate(stats)
             if i and 5 <= h <= 0.8 * (r1 - r0) and w < 0.3 * W and a >= 5]
    if not comps:
        return
    lines, used = [], set()
    for c in sorted(comps, key=lambda c: c[1]):
        if c[4] in used:
            continue
        line = _grow_line(c, comps)
        used.update(x[4] for x in line)
        if len(line) >= 4:  # 'HFW' and a number at least
            lines.append((min(x[0] for x in line), min(x[1] for x in line),
                          max(x[2] for x in line), max(x[3] for x in line)))
    if not lines or len(lines) > 12:
        return

    def images(boxes):
        ims = []
        for b0, c0, b1, c1 in boxes:
            h = b1 - b0
            m = max(2, int(0.3 * h))
            crop = np.abs(n[max(0, b0 - m):min(H, b1 + m), max(0, c0 - m):min(W, c1 + m)] - cand.colour)
            im8 = (np.clip(crop / max(contrast, 1e-3), 0, 1) * 255).astype(np.uint8)
            scale = 0.7 * _REC_HEIGHT / max(h, 1)
            ims.append(_pad(_resize(im8, scale, cv2_inter(scale)), max(4, int(0.15 * _REC_HEIGHT))))
        return ims

    # all lines side by side in one image, a blank line height apart: the recogniser's cost is per
    # image (each is padded to >= 320 x 48) far more than per pixel of width, and the HFW field is
    # found in the text read wherever it stands
    ims = images(lines)
    h = max(im.shape[0] for im in ims)
    row = [np.full((h, _REC_HEIGHT), 255, np.uint8)]
    for im in ims:
        top = (h - im.shape[0]) // 2
        row += [np.pad(im, ((top, h - im.shape[0] - top), (0, 0)), constant_values=255),
                np.full((h, _REC_HEIGHT), 255, np.uint8)]
    for t, _score in _rapid_read([np.hstack(row)]):
        m = _HFW_RE.search("".join(_normalise_ocr_text(t).split()))
        if not m:
            continue
        num, unit = m.group(1).replace(",", "."), m.group(2).lower()
        scale_nm = {"nm": 1.0, "µm": 1e3, "um": 1e3, "mm": 1e6}[unit if unit != "µm" else "µm"]
        hfw_nm = float(num) * scale_nm
        decimals = len(num.split(".")[1]) if "." in num else 0
        tol = HFW_TOLERANCE + 0.5 * 10 ** -decimals / max(float(num), 1e-9)
        nm_px = hfw_nm / W
        rel = abs(result.nm_per_px - nm_px) / nm_px
        pointed = _with_point(result.ocr_text, (result.value, result.unit)) if rel > tol else None
        if pointed is not None and abs(pointed[0] * _UNIT_NM[pointed[1]] / cand.length - nm_px) / nm_px <= tol:
            # a dropped decimal point (PP-OCR on small labels): the field width agrees with the point
            # put back between the two digits, and with nothing else; a correction, never sure
            result.value, result.unit = pointed
            result.label_text = f"{_fmt(pointed[0])} {pointed[1]}"
            result.nm_per_px = pointed[0] * _UNIT_NM[pointed[1]] / cand.length
            result.confidence = min(result.confidence, DISAGREEING_CUE_CONFIDENCE)
            result.checks.append(f"decimal point restored: the databar's HFW {m.group(1)} {m.group(2)} over {W} px "
                                 f"({nm_px:.4g} nm/px) agrees only with it")
            return
        if rel > tol:
            result.confidence = min(result.confidence, DISAGREEING_CUE_CONFIDENCE)
            result.checks.append(f"disagrees by {100 * rel:.0f} % with the databar's HFW {m.group(1)} {m.group(2)} "
                                 f"over {W} px ({nm_px:.4g} nm/px)")
        return


#: mantissas of the label values microscope software chooses (1-2-5 series); others are possible but rarer
ROUND_MANTISSAS = (1.0, 2.0, 5.0)
#: mantissas still seen on real bars (250 nm, 1.5 µm, 0.3 µm, 0.4 µm ...)
COMMON_MANTISSAS = (1.5, 2.5, 3.0, 4.0)
#: confidence of a reading that disagrees with another cue: below LOW_CONFIDENCE, never high
DISAGREEING_CUE_CONFIDENCE = 0.4


#: a glyph of a label is at least this fraction of the line's tallest component (the x-height of
#: 'n', 'm' and 'u' is ~0.75 of the digit height in DejaVu and Hershey faces; JPEG specks are smaller)
GLYPH_MIN_HEIGHT = 0.5
#: ... and holds at least this fraction of the median glyph's ink (a '1' of a sans face holds ~0.3)
GLYPH_MIN_INK = 0.15
#: pieces of one glyph (strokes broken by JPEG blocks or noise, the stem and bowl of µ, the ring of Å)
#: overlap in columns or are at most this many px apart, and together are no wider than
#: GLYPH_MAX_WIDTH digit heights (an 'm' of DejaVu Sans is ~1.15; two digits '10' span >= 1.4)
GLYPH_PIECE_GAP = 1
GLYPH_MAX_WIDTH = 1.25
#: glyphs counted beyond the characters read before the reading is doubted
GLYPH_COUNT_SLACK = 1


def _glyphs(line) -> list:
    """The label line's glyphs: its components, specks dropped and pieces of one glyph merged.

    Returns a list of boxes ``(r0, c0, r1, c1)``, left to right.
    """
    r0, _, r1, _ = line.box
    h = max(1, r1 - r0)
    tall = [c for c in line.comps if (c[2] - c[0]) >= 0.35 * h]
    if not tall:
        return []
    ref = max(c[2] - c[0] for c in tall)
    ink = {}
    if line.labels is not None:
        wr0, wc0 = line.origin
        for c in tall:
            sub = line.labels[max(0, c[0] - wr0):max(0, c[2] - wr0), max(0, c[1] - wc0):max(0, c[3] - wc0)]
            ink[c] = int(np.count_nonzero(sub == c[4]))
    merged = []
    for c in sorted(tall, key=lambda c: c[1]):
        if merged:
            m = merged[-1]
            gap = c[1] - m[3]
            if gap <= GLYPH_PIECE_GAP and max(m[3], c[3]) - m[1] <= GLYPH_MAX_WIDTH * ref:
                merged[-1] = [min(m[0], c[0]), m[1], max(m[2], c[2]), max(m[3], c[3]), m[4] + ink.get(c, 0)]
                continue
        merged.append([c[0], c[1], c[2], c[3], ink.get(c, 0)])
    med = float(np.median([m[4] for m in merged])) if ink else 0.0
    return [tuple(m[:4]) for m in merged
            if (m[2] - m[0]) >= GLYPH_MIN_HEIGHT * ref and (not ink or m[4] >= GLYPH_MIN_INK * med)]


def _label_cues(line, cand, text, parsed):
    """Checks of a reading against the geometry; returns (confidence ceiling, notes).

    * round number: a 1-2-5 mantissa passes; 1.5/2.5/3/4 (``'250 nm'``, ``'15 nm'``)
      get a ceiling of 0.85; anything else (``'370 nm'``) is capped below
      :data:`LOW_CONFIDENCE`;
    * alignment: a label above/below is centred on the bar or flush with one of its ends;
    * glyph count: the label line's glyphs are not many more than the characters read
      (a dropped digit, ``'5 µm'`` for ``'2.5 µm'``);
    * decimal point: a dot-sized mark between the glyphs and no separator in the reading
      (``'15 µm'`` for ``'1.5 µm'``).
    Each failed check caps the confidence at :data:`DISAGREEING_CUE_CONFIDENCE`.
    """
    notes = []
    ceiling = 1.0
    v = parsed[0]
    mant = v / 10 ** np.floor(np.log10(v))
    if any(abs(mant - m) < 1e-6 for m in ROUND_MANTISSAS):
        pass
    elif any(abs(mant - m) < 1e-6 for m in COMMON_MANTISSAS):
        ceiling = min(ceiling, 0.85)
        notes.append("label value not in the 1-2-5 series")
    else:
        ceiling = min(ceiling, DISAGREEING_CUE_CONFIDENCE)
        notes.append("label value is not a round number")
    r0, c0, r1, c1 = line.box
    h = max(1, r1 - r0)
    if line.where in ("above", "below"):
        if not _aligned(c0, c1, h, cand):
            ceiling = min(ceiling, DISAGREEING_CUE_CONFIDENCE)
            notes.append("label neither centred on the bar nor flush with an end")
    glyphs = _glyphs(line)
    dots = [c for c in line.comps if (c[2] - c[0]) < 0.35 * h and c[0] >= r0 + 0.45 * h]
    chars = [ch for ch in "".join(str(text).split()) if ch not in ".,"]
    if len(chars) < len(glyphs) - GLYPH_COUNT_SLACK:
        ceiling = min(ceiling, DISAGREEING_CUE_CONFIDENCE)
        notes.append(f"{len(glyphs)} glyphs but {len(chars)} characters read")
    num = re.match(r"\D*(\d+(?:[.,]\d+)?)", "".join(str(text).split()))
    has_sep = bool(num and re.search(r"[.,]", num.group(1)))
    digit_glyphs = sorted(glyphs, key=lambda c: c[1])
    # a point stands in a gap between two glyphs, clear of both: a mark within a glyph's columns is
    # part of it (the dotted zero of DejaVu Sans Mono, a serif's foot). All the line's glyphs, not
    # only as many as digits were read: the reading may have dropped the digit before the point
    inner_dot = any(a[3] <= d[1] and d[3] <= b[1] for a, b in zip(digit_glyphs[:-1], digit_glyphs[1:]) for d in dots)
    if not inner_dot and not has_sep and num:
        inner_dot = _dot_in_gap(line, digit_glyphs[:len(re.sub(r"\D", "", num.group(1)))])
    if inner_dot and not has_sep:
        ceiling = min(ceiling, DISAGREEING_CUE_CONFIDENCE)
        notes.append(_POINT_NOTE)
    if _touches_bar(line, cand):
        ceiling = min(ceiling, DISAGREEING_CUE_CONFIDENCE)
        notes.append("label touches the bar (its glyphs' edge rows are lost to the bar)")
    return ceiling, notes


#: share of the label's columns more text-coloured in the row beside the bar than the rest of that
#: row: the label's glyphs reach into it (a label touching the bar)
TOUCH_EXCESS = 0.15


def _window(line, r0, r1, c0, c1):
    """``line.ink`` over image rows r0:r1, columns c0:c1 (clipped to the search window)."""
    wr0, wc0 = line.origin
    h, w = line.ink.shape
    return line.ink[max(0, r0 - wr0):max(0, min(h, r1 - wr0)), max(0, c0 - wc0):max(0, min(w, c1 - wc0))]


def _touches_bar(line, cand) -> bool:
    """The label's glyphs reach the bar: the row between them (blanked with the bar before the
    label's components were found) is text-coloured along the label, not along the rest of the bar.

    Glyph rows merged into the bar are lost: an 'n' without its shoulder reads as 'u' (nm -> µm),
    a 'u' without its bowl as 'n'.
    """
    if line.ink is None or line.where not in ("above", "below"):
        return False
    br0, bc0, br1, bc1 = cand.comp_box
    r0, c0, r1, c1 = line.box
    row = br1 if line.where == "below" else br0 - 1
    if (line.where == "below" and r0 > br1 + 1) or (line.where == "above" and r1 < br0 - 1):
        return False
    full = _window(line, row, row + 1, bc0, bc1)
    if full.size == 0:
        return False
    txt = full[0] < line.soft
    a, b = max(0, c0 - bc0), max(0, min(bc1, c1) - bc0)
    inside = txt[a:b]
    outside = np.concatenate([txt[:a], txt[b:]])
    if inside.size == 0:
        return False
    return float(inside.mean()) > (float(outside.mean()) if outside.size else 0.0) + TOUCH_EXCESS


#: a gap between two digits holding a decimal point is at least this many text heights wide (the
#: digits' own spacing is ~0.1-0.25 of their height in sans, serif and mono faces)
DOT_GAP_MIN = 0.35


def _dot_in_gap(line, glyphs) -> bool:
    """A decimal point too small or faint to be a component of its own (labels ~10 px tall, JPEG):
    a gap between two glyphs of the number wide enough for a point, with text-coloured pixels low in
    it and none high in it."""
    if line.ink is None or len(glyphs) < 2:
        return False
    r0, _, r1, _ = line.box
    h = max(1, r1 - r0)
    for a, b in zip(glyphs[:-1], glyphs[1:]):
        g0, g1 = a[3], b[1]
        if g1 - g0 < DOT_GAP_MIN * h:  # digits' own spacing: no room for a point (a '1's foot is low ink)
            continue
        if g1 - g0 >= 3:  # off the glyphs' anti-aliased edges
            g0, g1 = g0 + 1, g1 - 1
        if g1 <= g0:
            continue
        low = _window(line, r1 - max(1, int(round(0.3 * h))), r1, g0, g1)
        high = _window(line, r0, r0 + max(1, int(round(0.55 * h))), g0, g1)
        if low.size and high.size and (low < 1.4 * line.soft).any() and not (high < line.soft).any():
            return True
    return False


def _make_result(cand: _Cand, lines, strip) -> ScaleBar:
    label_box = lines[0].box if lines else None
    geom = cand.score * (1.0 if lines else 0.6)
    return ScaleBar(
        length_px=float(cand.length),
        bar_box=tuple(int(v) for v in (cand.r0, cand.c0, cand.r1, cand.c1)),
        label_box=tuple(int(v) for v in label_box) if label_box else None,
        confidence=float(geom * 0.3),  # raised once the label is read
        strip_box=tuple(int(v) for v in strip) if strip else None,
        polarity=cand.polarity,
        thickness_px=int(cand.thickness),
        geometry_score=float(geom),
        extra_boxes=[tuple(int(v) for v in cand.comp_box)],
    )


def annotation_mask(data: np.ndarray, bar: ScaleBar | None = None) -> np.ndarray:
    """Boolean mask, True over the scale bar (with end caps/outline), its label and any databar strip.

    Works without OCR. Pass an already found ``bar`` to avoid searching again.
    """
    n = _normalise(data)
    H, W = n.shape
    mask = np.zeros((H, W), bool)
    strip = _find_strip(n)
    if bar is None:
        cands = [c for c in _bar_candidates(n) if c.score >= MASK_MIN_SCORE]
        if cands:
            cand = cands[0]
            for c in cands[:4]:
                lines = _label_lines(n, c, strip)
                if lines:
                    cand = c
                    break
            else:
                lines = _label_lines(n, cand, strip)
            bar = _make_result(cand, lines, strip)
    if strip is not None:
        r0, c0, r1, c1 = strip
        mask[r0:r1, c0:c1] = True
    if bar is not None:
        if bar.strip_box is not None:
            r0, c0, r1, c1 = bar.strip_box
            mask[r0:r1, c0:c1] = True
        pad = max(3, int(bar.thickness_px) // 2 + 3)
        for box in [bar.bar_box] + list(bar.extra_boxes):
            r0, c0, r1, c1 = box
            mask[max(0, r0 - pad):min(H, r1 + pad), max(0, c0 - pad):min(W, c1 + pad)] = True
        if bar.label_box is not None:
            r0, c0, r1, c1 = bar.label_box
            p = max(3, int(0.25 * (r1 - r0)))
            mask[max(0, r0 - p):min(H, r1 + p), max(0, c0 - p):min(W, c1 + p)] = True
    return mask


def calibrate_from_scale_bar(image, bar: ScaleBar | None = None):
    """Use a burned-in scale bar to calibrate ``image`` (an :class:`exoimage.io.Image`), in place.

    * No pixel size yet: the bar's nm/px is used, ``pixel_size_source='scale_bar'``.
    * Pixel size already known (explicit or from metadata): it always wins;
      if the bar disagrees by more than 2 % a warning is added.
    * A bar with confidence below 0.5, a bar whose label cannot be read, or no
      bar at all when no pixel size is known: a warning.

    ``image.metadata`` gets ``scale_bar_text``, ``scale_bar_length_px``,
    ``scale_bar_confidence``, ``scale_bar_box`` (and ``scale_bar_nm_per_px``)
    whenever a readable bar is found. When the pixel size is already known,
    a missing OCR, a missing bar or an unreadable label only leave a note in
    ``image.metadata['scale_bar_check']`` (the known pixel size is used
    anyway). Returns ``image``.

    Raises
    ------
    OCRUnavailableError
        pytesseract or tesseract is missing and the image has no pixel size.
    """
    known = image.pixel_size_nm is not None
    if bar is None:
        if known and not ocr_available():
            image.metadata["scale_bar_check"] = "skipped: OCR not installed"
            return image
        bar = find_scale_bar(image.data, ocr=True)
    if bar is None:
        if known:
            image.metadata["scale_bar_check"] = "no scale bar found"
        else:
            image.warnings.append(coded("scale_bar_missing", "no pixel size in the file and no scale bar found"))
        return image
    if bar.nm_per_px is None:
        seen = f" (OCR read {bar.label_text!r})" if bar.label_text else ""
        msg = f"scale bar found ({bar.length_px:.1f} px) but its label could not be read{seen}"
        if known:
            image.metadata["scale_bar_check"] = msg
        else:
            image.warnings.append(coded("scale_bar_unreadable", msg))
        return image
    image.metadata["scale_bar_text"] = bar.label_text
    image.metadata["scale_bar_length_px"] = round(float(bar.length_px), 2)
    image.metadata["scale_bar_confidence"] = round(float(bar.confidence), 3)
    image.metadata["scale_bar_box"] = tuple(int(v) for v in bar.bar_box)
    image.metadata["scale_bar_nm_per_px"] = float(bar.nm_per_px)
    image.metadata["scale_bar_label_box"] = tuple(int(v) for v in bar.label_box) if bar.label_box else None
    image.metadata["scale_bar_ocr_engine"] = bar.ocr_engine
    if bar.checks:
        image.metadata["scale_bar_checks"] = "; ".join(bar.checks)
    label = f"{_fmt(bar.value)} {bar.unit}"
    rel = 0.0
    if not known:
        image.pixel_size_nm = float(bar.nm_per_px)
        image.pixel_size_source = "scale_bar"
        if bar.confidence < LOW_CONFIDENCE:
            image.warnings.append(coded(
                "scale_bar_low_confidence",
                f"scale bar calibration has low confidence ({bar.confidence:.2f}): read '{label}' over "
                f"{bar.length_px:.1f} px = {bar.nm_per_px:.4g} nm/px; check the bar and label found, or give the pixel size"))
    else:
        rel = abs(bar.nm_per_px - image.pixel_size_nm) / image.pixel_size_nm
        if rel > DISAGREEMENT_TOLERANCE:
            image.warnings.append(coded(
                "scale_bar_disagrees",
                f"scale bar ('{label}' over {bar.length_px:.1f} px = {bar.nm_per_px:.4g} nm/px) disagrees "
                f"by {rel * 100:.1f}% with the {image.pixel_size_source} pixel size "
                f"{image.pixel_size_nm:.4g} nm/px; keeping {image.pixel_size_source}"))
    image.metadata["scale_bar_check"] = "ok" if (not known or rel <= DISAGREEMENT_TOLERANCE) else "disagrees"
    return image


def preview_rgb(data: np.ndarray, bar: ScaleBar | None, max_side: int = 2048) -> np.ndarray:
    """An RGB uint8 picture of ``data`` with the bar (green), label (blue) and strip (yellow) boxed.

    Images larger than ``max_side`` are shrunk (boxes scaled with them). The
    reading is written in the top-left corner.
    """
    import cv2

    n = _normalise(data)
    H, W = n.shape
    f = min(1.0, max_side / max(H, W))
    grey = (n.full() * 255).astype(np.uint8)
    if f < 1:
        grey = cv2.resize(grey, (max(1, int(W * f)), max(1, int(H * f))), interpolation=cv2.INTER_AREA)
    rgb = np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    lw = max(2, int(round(max(rgb.shape[:2]) / 500)))

    def box(b, colour):
        r0, c0, r1, c1 = b
        cv2.rectangle(rgb, (int(c0 * f) - lw, int(r0 * f) - lw), (int(c1 * f) + lw - 1, int(r1 * f) + lw - 1),
                      colour, lw)

    if bar is not None:
        if bar.strip_box is not None:
            box(bar.strip_box, (255, 220, 0))
        if bar.label_box is not None:
            box(bar.label_box, (40, 120, 255))
        box(bar.bar_box, (0, 220, 0))
        if bar.nm_per_px is not None:
            msg = (f"{_fmt(bar.value)} {bar.unit.replace('µ', 'u').replace('Å', 'A')} / "
                   f"{bar.length_px:.1f} px = {bar.nm_per_px:.4g} nm/px  conf {bar.confidence:.2f}")
        else:
            msg = f"bar {bar.length_px:.1f} px, label not read"
    else:
        msg = "no scale bar found"
    scale = max(0.5, max(rgb.shape[:2]) / 1400)
    th = max(1, int(round(scale * 2)))
    (tw, tht), base = cv2.getTextSize(msg, cv2.FONT_HERSHEY_SIMPLEX, scale, th)
    cv2.rectangle(rgb, (0, 0), (tw + 20, tht + base + 20), (0, 0, 0), -1)
    cv2.putText(rgb, msg, (10, tht + 10), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 0), th, cv2.LINE_AA)
    return rgb


def _fmt(v: float) -> str:
    return f"{v:g}"
