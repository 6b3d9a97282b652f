"""Read Particle Metrix ZetaView ``.txt`` exports (software 8.05).

Layout, as in the real 8.05.16 SP3 export in ``../shared/data/nta/zetaview``
(Latin-1 or UTF-8, CRLF or LF):

- a header of ``Key:`` cells, each followed by its value in the next
  tab-separated cell(s), several pairs on one line where the software puts
  them (``Number of Traces:\\t2235\\t(at 0,100000)\\tAverage Number of
  Particles:\\t228,500000\\tDilution::\\t5000,000000``; ``Dilution::`` has two
  colons); values may carry a unit or a remark after a tab (``pH:\\t7,0\\tentered``);
- the instrument's results (``Median Number (D50):``, ``Median Concentration
  (D50):``, ``Median Volume (D50):``);
- ``Size Distribution`` with the tab-separated columns ``Size / nm, Number,
  Concentration / cm-3, Volume / nm^3, Area / nm^2``: linear 5-nm bins, a row
  starting ``-1.000E+0``, then logarithmic bins.

Computers with a German (or other comma) locale write decimal commas
(``2,500E+0``, ``228,500000``), in the header too. The locale is detected
from the size table and applied to every number.

Conventions, checked on the real file (docs/nta.md): the ``Concentration /
cm-3`` column is what was measured in the cell and sums to the number column
times a constant; the file's ``Dilution`` is applied once here
(``dilution_applied_by='exoimage'``), so concentration = column sum x dilution;
the instrument's medians interpolate the cumulative count between bin
*centres* of the linear bins (``percentile_convention='bin_centres'``), number-
and volume-weighted (volume = number x centre^3).
"""

from __future__ import annotations

import re
from pathlib import Path, PureWindowsPath

import numpy as np
import pandas as pd

from ._common import (BIN_COLUMNS, NtaReadError, NtaResult, empty_frame, flagged, read_text, strict_float,
                      to_float)
from .stats import PRINT_TOLERANCE_NM, percentiles_from_bins

__all__ = ["read_zetaview_txt", "is_zetaview_txt", "parse_header"]

TABLE_HEADER = "size / nm"
#: header key (lower case) -> numeric column of :attr:`NtaResult.videos`
NUMERIC_KEYS = {
    "temperature": "temperature_C",
    "viscosity": "viscosity_cP",           # written in mPas = cP
    "ph": "ph",
    "conductivity": "conductivity_uS_per_cm",
    "positions": "positions",
    "number of traces": "completed_tracks",
    "detected particles": "detected_particles",
    "laser wavelength nm": "laser_wavelength_nm",
    "sensitivity": "sensitivity",
    "shutter": "shutter",
    "gain": "gain",
    "minimum brightness": "min_brightness",
    "minimum area": "min_area_px",
    "maximum area": "max_area_px",
    "minimum tracelength": "min_track_length",
    "concentration correction factor": "concentration_correction_factor",
    "scattering intensity": "scattering_intensity",
    "micrometer per pixel": "um_per_px",
    "microscope position": "microscope_position",
}
TEXT_KEYS = {
    "particle drift check result": "drift_check_result",
    "cell check result": "cell_check_result",
    "sop": "sop",
}
#: header entries whose value is a verdict kept in the warnings table when not good
VERDICT_KEYS = ("particle drift check result", "cell check result")
#: the instrument's printed medians: ``Median Number (D50)`` -> ``d50_nm``,
#: ``Median Volume (D50)`` -> ``volume_d50_nm``, ``Median Concentration (D50)``
#: -> ``concentration_d50_nm`` (and D10/D90 the same way where a version prints them)
PRINTED_D = re.compile(r"^(?:median\s+)?(number|concentration|volume|area)\s*\(\s*d\s*(\d{1,2})\s*\)$", re.I)
_KEY_CELL = re.compile(r"^(?P<key>[^\t]*?[^\s:\d.,+-][^\t]*?)\s*:+$")


def is_zetaview_txt(text: str) -> bool:
    """True when ``text`` looks like a ZetaView export (header keys and size table)."""
    head = text[:20000].lower()
    return TABLE_HEADER in head and ("zetaview" in head or "dilution:" in head or "original file:" in head)


