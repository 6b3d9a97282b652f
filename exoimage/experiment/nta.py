"""The NTA files of an experiment in ``exoimage run``: tables, per-sample numbers, QC rows.

Where the files are read
------------------------
NTA exports are read **in the main process**, not as Dask tasks like the
images: a summary is a few tens of kB and parses in milliseconds, so shipping
it to a worker (and caching the result) would cost more than reading it, and
the tables would not depend on the executor anyway. They are re-read on every
run (a resumed run reads them again; nothing to cache). A file that cannot be
read becomes an error row in ``nta_files`` (the reader's one-line message,
like an unreadable image) and the run goes on.

Dilution
--------
Applied exactly once, by the rules of :mod:`exoimage.nta`: NanoSight files
come corrected by the instrument for the dilution they recorded; ZetaView
files are corrected by the reader with the header's ``Dilution``. A file that
recorded none takes its dilution from ``experiment.toml`` (:func:`file_dilutions`):
a ``[samples.X.nta_dilution]`` entry naming the file or matching its name
(``"d200" = 200``), else ``[samples.X] dilution_factor``. A file that recorded
a different factor than the configured one becomes an error row (never
multiplied twice). ``nta_files`` says where each file's dilution came from.
"""

from __future__ import annotations

import fnmatch
import math
import re
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import sha256_file
from ..nta import NtaReadError, apply_dilution, combine_tables, nta_qc_checks, nta_sample_summary, read_nta
from ..nta._common import BIN_COLUMNS
from ..nta.stats import STAT_COLUMNS

__all__ = ["NtaRun", "read_experiment_nta", "nta_sample_columns", "nta_qc_rows", "nta_size_density",
           "file_dilutions", "NTA_FILE_COLUMNS", "NTA_SAMPLE_COLUMNS", "COMPANION_SUFFIXES"]

NTA_FILE_COLUMNS = ["sample", "file", "status", "error", "instrument", "software_version", "file_sample",
                    "n_videos", "dilution_factor", "dilution_applied_by", "dilution_source", "sha256"]
#: ``[samples.X]`` key of experiment.toml holding per-file / per-pattern NTA dilutions
DILUTION_TABLE_KEY = "nta_dilution"
#: per-video NanoSight tables, read together with their ExperimentSummary, not on their own
COMPANION_SUFFIXES = ("_particledata.csv", "_alltracks.csv")
NTA_SAMPLE_COLUMNS = (
    ["nta_instrument", "nta_n_files", "nta_n_videos", "nta_dilution_factors", "nta_concentration_per_ml",
     "nta_concentration_se_per_ml", "nta_concentration_cv_percent", "nta_particles_per_frame"]
    + [f"nta_{c}{se}" for c in STAT_COLUMNS for se in ("", "_se")]
    + ["nta_volume_d50_nm", "nta_concentration_of", "nta_concentration_dilutions", "nta_concentration_basis",
       "nta_dilution_spread_percent", "nta_n_empty_videos", "nta_empty_video_rule", "nta_d50_nm_nonempty",
       "nta_percentile_convention"]
    + ["tem_nta_d50_ratio", "protein_ug", "volume_ml", "particles_per_ug"])
_LEAD = ["sample", "file", "instrument", "video"]


@dataclass
class NtaRun:
    """Everything read from an experiment's ``nta/`` folder.

    Attributes
    ----------
    results : dict
        sample -> list of :class:`~exoimage.nta.NtaResult` read without error
        (``path`` relative to the experiment folder, ``sample`` the folder name).
    files : DataFrame
        One row per file, :data:`NTA_FILE_COLUMNS`; ``status`` is ``ok``,
        ``error`` (``error`` holds the one-line reason) or ``companion``
        (a per-video ``_ParticleData.csv``/``_AllTracks.csv``).
    videos, bins, warnings : DataFrame
        The readers' tables of all files combined, with ``sample, file,
        instrument`` (``bins`` holds every scale: NanoSight ``linear``,
        ZetaView ``linear`` and ``log``).
    """

    results: dict = field(default_factory=dict)
    files: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=NTA_FILE_COLUMNS))
    videos: pd.DataFrame = field(default_factory=pd.DataFrame)
    bins: pd.DataFrame = field(default_factory=pd.DataFrame)
    warnings: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def samples_with_data(self) -> set:
        return {s for s, rs in self.results.items() if rs}


