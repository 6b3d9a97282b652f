"""``exoimage run`` against a hostile or clumsy output folder and cluster (issue 10, the batch part).

The resume cache holds data only (JSON + Parquet) and trusts nothing it did not
write for this very image; any task failure is an error row that a rerun
remembers; memory estimates gate what starts; bad options are one line each.
"""

import errno
import json
import os
import pickle
import socket
import textwrap
from pathlib import Path

import dask
import pandas as pd
import pytest
from dask_cluster import wait_for_dask_workers
import tifffile

from exoimage.experiment import batch
from exoimage.experiment import cache as cache_mod
from exoimage.cli import main as cli_main
from exoimage.experiment import load_experiment
from exoimage.io import write_calibrated_tiff
from exoimage.experiment.run import run_experiment
from exoimage.simulate.blot import simulate_blot
from exoimage.simulate.tem import SCENARIOS, TemScene, simulate_tem

TABLES = ["vesicles", "images", "bands", "lanes", "normalized", "samples", "qc", "blot_images", "markers"]
A0, A1, B0 = "tem/A/f0.tif", "tem/A/f1.tif", "tem/B/f0.tif"


def _tem(path, seed, size=192, px=2.0):
    img, _ = simulate_tem(TemScene(shape=(size, size), pixel_size_nm=px,
                                   **{**SCENARIOS["clean"], "coverage": 0.2, "median_diameter_nm": 60.0}),
                          seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_calibrated_tiff(path, img, px)


def _experiment(root, *, blot=True, tem=(A0, A1, B0)):
    for i, rel in enumerate(tem):
        _tem(root / rel, seed=i + 1)
    if blot:
        (root / "blots").mkdir(parents=True)
        tifffile.imwrite(root / "blots" / "CD63.tif", simulate_blot(n_lanes=5, seed=3).data)
        # loads on the sample lanes: the normalised table gets in_linear_range and a linear_range attr
        pd.DataFrame({"lane": [1, 2, 3, 4, 5], "sample": ["ladder", "A", "A", "B", "B"],
                      "loaded": [0, 1, 2, 4, 8]}).to_csv(root / "blots" / "CD63.lanes.csv", index=False)
        (root / "experiment.toml").write_text(
            "[blots.CD63]\nladder_lane = 1\nladder_kda = [250, 150, 100, 75, 50, 37, 25, 20, 15, 10]\n")
    return root


@pytest.fixture(scope="module")
def exp_root(tmp_path_factory):
    return _experiment(tmp_path_factory.mktemp("hostile") / "exp")


@pytest.fixture(scope="module")
def fresh(exp_root, tmp_path_factory):
    """A fresh in-process run: the reference every other run must reproduce."""
    out = tmp_path_factory.mktemp("fresh") / "out"
    s = run_experiment(load_experiment(exp_root), out, workers=0, progress=False)
    assert s["n_failed"] == 0 and s["n_images"] == 4
    return out


def _csv_bytes(out):
    return {t: (out / f"{t}.csv").read_bytes() for t in TABLES}


def _assert_same_tables(out, ref):
    got, want = _csv_bytes(out), _csv_bytes(ref)
    for t in TABLES:
        assert got[t] == want[t], f"{t}.csv differs"
        pd.testing.assert_frame_equal(pd.read_parquet(out / f"{t}.parquet"), pd.read_parquet(ref / f"{t}.parquet"),
                                      check_exact=True, obj=t)


def _copy_run(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def _bindings(exp_root):
    exp = load_experiment(exp_root)
    return {t.rel: cache_mod._binding(t, exp, cache_mod.sha256_file(t.path)) for t in exp.tasks}


def _rerun(exp_root, out, **kw):
    return run_experiment(load_experiment(exp_root), out, workers=0, progress=False, **kw)


# ---------------------------------------------------------------------------
# the cache format


def test_cache_is_data_bound_to_its_key_and_round_trips_exactly(exp_root, fresh, tmp_path):
    cache = fresh / ".cache"
    assert not list(cache.glob("*.pkl"))
    b = _bindings(exp_root)
    for rel, binding in b.items():
        doc = json.loads((cache / f"{binding['key']}.json").read_text())
        assert doc["entry"]["binding"] == binding and doc["entry"]["status"] == "done"
        for name in doc["entry"]["tables"]:
            assert (cache / f"{binding['key']}.{name}.parquet").is_file()
    # every table and scalar of a cached result equals a direct computation, dtypes and attrs included
    exp = load_experiment(exp_root)
    scratch = tmp_path / "scratch"
    for t in exp.tasks:
        job = {"task": t, "out": str(scratch), "sha256": b[t.rel]["sha256"], "exp_tem_params": exp.tem_params,
               "params": cache_mod._params_for(t, exp)}
        raw = (batch._process_tem if t.kind == "tem" else batch._process_blot)(t, job, scratch)
        rec, status = cache_mod.load_cache_entry(fresh, b[t.rel])
        assert status == "done" and type(rec) is type(raw)
        tables = [k for k in cache_mod.TABLE_FIELDS if getattr(raw, k, None) is not None]
        assert tables == [k for k in cache_mod.TABLE_FIELDS if getattr(rec, k, None) is not None] and tables
        for k in tables:
            pd.testing.assert_frame_equal(getattr(rec, k), getattr(raw, k), check_exact=True, obj=f"{t.rel} {k}")
            assert getattr(rec, k).attrs == getattr(raw, k).attrs
        assert list(rec.image_row) == list(raw.image_row)  # column order of the image tables
        for k, v in raw.image_row.items():
            assert type(rec.image_row[k]) is type(v) and (rec.image_row[k] == v or v != v), k
        assert rec.provenance == raw.provenance and rec.sha256 == b[t.rel]["sha256"]
        assert [(w.code, str(w)) for w in rec.warnings] == [(w.code, str(w)) for w in raw.warnings]
        if t.kind == "blot":
            assert rec.linear_range == raw.linear_range and rec.linear_range[0]["r2"] > 0
            assert rec.normalized.attrs["linear_range"]["slope"] == raw.normalized.attrs["linear_range"]["slope"]
            assert rec.normalized["in_linear_range"].dtype == object


def test_resumed_run_equals_fresh_run_byte_for_byte(exp_root, fresh, tmp_path):
    out = _copy_run(fresh, tmp_path / "out")
    b = _bindings(exp_root)
    for rel in (A1, "blots/CD63.tif"):  # as if killed before these two finished
        for f in (out / ".cache").glob(f"{b[rel]['key']}*"):
            f.unlink()
    for t in TABLES:
        (out / f"{t}.csv").unlink()
    s = _rerun(exp_root, out)
    assert s["stats"]["n_computed"] == 2 and s["n_cached"] == 2
    _assert_same_tables(out, fresh)


# ---------------------------------------------------------------------------
# hostile cache entries


class _Evil:
    """Unpickling this creates a marker file: proof that pickle data was executed."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_crafted_pickle_entries_are_never_unpickled(exp_root, fresh, tmp_path):
    probe = tmp_path / "payload-works"
    pickle.loads(pickle.dumps(_Evil(probe)))
    assert probe.exists()  # the payload is live: unpickling it does run code
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Evil(marker))
    out = _copy_run(fresh, tmp_path / "out")
    cache = out / ".cache"
    b = _bindings(exp_root)
    (cache / f"{b[A0]['key']}.pkl").write_bytes(payload)                  # old-format name, entry gone
    (cache / f"{b[A0]['key']}.json").unlink()
    (cache / f"{b[A1]['key']}.json").write_bytes(payload)                 # manifest replaced
    (cache / f"{b[B0]['key']}.vesicles.parquet").write_bytes(payload)     # table replaced
    s = _rerun(exp_root, out)
    assert not marker.exists()
    assert s["stats"]["n_computed"] == 3 and s["stats"]["n_cache_rejected"] == 2
    _assert_same_tables(out, fresh)


def _swap(cache, k1, k2):
    files1 = {f.name[len(k1):]: f.read_bytes() for f in cache.glob(f"{k1}.*")}
    files2 = {f.name[len(k2):]: f.read_bytes() for f in cache.glob(f"{k2}.*")}
    for suffix, data in files1.items():
        (cache / f"{k2}{suffix}").write_bytes(data)
    for suffix, data in files2.items():
        (cache / f"{k1}{suffix}").write_bytes(data)


def test_swapped_entries_are_recomputed(exp_root, fresh, tmp_path):
    out = _copy_run(fresh, tmp_path / "out")
    b = _bindings(exp_root)
    _swap(out / ".cache", b[A0]["key"], b[B0]["key"])
    s = _rerun(exp_root, out)
    assert s["stats"]["n_cache_rejected"] == 2 and s["stats"]["n_computed"] == 2
    _assert_same_tables(out, fresh)


def test_swapped_entry_with_forged_binding_is_recomputed(exp_root, fresh, tmp_path):
    """Even a manifest re-bound to the other image's key (checksums recomputed) is not that image's."""
    out = _copy_run(fresh, tmp_path / "out")
    cache, b = out / ".cache", _bindings(exp_root)
    doc = json.loads((cache / f"{b[A0]['key']}.json").read_text())
    doc["entry"]["binding"] = b[B0]
    doc["entry_sha256"] = __import__("hashlib").sha256(cache_mod._dumps(doc["entry"])).hexdigest()
    (cache / f"{b[B0]['key']}.json").write_bytes(cache_mod._dumps(doc))
    (cache / f"{b[B0]['key']}.vesicles.parquet").write_bytes((cache / f"{b[A0]['key']}.vesicles.parquet").read_bytes())
    rec, why = cache_mod.load_cache_entry(out, b[B0])
    assert rec is None and "not this image's" in why
    s = _rerun(exp_root, out)
    assert s["stats"]["n_cache_rejected"] == 1 and s["stats"]["n_computed"] == 1
    _assert_same_tables(out, fresh)


def test_edited_table_and_edited_manifest_are_detected(exp_root, fresh, tmp_path):
    out = _copy_run(fresh, tmp_path / "out")
    cache, b = out / ".cache", _bindings(exp_root)
    p = cache / f"{b[A0]['key']}.vesicles.parquet"
    v = pd.read_parquet(p)
    v["diameter_nm"] *= 2  # the edit: doubled diameters
    v.to_parquet(p, index=False)
    m = cache / f"{b[A1]['key']}.json"
    text = m.read_text()
    n = json.loads(text)["entry"]["record"]["image_row"]["n_vesicles"]
    m.write_text(text.replace(f'"n_vesicles":{n}', f'"n_vesicles":{2 * n}'))
    assert m.read_text() != text
    s = _rerun(exp_root, out)
    assert s["stats"]["n_cache_rejected"] == 2 and s["stats"]["n_computed"] == 2
    _assert_same_tables(out, fresh)


def _corrupt(cache, key, how, other_key):
    m, t = cache / f"{key}.json", cache / f"{key}.vesicles.parquet"
    if how == "truncated manifest":
        m.write_bytes(m.read_bytes()[: len(m.read_bytes()) // 2])
    elif how == "garbage manifest":
        m.write_bytes(bytes(range(256)) * 4)
    elif how == "empty manifest":
        m.write_bytes(b"")
    elif how == "manifest is a list":
        m.write_text("[]")
    elif how == "deeply nested manifest":
        m.write_text("[" * 200000 + "]" * 200000)
    elif how == "manifest is a folder":
        m.unlink()
        m.mkdir()
    elif how == "manifest is a symlink to another entry":
        m.unlink()
        m.symlink_to(cache / f"{other_key}.json")
    elif how == "truncated table":
        t.write_bytes(t.read_bytes()[:100])
    elif how == "missing table":
        t.unlink()
    elif how == "table of another image":
        t.write_bytes((cache / f"{other_key}.vesicles.parquet").read_bytes())
    elif how == "foreign version":
        doc = json.loads(m.read_text())
        doc["entry"]["binding"]["version"] = "0.0.1"
        doc["entry_sha256"] = __import__("hashlib").sha256(cache_mod._dumps(doc["entry"])).hexdigest()
        m.write_bytes(cache_mod._dumps(doc))
    else:  # pragma: no cover
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["truncated manifest", "garbage manifest", "empty manifest", "manifest is a list",
                                 "deeply nested manifest", "manifest is a folder",
                                 "manifest is a symlink to another entry", "truncated table", "missing table",
                                 "table of another image", "foreign version"])
def test_corrupt_entry_is_recomputed(exp_root, fresh, tmp_path, how):
    out = _copy_run(fresh, tmp_path / "out")
    b = _bindings(exp_root)
    _corrupt(out / ".cache", b[A0]["key"], how, b[B0]["key"])
    rec, why = cache_mod.load_cache_entry(out, b[A0])
    assert rec is None and why.startswith("rejected")
    if how not in ("manifest is a folder", "manifest is a symlink to another entry", "table of another image"):
        return  # the full rerun of the others adds nothing but time
    s = _rerun(exp_root, out)
    assert s["stats"]["n_cache_rejected"] == 1 and s["stats"]["n_computed"] == 1 and s["n_failed"] == 0
    _assert_same_tables(out, fresh)


# ---------------------------------------------------------------------------
# failures are error rows, remembered


def test_exception_in_a_task_is_a_remembered_error_row(tmp_path, monkeypatch):
    root = _experiment(tmp_path / "exp", blot=False)
    out = tmp_path / "out"
    orig = batch._process_tem

    def boom(task, job, o):
        if task.rel == A1:
            raise MemoryError()
        return orig(task, job, o)

    monkeypatch.setattr(batch, "_process_tem", boom)
    s = _rerun(root, out)
    assert s["n_failed"] == 1 and s["n_ok"] == 2
    img = pd.read_csv(out / "images.csv").set_index("image")
    err = img.loc[A1, "error"]
    assert img.loc[A1, "status"] == "error" and "MemoryError" in err and "--retry-failed" in err
    assert "\n" not in err and str(root / A1) in err
    assert (img.drop(A1)["status"] == "ok").all()
    assert (out / "report.html").exists() and (out / "vesicles.csv").exists()
    monkeypatch.setattr(batch, "_process_tem", orig)  # the image would now succeed ...
    s2 = _rerun(root, out)
    assert s2["stats"]["n_computed"] == 0 and s2["n_failed_remembered"] == 1  # ... but is not retried
    assert pd.read_csv(out / "images.csv").set_index("image").loc[A1, "error"] == err
    s3 = _rerun(root, out, retry_failed=True)
    assert s3["stats"]["n_computed"] == 1 and s3["n_failed"] == 0


def test_cli_says_how_to_retry(tmp_path, monkeypatch, capsys):
    root = _experiment(tmp_path / "exp", blot=False, tem=(A0, A1))
    out = tmp_path / "out"
    orig = batch._process_tem
    monkeypatch.setattr(batch, "_process_tem",
                        lambda task, job, o: (_ for _ in ()).throw(RuntimeError("bad\nluck")) if task.rel == A1
                        else orig(task, job, o))
    assert cli_main(["run", str(root), "--out", str(out), "--workers", "0", "--no-progress"]) == 0
    monkeypatch.setattr(batch, "_process_tem", orig)
    capsys.readouterr()
    assert cli_main(["run", str(root), "--out", str(out), "--workers", "0", "--no-progress"]) == 0
    o = capsys.readouterr()
    assert "1 failed in an earlier run and not retried: --retry-failed" in o.out
    assert cli_main(["run", str(root), "--out", str(out), "--workers", "0", "--no-progress", "--retry-failed"]) == 0
    assert "2/2 images analysed" in capsys.readouterr().out


def _preload(tmp_path, body):
    p = tmp_path / "worker_preload.py"
    p.write_text(textwrap.dedent(body))
    return str(p)


def test_killed_worker_is_a_remembered_error_row(tmp_path):
    """A task that kills its worker process (as one too big for memory does): error row, tables, report."""
    pytest.importorskip("distributed")
    root = _experiment(tmp_path / "exp", blot=False, tem=(A0, "tem/A/crash.tif", B0))
    out = tmp_path / "out"
    script = _preload(tmp_path, """
        import os
        import exoimage.experiment.batch as b

        _orig = getattr(b, "_unpatched_process_tem", b._process_tem)  # Dask may run a preload twice

        def _die(task, job, out):  # in the worker process only: it dies, like the OOM killer's victim
            if task.rel.endswith("crash.tif"):
                os._exit(1)
            return _orig(task, job, out)

        b._unpatched_process_tem, b._process_tem = _orig, _die
    """)
    with dask.config.set({"distributed.worker.preload": [script]}):
        s = run_experiment(load_experiment(root), out, workers=1, progress=False)
    assert "local dask cluster, 1 worker" in s["stats"]["executor"]
    assert s["n_failed"] == 1 and s["n_ok"] == 2
    img = pd.read_csv(out / "images.csv").set_index("image")
    err = img.loc["tem/A/crash.tif", "error"]
    assert "KilledWorker" in err and "died 2 time(s)" in err and "--retry-failed" in err and "\n" not in err
    assert (img.drop("tem/A/crash.tif")["status"] == "ok").all()
    for t in ("vesicles", "images", "samples", "qc"):
        assert (out / f"{t}.csv").exists()
    assert (out / "report.html").exists()
    # the rerun (in this process, where the image would not crash) does not retry the remembered failure
    s2 = _rerun(root, out)
    assert s2["stats"]["n_computed"] == 0 and s2["n_failed_remembered"] == 1
    assert pd.read_csv(out / "images.csv").set_index("image").loc["tem/A/crash.tif", "error"] == err


def test_lost_scheduler_gives_error_rows_not_remembered(tmp_path):
    """The scheduler dies mid-run (killed from inside a task): the rest are error rows, tables and
    report are written, and the rerun analyses them (losing the scheduler is not the images' fault)."""
    pytest.importorskip("distributed")
    import subprocess
    import sys

    root = _experiment(tmp_path / "exp", blot=False, tem=(A0, A1, B0))
    port = _free_port()
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                              "--port", str(port), "--dashboard-address", ":0"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    script = _preload(tmp_path, f"""
        import os, signal, time
        import exoimage.experiment.batch as b

        _orig = getattr(b, "_unpatched_process_tem", b._process_tem)

        def _kill_scheduler(task, job, out):
            if task.rel == "{A1}":
                os.kill({sched.pid}, signal.SIGKILL)
                time.sleep(60)
            return _orig(task, job, out)

        b._unpatched_process_tem, b._process_tem = _orig, _kill_scheduler
    """)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", f"tcp://127.0.0.1:{port}",
                               "--nworkers", "1", "--nthreads", "1", "--dashboard-address", ":0",
                               "--preload", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_for_dask_workers(port)
        out = tmp_path / "out"
        s = run_experiment(load_experiment(root), out, scheduler=f"tcp://127.0.0.1:{port}", progress=False)
    finally:
        worker.kill()
        sched.kill()
        worker.wait(20)
        sched.wait(20)
    img = pd.read_csv(out / "images.csv").set_index("image")
    assert img.loc[A0, "status"] == "ok"
    for rel in (A1, B0):
        assert img.loc[rel, "status"] == "error" and "lost contact with the Dask scheduler" in img.loc[rel, "error"]
    assert s["stats"]["n_lost"] == 2 and (out / "report.html").exists()
    s2 = _rerun(root, out)
    assert s2["n_cached"] == 1 and s2["stats"]["n_computed"] == 2 and s2["n_failed"] == 0


# ---------------------------------------------------------------------------
# memory


def test_estimate_task_bytes_of_a_real_image(exp_root):
    exp = load_experiment(exp_root)
    t = next(t for t in exp.tem if t.rel == A0)
    est = batch.estimate_task_bytes(t, exp)
    assert isinstance(est, int) and est >= 10 * 192 * 192  # at least 10 bytes per pixel of a 192^2 field


def test_over_memory_estimate_is_an_error_row_without_running(tmp_path, monkeypatch):
    root = _experiment(tmp_path / "exp", blot=False)
    out = tmp_path / "out"
    ran = []
    orig = batch._process_tem
    monkeypatch.setattr(batch, "_process_tem", lambda task, job, o: ran.append(task.rel) or orig(task, job, o))
    monkeypatch.setattr(batch, "available_memory_bytes", lambda: 4 * 10**9)
    monkeypatch.setattr(batch, "estimate_task_bytes", lambda task, exp: 10**13 if task.rel == B0 else 10**6)
    s = _rerun(root, out)
    assert B0 not in ran and sorted(ran) == [A0, A1]
    assert s["stats"]["n_refused_memory"] == 1 and s["n_failed"] == 1
    row = pd.read_csv(out / "images.csv").set_index("image").loc[B0]
    assert row["status"] == "error" and "not analysed: needs an estimated 10000.00 GB" in row["error"]
    assert (out / "report.html").exists()
    monkeypatch.setattr(batch, "estimate_task_bytes", lambda task, exp: 10**6)  # e.g. on a bigger machine
    s2 = _rerun(root, out)
    assert s2["stats"]["n_computed"] == 1 and s2["n_failed"] == 0  # not remembered: tried again


_CONCURRENCY_SPY = """
    import os, time, pathlib
    import exoimage.experiment.batch as b

    D = pathlib.Path(r"{dir}")
    _orig = getattr(b, "_unpatched_process_tem", b._process_tem)  # Dask may run a preload twice

    def _spy(task, job, out):
        me = D / (str(os.getpid()) + ".running")
        me.touch()
        seen = 0
        deadline = time.time() + ({wait})
        while time.time() < deadline:  # watch (or, as a barrier, wait for) a second running task
            seen = max(seen, len(list(D.glob("*.running"))))
            if {barrier} and seen >= 2:
                break
            time.sleep(0.05)
        (D / (task.rel.replace("/", "_") + ".seen")).write_text(str(seen))
        try:
            return _orig(task, job, out)
        finally:
            me.unlink()

    b._unpatched_process_tem, b._process_tem = _orig, _spy
"""


@pytest.mark.parametrize("estimate,barrier,expected", [(10**9, False, 1), (10**7, True, 2)])
def test_running_estimates_stay_under_the_available_memory(tmp_path, monkeypatch, estimate, barrier, expected):
    """Two workers, 1.7 GB for the tasks: two 1 GB tasks run one after the other, two 10 MB ones together."""
    pytest.importorskip("distributed")
    root = _experiment(tmp_path / "exp", blot=False, tem=(A0, B0))
    spy = tmp_path / "spy"
    spy.mkdir()
    script = _preload(tmp_path, _CONCURRENCY_SPY.format(dir=spy, wait=30 if barrier else 1.5, barrier=barrier))
    monkeypatch.setattr(batch, "available_memory_bytes", lambda: 2 * 10**9)
    monkeypatch.setattr(batch, "estimate_task_bytes", lambda task, exp: estimate)
    with dask.config.set({"distributed.worker.preload": [script]}):
        s = run_experiment(load_experiment(root), tmp_path / "out", workers=2, progress=False)
    assert s["n_failed"] == 0 and s["stats"]["n_workers"] == 2
    assert s["stats"]["memory_budget_bytes"] == int(2 * 10**9 * batch.MEMORY_USE_FRACTION)
    seen = sorted(int(f.read_text()) for f in spy.glob("*.seen"))
    assert len(seen) == 2 and max(seen) == expected


# ---------------------------------------------------------------------------
# options and the output folder


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    return _experiment(tmp_path_factory.mktemp("small") / "exp", blot=False, tem=(A0,))


def test_negative_workers_refused(small_root, tmp_path, capsys):
    assert cli_main(["run", str(small_root), "--out", str(tmp_path / "o"), "--workers", "-1"]) == 2
    assert "--workers -1: must be 0" in _one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_too_many_workers_capped_at_the_cores(small_root, tmp_path, capsys, monkeypatch):
    import exoimage.experiment.run as pr

    seen = {}

    def fake(exp, out, **kw):
        seen.update(kw)
        return {"n_ok": 1, "n_images": 1, "n_cached": 0, "n_failed": 0, "n_nta_files": 0, "n_nta_failed": 0,
                "n_failed_remembered": 0, "report": "r"}

    monkeypatch.setattr(pr, "run_experiment", fake)
    assert cli_main(["run", str(small_root), "--out", str(tmp_path / "o"), "--workers", "100000",
                     "--no-progress"]) == 0
    cores = os.cpu_count()
    assert seen["workers"] == cores
    assert f"--workers 100000 capped at {cores}" in capsys.readouterr().err


def test_out_is_a_file(small_root, tmp_path, capsys):
    f = tmp_path / "results.txt"
    f.write_text("keep me")
    assert cli_main(["run", str(small_root), "--out", str(f), "--workers", "0"]) == 2
    assert "is a file, not a folder" in _one_line_error(capsys)
    assert f.read_text() == "keep me"
    assert cli_main(["run", str(small_root), "--out", str(f / "sub"), "--workers", "0"]) == 2
    assert "cannot write in the output folder" in _one_line_error(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_out_is_read_only(small_root, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert cli_main(["run", str(small_root), "--out", str(ro), "--workers", "0"]) == 2
        assert "cannot write in the output folder" in _one_line_error(capsys)
    finally:
        ro.chmod(0o755)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:{port}", "not a url::", "tcp://"])
def test_unreachable_or_malformed_scheduler(small_root, tmp_path, capsys, address):
    pytest.importorskip("distributed")
    address = address.format(port=_free_port())
    assert cli_main(["run", str(small_root), "--out", str(tmp_path / "o"), "--scheduler", address]) == 2
    err = _one_line_error(capsys)
    assert f"--scheduler {address}: cannot connect" in err
    assert not (tmp_path / "o" / "images.csv").exists()


def _disk_full_when(monkeypatch, module, pred):
    orig = module.atomic_write_bytes

    def write(path, data):
        if pred(Path(path)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return orig(path, data)

    monkeypatch.setattr(module, "atomic_write_bytes", write)


def test_disk_full_while_writing_tables(small_root, tmp_path, capsys, monkeypatch):
    import exoimage.outputs as outputs

    out = tmp_path / "out"
    args = ["run", str(small_root), "--out", str(out), "--workers", "0", "--no-progress"]
    assert cli_main(args) == 0
    before = {p.name: p.read_bytes() for p in out.glob("*.csv")}
    capsys.readouterr()
    _disk_full_when(monkeypatch, outputs, lambda p: p.name == "samples.csv")
    assert cli_main(args) == 1
    err = _one_line_error(capsys)
    assert "disk full" in err and str(out) in err
    assert {p.name: p.read_bytes() for p in out.glob("*.csv")} == before  # nothing corrupted
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_disk_full_in_a_task_stops_the_run_and_is_not_remembered(small_root, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    args = ["run", str(small_root), "--out", str(out), "--workers", "0", "--no-progress"]
    _disk_full_when(monkeypatch, cache_mod, lambda p: p.parent.name == ".cache")
    assert cli_main(args) == 1
    assert "disk full" in _one_line_error(capsys)
    assert not list((out / ".cache").glob("*.json"))  # no failure remembered for a full disk
    monkeypatch.undo()
    assert cli_main(args) == 0
    assert pd.read_csv(out / "images.csv")["status"].tolist() == ["ok"]
