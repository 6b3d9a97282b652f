"""QC checks of an experiment's results, driven by a rules file a lab can edit.

The checks are registered functions (:func:`qc_rule`), run in registration
order by :func:`run_qc` on the experiment's tables (:func:`exoimage.experiment.tables.experiment_tables`).
Each returns :class:`QcRow` s (the columns :data:`QC_COLUMNS`). A new check is one
function::

    @qc_rule("my_check")
    def my_check(q: QcInput) -> list[QcRow]:
        return [QcRow("sample", s, "my check", "PASS", "why", "where the rule comes from")
                for s in q.tables["samples"]["sample"]]

Checks read registries rather than lists of their own: the trusted calibration
sources (:mod:`exoimage.calibration`) and the warning codes that mean lossy
data (:mod:`exoimage.warning_codes`).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..calibration import NO_CALIBRATION, calibration_source
from .layout import ExperimentError, marker_category, read_config_toml
from ..params import ParamError, check_value
from ..warning_codes import is_lossy

__all__ = ["DEFAULT_RULES", "load_rules", "run_qc", "qc_rule", "QC_RULES", "QcRow", "QcInput", "QC_COLUMNS",
           "overall_status", "sample_qc_status", "sample_qc_reasons", "RulesError", "RULES_SCHEMA", "STATUSES"]

DEFAULT_RULES = Path(__file__).with_name("qc_rules.toml")
QC_COLUMNS = ["scope", "item", "check", "status", "reason", "source"]
#: QC statuses, from best to worst
STATUSES = ("PASS", "WARN", "FAIL")
_ORDER = {s: i for i, s in enumerate(STATUSES)}


class RulesError(ExperimentError):
    """A QC rules file is not usable (one line naming the file, the key and the problem)."""


# The rules of every value of a rules file, in the format of the parameter field metadata
# (exoimage.params); every key of exoimage/experiment/qc_rules.toml is here and every key here is used by
# the QC rules below (QC_RULES) or exoimage.nta.qc.nta_qc_checks.
_STATUS = {"type": "str", "choices": tuple(_ORDER), "help": "status given when the check fails"}
_TEXT = {"type": "str", "help": "where the rule comes from (shown in the report)"}
_PCT = {"type": "float", "unit": "%", "min": 0}
_FRACTION = {"type": "float", "min": 0, "max": 1}
_COUNT = {"type": "int", "min": 0}
RULES_SCHEMA = {
    "calibration": {"missing": _STATUS, "scale_bar": _STATUS, "source": _TEXT},
    "tem": {"min_vesicles": _COUNT, "d50_ci_halfwidth_pct": {**_PCT, "min_exclusive": True},
            "border_fraction": _FRACTION, "source": _TEXT},
    "blot": {"saturated": _STATUS, "lossy_or_8bit": _STATUS, "low_snr": _STATUS, "below_noise": _STATUS,
             "replicate_cv_pct": _PCT, "ladder_mass_error_pct": _PCT, "ladder_mass": _STATUS,
             "ladder_source": _TEXT,
             "linear_r2": _FRACTION, "source": _TEXT},
    "misev": {"missing_category": _STATUS, "promiscuous_control": _STATUS, "source": _TEXT,
              "single_particle_missing": _STATUS, "single_particle_source": _TEXT,
              "positive_min_fold": {"type": "float", "min": 0, "min_exclusive": True,
                                    "help": "EV marker / reference below this -> positive_not_enriched"},
              "positive_not_enriched": _STATUS,
              "negative_max_fold": {"type": "float", "min": 0, "min_exclusive": True,
                                    "help": "negative marker / reference above this -> negative_not_depleted"},
              "negative_not_depleted": _STATUS, "no_reference": _STATUS, "purity_source": _TEXT},
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


# ---------------------------------------------------------------------------
# the rule registry


@dataclass(frozen=True)
class QcRow:
    """One QC check's outcome (the columns :data:`QC_COLUMNS`)."""

    scope: str
    item: str
    check: str
    status: str
    reason: str
    source: str


@dataclass(frozen=True)
class QcRule:
    name: str
    fn: Callable


#: name -> rule, in the order the checks run (and their rows appear)
QC_RULES: dict[str, QcRule] = {}


def qc_rule(name: str):
    """Decorator: register ``fn(q: QcInput) -> iterable of QcRow`` as the QC check ``name``.

    Checks run in registration order; registering an existing name replaces
    that check in its place.
    """
    def deco(fn):
        QC_RULES[name] = QcRule(name, fn)
        return fn
    return deco


