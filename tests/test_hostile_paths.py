"""Hostile folders: names, paths, non-regular files, per-file isolation, umask, user text (issue 10).

Everything is generated at test time in ``tmp_path``. The commands run as
subprocesses (``python -m exoimage ...``) with a timeout, so a hang fails the
test instead of blocking the suite, and stderr can be checked for tracebacks.
Each command runs once per module (fixtures) and the tests read its outputs.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile

from exoimage.blot import BlotParams, analyze_blot_file
from exoimage.experiment import load_experiment
from exoimage.io import write_calibrated_tiff
from exoimage.outputs import (MAX_STEM_BYTES, atomic_write_bytes, find_inputs, mpl_literal, safe_stem,
                              walk_folder, write_table)
from exoimage.simulate.blot import simulate_blot
from exoimage.simulate.nta import nanosight_summary
from exoimage.simulate.tem import SCENARIOS, TemScene, simulate_tem
from exoimage.tem import analyze_tem_file

ROOT = Path(__file__).resolve().parents[1]
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
LONG = "x" * 240 + ".tif"  # a 244-byte file name: legal, but too long for '.<name>.<random>.tmp'
HYPERLINK = '=HYPERLINK("evil.example","click")'
ODD = "caf\udce9 new\nline.tif"  # a byte that is not UTF-8 (as os.fsdecode keeps it) and a newline
ODD_SHOWN = "caf\\xe9 new\\nline.tif"  # how tables and messages show it: one line, valid UTF-8
MATH = "$x^$"  # invalid mathtext: matplotlib raises when it parses it
LADDER = [250, 150, 100, 75, 50, 37, 25, 20, 15, 10]
TIMEOUT = 300  # s; a FIFO or /dev/zero that is opened would block / never end


def _exo(args, cwd, umask=None, wrapper=None):
    """Run ``python -m exoimage ARGS`` (or ``wrapper`` code, then the CLI) with a timeout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "MPLBACKEND": "Agg"}
    cmd = [sys.executable, "-m", "exoimage", *args] if wrapper is None else [sys.executable, "-c", wrapper, *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def _tem_image(path, seed=4):
    img, _ = simulate_tem(TemScene(shape=(256, 256), pixel_size_nm=2.0,
                                   **{**SCENARIOS["clean"], "coverage": 0.25, "median_diameter_nm": 60.0}),
                          seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_calibrated_tiff(path, img, 2.0)
    return img


def _strip(path):
    rng = np.random.default_rng(0)
    write_calibrated_tiff(path, rng.normal(1000, 50, (10, 100_000)).astype(np.uint16), 2.0)


def _blot(path, seed, samples=("ladder", "A", "A", "B", "B")):
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, simulate_blot(n_lanes=5, seed=seed).data)
    pd.DataFrame({"lane": range(1, 6), "sample": list(samples)}).to_csv(
        path.with_name(path.name.split(".")[0] + ".lanes.csv"), index=False)


def _no_traceback(proc):
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def _one_line(text):
    return isinstance(text, str) and text and "\n" not in text and "\r" not in text


def _modes(out):
    return {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode)
            for p in out.rglob("*") if p.is_file() and not p.is_symlink()}


# ---------------------------------------------------------------------------
# output names


COLLIDING = ["f 1.tif", "f_1.tif", "f_1.png", "F_1.tif", "a/b.tif", "a__b.tif", "a_/b.tif", "a/_b.tif",
             "gel1/CD63.tif", "gel2/CD63.tif", "gel1__CD63.tif", LONG, "y" * 240 + ".tif", "y" * 240 + ".png",
             ".hidden.tif", "caf\u00e9.tif", "cafe\u0301.tif", "sub/good.tif", "abc-0123456789.tif", "abc.tif"]


