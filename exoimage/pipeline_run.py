"""The main job: an experiment folder in, tables and the QC report out."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd

from .batch import Progress, run_tasks
from .nta_run import read_experiment_nta
from .outputs import InputFile, write_run_json, write_table
from .qc import DEFAULT_RULES, load_rules
from .report import assemble, write_report
from .tem import TemParams

__all__ = ["run_experiment"]


def run_experiment(exp, out, *, workers=None, scheduler=None, progress: bool = True) -> dict:
    """Analyse every image of ``exp`` and write all tables, ``run.json`` and ``report.html``.

    NTA exports (``nta/<sample>/``) are read in this process after the images
    (small text files; see :mod:`exoimage.nta_run`); an unreadable one is an
    error row in ``nta_files`` and the run goes on.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    TemParams(**exp.tem_params).check()  # fail before any work
    rules = load_rules(exp.rules_path)
    prog = Progress(sum(1 for _ in exp.tasks), enabled=None if progress else False)
    results, stats = run_tasks(exp, out, workers=workers, scheduler=scheduler, progress=prog)
    nta = read_experiment_nta(exp)
    tables = assemble(exp, results, rules, nta=nta)
    names = {"vesicles": "vesicles", "tem_images": "images", "bands": "bands", "lanes": "lanes",
             "normalized": "normalized", "samples": "samples", "qc": "qc", "blot_images": "blot_images",
             "markers": "markers", "nta_files": "nta_files", "nta_videos": "nta_videos", "nta_bins": "nta_bins",
             "nta_warnings": "nta_warnings"}
    for key, fname in names.items():
        write_table(tables[key], out / f"{fname}.csv", parquet=True)
    params = {"tem": asdict(TemParams(**exp.tem_params)),
              "blots": {t.blot.name: {"marker": t.blot.marker, **{k: str(v) for k, v in t.blot.options.items()},
                                      "lane_sheet": str(t.blot.lane_sheet) if t.blot.lane_sheet else None}
                        for t in exp.blots},
              "pixel_size_overrides": {t.rel: t.pixel_size_nm for t in exp.tem if t.pixel_size_nm},
              "rules": str(exp.rules_path or DEFAULT_RULES),
              "nta": {s: {k: exp.samples.get(s, {})[k] for k in ("dilution_factor", "protein_ug", "volume_ml")
                          if k in exp.samples.get(s, {})} for s in exp.nta}}
    report = write_report(out, exp, tables, results, stats, params, str(exp.rules_path or "built-in defaults "
                                                                            "(exoimage/qc_rules.toml)"))
    inputs = [InputFile(t.path, t.rel) for t in sorted(exp.tasks, key=lambda t: t.rel)]
    inputs += [InputFile(exp.root / f, f) for f in nta.files["file"]]
    write_run_json(out, "run", params, inputs, extra={"execution": stats, "experiment": exp.name})
    n_ok = sum(1 for r in results if (r["image_row"] or {}).get("status") == "ok")
    n_nta = int((nta.files["status"] != "companion").sum())
    n_nta_failed = int((nta.files["status"] == "error").sum())
    return {"n_images": len(results), "n_ok": n_ok, "n_failed": len(results) - n_ok,
            "n_nta_files": n_nta, "n_nta_failed": n_nta_failed,
            "n_cached": stats["n_cached"], "report": str(report), "tables": tables, "stats": stats}
