"""Real vendor-written EM files (../shared/data/em_formats) open with their known pixel size.

The truth is ``expected.json`` beside the files (the value rosettasciio's own
tests assert, or the vendor's stored value; see its README). The files are
never copied into the repository: the tests skip when ../shared is absent, and
the rosettasciio-only formats skip when the ``[em]`` extra is not installed.
Truncated and malformed copies are made in tmp_path at test time.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from exoimage import io
from exoimage.calibration import is_trusted
from exoimage.io import ImageReadError, probe_image, read_image

EM = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "em_formats"
EXPECTED = json.loads((EM / "expected.json").read_text()) if (EM / "expected.json").is_file() else []

#: relative tolerance of the pixel size (issue 19: within 0.1 %)
RTOL = 1e-3

#: files only rosettasciio reads (ncempy reads the other DM files)
_RSCIIO_ONLY_FILES = {"dm3/multi_signal.dm3"}


def _needs_rsciio(rel: str) -> bool:
    return Path(rel).suffix.lower() in io.EM_SUFFIXES or rel in _RSCIIO_ONLY_FILES


def _path(rel: str) -> Path:
    if not EM.is_dir():
        pytest.skip("../shared/data/em_formats is not available")
    if _needs_rsciio(rel):
        pytest.importorskip("rsciio")
    if Path(rel).suffix.lower() in (".dm3", ".dm4") and rel not in _RSCIIO_ONLY_FILES:
        pytest.importorskip("ncempy")
    if Path(rel).suffix.lower() == ".mrc":
        pytest.importorskip("mrcfile")
    return EM / rel


@pytest.mark.parametrize("entry", EXPECTED, ids=[e["file"] for e in EXPECTED])
def test_every_vendor_file_opens_with_its_pixel_size(entry):
    img = read_image(_path(entry["file"]))
    assert img.shape == tuple(entry["shape"])
    want = entry["pixel_size_nm"]
    if want is None:
        assert img.pixel_size_nm is None and img.pixel_size_source == "none"
    else:
        assert img.pixel_size_nm == pytest.approx(want, rel=RTOL)
        assert is_trusted(img.pixel_size_source), img.pixel_size_source
        assert img.pixel_size_source in io.reader_for(img.path).sources


def test_expected_json_is_walked():
    if not EM.is_dir():
        pytest.skip("../shared/data/em_formats is not available")
    assert len(EXPECTED) == 25


@pytest.mark.parametrize("rel,source", [
    ("tia/128x128-TEM_search.emi", "tia"),
    ("velox_emd/FFTComplexOdd.emd", "velox"),
    ("jeol_img/View000_0000000.img", "jeol"),
    ("phenom_elid/Elid2Version4.elid", "phenom"),
    ("dm3/multi_signal.dm3", "gatan"),
    ("tiff_tvips/TVIPS_bin4.tif", "tvips"),
    ("tiff_dm/test_loading_image_saved_with_DM.tif", "gatan"),
    ("tiff_jeol_sightx/JEOL-SightX-TEM-mag-dummy.tif", "jeol_sightx"),
    ("tiff_zeiss_sem/test_tiff_Zeiss_SEM_512pix.tif", "zeiss"),
    ("tiff_olympus_sis/olympus_SIS.tif", "olympus_sis"),
])
def test_source_is_named_precisely(rel, source):
    assert read_image(_path(rel)).pixel_size_source == source


def test_multi_image_files_name_the_choice():
    # Velox: the complex 'Half FFT' (1/um) is listed first; the HAADF image is read
    img = read_image(_path("velox_emd/FFTComplexOdd.emd"))
    assert img.metadata["dataset_title"] == "HAADF" and img.metadata["dataset_index"] == 1
    # DM: a 512x512 image and a 1-D plot: the image, no warning (only one 2-D image)
    img = read_image(_path("dm3/multi_signal.dm3"))
    assert img.metadata["dataset_title"] == "HAADF" and img.data.dtype == np.uint16
    # Phenom: two SEM images: the first, and a warning names the other
    img = read_image(_path("phenom_elid/Elid2Version4.elid"))
    assert img.shape == (16, 20)
    w = [x for x in img.warnings if x.code == "several_images"]
    assert len(w) == 1 and "(35, 40)" in w[0]


def test_low_magnification_sem_is_kept_with_a_warning():
    img = read_image(_path("tiff_fei_sem/FEI-Helios-Ebeam-16bits.tif"))
    assert img.pixel_size_nm == pytest.approx(3372.4, rel=RTOL) and img.pixel_size_source == "fei"
    w = [x for x in img.warnings if x.code == "calibration_unusual"]
    assert len(w) == 1 and "3372.4" in w[0]


def test_reciprocal_space_is_not_a_pixel_size():
    # the Velox FFT alone would be 1/um: exoimage reads the HAADF; the DM diffraction pattern has no nm/px
    img = read_image(_path("dm3/test_diffraction_pattern.dm3"))
    assert img.pixel_size_nm is None


# --------------------------------------------------------------------------
# Hostile copies of each new format

#: (file, companion files copied beside it unchanged)
_NEW_FORMATS = [
    ("tia/64x64_TEM_images_acquire_1.ser", ()),
    ("tia/128x128-TEM_search.emi", ("tia/128x128-TEM_search_1.ser",)),
    ("velox_emd/FFTComplexOdd.emd", ()),
    ("jeol_img/View000_0000000.img", ()),
    ("phenom_elid/Elid2Version4.elid", ()),
    ("dm3/multi_signal.dm3", ()),
    ("tiff_olympus_sis/olympus_SIS.tif", ()),
    ("tiff_tvips/TVIPS_bin4.tif", ()),
    ("tiff_dm/test_loading_image_saved_with_DM.tif", ()),
    ("tiff_jeol_sightx/JEOL-SightX-TEM-mag-dummy.tif", ()),
    ("tiff_zeiss_sem/test_tiff_Zeiss_SEM_512pix.tif", ()),
]


def _copy(rel, companions, dst: Path, keep: float | None = None, garbage: bool = False) -> Path:
    src = _path(rel)
    out = dst / src.name
    raw = src.read_bytes()
    if garbage:
        raw = bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8))
    elif keep is not None:
        raw = raw[: max(1, int(len(raw) * keep))]
    out.write_bytes(raw)
    for c in companions:
        shutil.copyfile(_path(c), dst / Path(c).name)
    return out


def _one_line_error(p: Path, **kw) -> ImageReadError:
    with pytest.raises(ImageReadError) as ei:
        read_image(p, **kw)
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith(str(p)) and msg.count(p.name) == 1, msg
    return ei.value


@pytest.mark.parametrize("rel,companions", _NEW_FORMATS, ids=[r for r, _ in _NEW_FORMATS])
@pytest.mark.parametrize("keep", [0.5, 0.02], ids=["half", "head"])
def test_truncated_copy_is_a_one_line_error(tmp_path, rel, companions, keep):
    p = _copy(rel, companions, tmp_path, keep=keep)
    if Path(rel).suffix == ".tif" and keep == 0.5:
        # a TIFF may keep its pixels in the first half (the Olympus SIS file does, with its
        # metadata after them): then it must read exactly as the whole file, else fail in one line
        try:
            img = read_image(p)
        except ImageReadError:
            _one_line_error(p)
            return
        whole = read_image(_path(rel))
        np.testing.assert_array_equal(img.data, whole.data)
        assert img.pixel_size_nm == whole.pixel_size_nm
        return
    _one_line_error(p)


@pytest.mark.parametrize("rel,companions", _NEW_FORMATS, ids=[r for r, _ in _NEW_FORMATS])
def test_garbage_with_the_suffix_is_a_one_line_error(tmp_path, rel, companions):
    _one_line_error(_copy(rel, (), tmp_path, garbage=True))


@pytest.mark.parametrize("rel", ["tia/128x128-TEM_search.emi", "velox_emd/FFTComplexOdd.emd",
                                 "dm3/multi_signal.dm3", "tia/64x64_TEM_images_acquire_1.ser"])
def test_over_budget_is_refused_before_decoding(rel, monkeypatch):
    import dask.array as da

    def no_compute(self, *a, **k):
        raise AssertionError("decoded before the budget check")

    monkeypatch.setattr(da.Array, "compute", no_compute)
    p = _path(rel)
    err = _one_line_error(p, max_pixels=100)
    assert "over the pixel budget" in err.problem
    with pytest.raises(ImageReadError, match="over the pixel budget"):
        probe_image(p, max_pixels=100)


def test_phenom_archive_is_bounded_before_rosettasciio(monkeypatch):
    p = _path("phenom_elid/Elid2Version4.elid")
    import rsciio.phenom

    monkeypatch.setattr(rsciio.phenom, "file_reader", lambda *a, **k: pytest.fail("archive handed over"))
    err = _one_line_error(p, max_pixels=1000)  # 4000 bytes: the archive decompresses to more
    assert "decompresses to more than 4000 bytes" in err.problem


def test_without_rosettasciio_the_error_says_what_to_install(monkeypatch, tmp_path):
    p = _path("velox_emd/FFTComplexOdd.emd")
    import builtins

    real_import = builtins.__import__

    def fake(name, *a, **k):
        if name == "rsciio" or name.startswith("rsciio."):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    monkeypatch.setattr("importlib.import_module", lambda name, *a: fake(name))
    err = _one_line_error(p)
    assert "needs rosettasciio: pip install 'exoimage[em]'" in err.problem


# --------------------------------------------------------------------------
# TIFF dialects on files written here (no ../shared needed)


def _dm_tiff(path, sx, sy, ux="um", uy="um"):
    import tifffile

    tifffile.imwrite(path, np.arange(64 * 80, dtype=np.uint16).reshape(64, 80), extratags=[
        (65003, "s", 0, uy, True), (65004, "s", 0, ux, True),
        (65009, "d", 1, sy, True), (65010, "d", 1, sx, True)])
    return path


def test_dm_tiff_tags_calibrate(tmp_path):
    img = read_image(_dm_tiff(tmp_path / "dm.tif", 0.0125, 0.0125))
    assert img.pixel_size_source == "gatan" and img.pixel_size_nm == pytest.approx(12.5, rel=1e-12)
    assert not [w for w in img.warnings if w.code == "non_square_pixels"]


def test_dm_tiff_non_square_keeps_x_and_warns_with_both(tmp_path):
    img = read_image(_dm_tiff(tmp_path / "dm.tif", 0.0125, 0.025))
    assert img.pixel_size_nm == pytest.approx(12.5, rel=1e-12)
    w = [x for x in img.warnings if x.code == "non_square_pixels"]
    assert len(w) == 1 and "12.5 x 25 nm" in w[0]


def test_dm_tiff_reciprocal_unit_is_no_calibration(tmp_path):
    img = read_image(_dm_tiff(tmp_path / "dm.tif", 0.17, 0.17, ux="1/nm", uy="1/nm"))
    assert img.pixel_size_nm is None and img.pixel_size_source == "none"


def test_tia_data_file_beside_its_emi_is_not_a_second_input(tmp_path):
    """X.emi reads X_1.ser: a folder holding both gives one input, X.emi (a lone .ser stays an input)."""
    from exoimage.outputs import find_inputs

    for name in ("X.emi", "X_1.ser", "X_2.ser", "Y_1.ser"):
        (tmp_path / name).write_bytes(b"\0" * 16)
    assert [f.rel for f in find_inputs([tmp_path])] == ["X.emi", "Y_1.ser"]
