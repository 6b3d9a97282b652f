"""An experiment's tables from its per-image records (the one place they are assembled).

:func:`experiment_tables` turns records (:mod:`exoimage.experiment.records`) and the NTA
files read (:class:`exoimage.experiment.nta.NtaRun`) into the tables of a run: per
vesicle, per image, per lane, per band, normalised signal, per marker and
sample, per sample, the warnings with their codes, and the NTA tables.
:func:`assemble` adds the QC checks (:func:`exoimage.experiment.qc.run_qc`) and each
sample's overall QC status. ``exoimage run`` and the napari session report
both use :func:`assemble`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..stats import marker_summary, size_summary
from ..tem import IMAGE_COLUMNS as TEM_IMAGE_COLUMNS
from ..tem import VESICLE_COLUMNS
from ..warning_codes import warning_code

__all__ = ["experiment_tables", "assemble", "SAMPLE_COLUMNS", "WARNING_COLUMNS", "sample_names_of", "concat_tables"]

SAMPLE_COLUMNS = ["sample", "label", "group", "n_tem_images", "tem_n", "tem_mean_nm", "tem_sd_nm",
                  "tem_median_nm", "tem_mode_nm", "tem_d10_nm", "tem_d50_nm", "tem_d90_nm", "tem_span",
                  "tem_d50_ci_low_nm", "tem_d50_ci_high_nm", "tem_d50_ci_halfwidth_pct",
                  "tem_border_fraction"]

#: The ``warnings`` table: one row per warning of an image, with its code (:mod:`exoimage.warning_codes`).
WARNING_COLUMNS = ["image", "kind", "code", "warning"]


def concat_tables(frames, columns=None) -> pd.DataFrame:
    """The non-empty ``frames`` one after the other (an empty table with ``columns`` when there is none)."""
    frames = [f for f in frames if f is not None and len(f)]
    if not frames:
        return pd.DataFrame(columns=columns or [])
    return pd.concat(frames, ignore_index=True)


def sample_names_of(records, sample_meta: dict | None = None, nta_samples=()) -> list:
    """Samples in table order: those of ``sample_meta`` (experiment.toml), then of the TEM
    records, then of the NTA files, each once."""
    names = list(sample_meta or {})
    for r in records:
        if r.kind == "tem" and r.sample not in names:
            names.append(r.sample)
    for s in nta_samples:
        if s not in names:
            names.append(s)
    return names


def experiment_tables(records: list, *, sample_names: list, sample_meta: dict | None = None, nta=None,
                      nta_rules: dict | None = None) -> dict:
    """All tables of an experiment except the QC checks (see :func:`assemble`).

    Parameters
    ----------
    records : list of ImageRecord
        In table order (a run sorts them by image name).
    sample_names : list of str
        The rows of ``samples``, in order.
    sample_meta : dict
        sample -> its ``[samples.X]`` metadata (label, group, protein_ug, ...).
    nta : NtaRun or None
        The NTA files read (None: none).
    nta_rules : dict or None
        The ``[nta]`` section of the QC rules (which dilutions the NTA sample columns use).
    """
    from ..blot import BAND_COLUMNS, LANE_COLUMNS
    from ..blot.normalize import NORMALIZED_COLUMNS
    from .nta import NtaRun, nta_sample_columns, nta_size_density
    from .records import LADDER_CHECK_KEYS

    nta = nta if nta is not None else NtaRun()
    sample_meta = sample_meta or {}
    tem = [r for r in records if r.kind == "tem"]
    blot = [r for r in records if r.kind == "blot"]
    vesicles = concat_tables([r.vesicles for r in tem], ["image", "sample"] + VESICLE_COLUMNS[1:])
    tem_images = pd.DataFrame([{**{c: None for c in TEM_IMAGE_COLUMNS}, **r.image_row,
                                "sample": r.sample, "sha256": r.sha256} for r in tem],
                              columns=["sample"] + TEM_IMAGE_COLUMNS + ["sha256"])
    blot_images = pd.DataFrame([{**r.image_row, "sha256": r.sha256} for r in blot])
    if blot_images.empty:
        blot_images = pd.DataFrame(columns=["image", "status", "error", "marker", "warnings", "sha256"])
    lanes = concat_tables([r.lanes for r in blot], LANE_COLUMNS)
    bands = concat_tables([r.bands for r in blot], BAND_COLUMNS)
    normalized = concat_tables([r.normalized for r in blot],
                         NORMALIZED_COLUMNS[:1] + ["marker", "control_marker"] + NORMALIZED_COLUMNS[1:])
    markers = marker_summary(normalized)
    linear = [{**lr, "image": r.rel} for r in blot for lr in (r.linear_range or []) if lr]
    ladder_check = pd.DataFrame([{"image": r.rel, **r.ladder_check} for r in blot if getattr(r, "ladder_check", None)],
                                columns=["image", *LADDER_CHECK_KEYS])
    warnings = pd.DataFrame([{"image": r.rel, "kind": r.kind, "code": warning_code(w),
                              "warning": str(w)} for r in records for w in r.warnings], columns=WARNING_COLUMNS)

    rows = []
    for s in sample_names:
        meta = sample_meta.get(s, {})
        v = vesicles[vesicles["sample"] == s] if len(vesicles) else vesicles
        sized = v.loc[~v["touches_border"].astype(bool), "diameter_nm"] if len(v) else pd.Series(dtype=float)
        n_border = int(v["touches_border"].astype(bool).sum()) if len(v) else 0
        st = size_summary(sized.to_numpy(float), n_border)
        row = {"sample": s, "label": meta.get("label", s), "group": meta.get("group", ""),
               "n_tem_images": int((tem_images["sample"] == s).sum())}
        row.update({f"tem_{k}" if not k.startswith("tem_") else k: val for k, val in st.items()})
        row.update(nta_sample_columns(nta, s, meta, row.get("tem_d50_nm"), nta_rules))
        for m in markers[markers["sample"] == s].itertuples():
            row[f"{m.marker}_relative_mean"] = m.mean
            row[f"{m.marker}_relative_sd"] = m.sd
            row[f"{m.marker}_cv_pct"] = m.cv_pct
            row[f"{m.marker}_n"] = m.n
        rows.append(row)
    samples = pd.DataFrame(rows)
    for c in SAMPLE_COLUMNS:
        if c not in samples:
            samples[c] = np.nan
    extra = [c for c in samples.columns if c not in SAMPLE_COLUMNS]
    samples = samples[SAMPLE_COLUMNS + extra]
    return {"vesicles": vesicles, "tem_images": tem_images, "blot_images": blot_images, "lanes": lanes,
            "bands": bands, "normalized": normalized, "markers": markers, "samples": samples,
            "linear_range": pd.DataFrame(linear), "ladder_check": ladder_check, "warnings": warnings, "nta_files": nta.files,
            "nta_videos": nta.videos, "nta_bins": nta.bins, "nta_warnings": nta.warnings,
            "nta_density": nta_size_density(nta.bins)}


def assemble(records: list, *, sample_names: list, sample_meta: dict | None = None, rules: dict,
             nta=None, reference_sample: str | None = None) -> dict:
    """:func:`experiment_tables`, then the QC checks (``qc``), each sample's ``qc_status`` and
    ``qc_reason`` (the checks that set it). ``reference_sample``: the MISEV purity reference."""
    from .nta import NtaRun
    from .qc import run_qc, sample_qc_reasons, sample_qc_status

    nta = nta if nta is not None else NtaRun()
    tables = experiment_tables(records, sample_names=sample_names, sample_meta=sample_meta, nta=nta,
                               nta_rules=(rules or {}).get("nta"))
    tables["qc"] = run_qc(tables, rules, nta=nta, reference_sample=reference_sample)
    samples = tables["samples"]
    samples["qc_status"] = samples["sample"].map(sample_qc_status(tables["qc"], tables))
    samples["qc_reason"] = samples["sample"].map(sample_qc_reasons(tables["qc"], tables))
    # the table order of exoimage run (qc after samples)
    order = ["vesicles", "tem_images", "blot_images", "lanes", "bands", "normalized", "markers", "samples", "qc"]
    return {k: tables[k] for k in order} | {k: v for k, v in tables.items() if k not in order}
