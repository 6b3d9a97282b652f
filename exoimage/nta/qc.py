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
from .stats import STAT_COLUMNS, VOLUME_COLUMNS, size_stats

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["DEFAULT_NTA_RULES", "rules_from_toml", "combine_tables", "nta_sample_summary", "nta_qc_checks",
           "dilution_series", "EMPTY_VIDEO_RULES"]

RULES_FILE = Path(__file__).resolve().parents[1] / "experiment" / "qc_rules.toml"


def rules_from_toml(section: dict) -> dict:
    """NTA rules from the ``[nta]`` section of a QC rules file (its ``source`` text dropped).

    ``particles_per_frame_range`` becomes ``{instrument: (low, high)}``.
    """
    rules = {k: v for k, v in section.items() if k != "source"}
    if "particles_per_frame_range" in rules:
        rules["particles_per_frame_range"] = {str(k): (float(v[0]), float(v[1]))
                                              for k, v in rules["particles_per_frame_range"].items()}
    return rules


#: QC thresholds, read from the ``[nta]`` section of ``exoimage/experiment/qc_rules.toml``
#: (the rules file a lab can copy and edit; each value's source is given there):
#: ``min_videos`` (3), ``max_concentration_cv_percent`` (12, the top of the
#: published within-day CV 1-12 %), ``particles_per_frame_range``
#: (NanoSight 20-100; ZetaView 50-200 is a placeholder),
#: ``dilution_linearity_tolerance_percent`` (20), and a ``*_status`` for each
#: (``empty_videos_status`` for videos that counted no particle).
DEFAULT_NTA_RULES = rules_from_toml(tomllib.loads(RULES_FILE.read_text(encoding="utf-8"))["nta"])

#: How a video that counted no particle enters a sample's averages, per instrument. NanoSight
#: NTA 3.x prints 0 particles/ml and 0.0 nm for every size of such a video and averages those
#: zeros into its file's "Average" column (issue 16: 66.5 nm where the videos with particles give
#: 83.1 nm); exoimage does the same so its numbers match the instrument's report. ZetaView writes
#: one measurement per file and no average across files, so an empty measurement has no size and
#: is left out of the size averages (its concentration, 0, is averaged in).
EMPTY_VIDEO_RULES = {
    "nanosight": "counted as 0 particles/ml and 0 nm in every size average, as the NanoSight software does",
    "zetaview": "counted as 0 particles/ml; no size (left out of the size averages)",
}

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


def _merged_rules(rules) -> dict:
    rules = rules_from_toml(rules or {})
    r = {**DEFAULT_NTA_RULES, **rules}
    r["particles_per_frame_range"] = {**DEFAULT_NTA_RULES["particles_per_frame_range"],
                                      **rules.get("particles_per_frame_range", {})}
    return r


def _video_table(results) -> pd.DataFrame:
    """Videos of all results with their recomputed sizes (``empty``: no particle counted)."""
    videos = combine_tables(results, "videos")
    stats = size_stats(combine_tables(results, "bins"))
    keep = ["file", "video", *STAT_COLUMNS, *VOLUME_COLUMNS, "empty", "percentile_convention"]
    printed = [c for c in STAT_COLUMNS + VOLUME_COLUMNS if c in videos.columns]
    v = videos.drop(columns=printed).merge(stats[keep], on=["file", "video"], how="left")
    for c in VOLUME_COLUMNS:      # NanoSight: its own printed volume D values (see exoimage.nta.stats)
        if c in videos.columns:
            v[c] = v[c].where(v[c].notna(), videos[c].to_numpy(float))
    conc = v["concentration_per_ml"].to_numpy(float)
    v["empty"] = v["empty"].fillna(True).astype(bool) | (conc == 0)
    return v


def _fmt_dil(d) -> str:
    return "not recorded" if not np.isfinite(d) else f"1:{d:g}"


