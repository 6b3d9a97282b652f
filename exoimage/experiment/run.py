"""The main job: an experiment folder in, tables and the QC report out."""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from .batch import Progress, run_tasks
from .nta import read_experiment_nta
from ..outputs import InputFile, write_run_json, write_table
from .qc import DEFAULT_RULES, load_rules
from .report import write_report
from .tables import assemble, sample_names_of
from ..tem import TemParams

__all__ = ["run_experiment", "check_output_folder", "write_session_report"]


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


def _rel(path, root) -> str:
    """``path`` relative to the experiment folder when it is inside it (else as given)."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)


def run_experiment(exp, out, *, workers=None, scheduler=None, progress: bool = True,
                   retry_failed: bool = False, command: str | None = None) -> dict:
    """Analyse every image of ``exp`` and write all tables, ``run.json`` and ``report.html``.

    NTA exports (``nta/<sample>/``) are read in this process after the images
    (small text files; see :mod:`exoimage.experiment.nta`); an unreadable one is an
    error row in ``nta_files`` and the run goes on. Images whose failure an
    earlier run remembered are not retried unless ``retry_failed`` (see
    :mod:`exoimage.experiment.batch`).
    ``command``: the command line that started the run (shown in the report's provenance).

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
    prog = Progress(enabled=None if progress else False)
    results, stats = run_tasks(exp, out, workers=workers, scheduler=scheduler, progress=prog,
                               retry_failed=retry_failed)
    nta = read_experiment_nta(exp)
    if command:  # the command line (exoimage run ...), shown in the report's provenance
        stats = {**stats, "command": command}
    tables = assemble(results, sample_names=exp.sample_names, sample_meta=exp.samples, rules=rules, nta=nta,
                      reference_sample=exp.reference_sample)
    names = {"vesicles": "vesicles", "tem_images": "images", "bands": "bands", "lanes": "lanes",
             "normalized": "normalized", "samples": "samples", "qc": "qc", "blot_images": "blot_images",
             "markers": "markers", "nta_files": "nta_files", "nta_videos": "nta_videos", "nta_bins": "nta_bins",
             "nta_warnings": "nta_warnings"}
    for key, fname in names.items():
        write_table(tables[key], out / f"{fname}.csv", parquet=True)
    params = {"tem": asdict(TemParams(**exp.tem_params)),
              "blots": {t.blot.name: {"marker": t.blot.marker,
                                      **{k: _rel(v, exp.root) if isinstance(v, Path) else v
                                         for k, v in t.blot.options.items()},
                                      "lane_sheet": _rel(t.blot.lane_sheet, exp.root) if t.blot.lane_sheet else None}
                        for t in exp.blots},
              "pixel_size_overrides": {t.rel: t.pixel_size_nm for t in exp.tem if t.pixel_size_nm},
              "rules": str(exp.rules_path or DEFAULT_RULES),
              "nta": {s: {k: exp.samples.get(s, {})[k] for k in ("dilution_factor", "protein_ug", "volume_ml")
                          if k in exp.samples.get(s, {})} for s in exp.nta}}
    if exp.reference_sample:
        params["reference_sample"] = exp.reference_sample
    report = write_report(out, tables, results, title=exp.name, run_stats={**stats, "writes_run_json": True},
                          params=params,
                          rules_source=str(exp.rules_path or "built-in defaults (exoimage/experiment/qc_rules.toml)"))
    inputs = [InputFile(t.path, t.rel) for t in sorted(exp.tasks, key=lambda t: t.rel)]
    inputs += [InputFile(exp.root / f, f) for f in nta.files["file"]]
    write_run_json(out, "run", params, inputs, extra={"execution": stats, "experiment": exp.name})
    n_ok = sum(1 for r in results if r.ok)
    n_nta = int((nta.files["status"] != "companion").sum())
    n_nta_failed = int((nta.files["status"] == "error").sum())
    return {"n_images": len(results), "n_ok": n_ok, "n_failed": len(results) - n_ok,
            "n_nta_files": n_nta, "n_nta_failed": n_nta_failed,
            "n_cached": stats["n_cached"], "n_failed_remembered": stats["n_failed_remembered"],
            "report": str(report), "tables": tables, "stats": stats}


def write_session_report(out, records, *, name: str = "interactive session", overlays=None,
                         rules_path=None) -> Path:
    """The QC report for results that are already in memory (e.g. the napari plugin's open layers).

    Parameters
    ----------
    out : path
        Output folder (report.html, report_data/, overlays/ and the tables).
    records : iterable of ImageRecord
        One per image, made with :func:`exoimage.experiment.records.tem_record` /
        :func:`exoimage.experiment.records.blot_record_from_result` from the results as they
        are now (edits included), each with its real :class:`~exoimage.experiment.records.Provenance`
        (input file, SHA-256, parameters, version, edits).
    name : str
        Title of the report.
    overlays : mapping, optional
        image name (``record.rel``) -> RGB overlay picture (uint8 array) to
        show for it (e.g. :func:`exoimage.tem.draw_overlay` of the edited labels).
    rules_path : path, optional
        A lab's QC rules file (default: the built-in rules).

    The same tables, rules and report as :func:`run_experiment`, so a report
    written from the plugin reads like one from ``exoimage run``.
    """
    from dataclasses import asdict, replace

    from .nta import NtaRun
    from ..outputs import safe_stem, save_png

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    overlays = dict(overlays or {})
    recs = []
    for r in records:
        if r.rel in overlays:
            stem = safe_stem(r.rel)
            save_png(out / "overlays" / f"{stem}.png", overlays[r.rel])
            r = replace(r, overlay=f"overlays/{stem}.png")
        recs.append(r)
    rules = load_rules(rules_path)
    tables = assemble(recs, sample_names=sample_names_of(recs), sample_meta={}, rules=rules, nta=NtaRun())
    for key, fname in (("vesicles", "vesicles"), ("tem_images", "images"), ("bands", "bands"),
                       ("lanes", "lanes"), ("normalized", "normalized"), ("samples", "samples"), ("qc", "qc")):
        write_table(tables[key], out / f"{fname}.csv")
    stats = {"executor": "interactive (napari)", "n_computed": len(recs), "n_cached": 0}
    params = {"source": "results open in an interactive session",
              "images": {r.rel: asdict(r.provenance) for r in recs}}
    return write_report(out, tables, recs, title=name, run_stats=stats, params=params,
                        rules_source=str(rules_path or "built-in defaults (exoimage/experiment/qc_rules.toml)"))
