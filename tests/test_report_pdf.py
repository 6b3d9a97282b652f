"""Issue 18: report.pdf from `exoimage run --pdf` and `exoimage report DIR --pdf`; a missing browser is
a one-line error that keeps every other output."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from exoimage.cli import main
from exoimage.experiment.report import BrowserNotFound, find_browser

SAMPLES = Path(__file__).resolve().parents[1] / "sample_images"


@pytest.fixture()
def nta_exp(tmp_path):
    root = tmp_path / "exp"
    shutil.copytree(SAMPLES / "nta", root / "nta")
    return root


def test_run_pdf_without_a_browser_keeps_the_other_outputs(nta_exp, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))   # no browser on PATH
    monkeypatch.delenv("EXOIMAGE_BROWSER", raising=False)
    out = tmp_path / "out"
    assert main(["run", str(nta_exp), "--out", str(out), "--workers", "0", "--no-progress", "--pdf"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("exoimage run: report.pdf not written: no browser to print the PDF")
    assert "apt-get install chromium" in err[0] and "EXOIMAGE_BROWSER" in err[0]
    assert (out / "report.html").is_file() and (out / "samples.csv").is_file() and (out / "run.json").is_file()
    assert not (out / "report.pdf").exists() and not list(out.glob("*.tmp"))


def test_browser_option_and_env_var_name_the_executable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXOIMAGE_BROWSER", str(tmp_path / "no-such-chrome"))
    with pytest.raises(BrowserNotFound, match=r"^\$EXOIMAGE_BROWSER .*no-such-chrome: no such executable"):
        find_browser()
    with pytest.raises(BrowserNotFound, match=r"^--browser nope: no such executable"):
        find_browser("nope")
    fake = tmp_path / "fake-chrome"   # a "browser" that prints nothing
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    assert find_browser(str(fake)) == str(fake)
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "report.html").write_text("<html><body><h2>Verdict</h2></body></html>")
    assert main(["report", str(tmp_path / "res"), "--pdf", "--browser", str(fake)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.endswith("fake-chrome wrote no PDF (exit status 3)")
    assert not (tmp_path / "res" / "report.pdf").exists()
    assert main(["report", str(tmp_path), "--pdf"]) == 2     # no report.html there
    assert "no report here" in capsys.readouterr().err


def test_report_command_prints_the_pdf(nta_exp, tmp_path):
    try:
        find_browser()
    except BrowserNotFound as exc:
        pytest.skip(f"{exc} (.ci/run installs it)")
    pypdf = pytest.importorskip("pypdf", reason="pypdf not installed (pip install -e .[test])")
    out = tmp_path / "out"
    assert main(["run", str(nta_exp), "--out", str(out), "--workers", "0", "--no-progress", "--pdf"]) == 0
    reader = pypdf.PdfReader(out / "report.pdf")
    assert len(reader.pages) > 1 and "Verdict" in reader.pages[0].extract_text()
    (out / "report.pdf").unlink()
    assert main(["report", str(out), "--pdf"]) == 0
    reader = pypdf.PdfReader(out / "report.pdf")
    assert len(reader.pages) > 1 and "Verdict" in reader.pages[0].extract_text()


def test_browser_without_pdf_is_a_bad_option(nta_exp, tmp_path, capsys):
    assert main(["run", str(nta_exp), "--out", str(tmp_path / "out"), "--browser", "chromium"]) == 2
    assert capsys.readouterr().err.strip() == ("exoimage run: --browser names the browser that prints the PDF: "
                                               "give --pdf too")
    assert not (tmp_path / "out").exists()
