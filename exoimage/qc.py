"""QC checks of an experiment's results, driven by a rules file a lab can edit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .experiment import ExperimentError, marker_category, read_config_toml
from .params import ParamError, check_value

__all__ = ["DEFAULT_RULES", "load_rules", "qc_checks", "QC_COLUMNS", "overall_status", "RulesError", "RULES_SCHEMA"]

DEFAULT_RULES = Path(__file__).with_name("qc_rules.toml")
QC_COLUMNS = ["scope", "item", "check", "status", "reason", "source"]
_ORDER = {"PASS": 0, "WARN": 1, "FAIL": 2}


class RulesError(ExperimentError):
    """A QC rules file is not usable (one line naming the file, the key and the problem)."""


# The rules of every value of a rules file, in the format of the parameter field metadata
# (exoimage.params); every key of exoimage/qc_rules.toml is here and every key here is used by
# qc_checks or exoimage.nta.qc.nta_qc_checks.
_STATUS = {"type": "str", "choices": tuple(_ORDER), "help": "status given when the check fails"}
_TEXT = {"type": "str", "help": "where the rule comes from (shown in the report)"}
_PCT = {"type": "float", "unit": "%", "min": 0}
_FRACTION = {"type": "float", "min": 0, "max": 1}
_COUNT = {"type": "int", "min": 0}
RULES_SCHEMA = {
    "calibration": {"missing": _STATUS, "scale_bar": _STATUS, "source": _TEXT},
    "tem": {"min_vesicles": _COUNT, "d50_ci_halfwidth_pct": {**_PCT, "min_exclusive": True},
            "border_fraction": _FRACTION, "source": _TEXT},
    "blot": {"saturated": _STATUS, "lossy_or_8bit": _STATUS, "low_snr": _STATUS, "replicate_cv_pct": _PCT,
             "linear_r2": _FRACTION, "source": _TEXT},
    "misev": {"missing_category": _STATUS, "promiscuous_control": _STATUS, "source": _TEXT,
              "single_particle_missing": _STATUS, "single_particle_source": _TEXT},
    "nta": {"min_videos": _COUNT, "min_videos_status": _STATUS, "max_concentration_cv_percent": _PCT,
            "concentration_cv_status": _STATUS, "particles_per_frame_status": _STATUS,
            "instrument_warnings_status": _STATUS, "dilution_not_recorded_status": _STATUS,
            "dilution_linearity_tolerance_percent": _PCT, "dilution_linearity_status": _STATUS,
            "empty_videos_status": _STATUS, "source": _TEXT,
            "particles_per_frame_range": {"type": "table", "values": {
                "type": "float_list", "unit": "particles/frame", "min": 0, "min_len": 2, "max_len": 2,
                "sorted": True, "help": "[low, high] particles per frame the instrument trusts"}}},
}


def _meta_of(sec: str, key: str, default):
    """Rules of one key; a key of the built-in file without an entry in RULES_SCHEMA (added later)
    takes the rules its default value implies: a status, text, or a finite number >= 0."""
    meta = RULES_SCHEMA.get(sec, {}).get(key)
    if meta is not None:
        return meta
    if isinstance(default, str):
        return _STATUS if default in _ORDER else _TEXT
    if isinstance(default, bool):
        return {"type": "bool"}
    if isinstance(default, int):
        return _COUNT
    if isinstance(default, float):
        return {"type": "float", "min": 0}
    if isinstance(default, dict):
        return {"type": "table", "values": {"type": "float_list", "min": 0, "min_len": 2, "max_len": 2,
                                            "sorted": True}}
    return {"type": "float_list"}  # pragma: no cover - no such default today


def _check_rules(own: dict, defaults: dict, path) -> None:
    """Every section and key of ``own`` known (present in ``defaults``), every value allowed."""
    for sec, vals in own.items():
        if sec not in defaults:
            raise RulesError(f"{path}: unknown section [{sec}]; known: {', '.join(defaults)}")
        if not isinstance(vals, dict):
            raise RulesError(f"{path}: {ParamError(sec, vals, f'must be a table ([{sec}])')}")
        unknown = set(vals) - set(defaults[sec])
        if unknown:
            raise RulesError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} in [{sec}]; "
                             f"known: {', '.join(defaults[sec])}")
        for key, val in vals.items():
            meta = _meta_of(sec, key, defaults[sec][key])
            try:
                if meta["type"] == "table":
                    if not isinstance(val, dict):
                        raise ParamError(key, val, "must be a table")
                    extra = set(val) - set(defaults[sec][key])
                    if extra:
                        raise ParamError(f"{key}.{sorted(extra)[0]}", val[sorted(extra)[0]],
                                         f"unknown; known: {', '.join(defaults[sec][key])}")
                check_value(key, val, meta)
            except ParamError as exc:
                raise RulesError(f"{path}: [{sec}] {exc}") from None


def load_rules(path=None) -> dict:
    """The default rules, updated section by section with a lab's own file.

    A table inside a section (``[nta.particles_per_frame_range]``) is merged
    key by key, so a lab can override one instrument's range only. The lab's
    file is checked completely (every section and key known, every value of
    the right type and range, see :data:`RULES_SCHEMA`) before it is used.

    Raises
    ------
    RulesError
        (an :class:`~exoimage.experiment.ExperimentError`, a ``ValueError``)
        one line naming the file, the section, the key and the problem.
    """
    rules = read_config_toml(DEFAULT_RULES, RulesError)
    if path:
        own = read_config_toml(path, RulesError, "QC rules file")
        _check_rules(own, rules, path)
        for sec, vals in own.items():
            for key, val in vals.items():
                if isinstance(rules[sec][key], dict):
                    rules[sec][key] = {**rules[sec][key], **val}
                else:
                    rules[sec][key] = val
    return rules


def overall_status(statuses) -> str:
    s = [x for x in statuses if x in _ORDER]
    return max(s, key=_ORDER.get) if s else "PASS"


def _row(scope, item, check, status, reason, source):
    return dict(scope=scope, item=item, check=check, status=status, reason=reason, source=source)


def qc_checks(tem_images: pd.DataFrame, samples: pd.DataFrame, blot_images: pd.DataFrame,
              bands: pd.DataFrame, normalized: pd.DataFrame, replicates: pd.DataFrame,
              markers_by_sample: dict, linear: list, rules: dict, nta_rows: list | None = None,
              nta_samples=None) -> pd.DataFrame:
    """All checks as a table (see ``QC_COLUMNS``).

    ``nta_rows`` are the NTA rows (:func:`exoimage.nta_run.nta_qc_rows`),
    placed before the MISEV checklist; ``nta_samples`` the samples with at
    least one NTA file read, for the checklist's single-particle counting
    method (when None, that item is left out).
    """
    rows = []
    cal, tr, br, mr = rules["calibration"], rules["tem"], rules["blot"], rules["misev"]
    for r in tem_images.itertuples():
        if r.status != "ok":
            rows.append(_row("image", r.image, "analysed", "FAIL", f"not analysed: {r.error}", "exoimage"))
            continue
        src = r.pixel_size_source
        if src in ("given", "imagej", "ome", "fei", "zeiss", "olympus_sis", "tiff_resolution", "gatan", "mrc"):
            rows.append(_row("image", r.image, "calibration", "PASS",
                             f"{r.pixel_size_nm:.4g} nm/px from {src}", cal["source"]))
        elif src == "scale_bar":
            rows.append(_row("image", r.image, "calibration", cal["scale_bar"],
                             f"{r.pixel_size_nm:.4g} nm/px read from the burned-in scale bar", cal["source"]))
        else:
            rows.append(_row("image", r.image, "calibration", cal["missing"], "no pixel size", cal["source"]))
    for s in samples.itertuples():
        if not isinstance(s.tem_n, (int, np.integer)) or s.tem_n == 0:
            if s.n_tem_images:
                rows.append(_row("sample", s.sample, "TEM vesicles", "FAIL", "no vesicle sized", tr["source"]))
            continue
        n_ok = s.tem_n >= tr["min_vesicles"]
        rows.append(_row("sample", s.sample, "TEM vesicle count", "PASS" if n_ok else "WARN",
                         f"{s.tem_n} sized vesicles (rule: >= {tr['min_vesicles']})", tr["source"]))
        hw = s.tem_d50_ci_halfwidth_pct
        ok = np.isfinite(hw) and hw <= tr["d50_ci_halfwidth_pct"]
        rows.append(_row("sample", s.sample, "D50 stability", "PASS" if ok else "WARN",
                         f"95 % CI half-width {hw:.1f} % of D50 (rule: <= {tr['d50_ci_halfwidth_pct']:g} %)",
                         tr["source"]))
        bf = s.tem_border_fraction
        rows.append(_row("sample", s.sample, "border-cut fraction",
                         "PASS" if bf <= tr["border_fraction"] else "WARN",
                         f"{100 * bf:.0f} % of detected vesicles cut by the border, not sized "
                         f"(rule: <= {100 * tr['border_fraction']:.0f} %)", tr["source"]))
    for r in blot_images.itertuples():
        if r.status != "ok":
            rows.append(_row("blot", r.image, "analysed", "FAIL", f"not analysed: {r.error}", "exoimage"))
            continue
        w = str(getattr(r, "warnings", "") or "")
        lossy = [k for k in ("8-bit", "JPEG", "RGB", "contrast") if k.lower() in w.lower()]
        rows.append(_row("blot", r.image, "raw linear data", br["lossy_or_8bit"] if lossy else "PASS",
                         ("; ".join(x for x in w.split("; ") if x) if lossy else "16-bit raw data"), br["source"]))
        b = bands[bands["image"] == r.image] if len(bands) else bands
        nsat = int(b["saturated"].astype(bool).sum()) if len(b) else 0
        rows.append(_row("blot", r.image, "saturation", br["saturated"] if nsat else "PASS",
                         f"{nsat} saturated band(s)" if nsat else "no saturated band", br["source"]))
        if "low_snr" in b:
            nlow = int(b["low_snr"].astype(bool).sum())
            rows.append(_row("blot", r.image, "signal above noise", br["low_snr"] if nlow else "PASS",
                             f"{nlow} band(s) below the noise threshold" if nlow else "all bands above noise",
                             br["source"]))
    for lr in linear:
        if not lr:
            continue
        ok = lr.get("r2", 0) >= br["linear_r2"]
        rows.append(_row("blot", lr.get("image", ""), "linear range", "PASS" if ok else "WARN",
                         f"dilution series R^2 = {lr.get('r2', float('nan')):.4f} (rule: >= {br['linear_r2']})",
                         br["source"]))
    if len(replicates):
        for r in replicates.itertuples():
            cv = getattr(r, "cv_pct", np.nan)
            if not np.isfinite(cv):
                continue
            ok = cv <= br["replicate_cv_pct"]
            rows.append(_row("sample", f"{r.sample} ({getattr(r, 'marker', '')})", "replicate CV",
                             "PASS" if ok else "WARN",
                             f"CV {cv:.1f} % over {int(r.n)} replicates (rule: <= {br['replicate_cv_pct']:g} %)",
                             br["source"]))
    if len(normalized) and "control_marker" in normalized:
        for cm in sorted(set(normalized["control_marker"].dropna().astype(str)) - {""}):
            if marker_category(cm) == "promiscuous":
                rows.append(_row("experiment", cm, "EV loading control", mr["promiscuous_control"],
                                 f"{cm} is not EV-specific and often not proportional to load; "
                                 "prefer total protein or loading by particle number", mr["source"]))
    rows += list(nta_rows or [])
    for sample, markers in markers_by_sample.items():
        cats = {marker_category(m) for m in markers}
        for cat, label in (("transmembrane", "transmembrane marker (CD63/CD81/CD9)"),
                           ("cytosolic", "cytosolic marker (TSG101/ALIX)"),
                           ("negative_or_purity", "negative or purity marker (calnexin/ApoA1)")):
            have = bool(cats & {"negative", "purity"}) if cat == "negative_or_purity" else cat in cats
            names = ", ".join(sorted(m for m in markers if (marker_category(m) in ({"negative", "purity"}
                                     if cat == "negative_or_purity" else {cat})))) or "none"
            rows.append(_row("sample", sample, f"MISEV: {label}", "PASS" if have else mr["missing_category"],
                             f"measured: {names}", mr["source"]))
        if nta_samples is not None:
            have = sample in nta_samples
            rows.append(_row("sample", sample, "MISEV: single-particle counting method",
                             "PASS" if have else mr["single_particle_missing"],
                             "NTA read for this sample" if have else "no NTA (or other particle counting) data",
                             mr["single_particle_source"]))
    return pd.DataFrame(rows, columns=QC_COLUMNS)
