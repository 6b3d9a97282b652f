"""Read Malvern NanoSight NTA 3.x ``ExperimentSummary.csv`` exports.

The file is a cp1252 CSV whose first line is ``NTA Experiment Summary File``.
It is parsed by its section labels (``[Results]``, ``[Size Data]``, ...) and
row labels, never by row numbers: NTA 3.2, 3.3 and 3.4 put the same rows at
different positions, pad rows to different widths and 3.4 adds rows.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ._common import (BIN_COLUMNS, MAX_NTA_PARTICLE_BYTES, NtaReadError, NtaResult, flagged, read_text,
                      strict_float, to_float)
from .stats import PERCENTILE_CONVENTIONS, PRINT_TOLERANCE_NM, percentiles_from_bins

__all__ = ["read_nanosight_summary", "read_nanosight_particle_csv", "is_nanosight_summary"]

FIRST_LINES = ("NTA Experiment Summary File", "NTA Single Analysis Summary File")
REQUIRED_SECTIONS = ("Experiment Details", "Conditions", "Settings", "Results", "Size Data")
MESSAGE_SECTIONS = ("Concentration Warnings", "Information")

#: (section, row label) -> column of :attr:`NtaResult.videos`; numeric columns.
NUMERIC_ROWS = {
    ("Conditions", "Temperature/C"): "temperature_C",
    ("Conditions", "Viscosity/cP"): "viscosity_cP",
    ("Conditions", "Camera Level"): "camera_level",
    ("Conditions", "Slider Shutter"): "slider_shutter",
    ("Conditions", "Slider Gain"): "slider_gain",
    ("Conditions", "Shutter/ms"): "shutter_ms",
    ("Conditions", "Frame rate/fps"): "frame_rate_fps",
    ("Conditions", "Syringe Pump Speed/AU"): "syringe_pump_speed_au",
    ("Settings", "Detection Threshold"): "detection_threshold",
    ("Settings", "Max Jump Distance"): "max_jump_distance_px",
    ("Settings", "First frame"): "first_frame",
    ("Settings", "Total frames analysed"): "frames_analysed",
    ("Results", "Centres per frame"): "centres_per_frame",
    ("Results", "Completed tracks"): "completed_tracks",
    ("Results", "X-Drift (pix/frame)"): "drift_x_px_per_frame",
    ("Results", "Y-Drift (pix/frame)"): "drift_y_px_per_frame",
}
#: Rows kept as text (may read "Auto").
TEXT_ROWS = {
    ("Conditions", "Camera Type"): "camera_type",
    ("Conditions", "Laser Type"): "laser_type",
    ("Settings", "Blur"): "blur",
    ("Settings", "Min Track Length"): "min_track_length",
    ("Settings", "Max Jump Mode"): "max_jump_mode",
}
#: Size-data rows (number weighting) -> column.
SIZE_ROWS = {"Mean": "mean_nm", "Mode": "mode_nm", "SD": "sd_nm", "D10": "d10_nm",
             "D50": "d50_nm", "D90": "d90_nm", "Valid Tracks": "valid_tracks"}
DILUTION_LABEL = "dilution factor"
CONCENTRATION_LABEL = "concentration (particles / ml)"
#: Bin sums must match the reported concentration this closely (the reported
#: value is rounded to 3 significant figures), else the table is incomplete.
BIN_SUM_TOLERANCE = 0.02
#: Percentile convention of each NanoSight software version (major, minor), as measured on the
#: real exports in ../shared/data/nta (docs/nta.md): NTA 3.2 prints D values one 1-nm bin below
#: its bin table; NTA 3.4 (and 3.3, per issue 16's held-back files) between bin edges.
VERSION_CONVENTIONS = {(3, 2): "bin_edges_minus_one_bin", (3, 3): "bin_edges", (3, 4): "bin_edges"}
NOT_RECORDED = ("not recorded", "")


def is_nanosight_summary(text: str) -> bool:
    """True when ``text`` starts like a NanoSight NTA summary file."""
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    return first.split(",")[0].strip() in FIRST_LINES


def _rows(text: str) -> list[list[str]]:
    """CSV rows with trailing empty cells removed."""
    out = []
    for row in csv.reader(text.splitlines()):
        while row and not row[-1].strip():
            row.pop()
        out.append(row)
    return out


def _sections(rows) -> list[tuple[str, list, list]]:
    """Split rows at ``[Label]`` lines: list of (label, header row, body rows)."""
    sections = []
    for row in rows:
        first = row[0].strip() if row else ""
        m = re.fullmatch(r"\[(.+)\]", first)
        if m:
            sections.append((m.group(1).strip(), row, []))
        elif sections:
            sections[-1][2].append(row)
    return sections


def _find(body, label, *, prefix=False):
    """First row of ``body`` whose first cell is ``label`` (case-insensitive)."""
    lab = label.lower()
    for row in body:
        if row:
            cell = row[0].strip().lower()
            if cell == lab or (prefix and cell.startswith(lab)):
                return row
    return None


def _cells(row, n):
    """The ``n`` per-video cells of a row (padded with '')."""
    vals = [c.strip() for c in (row[1:n + 1] if row else [])]
    return vals + [""] * (n - len(vals))


def _avg_se(header, row, n):
    """Average and standard-error cells of a row, located by the section header."""
    if not row:
        return float("nan"), float("nan")
    labels = [c.strip().lower() for c in header]
    ia = labels.index("average") if "average" in labels else n + 1
    ie = labels.index("standard error") if "standard error" in labels else n + 2
    get = lambda i: to_float(row[i]) if i < len(row) else float("nan")  # noqa: E731
    return get(ia), get(ie)


def _size_block(path, body, weighting="number"):
    """One weighting's block of ``[Size Data]``: stats rows, bins, percentiles (None: no such block)."""
    # a [Size Data] section may hold several weightings (Number, Surface Area, Volume)
    starts = [i for i, r in enumerate(body) if r and r[0].strip().lower() == "weighting"]
    if not starts and weighting != "number":
        return None
    if starts:
        chosen = [i for i in starts if len(body[i]) > 1 and body[i][1].strip().lower() == weighting]
        if not chosen:
            if weighting != "number":
                return None
            raise NtaReadError(path, "[Size Data] has no number-weighted distribution")
        i0 = chosen[0]
        later = [i for i in starts if i > i0]
        block = body[i0:later[0] if later else len(body)]
    else:
        block = body
    return block