def _one_line(exc: Exception) -> str:
    if isinstance(exc, NtaReadError):
        return exc.problem
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _arrow_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns mixing text and numbers (NanoSight 'Auto' vs ZetaView 15) as text, for Parquet."""
    df = df.copy()
    for c in df.columns:
        if df[c].dtype == object:
            vals = df[c].dropna()
            if len({type(v) for v in vals}) > 1 or (len(vals) and not isinstance(vals.iloc[0], str)):
                df[c] = df[c].map(lambda v: v if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    return df


def _lead(df: pd.DataFrame) -> pd.DataFrame:
    if not len(df):
        return df
    cols = [c for c in _LEAD if c in df.columns]
    return df[cols + [c for c in df.columns if c not in cols]]


def _is_pattern(key: str) -> bool:
    return any(ch in key for ch in "*?[")


def _matches(key: str, rel: str) -> bool:
    """A ``[samples.X.nta_dilution]`` key matches a file (``rel``: path relative to ``nta/<sample>/``).

    The key is the file's name or relative path; a glob (``*_d20_*``) matched
    against the name; or a token of the name (``d20`` matches
    ``S1_d20-ExperimentSummary.csv`` and ``S1 d20.txt`` but not ``S1_d200.txt``).
    Case-insensitive.
    """
    k, r = key.strip().lower(), rel.lower()
    name = r.rsplit("/", 1)[-1]
    if k in (r, name):
        return True
    if _is_pattern(k):
        return fnmatch.fnmatchcase(name, k) or fnmatch.fnmatchcase(r, k)
    return re.search(r"(?<![0-9a-z])" + re.escape(k) + r"(?![0-9a-z])", name) is not None


def file_dilutions(samples: dict, nta: dict, root=None) -> dict:
    """The configured dilution of every NTA file: ``{path: (factor, source)}``.

    Parameters
    ----------
    samples : dict
        ``[samples]`` of experiment.toml: sample -> its keys; ``nta_dilution``
        is a table ``{file name, path under nta/<sample>/, glob or name token:
        factor}``, ``dilution_factor`` the factor of every other file.
    nta : dict
        sample -> list of NTA file paths (``Experiment.nta``).
    root : str or Path, optional
        The experiment folder (file names are matched relative to
        ``root/nta/<sample>/``; without it, by name only).

    Returns
    -------
    dict
        Path -> (factor, source text); files with no configured dilution are
        left out. Used only for files that recorded none.

    Raises
    ------
    ValueError
        ``nta_dilution`` is not a table of positive numbers, an entry matches
        no file of its sample, or one file is matched by entries with
        different factors (one line naming the file, key and problem).
    """
    out = {}
    where = Path(root) / "experiment.toml" if root is not None else "experiment.toml"
    for sample, cfg in samples.items():
        table = cfg.get(DILUTION_TABLE_KEY)
        rels = {}
        for f in map(Path, nta.get(sample, [])):
            try:
                rels[f] = f.relative_to(Path(root) / "nta" / sample).as_posix() if root is not None else f.name
            except ValueError:
                rels[f] = f.name
        if table is not None:
            if not isinstance(table, dict):
                raise ValueError(f"{where}: [samples.{sample}] {DILUTION_TABLE_KEY} must be a table of "
                                 f"file name or pattern = dilution factor, got {table!r}")
            for key, v in table.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not v > 0:
                    raise ValueError(f"{where}: [samples.{sample}.{DILUTION_TABLE_KEY}] {key!r} must be a positive "
                                     f"dilution factor, got {v!r}")
                if not any(_matches(str(key), rel) for rel in rels.values()):
                    raise ValueError(f"{where}: [samples.{sample}.{DILUTION_TABLE_KEY}] {key!r} matches no NTA file "
                                     f"under nta/{sample}/ ({', '.join(sorted(rels.values())) or 'none there'})")
        for f, rel in rels.items():
            hits = {str(k): float(v) for k, v in (table or {}).items() if _matches(str(k), rel)}
            if len(set(hits.values())) > 1:
                raise ValueError(f"{where}: [samples.{sample}.{DILUTION_TABLE_KEY}] file {rel} is matched by "
                                 + ", ".join(f"{k!r} = {v:g}" for k, v in hits.items()) + " (make them agree)")
            if hits:
                key, factor = next(iter(hits.items()))
                out[f] = (factor, f"experiment.toml [samples.{sample}.{DILUTION_TABLE_KEY}] {key!r}")
            elif cfg.get("dilution_factor") is not None:
                out[f] = (float(cfg["dilution_factor"]), f"experiment.toml [samples.{sample}] dilution_factor")
    return out


def read_experiment_nta(exp) -> NtaRun:
    """Read every NTA export of ``exp`` (``exp.nta``: sample -> files), errors as rows."""
    run = NtaRun()
    rows = []
    config_error = None
    try:
        configured = file_dilutions(exp.samples, exp.nta, exp.root)
    except ValueError as exc:      # load_experiment refuses such a configuration; an Experiment built by hand
        configured, config_error = {}, str(exc)
    for sample in exp.nta:
        for p in exp.nta[sample]:
            p = Path(p)
            rel = p.relative_to(exp.root).as_posix() if p.is_relative_to(exp.root) else str(p)
            row = {c: None for c in NTA_FILE_COLUMNS}
            row.update(sample=sample, file=rel)
            problem = getattr(exp, "input_errors", {}).get(rel)
            if problem:  # found at discovery (FIFO, link loop...): never opened
                row.update(status="error", error=problem)
                rows.append(row)
                continue
            try:
                regular = stat.S_ISREG(p.stat().st_mode)
            except OSError:
                regular = False
            if regular:
                try:
                    row["sha256"] = sha256_file(p)
                except OSError:
                    pass
            if p.name.lower().endswith(COMPANION_SUFFIXES):
                row.update(status="companion", error="", instrument="nanosight")
                rows.append(row)
                continue
            try:
                if config_error:
                    raise ValueError(config_error)
                dil, source = configured.get(p, (None, ""))
                # the per-video particle tables are not used by the run's tables: not read (memory)
                res = read_nta(p, sample=sample, with_particle_files=False)
                recorded = res.videos["dilution_factor"].notna().all()
                if dil is not None:
                    try:
                        res = apply_dilution(res, dil)
                    except ValueError:
                        known = ", ".join(f"{d:g}" for d in sorted(res.videos["dilution_factor"].dropna().unique()))
                        raise ValueError(f"the file recorded dilution {known}, {source} says {dil:g}; refusing to "
                                         "apply a dilution twice (remove one)") from None
                source = ("recorded in the file" if recorded else source if dil is not None else "not recorded")
            except Exception as exc:  # noqa: BLE001 - any failure becomes an error row; the run goes on
                row.update(status="error", error=_one_line(exc))
                rows.append(row)
                continue
            res = replace(res, path=rel)
            run.results.setdefault(sample, []).append(res)
            dils = res.videos["dilution_factor"].dropna().unique()
            row.update(status="ok", error="", instrument=res.instrument, software_version=res.software_version,
                       file_sample=str(res.metadata.get("Sample") or res.metadata.get("Sample Description")
                                       or res.metadata.get("Sample Name") or ""),
                       n_videos=res.n_videos, dilution_factor=float(dils[0]) if len(dils) == 1 else np.nan,
                       dilution_applied_by=", ".join(sorted(set(res.videos["dilution_applied_by"]))),
                       dilution_source=source)
            rows.append(row)
    run.files = pd.DataFrame(rows, columns=NTA_FILE_COLUMNS)
    all_results = [r for rs in run.results.values() for r in rs]
    empty = {"videos": _LEAD + ["dilution_factor", "dilution_applied_by", "concentration_per_ml",
                                "concentration_measured_per_ml", "particles_per_frame"],
             "bins": _LEAD + [c for c in BIN_COLUMNS if c not in _LEAD],
             "warnings": _LEAD + ["section", "item", "value"]}
    for name, cols in empty.items():
        df = _arrow_safe(_lead(combine_tables(all_results, name)))
        setattr(run, name, df if len(df) else pd.DataFrame(columns=cols))
    return run


def nta_sample_columns(run: NtaRun, sample: str, meta: dict, tem_d50_nm: float, rules: dict | None = None) -> dict:
    """The NTA columns of one sample's row in the ``samples`` table (:data:`NTA_SAMPLE_COLUMNS`).

    ``tem_nta_d50_ratio`` is TEM D50 / NTA D50 (reported, never checked: TEM
    sizes dried, projected vesicles, NTA hydrated ones by their diffusion);
    ``particles_per_ug`` = NTA concentration (per ml of the undiluted
    preparation) x ``volume_ml`` (default 1) / ``protein_ug``, only when the
    concentration is of the undiluted sample. ``nta_concentration_of`` says
    which (``undiluted sample`` or ``in the cell (dilution not recorded)``);
    ``nta_concentration_dilutions`` and ``nta_concentration_basis`` which
    dilutions the numbers come from and why (:func:`exoimage.nta.qc.dilution_series`,
    with the ``[nta]`` ``rules``).
    """
    out = {c: np.nan for c in NTA_SAMPLE_COLUMNS}
    out.update(nta_instrument="", nta_n_files=0, nta_n_videos=0, nta_dilution_factors="", nta_concentration_of="",
               nta_concentration_dilutions="", nta_concentration_basis="", nta_empty_video_rule="",
               nta_percentile_convention="")
    protein = meta.get("protein_ug")
    volume = float(meta.get("volume_ml", 1.0))
    out["protein_ug"] = float(protein) if protein is not None else np.nan
    out["volume_ml"] = volume
    results = run.results.get(sample)
    if not results:
        return out
    s = nta_sample_summary(results, rules)
    undiluted = s["concentration_dilutions"] != "not recorded"
    out.update(nta_instrument=s["instrument"], nta_n_files=s["n_files"], nta_n_videos=s["n_videos"],
               nta_dilution_factors="; ".join(f"{d:g}" for d in s["dilution_factors"]),
               nta_concentration_of="undiluted sample" if undiluted else "in the cell (dilution not recorded)")
    for k in ("concentration_per_ml", "concentration_se_per_ml", "concentration_cv_percent", "particles_per_frame",
              "volume_d50_nm", "concentration_dilutions", "concentration_basis", "dilution_spread_percent",
              "n_empty_videos", "empty_video_rule", "d50_nm_nonempty", "percentile_convention"):
        out[f"nta_{k}"] = s[k]
    for c in STAT_COLUMNS:
        out[f"nta_{c}"], out[f"nta_{c}_se"] = s[c], s[f"{c}_se"]
    d50 = s["d50_nm"]
    if tem_d50_nm is not None and np.isfinite(tem_d50_nm) and np.isfinite(d50) and d50 > 0:
        out["tem_nta_d50_ratio"] = float(tem_d50_nm) / d50
    if protein is not None and undiluted and np.isfinite(s["concentration_per_ml"]):
        out["particles_per_ug"] = s["concentration_per_ml"] * volume / float(protein)
    return out


def nta_qc_rows(run: NtaRun, rules: dict | None) -> list[dict]:
    """QC rows: one FAIL per unreadable file (scope ``nta file``), then each sample's NTA checks.

    ``rules`` is the ``[nta]`` section of the rules file (see
    :func:`exoimage.nta.nta_qc_checks`).
    """
    rows = []
    for f in run.files.itertuples():
        if f.status == "error":
            rows.append(dict(scope="nta file", item=f.file, check="read", status="FAIL",
                             reason=f"not read: {f.error}", source="exoimage.nta (docs/nta.md)"))
    for sample, results in run.results.items():
        if results:
            for c in nta_qc_checks(results, rules):
                rows.append(dict(scope="sample", item=sample, check=c["check"], status=c["status"],
                                 reason=c["reason"], source=c["source"]))
    return rows


def _video_densities(g: pd.DataFrame):
    """(bin centres, density per nm) of one video's linear bins; None for a video with no particle."""
    g = g.sort_values("bin_nm")
    x = g["bin_nm"].to_numpy(float)
    c = np.clip(np.nan_to_num(g["concentration_per_ml"].to_numpy(float)), 0, None)
    w = g["bin_width_nm"].to_numpy(float)
    total = c.sum()
    return (x, c / (total * w)) if total > 0 and np.isfinite(total) else None