@dataclass
class QcInput:
    """What the checks see: the experiment's tables, the rules and the NTA files read."""

    tables: dict
    rules: dict
    nta: object = None
    reference_sample: str | None = None  # [experiment] reference_sample: the MISEV purity reference

    @property
    def samples(self) -> pd.DataFrame:
        """``samples`` with ``tem_n`` as whole numbers (0 where no vesicle was sized)."""
        s = self.tables["samples"]
        return s.assign(tem_n=s["tem_n"].fillna(0).astype(int))

    @property
    def markers_by_sample(self) -> dict:
        """sample -> the markers measured for it (every sample of ``samples``, maybe with none)."""
        out = {s: set() for s in self.tables["samples"]["sample"]}
        n = self.tables["normalized"]
        if len(n):
            for r in n.itertuples():
                if str(r.sample) and str(r.marker):
                    out.setdefault(str(r.sample), set()).add(str(r.marker))
        return out

    def warning_codes(self, image) -> list:
        w = self.tables.get("warnings")
        if w is None or not len(w):
            return []
        return list(w.loc[w["image"] == image, "code"])


def _as_row(r, rule: str) -> QcRow:
    if isinstance(r, dict):
        if set(r) != set(QC_COLUMNS):
            raise ValueError(f"QC rule {rule}: row keys {sorted(r)} are not {QC_COLUMNS}")
        r = QcRow(**r)
    if not isinstance(r, QcRow):
        raise TypeError(f"QC rule {rule}: returned {type(r).__name__}, not a QcRow")
    if r.status not in _ORDER:
        raise ValueError(f"QC rule {rule}: status {r.status!r} is not one of {', '.join(STATUSES)}")
    return r


def run_qc(tables: dict, rules: dict, nta=None, reference_sample: str | None = None) -> pd.DataFrame:
    """All registered checks on an experiment's tables, as one table (:data:`QC_COLUMNS`).

    Parameters
    ----------
    tables : dict
        :func:`exoimage.experiment.tables.experiment_tables`.
    rules : dict
        :func:`load_rules`.
    nta : NtaRun or None
        The NTA files read (their per-sample checks; None: none).
    reference_sample : str or None
        The sample each sample's markers are compared with (MISEV purity); None: not assessed.
    """
    from .nta import NtaRun

    q = QcInput(tables=tables, rules=rules, nta=nta if nta is not None else NtaRun(),
                reference_sample=reference_sample)
    rows = [astuple(_as_row(r, rule.name)) for rule in list(QC_RULES.values()) for r in rule.fn(q) or ()]
    return pd.DataFrame(rows, columns=QC_COLUMNS)


def sample_qc_rows(qc: pd.DataFrame, tables: dict) -> dict:
    """sample -> its QC rows: its own checks, its TEM images' and its NTA files' (in ``qc`` order)."""
    samples, tem_images, files = tables["samples"], tables["tem_images"], tables["nta_files"]
    out = {}
    item = qc["item"].astype(str)
    for s in samples["sample"]:
        own = (qc["scope"] == "sample") & ((item == s) | (item.str.split(" ").str[0] == s))
        imgs = set(tem_images.loc[tem_images["sample"] == s, "image"])
        fs = set(files.loc[files["sample"] == s, "file"]) if len(files) else set()
        sel = own | ((qc["scope"] == "image") & qc["item"].isin(imgs)) | \
            ((qc["scope"] == "nta file") & qc["item"].isin(fs))
        out[s] = qc[sel]
    return out


def sample_qc_status(qc: pd.DataFrame, tables: dict) -> dict:
    """sample -> the worst status of its checks, of its TEM images' and of its NTA files'."""
    return {s: overall_status(list(rows["status"])) for s, rows in sample_qc_rows(qc, tables).items()}


def _check_name(r) -> str:
    """A check as the reader knows it: ``check`` (plus the image / marker it is about, if not the sample)."""
    return r.check if r.scope == "sample" and " " not in str(r.item) else f"{r.check} ({r.item})"


