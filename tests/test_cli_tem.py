"""``exoimage tem`` end to end: outputs, columns, bad inputs, provenance."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from exoimage.cli import main
from exoimage.io import read_image, write_calibrated_tiff
from exoimage.simulate.tem import SCENARIOS, TemScene, match_to_truth, simulate_tem
from exoimage.tem import IMAGE_COLUMNS, VESICLE_COLUMNS


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    img, truth = simulate_tem(TemScene(shape=(400, 400), pixel_size_nm=2.0, **SCENARIOS["clean"]), seed=2)
    write_calibrated_tiff(d / "sub" / "good.tif", img, 2.0)
    (d / "empty.tif").write_bytes(b"")
    (d / "garbage.png").write_bytes(b"not a png")
    tifffile.imwrite(d / "constant.tif", np.full((50, 50), 9, np.uint16))
    tifffile.imwrite(d / "tiny.tif", np.ones((1, 1), np.uint16))
    tifffile.imwrite(d / "nan.tif", np.full((40, 40), np.nan, np.float32))
    tifffile.imwrite(d / "nocal.tif", img)  # no calibration at all
    truth["pixel_size_nm"] = 2.0
    return d, truth


def test_cli_outputs_and_errors(folder, tmp_path, capsys):
    d, truth = folder
    out = tmp_path / "out"
    rc = main(["tem", str(d), "--out", str(out)])
    assert rc == 0
    images = pd.read_csv(out / "images.csv")
    assert list(images.columns) == IMAGE_COLUMNS
    by = images.set_index("image")
    assert by.loc["sub/good.tif", "status"] == "ok"
    assert by.loc["sub/good.tif", "pixel_size_source"] == "imagej"
    errors = {
        "empty.tif": "empty", "garbage.png": "not a readable image", "constant.tif": "constant",
        "tiny.tif": "too small", "nan.tif": "NaN", "nocal.tif": "no pixel size: give pixel_size_nm (nm per pixel)",
    }
    for name, text in errors.items():
        assert by.loc[name, "status"] == "error"
        assert text in by.loc[name, "error"] and "\n" not in by.loc[name, "error"]
    ves = pd.read_csv(out / "vesicles.csv")
    assert list(ves.columns) == VESICLE_COLUMNS
    assert set(ves.image) == {"sub/good.tif"}
    m = match_to_truth(ves, truth)
    assert m["f1"] >= 0.9 and np.median(np.abs(m["errors"])) < 0.03
    assert by.loc["sub/good.tif", "n_vesicles"] == (~ves.touches_border).sum()
    # overlay and calibrated labels
    assert (out / "overlays" / "sub__good.png").stat().st_size > 0
    lab = read_image(out / "labels" / "sub__good.tif")
    assert lab.pixel_size_nm == pytest.approx(2.0)
    assert set(np.unique(lab.data)) - {0} == set(ves.vesicle_id)
    run = json.loads((out / "run.json").read_text())
    assert run["parameters"]["min_diameter_nm"] == 30
    assert len(run["inputs"]) == 7 and all(len(i["sha256"]) == 64 for i in run["inputs"])
    err = capsys.readouterr().err
    assert "empty.tif: error:" in err
    # the library names the parameter; the command line words it as its option
    assert "nocal.tif: error: no pixel size: give --pixel-size (nm per pixel)" in err


def test_cli_pixel_size_option_and_all_fail(folder, tmp_path):
    d, _ = folder
    out = tmp_path / "o2"
    assert main(["tem", str(d / "nocal.tif"), "--out", str(out), "--pixel-size", "2"]) == 0
    row = pd.read_csv(out / "images.csv").iloc[0]
    assert row.status == "ok" and row.pixel_size_source == "given" and row.n_vesicles > 0
    assert main(["tem", str(d / "empty.tif"), str(d / "missing.tif"), "--out", str(tmp_path / "o3")]) == 1
    rows = pd.read_csv(tmp_path / "o3" / "images.csv")
    assert list(rows.status) == ["error", "error"]
    assert "file not found" in rows.error[1]


def test_help_mentions_units(capsys):
    with pytest.raises(SystemExit):
        main(["tem", "--help"])
    text = capsys.readouterr().out
    assert "--pixel-size NM" in text and "--min-diameter NM" in text and "nm" in text


def test_simulate_command(tmp_path):
    assert main(["simulate", "tem", "--out", str(tmp_path / "sim"), "--n", "2", "--size", "256"]) == 0
    truth = pd.read_csv(tmp_path / "sim" / "truth.csv")
    assert set(truth.image) == {"sim_tem_mixed_000.tif", "sim_tem_mixed_001.tif"}
    img = read_image(tmp_path / "sim" / "sim_tem_mixed_001.tif")
    assert img.pixel_size_nm == pytest.approx(truth[truth.image == "sim_tem_mixed_001.tif"].pixel_size_nm.iloc[0])


def _assert_collapsed_pair(ves):
    """The collapsed pair on the left of the ScanEV micrograph (by eye ~170 nm at (490, 1430) and
    ~200 nm at (720, 1350) px) is two objects: not one outline across both, nor a handful of fold
    fragments, nor the right one's bright cap at (660, 1213)."""
    pair = ves[ves.x_px.between(355, 870) & ves.y_px.between(1180, 1570)]
    assert len(pair) == 2, pair
    for (x, y), (lo, hi) in (((490, 1430), (110, 200)), ((720, 1350), (150, 230))):
        near = pair[np.hypot(pair.x_px - x, pair.y_px - y) < 80]
        assert len(near) == 1 and lo < near.diameter_nm.iloc[0] < hi, (x, y, pair)


