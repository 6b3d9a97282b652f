"""Shared pieces of the NTA readers: the result container, errors, text decoding."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from ..io import ImageReadError

__all__ = ["NtaReadError", "NtaResult", "apply_dilution", "read_text", "to_float"]

#: Columns of :attr:`NtaResult.bins`, in order.
BIN_COLUMNS = [
    "sample", "video", "scale", "bin_nm", "bin_width_nm", "concentration_per_ml",
    "concentration_measured_per_ml", "dilution_factor", "dilution_applied_by",
]


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


def read_text(path) -> tuple[Path, str]:
    """Read an NTA export as text (cp1252, falling back to Latin-1).

    Raises
    ------
    NtaReadError
        Missing, empty or binary files.
    """
    p = Path(path)
    if not p.exists():
        raise NtaReadError(p, "file not found")
    if p.is_dir():
        raise NtaReadError(p, "is a folder, not an NTA export")
    data = p.read_bytes()
    if not data.strip():
        raise NtaReadError(p, "file is empty")
    if b"\x00" in data[:4096]:
        raise NtaReadError(p, "binary file, not an NTA text export "
                              "(expected a NanoSight ExperimentSummary.csv or a ZetaView .txt)")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
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


def flagged(value: str, ok=("", "ok", "no", "good", "very good", "none")) -> bool:
    """An instrument message that is not one of the all-clear values."""
    return str(value).strip().lower() not in ok


def empty_frame(columns) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
