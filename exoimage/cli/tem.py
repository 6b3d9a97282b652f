"""``exoimage tem``: find and size vesicles in negative-stain TEM micrographs."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from ..outputs import find_inputs, safe_stem, save_png, write_run_json, write_table
from ..tem import IMAGE_COLUMNS, VESICLE_COLUMNS, TemParams, analyze_tem_file, draw_overlay
from ..io import write_calibrated_tiff
from . import add_max_pixels_option


def add_parser(sub):
    p = sub.add_parser(
        "tem", help="find and size vesicles in TEM micrographs",
        description="Find the vesicles in negative-stain TEM micrographs and measure each "
                    "one's diameter in nm. Writes vesicles.csv, images.csv, overlays/*.png, "
                    "labels/*.tif and run.json into --out.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created)")
    add_tem_options(p)
    add_max_pixels_option(p)
    return p


def add_tem_options(p):
    """Options shared by every command that runs the TEM pipeline."""
    d = TemParams()
    p.add_argument("--pixel-size", type=float, default=None, metavar="NM",
                   help="pixel size in nm/px; overrides the file's calibration "
                        "(default: read from the file's metadata)")
    p.add_argument("--min-diameter", type=float, default=d.min_diameter_nm, metavar="NM",
                   help=f"smallest vesicle diameter to report, nm (default {d.min_diameter_nm:g}); "
                        "anything smaller is debris")
    p.add_argument("--max-diameter", type=float, default=d.max_diameter_nm, metavar="NM",
                   help=f"largest vesicle diameter to report, nm (default {d.max_diameter_nm:g})")
    p.add_argument("--min-contrast", type=float, default=d.min_contrast, metavar="SNR",
                   help="minimum edge contrast of a vesicle's outline, in units of the image's "
                        f"noise SD (default {d.min_contrast:g}); raise it to drop faint objects")
    p.add_argument("--polarity", choices=["light", "dark", "auto"], default=d.polarity,
                   help="vesicle body lighter than the stain (classic negative stain), darker, "
                        f"or decide per image (default {d.polarity})")


def params_from_args(args) -> TemParams:
    return TemParams(min_diameter_nm=args.min_diameter, max_diameter_nm=args.max_diameter,
                     min_contrast=args.min_contrast, polarity=args.polarity)


def run(args) -> int:
    params = params_from_args(args)
    inputs = find_inputs(args.paths)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not inputs:
        print("exoimage tem: no image files found in " + ", ".join(map(str, args.paths)), file=sys.stderr)
        return 1
    image_rows, tables = [], []
    for f in inputs:
        res = analyze_tem_file(f.path, pixel_size_nm=args.pixel_size, params=params, name=f.rel,
                               max_pixels=args.max_pixels)
        image_rows.append(res.image_row)
        if res.ok:
            tables.append(res.vesicles)
            stem = safe_stem(f.rel)
            save_png(out / "overlays" / f"{stem}.png", draw_overlay(res.display, res.labels, res.vesicles))
            write_calibrated_tiff(out / "labels" / f"{stem}.tif", res.labels, res.pixel_size_nm)
            print(f"{f.rel}: {res.image_row['n_vesicles']} vesicles, "
                  f"median {res.image_row['diameter_median_nm']:.1f} nm "
                  f"(pixel size {res.pixel_size_nm:.4g} nm, {res.image_row['pixel_size_source']})")
        else:
            print(f"{f.rel}: error: {res.image_row['error']}", file=sys.stderr)
    vesicles = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=VESICLE_COLUMNS)
    images = pd.DataFrame(image_rows, columns=IMAGE_COLUMNS)
    write_table(vesicles, out / "vesicles.csv")
    write_table(images, out / "images.csv")
    write_run_json(out, "tem", {"pixel_size_nm": args.pixel_size, **params.as_dict()}, inputs)
    n_ok = int((images["status"] == "ok").sum())
    print(f"exoimage tem: {n_ok}/{len(images)} images analysed, {len(vesicles)} vesicles -> {out}")
    return 0 if n_ok > 0 else 1
