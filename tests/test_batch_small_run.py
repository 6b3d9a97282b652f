"""The default executor: a small run in this process, a larger one on local workers, same tables."""

import pandas as pd

from exoimage.experiment import batch, load_experiment
from exoimage.experiment.run import run_experiment
from exoimage.io import write_calibrated_tiff
from exoimage.simulate.tem import SCENARIOS, TemScene, simulate_tem

TABLES = ["vesicles", "images", "samples", "qc"]


def _experiment(root, n=2, size=160):
    for k in range(n):
        img, _ = simulate_tem(TemScene(shape=(size, size), pixel_size_nm=2.0, **SCENARIOS["clean"]), seed=k)
        write_calibrated_tiff(root / "tem" / "A" / f"f{k}.tif", img, 2.0)
    return root


def _jobs(exp):
    return [{"task": t} for t in exp.tasks]


def test_small_run_counts_images_and_header_pixels(tmp_path, monkeypatch):
    exp = load_experiment(_experiment(tmp_path / "exp"))
    assert batch.small_run(_jobs(exp), exp)
    monkeypatch.setattr(batch, "SMALL_RUN_IMAGES", 1)
    assert not batch.small_run(_jobs(exp), exp)  # 2 images
    monkeypatch.setattr(batch, "SMALL_RUN_IMAGES", 12)
    monkeypatch.setattr(batch, "SMALL_RUN_PIXELS", 2 * 160 * 160 - 1)
    assert not batch.small_run(_jobs(exp), exp)  # one pixel too many
    monkeypatch.setattr(batch, "SMALL_RUN_PIXELS", 2 * 160 * 160)
    assert batch.small_run(_jobs(exp), exp)


def test_default_executor_small_in_process_else_workers(tmp_path, monkeypatch):
    exp_root = _experiment(tmp_path / "exp")
    s1 = run_experiment(load_experiment(exp_root), tmp_path / "small", progress=False)
    assert s1["stats"]["executor"] == "in-process (small run)" and s1["n_ok"] == 2
    seen = []

    def fake_dask(jobs, exp, out, workers, scheduler, budget, stats, finish):  # the cluster's own run:
        seen.append(workers)  # tests/test_run.py (same tables in process and on a local cluster)
        stats["executor"] = "local dask cluster (fake)"
        for j in jobs:
            finish(j, batch._safe(j), True)

    monkeypatch.setattr(batch, "_run_dask", fake_dask)
    s2 = run_experiment(load_experiment(exp_root), tmp_path / "w1", workers=1, progress=False)
    assert seen == [1] and s2["n_ok"] == 2  # asked for: workers, however small the run
    monkeypatch.setattr(batch, "SMALL_RUN_IMAGES", 1)
    s3 = run_experiment(load_experiment(exp_root), tmp_path / "big", progress=False)
    assert seen == [1, None] and s3["n_ok"] == 2
    for name in TABLES:
        a = pd.read_csv(tmp_path / "small" / f"{name}.csv")
        pd.testing.assert_frame_equal(a, pd.read_csv(tmp_path / "big" / f"{name}.csv"), check_exact=True)
