"""``exoimage blot``: Western blot densitometry."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from ..blot import BAND_COLUMNS, DEFAULT_BACKGROUND, IMAGE_COLUMNS, LANE_COLUMNS, BlotParams, analyze_blot_file
from ..blot import draw_blot_overlay
from ..blot.bands import BACKGROUNDS
from ..blot.normalize import NORMALIZED_COLUMNS, read_lane_sheet, replicate_stats
from ..blot.plan import NormalizationSpec, normalize_blot
from ..outputs import find_inputs, safe_stem, save_png, write_run_json, write_table
from . import add_max_pixels_option


def _int_list(text):
    return [int(v) for v in str(text).split(",") if v.strip()]


def _bounds(text):
    out = []
    for part in str(text).split(","):
        a, b = part.split("-")
        out.append((int(a), int(b)))
    return out


def add_parser(sub):
    p = sub.add_parser(
        "blot", help="Western blot densitometry (lanes, bands, volumes, QC, normalisation)",
        description="Find lanes and bands in Western blot images and measure band volumes "
                    "(sum of background-subtracted raw pixel values, raw units x px). Writes "
                    "lanes.csv, bands.csv, images.csv, normalized.csv and replicates.csv (when "
                    "normalisation is asked), overlays/*.png and run.json into --out.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="blot images or folders (searched recursively)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created)")
    p.add_argument("--lanes", type=int, default=None, metavar="N",
                   help="number of lanes per membrane piece (default: found automatically)")
    p.add_argument("--lane-bounds", type=_bounds, default=None, metavar="X1-X2,...",
                   help="explicit lanes as column ranges in px, inclusive, e.g. 40-90,110-160 "
                        "(full image height; overrides --lanes)")
    p.add_argument("--polarity", choices=["auto", "dark-bands", "light-bands"], default="auto",
                   help="bands lighter (chemiluminescence) or darker (film) than the background "
                        "in the raw values (default auto; WhiteIsZero TIFFs count as light-bands)")
    p.add_argument("--background", choices=("auto",) + BACKGROUNDS, default=DEFAULT_BACKGROUND,
                   help="background under the bands: edge (median of the 3 px beside the lane, per "
                        "row), rolling-ball (on the lane profile), valley (valley-to-valley lines), "
                        "none (raw sums = ImageJ RawIntDen); auto = rolling ball refined by a "
                        "least-squares line through each band's flanks, and the lane-edge background "
                        f"under smears where lanes have free membrane beside them (default {DEFAULT_BACKGROUND})")
    p.add_argument("--ball-radius", type=float, default=None, metavar="PX",
                   help="rolling-ball radius along the lane, px (default 10%% of the lane length, >= 25)")
    p.add_argument("--min-snr", type=float, default=4.0, metavar="SD",
                   help="smallest band peak, in noise SDs of the lane profile (default 4)")
    p.add_argument("--ladder-lane", type=int, default=None, metavar="K",
                   help="lane number (1 = leftmost) of the molecular-weight marker")
    p.add_argument("--ladder-kda", default=None, metavar="KDA,...",
                   help="marker weights in kDa, largest first, e.g. 250,150,100,75,50,37,25,20,15,10")
    p.add_argument("--target-row", type=_int_list, default=None, metavar="R[,R]",
                   help="band row(s) of the target protein (rows numbered 1.. top to bottom)")
    p.add_argument("--control-row", type=_int_list, default=None, metavar="R[,R]",
                   help="band row(s) of the loading control in the same image")
    p.add_argument("--target-kda", default=None, metavar="KDA",
                   help="choose the target rows by apparent weight, kDa: 30-60 or 44 (+-15%%); needs a ladder")
    p.add_argument("--control-kda", default=None, metavar="KDA",
                   help="choose the control rows by apparent weight, kDa (range or value)")
    p.add_argument("--control-image", type=Path, default=None, metavar="FILE",
                   help="separate image of the same membrane with the loading control "
                        "(lanes matched by position; control rows from --control-row/--control-kda, "
                        "else its strongest row)")
    p.add_argument("--total-protein-image", type=Path, default=None, metavar="FILE",
                   help="total-protein stain image (Ponceau, stain-free) of the same membrane: "
                        "whole-lane signal (lane-edge background) is the control")
    p.add_argument("--reference-lane", type=int, default=None, metavar="K",
                   help="lane that relative values refer to (default: the first sample lane)")
    p.add_argument("--lane-sheet", type=Path, default=None, metavar="CSV",
                   help="CSV with columns lane,sample[,group][,loaded]: replicate mean/SD/CV per "
                        "sample; with 'loaded' (any unit) the linear range of the dilution series")
    add_max_pixels_option(p)
    return p


def params_from_args(args) -> BlotParams:
    kda = [float(v) for v in args.ladder_kda.split(",")] if args.ladder_kda else None
    return BlotParams(polarity=args.polarity, n_lanes=args.lanes, lane_bounds=args.lane_bounds,
                      background=args.background, ball_radius_px=args.ball_radius, min_snr=args.min_snr,
                      ladder_lane=args.ladder_lane, ladder_kda=kda)


def spec_from_args(args) -> NormalizationSpec:
    """What to normalise, from the command-line options (the lane sheet is separate)."""
    return NormalizationSpec(target_rows=args.target_row, target_kda=args.target_kda,
                             control_rows=args.control_row, control_kda=args.control_kda,
                             control_image=args.control_image, total_protein_image=args.total_protein_image,
                             reference_lane=args.reference_lane)


def run(args) -> int:
    try:
        params = params_from_args(args)
        spec = spec_from_args(args)
        sheet = read_lane_sheet(args.lane_sheet) if args.lane_sheet else None
    except ValueError as exc:
        print(f"exoimage blot: {exc}", file=sys.stderr)
        return 2
    inputs = find_inputs(args.paths)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not inputs:
        print("exoimage blot: no image files found in " + ", ".join(map(str, args.paths)), file=sys.stderr)
        return 1
    image_rows, lane_tabs, band_tabs, norm_tabs, linear = [], [], [], [], {}
    want_norm = spec.wanted or args.lane_sheet is not None
    for f in inputs:
        res = analyze_blot_file(f.path, params, name=f.rel, max_pixels=args.max_pixels)
        if res.ok and want_norm:
            try:
                norms = normalize_blot(res, spec, params, sheet)
                norm_tabs += norms
                for nt in norms:
                    if "linear_range" in nt.attrs:
                        linear[f"{f.rel} rows {nt['target_rows'].iloc[0]}"] = nt.attrs["linear_range"]
            except ValueError as exc:
                res.ok = False
                res.image_row.update(status="error", error=f"{f.path}: normalisation: {exc}")
        image_rows.append(res.image_row)
        if res.ok:
            lane_tabs.append(res.lanes)
            band_tabs.append(res.bands)
            save_png(out / "overlays" / f"{safe_stem(f.rel)}.png", draw_blot_overlay(res.image, res.result))
            r = res.image_row
            print(f"{f.rel}: {r['n_lanes']} lanes, {r['n_bands']} bands in {r['n_rows']} rows, "
                  f"{r['n_saturated_bands']} saturated ({r['polarity']}, {r['dtype']})"
                  + (f"; warnings: {r['warnings']}" if r["warnings"] else ""))
        else:
            print(f"{f.rel}: error: {res.image_row['error']}", file=sys.stderr)
    lanes = pd.concat(lane_tabs, ignore_index=True) if lane_tabs else pd.DataFrame(columns=LANE_COLUMNS)
    bands = pd.concat(band_tabs, ignore_index=True) if band_tabs else pd.DataFrame(columns=BAND_COLUMNS)
    images = pd.DataFrame(image_rows, columns=IMAGE_COLUMNS)
    write_table(lanes, out / "lanes.csv")
    write_table(bands, out / "bands.csv")
    write_table(images, out / "images.csv")
    if want_norm:
        norm = pd.concat(norm_tabs, ignore_index=True) if norm_tabs else pd.DataFrame(columns=NORMALIZED_COLUMNS)
        write_table(norm, out / "normalized.csv")
        if sheet is not None:
            write_table(replicate_stats(norm), out / "replicates.csv")
    run_params = {**params.as_dict(), "target_row": args.target_row, "control_row": args.control_row,
                  "target_kda": args.target_kda, "control_kda": args.control_kda,
                  "control_image": args.control_image, "total_protein_image": args.total_protein_image,
                  "reference_lane": args.reference_lane, "lane_sheet": args.lane_sheet}
    extra = {"linear_range": linear} if linear else None
    write_run_json(out, "blot", run_params, inputs, extra=extra)
    n_ok = int((images["status"] == "ok").sum())
    print(f"exoimage blot: {n_ok}/{len(images)} images analysed, {len(bands)} bands -> {out}")
    return 0 if n_ok > 0 else 1
