"""Reader, sample data and manifest of napari-exoimage."""

from __future__ import annotations

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("napari_exoimage")

from exoimage.io import ImageReadError, read_image, write_calibrated_tiff  # noqa: E402
from napari_exoimage._reader import get_reader  # noqa: E402
from napari_exoimage._sample_data import sample_blot, sample_tem  # noqa: E402


def test_manifest_is_valid():
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    mf = pm.get_manifest("napari-exoimage")
    assert {w.display_name for w in mf.contributions.widgets} == {"Vesicles (TEM)", "Western blot"}
    assert {s.key for s in mf.contributions.sample_data} == {"tem", "blot"}


def test_reader_opens_calibrated_tiff_in_nm(tmp_path, make_napari_viewer):
    p = tmp_path / "field.tif"
    data = (np.arange(64 * 80, dtype=np.uint16).reshape(64, 80) % 997)
    write_calibrated_tiff(p, data, 1.7)
    reader = get_reader(str(p))
    assert reader is not None and get_reader(str(tmp_path / "notes.txt")) is None
    (arr, kw, kind), = reader(str(p))
    assert kind == "image" and np.array_equal(arr, data)
    assert kw["scale"] == pytest.approx((1.7, 1.7)) and kw["units"] == ("nm", "nm")
    assert kw["metadata"]["exoimage"]["pixel_size_source"] == "imagej"
    viewer = make_napari_viewer()
    layers = viewer.open(str(p), plugin="napari-exoimage")
    assert layers[0].scale[-1] == pytest.approx(1.7) and str(layers[0].units[-1]) in ("nm", "nanometer")


def test_reader_error_is_the_cli_message(tmp_path, monkeypatch):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00garbage")
    msgs = []
    monkeypatch.setattr("napari_exoimage._reader.notify_error", msgs.append)
    assert get_reader(str(bad))(str(bad)) == [(None,)]   # napari: nothing opened, no message of its own
    with pytest.raises(ImageReadError) as err:
        read_image(bad)
    assert msgs == [str(err.value)] and msgs[0].startswith(f"{bad}: ")


def test_sample_data_via_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-exoimage", "tem")
    viewer.open_sample("napari-exoimage", "blot")
    tem, blot = viewer.layers["simulated TEM"], viewer.layers["simulated blot"]
    assert tem.scale[-1] == pytest.approx(1.0) and tem.data.dtype == np.uint16
    assert "truth" in tem.metadata["exoimage"] and blot.data.ndim == 2
    (d, kw, _), = sample_tem()
    assert d.shape == (1024, 1024)
    (d, kw, _), = sample_blot()
    assert kw["metadata"]["exoimage"]["truth_bands"]["saturated"].any()
