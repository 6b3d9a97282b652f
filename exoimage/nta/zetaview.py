"""Read Particle Metrix ZetaView ``.txt`` exports.

The export is Latin-1 text: a header of ``Key: value`` lines (tab after the
colon; ``Dilution::`` has two colons), then ``Size Distribution`` tables with
the columns ``Size / nm, Number, Concentration / cm-3, Volume / nm^3,
Area / nm^2`` (tab-separated): linear bins first, then a line starting with
``-1.000E+0`` and the logarithmic bins. Computers with a German (or other
comma) locale write decimal commas (``2,350E+2``), in the header too.

Assumption (documented in ``docs/nta.md``): the ``Concentration / cm-3``
column is what was measured in the cell; the ``Dilution`` factor from the
header is applied once here (``dilution_applied_by='exoimage'``).
"""

from __future__ import annotations

import re
from pathlib import PureWindowsPath

import numpy as np
import pandas as pd

from ._common import BIN_COLUMNS, NtaReadError, NtaResult, empty_frame, flagged, read_text, to_float

__all__ = ["read_zetaview_txt", "is_zetaview_txt"]

TABLE_HEADER = "size / nm"
#: header key (lower case) -> numeric column of :attr:`NtaResult.videos`
NUMERIC_KEYS = {
    "temperature": "temperature_C",
    "viscosity": "viscosity_cP",           # written in mPas = cP
    "ph": "ph",
    "conductivity": "conductivity_uS_per_cm",
    "positions": "positions",
    "number of traces": "completed_tracks",
    "average number of particles": "particles_per_frame",
    "laser wavelength nm": "laser_wavelength_nm",
    "sensitivity": "sensitivity",
    "shutter": "shutter",
    "gain": "gain",
    "minimum brightness": "min_brightness",
    "minimum area": "min_area_px",
    "maximum area": "max_area_px",
    "minimum tracelength": "min_track_length",
    "concentration correction factor": "concentration_correction_factor",
    "median number (d50)": "d50_nm",
}
TEXT_KEYS = {
    "particle drift check result": "drift_check_result",
    "cell check result": "cell_check_result",
    "microscope position": "microscope_position",
    "sop": "sop",
}
#: header entries whose value is a verdict kept in the warnings table when not good
VERDICT_KEYS = ("particle drift check result", "cell check result")


def is_zetaview_txt(text: str) -> bool:
    """True when ``text`` looks like a ZetaView export (header keys and size table)."""
    head = text[:20000].lower()
    return TABLE_HEADER in head and ("zetaview" in head or "dilution:" in head or "original file:" in head)


def _header(lines):
    """``Key: value`` pairs before the size table (keys as written, values stripped)."""
    meta = {}
    for line in lines:
        m = re.match(r"^\s*([^:\t]+?)\s*:+\s*(.*?)\s*$", line)
        if m and m.group(1):
            meta.setdefault(m.group(1).strip(), m.group(2).replace("\t", " ").strip())
    return meta


def _uses_decimal_comma(rows) -> bool:
    return any(re.search(r"\d,\d", cell) for row in rows[:20] for cell in row)