def dilution_series(videos: pd.DataFrame, rules: dict | None = None) -> dict:
    """Per-dilution concentrations of one sample, its linearity, and the dilutions to report.

    Parameters
    ----------
    videos : DataFrame
        The sample's videos (``combine_tables(results, 'videos')``): needs
        ``dilution_factor, concentration_per_ml, particles_per_frame, instrument``.
    rules : dict, optional
        Overrides of :data:`DEFAULT_NTA_RULES`.

    Returns
    -------
    dict
        ``table``: one row per dilution (``dilution_factor`` NaN = not
        recorded) with ``n_videos, concentration_per_ml`` (mean of the
        dilution-corrected videos), ``ppf_min, ppf_max, in_ppf_range``
        (True/False, None when not recorded); ``spread_percent`` (largest /
        smallest - 1 over the recorded dilutions, NaN with fewer than two);
        ``linear`` (spread within tolerance; None when not applicable);
        ``used``: the dilution factors whose videos give the reported
        concentration; ``basis``: one line saying which and why.

    Notes
    -----
    With two or more recorded dilutions that scale linearly (spread within
    ``dilution_linearity_tolerance_percent``), all of them are used. When they
    do not, the dilutions whose videos are all inside the instrument's
    particles-per-frame range are the candidates (all, when none is); the
    largest group of candidates that agree within the tolerance is the linear
    range and is used. A single candidate is used when the others are outside
    the range (an overloaded or too dilute video); otherwise no linear range
    can be identified and all recorded dilutions are pooled. Videos without a
    recorded dilution are never pooled with dilution-corrected ones.
    """
    r = _merged_rules(rules)
    tol = float(r["dilution_linearity_tolerance_percent"])
    key = videos["dilution_factor"].astype(float).fillna(-1.0)
    rows = []
    for d, g in videos.groupby(key, sort=True):
        ppf = g["particles_per_frame"].to_numpy(float)
        finite = ppf[np.isfinite(ppf)]
        inside = None
        if len(finite):
            inside = True
            for inst, p in zip(g["instrument"], ppf):
                lo, hi = r["particles_per_frame_range"].get(inst, (float("-inf"), float("inf")))
                if np.isfinite(p) and not lo <= p <= hi:
                    inside = False
        rows.append({"dilution_factor": np.nan if d == -1 else float(d), "n_videos": int(len(g)),
                     "concentration_per_ml": float(g["concentration_per_ml"].astype(float).mean()),
                     "ppf_min": float(finite.min()) if len(finite) else np.nan,
                     "ppf_max": float(finite.max()) if len(finite) else np.nan, "in_ppf_range": inside})
    table = pd.DataFrame(rows, columns=["dilution_factor", "n_videos", "concentration_per_ml", "ppf_min",
                                        "ppf_max", "in_ppf_range"])
    known = table[table["dilution_factor"].notna()]
    out = {"table": table, "spread_percent": float("nan"), "linear": None, "tolerance_percent": tol}

    def spread(c):
        c = np.asarray(c, float)
        return float(100 * (c.max() / c.min() - 1)) if len(c) and c.min() > 0 else float("inf")

    if len(known) == 0:
        out.update(used=[np.nan], basis="dilution not recorded: concentrations as measured in the cell")
        return out
    skipped = " (videos without a recorded dilution left out)" if len(known) < len(table) else ""
    if len(known) == 1:
        d = float(known["dilution_factor"].iloc[0])
        out.update(used=[d], basis=f"one dilution ({_fmt_dil(d)}){skipped}")
        return out
    out["spread_percent"] = spread(known["concentration_per_ml"])
    out["linear"] = bool(out["spread_percent"] <= tol)
    if out["linear"]:
        out.update(used=list(known["dilution_factor"]),
                   basis=f"all dilutions ({', '.join(map(_fmt_dil, known['dilution_factor']))}) agree within "
                         f"{tol:g} %{skipped}")
        return out
    cand = known[known["in_ppf_range"].map(lambda x: x is not False)]
    if not len(cand):
        cand = known
    cand = cand.sort_values("concentration_per_ml")
    c = cand["concentration_per_ml"].to_numpy(float)
    best = None
    for i in range(len(cand)):
        for j in range(i + 1, len(cand)):
            if spread(c[i:j + 1]) <= tol:
                w = cand.iloc[i:j + 1]
                score = (len(w), int(w["n_videos"].sum()), float(w["dilution_factor"].max()))
                if best is None or score > best[0]:
                    best = (score, w)
    if best is not None:
        used = sorted(best[1]["dilution_factor"])
        out.update(used=used, basis=f"the linear range {', '.join(map(_fmt_dil, used))} (agree within {tol:g} %)"
                                    + skipped)
    elif len(cand) == 1 and len(known) > 1:
        d = float(cand["dilution_factor"].iloc[0])
        out.update(used=[d], basis=f"{_fmt_dil(d)}, the only dilution inside the particles-per-frame range"
                                   + skipped)
    else:
        out.update(used=list(known["dilution_factor"]),
                   basis="no linear range identified: all dilutions pooled" + skipped)
    return out


def _in_used(videos, used) -> np.ndarray:
    d = videos["dilution_factor"].astype(float).to_numpy()
    used = np.asarray(used, dtype=float)
    return np.isin(np.nan_to_num(d, nan=-1.0), np.nan_to_num(used, nan=-1.0))