def parse_header(lines) -> dict:
    """``Key: value`` pairs of a ZetaView header, several per line where the software writes them.

    Each tab-separated cell that ends in one or more colons (and is not a
    number or a time) starts a key; the cells up to the next key are its value,
    joined by a space. The first occurrence of a key wins.

    Parameters
    ----------
    lines : iterable of str
        Header lines (before the size table).

    Returns
    -------
    dict
        Key as written (without the colons) -> value (stripped).
    """
    meta: dict = {}
    for line in lines:
        cells = [c.strip() for c in line.rstrip("\r\n").split("\t")]
        key, value = None, []
        for i, cell in enumerate(cells):
            m = _KEY_CELL.match(cell)
            if m is None and i == 0 and ":" in cell:
                # 'Key: value' in one cell (no tab after the colon)
                k, _, rest = cell.partition(":")
                m = _KEY_CELL.match(k.strip() + ":") if k.strip() else None
                if m:
                    cell_value = rest.lstrip(":").strip()
                    key, value = m.group("key").strip(), ([cell_value] if cell_value else [])
                    continue
            if m is not None:
                if key is not None:
                    meta.setdefault(key, " ".join(v for v in value if v))
                key, value = m.group("key").strip(), []
            elif key is not None:
                value.append(cell)
        if key is not None:
            meta.setdefault(key, " ".join(v for v in value if v))
    return meta


def _uses_decimal_comma(rows) -> bool:
    return any(re.fullmatch(r"[-+]?\d+,\d+([eE][-+]?\d+)?", cell) for row in rows[:20] for cell in row)


def _column(columns, name, path, required=True):
    hits = [i for i, c in enumerate(columns) if c.lower().startswith(name)]
    if not hits:
        if required:
            raise NtaReadError(path, f"size table has no '{name}' column (columns {columns})")
        return None
    return hits[0]