def sample_qc_reasons(qc: pd.DataFrame, tables: dict) -> dict:
    """sample -> the checks behind its status, worst first: ``"FAIL: a; WARN: b, c"`` ('' when all PASS)."""
    out = {}
    for s, rows in sample_qc_rows(qc, tables).items():
        parts = []
        for st in reversed(STATUSES[1:]):
            names = list(dict.fromkeys(_check_name(r) for r in rows[rows["status"] == st].itertuples()))
            if names:
                parts.append(f"{st}: {', '.join(names)}")
        out[s] = "; ".join(parts)
    return out


# ---------------------------------------------------------------------------
# the checks, in report order


@qc_rule("tem_image")
def _tem_image(q: QcInput):
    """Each TEM image analysed, and its pixel size from a trusted calibration source."""
    cal = q.rules["calibration"]
    for r in q.tables["tem_images"].itertuples():
        if r.status != "ok":
            yield QcRow("image", r.image, "analysed", "FAIL", f"not analysed: {r.error}", "exoimage")
            continue
        src, px = r.pixel_size_source, r.pixel_size_nm
        reg = calibration_source(src)
        has_px = px is not None and np.isfinite(px)
        if reg is not None and reg.trusted:
            yield QcRow("image", r.image, "calibration", "PASS", f"{px:.4g} nm/px from {src}", cal["source"])
        elif reg is not None and reg.name != NO_CALIBRATION and has_px:
            # untrusted (a scale bar read by OCR): the status of its own [calibration] rule, else scale_bar's
            yield QcRow("image", r.image, "calibration", cal.get(src, cal["scale_bar"]),
                        f"{px:.4g} nm/px {reg.description}", cal["source"])
        elif reg is None and has_px:
            yield QcRow("image", r.image, "calibration", cal["missing"],
                        f"{px:.4g} nm/px from {src}, which is not a registered calibration source "
                        f"(exoimage.calibration)", cal["source"])
        else:
            yield QcRow("image", r.image, "calibration", cal["missing"], "no pixel size", cal["source"])


@qc_rule("tem_sample")
def _tem_sample(q: QcInput):
    """Per sample: enough sized vesicles, a stable D50, few border-cut vesicles."""
    tr = q.rules["tem"]
    for s in q.samples.itertuples():
        if not isinstance(s.tem_n, (int, np.integer)) or s.tem_n == 0:
            if s.n_tem_images:
                yield QcRow("sample", s.sample, "TEM vesicles", "FAIL", "no vesicle sized", tr["source"])
            continue
        n_ok = s.tem_n >= tr["min_vesicles"]
        yield QcRow("sample", s.sample, "TEM vesicle count", "PASS" if n_ok else "WARN",
                    f"{s.tem_n} sized vesicles (rule: >= {tr['min_vesicles']})", tr["source"])
        hw = s.tem_d50_ci_halfwidth_pct
        ok = np.isfinite(hw) and hw <= tr["d50_ci_halfwidth_pct"]
        yield QcRow("sample", s.sample, "D50 stability", "PASS" if ok else "WARN",
                    f"95 % CI half-width {hw:.1f} % of D50 (rule: <= {tr['d50_ci_halfwidth_pct']:g} %)",
                    tr["source"])
        bf = s.tem_border_fraction
        yield QcRow("sample", s.sample, "border-cut fraction", "PASS" if bf <= tr["border_fraction"] else "WARN",
                    f"{100 * bf:.0f} % of detected vesicles cut by the border, not sized "
                    f"(rule: <= {100 * tr['border_fraction']:.0f} %)", tr["source"])


@qc_rule("blot_image")
def _blot_image(q: QcInput):
    """Each blot analysed, raw linear data (no lossy-data warning code), no saturated or sub-noise band."""
    br = q.rules["blot"]
    bands = q.tables["bands"]
    for r in q.tables["blot_images"].itertuples():
        if r.status != "ok":
            yield QcRow("blot", r.image, "analysed", "FAIL", f"not analysed: {r.error}", "exoimage")
            continue
        w = str(getattr(r, "warnings", "") or "")
        lossy = [c for c in q.warning_codes(r.image) if is_lossy(c)]
        yield QcRow("blot", r.image, "raw linear data", br["lossy_or_8bit"] if lossy else "PASS",
                    ("; ".join(x for x in w.split("; ") if x) if lossy else "16-bit raw data"), br["source"])
        b = bands[bands["image"] == r.image] if len(bands) else bands
        nsat = int(b["saturated"].astype(bool).sum()) if len(b) else 0
        yield QcRow("blot", r.image, "saturation", br["saturated"] if nsat else "PASS",
                    f"{nsat} saturated band(s)" if nsat else "no saturated band", br["source"])
        if "low_snr" in b:
            nlow = int(b["low_snr"].astype(bool).sum())
            vol = pd.to_numeric(b["volume"], errors="coerce") if "volume" in b else pd.Series(dtype=float)
            nneg = int((vol < 0).sum())
            nsub = int(b["below_noise"].fillna(False).astype(bool).sum()) if "below_noise" in b else nneg
            why = []
            if nneg:
                why.append(f"{nneg} band(s) with a negative volume (background above the band)")
            if nsub > nneg:
                why.append(f"{nsub - nneg} band(s) with a volume within the noise of zero")
            if nlow:
                why.append(f"{nlow} band(s) below the noise threshold (low_snr)")
            status = overall_status([br["below_noise"] if (nneg or nsub) else "PASS",
                                     br["low_snr"] if nlow else "PASS"])
            yield QcRow("blot", r.image, "signal above noise", status,
                        "; ".join(why) if why else "all bands above noise", br["source"])