def nta_size_density(bins: pd.DataFrame) -> pd.DataFrame:
    """Per sample: the NTA size distribution as a probability density per nm, mean ± SE across videos.

    Each video's linear bins are normalised to unit area (concentration in the
    bin / total / bin width); the mean and standard error (SD/sqrt(n)) are
    taken bin by bin over the sample's videos. Videos on different bin grids
    (NanoSight 1 nm, ZetaView 5 nm in one sample) are interpolated onto a 1-nm grid.
    A video that counted no particle has no distribution and is left out
    (``n_videos`` counts the videos with particles); a sample none of whose
    videos counted a particle has no rows.

    Returns
    -------
    DataFrame
        ``sample, size_nm, density_per_nm, density_se_per_nm, n_videos``.
    """
    cols = ["sample", "size_nm", "density_per_nm", "density_se_per_nm", "n_videos"]
    if not len(bins):
        return pd.DataFrame(columns=cols)
    lin = bins[bins["scale"] == "linear"]
    frames = []
    for sample, gs in lin.groupby("sample", sort=False):
        curves = [c for c in (_video_densities(g) for _, g in gs.groupby(["file", "video"], sort=False))
                  if c is not None]
        if not curves:
            continue
        grids = [x for x, _ in curves]
        if all(len(x) == len(grids[0]) and np.allclose(x, grids[0]) for x in grids):
            grid = grids[0]
            dens = np.array([d for _, d in curves])
        else:
            grid = np.arange(0.5, max(x.max() for x in grids) + 1, 1.0)
            dens = np.array([np.interp(grid, x, d, left=0.0, right=0.0) for x, d in curves])
        n = len(dens)
        se = dens.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(len(grid), np.nan)
        frames.append(pd.DataFrame({"sample": sample, "size_nm": grid, "density_per_nm": dens.mean(axis=0),
                                    "density_se_per_nm": se, "n_videos": n}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
