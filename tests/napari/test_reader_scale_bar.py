"""The napari reader calibrates as `exoimage tem` does: from a burned-in scale bar, with the bar masked."""

from __future__ import annotations

import struct

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("napari_exoimage")

from exoimage import io  # noqa: E402
from exoimage.scalebar import ocr_available  # noqa: E402
from napari_exoimage._common import image_from_layer, layer_pixel_size  # noqa: E402
from napari_exoimage._reader import get_reader  # noqa: E402

needs_ocr = pytest.mark.skipif(not ocr_available(),
                               reason="rapidocr/onnxruntime missing (default dependencies of exoimage)")


@needs_ocr
def test_reader_calibrates_the_real_jpeg_from_its_bar_as_the_cli_does(real_dir):
    path = str(real_dir / "ev_tem_negative_stain.jpg")
    (data, kw, kind), = get_reader(path)(path)
    meta = kw["metadata"]["exoimage"]
    assert kind == "image" and kw["units"] == ("nm", "nm")
    # the 500 nm bar is 801 px long (measured by hand on the pixels)
    assert kw["scale"] == pytest.approx((500 / 801, 500 / 801), rel=1e-3)
    assert meta["pixel_size_source"] == "scale_bar" and meta["scale_bar"]["scale_bar_text"] == "500 nm"
    assert meta["annotation_mask"][2860:2880, 192:993].all()
    # the Image the vesicle widget analyses on this layer (calibration untouched) is the one
    # `exoimage tem` analyses (analyze_tem_file = read_image(..., scale_bar="auto") + analyze_tem_image)
    layer = napari.layers.Image(data, **kw)
    px, src = layer_pixel_size(layer)
    gui = image_from_layer(layer, px, source=src)
    cli = io.read_image(path, scale_bar="auto")
    assert (gui.pixel_size_nm, gui.pixel_size_source) == (cli.pixel_size_nm, "scale_bar")
    np.testing.assert_array_equal(gui.data, cli.data)
    np.testing.assert_array_equal(gui.annotation_mask, cli.annotation_mask)
    assert gui.metadata == {k: v for k, v in cli.metadata.items() if k.startswith("scale_bar")}
    assert gui.warnings == cli.warnings and gui.white_is_zero == cli.white_is_zero


def test_reader_opens_a_registered_format(tmp_path):
    def probe(p, max_pixels):
        return io.ImageHeader(*struct.unpack(">HH", p.read_bytes()[4:8]), 1, 1, 1, "uint8", "qxy")

    def read(p, max_pixels):
        raw = p.read_bytes()
        h, w = struct.unpack(">HH", raw[4:8])
        return io.Image(data=np.frombuffer(raw[8:], np.uint8).reshape(h, w).copy(), pixel_size_nm=2.5,
                        pixel_size_source="qxy", file_format="qxy")

    p = tmp_path / "field.qxy"
    data = (np.arange(32 * 40) % 200).astype(np.uint8).reshape(32, 40)
    p.write_bytes(b"QXY1" + struct.pack(">HH", 32, 40) + data.tobytes())
    assert get_reader(str(p)) is None
    io.register_reader(io.Reader("qxy-test", (".qxy",), read, probe, (b"QXY1",), ("qxy",)))
    try:
        (arr, kw, _), = get_reader(str(p))(str(p))
    finally:
        io.unregister_reader("qxy-test")
    assert np.array_equal(arr, data) and kw["scale"] == (2.5, 2.5)
    assert kw["metadata"]["exoimage"]["pixel_size_source"] == "qxy"
