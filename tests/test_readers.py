"""The read path: the reader registry, and scale-bar calibration inside read_image."""

from __future__ import annotations

import struct
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import tifffile

from exoimage import io, scalebar
from exoimage.io import (ImageHeader, ImageReadError, Reader, probe_image, read_image, reader_for,
                         register_reader, supported_suffixes, unregister_reader, write_calibrated_tiff)
from exoimage.scalebar import ocr_available
from exoimage.simulate.scalebar import draw_scale_bar, find_fonts

needs_ocr = pytest.mark.skipif(not ocr_available(),
                               reason="rapidocr/onnxruntime missing (default dependencies of exoimage)")
needs_fonts = pytest.mark.skipif(not find_fonts(), reason="no TrueType fonts (apt-get install fonts-dejavu-core)")

#: the ScanEV jpg's bar measured by hand on the pixels: columns 192..992 of rows 2860..2879 (801 px), "500 nm"
REAL_BAR_BOX = (2860, 192, 2880, 993)
REAL_NM_PER_PX = 500.0 / 801


def _bar_field(tmp_path, name="bar.png"):
    """A grey field with a black 120 x 5 px bar and no label (found without OCR, never read)."""
    data = np.random.default_rng(3).normal(150, 6, (200, 300)).clip(60, 240).astype(np.uint8)
    data[170:175, 40:160] = 0
    p = tmp_path / name
    import cv2

    cv2.imwrite(str(p), data)
    return p, data


def _spy_find(monkeypatch):
    calls = []
    orig = scalebar.find_scale_bar

    def spy(data, ocr=True):
        calls.append(ocr)
        return orig(data, ocr=ocr)

    monkeypatch.setattr(scalebar, "find_scale_bar", spy)
    return calls


# --------------------------------------------------------------------------
# scale bar in the read path


@needs_ocr
def test_read_image_calibrates_the_real_jpeg_from_its_bar(real_dir):
    p = real_dir / "ev_tem_negative_stain.jpg"
    plain = read_image(p)  # default: the file's own calibration only (it has none)
    assert plain.pixel_size_nm is None and plain.pixel_size_source == "none" and plain.annotation_mask is None
    img = read_image(p, scale_bar="auto")
    assert img.pixel_size_source == "scale_bar"
    assert img.pixel_size_nm == pytest.approx(REAL_NM_PER_PX, rel=1e-3)
    md = img.metadata
    assert md["scale_bar_text"] == "500 nm" and md["scale_bar_box"] == REAL_BAR_BOX
    assert md["scale_bar_length_px"] == pytest.approx(801, abs=1) and md["scale_bar_confidence"] >= 0.5
    m = img.annotation_mask
    assert m.shape == img.data.shape and m[2860:2880, 192:993].all()  # the bar ...
    assert m[2725:2828, 215:710].mean() > 0.99                        # ... its "500 nm" label
    assert m.mean() < 0.03 and not m[:2600].any()                      # and nothing of the specimen
    assert not any("scale bar" in w for w in img.warnings)


def test_given_pixel_size_wins_and_the_label_is_not_read(tmp_path, monkeypatch):
    p, _ = _bar_field(tmp_path)
    calls = _spy_find(monkeypatch)
    img = read_image(p, 0.8, scale_bar="auto")
    assert calls == [False]  # one geometric search, no OCR
    assert img.pixel_size_nm == 0.8 and img.pixel_size_source == "given"
    assert "scale_bar_text" not in img.metadata
    assert img.annotation_mask[170:175, 40:160].all() and img.annotation_mask.mean() < 0.1


def test_without_ocr_an_uncalibrated_image_is_a_warning_not_an_error(tmp_path, monkeypatch):
    from exoimage.tem import analyze_tem_image

    p, _ = _bar_field(tmp_path)
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # the default OCR engine missing
    img = read_image(p, scale_bar="auto")
    assert img.pixel_size_nm is None and img.pixel_size_source == "none"
    assert [w for w in img.warnings if w.startswith("scale bar not read (rapidocr/onnxruntime is not installed")]
    assert img.annotation_mask is None  # left to the analysis (as before the read path held it)
    res = analyze_tem_image(img, name="bar.png")
    assert not res.ok and "no pixel size" in res.image_row["error"]
    assert "scale bar not read" in res.image_row["warnings"]


def test_file_calibration_without_ocr_is_kept_quietly(tmp_path, monkeypatch):
    _, data = _bar_field(tmp_path)
    p = tmp_path / "cal.tif"
    write_calibrated_tiff(p, data, 1.25)
    monkeypatch.setitem(sys.modules, "rapidocr", None)
    calls = _spy_find(monkeypatch)
    img = read_image(p, scale_bar="auto")
    assert calls == [False] and img.warnings == []
    assert img.pixel_size_nm == pytest.approx(1.25) and img.pixel_size_source == "imagej"
    assert img.annotation_mask[170:175, 40:160].all()


