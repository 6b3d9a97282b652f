"""Reading images with their calibration: one round-trip or fixture per source."""

import numpy as np
import pytest
import tifffile

from exoimage.io import ImageReadError, read_image, unit_to_nm, validate_image, write_calibrated_tiff

RNG = np.random.default_rng(0)
IMG16 = RNG.integers(100, 4000, size=(64, 80), dtype=np.uint16)


@pytest.mark.parametrize("unit,xres,expected", [
    ("nm", 1 / 0.8, 0.8),
    ("micron", 1 / 0.0025, 2.5),
    ("um", 1 / 0.0012, 1.2),
    ("\\u00B5m", 1 / 0.0005, 0.5),  # how ImageJ escapes µm in the description
    ("A", 1 / 7.5, 0.75),
    ("\\u00C5", 1 / 30.0, 3.0),
])
def test_imagej_units(tmp_path, unit, xres, expected):
    p = tmp_path / "ij.tif"
    tifffile.imwrite(p, IMG16, imagej=True, resolution=(xres, xres), metadata={"unit": unit})
    img = read_image(p)
    assert img.pixel_size_source == "imagej"
    assert img.pixel_size_nm == pytest.approx(expected, rel=1e-6)
    np.testing.assert_array_equal(img.data, IMG16)


def test_calibrated_tiff_round_trip(tmp_path):
    p = tmp_path / "labels.tif"
    labels = np.zeros((40, 50), np.int32)
    labels[5:10, 5:12] = 1
    labels[20:30, 30:45] = 300
    write_calibrated_tiff(p, labels, 1.37)
    img = read_image(p)
    assert img.pixel_size_nm == pytest.approx(1.37, rel=1e-6)
    np.testing.assert_array_equal(img.data, labels)


def test_ome_tiff(tmp_path):
    p = tmp_path / "a.ome.tif"
    tifffile.imwrite(p, IMG16, ome=True, metadata={"PhysicalSizeX": 0.0021, "PhysicalSizeXUnit": "µm",
                                                    "PhysicalSizeY": 0.0021, "PhysicalSizeYUnit": "µm"})
    img = read_image(p)
    assert img.pixel_size_source == "ome"
    assert img.pixel_size_nm == pytest.approx(2.1)


def test_fei_tiff(tmp_path):
    p = tmp_path / "fei.tif"
    ini = "[User]\nDate=01/01/2024\n[Scan]\nPixelWidth=1.25e-009\nPixelHeight=1.25e-009\n"
    tifffile.imwrite(p, IMG16, extratags=[(34682, "s", 0, ini, True)])
    img = read_image(p)
    assert img.pixel_size_source == "fei"
    assert img.pixel_size_nm == pytest.approx(1.25)


def test_plain_resolution_cm_plausible_and_dpi_rejected(tmp_path):
    p = tmp_path / "cm.tif"
    tifffile.imwrite(p, IMG16, resolution=(1e7 / 0.9, 1e7 / 0.9), resolutionunit=3)
    img = read_image(p)
    assert img.pixel_size_source == "tiff_resolution"
    assert img.pixel_size_nm == pytest.approx(0.9)
    p2 = tmp_path / "dpi.tif"
    tifffile.imwrite(p2, IMG16, resolution=(300, 300), resolutionunit=2)
    assert read_image(p2).pixel_size_nm is None
    p3 = tmp_path / "screen_cm.tif"
    tifffile.imwrite(p3, IMG16, resolution=(28.35, 28.35), resolutionunit=3)  # 72 dpi in cm
    assert read_image(p3).pixel_size_nm is None


def test_explicit_pixel_size_wins(tmp_path):
    p = tmp_path / "ij.tif"
    tifffile.imwrite(p, IMG16, imagej=True, resolution=(1.0, 1.0), metadata={"unit": "nm"})
    img = read_image(p, pixel_size_nm=0.42)
    assert img.pixel_size_nm == 0.42 and img.pixel_size_source == "given"
    assert img.metadata["file_pixel_size_nm"] == pytest.approx(1.0)