def read_zetaview_txt(path, sample: str | None = None, *, _text: str | None = None) -> NtaResult:
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
        and logarithmic (``scale='log'``) series. ``videos`` has the file's
        printed medians (``d50_nm`` from ``Median Number (D50)``,
        ``volume_d50_nm``, ``concentration_d50_nm``) and ``particles_per_frame``
        (``Average Number of Particles``).

    Raises
    ------
    NtaReadError
        Not a ZetaView export, no size table, a truncated table (no
        logarithmic part after the ``-1.000E+0`` separator, short rows), text
        or a negative number in the size table, a dilution that is not a
        positive number.
    """
    p, text = (Path(path), _text) if _text is not None else read_text(path)
    if not is_zetaview_txt(text):
        raise NtaReadError(p, "not a ZetaView .txt export (no 'Size / nm' table with a ZetaView header)")
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.strip().lower().startswith(TABLE_HEADER)), None)
    if start is None:
        raise NtaReadError(p, "no 'Size / nm' size-distribution table")
    columns = [c.strip() for c in lines[start].split("\t") if c.strip()]
    i_size = 0
    i_num = _column(columns, "number", p)
    i_conc = _column(columns, "concentration", p)
    need = max(i_num, i_conc) + 1
    data_rows = []
    for line in lines[start + 1:]:
        cells = [c.strip() for c in line.split("\t")]
        while cells and not cells[-1]:
            cells.pop()
        if not cells or cells[0].lower().startswith(TABLE_HEADER):
            continue                     # blank lines; the header repeated before the log bins
        data_rows.append(cells)
    decimal_comma = _uses_decimal_comma(data_rows)
    meta = parse_header(lines[:start])

    lin, log = [], []
    target = lin
    for cells in data_rows:
        first = to_float(cells[0], decimal_comma)
        if np.isnan(first):
            break                        # the table ends at the first line that is not a bin
        if first == -1:
            target = log
            continue
        if len(cells) < need:
            raise NtaReadError(p, f"truncated size table: row {cells[0]!r} has {len(cells)} of "
                                  f"{len(columns)} columns")
        where = f"size table row {cells[0]!r}"
        target.append([strict_float(cells[i_size], p, where + " size", decimal_comma=decimal_comma),
                       strict_float(cells[i_num], p, where + " number", decimal_comma=decimal_comma),
                       strict_float(cells[i_conc], p, where + " concentration", decimal_comma=decimal_comma)])
    if not lin:
        raise NtaReadError(p, "the size table has no rows")
    if not log:
        raise NtaReadError(p, "no logarithmic bins after the -1.000E+0 separator (truncated file?)")

    lowkeys = {k.lower(): v for k, v in meta.items()}
    if sample is None:
        sample = lowkeys.get("sample") or p.stem
    original = lowkeys.get("original file", "").split(" Section")[0].strip()
    video = PureWindowsPath(original).stem if original else p.stem
    dil_text = lowkeys.get("dilution", "").strip()
    if dil_text:
        dilution = strict_float(dil_text.split()[0], p, "header Dilution::", decimal_comma=decimal_comma)
        if dilution <= 0:
            raise NtaReadError(p, f"header Dilution:: {dil_text!r} is not a positive dilution factor")
    else:
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
            "dilution_factor": dilution, "dilution_applied_by": applied_by,
            "percentile_convention": "bin_centres"}, columns=BIN_COLUMNS))
    bins = pd.concat(bins_parts, ignore_index=True)

    lin_arr = np.array(lin)
    measured = float(lin_arr[:, 2].sum())
    row = {"sample": sample, "video": video}
    for key, col in NUMERIC_KEYS.items():
        row[col] = to_float(lowkeys.get(key, ""), decimal_comma)
    ppf_text = lowkeys.get("average number of particles", "").strip()
    row["particles_per_frame"] = (strict_float(ppf_text.split()[0], p, "header Average Number of Particles",
                                               decimal_comma=decimal_comma) if ppf_text else np.nan)
    for key, col in TEXT_KEYS.items():
        row[col] = lowkeys.get(key, "")
    row["frame_rate_fps"] = _camera_number(lowkeys.get("camera", ""), "FRate", decimal_comma)
    if np.isnan(row["frame_rate_fps"]):
        row["frame_rate_fps"] = _camera_number(lowkeys.get("camera", ""), "FpSec", decimal_comma)
    row["d50_nm"] = np.nan
    for key, value in meta.items():
        m = PRINTED_D.match(key.strip())
        if m:
            weight = m.group(1).lower()
            col = ("" if weight == "number" else f"{weight}_") + f"d{int(m.group(2))}_nm"
            if col not in row or np.isnan(row[col]):
                row[col] = to_float(value, decimal_comma)
    row.update({"dilution_factor": dilution,
                "dilution_applied_by": applied_by, "concentration_per_ml": measured * factor,
                "concentration_measured_per_ml": measured,
                "particles_counted": float(lin_arr[:, 1].sum())})
    videos = pd.DataFrame([row])

    raw = pd.DataFrame([{"sample": sample, "video": video, "section": "header", "item": k, "value": v}
                        for k, v in meta.items()], columns=["sample", "video", "section", "item", "value"])
    verdict = raw["item"].str.lower().isin(VERDICT_KEYS) & raw["value"].map(flagged)
    warnings = raw[verdict].reset_index(drop=True)
    software = meta.get("Software", "")
    m = re.search(r"version\s*([^)\s]+(?:\s+SP\d+)?)", software, re.I)
    software = ("ZetaView " + m.group(1)) if m else software
    notes = ["D10/D50/D90: percentile convention bin_centres (ZetaView 8.05: cumulative count interpolated "
             "between the centres of the linear bins)"]
    if np.isfinite(row["d50_nm"]):
        d50 = float(percentiles_from_bins(lin_arr[:, 0], lin_arr[:, 2], 0.5, convention="bin_centres")[0])
        dev = abs(d50 - row["d50_nm"])
        notes[0] += (f"; reproduces the file's Median Number (D50) {row['d50_nm']:.3f} nm (|d| {dev:.3f} nm)"
                     if dev <= PRINT_TOLERANCE_NM else
                     f"; does NOT reproduce the file's Median Number (D50) {row['d50_nm']:.3f} nm "
                     f"(recomputed {d50:.3f} nm)")

    return NtaResult(
        path=str(p), instrument="zetaview", software_version=software, sample=sample, videos=videos,
        bins=bins, instrument_summary=empty_frame(["sample", "statistic", "average", "standard_error"]),
        bins_average=empty_frame(["sample", "bin_nm", "concentration_average_per_ml", "concentration_se_per_ml"]),
        percentiles=empty_frame(["sample", "video", "percentile", "size_nm"]),
        raw=raw, warnings=warnings, metadata=meta, notes=notes)


def _camera_number(camera: str, key: str, decimal_comma: bool) -> float:
    """A number after ``key`` in the ZetaView ``Camera:`` line (``FpSec 30 #Cycles 2 ...``)."""
    m = re.search(re.escape(key) + r"\s+([-+0-9.,Ee]+)", camera)
    return to_float(m.group(1), decimal_comma) if m else float("nan")
