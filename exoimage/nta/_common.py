"""Shared pieces of the NTA readers: the result container, errors, text decoding."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from ..io import ImageReadError, regular_file_stat

__all__ = ["NtaReadError", "NtaResult", "apply_dilution", "read_text", "to_float", "strict_float",
           "MAX_NTA_TEXT_BYTES", "MAX_NTA_LINES", "MAX_NTA_PARTICLE_BYTES"]

#: Columns of :attr:`NtaResult.bins`, in order. ``percentile_convention``
#: names the rule by which D10/D50/D90 are read off these bins so that they
#: match what the instrument software prints (see :mod:`exoimage.nta.stats`).
BIN_COLUMNS = [
    "sample", "video", "scale", "bin_nm", "bin_width_nm", "concentration_per_ml",
    "concentration_measured_per_ml", "dilution_factor", "dilution_applied_by", "percentile_convention",
]

#: Largest NTA summary export read (NanoSight ``ExperimentSummary.csv``, ZetaView ``.txt``), bytes.
#: The real exports in ../shared/data/nta are 39-438 kB (a 5-video NTA 3.4 summary with six
#: weightings is 438 kB, ~90 kB per video); 8 MiB holds a summary of ~90 such videos. Parsing an
#: accepted file costs at most ~30x its size in memory (measured on hostile files of two-character
#: cells, the worst case: +230 MB for 8 MiB; docs/nta.md); a larger file is refused from its size
#: on disk before a byte is read.
MAX_NTA_TEXT_BYTES = 8 * 1024 * 1024
#: Largest number of lines in a summary export: the real ones have 1,478 (ZetaView) to 6,775
#: (NanoSight NTA 3.4, six weightings of 1,000 bins) lines; a summary's length does not grow with
#: the number of videos (they are columns). Checked before the text is split into lines.
MAX_NTA_LINES = 100_000
#: Largest per-video ``_ParticleData.csv`` / ``_AllTracks.csv`` read (bytes). One row per particle
#: or per track point (frames x particles per frame: 1,500 x 100 = 150,000 rows, ~10 MB); parsed
#: by pandas' C reader into numeric columns.
MAX_NTA_PARTICLE_BYTES = 128 * 1024 * 1024


class NtaReadError(ImageReadError):
    """An NTA export could not be read; ``str(err)`` is one line naming the file.

    A subclass of :class:`exoimage.io.ImageReadError`, so code that already
    reports unreadable images reports unreadable NTA files the same way.
    """


@dataclass
class NtaResult:
    """Everything read from one NTA export, as tidy tables.

    Attributes
    ----------
    path : str
        File the result was read from.
    instrument : str
        ``'nanosight'`` or ``'zetaview'``.
    software_version : str
        As written by the instrument software ('' when absent).
    sample : str
        Sample name (file's own, else the file name stem, or as given).
    videos : DataFrame
        One row per video (NanoSight) or per measurement file (ZetaView):
        conditions, settings and results; see ``docs/nta.md`` for the columns.
    bins : DataFrame
        One row per size bin and video, columns :data:`BIN_COLUMNS`.
        ``concentration_per_ml`` is particles per ml of the *undiluted*
        sample in that bin, with the dilution applied exactly once;
        ``dilution_applied_by`` says by whom (``'instrument'``,
        ``'exoimage'`` or ``'none'`` when no dilution is known).
    instrument_summary : DataFrame
        The instrument's own average and standard error across videos:
        ``sample, statistic, average, standard_error`` (NanoSight only).
    bins_average : DataFrame
        The instrument's own per-bin average and standard error:
        ``sample, bin_nm, concentration_average_per_ml, concentration_se_per_ml``.
    percentiles : DataFrame
        The instrument's percentile table: ``sample, video, percentile, size_nm``.
    raw : DataFrame
        Every per-video entry of the file verbatim:
        ``sample, video, section, item, value`` (strings).
    warnings : DataFrame
        The instrument's warnings and flags, verbatim, only those that are
        not ``OK``/``No``/``Good``: ``sample, video, section, item, value``.
    metadata : dict
        File-level key/value pairs (experiment details, ZetaView header).
    particles : DataFrame or None
        Per-particle rows from ``*_ParticleData.csv`` files found next to a
        NanoSight summary (column ``video`` added), else None.
    tracks : DataFrame or None
        Per-track-point rows from ``*_AllTracks.csv`` files, else None.
    notes : list of str
        What exoimage decided while reading, one line each (the percentile
        convention used and whether it reproduces the file's own D values; a
        per-video table that was not read, and why).
    """

    path: str
    instrument: str
    software_version: str
    sample: str
    videos: pd.DataFrame
    bins: pd.DataFrame
    instrument_summary: pd.DataFrame
    bins_average: pd.DataFrame
    percentiles: pd.DataFrame
    raw: pd.DataFrame
    warnings: pd.DataFrame
    metadata: dict = field(default_factory=dict)
    particles: pd.DataFrame | None = None
    tracks: pd.DataFrame | None = None
    notes: list = field(default_factory=list)

    @property
    def n_videos(self) -> int:
        """Number of videos (NanoSight) or measurement files (ZetaView)."""
        return int(len(self.videos))


def apply_dilution(result: NtaResult, dilution_factor: float) -> NtaResult:
    """Return a copy of ``result`` with a dilution the file did not record.

    The dilution is applied exactly once: when the file already recorded one
    (the instrument, or an earlier call, applied it) a matching factor changes
    nothing and a different one raises.

    Parameters
    ----------
    result : NtaResult
    dilution_factor : float
        Stock volume fraction inverse (1000 means 1 µl in 1 ml), > 0.

    Returns
    -------
    NtaResult

    Raises
    ------
    ValueError
        The factor is not a positive number, or differs from one already applied.
    """
    f = float(dilution_factor)
    if not math.isfinite(f) or f <= 0:
        raise ValueError(f"dilution factor must be a positive number, got {dilution_factor!r}")
    known = result.videos["dilution_factor"].dropna().unique()
    if len(known):
        if all(math.isclose(k, f, rel_tol=1e-9) for k in known):
            return result
        raise ValueError(f"{result.path}: dilution already applied ({', '.join(f'{k:g}' for k in known)}); "
                         f"refusing to apply {f:g} on top")
    videos = result.videos.copy()
    videos["dilution_factor"] = f
    videos["dilution_applied_by"] = "exoimage"
    videos["concentration_per_ml"] = videos["concentration_measured_per_ml"] * f
    bins = result.bins.copy()
    bins["dilution_factor"] = f
    bins["dilution_applied_by"] = "exoimage"
    bins["concentration_per_ml"] = bins["concentration_measured_per_ml"] * f
    summ = result.instrument_summary.copy()
    conc = summ["statistic"] == "concentration_per_ml"
    summ.loc[conc, ["average", "standard_error"]] *= f
    avg = result.bins_average.copy()
    avg[["concentration_average_per_ml", "concentration_se_per_ml"]] *= f
    return replace(result, videos=videos, bins=bins, instrument_summary=summ, bins_average=avg)


def read_text(path, max_bytes: int = MAX_NTA_TEXT_BYTES, max_lines: int | None = MAX_NTA_LINES,
              what: str = "an NTA summary export") -> tuple[Path, str]:
    """Read an NTA export as text, refusing files over the size and line limits before parsing.

    Encoding: UTF-8 (with or without BOM) when the bytes are valid UTF-8,
    else cp1252 (NanoSight), else Latin-1 (ZetaView); ASCII files read the
    same in all three.

    Parameters
    ----------
    path : str or Path
    max_bytes : int
        Files larger than this are refused from their size on disk, before
        any byte is read (:data:`MAX_NTA_TEXT_BYTES`).
    max_lines : int or None
        Files with more lines are refused before they are split
        (:data:`MAX_NTA_LINES`); None: no line limit.
    what : str
        What the file should be, for the message.

    Raises
    ------
    NtaReadError
        Missing, not a regular file, too large, too many lines, empty or binary.
    """
    p = Path(path)
    st = regular_file_stat(p, error=NtaReadError, kind="an NTA export")
    if st.st_size > max_bytes:
        raise NtaReadError(p, f"file is {st.st_size / 2 ** 20:.1f} MiB, over the {max_bytes / 2 ** 20:g} MiB "
                              f"limit for {what} (real ones are well under 1 MiB; docs/nta.md)")
    try:
        with open(p, "rb") as fh:
            data = fh.read(max_bytes + 1)        # the file may have grown since stat
    except OSError as exc:
        raise NtaReadError(p, f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(data) > max_bytes:
        raise NtaReadError(p, f"file is over the {max_bytes / 2 ** 20:g} MiB limit for {what}")
    if not data.strip():
        raise NtaReadError(p, "file is empty")
    if b"\x00" in data[:4096]:
        raise NtaReadError(p, "binary file, not an NTA text export "
                              "(expected a NanoSight ExperimentSummary.csv or a ZetaView .txt)")
    if max_lines is not None:
        n_lines = data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
        if n_lines > max_lines:
            raise NtaReadError(p, f"{n_lines} lines, over the {max_lines} line limit for {what} "
                                  "(real ones have under 7,000; docs/nta.md)")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for encoding in ("utf-8", "cp1252", "latin-1"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    return p, text


_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")


def to_float(value, decimal_comma: bool = False) -> float:
    """Leading number of a cell as float, NaN when there is none.

    ``'22.348'`` -> 22.348, ``'23,51 sensed'`` (``decimal_comma``) -> 23.51,
    ``'Not recorded'`` / ``''`` / ``'Auto'`` -> NaN.
    """
    if value is None:
        return float("nan")
    if isinstance(value, (int, float)):
        return float(value)
    s = str(value).strip()
    if decimal_comma:
        s = s.replace(",", ".")
    m = _NUMBER.match(s)
    if not m:
        return float("nan")
    return float(m.group(0))


_STRICT_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def strict_float(value, path, where: str, *, decimal_comma: bool = False, blank_ok: bool = False,
                 negative_ok: bool = False) -> float:
    """A cell that must hold a number, else :class:`NtaReadError` naming the file and the place.

    Parameters
    ----------
    value : str or number
    path : str or Path
        The file, for the message.
    where : str
        Which cell (``"[Results] Concentration, video X"``), for the message.
    decimal_comma : bool
        The file writes decimal commas.
    blank_ok : bool
        An empty cell is NaN instead of an error.
    negative_ok : bool
        Negative numbers are allowed (concentrations and bins never are).

    Raises
    ------
    NtaReadError
        Text, inf/NaN or (unless allowed) a negative number or a blank.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        x = float(value)
    else:
        s = str(value).strip() if value is not None else ""
        if not s:
            if blank_ok:
                return float("nan")
            raise NtaReadError(path, f"{where}: empty where a number belongs")
        t = s.replace(",", ".") if decimal_comma else s
        if not _STRICT_NUMBER.match(t):
            raise NtaReadError(path, f"{where}: {s[:40]!r} where a number belongs")
        x = float(t)
    if not math.isfinite(x):
        raise NtaReadError(path, f"{where}: {x} where a finite number belongs")
    if x < 0 and not negative_ok:
        raise NtaReadError(path, f"{where}: negative value {x:g} (a concentration or count is never negative)")
    return x


def flagged(value: str, ok=("", "ok", "no", "good", "very good", "none")) -> bool:
    """An instrument message that is not one of the all-clear values."""
    return str(value).strip().lower() not in ok


def empty_frame(columns) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
