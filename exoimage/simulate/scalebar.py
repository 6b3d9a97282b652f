"""Synthetic micrographs with burned-in scale bars of known length and label.

Used by ``tests/test_scalebar.py`` and ``benchmarks/bench_scalebar.py``.
Labels are rendered with TrueType fonts through Pillow (DejaVu/Liberation
fonts from the system; Debian package ``fonts-dejavu-core``).

Styles
------
``plain``     solid bar drawn straight over the image
``caps``      thin bar with end ticks over the image
``outlined``  bar and text with a thin contrasting outline (like many exports)
``boxed``     bar and label on a filled rectangle of the opposite colour
``strip``     bar and label in a databar strip along the bottom edge, with
              other text (voltage, magnification) elsewhere in the strip

The bar's length is the count of pixels from the outer edge of one end (cap)
to the outer edge of the other: ``bar_box[3] - bar_box[1]``.
"""

from __future__ import annotations

import glob
import io
from dataclasses import dataclass, field

import numpy as np

STYLES = ("plain", "caps", "outlined", "boxed", "strip")
POSITIONS = ("bottom-left", "bottom-right", "top-left", "top-right", "bottom-centre")
LABEL_POSITIONS = ("above", "below", "right")

#: (text, value, unit) labels as they appear on micrographs
LABELS = [
    ("10 nm", 10, "nm"), ("20 nm", 20, "nm"), ("50 nm", 50, "nm"), ("100 nm", 100, "nm"),
    ("200 nm", 200, "nm"), ("250 nm", 250, "nm"), ("500 nm", 500, "nm"), ("500nm", 500, "nm"),
    ("1000 nm", 1000, "nm"), ("100nm", 100, "nm"),
    ("0.1 µm", 0.1, "µm"), ("0.2 µm", 0.2, "µm"), ("0.5 µm", 0.5, "µm"), ("1 µm", 1, "µm"),
    ("2 µm", 2, "µm"), ("5 µm", 5, "µm"), ("0,2 µm", 0.2, "µm"), ("0,5 μm", 0.5, "µm"),
    ("1 μm", 1, "µm"), ("0.5 um", 0.5, "µm"), ("1 um", 1, "µm"), ("2um", 2, "µm"),
    ("0.25 µm", 0.25, "µm"), ("10 µm", 10, "µm"),
    ("50 Å", 50, "Å"), ("100 Å", 100, "Å"), ("200 Å", 200, "Å"),
    ("0.1 mm", 0.1, "mm"),
]
UNIT_NM = {"nm": 1.0, "µm": 1e3, "Å": 0.1, "mm": 1e6}


def find_fonts() -> list:
    """TrueType fonts usable for labels (DejaVu/Liberation), sorted."""
    pats = ["/usr/share/fonts/truetype/dejavu/DejaVu*.ttf",
            "/usr/share/fonts/truetype/liberation*/Liberation*.ttf"]
    fonts = []
    for p in pats:
        fonts += glob.glob(p)
    keep = [f for f in sorted(fonts)
            if not any(k in f for k in ("ExtraLight", "Oblique", "Italic", "MathTeX"))]
    return keep


@dataclass
class SyntheticBar:
    data: np.ndarray
    length_px: int
    bar_box: tuple
    label_text: str
    value: float
    unit: str
    nm_per_px: float
    label_box: tuple
    strip_box: tuple | None
    params: dict = field(default_factory=dict)


