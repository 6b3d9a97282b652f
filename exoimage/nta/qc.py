"""Per-sample NTA numbers and QC checks for the experiment report.

Both functions take the :class:`~exoimage.nta.NtaResult` objects of *one*
sample (one NanoSight summary with several videos, or several ZetaView files,
possibly at different dilutions).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ._common import NtaResult
from .stats import STAT_COLUMNS, size_stats

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["DEFAULT_NTA_RULES", "rules_from_toml", "combine_tables", "nta_sample_summary", "nta_qc_checks"]

RULES_FILE = Path(__file__).resolve().parents[1] / "qc_rules.toml"


def rules_from_toml(section: dict) -> dict:
    """NTA rules from the ``[nta]`` section of a QC rules file (its ``source`` text dropped).

    ``particles_per_frame_range`` becomes ``{instrument: (low, high)}``.
    """
    rules = {k: v for k, v in section.items() if k != "source"}
    if "particles_per_frame_range" in rules:
        rules["particles_per_frame_range"] = {str(k): (float(v[0]), float(v[1]))
                                              for k, v in rules["particles_per_frame_range"].items()}
    return rules


#: QC thresholds, read from the ``[nta]`` section of ``exoimage/qc_rules.toml``
#: (the rules file a lab can copy and edit; each value's source is given there):
#: ``min_videos`` (3), ``max_concentration_cv_percent`` (12, the top of the
#: published within-day CV 1-12 %), ``particles_per_frame_range``
#: (NanoSight 20-100; ZetaView 50-200 is a placeholder),
#: ``dilution_linearity_tolerance_percent`` (20), and a ``*_status`` for each.
DEFAULT_NTA_RULES = rules_from_toml(tomllib.loads(RULES_FILE.read_text(encoding="utf-8"))["nta"])

PPF_SOURCE = {
    "nanosight": "Malvern NanoSight NTA 3.x guidance: 20-100 particles per frame",
    "zetaview": "placeholder range, not a published ZetaView figure",
}


def _as_list(results) -> list[NtaResult]:
    return [results] if isinstance(results, NtaResult) else list(results)


def combine_tables(results, table: str) -> pd.DataFrame:
    """Concatenate one table (``'videos'``, ``'bins'``, ...) of several results.

    ``file`` (the result's path) and ``instrument`` columns are added.
    """
    frames = []
    for r in _as_list(results):
        df = getattr(r, table)
        if df is not None and len(df):
            frames.append(df.assign(file=r.path, instrument=r.instrument))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _mean_se(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
    return float(v.mean()), se


def _cv_percent(values) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2 or v.mean() == 0:
        return float("nan")
    return float(100 * v.std(ddof=1) / v.mean())


def nta_sample_summary(results) -> dict:
    """Concentration ± SE and size statistics of one sample across its videos.

    Parameters
    ----------
    results : NtaResult or list of NtaResult
        All NTA results of one sample.

    Returns
    -------
    dict
        ``sample, instrument, n_files, n_videos, dilution_factors,
        concentration_per_ml, concentration_se_per_ml,
        concentration_cv_percent, particles_per_frame`` and, for each of
        ``mean_nm, mode_nm, sd_nm, d10_nm, d50_nm, d90_nm``, the mean over
        videos and its standard error (``<stat>_se``, e.g. ``d50_nm_se``).
        Size statistics are recomputed from each video's linear bins
        (:func:`exoimage.nta.size_stats`), so NanoSight and ZetaView are
        summarised the same way; SE is SD/sqrt(n) across videos, as the
        NanoSight software reports it.
    """
    results = _as_list(results)
    if not results:
        raise ValueError("no NTA results given")
    videos = combine_tables(results, "videos")
    stats = size_stats(combine_tables(results, "bins"))
    conc, conc_se = _mean_se(videos["concentration_per_ml"])
    out = {
        "sample": results[0].sample,
        "instrument": ",".join(sorted({r.instrument for r in results})),
        "n_files": len(results),
        "n_videos": int(len(videos)),
        "dilution_factors": sorted({float(d) for d in videos["dilution_factor"].dropna()}),
        "concentration_per_ml": conc,
        "concentration_se_per_ml": conc_se,
        "concentration_cv_percent": _cv_percent(videos["concentration_per_ml"]),
        "particles_per_frame": _mean_se(videos["particles_per_frame"])[0],
    }
    for col in STAT_COLUMNS:
        m, se = _mean_se(stats[col])
        out[col] = m
        out[f"{col}_se"] = se
    return out


def _check(name, ok, bad_status, reason, source):
    return {"check": name, "status": "PASS" if ok else bad_status, "reason": reason, "source": source}


def nta_qc_checks(results, rules: dict | None = None) -> list[dict]:
    """QC checks of one sample's NTA results.

    Parameters
    ----------
    results : NtaResult or list of NtaResult
        All NTA results of one sample.
    rules : dict, optional
        Overrides of :data:`DEFAULT_NTA_RULES` (missing keys take the defaults;
        ``particles_per_frame_range`` is merged per instrument), e.g. the
        ``[nta]`` section of a lab's rules file via :func:`rules_from_toml`.

    Returns
    -------
    list of dict
        One dict per check with ``check``, ``status`` (``'PASS'``,
        ``'WARN'`` or ``'FAIL'``), ``reason`` (numbers behind the verdict)
        and ``source`` (files and fields it was computed from, and where the
        threshold comes from). Checks, in order: ``nta_videos``,
        ``nta_concentration_cv``, ``nta_particles_per_frame``,
        ``nta_instrument_warnings``, ``nta_dilution_recorded``,
        ``nta_dilution_linearity``. A check that cannot be evaluated (one
        dilution only, one video for a CV) passes and says so in ``reason``.
    """
    rules = rules_from_toml(rules or {})
    r = {**DEFAULT_NTA_RULES, **rules}
    r["particles_per_frame_range"] = {**DEFAULT_NTA_RULES["particles_per_frame_range"],
                                      **rules.get("particles_per_frame_range", {})}
    results = _as_list(results)
    if not results:
        raise ValueError("no NTA results given")
    videos = combine_tables(results, "videos")
    files = ", ".join(sorted({str(x) for x in videos["file"]}))
    checks = []

    n = len(videos)
    checks.append(_check(
        "nta_videos", n >= r["min_videos"], r["min_videos_status"],
        f"{n} video(s) measured; at least {r['min_videos']} required",
        f"{files}: video count"))

    cv = _cv_percent(videos["concentration_per_ml"])
    limit = r["max_concentration_cv_percent"]
    reason = (f"concentration CV {cv:.1f} % across {n} videos (limit {limit:g} %)" if np.isfinite(cv)
              else "CV not computable (fewer than 2 videos with a concentration)")
    checks.append(_check("nta_concentration_cv", not (cv > limit), r["concentration_cv_status"], reason,
                         f"{files}: concentration per video; limit: published within-day CV 1-12 %"))

    bad_ppf, parts, srcs = [], [], set()
    for inst, g in videos.groupby("instrument"):
        lo, hi = r["particles_per_frame_range"].get(inst, (float("-inf"), float("inf")))
        srcs.add(PPF_SOURCE.get(inst, "rules"))
        ppf = g["particles_per_frame"].to_numpy(dtype=float)
        out = [(v, p) for v, p in zip(g["video"], ppf) if np.isfinite(p) and not lo <= p <= hi]
        bad_ppf += out
        finite = ppf[np.isfinite(ppf)]
        if len(finite):
            parts.append(f"{inst}: {finite.min():.1f}-{finite.max():.1f} particles/frame (range {lo:g}-{hi:g})")
        else:
            parts.append(f"{inst}: particles per frame not recorded")
    reason = "; ".join(parts)
    if bad_ppf:
        reason += "; outside: " + ", ".join(f"{v} ({p:.1f})" for v, p in bad_ppf)
    checks.append(_check("nta_particles_per_frame", not bad_ppf, r["particles_per_frame_status"], reason,
                         f"{files}: particles per frame; range: " + "; ".join(sorted(srcs))))

    warns = combine_tables(results, "warnings")
    if len(warns):
        items = warns.groupby(["section", "item", "value"], sort=False)["video"].apply(list)
        reason = "; ".join(f"[{s}] {i}: {v!r} ({len(vids)} video(s))" for (s, i, v), vids in items.items())
    else:
        reason = "no instrument warnings"
    checks.append(_check("nta_instrument_warnings", len(warns) == 0, r["instrument_warnings_status"], reason,
                         f"{files}: [Concentration Warnings], [Information] / drift and cell checks"))

    missing = videos[videos["dilution_factor"].isna()]
    if len(missing):
        reason = (f"dilution not recorded for {len(missing)} of {n} video(s): "
                  + ", ".join(map(str, missing["video"])) + "; concentrations are as measured in the cell")
    else:
        applied = videos.groupby(["dilution_factor", "dilution_applied_by"]).size().index
        reason = "dilution " + ", ".join(f"1:{d:g} (applied by {who})" for d, who in applied)
    checks.append(_check("nta_dilution_recorded", len(missing) == 0, r["dilution_not_recorded_status"], reason,
                         f"{files}: dilution factor"))

    known = videos[videos["dilution_factor"].notna()]
    by_dil = known.groupby("dilution_factor")["concentration_per_ml"].mean()
    tol = r["dilution_linearity_tolerance_percent"]
    if len(by_dil) < 2:
        ok, reason = True, f"not applicable: {len(by_dil)} dilution(s) recorded, linearity needs two"
    else:
        dev = 100 * (by_dil.max() / by_dil.min() - 1)
        ok = dev <= tol
        listing = ", ".join(f"1:{d:g} -> {c:.3g}/ml" for d, c in by_dil.items())
        reason = f"dilution-corrected concentrations {listing}; spread {dev:.1f} % (tolerance {tol:g} %)"
    checks.append(_check("nta_dilution_linearity", ok, r["dilution_linearity_status"], reason,
                         f"{files}: concentration per dilution factor"))
    return checks
