"""``exoimage blot``: Western blot densitometry."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from ..blot import BAND_COLUMNS, IMAGE_COLUMNS, LANE_COLUMNS, BlotParams, analyze_blot_file
from ..blot import draw_blot_overlay
from ..blot.normalize import NORMALIZED_COLUMNS, read_lane_sheet, replicate_stats
from ..blot.plan import NormalizationSpec, normalize_blot
from ..outputs import display_text, one_line, safe_stem, save_png, write_run_json, write_table
from ..experiment.batch import memory_problem
from ..params import add_arguments, from_args
from . import add_max_pixels_option
from ._options import build_or_fail, inputs_and_out, check_input_file, check_out_dir, cli_words, one_line_errors


def add_parser(sub):
    p = sub.add_parser(
        "blot", help="Western blot densitometry (lanes, bands, volumes, QC, normalisation)",
        description="Find lanes and bands in Western blot images and measure band volumes "
                    "(sum of background-subtracted raw pixel values, raw units x px). Writes "
                    "lanes.csv, bands.csv, images.csv, normalized.csv and replicates.csv (when "
                    "normalisation is asked), overlays/*.png and run.json into --out.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="blot images or folders (searched recursively)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created)")
    add_arguments(p, BlotParams)
    add_arguments(p, NormalizationSpec)
    add_max_pixels_option(p)
    p.add_argument("--lane-sheet", type=Path, default=None, metavar="CSV",
                   help="CSV with columns lane,sample[,group][,loaded]: replicate mean/SD/CV per "
                        "sample; with 'loaded' (any unit) the linear range of the dilution series")
    return one_line_errors(p)


def params_from_args(args, prog: str = "exoimage blot") -> BlotParams:
    """The blot parameters of the options; checks every option first (normalisation options,
    files named, the output folder) and ends the command with one line on a bad one."""
    if getattr(args, "out", None) is not None:
        check_out_dir(prog, args.out)
    for flag, path in (("--control-image", args.control_image), ("--total-protein-image", args.total_protein_image),
                       ("--lane-sheet", args.lane_sheet)):
        check_input_file(prog, flag, path)
    build_or_fail(prog, lambda: spec_from_args(args).check(), NormalizationSpec)
    return build_or_fail(prog, lambda: from_args(BlotParams, args), BlotParams)


def spec_from_args(args) -> NormalizationSpec:
    """What to normalise, from the command-line options (the lane sheet is separate)."""
    return from_args(NormalizationSpec, args)


def say(message: str) -> str:
    """A library message in the command line's words (parameters named by their options)."""
    return cli_words(message, BlotParams, NormalizationSpec)


def _error_row(f, message: str, params) -> dict:
    """A blot error row in the blot tables' convention (the error names the file)."""
    row = {c: None for c in IMAGE_COLUMNS}
    row.update(image=f.rel, status="error", error=f"{display_text(f.path)}: {message}",
               background=params.background)
    return row


def _say_error(f, error: str) -> None:
    shown = display_text(f.path)
    print(say(error) if error.startswith(shown) else f"{f.rel}: error: {say(error)}", file=sys.stderr)