def _bin_table(path, block, n):
    """Bin centres, per-video concentrations, average and SE from ``Bin centre (nm)``."""
    head = next((i for i, r in enumerate(block) if r and r[0].strip().lower().startswith("bin centre")), None)
    if head is None:
        raise NtaReadError(path, "[Size Data] has no 'Bin centre (nm)' table")
    data = []
    for r in block[head + 1:]:
        if not r or not r[0].strip():
            break
        x = to_float(r[0])
        if np.isnan(x):
            break
        if len(r) < n + 1:
            raise NtaReadError(path, f"truncated bin table: row {r[0]!r} has {len(r) - 1} of {n} video columns")
        where = f"[Size Data] bin {r[0].strip()!r}"
        x = strict_float(r[0], path, where + " centre")
        row = [x] + [strict_float(c, path, f"{where}, video column {j + 1}") for j, c in enumerate(r[1:n + 1])]
        row += [strict_float(c, path, f"{where}, average/SE column", blank_ok=True) for c in r[n + 1:n + 3]]
        data.append(row + [np.nan] * max(0, n + 3 - len(row)))
    if not data:
        raise NtaReadError(path, "the 'Bin centre (nm)' table is empty")
    return np.array(data, dtype=float)


def _percentile_table(path, block, n):
    head = next((i for i, r in enumerate(block) if r and r[0].strip().lower() == "percentile"), None)
    if head is None:
        return None
    data = []
    for r in block[head + 1:]:
        if not r or not r[0].strip() or np.isnan(to_float(r[0])):
            break
        where = f"[Size Data] percentile {r[0].strip()!r}"
        data.append([strict_float(r[0], path, where)]
                    + [strict_float(c, path, f"{where}, video {j + 1}", blank_ok=True)
                       for j, c in enumerate(_cells(r, n))])
    return np.array(data, dtype=float) if data else None


