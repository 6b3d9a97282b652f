"""The hostile folder (exoimage.simulate.hostile) through `exoimage tem`, `blot` and `run`.

Every case must end as its expectation says (an error row naming the problem, or
a correct analysis), the good images' numbers must be those of a clean folder,
the tables and report must be written, no traceback may reach the user, and the
whole command tree must stay under 2 GB of memory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import pytest

from exoimage.simulate.hostile import build_hostile_folder, case_outcomes, run_measured

PEAK_LIMIT_MB = 2048


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile") / "exp"
    cases = build_hostile_folder(root, nta_huge_mb=200)
    return root, cases


def _exo(*args):
    return [sys.executable, "-m", "exoimage", *map(str, args)]


def _assert_cases(cases, out, command):
    got = case_outcomes(cases, out, command)
    bad = got[~got["passed"]]
    assert bad.empty, "cases not handled:\n" + bad.to_string()
    return got


def _no_traceback(res):
    assert "Traceback" not in res["stderr"], res["stderr"][-3000:]


@pytest.fixture(scope="module")
def tem_run(hostile, tmp_path_factory):
    root, cases = hostile
    out = tmp_path_factory.mktemp("tem_out")
    res = run_measured(_exo("tem", root / "tem", "--out", out, "--pixel-size", "1"), timeout=600)
    return root, cases, out, res


def test_tem_command_every_case(tem_run):
    root, cases, out, res = tem_run
    assert res["returncode"] == 0, res["stderr"][-3000:]
    _no_traceback(res)
    assert res["peak_rss_mb"] < PEAK_LIMIT_MB, res
    got = _assert_cases(cases, out, "tem")
    assert len(got) >= 25
    for f in ("vesicles.csv", "images.csv", "run.json"):
        assert (out / f).is_file()


def test_tem_command_outputs_unique_and_user_text_neutral(tem_run):
    root, cases, out, res = tem_run
    images = pd.read_csv(out / "images.csv", dtype=str, keep_default_na=False)
    ok = images[images["status"] == "ok"]
    overlays = sorted(p.name for p in (out / "overlays").glob("*.png"))
    assert len(overlays) == len(ok), (overlays, list(ok["image"]))
    labels = sorted(p.name for p in (out / "labels").glob("*.tif"))
    assert len(labels) == len(ok)
    for f in out.glob("*.csv"):
        t = pd.read_csv(f, dtype=str, keep_default_na=False)
        for col in t.columns:
            assert not t[col].str.match(r"^[=+@]").any(), (f.name, col)


def test_tem_good_images_unchanged(tem_run, tmp_path):
    root, cases, out, res = tem_run
    clean = tmp_path / "clean"
    (clean / "S1").mkdir(parents=True)
    os.link(root / "tem" / "S1" / "good.tif", clean / "S1" / "good.tif")
    ref_out = tmp_path / "ref"
    ref = run_measured(_exo("tem", clean, "--out", ref_out, "--pixel-size", "1"), timeout=300)
    assert ref["returncode"] == 0
    v = pd.read_csv(out / "vesicles.csv")
    mine = v[v["image"] == "S1/good.tif"].reset_index(drop=True)
    want = pd.read_csv(ref_out / "vesicles.csv")
    assert len(want) >= 3
    pd.testing.assert_frame_equal(mine[want.columns], want, check_dtype=False)


def test_blot_command_every_case(hostile, tmp_path):
    root, cases = hostile
    res = run_measured(_exo("blot", root / "blots", "--out", tmp_path), timeout=600)
    assert res["returncode"] == 0, res["stderr"][-3000:]
    _no_traceback(res)
    assert res["peak_rss_mb"] < PEAK_LIMIT_MB, res
    _assert_cases(cases, tmp_path, "blot")
    bands = pd.read_csv(tmp_path / "bands.csv")
    g1 = bands[bands["image"] == "gel1/CD63.tif"]
    g2 = bands[bands["image"] == "gel2/CD63.tif"]
    assert len(g1) and len(g2) and not g1["volume"].reset_index(drop=True).equals(g2["volume"].reset_index(drop=True))


def test_run_every_case_tables_and_report(hostile, tmp_path):
    root, cases = hostile
    out = tmp_path / "out"
    res = run_measured(_exo("run", root, "--out", out, "--workers", "0"), timeout=900)
    assert res["returncode"] == 0, res["stderr"][-3000:]
    _no_traceback(res)
    assert res["peak_rss_mb"] < PEAK_LIMIT_MB, res
    _assert_cases(cases, out, "run")
    for f in ("images.csv", "blot_images.csv", "nta_files.csv", "samples.csv", "qc.csv", "report.html",
              "run.json"):
        assert (out / f).is_file(), f
    html = (out / "report.html").read_text(encoding="utf-8")
    assert '=HYPERLINK("http' not in html  # user text is escaped in the page
    samples = pd.read_csv(out / "samples.csv", dtype=str, keep_default_na=False)
    assert samples.map(lambda s: s.startswith(("=", "+", "@"))).sum().sum() == 0
    # a rerun resumes from the cache and gives the same tables byte for byte
    first = {f: (out / f).read_bytes() for f in ("images.csv", "vesicles.csv", "bands.csv", "blot_images.csv")}
    res2 = run_measured(_exo("run", root, "--out", out, "--workers", "0"), timeout=900)
    assert res2["returncode"] == 0
    _no_traceback(res2)
    for f, b in first.items():
        assert (out / f).read_bytes() == b, f


def test_tem_and_blot_refuse_an_image_the_machine_cannot_hold(tmp_path, monkeypatch, capsys):
    """Inside the pixel budget but more than the memory available: an error row, nothing decoded."""
    import exoimage.experiment.batch as batch
    from exoimage.cli import main
    from exoimage.simulate.hostile import _write_blot, _write_tem

    img = _write_tem(tmp_path / "in" / "a.tif", 1)
    blot = _write_blot(tmp_path / "blots" / "b.tif", 2)
    monkeypatch.setattr(batch, "available_memory_bytes", lambda: 1_000_000)  # 1 MB "free"
    assert main(["tem", str(img), "--out", str(tmp_path / "t")]) == 1
    row = pd.read_csv(tmp_path / "t" / "images.csv").iloc[0]
    assert row["status"] == "error" and "needs an estimated" in row["error"] and "512x512" in row["error"]
    assert main(["blot", str(blot), "--out", str(tmp_path / "b")]) == 1
    row = pd.read_csv(tmp_path / "b" / "images.csv").iloc[0]
    assert row["status"] == "error" and "needs an estimated" in row["error"]
    monkeypatch.setattr(batch, "available_memory_bytes", lambda: 10_000_000_000)
    assert main(["tem", str(img), "--out", str(tmp_path / "t2")]) == 0
