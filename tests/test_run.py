"""``exoimage run``: layout and config rules, executors, resume, failures, the report."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from dask_cluster import wait_for_dask_workers
import tifffile

from exoimage.experiment import ExperimentError, load_experiment
from exoimage.io import write_calibrated_tiff
from exoimage.experiment.run import run_experiment
from exoimage.simulate.blot import simulate_blot
from exoimage.simulate.tem import SCENARIOS, TemScene, simulate_tem

TABLES = ["vesicles", "images", "bands", "lanes", "normalized", "samples", "qc"]


def _tem(path, seed, px=2.0, size=256, **kw):
    img, truth = simulate_tem(TemScene(shape=(size, size), pixel_size_nm=px, **{**SCENARIOS["clean"], **kw}),
                              seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_calibrated_tiff(path, img, px)
    return truth


def _blot(folder, name="CD63"):
    folder.mkdir(parents=True, exist_ok=True)
    sim = simulate_blot(n_lanes=5, seed=3)
    tifffile.imwrite(folder / f"{name}.tif", sim.data)
    pd.DataFrame({"lane": [1, 2, 3, 4, 5], "sample": ["ladder", "A", "A", "B", "B"],
                  "group": ["", "r1", "r2", "r1", "r2"]}).to_csv(folder / f"{name}.lanes.csv", index=False)
    return sim


@pytest.fixture
def experiment(tmp_path):
    root = tmp_path / "exp"
    for i, s in enumerate(["A", "B"]):
        for k in range(2):
            _tem(root / "tem" / s / f"f{k}.tif", seed=10 * i + k, coverage=0.25, median_diameter_nm=60.0)
    _blot(root / "blots")
    (root / "experiment.toml").write_text(
        '[experiment]\nname = "test exp"\n[samples.A]\nlabel = "sample A"\n'
        '[blots.CD63]\nladder_lane = 1\nladder_kda = [250, 150, 100, 75, 50, 37, 25, 20, 15, 10]\n')
    return root


def test_layout(experiment):
    exp = load_experiment(experiment)
    assert exp.name == "test exp"
    assert [t.rel for t in exp.tem] == ["tem/A/f0.tif", "tem/A/f1.tif", "tem/B/f0.tif", "tem/B/f1.tif"]
    assert [t.sample for t in exp.tem] == ["A", "A", "B", "B"]
    assert len(exp.blots) == 1 and exp.blots[0].blot.marker == "CD63"
    assert exp.blots[0].blot.lane_sheet.name == "CD63.lanes.csv"
    assert exp.sample_names == ["A", "B"]


@pytest.mark.parametrize("toml,match", [
    ("[tem]\nmin_diam = 3\n", "unknown key"),
    ("[colour]\nx = 1\n", "unknown key"),
    ("[blots.CD81]\nmarker = 'CD81'\n", "no image"),
    ("[blots.CD63]\ncontrol_image = 'nope.tif'\n", "not found"),
    ("[tem.pixel_size_nm]\n'A/missing.tif' = 1.0\n", "not found"),
    ("[qc]\nrules = 'missing.toml'\n", "not found"),
    ("this is = = not toml", "not valid TOML"),
])
def test_config_errors(experiment, toml, match):
    (experiment / "experiment.toml").write_text(toml)
    with pytest.raises(ExperimentError, match=match):
        load_experiment(experiment)


def test_nothing_to_analyse(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExperimentError, match="nothing to analyse"):
        load_experiment(tmp_path / "empty")
    with pytest.raises(ExperimentError, match="not found"):
        load_experiment(tmp_path / "missing")


def _read_tables(out):
    return {t: pd.read_csv(out / f"{t}.csv") for t in TABLES}


def test_run_in_process_with_failure_and_escaping(experiment, tmp_path):
    evil = '<i>evil&sample"x'
    bad = experiment / "tem" / evil
    bad.mkdir()
    (bad / "broken.tif").write_bytes(b"II*\x00 truncated")
    _tem(bad / "ok.tif", seed=99, coverage=0.15)
    out = tmp_path / "out"
    s = run_experiment(load_experiment(experiment), out, workers=0, progress=False)
    assert s["n_images"] == 7 and s["n_failed"] == 1
    t = _read_tables(out)
    img = t["images"].set_index("image")
    assert img.loc[f"tem/{evil}/broken.tif", "status"] == "error"
    assert (img.drop(f"tem/{evil}/broken.tif")["status"] == "ok").all()
    # per-sample numbers are the statistics of that sample's sized vesicles
    v = t["vesicles"]
    a = v[(v["sample"] == "A") & ~v["touches_border"]]["diameter_nm"]
    sa = t["samples"].set_index("sample").loc["A"]
    assert sa["tem_n"] == len(a) > 5
    assert sa["tem_d50_nm"] == pytest.approx(np.percentile(a, 50), rel=1e-4)
    assert sa["tem_d50_ci_low_nm"] <= sa["tem_d50_nm"] <= sa["tem_d50_ci_high_nm"]
    assert sa["label"] == "sample A"
    # blot marker signal per sample
    n = t["normalized"]
    assert set(n["marker"]) == {"CD63"} and set(n["sample"]) == {"A", "B"}
    html = (out / "report.html").read_text()
    assert evil not in html and "&lt;i&gt;evil&amp;sample&quot;x" in html
    assert "broken.tif" in html and "not analysed" in html
    assert "<script" not in html.lower() and "http://" not in html and "https://" not in html
    assert (out / "report_data" / "summary_samples.csv").exists()
    for tname in TABLES:
        assert (out / f"{tname}.parquet").exists()
    q = t["qc"]
    assert ((q["check"] == "calibration") & (q["status"] == "PASS")).sum() == 5
    assert set(q.loc[q["check"].str.startswith("MISEV: cytosolic"), "status"]) == {"WARN"}


def _same(out1, out2):
    for name in TABLES:
        a, b = pd.read_csv(out1 / f"{name}.csv"), pd.read_csv(out2 / f"{name}.csv")
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)


def test_same_results_in_process_and_local_cluster(experiment, tmp_path):
    exp = load_experiment(experiment)
    run_experiment(exp, tmp_path / "serial", workers=0, progress=False)
    s = run_experiment(exp, tmp_path / "cluster", workers=2, progress=False)
    assert "local dask cluster" in s["stats"]["executor"]
    _same(tmp_path / "serial", tmp_path / "cluster")


def test_same_results_on_a_separate_dask_cluster(experiment, tmp_path):
    pytest.importorskip("distributed")
    exp = load_experiment(experiment)
    run_experiment(exp, tmp_path / "serial", workers=0, progress=False)
    port = 20000 + os.getpid() % 20000
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                              "--port", str(port), "--dashboard-address", ":0"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", f"tcp://127.0.0.1:{port}",
                               "--nworkers", "1", "--nthreads", "1", "--dashboard-address", ":0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_for_dask_workers(port)
        s = run_experiment(exp, tmp_path / "remote", scheduler=f"tcp://127.0.0.1:{port}", progress=False)
        assert s["stats"]["executor"].startswith("dask.distributed at")
        _same(tmp_path / "serial", tmp_path / "remote")
    finally:
        worker.terminate()
        sched.terminate()
        worker.wait(20)
        sched.wait(20)


def test_resume_skips_finished_and_redoes_changed(experiment, tmp_path):
    out = tmp_path / "out"
    exp = load_experiment(experiment)
    s1 = run_experiment(exp, out, workers=0, progress=False)
    assert s1["n_cached"] == 0
    before = _read_tables(out)
    s2 = run_experiment(load_experiment(experiment), out, workers=0, progress=False)
    assert s2["n_cached"] == s1["n_images"] and s2["stats"]["n_computed"] == 0
    _same_dicts(before, _read_tables(out))
    _tem(experiment / "tem" / "B" / "f1.tif", seed=1234, coverage=0.15)  # a changed input
    s3 = run_experiment(load_experiment(experiment), out, workers=0, progress=False)
    assert s3["stats"]["n_computed"] == 1 and s3["n_cached"] == s1["n_images"] - 1
    after = _read_tables(out)["vesicles"]
    unchanged = before["vesicles"][before["vesicles"]["image"] != "tem/B/f1.tif"]
    pd.testing.assert_frame_equal(after[after["image"] != "tem/B/f1.tif"].reset_index(drop=True),
                                  unchanged.reset_index(drop=True))


def _same_dicts(a, b):
    for k in a:
        pd.testing.assert_frame_equal(a[k], b[k], obj=k)


def test_killed_run_resumes_without_loss(tmp_path):
    root = tmp_path / "exp"
    for k in range(8):
        _tem(root / "tem" / "A" / f"f{k}.tif", seed=k, size=384, coverage=0.15)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "exoimage", "run", str(root), "--out", str(out), "--workers", "0",
           "--no-progress"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = out / ".cache"
    deadline = time.time() + 120
    while time.time() < deadline and (not cache.exists() or len(list(cache.glob("*.json"))) < 2):
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = len(list(cache.glob("*.json")))
    assert 2 <= done < 8, "the run was not killed midway"
    assert not list(out.rglob("*.tmp")) or all(f.name.startswith(".") for f in out.rglob("*.tmp"))
    s = run_experiment(load_experiment(root), out, workers=0, progress=False)
    assert s["n_cached"] == done and s["stats"]["n_computed"] == 8 - done
    images = pd.read_csv(out / "images.csv")
    assert sorted(images["image"]) == [f"tem/A/f{k}.tif" for k in range(8)]
    assert (images["status"] == "ok").all()
    ref = tmp_path / "ref"
    run_experiment(load_experiment(root), ref, workers=0, progress=False)
    _same(out, ref)


def test_report_renders_in_a_browser(experiment, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium not installed (.ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    out = tmp_path / "out"
    run_experiment(load_experiment(experiment), out, workers=0, progress=False)
    errors = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
        page.goto((out / "report.html").as_uri())
        n_img = page.evaluate("document.images.length")
        broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
                               ".map(i => i.alt)")
        title = page.title()
        browser.close()
    assert n_img >= 6
    assert broken == []
    assert errors == []
    assert "test exp" in title