def read_nanosight_summary(path, sample: str | None = None, *, with_particle_files: bool = True,
                           _text: str | None = None) -> NtaResult:
    """Read a NanoSight NTA 3.x ``ExperimentSummary.csv``.

    Parameters
    ----------
    path : str or Path
        The summary file.
    sample : str, optional
        Sample name; default the file's ``Sample Name``/``Sample Description``,
        else the experiment name, else the file name stem.
    with_particle_files : bool
        Also read ``<video>_ParticleData.csv`` and ``<video>_AllTracks.csv``
        found in the same folder.

    Returns
    -------
    NtaResult
        Concentrations in the file are already corrected by the instrument for
        the dilution it recorded (``dilution_applied_by='instrument'``); when
        it recorded none (``Not recorded``) they are what was measured
        (``dilution_applied_by='none'``), see :func:`apply_dilution`.

    Raises
    ------
    NtaReadError
        Not a NanoSight summary, a required section missing, a truncated or
        inconsistent table; one line naming the file.
    """
    p, text = (Path(path), _text) if _text is not None else read_text(path)
    if not is_nanosight_summary(text):
        first = text.lstrip("\ufeff").split("\n", 1)[0].strip()[:60]
        raise NtaReadError(p, f"not a NanoSight NTA ExperimentSummary file (first line {first!r})")
    # cheap test before the CSV is split into cells (a file without its sections costs nothing more)
    missing = [s for s in REQUIRED_SECTIONS
               if not re.search(r"^[ \t\"]*\[" + re.escape(s) + r"\]", text, re.I | re.M)]
    if missing:
        raise NtaReadError(p, "missing section " + ", ".join(f"[{s}]" for s in missing)
                              + " (truncated file?)")
    rows = _rows(text)
    sections = _sections(rows)
    by_name: dict[str, tuple[list, list]] = {}
    for name, header, body in sections:
        by_name.setdefault(name.lower(), (header, body))
    missing = [s for s in REQUIRED_SECTIONS if s.lower() not in by_name]
    if missing:
        raise NtaReadError(p, "missing section " + ", ".join(f"[{s}]" for s in missing)
                              + " (truncated file?)")
    sec = lambda name: by_name.get(name.lower(), ([], []))  # noqa: E731

    details = sec("Experiment Details")[1]
    size_header, size_body = sec("Size Data")
    fn_row = _find(details, "Filename:") or _find(size_body, "Filename")
    videos = [v.strip() for v in (fn_row[1:] if fn_row else [])
              if v.strip() and v.strip().lower() not in ("average", "standard error")]
    if not videos:
        raise NtaReadError(p, "no video file names ('Filename:' row) in [Experiment Details]")
    n = len(videos)

    metadata = {r[0].strip(): (r[1].strip() if len(r) > 1 else "")
                for r in details if r and r[0].strip() and r[0].strip() not in ("Filename:", "Processed")}
    version_line = rows[1][0] if len(rows) > 1 and rows[1] else ""
    software = metadata.get("Software Version", "")
    if not software or software.lower() == "unknown":
        m = re.search(r"NTA\s+[\d.]+.*", version_line)
        software = m.group(0).strip() if m else software
    if sample is None:
        sample = (metadata.get("Sample Name") or metadata.get("Sample Description")
                  or re.sub(r"\.nano$", "", metadata.get("Experiment Name", "")) or p.stem)

    table = {"sample": [sample] * n, "video": videos}
    for (s, label), col in NUMERIC_ROWS.items():
        table[col] = [to_float(c) for c in _cells(_find(sec(s)[1], label), n)]
    ppf_row = _find(sec("Results")[1], "Particles per frame")
    table["particles_per_frame"] = [strict_float(c, p, f"[Results] particles per frame of video {v}", blank_ok=True)
                                    for v, c in zip(videos, _cells(ppf_row, n))]
    for (s, label), col in TEXT_ROWS.items():
        table[col] = _cells(_find(sec(s)[1], label), n)

    res_header, res_body = sec("Results")
    dil_row = _find(res_body, DILUTION_LABEL, prefix=True)
    conc_row = _find(res_body, CONCENTRATION_LABEL, prefix=True)
    if conc_row is None:
        raise NtaReadError(p, "[Results] has no 'Concentration (Particles / ml)' row")
    dilution = np.array([np.nan if c.strip().lower() in NOT_RECORDED
                         else strict_float(c, p, f"[Results] dilution factor of video {v}")
                         for v, c in zip(videos, _cells(dil_row, n))])
    if (dilution == 0).any():
        raise NtaReadError(p, "[Results] dilution factor 0 (a dilution factor is >= 1; 'Not recorded' means none)")
    conc = np.array([strict_float(c, p, f"[Results] concentration of video {v}")
                     for v, c in zip(videos, _cells(conc_row, n))])
    table["dilution_factor"] = dilution
    table["dilution_applied_by"] = np.where(np.isnan(dilution), "none", "instrument")
    table["concentration_per_ml"] = conc
    table["concentration_measured_per_ml"] = conc / np.where(np.isnan(dilution), 1.0, dilution)

    block = _size_block(p, size_body)
    for label, col in SIZE_ROWS.items():
        table[col] = [to_float(c) for c in _cells(_find(block, label), n)]
    # the instrument's volume-weighted D values: NanoSight builds its volume distribution per particle,
    # not as number x size^3 of the bins (real NTA 3.4: that misses its printed volume D50 by up to 9 nm)
    vblock = _size_block(p, size_body, "volume")
    for label in ("D10", "D50", "D90"):
        table[f"volume_{label.lower()}_nm"] = ([to_float(c) for c in _cells(_find(vblock, label), n)]
                                               if vblock is not None else [np.nan] * n)
    videos_df = pd.DataFrame(table)

    summary_rows = [("concentration_per_ml", _avg_se(res_header, conc_row, n))]
    for label, col in (("Particles per frame", "particles_per_frame"), ("Centres per frame", "centres_per_frame")):
        summary_rows.append((col, _avg_se(res_header, _find(res_body, label), n)))
    size_fn = _find(block, "Filename")
    for label, col in SIZE_ROWS.items():
        if col != "valid_tracks":
            summary_rows.append((col, _avg_se(size_fn or [], _find(block, label), n)))
    instrument_summary = pd.DataFrame(
        [{"sample": sample, "statistic": s, "average": a, "standard_error": e} for s, (a, e) in summary_rows])

    arr = _bin_table(p, block, n)
    bin_nm = arr[:, 0]
    width = float(np.median(np.diff(bin_nm))) if len(bin_nm) > 1 else 1.0
    per_video = arr[:, 1:n + 1]
    sums = per_video.sum(axis=0)
    for v, s_, c in zip(videos, sums, conc):
        if np.isfinite(c) and c > 0 and abs(s_ / c - 1) > BIN_SUM_TOLERANCE:
            raise NtaReadError(p, f"bin table of video {v} sums to {100 * s_ / c:.0f} % of its reported "
                                  "concentration (truncated or edited file?)")
    convention, note = _convention(software, bin_nm, width, per_video, videos_df)
    notes = [note]
    # per-bin values are particles/ml per 1-nm bin, already dilution-corrected like the totals
    bins = pd.DataFrame({
        "sample": sample,
        "video": np.repeat(videos, len(bin_nm)),
        "scale": "linear",
        "bin_nm": np.tile(bin_nm, n),
        "bin_width_nm": width,
        "concentration_per_ml": per_video.T.ravel(),
        "concentration_measured_per_ml": (per_video / np.where(np.isnan(dilution), 1.0, dilution)).T.ravel(),
        "dilution_factor": np.repeat(dilution, len(bin_nm)),
        "dilution_applied_by": np.repeat(videos_df["dilution_applied_by"].to_numpy(), len(bin_nm)),
        "percentile_convention": convention,
    }, columns=BIN_COLUMNS)
    bins_average = pd.DataFrame({"sample": sample, "bin_nm": bin_nm,
                                 "concentration_average_per_ml": arr[:, n + 1] if arr.shape[1] > n + 1 else np.nan,
                                 "concentration_se_per_ml": arr[:, n + 2] if arr.shape[1] > n + 2 else np.nan})

    pct = _percentile_table(p, block, n)
    if pct is None:
        raise NtaReadError(p, "[Size Data] has no percentile table (truncated file?)")
    if len(pct) < 101 or pct[-1, 0] != 100:
        raise NtaReadError(p, f"percentile table stops at {pct[-1, 0]:g} of 100 (truncated file?)")
    percentiles = pd.DataFrame({"sample": sample, "video": np.repeat(videos, len(pct)),
                                "percentile": np.tile(pct[:, 0], n), "size_nm": pct[:, 1:].T.ravel()})

    raw_rows = []
    for name, _header, body in sections:
        for r in body:
            if r and r[0].strip() and len(r) > 1 and name.lower() not in ("size data", "experiment details"):
                for v, val in zip(videos, _cells(r, n)):
                    raw_rows.append({"sample": sample, "video": v, "section": name,
                                     "item": r[0].strip(), "value": val})
    raw = pd.DataFrame(raw_rows, columns=["sample", "video", "section", "item", "value"])
    warn_mask = raw["section"].isin(MESSAGE_SECTIONS) & raw["value"].map(flagged)
    # 'Vibration correction applied: Yes' is the remedy, not a problem
    warn_mask &= ~raw["item"].str.lower().str.startswith("vibration correction")
    warnings = raw[warn_mask].reset_index(drop=True)

    particles = tracks = None
    if with_particle_files:
        particles = _sibling_tables(p.parent, videos, "ParticleData", notes)
        tracks = _sibling_tables(p.parent, videos, "AllTracks", notes)

    return NtaResult(path=str(p), instrument="nanosight", software_version=software, sample=sample,
                     videos=videos_df, bins=bins, instrument_summary=instrument_summary,
                     bins_average=bins_average, percentiles=percentiles, raw=raw, warnings=warnings,
                     metadata=metadata, particles=particles, tracks=tracks, notes=notes)


