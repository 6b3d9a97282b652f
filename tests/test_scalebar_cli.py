"""``--ocr`` means the same in every front end: ``exoimage run`` passes the engine to its workers."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

import exoimage.scalebar as sb
from exoimage.cli import main
from exoimage.simulate.scalebar import draw_scale_bar, find_fonts

pytestmark = pytest.mark.skipif(not find_fonts(), reason="no TrueType fonts (fonts-dejavu-core)")


def _experiment(root):
    bar = draw_scale_bar((384, 384), length_px=120, thickness=6, label=("200 nm", 200, "nm"), font_px=18)
    (root / "tem" / "A").mkdir(parents=True)
    PILImage.fromarray(bar.data).save(root / "tem" / "A" / "m.png")  # no calibration in the file
    return bar


def _spy(monkeypatch):
    """Record the engine each scale-bar search uses (the real search runs)."""
    seen = []
    real = sb.find_scale_bar

    def spy(data, ocr=True, engine=None):
        seen.append(sb._engine_name(engine))
        return real(data, ocr=ocr, engine=engine)

    monkeypatch.setattr(sb, "find_scale_bar", spy)
    return seen


@pytest.mark.skipif(not sb.ocr_available("rapidocr"), reason="rapidocr not installed")
def test_run_ocr_reaches_the_worker_and_the_cache_key(tmp_path, monkeypatch):
    monkeypatch.delenv(sb.OCR_ENGINE_ENV, raising=False)
    bar = _experiment(tmp_path / "exp")
    seen = _spy(monkeypatch)
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "exp"), "--out", str(out), "--workers", "0", "--no-progress"]) == 0
    assert seen == ["rapidocr"]
    import pandas as pd

    img = pd.read_csv(out / "images.csv")
    assert img["pixel_size_source"].iloc[0] == "scale_bar"
    assert img["pixel_size_nm"].iloc[0] == pytest.approx(bar.nm_per_px, rel=0.01)
    # the same engine named explicitly: same cache key (reused, not searched again)
    assert main(["run", str(tmp_path / "exp"), "--out", str(out), "--workers", "0", "--no-progress",
                 "--ocr", "rapidocr"]) == 0
    assert seen == ["rapidocr"]
    if not sb.ocr_available("tesseract"):
        return
    # another engine: another calibration possible, so not reused, and the worker reads with it
    assert main(["run", str(tmp_path / "exp"), "--out", str(out), "--workers", "0", "--no-progress",
                 "--ocr", "tesseract"]) == 0
    assert seen == ["rapidocr", "tesseract"]
    assert sb.OCR_ENGINE_ENV not in __import__("os").environ  # set for the task only


def test_run_ocr_engine_missing_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    _experiment(tmp_path / "exp")
    monkeypatch.setattr(sb, "_pytesseract", None)
    seen = _spy(monkeypatch)
    rc = main(["run", str(tmp_path / "exp"), "--out", str(tmp_path / "out"), "--ocr", "tesseract"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ocr tesseract" in err[0] and "pip install" in err[0]
    assert seen == [] and not (tmp_path / "out" / "images.csv").exists()


def test_run_ocr_rejects_unknown_engines(tmp_path, capsys):
    _experiment(tmp_path / "exp")
    with pytest.raises(SystemExit) as e:
        main(["run", str(tmp_path / "exp"), "--out", str(tmp_path / "out"), "--ocr", "easyocr"])
    assert e.value.code == 2
