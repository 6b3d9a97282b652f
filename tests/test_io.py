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


# --------------------------------------------------------------------------
# Gatan DM3/DM4 (fixtures written by tests/dm_writer.py; read with ncempy)

def _write_dm(*args, **kwargs):
    from dm_writer import write_dm

    return write_dm(*args, **kwargs)


@pytest.fixture
def _dm_writer_on_path(monkeypatch):
    import pathlib

    monkeypatch.syspath_prepend(str(pathlib.Path(__file__).parent))


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
@pytest.mark.parametrize("unit,scale,expected_nm", [("nm", 0.85, 0.85), ("µm", 0.0021, 2.1)])
def test_gatan_dm_round_trip(tmp_path, _dm_writer_on_path, version, dtype, unit, scale, expected_nm):
    pytest.importorskip("ncempy")
    arr = (IMG16 / 3).astype(dtype)
    p = _write_dm(tmp_path / f"a.dm{version}", arr, scale=scale, units=unit, version=version)
    img = read_image(p)
    assert img.file_format == f"dm{version}"
    assert img.pixel_size_source == "gatan"
    assert img.pixel_size_nm == pytest.approx(expected_nm, rel=1e-6)  # Scale is float32 in the file
    assert img.data.dtype == dtype and img.data.shape == IMG16.shape  # the image, not the 8x8 thumbnail
    np.testing.assert_array_equal(img.data, arr)
    assert not img.warnings


@pytest.mark.parametrize("version", [3, 4])
def test_gatan_dm_without_thumbnail(tmp_path, _dm_writer_on_path, version):
    pytest.importorskip("ncempy")
    p = _write_dm(tmp_path / f"b.dm{version}", IMG16, scale=1.6, units="nm", version=version, thumbnail=False)
    img = read_image(p)
    assert img.pixel_size_nm == pytest.approx(1.6, rel=1e-6) and img.pixel_size_source == "gatan"
    np.testing.assert_array_equal(img.data, IMG16)


@pytest.mark.parametrize("version", [3, 4])
def test_dm_writer_read_by_ncempy(tmp_path, _dm_writer_on_path, version):
    """The fixture writer itself: ncempy sees a thumbnail first, then the calibrated image."""
    dm = pytest.importorskip("ncempy.io.dm")
    arr = IMG16.astype(np.float32) / 7
    p = _write_dm(tmp_path / f"c.dm{version}", arr, scale=(0.0013, 0.0011), units=("µm", "µm"),
                  origin=(2.0, -3.0), version=version)
    with dm.fileDM(str(p)) as f:
        assert f.thumbnail and f.numObjects == 2
        ds = f.getDataset(0)
    np.testing.assert_array_equal(ds["data"], arr)
    assert [round(float(s), 7) for s in ds["pixelSize"]] == [0.0013, 0.0011]  # (y, x)
    assert list(ds["pixelUnit"]) == ["µm", "µm"]
    assert [float(o) for o in ds["pixelOrigin"]] == [2.0, -3.0]


@pytest.mark.parametrize("version", [3, 4])
def test_gatan_non_square_pixels_warn(tmp_path, _dm_writer_on_path, version):
    pytest.importorskip("ncempy")
    p = _write_dm(tmp_path / f"d.dm{version}", IMG16, scale=(1.2, 1.0), units="nm", version=version)
    img = read_image(p)
    assert img.pixel_size_nm == pytest.approx(1.0, rel=1e-6)  # x
    assert any("non-square" in w for w in img.warnings)


@pytest.mark.parametrize("version", [3, 4])
def test_gatan_3d_rejected(tmp_path, _dm_writer_on_path, version):
    pytest.importorskip("ncempy")
    p = _write_dm(tmp_path / f"e.dm{version}", np.stack([IMG16, IMG16, IMG16]), scale=1.0, units="nm",
                  version=version)
    with pytest.raises(ImageReadError, match=r"3-D dataset \(3, 64, 80\)") as ei:
        read_image(p)
    assert str(p) in str(ei.value) and "\n" not in str(ei.value)


def test_gatan_several_images_rejected_without_rsciio(tmp_path, _dm_writer_on_path, monkeypatch):
    pytest.importorskip("ncempy")
    from exoimage import em_readers

    monkeypatch.setattr(em_readers, "rsciio_available", lambda: False)
    p = _write_dm(tmp_path / "f.dm3", IMG16, scale=1.0, units="nm", n_images=2)
    with pytest.raises(ImageReadError, match="holds 2 images; choosing one needs rosettasciio"):
        read_image(p)