def _version(software: str):
    m = re.search(r"NTA\s*(\d+)\.(\d+)", software or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def _convention(software, bin_nm, width, per_video, videos_df) -> tuple[str, str]:
    """The percentile convention for this file and a one-line note on how it was chosen.

    The software version decides (:data:`VERSION_CONVENTIONS`); the file's own
    printed D10/D50/D90 (videos with particles) are recomputed with every
    convention to say whether the chosen one reproduces them. A version not in
    the table takes the convention that reproduces its printed values (else
    ``bin_edges``); so does a listed version whose printed values contradict
    its usual rule but match another (said in the note).
    """
    version = _version(software)
    printed = videos_df[["d10_nm", "d50_nm", "d90_nm"]].to_numpy(float)
    live = (per_video.sum(axis=0) > 0) & np.isfinite(printed).all(axis=1) & (printed > 0).all(axis=1)
    err = {}
    for conv in PERCENTILE_CONVENTIONS:
        if conv == "bin_centres" or not live.any():
            continue
        got = np.array([percentiles_from_bins(bin_nm, per_video[:, j], [0.1, 0.5, 0.9], width, conv)
                        for j in np.flatnonzero(live)])
        err[conv] = float(np.max(np.abs(got - printed[live])))
    usual = VERSION_CONVENTIONS.get(version)
    label = f"NTA {version[0]}.{version[1]}" if version else f"software {software or 'unknown'!r}"
    fits = [c for c, e in sorted(err.items(), key=lambda t: t[1]) if e <= PRINT_TOLERANCE_NM]
    if usual and (usual in fits or not fits):
        conv = usual
        how = f"{label} convention"
    elif fits:
        conv = fits[0]
        how = (f"{label} normally uses {usual}, but this file's printed D values match {conv}" if usual else
               f"{label} not verified against real exports; chosen because it reproduces the file's printed D values")
    else:
        conv = "bin_edges"
        how = f"{label} not verified against real exports and no rule reproduces its printed D values"
    if conv in err:
        ok = err[conv] <= PRINT_TOLERANCE_NM
        check = (f"reproduces the file's printed D10/D50/D90 (max |d| {err[conv]:.3f} nm)" if ok
                 else f"does NOT reproduce the file's printed D10/D50/D90 (max |d| {err[conv]:.2f} nm)")
    else:
        check = "no printed D values to compare with"
    return conv, f"D10/D50/D90: percentile convention {conv} ({how}); {check}"


def _snake(name: str) -> str:
    s = name.strip().lower().replace("/", "_").replace("?", "")
    return re.sub(r"[^0-9a-z^]+", "_", s).strip("_")


def read_nanosight_particle_csv(path) -> pd.DataFrame:
    """Read a per-video ``*_ParticleData.csv`` or ``*_AllTracks.csv`` (minimal).

    Column names are lower-cased with non-alphanumerics as ``_``
    (``'Size/nm'`` -> ``size_nm``, ``'Included in distribution?'`` ->
    ``included_in_distribution``); ``True``/``False`` columns become bool.
    Files over :data:`~exoimage.nta._common.MAX_NTA_PARTICLE_BYTES` are
    refused before reading; the rest is parsed by pandas' C reader.

    Raises
    ------
    NtaReadError
        Unreadable, too large or empty table.
    """
    p, text = read_text(path, max_bytes=MAX_NTA_PARTICLE_BYTES, max_lines=None,
                        what="a NanoSight per-video particle table")
    try:
        df = pd.read_csv(io.StringIO(text), skip_blank_lines=True, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        msg = str(exc).strip().splitlines()
        raise NtaReadError(p, f"particle table not readable ({msg[0][:120] if msg else type(exc).__name__})") from None
    del text
    df = df.dropna(how="all")
    if not len(df):
        raise NtaReadError(p, "particle table has no data rows")
    df.columns = [_snake(str(c)) for c in df.columns]
    for c in df.columns:
        if df[c].dtype == object:
            low = df[c].astype(str).str.strip().str.lower()
            if low.isin(["true", "false"]).all():
                df[c] = low == "true"
    return df.reset_index(drop=True)


def _sibling_tables(folder: Path, videos, kind: str, notes: list) -> pd.DataFrame | None:
    """Per-video tables next to a summary; one that cannot be read is left out and noted."""
    frames = []
    for v in videos:
        f = folder / f"{v}_{kind}.csv"
        if f.is_file():
            try:
                df = read_nanosight_particle_csv(f)
            except NtaReadError as exc:
                notes.append(f"{f.name} not read: {exc.problem}")
                continue
            df.insert(0, "video", v)
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else None