def read_zetaview_txt(path, sample: str | None = None) -> NtaResult:
    """Read one ZetaView ``.txt`` export (one measurement over its positions).

    Parameters
    ----------
    path : str or Path
    sample : str, optional
        Sample name; default the header's ``Sample`` value, else the file stem.

    Returns
    -------
    NtaResult
        One row in ``videos``; ``bins`` holds the linear (``scale='linear'``)
        and logarithmic (``scale='log'``) series.

    Raises
    ------
    NtaReadError
        Not a ZetaView export, no size table, a truncated table (no
        logarithmic part after the ``-1.000E+0`` separator, short rows).
    """
    p, text = read_text(path)
    if not is_zetaview_txt(text):
        raise NtaReadError(p, "not a ZetaView .txt export (no 'Size / nm' table with a ZetaView header)")
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.strip().lower().startswith(TABLE_HEADER)), None)
    if start is None:
        raise NtaReadError(p, "no 'Size / nm' size-distribution table")
    columns = [c.strip() for c in lines[start].split("\t") if c.strip()]
    if len(columns) < 3 or not columns[2].lower().startswith("concentration"):
        raise NtaReadError(p, f"unexpected size-table columns {columns}")
    data_rows = []
    for line in lines[start + 1:]:
        cells = [c.strip() for c in line.split("\t") if c.strip()]
        if not cells or cells[0].lower().startswith(TABLE_HEADER):
            continue                     # blank lines; the header repeated before the log bins
        data_rows.append(cells)
    decimal_comma = _uses_decimal_comma(data_rows)
    meta = _header(lines[:start])

    lin, log = [], []
    target = lin
    for cells in data_rows:
        first = to_float(cells[0], decimal_comma)
        if np.isnan(first):
            break
        if first == -1:
            target = log
            continue
        if len(cells) < 3:
            raise NtaReadError(p, f"truncated size table: row {cells[0]!r} has {len(cells)} of "
                                  f"{len(columns)} columns")
        target.append([to_float(c, decimal_comma) for c in cells[:3]])
    if not lin:
        raise NtaReadError(p, "the size table has no rows")
    if not log:
        raise NtaReadError(p, "no logarithmic bins after the -1.000E+0 separator (truncated file?)")

    lowkeys = {k.lower(): v for k, v in meta.items()}
    if sample is None:
        sample = lowkeys.get("sample") or p.stem
    original = lowkeys.get("original file", "").split(" Section")[0].strip()
    video = PureWindowsPath(original).stem if original else p.stem
    dilution = to_float(lowkeys.get("dilution", ""), decimal_comma)
    if not dilution > 0:
        dilution = np.nan
    factor = 1.0 if np.isnan(dilution) else dilution
    applied_by = "none" if np.isnan(dilution) else "exoimage"

    bins_parts = []
    for scale, arr in (("linear", np.array(lin)), ("log", np.array(log))):
        x = arr[:, 0]
        if len(x) < 2:
            width = np.ones_like(x)
        elif scale == "linear":
            width = np.full_like(x, float(np.median(np.diff(x))))
        else:                            # edges at x / sqrt(r), x * sqrt(r) for ratio r
            r = np.exp(np.gradient(np.log(x)))
            width = x * (np.sqrt(r) - 1 / np.sqrt(r))
        bins_parts.append(pd.DataFrame({
            "sample": sample, "video": video, "scale": scale, "bin_nm": x, "bin_width_nm": width,
            "concentration_per_ml": arr[:, 2] * factor, "concentration_measured_per_ml": arr[:, 2],
            "dilution_factor": dilution, "dilution_applied_by": applied_by}, columns=BIN_COLUMNS))
    bins = pd.concat(bins_parts, ignore_index=True)

    measured = float(np.array(lin)[:, 2].sum())
    row = {"sample": sample, "video": video}
    for key, col in NUMERIC_KEYS.items():
        row[col] = to_float(lowkeys.get(key, ""), decimal_comma)
    for key, col in TEXT_KEYS.items():
        row[col] = lowkeys.get(key, "")
    row["frame_rate_fps"] = _camera_number(lowkeys.get("camera", ""), "FRate", decimal_comma)
    if np.isnan(row["frame_rate_fps"]):
        row["frame_rate_fps"] = _camera_number(lowkeys.get("camera", ""), "FpSec", decimal_comma)
    row.update({"dilution_factor": dilution,
                "dilution_applied_by": applied_by, "concentration_per_ml": measured * factor,
                "concentration_measured_per_ml": measured})
    videos = pd.DataFrame([row])

    raw = pd.DataFrame([{"sample": sample, "video": video, "section": "header", "item": k, "value": v}
                        for k, v in meta.items()], columns=["sample", "video", "section", "item", "value"])
    verdict = raw["item"].str.lower().isin(VERDICT_KEYS) & raw["value"].map(flagged)
    warnings = raw[verdict].reset_index(drop=True)
    software = meta.get("Software", "")
    m = re.search(r"version\s*([^)\s]+(?:\s+SP\d+)?)", software, re.I)
    software = ("ZetaView " + m.group(1)) if m else software

    return NtaResult(
        path=str(p), instrument="zetaview", software_version=software, sample=sample, videos=videos,
        bins=bins, instrument_summary=empty_frame(["sample", "statistic", "average", "standard_error"]),
        bins_average=empty_frame(["sample", "bin_nm", "concentration_average_per_ml", "concentration_se_per_ml"]),
        percentiles=empty_frame(["sample", "video", "percentile", "size_nm"]),
        raw=raw, warnings=warnings, metadata=meta)


def _camera_number(camera: str, key: str, decimal_comma: bool) -> float:
    """A number after ``key`` in the ZetaView ``Camera:`` line (``FpSec 30 #Cycles 2 ...``)."""
    m = re.search(re.escape(key) + r"\s+([-+0-9.,Ee]+)", camera)
    return to_float(m.group(1), decimal_comma) if m else float("nan")
