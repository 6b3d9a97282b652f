"""The ladder mass-proportionality check of a known ladder: kept in the blot record, a QC row
with the rules file's threshold, a line in the report; ``ladder`` accepted per blot in experiment.toml."""

import numpy as np
import pandas as pd
import pytest

from exoimage.blot.ladders import load_ladder
from exoimage.blot.measure import ladder_mass_check
from exoimage.experiment.qc import load_rules, run_qc
from exoimage.experiment.records import (LADDER_CHECK_KEYS, blot_record, ladder_check_summary, record_fields,
                                         record_from_fields)
from exoimage.experiment.tables import experiment_tables


def _check(err_first: float):
    neb = load_ladder("neb-1kb-plus")
    y = np.arange(19) * 20.0 + 50
    vol = 1000.0 * np.array(neb.masses_ng)
    vol[::2] *= 1 + err_first  # every other band off by err_first
    bands = pd.DataFrame({"image": "g", "lane": 2, "y_px": y, "volume": vol})
    return ladder_mass_check(bands, {"lane": 2, "y_px": list(y), "kda": list(neb.sizes)}, neb)


def _record(check):
    row = {"image": "gel.tif", "status": "ok", "error": "", "n_lanes": 4, "n_bands": 19}
    return blot_record("gel.tif", row, marker="DNA", ladder_check=check)


def test_summary_and_record_round_trip():
    t = _check(0.2)
    s = ladder_check_summary(t)
    assert set(s) == set(LADDER_CHECK_KEYS) and s["ladder"] == "neb-1kb-plus" and s["lane"] == 2
    assert s["mean_abs_error_pct"] == pytest.approx(t.attrs["mean_abs_error_pct"])
    assert ladder_check_summary(None) == {} and ladder_check_summary(t.iloc[:0]) == {}
    rec = _record(t)
    back = record_from_fields(*record_fields(rec))
    assert back.ladder_check == rec.ladder_check
    sc, tb = record_fields(rec)
    with pytest.raises(ValueError, match="ladder check"):
        record_from_fields({**sc, "ladder_check": {"ladder": "x"}}, tb)


@pytest.mark.parametrize("err, status", [(0.05, "PASS"), (0.5, "WARN")])
def test_qc_row_uses_the_rule_threshold(err, status):
    t = _check(err)
    tables = experiment_tables([_record(t)], sample_names=[])
    qc = run_qc(tables, load_rules())
    row = qc[qc["check"] == "ladder mass proportionality"]
    assert len(row) == 1 and row["status"].iloc[0] == status
    mean = t.attrs["mean_abs_error_pct"]
    assert (mean <= 15) == (status == "PASS")
    assert f"{mean:.1f} %" in row["reason"].iloc[0] and "<= 15 %" in row["reason"].iloc[0]
    assert "Aquilina" in row["source"].iloc[0]


def test_no_row_without_a_known_ladder():
    tables = experiment_tables([_record(None)], sample_names=[])
    qc = run_qc(tables, load_rules())
    assert not (qc["check"] == "ladder mass proportionality").any()


def test_experiment_toml_accepts_a_known_ladder_and_reports_the_check(tmp_path):
    from exoimage.experiment import load_experiment
    from exoimage.experiment.run import run_experiment
    from pathlib import Path

    gel = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "dna_ladder_gel_8bit.tif"
    if not gel.exists():
        pytest.skip("../shared absent")
    root = tmp_path / "exp"
    (root / "blots").mkdir(parents=True)
    (root / "blots" / "gel.tif").symlink_to(gel)
    (root / "experiment.toml").write_text('[experiment]\nname = "ladder"\n'
                                          '[blots.gel]\nladder_lane = 1\nladder = "neb-1kb-plus"\n')
    exp = load_experiment(root)
    run_experiment(exp, tmp_path / "out", progress=False)
    qc = pd.read_csv(tmp_path / "out" / "qc.csv")
    row = qc[qc["check"] == "ladder mass proportionality"]
    assert len(row) == 1 and "neb-1kb-plus in lane 1" in row["reason"].iloc[0]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "band volumes vs the vendor&#39;s masses" in html or "band volumes vs the vendor's masses" in html
