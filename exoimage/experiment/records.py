"""Typed per-image records: what one analysed image contributes to an experiment's tables.

The data path of a run is

    read + analyse (one task per image) -> :class:`TemRecord` / :class:`BlotRecord`
    -> tables (:func:`exoimage.experiment.tables.experiment_tables`) -> QC rules (:mod:`exoimage.experiment.qc`)
    -> report sections (:mod:`exoimage.experiment.report`).

A record is made by the batch task (:mod:`exoimage.experiment.batch`), by the resume cache
when it reads a finished entry back (:func:`record_from_fields`), or by a front
end for results it holds in memory (the napari plugin's session report), always
with the builders below, so every path gives the same rows. Each record carries
its :class:`Provenance`: the input file, its SHA-256, the parameters, the
exoimage version and the hand edits made before it was recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np
import pandas as pd

from .. import __version__
from ..warning_codes import CodedWarning, warning_code

__all__ = ["Provenance", "ImageRecord", "TemRecord", "BlotRecord", "RECORD_TYPES", "tem_record", "blot_record", "ladder_check_summary", "LADDER_CHECK_KEYS",
           "blot_record_from_result", "error_record", "record_fields", "record_from_fields"]


@dataclass(frozen=True)
class Provenance:
    """Where a record's numbers come from.

    Attributes
    ----------
    input_path : str or None
        The file that was analysed, as it was opened (None: not from a file).
    sha256 : str or None
        SHA-256 of that file (None when it could not be read or there is none).
    params : dict
        The parameters of the analysis (JSON values).
    version : str
        The exoimage version that made the record.
    edits : tuple of str
        Hand edits made before the record (e.g. in napari), oldest first.
        A placeholder for now: the plugin notes re-measurements only.
    """

    input_path: str | None = None
    sha256: str | None = None
    params: dict = field(default_factory=dict)
    version: str = __version__
    edits: tuple = ()


@dataclass(kw_only=True)
class ImageRecord:
    """What one image contributes (kind-specific tables in the subclasses).

    Attributes
    ----------
    rel : str
        The image's name in every table (its path relative to the experiment folder).
    sample : str or None
        Its sample (TEM) or None (blots name samples per lane).
    image_row : dict
        Its row of the per-image table (``images`` / ``blot_images``); ``status``
        is ``ok`` or ``error`` (then ``error`` holds the one-line reason).
    provenance : Provenance
    warnings : tuple of CodedWarning
        The image's warnings with their codes (their text is ``image_row['warnings']``).
    overlay : str or None
        The overlay picture, relative to the output folder (``overlays/<stem>.png``).
    seconds : float or None
        Time the analysis took.
    """

    KIND: ClassVar[str] = ""
    TABLES: ClassVar[tuple] = ()

    rel: str
    sample: str | None = None
    image_row: dict
    provenance: Provenance = field(default_factory=Provenance)
    warnings: tuple = ()
    overlay: str | None = None
    seconds: float | None = None

    @property
    def kind(self) -> str:
        return self.KIND

    @property
    def ok(self) -> bool:
        return (self.image_row or {}).get("status") == "ok"

    @property
    def sha256(self) -> str | None:
        return self.provenance.sha256


@dataclass(kw_only=True)
class TemRecord(ImageRecord):
    """A TEM micrograph: its vesicles (``VESICLE_COLUMNS`` with ``sample`` after ``image``)."""

    KIND: ClassVar[str] = "tem"
    TABLES: ClassVar[tuple] = ("vesicles",)

    vesicles: pd.DataFrame | None = None


@dataclass(kw_only=True)
class BlotRecord(ImageRecord):
    """A Western blot: its lanes, bands and normalised signal, and the dilution-series fits."""

    KIND: ClassVar[str] = "blot"
    TABLES: ClassVar[tuple] = ("lanes", "bands", "normalized")

    marker: str | None = None
    lanes: pd.DataFrame | None = None
    bands: pd.DataFrame | None = None
    normalized: pd.DataFrame | None = None
    #: one entry per normalised table: its linear-range fit (dict) or None
    linear_range: list = field(default_factory=list)
    #: the mass-proportionality check of a known ladder with published masses (``ladder``, ``lane``,
    #: ``mean_abs_error_pct``, ``n_bands``, ``n_sizes``, ``ratio``, ``ratio_expected``); empty: none
    ladder_check: dict = field(default_factory=dict)


#: kind -> record class
RECORD_TYPES = {"tem": TemRecord, "blot": BlotRecord}


# ---------------------------------------------------------------------------
# builders (every front end makes its records with these)


def tem_record(rel: str, sample, image_row: dict, vesicles: pd.DataFrame | None = None, *,
               provenance: Provenance | None = None, warnings=(), overlay: str | None = None,
               seconds: float | None = None, remeasured: bool = False) -> TemRecord:
    """The record of one TEM image.

    Parameters
    ----------
    rel : str
        Name of the image in the tables.
    sample : str
    image_row : dict
        As :func:`exoimage.tem.analyze_tem_image` gives it.
    vesicles : DataFrame or None
        ``VESICLE_COLUMNS`` (a ``sample`` column is added after ``image``).
    remeasured : bool
        The vesicles were edited after ``image_row`` was made (napari): the
        row's size summary is recomputed from them and their ``image`` set to ``rel``.
    """
    from ..tem import summarize_diameters

    row = dict(image_row)
    v = None
    if vesicles is not None:
        v = vesicles.copy()
        if remeasured:
            v["image"] = rel
            row.update(summarize_diameters(v))
            row["image"] = rel
        if "sample" not in v:
            v.insert(1, "sample", sample)
    row["sample"] = sample
    return TemRecord(rel=rel, sample=sample, image_row=row, vesicles=v, provenance=provenance or Provenance(),
                     warnings=tuple(warnings), overlay=overlay, seconds=seconds)


def _with_marker_columns(normalized: pd.DataFrame | None, marker, control_marker) -> pd.DataFrame | None:
    if normalized is None or not len(normalized):
        return None
    n = normalized.copy()
    if "marker" not in n:
        n.insert(1, "marker", marker or "")
    if "control_marker" not in n:
        n.insert(2, "control_marker", control_marker or "")
    return n


def blot_record(rel: str, image_row: dict, *, marker=None, lanes=None, bands=None, normalized=None,
                control_marker=None, linear_range=(), provenance: Provenance | None = None, warnings=(),
                overlay: str | None = None, seconds: float | None = None, ladder_check=None) -> BlotRecord:
    """The record of one blot (``image_row`` as :func:`exoimage.blot.analyze_blot_file` gives it).

    ``normalized`` gets ``marker`` and ``control_marker`` columns after
    ``image`` when it has none. ``ladder_check``: the table of
    :func:`exoimage.blot.measure.ladder_mass_check` (its summary is kept, :func:`ladder_check_summary`).
    """
    row = dict(image_row)
    row["marker"] = marker
    return BlotRecord(rel=rel, sample=None, image_row=row, marker=marker, lanes=lanes, bands=bands,
                      normalized=_with_marker_columns(normalized, marker, control_marker),
                      linear_range=list(linear_range), provenance=provenance or Provenance(),
                      warnings=tuple(warnings), overlay=overlay, seconds=seconds,
                      ladder_check=ladder_check_summary(ladder_check))


#: the summary of a ladder mass check a blot record keeps (plain values)
LADDER_CHECK_KEYS = ("ladder", "lane", "mean_abs_error_pct", "n_bands", "n_sizes", "ratio", "ratio_expected")


def ladder_check_summary(check) -> dict:
    """``{key: value}`` (:data:`LADDER_CHECK_KEYS`) of a :func:`~exoimage.blot.measure.ladder_mass_check`
    table (None or empty: ``{}``); numbers as plain floats, NaN where not known."""
    if check is None or not len(check):
        return {}
    a = check.attrs
    return {"ladder": str(check["ladder"].iloc[0]), "lane": int(check["lane"].iloc[0]),
            "mean_abs_error_pct": float(a.get("mean_abs_error_pct", np.nan)),
            "n_bands": int(a.get("n_bands", len(check))), "n_sizes": int(a.get("n_sizes", len(check))),
            "ratio": float(a.get("ratio", np.nan)), "ratio_expected": float(a.get("ratio_expected", np.nan))}


def blot_record_from_result(rel: str, result, image, *, params=None, marker=None, normalized=None,
                            provenance: Provenance | None = None, overlay: str | None = None) -> BlotRecord:
    """The record of a :class:`~exoimage.blot.BlotResult` held in memory (e.g. hand-edited lanes and bands).

    ``params`` defaults to the result's own (``result.params``).
    """
    from ..blot import BlotParams
    from ..blot.pipeline import blot_image_row

    params = params or getattr(result, "params", None) or BlotParams()
    return blot_record(rel, blot_image_row(rel, result, image, params), marker=marker,
                       lanes=result.lanes.assign(image=rel), bands=result.bands.assign(image=rel),
                       normalized=normalized, provenance=provenance, warnings=tuple(result.warnings),
                       overlay=overlay, ladder_check=(getattr(result, "ladder", None) or {}).get("check"))


def error_record(kind: str, rel: str, sample, error: str, *, marker=None, row_extra: dict | None = None,
                 provenance: Provenance | None = None) -> ImageRecord:
    """The record of an image that was not analysed (``error``: the one-line reason).

    ``row_extra`` adds columns to its image row after ``image, status, error``
    (e.g. a blot's ``marker``).
    """
    row = {"image": rel, "status": "error", "error": error, **(row_extra or {})}
    if kind == "blot":
        return BlotRecord(rel=rel, image_row=row, marker=marker, provenance=provenance or Provenance())
    if kind != "tem":
        raise ValueError(f"unknown record kind {kind!r}")
    return TemRecord(rel=rel, sample=sample, image_row=row, provenance=provenance or Provenance())


# ---------------------------------------------------------------------------
# records <-> plain fields (the resume cache stores these; see exoimage.experiment.batch)


def record_fields(rec: ImageRecord) -> tuple[dict, dict]:
    """(scalar fields, {table name: DataFrame or None}) of a record; scalars are plain values.

    ``kind`` comes first; warnings become ``[code, text]`` pairs and the
    provenance a dict, so :func:`record_from_fields` rebuilds an equal record.
    """
    scalars, tables = {"kind": rec.kind}, {}
    for f in fields(rec):
        v = getattr(rec, f.name)
        if f.name in rec.TABLES:
            if v is not None and not isinstance(v, pd.DataFrame):
                raise TypeError(f"{f.name} is not a table")
            tables[f.name] = v
        elif f.name == "warnings":
            scalars[f.name] = [[warning_code(w), str(w)] for w in v]
        elif f.name == "provenance":
            scalars[f.name] = {p.name: (list(getattr(v, p.name)) if p.name == "edits" else getattr(v, p.name))
                               for p in fields(Provenance)}
        else:
            scalars[f.name] = v
    return scalars, tables


def _str_or_none(v, what):
    if v is not None and not isinstance(v, str):
        raise ValueError(f"bad {what}")
    return v


def record_from_fields(scalars: dict, tables: dict) -> ImageRecord:
    """The record of :func:`record_fields`' output; anything unexpected is a ``ValueError``.

    Exactly the fields of the record's kind must be there, each of its type
    (strings, dicts, lists, tables), so a stored entry that was edited by hand
    or made by another version is refused rather than half-used.
    """
    if not isinstance(scalars, dict) or not isinstance(tables, dict):
        raise ValueError("malformed record")
    cls = RECORD_TYPES.get(scalars.get("kind"))
    if cls is None:
        raise ValueError(f"unknown record kind {scalars.get('kind')!r}")
    names = [f.name for f in fields(cls)]
    want = {"kind"} | {n for n in names if n not in cls.TABLES}
    if set(scalars) != want:
        raise ValueError(f"record fields {sorted(set(scalars) ^ want)} unexpected or missing")
    if not set(tables) <= set(cls.TABLES):
        raise ValueError(f"unexpected table(s) {sorted(set(tables) - set(cls.TABLES))}")
    for k, t in tables.items():
        if t is not None and not isinstance(t, pd.DataFrame):
            raise ValueError(f"{k} is not a table")
    kw = {n: scalars[n] for n in names if n not in cls.TABLES}
    if not isinstance(kw["rel"], str):
        raise ValueError("bad rel")
    _str_or_none(kw["sample"], "sample")
    _str_or_none(kw["overlay"], "overlay")
    if not isinstance(kw["image_row"], dict):
        raise ValueError("bad image row")
    if kw["seconds"] is not None and (isinstance(kw["seconds"], bool) or not isinstance(kw["seconds"], (int, float))):
        raise ValueError("bad seconds")
    ws = kw["warnings"]
    if not isinstance(ws, list) or not all(isinstance(w, (list, tuple)) and len(w) == 2
                                           and all(isinstance(x, str) for x in w) for w in ws):
        raise ValueError("bad warnings")
    kw["warnings"] = tuple(CodedWarning(c, t) for c, t in ws)
    p = kw["provenance"]
    pnames = {f.name for f in fields(Provenance)}
    if not isinstance(p, dict) or set(p) != pnames:
        raise ValueError("bad provenance")
    _str_or_none(p["input_path"], "input path")
    _str_or_none(p["sha256"], "sha256")
    if not isinstance(p["params"], dict) or not isinstance(p["version"], str) \
            or not isinstance(p["edits"], (list, tuple)) or not all(isinstance(e, str) for e in p["edits"]):
        raise ValueError("bad provenance")
    kw["provenance"] = Provenance(**{**p, "edits": tuple(p["edits"])})
    if cls is BlotRecord:
        _str_or_none(kw["marker"], "marker")
        if not isinstance(kw["linear_range"], list) \
                or not all(x is None or isinstance(x, dict) for x in kw["linear_range"]):
            raise ValueError("bad linear range")
        lc = kw["ladder_check"]
        if not isinstance(lc, dict) or (lc and set(lc) != set(LADDER_CHECK_KEYS)):
            raise ValueError("bad ladder check")
    kw.update({k: tables.get(k) for k in cls.TABLES})
    return cls(**kw)