@qc_rule("blot_ladder_mass")
def _blot_ladder_mass(q: QcInput):
    """A known ladder with published masses: band volumes proportional to the masses (mean |error|)."""
    br = q.rules["blot"]
    chk = q.tables.get("ladder_check")
    for c in (chk.to_dict("records") if chk is not None and len(chk) else []):
        err, lim = c.get("mean_abs_error_pct", np.nan), br["ladder_mass_error_pct"]
        ok = bool(np.isfinite(err) and err <= lim)
        found = f"{c.get('n_bands')} of {c.get('n_sizes')} bands"
        ratio = c.get("ratio", np.nan)
        extra = (f"; volume ratio {ratio:.3f} (masses give {c.get('ratio_expected', np.nan):.3f})"
                 if np.isfinite(ratio) else "")
        yield QcRow("blot", c.get("image", ""), "ladder mass proportionality", "PASS" if ok else br["ladder_mass"],
                    f"{c.get('ladder')} in lane {c.get('lane')}: mean |volume error| vs the vendor's masses "
                    f"{err:.1f} % over {found} (rule: <= {lim:g} %){extra}", br["ladder_source"])


@qc_rule("blot_linear_range")
def _blot_linear_range(q: QcInput):
    """Each dilution series linear (R^2)."""
    br = q.rules["blot"]
    lin = q.tables.get("linear_range")
    for lr in (lin.to_dict("records") if lin is not None and len(lin) else []):
        ok = lr.get("r2", 0) >= br["linear_r2"]
        yield QcRow("blot", lr.get("image", ""), "linear range", "PASS" if ok else "WARN",
                    f"dilution series R^2 = {lr.get('r2', float('nan')):.4f} (rule: >= {br['linear_r2']})",
                    br["source"])


@qc_rule("blot_replicate_cv")
def _blot_replicate_cv(q: QcInput):
    """Replicate CV of each marker's normalised signal per sample."""
    br = q.rules["blot"]
    for r in q.tables["markers"].itertuples():
        cv = getattr(r, "cv_pct", np.nan)
        if not np.isfinite(cv):
            continue
        ok = cv <= br["replicate_cv_pct"]
        yield QcRow("sample", f"{r.sample} ({getattr(r, 'marker', '')})", "replicate CV", "PASS" if ok else "WARN",
                    f"CV {cv:.1f} % over {int(r.n)} replicates (rule: <= {br['replicate_cv_pct']:g} %)",
                    br["source"])


@qc_rule("misev_loading_control")
def _misev_loading_control(q: QcInput):
    """A loading control that is not EV-specific (GAPDH, actin, tubulin)."""
    mr = q.rules["misev"]
    n = q.tables["normalized"]
    if len(n) and "control_marker" in n:
        for cm in sorted(set(n["control_marker"].dropna().astype(str)) - {""}):
            if marker_category(cm) == "promiscuous":
                yield QcRow("experiment", cm, "EV loading control", mr["promiscuous_control"],
                            f"{cm} is not EV-specific and often not proportional to load; "
                            "prefer total protein or loading by particle number", mr["source"])


@qc_rule("nta")
def _nta(q: QcInput):
    """Each NTA file read, and each sample's NTA checks (:func:`exoimage.experiment.nta.nta_qc_rows`)."""
    from .nta import nta_qc_rows

    return [QcRow(**r) for r in nta_qc_rows(q.nta, q.rules.get("nta"))]