def _one_file(f, args, params, spec, sheet, want_norm: bool, out: Path):
    """(image row, result or None, normalised tables) of one input; never raises an Exception.

    Any unexpected failure (an OpenCV assertion, MemoryError, a full disk while
    writing its overlay) becomes this file's one-line error row, and an overlay
    it had written in this run is removed.
    """
    if f.error:  # found at discovery (FIFO, device, link loop...): never opened
        row = _error_row(f, f.error, params)
        _say_error(f, row["error"])
        return row, None, []
    too_big = memory_problem(f.path, "blot", max_pixels=args.max_pixels)
    if too_big:  # inside the pixel budget but more than this machine can hold: refused before decoding
        row = _error_row(f, too_big, params)
        _say_error(f, row["error"])
        return row, None, []
    overlay = None
    try:
        res = analyze_blot_file(f.path, params, name=f.rel, max_pixels=args.max_pixels)
        norms = []
        if res.ok and want_norm:
            try:
                norms = normalize_blot(res, spec, params, sheet)
            except ValueError as exc:
                res.ok = False
                res.image_row.update(status="error", error=f"{display_text(f.path)}: normalisation: {exc}")
        if not res.ok:
            _say_error(f, res.image_row["error"])
            return res.image_row, None, []
        overlay = out / "overlays" / f"{safe_stem(f.rel)}.png"
        save_png(overlay, draw_blot_overlay(res.image, res.result))
    except Exception as exc:  # noqa: BLE001 - one file's failure is its error row (MemoryError included)
        if overlay is not None:
            try:
                overlay.unlink(missing_ok=True)
            except OSError:
                pass
        row = _error_row(f, one_line(exc), params)
        _say_error(f, row["error"])
        return row, None, []
    r = res.image_row
    print(f"{f.rel}: {r['n_lanes']} lanes, {r['n_bands']} bands in {r['n_rows']} rows, "
          f"{r['n_saturated_bands']} saturated ({r['polarity']}, {r['dtype']})"
          + (f"; warnings: {r['warnings']}" if r["warnings"] else ""))
    return r, res, norms


def run(args) -> int:
    try:
        params = params_from_args(args)
        spec = spec_from_args(args)
        sheet = read_lane_sheet(args.lane_sheet) if args.lane_sheet else None
    except ValueError as exc:
        print(f"exoimage blot: {exc}", file=sys.stderr)
        return 2
    found = inputs_and_out("exoimage blot", args.paths, args.out)
    if found is None:
        return 1
    inputs, out = found
    image_rows, lane_tabs, band_tabs, norm_tabs, linear, check_tabs = [], [], [], [], {}, []
    want_norm = spec.wanted or args.lane_sheet is not None
    for f in inputs:
        row, res, norms = _one_file(f, args, params, spec, sheet, want_norm, out)
        image_rows.append(row)
        if res is None:
            continue
        lane_tabs.append(res.lanes)
        band_tabs.append(res.bands)
        chk = res.result.ladder.get("check") if res.result is not None else None
        if chk is not None and len(chk):
            check_tabs.append(chk.assign(image=f.rel))
        norm_tabs += norms
        for nt in norms:
            if "linear_range" in nt.attrs:
                linear[f"{f.rel} rows {nt['target_rows'].iloc[0]}"] = nt.attrs["linear_range"]
    lanes = pd.concat(lane_tabs, ignore_index=True) if lane_tabs else pd.DataFrame(columns=LANE_COLUMNS)
    bands = pd.concat(band_tabs, ignore_index=True) if band_tabs else pd.DataFrame(columns=BAND_COLUMNS)
    images = pd.DataFrame(image_rows, columns=IMAGE_COLUMNS)
    run_params = {**params.as_dict(), **asdict(spec), "lane_sheet": args.lane_sheet}
    extra = {"linear_range": linear} if linear else None
    try:
        write_table(lanes, out / "lanes.csv")
        write_table(bands, out / "bands.csv")
        write_table(images, out / "images.csv")
        if check_tabs:  # a known ladder with published masses (--ladder): volume vs mass
            write_table(pd.concat(check_tabs, ignore_index=True), out / "ladder_check.csv")
        if want_norm:
            norm = (pd.concat(norm_tabs, ignore_index=True) if norm_tabs
                    else pd.DataFrame(columns=NORMALIZED_COLUMNS))
            write_table(norm, out / "normalized.csv")
            if sheet is not None:
                write_table(replicate_stats(norm), out / "replicates.csv")
        write_run_json(out, "blot", run_params, inputs, extra=extra)
    except OSError as exc:  # full disk, no permission: one line, nothing half-written (atomic files)
        print(f"exoimage blot: cannot write the results into {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    n_ok = int((images["status"] == "ok").sum())
    print(f"exoimage blot: {n_ok}/{len(images)} images analysed, {len(bands)} bands -> {out}")
    return 0 if n_ok > 0 else 1