def background_field(shape, rng, lo=40, hi=215, saturate=False) -> np.ndarray:
    """A TEM-like grey field: smooth stain variation, grain and a few vesicle-like rings."""
    import cv2

    H, W = shape
    small = rng.normal(0, 1, (max(4, H // 64), max(4, W // 64))).astype(np.float32)
    smooth = cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)
    smooth = (smooth - smooth.min()) / max(1e-6, np.ptp(smooth))
    grain = cv2.GaussianBlur(rng.normal(0, 1, (H, W)).astype(np.float32), (0, 0), 1.2)
    f = 0.6 * smooth + 0.12 * grain
    yy, xx = np.mgrid[0:H, 0:W]
    for _ in range(rng.integers(2, 8)):
        cy, cx = rng.uniform(0, H), rng.uniform(0, W)
        r = rng.uniform(0.01, 0.05) * min(H, W)
        d = np.hypot(yy - cy, xx - cx)
        f += -0.35 * np.exp(-((d - r) / (0.15 * r + 1)) ** 2) + 0.15 * (d < r)
    f = (f - f.min()) / max(1e-6, np.ptp(f))
    img = lo + f * (hi - lo)
    if saturate:  # some dark stain reaching black and bright spots reaching white
        img = np.clip(img * rng.uniform(1.0, 1.25) - rng.uniform(0, 30), 0, 255)
    return img.astype(np.float32)


def _text_mask(text, font_path, font_px, stroke=0):
    from PIL import Image as PILImage, ImageDraw, ImageFont

    font = ImageFont.truetype(font_path, font_px)
    probe = ImageDraw.Draw(PILImage.new("L", (1, 1)))
    l, t, r, b = probe.textbbox((0, 0), text, font=font, stroke_width=stroke)
    w, h = r - l + 4, b - t + 4
    im = PILImage.new("L", (w, h), 0)
    ImageDraw.Draw(im).text((2 - l, 2 - t), text, font=font, fill=255,
                            stroke_width=stroke, stroke_fill=255)
    return np.asarray(im, np.float32) / 255.0


def _paste(img, mask, r, c, colour):
    h, w = mask.shape
    H, W = img.shape
    r0, c0 = max(0, r), max(0, c)
    r1, c1 = min(H, r + h), min(W, c + w)
    if r1 <= r0 or c1 <= c0:
        return
    m = mask[r0 - r:r1 - r, c0 - c:c1 - c]
    img[r0:r1, c0:c1] = img[r0:r1, c0:c1] * (1 - m) + colour * m


def _tight(mask):
    rr = np.nonzero(mask.max(axis=1) > 0.3)[0]
    cc = np.nonzero(mask.max(axis=0) > 0.3)[0]
    return rr[0], cc[0], rr[-1] + 1, cc[-1] + 1


def draw_scale_bar(shape=(1024, 1024), *, length_px=300, thickness=8, label=("500 nm", 500, "nm"),
                   style="plain", polarity="dark", position="bottom-left", label_pos="above",
                   font_path=None, font_px=32, jpeg_quality=None, saturate=False,
                   rng=None) -> SyntheticBar:
    """Draw one scale bar with its label on a synthetic TEM field."""
    rng = np.random.default_rng(0) if rng is None else rng
    fonts = find_fonts()
    if font_path is None:
        if not fonts:
            raise RuntimeError("no TrueType fonts found; apt-get install fonts-dejavu-core")
        font_path = next((f for f in fonts if f.endswith("DejaVuSans.ttf")), fonts[0])
    H, W = shape
    img = background_field(shape, rng, saturate=saturate)
    fg = 0.0 if polarity == "dark" else 255.0
    other = 255.0 - fg
    text, value, unit = label
    tmask = _text_mask(text, font_path, font_px)
    th, tw = tmask.shape
    L, t = int(length_px), int(thickness)
    gap = max(3, int(0.25 * font_px))
    # size of the bar+label group
    if label_pos == "right":
        gw, gh = L + gap * 2 + tw, max(t, th)
    else:
        gw, gh = max(L, tw), t + gap + th
    margin = int(max(8, 0.04 * min(H, W)))
    strip_box = None
    if style == "strip":
        sh = gh + 2 * margin // 2 + 4
        strip_box = (H - sh, 0, H, W)
        img[H - sh:, :] = other
        gy = H - sh + (sh - gh) // 2
        if position.endswith("right"):
            gx = W - margin - gw
        elif position.endswith("centre"):
            gx = (W - gw) // 2
        else:
            gx = margin
        # distractor text on the other side of the strip
        dmask = _text_mask(rng.choice(["80 kV", "HV=120kV", "x30000", "Direct Mag: 25000x", "TEM"]),
                           font_path, max(10, int(font_px * 0.8)))
        dh, dw = dmask.shape
        dx = (W - margin - dw) if gx < W / 2 else margin
        if abs(dx - gx) > gw + 3 * font_px and dw < W / 2 - margin:
            _paste(img, dmask, H - sh + (sh - dh) // 2, dx, fg)
    else:
        gy = margin if position.startswith("top") else H - margin - gh
        if position.endswith("right"):
            gx = W - margin - gw
        elif position.endswith("centre"):
            gx = (W - gw) // 2
        else:
            gx = margin
    # positions of bar and label inside the group
    if label_pos == "right":
        br0, bc0 = gy + (gh - t) // 2, gx
        lr, lc = gy + (gh - th) // 2, gx + L + 2 * gap
    elif label_pos == "above":
        br0, bc0 = gy + th + gap, gx + (gw - L) // 2
        lr, lc = gy, gx + (gw - tw) // 2
    else:
        br0, bc0 = gy, gx + (gw - L) // 2
        lr, lc = gy + t + gap, gx + (gw - tw) // 2
    if style == "boxed":
        pad = max(4, font_px // 3)
        img[max(0, gy - pad):gy + gh + pad, max(0, gx - pad):gx + gw + pad] = other
    bar = np.zeros((H, W), np.float32)
    bar[br0:br0 + t, bc0:bc0 + L] = 1
    cap_box = (br0, bc0, br0 + t, bc0 + L)
    if style == "caps":
        tick_w = max(1, t // 2 + 1)
        tick_h = max(3 * t, int(0.4 * font_px))
        ctr = br0 + t / 2
        tr0, tr1 = int(round(ctr - tick_h / 2)), int(round(ctr + tick_h / 2))
        bar[tr0:tr1, bc0:bc0 + tick_w] = 1
        bar[tr0:tr1, bc0 + L - tick_w:bc0 + L] = 1
        cap_box = (min(tr0, br0), bc0, max(tr1, br0 + t), bc0 + L)
    if style == "outlined":
        import cv2
        k = np.ones((5, 5), np.uint8)
        ring = cv2.dilate((bar > 0).astype(np.uint8), k) > 0
        img[ring] = other
        omask = _text_mask(text, font_path, font_px, stroke=2)
        oh, ow = omask.shape
        _paste(img, omask, lr - (oh - th) // 2, lc - (ow - tw) // 2, other)
    img[bar > 0] = fg
    _paste(img, tmask, lr, lc, fg)
    tr = _tight(tmask)
    label_box = (lr + tr[0], lc + tr[1], lr + tr[2], lc + tr[3])
    data = np.clip(np.round(img), 0, 255).astype(np.uint8)
    if jpeg_quality:
        from PIL import Image as PILImage
        buf = io.BytesIO()
        PILImage.fromarray(data).save(buf, format="JPEG", quality=int(jpeg_quality))
        data = np.asarray(PILImage.open(io.BytesIO(buf.getvalue())).convert("L"))
    nm = value * UNIT_NM[unit]
    params = dict(style=style, polarity=polarity, position=position, label_pos=label_pos,
                  font=font_path.rsplit("/", 1)[-1], font_px=font_px, thickness=t,
                  jpeg_quality=jpeg_quality, shape=shape, saturate=saturate)
    return SyntheticBar(data=data, length_px=L, bar_box=(br0, bc0, br0 + t, bc0 + L),
                        label_text=text, value=float(value), unit=unit, nm_per_px=nm / L,
                        label_box=label_box, strip_box=strip_box,
                        params=dict(params, cap_box=cap_box))


def random_scale_bar(rng) -> SyntheticBar:
    """One randomly varied scale bar (style, polarity, position, font, size, label, JPEG)."""
    fonts = find_fonts()
    side = int(rng.choice([512, 768, 1024, 1536, 2048]))
    H = side
    W = int(side * rng.choice([1.0, 1.0, 1.33]))
    label = LABELS[rng.integers(len(LABELS))]
    style = str(rng.choice(STYLES))
    polarity = str(rng.choice(["dark", "bright"]))
    position = str(rng.choice(POSITIONS))
    label_pos = str(rng.choice(LABEL_POSITIONS, p=[0.6, 0.25, 0.15]))
    font_px = int(np.clip(rng.uniform(0.018, 0.05) * H, 12, 90))
    L = int(rng.uniform(0.08, 0.3) * W)
    if style == "caps":
        thickness = int(rng.integers(1, 5))
    else:
        thickness = int(np.clip(rng.uniform(0.004, 0.015) * H, 2, 30))
    jpeg = int(rng.integers(75, 96)) if rng.random() < 0.3 else None
    return draw_scale_bar((H, W), length_px=L, thickness=thickness, label=label, style=style,
                          polarity=polarity, position=position, label_pos=label_pos,
                          font_path=str(rng.choice(fonts)), font_px=font_px, jpeg_quality=jpeg,
                          saturate=bool(rng.random() < 0.15), rng=rng)
