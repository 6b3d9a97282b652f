"""Issue 17: what the reader tells the user on opening a file - nothing about a pixel size a blot
does not need, one clean line (and nothing from napari) for a file that is no image."""

from __future__ import annotations

import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("napari_exoimage")


@pytest.fixture
def notes(monkeypatch):
    got = []
    monkeypatch.setattr("napari_exoimage._reader.notify_error", lambda m: got.append(("error", m)))
    monkeypatch.setattr("napari_exoimage._reader.notify_warning", lambda m: got.append(("warning", m)))
    return got


def test_opening_a_blot_says_nothing_about_pixel_size(real_dir, make_napari_viewer, notes):
    viewer = make_napari_viewer()
    layer, = viewer.open(str(real_dir / "wb_rhoa_chemi_16bit.tif"), plugin="napari-exoimage")
    assert not [m for m in notes if "pixel size" in m[1]], notes
    assert layer.metadata["exoimage"]["pixel_size_nm"] is None   # still known to be uncalibrated


def test_text_file_renamed_tif_gives_one_clean_message(tmp_path, make_napari_viewer, notes):
    p = tmp_path / "notes.tif"
    p.write_text("this is not an image\n")
    viewer = make_napari_viewer()
    layers = viewer.open(str(p), plugin="napari-exoimage")   # napari raises on "returned no data"
    assert layers == [] and len(viewer.layers) == 0
    assert len(notes) == 1 and notes[0][0] == "error" and notes[0][1].startswith(str(p) + ":"), notes
