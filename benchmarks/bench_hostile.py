"""Hostile-folder benchmark: every case of exoimage.simulate.hostile through `tem`, `blot` and `run`.

Builds the folder, then

* runs ``exoimage tem FILE`` / ``exoimage blot FILE`` on each image case on its own and prints
  the case's outcome (status and error text from images.csv), whether it is the expected one,
  the command's peak RSS (whole process tree) and wall time;
* runs ``exoimage tem``, ``exoimage blot`` and ``exoimage run`` (in-process and with 2 Dask
  workers) on the whole folder and prints, per command, exit code, cases passed, peak RSS, time.

Usage::

    python benchmarks/bench_hostile.py [--out benchmarks/out/hostile] [--skip-single]
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

import pandas as pd

from exoimage.simulate.hostile import build_hostile_folder, case_outcomes, run_measured


def _exo(*args):
    return [sys.executable, "-m", "exoimage", *map(str, args)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/out/hostile")
    ap.add_argument("--skip-single", action="store_true", help="only the whole-folder runs")
    args = ap.parse_args(argv)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    root = out / "exp"
    cases = build_hostile_folder(root)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", 90)

    if not args.skip_single:
        rows = []
        for i, c in enumerate(cases):
            if c.kind == "nta":
                continue
            cmd = "tem" if c.kind == "tem" else "blot"
            o = out / "single" / f"{i:02d}"
            res = run_measured(_exo(cmd, root / c.rel, "--out", o, *(["--pixel-size", "1"] if cmd == "tem" else [])),
                               timeout=300)
            # a single file is named by its file name alone in that command's tables
            t = pd.read_csv(o / "images.csv", dtype=str, keep_default_na=False) if (o / "images.csv").exists() \
                else pd.DataFrame(columns=["status", "error"])
            status = t["status"].iloc[0] if len(t) else "missing"
            error = t["error"].iloc[0] if len(t) and "error" in t else ""
            passed = (status == "ok" if c.expect == "ok" else
                      status in ("ok", "error") if c.expect == "ok_or_error" else
                      status == "error" and bool(re.search(c.reason, error, re.I)))
            rows.append(dict(case=c.name, command=cmd, expect=c.expect, status=status, passed=passed,
                             rc=res["returncode"], peak_rss_mb=res["peak_rss_mb"], seconds=res["seconds"],
                             traceback="Traceback" in res["stderr"], error=error[:90]))
        single = pd.DataFrame(rows)
        print("Each image case on its own (exoimage tem|blot FILE):")
        print(single.to_string(index=False))
        print()

    whole = []
    for name, cmd, kind in (("tem", _exo("tem", root / "tem", "--out", out / "tem", "--pixel-size", "1"), "tem"),
                            ("blot", _exo("blot", root / "blots", "--out", out / "blot"), "blot"),
                            ("run --workers 0", _exo("run", root, "--out", out / "run0", "--workers", "0"), "run"),
                            ("run --workers 2", _exo("run", root, "--out", out / "run2", "--workers", "2"), "run")):
        res = run_measured(cmd, timeout=1800)
        o = Path(cmd[cmd.index("--out") + 1])
        got = case_outcomes(cases, o, kind)
        whole.append(dict(command=f"exoimage {name}", rc=res["returncode"], cases=len(got),
                          passed=int(got["passed"].sum()), peak_rss_mb=res["peak_rss_mb"],
                          seconds=res["seconds"], traceback="Traceback" in res["stderr"],
                          report=(o / "report.html").exists() if kind == "run" else None,
                          failed_cases=", ".join(got.loc[~got["passed"], "case"])))
    print("Whole folder:")
    print(pd.DataFrame(whole).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