def nta_sample_summary(results, rules: dict | None = None) -> dict:
    """Concentration ± SE and size statistics of one sample across its videos.

    Parameters
    ----------
    results : NtaResult or list of NtaResult
        All NTA results of one sample.
    rules : dict, optional
        Overrides of :data:`DEFAULT_NTA_RULES` (the dilution-linearity
        tolerance and particles-per-frame ranges choose the dilutions that
        are reported, see :func:`dilution_series`).

    Returns
    -------
    dict
        ``sample, instrument, n_files, n_videos, dilution_factors,
        concentration_per_ml, concentration_se_per_ml,
        concentration_cv_percent, particles_per_frame``; for each of
        ``mean_nm, mode_nm, sd_nm, d10_nm, d50_nm, d90_nm`` the mean over
        videos and its standard error (``<stat>_se``, e.g. ``d50_nm_se``);
        ``volume_d10_nm, volume_d50_nm, volume_d90_nm`` (means over videos
        with particles: recomputed for ZetaView, the instrument's printed
        volume-weighted values for NanoSight where the file has them); ``concentration_dilutions`` (the dilutions the
        numbers come from, e.g. ``'1:200'``), ``concentration_basis`` (why),
        ``dilution_spread_percent``; ``n_empty_videos``, ``empty_video_rule``
        and ``d50_nm_nonempty`` (D50 over the videos with particles);
        ``percentile_convention``.

        Numbers come from the videos at the reported dilutions (all videos
        for a single dilution). Size statistics are recomputed from each
        video's linear bins (:func:`exoimage.nta.size_stats`) by each
        software's own percentile convention; SE is SD/sqrt(n) across
        videos, as the NanoSight software reports it. A video with no
        particles enters the averages by :data:`EMPTY_VIDEO_RULES`.
    """
    results = _as_list(results)
    if not results:
        raise ValueError("no NTA results given")
    allv = _video_table(results)
    series = dilution_series(allv, rules)
    v = allv[_in_used(allv, series["used"])]
    conc, conc_se = _mean_se(v["concentration_per_ml"])
    out = {
        "sample": results[0].sample,
        "instrument": ",".join(sorted({r.instrument for r in results})),
        "n_files": len(results),
        "n_videos": int(len(allv)),
        "dilution_factors": sorted({float(d) for d in allv["dilution_factor"].dropna()}),
        "concentration_per_ml": conc,
        "concentration_se_per_ml": conc_se,
        "concentration_cv_percent": _cv_percent(v["concentration_per_ml"]),
        "particles_per_frame": _mean_se(v["particles_per_frame"])[0],
        "concentration_dilutions": ", ".join(_fmt_dil(d) for d in series["used"]),
        "concentration_basis": series["basis"],
        "dilution_spread_percent": series["spread_percent"],
        "n_videos_used": int(len(v)),
    }
    empty = v["empty"].to_numpy(bool)
    zero = empty & (v["instrument"] == "nanosight").to_numpy()
    for col in STAT_COLUMNS:
        vals = v[col].to_numpy(float).copy()
        vals[zero] = 0.0
        vals[empty & ~zero] = np.nan
        out[col], out[f"{col}_se"] = _mean_se(vals)
    for col in VOLUME_COLUMNS:
        out[col] = _mean_se(v.loc[~empty, col])[0]
    out["n_empty_videos"] = int(empty.sum())
    out["empty_videos"] = ", ".join(map(str, v.loc[empty, "video"]))
    out["empty_video_rule"] = ("; ".join(f"{inst}: {EMPTY_VIDEO_RULES.get(inst, 'left out of the size averages')}"
                                         for inst in sorted(set(v.loc[empty, "instrument"]))) if empty.any() else "")
    out["d50_nm_nonempty"] = _mean_se(v.loc[~empty, "d50_nm"])[0]
    out["percentile_convention"] = ", ".join(sorted(set(v["percentile_convention"].dropna().astype(str))))
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
        threshold comes from). Checks, in order: ``nta_values``,
        ``nta_videos``, ``nta_concentration_cv``, ``nta_particles_per_frame``,
        ``nta_instrument_warnings``, ``nta_dilution_recorded``,
        ``nta_dilution_linearity``, ``nta_empty_videos``. A check that
        cannot be evaluated (one dilution only, one video for a CV) passes
        and says so in ``reason``; particles per frame not recorded does not
        pass.
    """
    r = _merged_rules(rules)
    results = _as_list(results)
    if not results:
        raise ValueError("no NTA results given")
    videos = _video_table(results)
    files = ", ".join(sorted({str(x) for x in videos["file"]}))
    checks = []

    conc = videos["concentration_per_ml"].to_numpy(float)
    bad = [f"{v} ({c:g})" for v, c in zip(videos["video"], conc) if not (np.isfinite(c) and c >= 0)]
    sizes = videos.loc[~videos["empty"], STAT_COLUMNS].to_numpy(float)
    n_bad_size = int((~np.isfinite(sizes) | (sizes < 0)).any(axis=1).sum()) if sizes.size else 0
    reason = ("all concentrations finite and >= 0, sizes recomputed for every video with particles" if not bad
              and not n_bad_size else "; ".join(filter(None, [
                  ("concentration not a non-negative number: " + ", ".join(bad)) if bad else "",
                  f"{n_bad_size} video(s) with particles but no valid size" if n_bad_size else ""])))
    checks.append(_check("nta_values", not bad and not n_bad_size, "FAIL", reason,
                         f"{files}: concentration per video, size bins"))

    series = dilution_series(videos, r)
    used = videos[_in_used(videos, series["used"])]
    n = len(videos)
    checks.append(_check(
        "nta_videos", n >= r["min_videos"], r["min_videos_status"],
        f"{n} video(s) measured; at least {r['min_videos']} required",
        f"{files}: video count"))

    cv = _cv_percent(used["concentration_per_ml"])
    limit = r["max_concentration_cv_percent"]
    at = f" at {', '.join(_fmt_dil(d) for d in series['used'])}" if len(series["table"]) > 1 else ""
    reason = (f"concentration CV {cv:.1f} % across {len(used)} videos{at} (limit {limit:g} %)" if np.isfinite(cv)
              else "CV not computable (fewer than 2 videos with a concentration)")
    checks.append(_check("nta_concentration_cv", not (cv > limit), r["concentration_cv_status"], reason,
                         f"{files}: concentration per video; limit: published within-day CV 1-12 %"))

    bad_ppf, parts, srcs, missing_ppf = [], [], set(), []
    for inst, g in videos.groupby("instrument"):
        lo, hi = r["particles_per_frame_range"].get(inst, (float("-inf"), float("inf")))
        srcs.add(PPF_SOURCE.get(inst, "rules"))
        ppf = g["particles_per_frame"].to_numpy(dtype=float)
        out = [(v, p) for v, p in zip(g["video"], ppf) if np.isfinite(p) and not lo <= p <= hi]
        bad_ppf += out
        missing_ppf += [v for v, p in zip(g["video"], ppf) if not np.isfinite(p)]
        finite = ppf[np.isfinite(ppf)]
        if len(finite):
            parts.append(f"{inst}: {finite.min():.1f}-{finite.max():.1f} particles/frame (range {lo:g}-{hi:g})")
        if len(finite) < len(ppf):
            parts.append(f"{inst}: particles per frame not recorded for {len(ppf) - len(finite)} video(s)")
    reason = "; ".join(parts)
    if bad_ppf:
        reason += "; outside: " + ", ".join(f"{v} ({p:.1f})" for v, p in bad_ppf)
    checks.append(_check("nta_particles_per_frame", not bad_ppf and not missing_ppf, r["particles_per_frame_status"],
                         reason, f"{files}: particles per frame; range: " + "; ".join(sorted(srcs))))

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

    tab = series["table"]
    known = tab[tab["dilution_factor"].notna()]
    tol = series["tolerance_percent"]
    if len(known) < 2:
        ok, reason = True, f"not applicable: {len(known)} dilution(s) recorded, linearity needs two"
    else:
        ok = bool(series["linear"])
        listing = []
        for t in known.itertuples():
            ppf = (f", {t.ppf_min:.0f}-{t.ppf_max:.0f} particles/frame"
                   + ("" if t.in_ppf_range is not False else " (outside the range)")) if np.isfinite(t.ppf_min) else ""
            listing.append(f"1:{t.dilution_factor:g} -> {t.concentration_per_ml:.3g}/ml ({t.n_videos} video(s){ppf})")
        reason = (f"dilution-corrected concentrations {'; '.join(listing)}; spread {series['spread_percent']:.1f} % "
                  f"(tolerance {tol:g} %); reported concentration from {series['basis']}")
    checks.append(_check("nta_dilution_linearity", ok, r["dilution_linearity_status"], reason,
                         f"{files}: concentration per dilution factor"))

    empty = videos[videos["empty"]]
    if len(empty):
        s = nta_sample_summary(results, rules)
        reason = (f"{len(empty)} of {n} video(s) counted no particle ({', '.join(map(str, empty['video']))}): "
                  f"{s['empty_video_rule'] or 'not in the reported dilutions'}; D50 {s['d50_nm']:.1f} nm, "
                  f"{s['d50_nm_nonempty']:.1f} nm over the videos with particles")
    else:
        reason = "every video counted particles"
    checks.append(_check("nta_empty_videos", len(empty) == 0, r["empty_videos_status"], reason,
                         f"{files}: size bins per video; rule: docs/nta.md (NanoSight averages the zeros)"))
    return checks