@needs_ocr
@needs_fonts
def test_bar_disagreeing_with_the_file_is_a_warning(tmp_path):
    sb = draw_scale_bar((512, 512), length_px=200, thickness=6, label=("200 nm", 200, "nm"), font_px=28)
    p = tmp_path / "wrong.tif"
    write_calibrated_tiff(p, sb.data, 1.3)  # the bar says 1.0 nm/px
    img = read_image(p, scale_bar="auto")
    assert img.pixel_size_nm == pytest.approx(1.3) and img.pixel_size_source == "imagej"
    assert img.metadata["scale_bar_check"] == "disagrees"
    assert img.metadata["scale_bar_nm_per_px"] == pytest.approx(1.0, rel=0.01)
    assert any("disagrees" in w and "keeping imagej" in w for w in img.warnings)


def test_no_search_unless_asked(tmp_path, monkeypatch):
    p, _ = _bar_field(tmp_path)

    def boom(*a, **k):
        raise AssertionError("scale-bar search")

    monkeypatch.setattr(scalebar, "find_scale_bar", boom)
    monkeypatch.setattr(scalebar, "annotation_mask", boom)
    for img in (read_image(p), read_image(p, scale_bar="off"), read_image(p, scale_bar=False)):
        assert img.annotation_mask is None and img.warnings == [] and img.pixel_size_nm is None
    with pytest.raises(ValueError, match="scale_bar must be one of auto, off"):
        read_image(p, scale_bar="yes")


def test_blots_run_no_scale_bar_search(tmp_path, monkeypatch):
    from exoimage.blot import analyze_blot_file
    from exoimage.simulate.blot import simulate_blot

    sim = simulate_blot(n_lanes=4, height=200, seed=1)
    p = tmp_path / "blot.tif"
    tifffile.imwrite(p, sim.data)

    calls = _spy_find(monkeypatch)
    res = analyze_blot_file(p)
    assert res.ok and len(res.lanes) >= 3
    assert calls == []


# --------------------------------------------------------------------------
# the reader registry

_XYZ_MAGIC = b"XYZ1"


def _write_xyz(p, data, px_nm):
    p.write_bytes(_XYZ_MAGIC + struct.pack(">HHf", data.shape[0], data.shape[1], px_nm) + data.tobytes())


@pytest.fixture
def xyz():
    """A toy format registered for the test: 'XYZ1', height, width (uint16 BE), nm/px (float32 BE), uint8 rows."""
    calls = []

    def probe(p, max_pixels):
        head = p.read_bytes()[:12]
        if not head.startswith(_XYZ_MAGIC):
            raise ImageReadError(p, "not an XYZ file")
        h, w, _ = struct.unpack(">HHf", head[4:12])
        return ImageHeader(h, w, 1, 1, 1, "uint8", "xyz")

    def read(p, max_pixels):
        calls.append(p)
        raw = p.read_bytes()
        h, w, px = struct.unpack(">HHf", raw[4:12])
        data = np.frombuffer(raw[12:12 + h * w], np.uint8).reshape(h, w).copy()
        return io.Image(data=data, pixel_size_nm=float(px), pixel_size_source="xyz", file_format="xyz")

    reader = register_reader(Reader("xyz-test", (".XYZ",), read, probe, (_XYZ_MAGIC,), ("xyz",)))
    yield SimpleNamespace(reader=reader, calls=calls)
    if any(r.name == "xyz-test" for r in io.readers()):
        unregister_reader("xyz-test")


def test_registered_reader_reads_probes_and_is_walked(xyz, tmp_path):
    from exoimage.cli import main

    data = (np.arange(64 * 72) % 251).astype(np.uint8).reshape(64, 72)
    folder = tmp_path / "in"
    folder.mkdir()
    p = folder / "field.xyz"
    _write_xyz(p, data, 1.5)
    assert ".xyz" in supported_suffixes() and reader_for(p) is xyz.reader
    img = read_image(p)
    np.testing.assert_array_equal(img.data, data)
    assert img.pixel_size_nm == pytest.approx(1.5) and img.pixel_size_source in xyz.reader.sources
    assert probe_image(p) == ImageHeader(64, 72, 1, 1, 1, "uint8", "xyz")
    assert read_image(p, 0.9).metadata["file_pixel_size_source"] == "xyz"
    # the commands find it in a folder and read it like any other format
    assert main(["tem", str(folder), "--out", str(tmp_path / "out")]) == 0
    row = pd.read_csv(tmp_path / "out" / "images.csv").iloc[0]
    assert row.image == "field.xyz" and row.status == "ok" and row.pixel_size_source == "xyz"
    unregister_reader("xyz-test")
    with pytest.raises(ImageReadError, match=r"unsupported file type '\.xyz'"):
        read_image(p)


