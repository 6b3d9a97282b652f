"""Benchmark: reading burned-in scale bars, engine against engine, on hard generated exports.

    python benchmarks/bench_scalebar.py [--n 120] [--seed 7] [--engines rapidocr,tesseract]
                                        [--failures] [--save DIR]

The generator here is independent of :mod:`exoimage.simulate.scalebar` (which
the tests use) and meant to be unkind. Four styles, as exported by microscope
software:

``on_image``  a solid bar drawn over the micrograph, label centred above or
              below (TEM camera software, Olympus/EMSIS iTEM exports)
``databar``   a black or white strip along the bottom with other text (HV,
              magnification, WD, HFW, date, detector) and the bar with its
              label above or beside it (FEI/Thermo, JEOL, Hitachi databars)
``caps``      a thin bar with end caps or ticks, label above or below (Gatan
              DigitalMicrograph, JEOL, AMT)
``beside``    the label to the right (or left) of the bar, vertically centred
              (Olympus cellSens, Leica, Zeiss exports)

crossed with units (nm, µm written as U+00B5, μm as U+03BC, um; decimals with
a point or a comma), fonts (every DejaVu face on the machine: Sans, Sans
Bold, Sans Condensed, Sans Mono, Serif; OpenCV's Hershey vector fonts; Pillow's
bitmap default), font sizes from 9 px, either polarity, coloured bars on
RGB exports, and damage: JPEG compression (quality 30-95), Gaussian noise,
low-contrast micrographs, labels touching the bar (0-1 px gap), images from
1024 to 4096 px wide.

A case is read when the nm/px is within 1 % of the truth. A wrong reading is
any nm/px off by more than 1 %; those at confidence >= 0.5 are the ones that
must not happen. Time is the CPU time (``time.process_time``) of the whole
:func:`exoimage.scalebar.find_scale_bar` call (bar search, label search, OCR)
on one thread (OpenCV and ONNX Runtime limited to one thread), so a loaded
machine does not inflate it. Besides the random cases, one 4096 x 4096 export
per style (not counted in the read rates above it) is timed: the target is
<= 0.3 s per 4096^2 image.
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exoimage import scalebar  # noqa: E402
from exoimage.scalebar import find_scale_bar, ocr_available  # noqa: E402

STYLES = ("on_image", "databar", "caps", "beside")
#: (text, value in nm): labels as microscope software prints them
LABELS = [
    ("20 nm", 20), ("50 nm", 50), ("100 nm", 100), ("200 nm", 200), ("500 nm", 500), ("100nm", 100),
    ("200nm", 200), ("1 µm", 1000), ("2 µm", 2000), ("0.5 µm", 500), ("0.2 µm", 200), ("0,5 µm", 500),
    ("1 μm", 1000), ("0.5 μm", 500), ("2 μm", 2000), ("1 um", 1000), ("0.2 um", 200), ("5um", 5000),
    ("0.1 µm", 100), ("10 nm", 10), ("1.5 µm", 1500), ("0,2 μm", 200), ("250 nm", 250), ("2.5 µm", 2500),
]
HERSHEY = ("simplex", "duplex", "plain", "complex")


def fonts() -> list:
    """Every upright DejaVu face on the machine (Debian fonts-dejavu-core / -extra)."""
    fs = sorted(glob.glob("/usr/share/fonts/truetype/dejavu/DejaVu*.ttf"))
    return [f for f in fs if not any(k in f for k in ("Oblique", "Italic", "MathTeX", "ExtraLight"))]


@dataclass
class Case:
    data: np.ndarray
    nm_per_px: float
    length_px: int
    label: str
    params: dict = field(default_factory=dict)


def _micrograph(shape, rng, lo, hi):
    """A TEM-like field: smooth grain, stained vesicle rings, noise; values in [lo, hi]."""
    import cv2

    H, W = shape
    small = rng.normal(0, 1, (max(8, H // 32), max(8, W // 32))).astype(np.float32)
    f = cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)
    f = cv2.GaussianBlur(f, (0, 0), 3)
    for _ in range(int(rng.integers(5, 40))):
        r = int(rng.integers(10, max(12, W // 25)))
        cy, cx = int(rng.integers(0, H)), int(rng.integers(0, W))
        cv2.circle(f, (cx, cy), r, float(rng.uniform(-3, 3)), int(max(1, r // 5)))
    f = (f - f.min()) / max(float(f.max() - f.min()), 1e-6)
    return lo + f * (hi - lo)


def _text(text, font, px):
    """Anti-aliased text mask (float 0..1) tight around the ink."""
    import cv2
    from PIL import Image as PImage, ImageDraw, ImageFont

    if font.startswith("hershey:"):  # OpenCV vector fonts: ASCII only
        text = text.replace("µ", "u").replace("μ", "u")
        face = {"simplex": cv2.FONT_HERSHEY_SIMPLEX, "duplex": cv2.FONT_HERSHEY_DUPLEX,
                "plain": cv2.FONT_HERSHEY_PLAIN, "complex": cv2.FONT_HERSHEY_COMPLEX}[font[8:]]
        scale = cv2.getFontScaleFromHeight(face, px, 1)
        th = max(1, int(round(px / 12)))
        (tw, tht), base = cv2.getTextSize(text, face, scale, th)
        m = np.zeros((tht + base + 2 * th + 4, tw + 2 * th + 4), np.uint8)
        cv2.putText(m, text, (th + 2, tht + th + 2), face, scale, 255, th, cv2.LINE_AA)
    else:
        if font == "pil-default":
            text = text.replace("µ", "u").replace("μ", "u")
            f = ImageFont.load_default(size=px)
        else:
            f = ImageFont.truetype(font, px)
        l, t, r, b = f.getbbox(text)
        im = PImage.new("L", (r - l + 6, b - t + 6), 0)
        ImageDraw.Draw(im).text((3 - l, 3 - t), text, fill=255, font=f)
        m = np.asarray(im)
    m = m.astype(np.float32) / 255
    rows, cols = np.nonzero(m > 0.05)
    return m[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def _paste(img, mask, r, c, colour):
    H, W = img.shape[:2]
    h, w = mask.shape
    r, c = int(r), int(c)
    if r < 0 or c < 0 or r + h > H or c + w > W:
        raise ValueError("text off the image")
    a = mask[..., None] if img.ndim == 3 else mask
    img[r:r + h, c:c + w] = img[r:r + h, c:c + w] * (1 - a) + np.asarray(colour, np.float32) * a


def make_case(rng, font_list, style=None, shape=None) -> Case:
    """One generated export (retried internally until everything fits on the image).

    ``style`` and ``shape`` (H, W) force those; otherwise they are drawn at random.
    """
    import cv2

    while True:
        try:
            return _make_case(rng, font_list, cv2, style, shape)
        except ValueError:
            continue


def _make_case(rng, font_list, cv2, style=None, shape=None) -> Case:
    style = STYLES[int(rng.integers(len(STYLES)))] if style is None else style
    W = int(rng.choice([1024, 1280, 1376, 2048, 2048, 4096], p=[.25, .15, .15, .2, .15, .1]))
    H = int(W * rng.choice([1.0, 0.75, 0.8]))
    if shape is not None:
        H, W = shape
    low_contrast = rng.random() < 0.3
    lo, hi = (float(rng.uniform(70, 110)), float(rng.uniform(140, 180))) if low_contrast else \
        (float(rng.uniform(10, 60)), float(rng.uniform(190, 245)))
    img = _micrograph((H, W), rng, lo, hi)
    colour_bar = rng.random() < 0.1
    if colour_bar:
        img = np.repeat(img[..., None], 3, axis=2)
    label, value_nm = LABELS[int(rng.integers(len(LABELS)))]
    fsel = int(rng.integers(len(font_list) + len(HERSHEY) + 1))
    font = font_list[fsel] if fsel < len(font_list) else (
        "pil-default" if fsel == len(font_list) else "hershey:" + HERSHEY[fsel - len(font_list) - 1])
    small = rng.random() < 0.3
    # small: 9-13 px on a 1376-px-wide export; software scales its labels with the image
    font_px = max(9, int(rng.integers(9, 14) * W / 1376)) if small else int(rng.integers(14, max(16, W // 40)))
    length = int(rng.integers(max(60, 4 * font_px), max(80, int(0.25 * W))))
    thick = int(rng.integers(2, max(3, min(14, length // 12))))
    if style == "caps":
        thick = int(rng.integers(1, 4))
    gap = int(rng.integers(0, 2)) if rng.random() < 0.25 else int(rng.integers(2, max(3, font_px // 2)))
    dark = rng.random() < 0.45
    ink = 0.0 if dark else 255.0
    if colour_bar:
        ink = [(255, 255, 0), (0, 255, 0), (255, 0, 0), (0, 255, 255)][int(rng.integers(4))]
    text = _text(label, font, font_px)
    th, tw = text.shape
    params = dict(style=style, shape=(H, W), font=Path(font).name, font_px=font_px, thickness=thick,
                  gap=gap, polarity="dark" if dark else "bright", colour=colour_bar, low_contrast=low_contrast)
    hfw_nm = value_nm / length * W
    if style == "databar":
        sh = int(max(3.2 * th + 2 * thick, 0.06 * H))
        strip = 0.0 if rng.random() < 0.7 else 255.0
        img[H - sh:, ...] = strip
        ink = 255.0 - strip
        if colour_bar:
            ink = [(255, 255, 0), (0, 255, 0)][int(rng.integers(2))] if strip == 0 else (0, 0, 255)
        params["polarity"] = "bright" if strip == 0 else "dark"
        # other text in the strip: HV, magnification, WD, HFW (consistent with the bar), date, detector
        mag = int(rng.choice([5000, 8000, 15000, 30000, 49000, 100000]))
        fields = [f"HV {rng.choice([80.0, 100.0, 120.0, 200.0]):.1f} kV", f"mag {mag:,} x".replace(",", " "),
                  f"WD {rng.uniform(3, 12):.1f} mm", f"HFW {hfw_nm / 1000:.2f} µm",
                  f"{int(rng.integers(1, 28)):02d}/{int(rng.integers(1, 12)):02d}/2024",
                  rng.choice(["ETD", "TLD", "CCD", "Ceta", "Det: SE"])]
        fpx = max(9, int(font_px * rng.uniform(0.8, 1.1)))
        c = int(0.01 * W) + 2
        row = H - sh + int(0.2 * sh)
        for k, fld in enumerate(fields):
            m = _text(fld, font if not font.startswith("hershey") else font_list[0], fpx)
            if c + m.shape[1] > 0.55 * W:
                break
            _paste(img, m, row if k % 2 == 0 else row + int(0.45 * sh), c, ink)
            if k % 2 == 1:
                c += int(m.shape[1] + 3 * fpx)
        params["hfw_nm"] = hfw_nm
        bar_r = H - sh + int(0.62 * sh)
        bar_c = int(W - length - rng.integers(int(0.03 * W), int(0.15 * W)))
        lpos = "above" if rng.random() < 0.6 else "right"
    else:
        corner_r = float(rng.uniform(0.85, 0.94)) if rng.random() < 0.8 else float(rng.uniform(0.08, 0.15))
        bar_r = int(corner_r * H)
        bar_c = int(rng.uniform(0.04, 0.9) * W - (0 if rng.random() < 0.5 else length))
        bar_c = int(np.clip(bar_c, 0.03 * W, W - length - tw - 0.05 * W))
        lpos = {"on_image": ["above", "below"], "caps": ["above", "below"],
                "beside": ["right", "right", "left"]}[style][int(rng.integers(2 if style != "beside" else 3))]
        if not colour_bar and rng.random() < 0.5:  # ink at the extremes of the field, like burned-in overlays
            img = np.clip(img, 25, 230)
    params["label_pos"] = lpos
    if lpos == "left":
        bar_c = max(bar_c, int(tw + 3 * gap + 0.03 * W))
    # the bar
    r0 = bar_r
    img[r0:r0 + thick, bar_c:bar_c + length] = ink
    cap_top, cap_bot = r0, r0 + thick
    if style == "caps":
        ch = int(rng.integers(3, 6)) * max(thick, 2)
        cw = max(1, thick + int(rng.integers(0, 2)))
        mode = rng.choice(["both", "up", "down"])
        cap_top = r0 - ch if mode in ("both", "up") else r0
        cap_bot = r0 + thick + ch if mode in ("both", "down") else r0 + thick
        img[cap_top:cap_bot, bar_c:bar_c + cw] = ink
        img[cap_top:cap_bot, bar_c + length - cw:bar_c + length] = ink
        params["caps"] = mode
    params["bar"] = (int(r0), int(bar_c), int(r0 + thick), int(bar_c + length))
    # the label
    mid = bar_c + length / 2
    if lpos == "above":
        _paste(img, text, cap_top - gap - th if style == "caps" else r0 - gap - th, mid - tw / 2, ink)
    elif lpos == "below":
        _paste(img, text, (cap_bot if style == "caps" else r0 + thick) + gap, mid - tw / 2, ink)
    elif lpos == "right":
        _paste(img, text, r0 + thick / 2 - th / 2, bar_c + length + max(gap, 2) * 2, ink)
    else:
        _paste(img, text, r0 + thick / 2 - th / 2, bar_c - max(gap, 2) * 2 - tw, ink)
    noise = float(rng.choice([0, 2, 4, 8]))
    if noise:
        img = img + rng.normal(0, noise, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    q = int(rng.choice([0, 30, 50, 70, 85, 95]))
    if q:
        enc = img[..., ::-1] if img.ndim == 3 else img
        ok, buf = cv2.imencode(".jpg", enc, [cv2.IMWRITE_JPEG_QUALITY, q])
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        img = img[..., ::-1].copy() if img.ndim == 3 else img
    params.update(noise=noise, jpeg=q)
    return Case(img, value_nm / length, length, label, params)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=120, help="number of generated exports (default 120)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--engines", default="rapidocr,tesseract", help="comma-separated OCR engines")
    ap.add_argument("--failures", action="store_true", help="list every failure")
    ap.add_argument("--save", type=Path, help="write every case as PNG here (for a look)")
    args = ap.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)
    font_list = fonts()
    if not font_list:
        print("bench_scalebar: no DejaVu fonts (apt-get install fonts-dejavu-core)", file=sys.stderr)
        return 2
    engines = [e for e in args.engines.split(",") if e]
    for e in list(engines):
        if not ocr_available(e):
            print(f"bench_scalebar: engine {e} not available, skipped", file=sys.stderr)
            engines.remove(e)
    rng = np.random.default_rng(args.seed)
    cases = [make_case(rng, font_list) for _ in range(args.n)]
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for i, c in enumerate(cases):
            cv2.imwrite(str(args.save / f"case{i:03d}.png"), c.data[..., ::-1] if c.data.ndim == 3 else c.data)
    for e in engines:  # load each model once before timing
        find_scale_bar(cases[0].data, engine=e)
    scalebar._READ_CACHE.clear()  # (case 0 is then read afresh, like the others)
    res = {}
    for e in engines:
        rows = []
        for i, c in enumerate(cases):
            t0 = time.process_time()
            b = find_scale_bar(c.data, engine=e)
            dt = time.process_time() - t0
            err = None if b is None or b.nm_per_px is None else abs(b.nm_per_px - c.nm_per_px) / c.nm_per_px
            rows.append((i, b, err, dt))
        res[e] = rows
    print(f"scale bars: {args.n} generated exports (seed {args.seed}); "
          f"styles {dict(sorted(_count(c.params['style'] for c in cases).items()))}")
    hdr = f"{'':34s}" + "".join(f"{e:>16s}" for e in engines)
    print(hdr)

    def line(name, fn):
        print(f"{name:34s}" + "".join(f"{fn(res[e]):>16s}" for e in engines))

    line("read within 1 % of true nm/px", lambda r: f"{sum(x[2] is not None and x[2] <= 0.01 for x in r)}"
         f"/{len(r)} {100 * sum(x[2] is not None and x[2] <= 0.01 for x in r) / len(r):.1f}%")
    line("wrong (>1 %) at confidence >= 0.5",
         lambda r: str(sum(x[2] is not None and x[2] > 0.01 and x[1].confidence >= 0.5 for x in r)))
    line("wrong (>1 %) at confidence < 0.5",
         lambda r: str(sum(x[2] is not None and x[2] > 0.01 and x[1].confidence < 0.5 for x in r)))
    line("right but confidence < 0.5",
         lambda r: str(sum(x[2] is not None and x[2] <= 0.01 and x[1].confidence < 0.5 for x in r)))
    line("no reading", lambda r: str(sum(x[2] is None for x in r)))
    for s in STYLES:
        line(f"  read, {s}", lambda r, s=s: f"{sum(x[2] is not None and x[2] <= 0.01 for x in r if cases[x[0]].params['style'] == s)}/"
             f"{sum(cases[x[0]].params['style'] == s for x in r)}")
    line("CPU time per image, median (s)", lambda r: f"{np.median([x[3] for x in r]):.3f}")
    line("CPU time per image, max (s)", lambda r: f"{np.max([x[3] for x in r]):.3f}")
    for e in engines:
        slow = sorted(res[e], key=lambda x: -x[3])[:3]
        print(f"{e} slowest: " + ", ".join(f"#{x[0]} {x[3]:.2f} s" for x in slow))
    big = [i for i, c in enumerate(cases) if c.data.shape[1] >= 4096]
    if big:
        line(f"CPU time per 4096-wide image, mean ({len(big)})", lambda r: f"{np.mean([r[i][3] for i in big]):.3f}")
    # one 4096 x 4096 export per style, timed apart (read or not: the target is the time)
    trng = np.random.default_rng(args.seed + 1)
    timed = [make_case(trng, font_list, style=s, shape=(4096, 4096)) for s in STYLES]
    for e in engines:
        cpu, ok = [], 0
        for c in timed:
            t0 = time.process_time()
            b = find_scale_bar(c.data, engine=e)
            cpu.append(time.process_time() - t0)
            ok += bool(b is not None and b.nm_per_px is not None and abs(b.nm_per_px - c.nm_per_px) <= 0.01 * c.nm_per_px)
        print(f"{e}: 4096 x 4096, one per style ({', '.join(STYLES)}): CPU s {' '.join(f'{t:.3f}' for t in cpu)}; "
              f"mean {np.mean(cpu):.3f}, max {np.max(cpu):.3f}; read {ok}/{len(timed)}")
    for e in engines:
        fails = [x for x in res[e] if x[2] is None or x[2] > 0.01 or (args.failures and x[1].confidence < 0.5)]
        if not fails:
            continue
        print(f"{e}: {len(fails)} not read or wrong" + (" (or read at confidence < 0.5)" if args.failures else ""))
        for i, b, err, _ in fails if args.failures else fails[:8]:
            c = cases[i]
            p = c.params
            got = "no bar" if b is None else (f"label unread ({b.label_text!r}), bar {b.length_px:.1f} px"
                                              if b.nm_per_px is None else
                                              f"read {b.label_text!r} ({b.ocr_text!r}) over {b.length_px:.1f} px, "
                                              f"err {100 * err:.1f}%, conf {b.confidence:.2f}"
                                              f"{' ' + '; '.join(b.checks) if b.checks else ''}")
            print(f"  #{i}: {got}; truth {c.label!r} {c.length_px} px; {p['style']} {p['polarity']} "
                  f"label {p['label_pos']} {p['font']} {p['font_px']}px t={p['thickness']} gap={p['gap']} "
                  f"jpeg={p['jpeg']} noise={p['noise']} {p['shape'][1]}x{p['shape'][0]}"
                  f"{' colour' if p['colour'] else ''}{' lowcontrast' if p['low_contrast'] else ''}")
    return 0


def _count(it):
    d = defaultdict(int)
    for x in it:
        d[x] += 1
    return d


if __name__ == "__main__":
    sys.exit(main())