def test_real_micrograph_with_given_pixel_size(real_dir, tmp_path):
    out = tmp_path / "real"
    assert main(["tem", str(real_dir / "ev_tem_negative_stain.jpg"), "--out", str(out),
                 "--pixel-size", "0.624"]) == 0
    ves = pd.read_csv(out / "vesicles.csv")
    # the well-separated cup near (2266, 1440) px is found whole (~105 nm)
    near = ves[(abs(ves.x_px - 2266) < 60) & (abs(ves.y_px - 1440) < 60)]
    assert len(near) == 1 and 85 < near.diameter_nm.iloc[0] < 130
    # nothing is reported on the scale bar or its label (bottom-left corner)
    assert not ((ves.x_px < 1000) & (ves.y_px > 2600)).any()
    _assert_collapsed_pair(ves)


def test_real_micrograph_calibrated_from_its_scale_bar(real_dir, tmp_path):
    from exoimage.scalebar import ocr_available

    if not ocr_available():  # PP-OCR (rapidocr) is a default dependency: no system package needed
        pytest.skip("rapidocr/onnxruntime not installed")
    out = tmp_path / "real_sb"
    assert main(["tem", str(real_dir / "ev_tem_negative_stain.jpg"), "--out", str(out)]) == 0
    row = pd.read_csv(out / "images.csv").iloc[0]
    assert row.pixel_size_source == "scale_bar" and row.scale_bar_text == "500 nm"
    assert row.pixel_size_nm == pytest.approx(500 / 801, rel=0.01)  # bar measured by hand: ~801 px
    ves = pd.read_csv(out / "vesicles.csv")
    # the isolated cups are found whole, at 100-130 nm
    for x, y in ((2266, 1450), (2270, 740), (2370, 2350)):
        near = ves[(abs(ves.x_px - x) < 80) & (abs(ves.y_px - y) < 80)]
        assert len(near) == 1 and 95 < near.diameter_nm.iloc[0] < 140, (x, y, near)
    _assert_collapsed_pair(ves)
    # the scale bar, its label and the debris speck at (558, 462) are not vesicles
    assert not ((ves.x_px < 1100) & (ves.y_px > 2600)).any()
    assert not ((abs(ves.x_px - 558) < 40) & (abs(ves.y_px - 462) < 40)).any()