@qc_rule("misev_checklist")
def _misev_checklist(q: QcInput):
    """MISEV2018 per sample: a transmembrane, a cytosolic and a negative/purity marker; single-particle counting."""
    mr = q.rules["misev"]
    nta_samples = q.nta.samples_with_data
    for sample, markers in q.markers_by_sample.items():
        cats = {marker_category(m) for m in markers}
        for cat, label in (("transmembrane", "transmembrane marker (CD63/CD81/CD9)"),
                           ("cytosolic", "cytosolic marker (TSG101/ALIX)"),
                           ("negative_or_purity", "negative or purity marker (calnexin/ApoA1)")):
            want = {"negative", "purity"} if cat == "negative_or_purity" else {cat}
            have = bool(cats & want)
            names = ", ".join(sorted(m for m in markers if marker_category(m) in want)) or "none"
            yield QcRow("sample", sample, f"MISEV: {label} measured", "PASS" if have else mr["missing_category"],
                        f"measured: {names}", mr["source"])
        have = sample in nta_samples
        yield QcRow("sample", sample, "MISEV: single-particle counting method",
                    "PASS" if have else mr["single_particle_missing"],
                    "NTA read for this sample" if have else "no NTA (or other particle counting) data",
                    mr["single_particle_source"])


def _marker_folds(normalized: pd.DataFrame, reference: str) -> dict:
    """(sample, marker) -> (fold vs the reference, blots): per blot, the sample's mean relative signal over
    the reference's mean on the same blot (signals of different blots are not comparable), averaged over
    the blots that have both."""
    n = normalized[normalized["sample"].astype(str) != ""]
    folds: dict = {}
    for (img, marker), g in n.groupby(["image", "marker"], sort=False):
        rel = g.groupby(g["sample"].astype(str))["relative"].mean()
        ref = rel.get(reference, np.nan)
        for s, v in rel.items():
            if s != reference:
                folds.setdefault((s, str(marker)), []).append(v / ref if np.isfinite(ref) and ref > 0 else np.nan)
    return {k: (float(np.mean(v)) if np.isfinite(v).all() else float("nan"), len(v)) for k, v in folds.items()}


@qc_rule("misev_purity")
def _misev_purity(q: QcInput):
    """MISEV2018 purity as enrichment: each sample's EV markers (transmembrane, cytosolic) at least
    ``positive_min_fold`` x and its negative / purity markers (calnexin, ApoA1...) at most
    ``negative_max_fold`` x the reference sample's, on the same blot."""
    mr = q.rules["misev"]
    ref = q.reference_sample
    src = mr["purity_source"]
    n = q.tables["normalized"]
    folds = _marker_folds(n, ref) if ref and len(n) else {}
    ref_markers = set(n.loc[n["sample"].astype(str) == ref, "marker"].astype(str)) if ref and len(n) else set()
    for sample, markers in q.markers_by_sample.items():
        if not markers or sample == ref:
            continue
        item = "MISEV: purity (enrichment vs reference)"
        if not ref:
            yield QcRow("sample", sample, item, mr["no_reference"], "not assessed: no reference sample stated "
                        "([experiment] reference_sample in experiment.toml, e.g. a cell lysate lane)", src)
            continue
        worst, notes = "PASS", []
        for m in sorted(markers):
            cat = marker_category(m)
            if cat not in ("transmembrane", "cytosolic", "negative", "purity"):
                continue
            fold, nb = folds.get((sample, m), (float("nan"), 0))
            if m not in ref_markers or not np.isfinite(fold):
                st = mr["no_reference"]
                notes.append(f"{m}: no signal of {ref} on the same blot ({st})")
            elif cat in ("negative", "purity"):
                st = mr["negative_not_depleted"] if fold > mr["negative_max_fold"] else "PASS"
                notes.append(f"{m} {fold:.2f}x {ref} (negative marker; rule: <= {mr['negative_max_fold']:g}x"
                             f"{'' if st == 'PASS' else ', ' + st})")
            else:
                st = mr["positive_not_enriched"] if fold < mr["positive_min_fold"] else "PASS"
                notes.append(f"{m} {fold:.2f}x {ref} (EV marker; rule: >= {mr['positive_min_fold']:g}x"
                             f"{'' if st == 'PASS' else ', ' + st})")
            worst = overall_status([worst, st])
        if not notes:
            continue
        yield QcRow("sample", sample, item, worst, "; ".join(notes), src)
