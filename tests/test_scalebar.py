"""Scale-bar calibration: geometry, OCR, masks, calibration precedence, CLI."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from exoimage import scalebar
from exoimage.io import Image, read_image
from exoimage.scalebar import (OCRUnavailableError, ScaleBar, annotation_mask, calibrate_from_scale_bar,
                               find_scale_bar, ocr_available, parse_label)
from exoimage.simulate.scalebar import background_field, draw_scale_bar, find_fonts

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL_JPEG = SHARED / "data" / "real" / "ev_tem_negative_stain.jpg"
REAL_DARK_TIF = SHARED / "data" / "real" / "ev_tem_dark_crop_16bit.tif"
#: measured by hand on the pixels: the black bar covers columns 192..992 of rows 2860..2879
REAL_BAR_PX = 801
REAL_NM_PER_PX = 500.0 / REAL_BAR_PX

FONTS = find_fonts()
needs_ocr = pytest.mark.skipif(not ocr_available(),
                               reason="rapidocr/onnxruntime missing (default dependencies of exoimage)")
needs_tesseract = pytest.mark.skipif(not ocr_available("tesseract"),
                                     reason="tesseract/pytesseract missing (apt-get install tesseract-ocr; "
                                            "pip install 'exoimage[ocr]')")
needs_fonts = pytest.mark.skipif(not FONTS, reason="no TrueType fonts (apt-get install fonts-dejavu-core)")
needs_real = pytest.mark.skipif(not REAL_JPEG.exists(), reason="../shared data not available")


def _font(name):
    return next((f for f in FONTS if f.endswith(name)), FONTS[0])


# --------------------------------------------------------------------------
# label parsing


@pytest.mark.parametrize("text,expected", [
    ("500 nm", (500.0, "nm")), ("500nm", (500.0, "nm")), ("0.5 um", (0.5, "µm")),
    ("0,2 µm", (0.2, "µm")), ("0,2 μm", (0.2, "µm")), ("1 pm", (1.0, "µm")), ("2ym", (2.0, "µm")),
    ("100 Å", (100.0, "Å")), ("100A", (100.0, "Å")), ("0.1 mm", (0.1, "mm")), ("02um", (0.2, "µm")),
    ("IOO nm", (100.0, "nm")), (". 2um", (2.0, "µm")), ("0.25µm", (0.25, "µm")),
    ("0,5 µm", (0.5, "µm")), ("1.5µm", (1.5, "µm")), ("2 jm", (2.0, "µm")), ("5 pum", (5.0, "µm")),
    ("500 Å", (500.0, "Å")), ("500 \u212b", (500.0, "Å")), ("1 mm", (1.0, "mm")), ("200 nm.", (200.0, "nm")),
    ("0.2 μm", (0.2, "µm")), ("50 nnm", (50.0, "nm")),
])
def test_parse_label(text, expected):
    assert parse_label(text) == expected


@pytest.mark.parametrize("text", ["", "nm", "500", "abc", "0 nm", "500 kV", "x30000"])
def test_parse_label_rejects(text):
    assert parse_label(text) is None


# --------------------------------------------------------------------------
# geometry on synthetic bars (no OCR: fast, many styles)

GEOMETRY_CASES = [
    # style, polarity, position, label_pos, length, thickness, font_px, font, jpeg
    ("plain", "dark", "bottom-left", "above", 231, 6, 24, "DejaVuSans.ttf", None),
    ("plain", "bright", "bottom-right", "below", 180, 4, 18, "DejaVuSerif.ttf", None),
    ("plain", "dark", "top-left", "right", 97, 3, 14, "DejaVuSansMono.ttf", None),
    ("plain", "bright", "top-right", "above", 305, 12, 40, "DejaVuSans-Bold.ttf", 85),
    ("caps", "dark", "bottom-left", "above", 250, 2, 22, "DejaVuSans.ttf", None),
    ("caps", "bright", "bottom-right", "below", 143, 1, 16, "DejaVuSerif.ttf", None),
    ("caps", "dark", "top-right", "right", 199, 3, 30, "DejaVuSans.ttf", 90),
    ("outlined", "dark", "bottom-left", "above", 277, 8, 32, "DejaVuSans.ttf", None),
    ("outlined", "bright", "bottom-centre", "below", 120, 5, 20, "DejaVuSans-Bold.ttf", None),
    ("boxed", "dark", "bottom-right", "above", 160, 5, 20, "DejaVuSans.ttf", None),
    ("boxed", "bright", "top-left", "below", 211, 7, 26, "DejaVuSerif.ttf", 80),
    ("strip", "dark", "bottom-left", "above", 190, 6, 22, "DejaVuSans.ttf", None),
    ("strip", "bright", "bottom-right", "right", 256, 8, 28, "DejaVuSansMono.ttf", None),
    ("strip", "dark", "bottom-centre", "below", 133, 4, 18, "DejaVuSerif.ttf", 88),
]


def _draw(case, label=("500 nm", 500, "nm"), shape=(768, 768), seed=0):
    style, pol, pos, lpos, length, t, fpx, font, jpeg = case
    return draw_scale_bar(shape, length_px=length, thickness=t, label=label, style=style,
                          polarity=pol, position=pos, label_pos=lpos, font_path=_font(font),
                          font_px=fpx, jpeg_quality=jpeg, rng=np.random.default_rng(seed))


@needs_fonts
@pytest.mark.parametrize("case", GEOMETRY_CASES, ids=lambda c: "-".join(map(str, c[:4])))
def test_bar_geometry(case):
    sb = _draw(case)
    res = find_scale_bar(sb.data, ocr=False)
    assert res is not None
    assert abs(res.length_px - sb.length_px) <= 1.0
    r0, c0, r1, c1 = res.bar_box
    assert abs(c0 - sb.bar_box[1]) <= 1 and abs(c1 - sb.bar_box[3]) <= 1
    assert r0 >= sb.params["cap_box"][0] - 1 and r1 <= sb.params["cap_box"][2] + 1
    assert res.value is None and res.nm_per_px is None and res.label_text is None
    # the label is located without OCR and is masked with the bar
    assert res.label_box is not None
    m = annotation_mask(sb.data)
    br0, bc0, br1, bc1 = sb.bar_box
    assert m[br0:br1, bc0:bc1].all()
    lr0, lc0, lr1, lc1 = sb.label_box
    assert m[lr0:lr1, lc0:lc1].mean() > 0.97
    if case[0] == "strip":
        assert res.strip_box is not None
        s0 = sb.strip_box[0]
        assert abs(res.strip_box[0] - s0) <= 2
        assert m[s0 + 2:, :].all()
    else:
        assert res.strip_box is None
        assert m.mean() < 0.05


@needs_fonts
def test_uint16_and_float_inputs_measure_the_same():
    sb = _draw(GEOMETRY_CASES[0])
    a = find_scale_bar(sb.data, ocr=False)
    b = find_scale_bar(sb.data.astype(np.uint16) * 257, ocr=False)
    c = find_scale_bar(sb.data.astype(np.float32) / 255.0, ocr=False)
    assert a.bar_box == b.bar_box == c.bar_box
    assert abs(a.length_px - b.length_px) < 1e-3 and abs(a.length_px - c.length_px) < 1e-3


# --------------------------------------------------------------------------
# no bar: nothing is masked, nothing is found


def test_no_bar_on_simulated_field():
    rng = np.random.default_rng(3)
    for saturate in (False, True):
        field = np.round(background_field((768, 1024), rng, saturate=saturate)).astype(np.uint8)
        assert find_scale_bar(field, ocr=False) is None
        assert annotation_mask(field).mean() < 0.002


def test_no_bar_on_vesicle_field():
    # dark-rimmed round vesicles on a grainy stain, the pattern the TEM detector sees
    rng = np.random.default_rng(7)
    H = W = 900
    img = background_field((H, W), rng).astype(np.float32)
    yy, xx = np.mgrid[0:H, 0:W]
    for _ in range(25):
        cy, cx, r = rng.uniform(0, H), rng.uniform(0, W), rng.uniform(10, 60)
        d = np.hypot(yy - cy, xx - cx)
        img[np.abs(d - r) < 2.5] = 5
        img[d < r - 2.5] = 200
    data = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    assert annotation_mask(data).mean() < 0.002


@needs_real
def test_no_bar_on_real_crop():
    img = read_image(REAL_DARK_TIF)
    assert annotation_mask(img.data).mean() < 0.002


# --------------------------------------------------------------------------
# OCR on synthetic bars

OCR_CASES = [
    (GEOMETRY_CASES[0], ("500 nm", 500, "nm")),
    (GEOMETRY_CASES[1], ("0.5 um", 0.5, "µm")),
    (GEOMETRY_CASES[2], ("100nm", 100, "nm")),
    (GEOMETRY_CASES[3], ("0,2 µm", 0.2, "µm")),
    (GEOMETRY_CASES[4], ("1 μm", 1, "µm")),
    (GEOMETRY_CASES[6], ("200 nm", 200, "nm")),
    (GEOMETRY_CASES[7], ("2 µm", 2, "µm")),
    (GEOMETRY_CASES[8], ("100 Å", 100, "Å")),
    (GEOMETRY_CASES[9], ("0.25 µm", 0.25, "µm")),
    (GEOMETRY_CASES[10], ("50 nm", 50, "nm")),
    (GEOMETRY_CASES[11], ("1 um", 1, "µm")),
    (GEOMETRY_CASES[12], ("20 nm", 20, "nm")),
    (GEOMETRY_CASES[13], ("0.1 mm", 0.1, "mm")),
]


@needs_ocr
@needs_fonts
@pytest.mark.parametrize("case,label", OCR_CASES, ids=lambda c: c[0] if isinstance(c, str) else None)
def test_bar_label_ocr(case, label):
    sb = _draw(case, label=label)
    res = find_scale_bar(sb.data, ocr=True)
    assert res is not None
    assert abs(res.length_px - sb.length_px) <= 1.0
    assert (res.value, res.unit) == (pytest.approx(sb.value), sb.unit), res.label_text
    assert res.nm_per_px == pytest.approx(sb.nm_per_px, rel=0.01)
    if sb.unit == "mm":  # mm bars are rare and 'µm' can read as 'mm': always flagged
        assert 0 < res.confidence < 0.5
    else:
        assert 0.5 <= res.confidence <= 1.0


# --------------------------------------------------------------------------
# the real micrograph


@pytest.fixture(scope="module")
def real():
    if not REAL_JPEG.exists():
        pytest.skip("../shared data not available")
    return read_image(REAL_JPEG)


def test_real_bar_geometry(real):
    res = find_scale_bar(real.data, ocr=False)
    assert res.bar_box == (2860, 192, 2880, 993)
    assert abs(res.length_px - REAL_BAR_PX) <= 1.0


@needs_ocr
def test_real_calibration(real):
    res = find_scale_bar(real.data, ocr=True)
    assert (res.value, res.unit, res.label_text) == (500.0, "nm", "500 nm")
    assert res.nm_per_px == pytest.approx(REAL_NM_PER_PX, rel=0.01)
    assert res.confidence >= 0.5
    img = read_image(REAL_JPEG)
    calibrate_from_scale_bar(img, bar=res)
    assert img.pixel_size_source == "scale_bar"
    assert img.pixel_size_nm == pytest.approx(REAL_NM_PER_PX, rel=0.01)
    md = img.metadata
    assert md["scale_bar_text"] == res.label_text
    assert md["scale_bar_length_px"] == pytest.approx(REAL_BAR_PX, abs=1)
    assert md["scale_bar_box"] == (2860, 192, 2880, 993)
    assert md["scale_bar_confidence"] >= 0.5
    assert not any("scale bar" in w for w in img.warnings)


def test_real_annotation_mask(real):
    m = annotation_mask(real.data)
    assert m[2860:2880, 192:993].all()  # the bar
    assert m[2858:2882, 190:995].all()  # its white outline
    # the "500 nm" text: rows ~2722..2830, columns ~212..712 (by eye on the pixels)
    assert m[2725:2828, 215:710].mean() > 0.99
    assert m.mean() < 0.03
    assert not m[:2600].any() and not m[:, 1100:].any()


# --------------------------------------------------------------------------
# calibration precedence and warnings


def _bar(nm_per_px=0.5, confidence=0.9, length=400.0):
    return ScaleBar(length_px=length, bar_box=(10, 20, 15, 20 + int(length)), label_text="200nm",
                    label_box=(0, 0, 5, 5), value=nm_per_px * length, unit="nm", nm_per_px=nm_per_px,
                    confidence=confidence)


def test_calibrate_sets_pixel_size_when_missing():
    img = Image.from_array(np.zeros((50, 50), np.uint8))
    calibrate_from_scale_bar(img, bar=_bar())
    assert img.pixel_size_nm == 0.5 and img.pixel_size_source == "scale_bar"
    assert img.metadata["scale_bar_length_px"] == 400.0
    assert img.warnings == []


def test_metadata_wins_and_disagreement_warns():
    img = Image(data=np.zeros((50, 50), np.uint8), pixel_size_nm=0.6, pixel_size_source="imagej")
    calibrate_from_scale_bar(img, bar=_bar(0.5))
    assert img.pixel_size_nm == 0.6 and img.pixel_size_source == "imagej"
    assert len(img.warnings) == 1 and "disagrees" in img.warnings[0]
    assert img.metadata["scale_bar_nm_per_px"] == 0.5


def test_metadata_agreement_no_warning():
    img = Image(data=np.zeros((50, 50), np.uint8), pixel_size_nm=0.505, pixel_size_source="given")
    calibrate_from_scale_bar(img, bar=_bar(0.5))
    assert img.pixel_size_nm == 0.505 and img.pixel_size_source == "given"
    assert img.warnings == []


def test_low_confidence_warns():
    img = Image.from_array(np.zeros((50, 50), np.uint8))
    calibrate_from_scale_bar(img, bar=_bar(confidence=0.3))
    assert img.pixel_size_source == "scale_bar"
    assert any("low confidence" in w for w in img.warnings)


def test_unreadable_label_warns_and_does_not_calibrate():
    img = Image.from_array(np.zeros((50, 50), np.uint8))
    bar = ScaleBar(length_px=120.0, bar_box=(1, 2, 3, 122), label_text="8?")
    calibrate_from_scale_bar(img, bar=bar)
    assert img.pixel_size_nm is None and img.pixel_size_source == "none"
    assert any("could not be read" in w for w in img.warnings)


def _block_rapidocr(monkeypatch):
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # as if not installed
    assert not ocr_available()


def test_known_pixel_size_without_ocr_is_kept_quietly(monkeypatch):
    _block_rapidocr(monkeypatch)
    img = Image(data=np.zeros((50, 50), np.uint8), pixel_size_nm=0.6, pixel_size_source="imagej")
    calibrate_from_scale_bar(img)
    assert img.pixel_size_nm == 0.6 and img.warnings == []
    assert img.metadata["scale_bar_check"] == "skipped: OCR not installed"
    bare = Image.from_array(np.zeros((50, 50), np.uint8))
    with pytest.raises(OCRUnavailableError):
        calibrate_from_scale_bar(bare)


# --------------------------------------------------------------------------
# OCR is optional


def _import_without_pytesseract(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytesseract", None)  # import raises ImportError
    spec = importlib.util.spec_from_file_location("exoimage._scalebar_no_ocr", scalebar.__file__)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "exoimage._scalebar_no_ocr", mod)
    spec.loader.exec_module(mod)
    return mod


def test_imports_without_pytesseract(monkeypatch):
    mod = _import_without_pytesseract(monkeypatch)
    assert mod.ocr_available("tesseract") is False
    data = np.full((200, 300), 150, np.uint8)
    data[170:175, 40:160] = 0
    with pytest.raises(mod.OCRUnavailableError) as err:
        mod.find_scale_bar(data, ocr=True, engine="tesseract")
    msg = str(err.value)
    assert "pip install 'exoimage[ocr]'" in msg and "apt-get install tesseract-ocr" in msg
    with pytest.raises(ValueError, match="OCR engine must be one of"):
        mod.find_scale_bar(data, ocr=True, engine="easyocr")
    res = mod.find_scale_bar(data, ocr=False)
    assert res is not None and abs(res.length_px - 120) <= 1
    assert mod.annotation_mask(data)[170:175, 40:160].all()


def test_cli_without_ocr_is_one_clear_line(monkeypatch, tmp_path, capsys):
    _block_rapidocr(monkeypatch)
    from exoimage.cli import main
    data = np.full((100, 100), 128, np.uint8)
    import cv2
    cv2.imwrite(str(tmp_path / "a.png"), data)
    assert main(["calibrate", str(tmp_path / "a.png"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install rapidocr onnxruntime" in err[0]
    monkeypatch.setattr(scalebar, "_pytesseract", None)
    assert main(["calibrate", str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--ocr", "tesseract"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exoimage[ocr]" in err[0] and "tesseract-ocr" in err[0]


# --------------------------------------------------------------------------
# command line


@needs_ocr
@needs_fonts
def test_cli_calibrate(tmp_path, capsys):
    import cv2

    from exoimage.cli import main
    sb = _draw(GEOMETRY_CASES[0], label=("200 nm", 200, "nm"))
    cv2.imwrite(str(tmp_path / "bar.png"), sb.data)
    cv2.imwrite(str(tmp_path / "nobar.png"),
                np.round(background_field((300, 300), np.random.default_rng(1))).astype(np.uint8))
    out = tmp_path / "out"
    rc = main(["calibrate", str(tmp_path / "bar.png"), str(tmp_path / "nobar.png"), "--out", str(out)])
    assert rc == 0
    cap = capsys.readouterr()
    import re
    m = re.search(r"bar\.png: '200 nm' \(OCR '[^']*'\) over ([0-9.]+) px -> ([0-9.]+) nm/px "
                  r"\(confidence [0-9.]+\); bar box rows (\d+)-(\d+) cols (\d+)-(\d+), label box rows", cap.out)
    assert m, cap.out
    assert abs(float(m.group(1)) - sb.length_px) <= 1
    assert float(m.group(2)) == pytest.approx(sb.nm_per_px, rel=0.005)
    assert abs(int(m.group(5)) - sb.bar_box[1]) <= 1 and abs(int(m.group(6)) - sb.bar_box[3]) <= 1
    assert cap.err.strip() == f"{tmp_path / 'nobar.png'}: no scale bar found"
    from exoimage.outputs import safe_stem  # previews are named by the input's unique stem

    assert (out / f"{safe_stem('bar.png')}_scalebar.png").stat().st_size > 0
    assert (out / f"{safe_stem('nobar.png')}_scalebar.png").stat().st_size > 0
    assert (out / "calibration.csv").exists()
    # only files without a readable bar: non-zero exit
    assert main(["calibrate", str(tmp_path / "nobar.png"), "--out", str(out)]) == 1


# --------------------------------------------------------------------------
# label association and confidence cues (PP-OCR, the default engine)


def _text_at(img, text, r, c, px=26, colour=0):
    from PIL import Image as PImage, ImageDraw, ImageFont

    pil = PImage.fromarray(img)
    ImageDraw.Draw(pil).text((c, r), text, fill=colour, font=ImageFont.truetype(_font("DejaVuSans.ttf"), px))
    return np.asarray(pil).copy()


def _field(shape=(500, 700), seed=0):
    return np.round(background_field(shape, np.random.default_rng(seed), lo=90, hi=200)).astype(np.uint8)


@needs_ocr
@needs_fonts
def test_label_is_the_aligned_text_not_the_nearest():
    img = _field()
    img[400:406, 100:400] = 0  # a 300 px bar
    img = _text_at(img, "200 nm", 418, 205)  # its label, centred below it, 12 px away
    img = _text_at(img, "100 nm", 368, 402)  # other text, nearer (5 px above the bar's end), not aligned
    res = find_scale_bar(img)
    assert res.label_text == "200 nm", (res.label_text, res.label_box)
    assert res.label_box[0] >= 406
    assert res.nm_per_px == pytest.approx(200 / 300, rel=0.01)
    assert res.confidence >= 0.5


@needs_ocr
@needs_fonts
def test_unaligned_only_label_is_low_confidence():
    img = _field(seed=1)
    img[400:406, 100:400] = 0
    img = _text_at(img, "200 nm", 368, 330)  # above, hanging over the right end: neither centred nor flush
    res = find_scale_bar(img)
    assert res.nm_per_px is not None and res.confidence < 0.5
    assert any("centred" in c for c in res.checks)


@needs_ocr
@needs_fonts
def test_non_round_label_is_low_confidence():
    img = _field(seed=2)
    img[400:406, 100:400] = 0
    img = _text_at(img, "370 nm", 365, 205)
    res = find_scale_bar(img)
    assert (res.value, res.unit) == (370.0, "nm")
    assert res.confidence < 0.5 and any("round" in c for c in res.checks)


def _fake_ocr(monkeypatch, answers):
    """PP-OCR replaced by a list of answers, one list of (text, score) per call."""
    calls = iter(answers)
    monkeypatch.setattr(scalebar, "_rapid_read", lambda images: next(calls)[:len(images)])


@needs_fonts
def test_disagreeing_cut_outs_are_low_confidence(monkeypatch):
    img = _field(seed=3)
    img[400:406, 100:400] = 0
    img = _text_at(img, "500 nm", 365, 205)
    monkeypatch.setattr(scalebar, "require_ocr", lambda engine=None: None)
    # a doubtful first read (score below SURE_SCORE), then the raw and wide cut-outs say otherwise
    # (a disagreement makes the raw and wide cut-outs be read again, denoised: a third call)
    _fake_ocr(monkeypatch, [[("500 nm", 0.8)], [("200 nm", 0.99), ("200 nm", 0.99)],
                            [("200 nm", 0.99), ("500 nm", 0.99)]])
    res = find_scale_bar(img, engine="rapidocr")
    assert res.nm_per_px is not None and res.confidence <= scalebar.DISAGREEING_CUE_CONFIDENCE
    # the same three cut-outs agreeing: confident
    _fake_ocr(monkeypatch, [[("500 nm", 0.8)], [("500 nm", 0.99), ("500 nm", 0.99)]])
    res = find_scale_bar(img, engine="rapidocr")
    assert res.value == 500 and res.confidence >= 0.5


@needs_fonts
def test_a_dropped_glyph_is_low_confidence(monkeypatch):
    img = _field(seed=4)
    img[400:406, 100:400] = 0
    img = _text_at(img, "2.5 µm", 365, 200)
    monkeypatch.setattr(scalebar, "require_ocr", lambda engine=None: None)
    # every cut-out misses the '2.' (the failure seen on small bitmap fonts)
    _fake_ocr(monkeypatch, [[("5 µm", 0.99)], [("5 µm", 0.99), ("5 µm", 0.99)]])
    res = find_scale_bar(img, engine="rapidocr")
    assert res.value == 5 and res.confidence < 0.5
    assert any("glyphs" in c or "decimal point" in c for c in res.checks)


@needs_ocr
@needs_fonts
@pytest.mark.parametrize("colour", [(255, 255, 0), (0, 255, 0)])
def test_coloured_bar_on_a_grey_export(colour):
    grey = _field((500, 900), seed=5)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    rgb[400:410, 100:600] = colour  # 500 px: long enough for a sure chroma reading
    from PIL import Image as PImage, ImageDraw, ImageFont

    pil = PImage.fromarray(rgb)
    ImageDraw.Draw(pil).text((300, 360), "1 µm", fill=colour, font=ImageFont.truetype(_font("DejaVuSans.ttf"), 30))
    res = find_scale_bar(np.asarray(pil))
    assert res is not None and (res.value, res.unit) == (1.0, "µm")
    assert abs(res.length_px - 500) <= 1 and res.nm_per_px == pytest.approx(2.0, rel=0.01)


@needs_ocr
@needs_fonts
def test_one_pixel_coloured_bar_through_jpeg():
    """A 1-px green bar with end ticks, saved as JPEG q50: its chroma drops to about half (4:2:0), so it
    is found only with thin lines raised. The 8 x 8 block holding the left tick and the bar's first
    pixels is smeared by the quantisation (those 8 px are gone from every channel), so the length is
    right to 2 % only, and the reading is never sure."""
    import io

    from PIL import Image as PImage, ImageDraw, ImageFont

    grey = _field((600, 900), seed=5)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    rgb[450, 200:657] = (0, 255, 0)  # 457 px
    rgb[440:451, 200] = rgb[440:451, 656] = (0, 255, 0)
    pil = PImage.fromarray(rgb)
    ImageDraw.Draw(pil).text((380, 460), "1 µm", fill=(0, 255, 0), font=ImageFont.truetype(_font("DejaVuSans-Bold.ttf"), 40))
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=50)
    res = find_scale_bar(np.asarray(PImage.open(buf)))
    assert res is not None and (res.value, res.unit) == (1.0, "µm")
    assert res.nm_per_px == pytest.approx(1000 / 457, rel=0.02)
    assert res.confidence < 0.5 and any("thin coloured bar" in c for c in res.checks)


@needs_ocr
@needs_fonts
def test_thin_coloured_bar_touching_its_label_keeps_its_length():
    """A 1-px red bar with up ticks whose label hangs from it (0 px gap), JPEG q70: where the glyphs
    touch the bar the chroma's thin-line top-hat loses it, so the chroma sees only the part left of the
    label; the best colour channel shows the line running on to its far tick, and the length is that
    whole line's (within 1 %), at low confidence (a thin coloured bar)."""
    import io

    from PIL import Image as PImage, ImageDraw, ImageFont

    # a field of 60-140 grey: the red line (channel sum 255) is no extreme of the grey plane
    grey = (60 + _field((600, 1000), seed=6).astype(np.uint16) * 80 // 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    rgb[400, 200:560] = (255, 0, 0)  # 360 px
    rgb[390:401, 200] = rgb[390:401, 559] = (255, 0, 0)
    pil = PImage.fromarray(rgb)
    font = ImageFont.truetype(_font("DejaVuSans-Bold.ttf"), 40)
    x0, y0, x1, y1 = ImageDraw.Draw(pil).textbbox((0, 0), "50 nm", font=font)
    ImageDraw.Draw(pil).text((380 - (x1 - x0) // 2 - x0, 401 - y0), "50 nm", fill=(255, 0, 0), font=font)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=70)
    res = find_scale_bar(np.asarray(PImage.open(buf)))
    assert res is not None and (res.value, res.unit) == (50.0, "nm")
    assert res.nm_per_px == pytest.approx(50 / 360, rel=0.01)
    assert res.confidence < 0.5


# --------------------------------------------------------------------------
# the real ScanEV jpeg from a default install: read path, CLI, Tesseract option


@needs_ocr
@needs_real
def test_real_jpeg_through_the_read_path():
    img = read_image(REAL_JPEG, scale_bar="auto")
    assert img.pixel_size_source == "scale_bar"
    assert img.pixel_size_nm == pytest.approx(0.6242, rel=0.01)
    md = img.metadata
    assert md["scale_bar_text"] == "500 nm" and md["scale_bar_ocr_engine"] == "rapidocr"
    assert md["scale_bar_confidence"] >= 0.5 and md["scale_bar_label_box"] is not None


# `exoimage tem` on the ScanEV jpeg without --pixel-size: tests/test_cli_tem.py
# (test_real_micrograph_calibrated_from_its_scale_bar, which also checks the vesicles).


@needs_tesseract
@needs_real
def test_real_jpeg_tesseract_option(real):
    res = find_scale_bar(real.data, engine="tesseract")
    assert (res.value, res.unit) == (500.0, "nm") and res.ocr_engine == "tesseract"
    assert res.nm_per_px == pytest.approx(REAL_NM_PER_PX, rel=0.01)


@needs_ocr
@needs_fonts
def test_vertical_bar_with_its_label_written_bottom_to_top():
    img = _field((600, 500), seed=6)
    img[100:400, 440:446] = 0  # a vertical 300 px bar near the right edge
    from PIL import Image as PImage, ImageDraw, ImageFont

    label = PImage.new("L", (130, 34), 255)
    ImageDraw.Draw(label).text((2, 2), "500 nm", fill=0, font=ImageFont.truetype(_font("DejaVuSans.ttf"), 26))
    rot = np.asarray(label.rotate(90, expand=True))  # reads bottom to top
    r, c = 185, 400
    sub = img[r:r + rot.shape[0], c:c + rot.shape[1]]
    img[r:r + rot.shape[0], c:c + rot.shape[1]] = np.minimum(sub, rot)
    res = find_scale_bar(img)
    assert res is not None and res.orientation == "vertical"
    assert res.bar_box == (100, 440, 400, 446)
    assert abs(res.length_px - 300) <= 1
    assert (res.value, res.unit) == (500.0, "nm") and res.nm_per_px == pytest.approx(500 / 300, rel=0.01)
    assert annotation_mask(img, res)[100:400, 440:446].all()


@needs_fonts
def test_nm_read_as_mm_is_corrected_at_low_confidence(monkeypatch):
    img = _field(seed=7)
    img[400:406, 100:400] = 0
    img = _text_at(img, "100 nm", 365, 205)
    monkeypatch.setattr(scalebar, "require_ocr", lambda engine=None: None)
    # 100 mm over 300 px would be 333 µm per pixel: impossible on a micrograph, so 'mm' is 'nm' misread
    _fake_ocr(monkeypatch, [[("100 mm", 0.99)], [("100 mm", 0.99), ("100 mm", 0.99)]])
    res = find_scale_bar(img, engine="rapidocr")
    assert (res.value, res.unit) == (100.0, "nm") and res.confidence < 0.5


@needs_fonts
def test_lone_reading_is_re_read_denoised(monkeypatch):
    img = _field(seed=5)
    img[400:406, 100:400] = 0
    img = _text_at(img, "500 nm", 365, 205)
    monkeypatch.setattr(scalebar, "require_ocr", lambda engine=None: None)
    # only the wide cut-out gives a (wrong) reading; the denoised raw and wide cut-outs agree on 500 nm
    _fake_ocr(monkeypatch, [[("00 nm", 0.8)], [("00 nm", 0.9), ("7500 nm", 0.8)],
                            [("500 nm", 0.97), ("500 nm", 0.9)]])
    res = find_scale_bar(img, engine="rapidocr")
    assert (res.value, res.unit) == (500.0, "nm")
    # two of five reads disagree with it: never confident
    assert res.confidence <= scalebar.DISAGREEING_CUE_CONFIDENCE


@needs_fonts
def test_nm_lookalike_is_a_low_confidence_correction(monkeypatch):
    img = _field(seed=6)
    img[400:406, 100:400] = 0
    img = _text_at(img, "200 nm", 365, 205)
    monkeypatch.setattr(scalebar, "require_ocr", lambda engine=None: None)
    _fake_ocr(monkeypatch, [[("200 rm", 0.95)], [("200rm", 0.95), ("200 rm", 0.95)]])
    res = find_scale_bar(img, engine="rapidocr")
    assert (res.value, res.unit) == (200.0, "nm")
    assert res.confidence <= scalebar.DISAGREEING_CUE_CONFIDENCE


@needs_fonts
def test_wide_cut_out_with_leading_glyphs_wins(monkeypatch):
    img = _field(seed=7)
    img[400:406, 100:400] = 0
    img = _text_at(img, "0.5 µm", 365, 205)
    monkeypatch.setattr(scalebar, "require_ocr", lambda engine=None: None)
    # the line and raw cut-outs lost the '0.' the wide cut-out holds
    _fake_ocr(monkeypatch, [[("5 µm", 0.99)], [("5 µm", 0.99), ("0.5 µm", 0.9)],
                            [("5 µm", 0.99), ("0.5 µm", 0.9)]])
    res = find_scale_bar(img, engine="rapidocr")
    assert (res.value, res.unit) == (0.5, "µm")
    assert res.confidence <= scalebar.DISAGREEING_CUE_CONFIDENCE


def test_extends_needs_more_leading_digits():
    assert scalebar._extends("0.5", "5") and scalebar._extends("250", "50")
    assert not scalebar._extends("5", "5") and not scalebar._extends("500", "200")


def _label_with_gap(img, text, r, c, px=26):
    """Draw ``text`` and return (image, (c0, c1) columns of the gap at its space)."""
    from PIL import ImageFont

    font = ImageFont.truetype(_font("DejaVuSans.ttf"), px)
    head = text.split(" ")[0]
    g0 = c + int(np.ceil(font.getbbox(head)[2]))
    g1 = c + int(np.floor(font.getbbox(head + " n")[0] + font.getlength(head + " ")))
    return _text_at(img, text, r, c, px), (g0, g1)


@needs_fonts
def test_specks_are_not_counted_as_glyphs(monkeypatch):
    img = _field(seed=5)
    img[400:406, 100:400] = 0
    img, (g0, g1) = _label_with_gap(img, "10 nm", 365, 215)
    assert g1 - g0 >= 4
    # two thin dark scratches (JPEG ringing, dust) in the space between '10' and 'nm'
    img[372:383, g0 + 1] = 0
    img[374:384, g1 - 2] = 0
    monkeypatch.setattr(scalebar, "require_ocr", lambda engine=None: None)
    _fake_ocr(monkeypatch, [[("10 nm", 0.99)], [("10 nm", 0.99), ("10 nm", 0.99)]])
    res = find_scale_bar(img, engine="rapidocr")
    assert res.value == 10 and res.confidence >= 0.5
    assert not any("glyphs" in c for c in res.checks)


@needs_fonts
def test_dropped_digits_are_low_confidence(monkeypatch):
    img = _field(seed=6)
    img[400:406, 100:400] = 0
    img = _text_at(img, "100 nm", 365, 205)
    monkeypatch.setattr(scalebar, "require_ocr", lambda engine=None: None)
    # every cut-out drops both '0's: a round value, so only the glyph count can doubt it
    # (one glyph more than characters read is tolerated: GLYPH_COUNT_SLACK)
    _fake_ocr(monkeypatch, [[("1 nm", 0.99)], [("1 nm", 0.99), ("1 nm", 0.99)],
                            [("1 nm", 0.99), ("1 nm", 0.99)]])
    res = find_scale_bar(img, engine="rapidocr")
    assert res.value == 1 and res.confidence < 0.5
    assert any("glyphs" in c for c in res.checks)


@needs_fonts
@pytest.mark.parametrize("drawn,confident", [("1.5 µm", True), ("15 µm", False)])
def test_a_cut_out_that_drops_a_drawn_point_does_not_dispute(monkeypatch, drawn, confident):
    """The blanked cut-out reads '15 µm', the raw and wide ones '1.5 µm': when the geometry sees the
    point drawn between the digits the lone '15' is explained (a point too small for a component of
    the line) and the reading keeps a confidence; when no point is drawn the cut-outs disagree."""
    img = _field(seed=4)
    img[400:406, 100:400] = 0
    img = _text_at(img, drawn, 365, 200)
    monkeypatch.setattr(scalebar, "require_ocr", lambda engine=None: None)
    _fake_ocr(monkeypatch, [[("15 µm", 0.96)], [("1.5 µm", 0.96), ("1.5 µm", 0.98)],
                            [("1.5 µm", 0.95), ("1.5 µm", 0.97)]])
    res = find_scale_bar(img, engine="rapidocr")
    assert (res.value, res.unit) == (1.5, "µm")
    assert (res.confidence >= scalebar.LOW_CONFIDENCE) is confident, res.checks
    assert res.confidence <= 0.85  # 1.5 is not in the 1-2-5 series


def test_drops_point():
    assert scalebar._drops_point("15", "1.5") and scalebar._drops_point("5", "0.5")
    assert not scalebar._drops_point("25", "1.5") and not scalebar._drops_point("1.5", "1.5")
    assert not scalebar._drops_point("150", "1.5")


def test_extends_accepts_a_glyph_lost_anywhere_in_the_number():
    # a stain merged with the last '0' of '200' dropped it from the line: '20' is '200' less a glyph
    assert scalebar._extends("200", "20") and scalebar._extends("0.25", "25")
    assert not scalebar._extends("250", "500") and not scalebar._extends("20", "20")


def test_trim_line_ends_drops_a_blob_chained_at_the_end_and_marks_the_line():
    glyphs = [(10, 100 + 20 * k, 30, 116 + 20 * k, k + 1) for k in range(4)]  # four 20 px glyphs
    blob = (12, 160, 70, 210, 9)  # a micrograph blob 3x as tall, 4 px past the last glyph
    far = (10, 300, 30, 316, 10)  # a glyph-sized mark 5 heights beyond the line
    assert scalebar._trim_line_ends(glyphs + [blob, far]) == glyphs
    assert scalebar._trim_line_ends(glyphs) == glyphs


def test_restore_point_only_between_two_digits_the_geometry_separates():
    note = [scalebar._POINT_NOTE]
    assert scalebar._restore_point("25 um", (25.0, "µm"), note) == (2.5, "µm")
    assert scalebar._restore_point("15nm", (15.0, "nm"), note) == (1.5, "nm")
    assert scalebar._restore_point("25 um", (25.0, "µm"), []) is None  # no point drawn
    assert scalebar._restore_point("10 nm", (10.0, "nm"), note) is None  # '1.0' is never printed
    assert scalebar._restore_point("250 nm", (250.0, "nm"), note) is None  # where would it go?
    assert scalebar._restore_point("0.5 um", (0.5, "µm"), note) is None  # a point was read
