"""The main job: an experiment folder in, tables and the QC report out."""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from .batch import Progress, run_tasks
from .nta_run import read_experiment_nta
from .outputs import InputFile, write_run_json, write_table
from .qc import DEFAULT_RULES, load_rules
from .report import assemble, write_report
from .tem import TemParams

__all__ = ["run_experiment", "check_output_folder"]


def check_output_folder(out) -> Path:
    """Create ``out`` if needed and check that files can be written in it (before any work).

    Raises
    ------
    ValueError
        One line: ``out`` is a file, cannot be created, or is not writable.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".exoimage-write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{out}: cannot write in the output folder ({exc.strerror or exc})") from None
    return out


def run_experiment(exp, out, *, workers=None, scheduler=None, progress: bool = True,
                   retry_failed: bool = False) -> dict:
    """Analyse every image of ``exp`` and write all tables, ``run.json`` and ``report.html``.

    NTA exports (``nta/<sample>/``) are read in this process after the images
    (small text files; see :mod:`exoimage.nta_run`); an unreadable one is an
    error row in ``nta_files`` and the run goes on. Images whose failure an
    earlier run remembered are not retried unless ``retry_failed`` (see
    :mod:`exoimage.batch`).

    Raises
    ------
    ValueError
        Bad ``out``, ``workers`` or ``scheduler`` (one line, before any work).
    OSError
        The results could not be written (e.g. disk full); files already
        written stay whole (every file is written to a temporary name and renamed).
    """
    out = check_output_folder(out)
    TemParams(**exp.tem_params).check()  # fail before any work
    rules = load_rules(exp.rules_path)
    prog = Progress(sum(1 for _ in exp.tasks), enabled=None if progress else False)
    results, stats = run_tasks(exp, out, workers=workers, scheduler=scheduler, progress=prog,
                               retry_failed=retry_failed)
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
            "n_cached": stats["n_cached"], "n_failed_remembered": stats["n_failed_remembered"],
            "report": str(report), "tables": tables, "stats": stats}


def write_session_report(out, *, name: str = "interactive session", tem_items=(), blot_items=(),
                         rules_path=None) -> Path:
    """The QC report for results that are already in memory (e.g. the napari plugin's open layers).

    Parameters
    ----------
    out : path
        Output folder (report.html, report_data/, overlays/ and the tables).
    tem_items : iterable of dict
        ``name``, ``sample``, ``image_row`` (as :func:`exoimage.tem.analyze_tem_image`
        gives it), ``vesicles`` (table, possibly re-measured after edits),
        ``display`` (image as shown) and ``labels`` (possibly edited).
    blot_items : iterable of dict
        ``name``, ``marker``, ``image`` (:class:`~exoimage.io.Image`), ``result``
        (:class:`~exoimage.blot.BlotResult`, e.g. of hand-edited lanes and
        bands), ``normalized`` (table or None) and optionally ``params``.

    The same tables, rules and report as :func:`run_experiment`, so a report
    written from the plugin reads like one from ``exoimage run``.
    """
    from .experiment import BlotSpec, Experiment, ImageTask
    from .nta_run import read_experiment_nta
    from .outputs import safe_stem, save_png
    from .tem import draw_overlay, summarize_diameters

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results, tem_tasks, blot_tasks = [], [], []
    for it in tem_items:
        v = it["vesicles"].copy()
        v["image"] = it["name"]
        if "sample" not in v:
            v.insert(1, "sample", it["sample"])
        row = {**it["image_row"], **summarize_diameters(v), "image": it["name"]}
        stem = safe_stem(it["name"])
        save_png(out / "overlays" / f"{stem}.png", draw_overlay(it["display"], it["labels"], v))
        results.append({"kind": "tem", "rel": it["name"], "sample": it["sample"], "sha256": None,
                        "image_row": row, "vesicles": v, "overlay": f"overlays/{stem}.png"})
        tem_tasks.append(ImageTask("tem", Path(it["name"]), it["name"], it["sample"]))
    from .blot import BlotParams, draw_blot_overlay
    from .blot.pipeline import _image_row as blot_image_row

    for it in blot_items:
        stem = safe_stem(it["name"])
        res = it["result"]
        save_png(out / "overlays" / f"{stem}.png", draw_blot_overlay(it["image"], res))
        it = {**it, "lanes": res.lanes.assign(image=it["name"]), "bands": res.bands.assign(image=it["name"]),
              "image_row": blot_image_row(it["name"], res, it["image"], it.get("params") or BlotParams())}
        n = it.get("normalized")
        if n is not None and len(n):
            n = n.copy()
            if "marker" not in n:
                n.insert(1, "marker", it.get("marker") or "")
            if "control_marker" not in n:
                n.insert(2, "control_marker", "")
        results.append({"kind": "blot", "rel": it["name"], "sample": None, "sha256": None,
                        "image_row": {**it["image_row"], "marker": it.get("marker")}, "lanes": it["lanes"],
                        "bands": it["bands"], "normalized": n, "marker": it.get("marker"),
                        "overlay": f"overlays/{stem}.png"})
        blot_tasks.append(ImageTask("blot", Path(it["name"]), it["name"], None, None,
                                    BlotSpec(stem, it.get("marker"), None, {})))
    exp = Experiment(root=out, name=name, tem=tem_tasks, blots=blot_tasks, samples={}, tem_params={},
                     config={}, nta={}, rules_path=Path(rules_path) if rules_path else None)
    rules = load_rules(exp.rules_path)
    nta = read_experiment_nta(exp)
    tables = assemble(exp, results, rules, nta=nta)
    for key, fname in (("vesicles", "vesicles"), ("tem_images", "images"), ("bands", "bands"),
                       ("lanes", "lanes"), ("normalized", "normalized"), ("samples", "samples"), ("qc", "qc")):
        write_table(tables[key], out / f"{fname}.csv")
    stats = {"executor": "interactive (napari)", "n_computed": len(results), "n_cached": 0}
    return write_report(out, exp, tables, results, stats, {"source": "results open in an interactive session"},
                        str(rules_path or "built-in defaults (exoimage/qc_rules.toml)"))
