"""Benchmark: reading burned-in scale bars on generated micrographs.

    python benchmarks/bench_scalebar.py [--n 240] [--seed 1] [--failures]

Generates ``n`` varied scale bars (every style, polarity, position, label
position, font, font size, bar thickness, image size, some JPEG-compressed,
some on saturated fields; see :mod:`exoimage.simulate.scalebar`) and runs
:func:`exoimage.scalebar.find_scale_bar` with OCR on each.

A bar counts as read correctly when value and unit are exactly right and the
measured length is within +/- 1 px of the drawn one. Reported: success rate
(overall and per style), median and 95th percentile relative nm/px error over
the bars whose label was read, and time per image.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exoimage.scalebar import find_scale_bar, ocr_available  # noqa: E402
from exoimage.simulate.scalebar import random_scale_bar  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=240, help="number of generated bars (default 240)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--failures", action="store_true", help="list every failure")
    args = ap.parse_args(argv)
    if not ocr_available():
        print("bench_scalebar: needs OCR: pip install 'exoimage[ocr]' and apt-get install tesseract-ocr",
              file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    ok = 0
    errors, times = [], []
    per_style = defaultdict(lambda: [0, 0])
    failures = []
    for i in range(args.n):
        sb = random_scale_bar(rng)
        t0 = time.perf_counter()
        res = find_scale_bar(sb.data, ocr=True)
        times.append(time.perf_counter() - t0)
        style = sb.params["style"]
        per_style[style][1] += 1
        why = None
        if res is None:
            why = "no bar found"
        else:
            if res.nm_per_px is not None:
                errors.append(abs(res.nm_per_px - sb.nm_per_px) / sb.nm_per_px)
            if res.value is None:
                why = f"label unread (OCR {res.label_text!r})"
            elif res.unit != sb.unit or abs(res.value - sb.value) > 1e-9:
                why = f"label read {res.value:g} {res.unit}"
            elif abs(res.length_px - sb.length_px) > 1.0:
                why = f"length {res.length_px:.1f} px"
        if why is None:
            ok += 1
            per_style[style][0] += 1
        else:
            p = sb.params
            failures.append(f"#{i}: {why}; truth '{sb.label_text}' {sb.length_px} px; {p['style']} "
                            f"{p['polarity']} {p['position']} label {p['label_pos']} {p['font']} "
                            f"{p['font_px']}px t={p['thickness']} jpeg={p['jpeg_quality']} "
                            f"{p['shape'][1]}x{p['shape'][0]} sat={p['saturate']}")
    err = np.array(errors) * 100 if errors else np.array([np.nan])
    t = np.array(times)
    print(f"scale bars: {args.n} generated (seed {args.seed})")
    print(f"read correctly (value+unit exact, length +/-1 px): {ok}/{args.n} = {100 * ok / args.n:.1f} %")
    for s in sorted(per_style):
        a, b = per_style[s]
        print(f"  {s:9s} {a}/{b}")
    print(f"nm/px error over {len(errors)} read labels: median {np.median(err):.3f} %, "
          f"p95 {np.percentile(err, 95):.3f} %, max {np.max(err):.3f} %")
    print(f"time per image: median {np.median(t) * 1000:.0f} ms, mean {t.mean() * 1000:.0f} ms, "
          f"max {t.max() * 1000:.0f} ms")
    slow = np.argsort(t)[::-1][:3]
    print("slowest: " + ", ".join(f"#{i} {t[i] * 1000:.0f} ms" for i in slow))
    if failures:
        print(f"failures ({len(failures)}):")
        for f in failures if args.failures else failures[:10]:
            print("  " + f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