def test_safe_stem_unique_stable_short():
    stems = [safe_stem(r) for r in COLLIDING]
    assert len(set(stems)) == len(COLLIDING)
    assert len({s.lower() for s in stems}) == len(COLLIDING)  # also on case-insensitive file systems
    assert all(0 < len(s.encode("utf-8")) <= MAX_STEM_BYTES for s in stems)
    assert all(not s.startswith(".") and "/" not in s for s in stems)
    # stable: a function of the relative path alone (same on every run and machine)
    assert safe_stem("sub/good.tif") == "sub__good"
    assert safe_stem("f_1.png") == "f_1-476d285e82"
    assert safe_stem(LONG) == "x" * (MAX_STEM_BYTES - 11) + "-" + safe_stem(LONG)[-10:]


def test_atomic_write_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        for um, want in ((0o022, 0o644), (0o002, 0o664), (0o077, 0o600)):
            os.umask(um)
            p = tmp_path / f"u{um:o}" / (("z" * 250) + ".png")  # 254-byte name: the temporary name must fit
            atomic_write_bytes(p, b"data")
            write_calibrated_tiff(p.with_name("lab.tif"), np.ones((9, 9), np.uint16), 1.0)
            assert stat.S_IMODE(p.stat().st_mode) == want
            assert stat.S_IMODE(p.with_name("lab.tif").stat().st_mode) == want
            assert sorted(x.name for x in p.parent.iterdir()) == ["lab.tif", p.name]  # no temporary left
    finally:
        os.umask(old)


# ---------------------------------------------------------------------------
# CSV formula injection and matplotlib text


