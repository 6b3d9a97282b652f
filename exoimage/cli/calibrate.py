"""``exoimage calibrate``: read the burned-in scale bar of each image, before a batch."""

from __future__ import annotations

import sys
from pathlib import Path

from . import add_max_pixels_option


def add_parser(sub):
    p = sub.add_parser(
        "calibrate", help="read burned-in scale bars (text, length, nm/px)",
        description="Find the scale bar drawn into each image, read its label with OCR and "
                    "print the calibration it gives (label, bar length in px, nm/px, confidence). "
                    "Writes a preview PNG per image with the bar and label boxed, and "
                    "calibration.csv, so the calibration can be checked before a batch. "
                    "Labels are read with PP-OCR (rapidocr, a default dependency; no system package).")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    p.add_argument("--out", type=Path, default=Path("calibration_preview"), metavar="DIR",
                   help="folder for the previews and calibration.csv (default ./calibration_preview)")
    p.add_argument("--no-preview", action="store_true", help="write calibration.csv only, no PNG previews")
    from .tem import add_ocr_option

    add_ocr_option(p)
    add_max_pixels_option(p)
    return p


def run(args) -> int:
    import pandas as pd

    from ..io import ImageReadError, read_image
    from ..outputs import find_inputs, safe_stem, save_png, write_table
    from ..scalebar import OCRUnavailableError, find_scale_bar, preview_rgb, require_ocr

    try:
        require_ocr(args.ocr)
    except OCRUnavailableError as exc:
        print(f"exoimage calibrate: {exc}", file=sys.stderr)
        return 2
    inputs = find_inputs(args.images)
    if not inputs:
        print("exoimage calibrate: no input images", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    n_ok = 0
    for f in inputs:
        row = {"image": f.rel, "scale_bar_text": None, "ocr_text": None, "value": None, "unit": None,
               "scale_bar_length_px": None, "nm_per_px": None, "scale_bar_confidence": None,
               "scale_bar_box": None, "label_box": None, "strip_box": None,
               "checks": None, "ocr_engine": None,
               "file_pixel_size_nm": None, "file_pixel_size_source": None, "error": None}
        if f.error:  # found at discovery (FIFO, device, link loop...): never opened
            print(f"{f.rel}: {f.error}", file=sys.stderr)
            row["error"] = f.error
            rows.append(row)
            continue
        try:
            img = read_image(f.path, max_pixels=args.max_pixels)
            bar = find_scale_bar(img.data, ocr=True, engine=args.ocr)
        except ImageReadError as exc:
            print(str(exc), file=sys.stderr)
            row["error"] = exc.problem
            rows.append(row)
            continue
        except Exception as exc:  # noqa: BLE001 - one line per file, never a traceback
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(f"{f.path}: scale bar search failed ({msg})", file=sys.stderr)
            row["error"] = msg
            rows.append(row)
            continue
        if img.pixel_size_nm is not None:
            row["file_pixel_size_nm"] = img.pixel_size_nm
            row["file_pixel_size_source"] = img.pixel_size_source
        if bar is not None:
            row.update(scale_bar_length_px=round(bar.length_px, 2), scale_bar_box=str(bar.bar_box),
                       label_box=str(bar.label_box) if bar.label_box else None,
                       strip_box=str(bar.strip_box) if bar.strip_box else None,
                       scale_bar_text=bar.label_text)
        if bar is None:
            print(f"{f.path}: no scale bar found", file=sys.stderr)
            row["error"] = "no scale bar found"
        elif bar.nm_per_px is None:
            seen = f"; OCR read {bar.label_text!r}" if bar.label_text else ""
            msg = f"scale bar found ({bar.length_px:.1f} px) but its label could not be read{seen}"
            print(f"{f.path}: {msg}", file=sys.stderr)
            row["error"] = msg
        else:
            n_ok += 1
            row.update(value=bar.value, unit=bar.unit, nm_per_px=bar.nm_per_px, ocr_text=bar.ocr_text,
                       scale_bar_confidence=round(bar.confidence, 3), ocr_engine=bar.ocr_engine,
                       checks="; ".join(bar.checks) if bar.checks else None)
            line = (f"{f.rel}: '{bar.label_text}' (OCR {bar.ocr_text!r}) over {bar.length_px:.1f} px "
                    f"-> {bar.nm_per_px:.4g} nm/px (confidence {bar.confidence:.2f}); "
                    f"bar box {_box(bar.bar_box)}, label box {_box(bar.label_box)}")
            if bar.confidence < 0.5:
                line += "  LOW CONFIDENCE: check the preview"
                if bar.checks:
                    line += f" ({'; '.join(bar.checks)})"
            if img.pixel_size_nm is not None:
                rel = abs(bar.nm_per_px - img.pixel_size_nm) / img.pixel_size_nm
                line += (f"; file says {img.pixel_size_nm:.4g} nm/px ({img.pixel_size_source}, "
                         f"{'agrees' if rel <= 0.02 else f'DISAGREES by {rel * 100:.1f}%'})")
            print(line)
        if not args.no_preview:
            preview = args.out / f"{safe_stem(f.rel)}_scalebar.png"
            save_png(preview, preview_rgb(img.data, bar, max_side=1600))
        rows.append(row)
    write_table(pd.DataFrame(rows), args.out / "calibration.csv")
    print(f"{'calibration.csv' if args.no_preview else 'previews and calibration.csv'} in {args.out}")
    if n_ok == 0:
        print("exoimage calibrate: no readable scale bar in any input", file=sys.stderr)
        return 1
    return 0


def _box(b) -> str:
    """A box as rows r0-r1, columns c0-c1 (end-exclusive), or '-'."""
    if b is None:
        return "-"
    r0, c0, r1, c1 = (int(v) for v in b)
    return f"rows {r0}-{r1} cols {c0}-{c1}"
