"""The napari reader opens the vendor-written EM files of ../shared at their known pixel size, in a viewer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("napari_exoimage")

from napari_exoimage._reader import get_reader  # noqa: E402

EM = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "em_formats"
CASES = ["tia/128x128-TEM_search.emi", "velox_emd/FFTComplexOdd.emd", "tiff_zeiss_sem/test_tiff_Zeiss_SEM_512pix.tif",
         "tiff_dm/test_loading_image_saved_with_DM.tif"]


def _expected(rel):
    for entry in json.loads((EM / "expected.json").read_text()):
        if entry["file"] == rel:
            return entry["pixel_size_nm"]
    raise AssertionError(f"{rel} not in expected.json")


@pytest.mark.parametrize("rel", CASES)
def test_vendor_file_opens_in_napari_at_its_pixel_size(rel, make_napari_viewer):
    if not (EM / rel).is_file():
        pytest.skip("../shared/data/em_formats not available")
    if rel.endswith((".emi", ".emd")):
        pytest.importorskip("rsciio")
    want = _expected(rel)
    assert get_reader(str(EM / rel)) is not None
    viewer = make_napari_viewer()
    layer = viewer.open(str(EM / rel), plugin="napari-exoimage")[0]
    assert layer.scale[-1] == pytest.approx(want, rel=1e-3)
    assert str(layer.units[-1]) in ("nm", "nanometer")