def test_write_table_neutralises_formulas_only_in_text(tmp_path):
    df = pd.DataFrame({"sample": [HYPERLINK, "+1", "-x", "@SUM(A1)", "\tx", "\rx", "ok", None, "a=b"],
                       "value": [-1.5, -2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                       "n": [-1, 2, 3, 4, 5, 6, 7, 8, 9]})
    df["=cmd|' /C calc'!A0"] = "x"  # a user-named column (e.g. a marker) is a header cell
    write_table(df, tmp_path / "t.csv", parquet=True)
    back = pd.read_csv(tmp_path / "t.csv", keep_default_na=False)
    assert list(back["sample"]) == ["'" + HYPERLINK, "'+1", "'-x", "'@SUM(A1)", "'\tx", "'\nx", "ok", "", "a=b"]
    assert back.columns[-1] == "'=cmd|' /C calc'!A0"
    assert back["value"].tolist() == df["value"].tolist() and back["n"].tolist() == df["n"].tolist()
    assert pd.read_parquet(tmp_path / "t.parquet")["sample"].tolist()[:3] == [HYPERLINK, "+1", "-x"]  # data kept


def test_mpl_literal_renders_user_text_as_is():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for text in (MATH, r"$\alpha$", "cost $5", r"a\$b", "plain"):
        fig, ax = plt.subplots()
        t = ax.set_title(mpl_literal(text))
        ax.set_xticks([0])
        ax.set_xticklabels([mpl_literal(text)])
        fig.canvas.draw()  # raises for mathtext it cannot parse
        assert t._preprocess_math(t.get_text()) == (text, False)  # shown literally, not as maths
        plt.close(fig)
    fig, ax = plt.subplots()  # the unescaped text crashes: the escape is what the test checks
    ax.set_title(MATH)
    with pytest.raises(ValueError):
        fig.canvas.draw()
    plt.close(fig)


# ---------------------------------------------------------------------------
# discovery


@needs_fifo
def test_walk_folder_links_loops_and_special_files(tmp_path):
    d, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    (d / "S1").mkdir(parents=True)
    elsewhere.mkdir()
    (d / "S1" / "a.tif").write_bytes(b"x")
    (elsewhere / "b.tif").write_bytes(b"x")
    os.symlink(elsewhere, d / "S3")
    os.symlink("..", d / "S1" / "up")  # a parent: a loop
    os.symlink("self", d / "S1" / "self")  # points to itself
    os.symlink("gone.tif", d / "S1" / "dangling.tif")
    os.mkfifo(d / "S1" / "pipe.tif")
    (d / "S1" / ".hidden.tif").write_bytes(b"x")
    (d / "S1" / "notes.txt").write_text("ignored")
    got = {f.rel: f.error for f in walk_folder(d)}
    assert set(got) == {"S1/a.tif", "S3/b.tif", "S1/up/", "S1/self", "S1/dangling.tif", "S1/pipe.tif"}
    assert got["S1/a.tif"] is None and got["S3/b.tif"] is None
    assert "symbolic link loop" in got["S1/up/"] and "symbolic link loop" in got["S1/self"]
    assert "broken symbolic link" in got["S1/dangling.tif"]
    assert "named pipe (FIFO), not a regular file" in got["S1/pipe.tif"]
    assert all(e is None or _one_line(e) for e in got.values())
    # two folders holding the same relative name: the path as given tells them apart
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    (tmp_path / "d1" / "x.tif").write_bytes(b"1")
    (tmp_path / "d2" / "x.tif").write_bytes(b"2")
    rels = [f.rel for f in find_inputs([tmp_path / "d1", tmp_path / "d2", tmp_path / "d1" / "x.tif"])]
    assert rels == [(tmp_path / "d1" / "x.tif").as_posix(), (tmp_path / "d2" / "x.tif").as_posix()]


# ---------------------------------------------------------------------------
# exoimage tem on a hostile folder


@pytest.fixture(scope="module")
def tem_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("tem")
    d = base / "in"
    img = _tem_image(d / "good.tif")
    for name in ("f 1.tif", "f_1.tif", LONG, ODD):
        write_calibrated_tiff(d / name, img, 2.0)
    cv2.imwrite(str(d / "f_1.png"), img)  # 16-bit PNG, no calibration: --pixel-size 2
    _tem_image(base / "elsewhere" / "linked.tif")
    os.symlink(base / "elsewhere", d / "S3")  # a linked sample folder
    os.symlink(".", d / "loop")  # points to its own folder
    _strip(d / "strip.tif")
    if hasattr(os, "mkfifo"):
        os.mkfifo(d / "pipe.tif")
    if os.path.exists("/dev/zero"):
        os.symlink("/dev/zero", d / "zero.tif")  # a device that never ends
    out = base / "out"
    proc = _exo(["tem", str(d), "--out", str(out), "--pixel-size", "2"], cwd=base, umask=0o027)
    return proc, out, analyze_tem_file(d / "good.tif", pixel_size_nm=2.0, name="good.tif")


def test_tem_cli_hostile_folder_outcomes(tem_run):
    proc, out, ref = tem_run
    _no_traceback(proc)
    assert proc.returncode == 0  # README: non-zero only when nothing could be analysed
    images = pd.read_csv(out / "images.csv").set_index("image")
    ok = ["good.tif", "f 1.tif", "f_1.tif", "f_1.png", LONG, "S3/linked.tif", ODD_SHOWN]
    for name in ok:
        assert images.loc[name, "status"] == "ok", (name, images.loc[name, "error"])
    assert images.loc["loop/", "status"] == "error" and "symbolic link loop" in images.loc["loop/", "error"]
    if hasattr(os, "mkfifo"):
        assert "named pipe (FIFO), not a regular file" in images.loc["pipe.tif", "error"]
    if os.path.exists("/dev/zero"):
        assert "character device, not a regular file" in images.loc["zero.tif", "error"]
    # the 10 x 100000 strip: a clean outcome (it reads and analyses: no vesicle fits in 10 px)
    assert images.loc["strip.tif", "status"] == "ok" and images.loc["strip.tif", "n_vesicles"] == 0
    assert all(_one_line(e) for e in images.loc[images["status"] == "error", "error"])
    # the good images' numbers: every copy measures exactly like the original, analysed on its own
    ves = pd.read_csv(out / "vesicles.csv")
    want = ref.vesicles["diameter_nm"].to_numpy(float)
    for name in ("good.tif", "f 1.tif", "f_1.tif", "f_1.png", LONG, ODD_SHOWN):
        got = ves.loc[ves["image"] == name, "diameter_nm"].to_numpy(float)
        np.testing.assert_array_equal(got, want)
        assert images.loc[name, "n_vesicles"] == ref.image_row["n_vesicles"] > 0
    assert (ves["image"] == "S3/linked.tif").sum() > 0
    run = json.loads((out / "run.json").read_text())
    entries = {e["image"]: e for e in run["inputs"]}
    assert entries["good.tif"]["sha256"] and entries["loop/"]["sha256"] is None


def test_tem_cli_output_names_unique_short_and_modes(tem_run):
    proc, out, _ = tem_run
    overlays = sorted(p.name for p in (out / "overlays").iterdir())
    labels = sorted(p.name for p in (out / "labels").iterdir())
    assert len(overlays) == len(labels) == 8  # one per analysed image, none shared, no temporary left
    assert all(len(n.encode()) <= 255 for n in overlays + labels)
    assert {safe_stem(n) + ".png" for n in ("f 1.tif", "f_1.tif", "f_1.png")} <= set(overlays)
    modes = _modes(out)
    assert modes and set(modes.values()) == {0o640}, modes  # umask 027: group can read report and tables


@needs_fifo
def test_tem_cli_only_unreadable_inputs(tmp_path):
    os.mkfifo(tmp_path / "pipe.tif")
    proc = _exo(["tem", str(tmp_path / "pipe.tif"), "--out", str(tmp_path / "out")], cwd=tmp_path)
    _no_traceback(proc)
    assert proc.returncode == 1  # nothing could be analysed
    row = pd.read_csv(tmp_path / "out" / "images.csv").iloc[0]
    assert row["status"] == "error" and "not a regular file" in row["error"]
    assert (tmp_path / "out" / "run.json").exists() and (tmp_path / "out" / "vesicles.csv").exists()


@needs_fifo
def test_blot_cli_refuses_a_fifo_as_lane_sheet(tmp_path):
    os.mkfifo(tmp_path / "sheet.csv")
    _blot(tmp_path / "CD63.tif", seed=3)
    proc = _exo(["blot", str(tmp_path / "CD63.tif"), "--out", str(tmp_path / "out"), "--lane-sheet",
                 str(tmp_path / "sheet.csv")], cwd=tmp_path)
    _no_traceback(proc)
    assert proc.returncode == 2 and "--lane-sheet" in proc.stderr and "not a regular file" in proc.stderr


# An unexpected failure inside one file (MemoryError, an OpenCV assertion, a full disk while writing
# its overlay) is injected into the CLI module, which then runs as usual.
_WRAP_TEM = """
import sys
import exoimage.cli.tem as T
orig_analyze, orig_draw = T.analyze_tem_file, T.draw_overlay
def analyze(path, *a, **k):
    if "boom" in str(path):
        raise MemoryError()
    return orig_analyze(path, *a, **k)
def draw(display, labels, table, *a, **k):
    if (table["image"] == "crash.tif").any():
        raise RuntimeError("OpenCV(5.0.0) resize.cpp:4220: error: (-215:Assertion failed)\\n in function 'resize'")
    return orig_draw(display, labels, table, *a, **k)
T.analyze_tem_file, T.draw_overlay = analyze, draw
if "--full-disk" in sys.argv:
    sys.argv.remove("--full-disk")
    def full(*a, **k):
        raise OSError(28, "No space left on device")
    T.write_table = full
from exoimage.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_tem_cli_isolates_unexpected_failures(tmp_path):
    d = tmp_path / "in"
    img = _tem_image(d / "good.tif")
    for name in ("boom.tif", "crash.tif"):
        write_calibrated_tiff(d / name, img, 2.0)
    out = tmp_path / "out"
    proc = _exo(["tem", str(d), "--out", str(out)], cwd=tmp_path, wrapper=_WRAP_TEM)
    _no_traceback(proc)
    assert proc.returncode == 0
    images = pd.read_csv(out / "images.csv").set_index("image")
    assert images.loc["boom.tif", "status"] == "error" and images.loc["boom.tif", "error"] == "out of memory"
    crash = images.loc["crash.tif", "error"]
    assert _one_line(crash) and crash.startswith("RuntimeError: OpenCV(5.0.0) resize.cpp")
    assert images.loc["good.tif", "status"] == "ok" and images.loc["good.tif", "n_vesicles"] > 0
    ves = pd.read_csv(out / "vesicles.csv")
    assert set(ves["image"]) == {"good.tif"}  # nothing of a failed file in the tables
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["good.png"]
    assert (out / "run.json").exists()
    # a full disk when the tables are written: one line, exit 1
    proc = _exo(["tem", str(d / "good.tif"), "--out", str(tmp_path / "o2"), "--full-disk"], cwd=tmp_path,
                wrapper=_WRAP_TEM)
    _no_traceback(proc)
    assert proc.returncode == 1
    assert "exoimage tem: cannot write the results into" in proc.stderr and "No space left" in proc.stderr


# ---------------------------------------------------------------------------
# exoimage blot


_WRAP_BLOT = """
import sys
import exoimage.cli.blot as B
orig_analyze, orig_save = B.analyze_blot_file, B.save_png
def analyze(path, *a, **k):
    if "boom" in str(path):
        raise MemoryError("cannot allocate 7.2 GiB")
    return orig_analyze(path, *a, **k)
def save(path, rgb):
    if "crash" in str(path):
        raise OSError(28, "No space left on device")
    return orig_save(path, rgb)
B.analyze_blot_file, B.save_png = analyze, save
from exoimage.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_blot_cli_hostile_folder(tmp_path):
    d = tmp_path / "in"
    _blot(d / "gel1" / "CD63.tif", seed=3)
    _blot(d / "gel2" / "CD63.tif", seed=5)
    for name in ("boom.tif", "crash.tif"):
        _blot(d / name, seed=3)
    _strip(d / "strip.tif")
    if hasattr(os, "mkfifo"):
        os.mkfifo(d / "pipe.tif")
    os.symlink("..", d / "gel1" / "up")
    out = tmp_path / "out"
    proc = _exo(["blot", str(d), "--out", str(out)], cwd=tmp_path, umask=0o002, wrapper=_WRAP_BLOT)
    _no_traceback(proc)
    assert proc.returncode == 0
    images = pd.read_csv(out / "images.csv").set_index("image")
    assert images.loc["gel1/CD63.tif", "status"] == "ok" and images.loc["gel2/CD63.tif", "status"] == "ok"
    assert "out of memory (cannot allocate 7.2 GiB)" in images.loc["boom.tif", "error"]
    assert "No space left on device" in images.loc["crash.tif", "error"]
    assert "symbolic link loop" in images.loc["gel1/up/", "error"]
    if hasattr(os, "mkfifo"):
        assert "not a regular file" in images.loc["pipe.tif", "error"]
    assert images.loc["strip.tif", "status"] in ("ok", "error")  # a clean outcome either way
    assert all(_one_line(e) for e in images.loc[images["status"] == "error", "error"])
    bands = pd.read_csv(out / "bands.csv")
    assert set(bands["image"]) == {"gel1/CD63.tif", "gel2/CD63.tif"} | (
        {"strip.tif"} if images.loc["strip.tif", "status"] == "ok" else set())
    for gel in ("gel1", "gel2"):  # each gel's own numbers, as analysed alone
        ref = analyze_blot_file(d / gel / "CD63.tif", BlotParams(), name=f"{gel}/CD63.tif")
        np.testing.assert_allclose(bands.loc[bands["image"] == f"{gel}/CD63.tif", "volume"].to_numpy(float),
                                   ref.bands["volume"].to_numpy(float), rtol=1e-12)
    g1 = bands.loc[bands["image"] == "gel1/CD63.tif", "volume"].to_numpy(float)
    g2 = bands.loc[bands["image"] == "gel2/CD63.tif", "volume"].to_numpy(float)
    assert g1.shape != g2.shape or not np.allclose(g1, g2)  # two blots, not one twice
    overlays = {p.name for p in (out / "overlays").iterdir()}
    assert {safe_stem("gel1/CD63.tif") + ".png", safe_stem("gel2/CD63.tif") + ".png"} <= overlays
    assert not any("crash" in n for n in overlays)
    assert (out / "run.json").exists() and (out / "lanes.csv").exists()
    assert set(_modes(out).values()) == {0o664}


# ---------------------------------------------------------------------------
# exoimage run on a hostile experiment folder


@pytest.fixture(scope="module")
def exp_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("run")
    root, elsewhere = base / "exp", base / "elsewhere"
    img = _tem_image(root / "tem" / "S1" / "good.tif")
    for rel in (f"S1/{LONG}", f"{HYPERLINK}/a.tif", f"{MATH}/a.tif"):
        (root / "tem" / rel).parent.mkdir(parents=True, exist_ok=True)
        write_calibrated_tiff(root / "tem" / rel, img, 2.0)
    write_calibrated_tiff(elsewhere / "S3" / "linked.tif", img, 2.0)
    os.symlink(elsewhere / "S3", root / "tem" / "S3")
    os.symlink("..", root / "tem" / "S1" / "loop")  # tem/: a parent
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "tem" / "S1" / "pipe.tif")
    if os.path.exists("/dev/zero"):
        os.symlink("/dev/zero", root / "tem" / "S1" / "zero.tif")
    _blot(root / "blots" / "gel1" / "CD63.tif", seed=3, samples=("ladder", r"$\alpha$", r"$\alpha$", "B", "B"))
    _blot(root / "blots" / "gel2" / "CD63.tif", seed=5, samples=("ladder", r"$\alpha$", r"$\alpha$", "B", "B"))
    (elsewhere / "nta_S2").mkdir()
    data, _ = nanosight_summary("S2", ("S2_01", "S2_02", "S2_03"), dilution=1000.0,
                                conditions={"Particles per frame flag": ["OK"]})
    (elsewhere / "nta_S2" / "S2-ExperimentSummary.csv").write_bytes(data)
    if hasattr(os, "mkfifo"):
        os.mkfifo(elsewhere / "nta_S2" / "pipe.csv")
    (root / "nta").mkdir()
    os.symlink(elsewhere / "nta_S2", root / "nta" / "S2")
    os.symlink(".", root / "nta" / "S4")  # nta/ itself
    (root / "experiment.toml").write_text(
        f'[blots.CD63]\nladder_lane = 1\nladder_kda = {LADDER}\n'
        f'[blots."gel2/CD63.tif"]\nmarker = "{MATH}"\n')
    out = base / "out"
    proc = _exo(["run", str(root), "--out", str(out), "--workers", "0", "--no-progress"], cwd=base, umask=0o002)
    rerun = _exo(["run", str(root), "--out", str(out), "--workers", "0", "--no-progress"], cwd=base, umask=0o002)
    return root, out, proc, rerun