def test_gatan_several_images_first_real_space_with_rsciio(tmp_path, _dm_writer_on_path):
    pytest.importorskip("ncempy")
    pytest.importorskip("rsciio")
    p = _write_dm(tmp_path / "f.dm3", IMG16, scale=1.0, units="nm", n_images=2)
    img = read_image(p)
    assert img.shape == IMG16.shape and img.pixel_size_nm == pytest.approx(1.0)
    assert img.pixel_size_source == "gatan"
    assert any(w.code == "several_images" for w in img.warnings)


# --------------------------------------------------------------------------
# Zeiss SEM (tag 34118, CZ_SEM) and Olympus SIS (tag 33560)

_ZEISS_HEAD = "0\r\n0\r\n0\r\n"


@pytest.mark.parametrize("text,expected_nm", [
    # SmartSEM writes both keys; the image pixel size wins
    ("AP_PIXEL_SIZE\r\nPixel Size = 2441 pm\r\nAP_WD\r\nWD = 8.5 mm\r\n"
     "AP_IMAGE_PIXEL_SIZE\r\nImage Pixel Size = 2.441 nm\r\n", 2.441),
    # only the older key, in picometres (taking the number as nm gives 2441)
    ("AP_PIXEL_SIZE\r\nPixel Size = 3560 pm\r\nDP_DETECTOR_TYPE\r\nDetector = SE2\r\n", 3.56),
    # micrometres with the micro sign as Windows writes it (cp1252 0xB5)
    ("AP_IMAGE_PIXEL_SIZE\r\nImage Pixel Size = 0.0125 \xb5m\r\n", 12.5),
    # unit not separated by a space: tifffile leaves the value a string
    ("AP_IMAGE_PIXEL_SIZE\r\nImage Pixel Size = 0.9nm\r\n", 0.9),
], ids=["both_keys", "pm_only", "micrometre_cp1252", "unit_without_space"])
def test_zeiss_sem_tiff(tmp_path, text, expected_nm):
    p = tmp_path / "zeiss.tif"
    payload = (_ZEISS_HEAD + text).encode("cp1252")
    tifffile.imwrite(p, IMG16, metadata=None, extratags=[(34118, "B", len(payload), payload, True)])
    with tifffile.TiffFile(p) as tf:
        assert tf.sem_metadata  # tifffile parses the fixture as Zeiss SEM metadata
    img = read_image(p)
    assert img.pixel_size_source == "zeiss"
    # Zeiss's values refer to the 1024-px store resolution: this image is 80 px wide
    # (rosettasciio's rule, confirmed on a real 512-px SmartSEM file, tests/test_em_formats.py)
    assert img.pixel_size_nm == pytest.approx(expected_nm * 1024 / IMG16.shape[1], rel=1e-9)
    np.testing.assert_array_equal(img.data, IMG16)


def _olympus_sis_block(offset: int, length_exponent: int, xcal: float, ycal: float) -> bytes:
    """The OlympusSIS structure as tifffile's ``read_sis`` parses it (no public spec exists).

    Header: 'SIS0', date fields, 32-byte name, number of sub-entries; then
    sub-entries (type, count, absolute offset); type 1 points to the
    'general data' block holding the pixel size as ``cal * 10**exponent`` metres.
    """
    import struct

    head = struct.pack("<4s6xhhhhh6x32sH", b"SIS0", 30, 14, 25, 10, 126, b"exoimage".ljust(32, b"\0"), 1)
    general_at = offset + len(head) + 8
    entry = struct.pack("<hhI", 1, 1, general_at)
    general = struct.pack("<10xhdd8xd2x34s32s", length_exponent, xcal, ycal, 50000.0,
                          b"Camera".ljust(34, b"\0"), b"TEM".ljust(32, b"\0"))
    return head + entry + general


@pytest.mark.parametrize("exponent,cal,expected_nm", [(-6, 0.0015, 1.5), (-9, 0.85, 0.85)])
def test_olympus_sis_tiff(tmp_path, exponent, cal, expected_nm):
    # Tag 33560 holds the file offset of the SIS structure, appended after the TIFF.
    p = tmp_path / "sis.tif"
    tifffile.imwrite(p, IMG16, metadata=None, extratags=[(33560, "I", 1, 0, True)])
    end = p.stat().st_size
    tifffile.imwrite(p, IMG16, metadata=None, extratags=[(33560, "I", 1, end, True)])
    assert p.stat().st_size == end
    with open(p, "ab") as fh:
        fh.write(_olympus_sis_block(end, exponent, cal, cal))
    with tifffile.TiffFile(p) as tf:
        assert tf.sis_metadata["pixelsizex"] == pytest.approx(cal * 10.0 ** exponent)
    img = read_image(p)
    assert img.pixel_size_source == "olympus_sis"
    assert img.pixel_size_nm == pytest.approx(expected_nm, rel=1e-9)
    np.testing.assert_array_equal(img.data, IMG16)
