"""``exoimage run``: a whole experiment folder -> tables and the QC report."""

from __future__ import annotations

import sys
from pathlib import Path

from . import add_max_pixels_option


def add_parser(sub):
    p = sub.add_parser(
        "run", help="analyse a whole experiment folder and write the QC report",
        description="Analyse an experiment folder (tem/<sample>/*, blots/* with <blot>.lanes.csv, "
                    "optional experiment.toml; see the README) on local worker processes or a Dask "
                    "cluster, and write per-vesicle/image/band/lane/sample tables (CSV and Parquet) and "
                    "report.html into --out. A rerun with the same inputs and parameters reuses finished "
                    "images.")
    p.add_argument("experiment", type=Path, metavar="EXPERIMENT", help="experiment folder")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local worker processes (default: all cores; 0 = run in this process)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of an existing dask.distributed scheduler, e.g. tcp://host:8786 "
                        "(workers must see the same file system)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_max_pixels_option(p)  # overrides [experiment] max_pixels
    return p


def run(args) -> int:
    from ..experiment import ExperimentError, load_experiment
    from ..pipeline_run import run_experiment

    try:
        exp = load_experiment(args.experiment)
    except ExperimentError as exc:
        print(f"exoimage run: {exc}", file=sys.stderr)
        return 2
    if args.max_pixels is not None:
        exp.max_pixels = args.max_pixels
    summary = run_experiment(exp, args.out, workers=args.workers, scheduler=args.scheduler,
                             progress=not args.no_progress)
    print(f"exoimage run: {summary['n_ok']}/{summary['n_images']} images analysed "
          f"({summary['n_cached']} reused), {summary['n_failed']} failed; "
          f"{summary['n_nta_files'] - summary['n_nta_failed']}/{summary['n_nta_files']} NTA files read "
          f"-> {summary['report']}")
    return 0 if summary["n_ok"] > 0 or summary["n_nta_files"] > summary["n_nta_failed"] else 1