def test_registered_reader_is_refused_from_its_header_before_reading(xyz, tmp_path):
    p = tmp_path / "big.xyz"
    _write_xyz(p, np.zeros((40, 40), np.uint8), 1.0)
    with pytest.raises(ImageReadError, match="over the pixel budget"):
        read_image(p, max_pixels=1000)
    with pytest.raises(ImageReadError, match="over the pixel budget"):
        probe_image(p, max_pixels=1000)
    assert xyz.calls == []  # refused before the reader decoded anything


def test_registered_reader_failure_is_one_line(xyz, tmp_path):
    p = tmp_path / "short.xyz"
    p.write_bytes(_XYZ_MAGIC + struct.pack(">HHf", 10, 10, 1.0) + b"\x00" * 7)  # 7 of 100 px
    with pytest.raises(ImageReadError) as err:
        read_image(p)
    assert str(err.value).startswith(f"{p}: cannot read as xyz (") and "\n" not in str(err.value)


def test_magic_bytes_choose_among_readers_of_one_suffix(tmp_path):
    def make(name, magic):
        def probe(p, max_pixels):
            return ImageHeader(8, 8, 1, 1, 1, "uint8", name)

        def read(p, max_pixels):
            if not p.read_bytes().startswith(magic):
                raise ImageReadError(p, f"not a {name} file")
            return io.Image(data=np.full((8, 8), len(name), np.uint8), file_format=name)

        return Reader(name, (".abc",), read, probe, (magic,))

    a, b = register_reader(make("abc-a", b"AA")), register_reader(make("abc-b", b"BBB"))
    try:
        (tmp_path / "b.abc").write_bytes(b"BBB" + b"\x00" * 64)
        (tmp_path / "a.abc").write_bytes(b"AA" + b"\x00" * 64)
        (tmp_path / "c.abc").write_bytes(b"CC" + b"\x00" * 64)
        assert reader_for(tmp_path / "b.abc") is b and reader_for(tmp_path / "a.abc") is a
        assert read_image(tmp_path / "b.abc").file_format == "abc-b"
        # no magic matches: the first reader of the suffix, whose own message says what is wrong
        with pytest.raises(ImageReadError, match="not a abc-a file"):
            read_image(tmp_path / "c.abc")
        with pytest.raises(ValueError, match="already registered"):
            register_reader(make("abc-a", b"ZZ"))
        c = register_reader(make("abc-a", b"CC"), replace=True)
        assert reader_for(tmp_path / "c.abc") is c and reader_for(tmp_path / "a.abc") is c  # AA: first again
    finally:
        unregister_reader("abc-a")
        unregister_reader("abc-b")
    assert ".abc" not in supported_suffixes()


def test_built_in_readers_and_the_unsupported_message(tmp_path):
    assert [r.name for r in io.readers()] == ["tiff", "raster", "gatan", "mrc", "tia", "emd", "jeol", "phenom"]
    assert supported_suffixes() == io.SUPPORTED_SUFFIXES
    p = tmp_path / "notes.qqq"
    p.write_text("x")
    with pytest.raises(ImageReadError) as err:
        read_image(p)
    assert err.value.problem == ("unsupported file type '.qqq'; supported: .tif, .tiff, .png, .jpg, .jpeg, "
                                 ".bmp, .dm3, .dm4, .mrc, .emi, .ser, .emd, .img, .map, .elid")
    with pytest.raises(ValueError, match="suffixes must be like"):
        Reader("bad", ("tif",), lambda p, m: None, lambda p, m: None)


@pytest.mark.parametrize("parser", ["_tiff_fei", "_tiff_zeiss", "_tiff_sis", "_tiff_ome", "_tiff_imagej",
                                    "_tiff_resolution"])
def test_tiff_reader_declares_every_source_it_reports(parser, tmp_path, monkeypatch):
    for name in ("_tiff_fei", "_tiff_zeiss", "_tiff_sis", "_tiff_ome", "_tiff_imagej", "_tiff_resolution"):
        monkeypatch.setattr(io, name, (lambda tf, page: 2.0) if name == parser else (lambda tf, page: None))
    p = tmp_path / "x.tif"
    tifffile.imwrite(p, np.arange(64, dtype=np.uint16).reshape(8, 8))
    img = read_image(p)
    assert img.pixel_size_nm == 2.0 and img.pixel_size_source in reader_for(p).sources
