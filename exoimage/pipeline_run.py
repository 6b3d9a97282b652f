"""The main job: an experiment folder in, tables and the QC report out."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd

from .batch import Progress, run_tasks
from .outputs import InputFile, write_run_json, write_table
from .qc import DEFAULT_RULES, load_rules
from .report import assemble, write_report
from .tem import TemParams

__all__ = ["run_experiment"]


def run_experiment(exp, out, *, workers=None, scheduler=None, progress: bool = True) -> dict:
    """Analyse every image of ``exp`` and write all tables, ``run.json`` and ``report.html``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    TemParams(**exp.tem_params).check()  # fail before any work
    rules = load_rules(exp.rules_path)
    prog = Progress(sum(1 for _ in exp.tasks), enabled=None if progress else False)
    results, stats = run_tasks(exp, out, workers=workers, scheduler=scheduler, progress=prog)
    tables = assemble(exp, results, rules)
    names = {"vesicles": "vesicles", "tem_images": "images", "bands": "bands", "lanes": "lanes",
             "normalized": "normalized", "samples": "samples", "qc": "qc", "blot_images": "blot_images",
             "markers": "markers"}
    for key, fname in names.items():
        write_table(tables[key], out / f"{fname}.csv", parquet=True)
    params = {"tem": asdict(TemParams(**exp.tem_params)),
              "blots": {t.blot.name: {"marker": t.blot.marker, **{k: str(v) for k, v in t.blot.options.items()},
                                      "lane_sheet": str(t.blot.lane_sheet) if t.blot.lane_sheet else None}
                        for t in exp.blots},
              "pixel_size_overrides": {t.rel: t.pixel_size_nm for t in exp.tem if t.pixel_size_nm},
              "rules": str(exp.rules_path or DEFAULT_RULES)}
    report = write_report(out, exp, tables, results, stats, params, str(exp.rules_path or "built-in defaults "
                                                                            "(exoimage/qc_rules.toml)"))
    inputs = [InputFile(t.path, t.rel) for t in sorted(exp.tasks, key=lambda t: t.rel)]
    write_run_json(out, "run", params, inputs, extra={"execution": stats, "experiment": exp.name})
    n_ok = sum(1 for r in results if (r["image_row"] or {}).get("status") == "ok")
    return {"n_images": len(results), "n_ok": n_ok, "n_failed": len(results) - n_ok,
            "n_cached": stats["n_cached"], "report": str(report), "tables": tables, "stats": stats}
