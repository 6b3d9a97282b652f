"""``exoimage tem``: find and size vesicles in negative-stain TEM micrographs."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from ..outputs import one_line, safe_stem, save_png, write_run_json, write_table
from ..tem import IMAGE_COLUMNS, PIXEL_SIZE_META, VESICLE_COLUMNS, TemParams, analyze_tem_file, draw_overlay
from ..io import write_calibrated_tiff
from ..experiment.batch import memory_problem
from ..params import add_arguments, add_option, from_args
from . import add_max_pixels_option
from ._options import build_or_fail, inputs_and_out, check_out_dir, cli_words, one_line_errors


def add_parser(sub):
    p = sub.add_parser(
        "tem", help="find and size vesicles in TEM micrographs",
        description="Find the vesicles in negative-stain TEM micrographs and measure each "
                    "one's diameter in nm. Writes vesicles.csv, images.csv, overlays/*.png, "
                    "labels/*.tif and run.json into --out.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created)")
    add_tem_options(p)
    add_ocr_option(p)
    add_max_pixels_option(p)
    return one_line_errors(p)


def add_ocr_option(p):
    """``--ocr ENGINE``: the OCR engine reading scale-bar labels (default PP-OCR via rapidocr)."""
    from ..scalebar import DEFAULT_OCR_ENGINE, OCR_ENGINES

    p.add_argument("--ocr", choices=OCR_ENGINES, default=None, metavar="ENGINE",
                   help=f"OCR engine for burned-in scale-bar labels: {', '.join(OCR_ENGINES)} "
                        f"(default {DEFAULT_OCR_ENGINE}; tesseract needs pip install 'exoimage[ocr]' and "
                        f"apt-get install tesseract-ocr)")


def use_ocr_engine(args) -> None:
    """Make ``--ocr`` the engine of this process and of the worker processes it starts."""
    import os

    from ..scalebar import OCR_ENGINE_ENV

    if getattr(args, "ocr", None):
        os.environ[OCR_ENGINE_ENV] = args.ocr


def add_tem_options(p):
    """Options shared by every command that runs the TEM pipeline: ``--pixel-size`` and one per
    field of :class:`~exoimage.tem.TemParams`, generated from their metadata (rules, unit, help,
    default; :func:`exoimage.params.add_arguments`)."""
    add_option(p, "pixel_size_nm", PIXEL_SIZE_META, None)
    add_arguments(p, TemParams)


def params_from_args(args, prog: str = "exoimage tem") -> TemParams:
    """The detector parameters of the options; checks every option first (the output folder
    too, when there is ``--out``) and ends the command with one line on a bad one."""
    if getattr(args, "out", None) is not None:
        check_out_dir(prog, args.out)
    return build_or_fail(prog, lambda: from_args(TemParams, args), TemParams)


def say(message: str) -> str:
    """A library message in the command line's words (parameters named by their options)."""
    return cli_words(message, TemParams, extra={"pixel_size_nm": PIXEL_SIZE_META["cli"]})


def _error_row(rel: str, message: str) -> dict:
    row = {c: None for c in IMAGE_COLUMNS}
    row.update(image=rel, status="error", error=message, n_vesicles=0, n_border=0)
    return row


def _one_file(f, args, params, out: Path):
    """(image row, vesicle table or None) of one input; never raises an Exception.

    Any unexpected failure (an OpenCV assertion, MemoryError, a full disk while
    writing its overlay) becomes this file's one-line error row; the outputs it
    had written in this run are removed so nothing contradicts the row.
    """
    if f.error:  # found at discovery (FIFO, device, link loop...): never opened
        print(f"{f.rel}: error: {say(f.error)}", file=sys.stderr)
        return _error_row(f.rel, f.error), None
    too_big = memory_problem(f.path, "tem", max_pixels=args.max_pixels)
    if too_big:  # inside the pixel budget but more than this machine can hold: refused before decoding
        print(f"{f.rel}: error: {too_big}", file=sys.stderr)
        return _error_row(f.rel, too_big), None
    written = []
    try:
        res = analyze_tem_file(f.path, pixel_size_nm=args.pixel_size_nm, params=params, name=f.rel,
                               max_pixels=args.max_pixels)
        if not res.ok:
            print(f"{f.rel}: error: {say(res.image_row['error'])}", file=sys.stderr)
            return res.image_row, None
        stem = safe_stem(f.rel)
        overlay, labels = out / "overlays" / f"{stem}.png", out / "labels" / f"{stem}.tif"
        written.append(overlay)
        save_png(overlay, draw_overlay(res.display, res.labels, res.vesicles, pixel_size_nm=res.pixel_size_nm))
        written.append(labels)
        write_calibrated_tiff(labels, res.labels, res.pixel_size_nm)
    except Exception as exc:  # noqa: BLE001 - one file's failure is its error row (MemoryError included)
        for w in written:
            try:
                w.unlink(missing_ok=True)
            except OSError:
                pass
        msg = one_line(exc)
        print(f"{f.rel}: error: {say(msg)}", file=sys.stderr)
        return _error_row(f.rel, msg), None
    print(f"{f.rel}: {res.image_row['n_vesicles']} vesicles, "
          f"median {res.image_row['diameter_median_nm']:.1f} nm "
          f"(pixel size {res.pixel_size_nm:.4g} nm, {res.image_row['pixel_size_source']})")
    return res.image_row, res.vesicles


def run(args) -> int:
    params = params_from_args(args)
    use_ocr_engine(args)
    found = inputs_and_out("exoimage tem", args.paths, args.out)
    if found is None:
        return 1
    inputs, out = found
    image_rows, tables = [], []
    for f in inputs:
        row, ves = _one_file(f, args, params, out)
        image_rows.append(row)
        if ves is not None:
            tables.append(ves)
    vesicles = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=VESICLE_COLUMNS)
    images = pd.DataFrame(image_rows, columns=IMAGE_COLUMNS)
    try:
        write_table(vesicles, out / "vesicles.csv")
        write_table(images, out / "images.csv")
        write_run_json(out, "tem", {"pixel_size_nm": args.pixel_size_nm, **params.as_dict()}, inputs)
    except OSError as exc:  # full disk, no permission: one line, nothing half-written (atomic files)
        print(f"exoimage tem: cannot write the results into {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    n_ok = int((images["status"] == "ok").sum())
    print(f"exoimage tem: {n_ok}/{len(images)} images analysed, {len(vesicles)} vesicles -> {out}")
    return 0 if n_ok > 0 else 1
