"""``exoimage run``: a whole experiment folder -> tables and the QC report.

Exit status: 0 when at least one image or NTA file was analysed; 1 when nothing
could be analysed, or the results could not be written (e.g. the disk is full);
2 for bad options or configuration (reported before any work starts).
"""

from __future__ import annotations

import errno
import os
import shlex
import sys
from pathlib import Path

from . import add_max_pixels_option

_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def add_parser(sub):
    p = sub.add_parser(
        "run", help="analyse a whole experiment folder and write the QC report",
        description="Analyse an experiment folder (tem/<sample>/*, blots/* with <blot>.lanes.csv, "
                    "optional experiment.toml; see the README) on local worker processes or a Dask "
                    "cluster, and write per-vesicle/image/band/lane/sample tables (CSV and Parquet) and "
                    "report.html into --out. A rerun with the same inputs and parameters reuses finished "
                    "images, and does not retry images whose analysis failed (see --retry-failed).")
    p.add_argument("experiment", type=Path, metavar="EXPERIMENT", help="experiment folder")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local worker processes (default: all cores, or this process for a small run: at most "
                        "12 images, 8.4 Mpx together; more than the cores are capped at the core count; "
                        "0 = run in this process, one image at a time)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of an existing dask.distributed scheduler, e.g. tcp://host:8786 "
                        "(workers must see the same file system)")
    p.add_argument("--retry-failed", action="store_true",
                   help="analyse again the images whose analysis failed in an earlier run (a crash, "
                        "running out of memory, an unexpected error); by default they keep their error row")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_pdf_options(p)
    add_max_pixels_option(p)
    from .tem import add_ocr_option

    add_ocr_option(p)
    return p


def add_pdf_options(p, required: bool = False) -> None:
    """``--pdf`` and ``--browser`` (shared with ``exoimage report``)."""
    p.add_argument("--pdf", action="store_true", required=required,
                   help="also write report.pdf (A4, the report's print layout), printed by headless Chromium")
    p.add_argument("--browser", default=None, metavar="EXE",
                   help="the Chromium or Chrome executable that prints the PDF (default: $EXOIMAGE_BROWSER, "
                        "else chromium, chromium-browser, google-chrome on PATH)")


def print_pdf(prog: str, report, browser) -> int:
    """Write report.pdf next to ``report``; 0, or 1 with a one-line error (other outputs are kept)."""
    from ..experiment.report import BrowserNotFound, write_pdf

    try:
        pdf = write_pdf(report, browser=browser)
    except (BrowserNotFound, RuntimeError) as exc:
        print(f"exoimage {prog}: report.pdf not written: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(f"exoimage {prog}: -> {pdf}")
    return 0


def _fail(msg: str) -> int:
    print(f"exoimage run: {' '.join(str(msg).split())}", file=sys.stderr)
    return 2


def _as_option(exc) -> str:
    """A library error about the ``scheduler`` argument, worded with the option (``--scheduler``)."""
    msg = str(exc)
    return "--" + msg if msg.startswith("scheduler ") else msg


def run(args) -> int:
    from ..experiment.batch import connect_scheduler
    from ..experiment.layout import ExperimentError, load_experiment
    from ..experiment.run import check_output_folder, run_experiment

    if args.browser and not args.pdf:
        return _fail("--browser names the browser that prints the PDF: give --pdf too")
    workers = args.workers
    if workers is not None and workers < 0:
        return _fail(f"--workers {workers}: must be 0 (run in this process) or more")
    cores = os.cpu_count() or 1
    if workers is not None and workers > cores:
        print(f"exoimage run: --workers {workers} capped at {cores} (the number of cores)", file=sys.stderr)
        workers = cores
    try:
        exp = load_experiment(args.experiment)
    except ExperimentError as exc:
        return _fail(exc)
    try:
        check_output_folder(args.out)
    except ValueError as exc:
        return _fail(f"--out {exc}")
    if args.scheduler is not None:
        try:
            connect_scheduler(args.scheduler).close()
        except ValueError as exc:
            return _fail(_as_option(exc))
    if args.max_pixels is not None:
        exp.max_pixels = args.max_pixels
    if getattr(args, "ocr", None):
        from ..scalebar import OCRUnavailableError, require_ocr

        try:
            require_ocr(args.ocr)
        except OCRUnavailableError as exc:
            return _fail(f"--ocr {args.ocr}: {exc}")
        exp.ocr_engine = args.ocr
    try:
        summary = run_experiment(exp, args.out, workers=workers, scheduler=args.scheduler,
                                 progress=not args.no_progress, retry_failed=args.retry_failed,
                                 command=" ".join(["exoimage"] + [shlex.quote(str(a)) for a in
                                                                  getattr(args, "_argv", ["run"])]))
    except ValueError as exc:  # e.g. the scheduler went away between the check and the run
        return _fail(_as_option(exc))
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        if exc.errno in _DISK_FULL:
            msg = (f"{args.out}: disk full (no space left on device{where}) while writing the results; files "
                   f"already written are whole - free space and rerun (finished images are reused)")
        else:
            msg = f"{args.out}: cannot write the results ({exc.strerror or exc}{where})"
        print(f"exoimage run: {' '.join(msg.split())}", file=sys.stderr)
        return 1
    remembered = summary.get("n_failed_remembered", 0)
    note = (f" ({remembered} failed in an earlier run and not retried: --retry-failed)" if remembered else "")
    print(f"exoimage run: {summary['n_ok']}/{summary['n_images']} images analysed "
          f"({summary['n_cached']} reused), {summary['n_failed']} failed{note}; "
          f"{summary['n_nta_files'] - summary['n_nta_failed']}/{summary['n_nta_files']} NTA files read "
          f"-> {summary['report']}")
    status = 0 if summary["n_ok"] > 0 or summary["n_nta_files"] > summary["n_nta_failed"] else 1
    if args.pdf:  # after every other output is written: a missing browser loses nothing else
        status = max(status, print_pdf("run", summary["report"], args.browser))
    return status