def test_experiment_identity_and_blot_keys(exp_run):
    root = exp_run[0]
    exp = load_experiment(root)
    blots = {t.rel: t.blot for t in exp.blots}
    assert set(blots) == {"blots/gel1/CD63.tif", "blots/gel2/CD63.tif"}
    assert blots["blots/gel1/CD63.tif"].marker == "CD63" and blots["blots/gel2/CD63.tif"].marker == MATH
    for t in blots.values():  # the stem's keys apply to both; the lane sheet is the one next to each image
        assert t.options["ladder_lane"] == 1 and t.lane_sheet.parent.name in t.name
    tem = {t.rel: t for t in exp.tem}
    assert tem["tem/S3/linked.tif"].error is None and tem["tem/S3/linked.tif"].sample == "S3"
    assert "symbolic link loop" in tem["tem/S1/loop/"].error and tem["tem/S1/loop/"].sample == "S1"


def test_run_hostile_experiment(exp_run):
    root, out, proc, rerun = exp_run
    for p in (proc, rerun):
        _no_traceback(p)
        assert p.returncode == 0, p.stderr[-2000:]
    assert (out / "report.html").exists() and (out / "run.json").exists()
    images = pd.read_csv(out / "images.csv").set_index("image")
    ok = ["tem/S1/good.tif", f"tem/S1/{LONG}", "tem/S3/linked.tif", f"tem/{HYPERLINK}/a.tif", f"tem/{MATH}/a.tif"]
    for name in ok:
        assert images.loc[name, "status"] == "ok", (name, images.loc[name, "error"])
    assert "symbolic link loop" in images.loc["tem/S1/loop/", "error"]
    if hasattr(os, "mkfifo"):
        assert "not a regular file" in images.loc["tem/S1/pipe.tif", "error"]
    if os.path.exists("/dev/zero"):
        assert "character device" in images.loc["tem/S1/zero.tif", "error"]
    assert all(_one_line(e) for e in images.loc[images["status"] == "error", "error"])
    ves = pd.read_csv(out / "vesicles.csv")
    want = ves.loc[ves["image"] == "tem/S1/good.tif", "diameter_nm"].to_numpy(float)
    assert len(want) > 0
    for name in ok:  # the same image under five names: five identical measurements
        np.testing.assert_array_equal(ves.loc[ves["image"] == name, "diameter_nm"].to_numpy(float), want)
    # both gels measured, each with its own numbers
    bi = pd.read_csv(out / "blot_images.csv").set_index("image")
    assert set(bi.index) == {"blots/gel1/CD63.tif", "blots/gel2/CD63.tif"} and (bi["status"] == "ok").all()
    bands = pd.read_csv(out / "bands.csv")
    params = BlotParams(ladder_lane=1, ladder_kda=[float(k) for k in LADDER])
    for gel in ("gel1", "gel2"):
        ref = analyze_blot_file(root / "blots" / gel / "CD63.tif", params, name=f"blots/{gel}/CD63.tif")
        np.testing.assert_allclose(bands.loc[bands["image"] == f"blots/{gel}/CD63.tif", "volume"].to_numpy(float),
                                   ref.bands["volume"].to_numpy(float), rtol=1e-12)
    # one overlay per analysed image, no two sharing a file
    assert len(list((out / "overlays").iterdir())) == len(ok) + 2
    assert all(len(p.name.encode()) <= 255 for p in (out / "overlays").iterdir())
    # NTA: the linked sample folder is read, the FIFO and the loop are error rows
    nf = pd.read_csv(out / "nta_files.csv").set_index("file")
    assert nf.loc["nta/S2/S2-ExperimentSummary.csv", "status"] == "ok"
    assert "symbolic link loop" in nf.loc["nta/S4", "error"]
    if hasattr(os, "mkfifo"):
        assert "not a regular file" in nf.loc["nta/S2/pipe.csv", "error"]
    # colleagues can read everything (umask 002 -> 664)
    modes = {k: v for k, v in _modes(out).items()}
    assert modes and set(modes.values()) == {0o664}, modes


def test_run_user_text_is_never_interpreted(exp_run):
    root, out, proc, _ = exp_run
    samples = pd.read_csv(out / "samples.csv", keep_default_na=False)
    assert "'" + HYPERLINK in set(samples["sample"]) and HYPERLINK not in set(samples["sample"])
    assert MATH in set(samples["sample"])
    for table in ("images", "vesicles"):
        col = pd.read_csv(out / f"{table}.csv", keep_default_na=False)["sample"]
        assert not col.astype(str).str.startswith(("=", "+", "-", "@")).any()
    assert pd.read_parquet(out / "samples.parquet")["sample"].isin([HYPERLINK]).any()  # data kept as is
    norm = pd.read_csv(out / "normalized.csv")
    assert {MATH, "CD63"} <= set(norm["marker"]) and r"$\alpha$" in set(norm["sample"])
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "=HYPERLINK(&quot;evil.example&quot;,&quot;click&quot;)" in html and MATH in html
    assert html.count("data:image/png;base64,") >= 4  # size figures, marker figure and overlays were drawn
