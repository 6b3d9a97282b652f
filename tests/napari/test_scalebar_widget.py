"""The vesicle widget's scale-bar panel: the reader's reading boxed on the image, and the drawn-line fallback."""

from __future__ import annotations

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("napari_exoimage")

from exoimage.scalebar import ocr_available  # noqa: E402
from exoimage.simulate.scalebar import draw_scale_bar, find_fonts  # noqa: E402
from napari_exoimage._common import META_KEY, image_layer_kwargs  # noqa: E402
from napari_exoimage._scalebar_panel import line_layer_name, reading_boxes_name  # noqa: E402
from napari_exoimage._vesicle_widget import VesicleWidget  # noqa: E402

needs_ocr = pytest.mark.skipif(not ocr_available(), reason="rapidocr/onnxruntime missing (default dependencies)")
needs_fonts = pytest.mark.skipif(not find_fonts(), reason="no TrueType fonts (apt-get install fonts-dejavu-core)")


@needs_ocr
@needs_fonts
def test_reader_reading_is_shown_and_boxed(make_napari_viewer, tmp_path):
    import cv2

    sb = draw_scale_bar((600, 800), length_px=250, thickness=6, label=("200 nm", 200, "nm"),
                        position="bottom-left", label_pos="above", font_px=28)
    path = tmp_path / "export.png"
    cv2.imwrite(str(path), sb.data)
    viewer = make_napari_viewer()
    layer, = viewer.open(str(path), plugin="napari-exoimage")
    assert layer.scale[-1] == pytest.approx(200 / 250, rel=0.01)
    assert layer.metadata[META_KEY]["pixel_size_source"] == "scale_bar"
    w = VesicleWidget(viewer)
    assert w.px_spin.value() == pytest.approx(200 / 250, rel=0.01)
    text = w.scale_bar_panel.reading.text()
    assert "'200 nm'" in text and "nm/px" in text and "confidence" in text
    assert "--pixel-size" not in text
    boxes = viewer.layers[reading_boxes_name(layer)]
    assert isinstance(boxes, napari.layers.Shapes) and len(boxes.data) == 2
    assert list(boxes.features["what"])[0].startswith("bar")
    r0, c0, r1, c1 = sb.bar_box
    bar_rect = np.asarray(boxes.data[0])
    assert bar_rect[:, 1].min() == pytest.approx(c0 - 0.5, abs=1.5)
    assert bar_rect[:, 1].max() == pytest.approx(c1 - 0.5, abs=1.5)
    assert bar_rect[:, 0].min() == pytest.approx(r0 - 0.5, abs=1.5)
    # the label box lies above the bar
    label_rect = np.asarray(boxes.data[1])
    assert label_rect[:, 0].max() <= r0 + 0.5
    assert tuple(boxes.scale) == pytest.approx(tuple(layer.scale))


def test_drawn_line_calibrates_the_layer(make_napari_viewer):
    viewer = make_napari_viewer()
    data = np.full((300, 500), 128, np.uint8)
    data[250:256, 40:440] = 0  # a 400 px bar, no label: nothing to read
    from exoimage.io import Image

    img = Image(data=data, pixel_size_nm=None, pixel_size_source="none", path="bar.png")
    layer = viewer.add_image(data, **image_layer_kwargs(img, name="bar"))
    w = VesicleWidget(viewer)
    assert w.px_spin.value() == 0
    assert "draw a line" in w.scale_bar_panel.reading.text()
    # no line yet, no length: clear one-line errors
    assert w.scale_bar_panel.calibrate_from_line() is None
    assert "draw a line" in w.status.text()
    w.scale_bar_panel.start_line()
    lines = viewer.layers[line_layer_name(layer)]
    assert isinstance(lines, napari.layers.Shapes) and lines.mode == "add_line"
    lines.add_lines(np.array([[253.0, 40.0], [253.0, 440.0]]))
    assert w.scale_bar_panel.line_length_px() == pytest.approx(400.0)
    assert w.scale_bar_panel.calibrate_from_line() is None  # no length typed
    assert "type the length" in w.status.text()
    w.scale_bar_panel.length.setValue(0.2)
    w.scale_bar_panel.unit.setCurrentText("µm")
    px = w.scale_bar_panel.calibrate_from_line()
    assert px == pytest.approx(0.5)
    assert w.px_spin.value() == pytest.approx(0.5)
    assert tuple(layer.scale) == pytest.approx((0.5, 0.5)) and str(layer.units[-1]) in ("nm", "nanometer")
    assert layer.metadata[META_KEY]["pixel_size_source"] == "scale_bar_drawn"
    # the line layer follows the image to its new scale; lines are measured in the image's pixels
    assert tuple(lines.scale) == pytest.approx((0.5, 0.5))
    lines.add_lines(np.array([[10.0, 10.0], [10.0, 210.0]]))
    assert w.scale_bar_panel.line_length_px() == pytest.approx(200.0)


@needs_ocr
def test_real_scanev_jpeg_in_the_widget(real_dir, make_napari_viewer):
    viewer = make_napari_viewer()
    layer, = viewer.open(str(real_dir / "ev_tem_negative_stain.jpg"), plugin="napari-exoimage")
    assert layer.scale[-1] == pytest.approx(0.6242, rel=0.01)
    w = VesicleWidget(viewer)
    assert w.px_spin.value() == pytest.approx(0.6242, rel=0.01)
    assert "from scale_bar" in w.px_source.text()
    assert "'500 nm'" in w.scale_bar_panel.reading.text()
    assert len(viewer.layers[reading_boxes_name(layer)].data) == 2