@pytest.mark.parametrize("compression", ["lzw", "zlib"])
def test_compressed_and_white_is_zero(tmp_path, compression):
    p = tmp_path / "c.tif"
    tifffile.imwrite(p, IMG16, compression=compression, photometric="miniswhite")
    img = read_image(p)
    assert img.white_is_zero
    np.testing.assert_array_equal(img.data, IMG16)  # raw values kept
    np.testing.assert_array_equal(img.displayed(), 65535.0 - IMG16)


def test_float32_and_8bit(tmp_path):
    for arr in (IMG16.astype(np.float32) / 7, (IMG16 // 20).astype(np.uint8)):
        p = tmp_path / f"x_{arr.dtype}.tif"
        tifffile.imwrite(p, arr)
        np.testing.assert_array_equal(read_image(p).data, arr)


def test_png_grey_rgb_and_colour(tmp_path):
    import cv2

    g = (IMG16 // 16).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), np.dstack([g, g, g]))
    img = read_image(tmp_path / "g.png")
    assert img.data.ndim == 2 and img.was_rgb and not img.warnings
    np.testing.assert_array_equal(img.data, g)
    colour = np.dstack([g, np.roll(g, 5, axis=1), 255 - g])
    cv2.imwrite(str(tmp_path / "c.png"), colour)
    img = read_image(tmp_path / "c.png")
    assert img.data.ndim == 2
    assert any("colour" in w for w in img.warnings)
    assert img.pixel_size_nm is None and img.pixel_size_source == "none"


def test_jpeg_warns(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "a.jpg"), (IMG16 // 16).astype(np.uint8))
    img = read_image(tmp_path / "a.jpg")
    assert img.file_format == "jpeg" and any("JPEG" in w for w in img.warnings)


def test_mrc_round_trip(tmp_path):
    mrcfile = pytest.importorskip("mrcfile")
    p = tmp_path / "a.mrc"
    with mrcfile.new(p) as m:
        m.set_data(IMG16.astype(np.float32))
        m.voxel_size = 15.0  # Angstrom
    img = read_image(p)
    assert img.pixel_size_source == "mrc" and img.pixel_size_nm == pytest.approx(1.5)
    np.testing.assert_array_equal(img.data, IMG16.astype(np.float32))


def test_stack_rejected(tmp_path):
    p = tmp_path / "stack.tif"
    tifffile.imwrite(p, np.stack([IMG16, IMG16, IMG16]), photometric="minisblack")
    with pytest.raises(ImageReadError, match="multi-frame"):
        read_image(p)


@pytest.mark.parametrize("content,match", [
    (None, "file not found"),
    (b"", "empty"),
    (b"this is not an image at all", "cannot read"),
])
def test_bad_files(tmp_path, content, match):
    p = tmp_path / "bad.tif"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(ImageReadError, match=match) as ei:
        read_image(p)
    assert str(p) in str(ei.value) and "\n" not in str(ei.value)


def test_truncated_tiff(tmp_path):
    p = tmp_path / "t.tif"
    tifffile.imwrite(p, IMG16)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError):
        img = read_image(p)
        validate_image(img)


def test_unsupported_suffix(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    with pytest.raises(ImageReadError, match="unsupported file type"):
        read_image(p)


@pytest.mark.parametrize("arr,match", [
    (np.full((50, 50), 7, np.uint16), "constant"),
    (np.full((50, 50), np.nan, np.float32), "NaN"),
    (np.ones((1, 1), np.uint16), "too small"),
])
def test_validate(tmp_path, arr, match):
    p = tmp_path / "v.tif"
    tifffile.imwrite(p, arr)
    with pytest.raises(ImageReadError, match=match):
        validate_image(read_image(p))


def test_units():
    assert unit_to_nm("µm") == 1000 and unit_to_nm("nm") == 1 and unit_to_nm("pixel") is None


def test_real_jpeg_reads_as_grey(real_dir):
    img = read_image(real_dir / "ev_tem_negative_stain.jpg")
    assert img.data.shape == (3072, 3072) and img.data.dtype == np.uint8


def test_real_white_is_zero_blot(real_dir):
    img = read_image(real_dir / "wb_rhoa_chemi_16bit.tif")
    assert img.white_is_zero and img.data.dtype == np.uint16 and img.data.shape == (1648, 1200)
