"""Issue 18: MISEV purity as enrichment vs a reference, reasons behind every qc_status, the verdict first,
sections without data hidden, nothing wider than the page."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from exoimage.experiment import ExperimentError, load_experiment
from exoimage.experiment.qc import load_rules, run_qc, sample_qc_reasons, sample_qc_status
from exoimage.experiment.run import run_experiment
from exoimage.experiment.tables import experiment_tables
from exoimage.stats import marker_summary

SAMPLES = Path(__file__).resolve().parents[1] / "sample_images"
PURITY = "MISEV: purity (enrichment vs reference)"


def _tables(signal: dict):
    """Tables of an experiment with blots only: ``signal`` = {marker: {sample: [relative per replicate]}}."""
    rows = []
    for marker, by_sample in signal.items():
        lane = 1
        for s, vals in by_sample.items():
            for v in vals:
                lane += 1
                rows.append({"image": f"blots/{marker}.tif", "marker": marker, "control_marker": None,
                             "lane": lane, "sample": s, "relative": float(v)})
    t = experiment_tables([], sample_names=[s for s in next(iter(signal.values())) if s != "lysate"])
    t["normalized"] = pd.DataFrame(rows)
    t["markers"] = marker_summary(t["normalized"])
    return t


SIGNAL = {"CD63": {"lysate": [1.0, 1.0], "EV": [3.0, 3.2], "debris": [2.9, 3.1]},
          "TSG101": {"lysate": [1.0, 1.0], "EV": [2.0, 2.2], "debris": [2.0, 2.1]},
          "calnexin": {"lysate": [1.0, 1.0], "EV": [0.05, 0.06], "debris": [10.0, 10.4]}}


def _row(qc, sample, check):
    sel = qc[(qc["item"] == sample) & (qc["check"] == check)]
    assert len(sel) == 1, (sample, check, qc)
    return sel.iloc[0]


def test_purity_fails_a_sample_whose_negative_marker_is_10x_the_reference():
    t = _tables(SIGNAL)
    qc = run_qc(t, load_rules(), reference_sample="lysate")
    debris, ev = _row(qc, "debris", PURITY), _row(qc, "EV", PURITY)
    assert debris["status"] == "FAIL" and "calnexin 10.20x lysate" in debris["reason"]
    assert ev["status"] == "PASS" and "calnexin 0.06x lysate" in ev["reason"] and "CD63 3.10x" in ev["reason"]
    assert "exoimage defaults" in debris["source"] and "MISEV2018" in debris["source"]
    # "measured" stays its own item: calnexin was measured for both, so that item passes for both
    for s in ("EV", "debris"):
        assert _row(qc, s, "MISEV: negative or purity marker (calnexin/ApoA1) measured")["status"] == "PASS"
    # the reference sample is not judged against itself
    assert not ((qc["item"] == "lysate") & (qc["check"] == PURITY)).any()


def test_purity_thresholds_and_statuses_come_from_the_rules_file(tmp_path):
    f = tmp_path / "rules.toml"
    f.write_text('[misev]\nnegative_max_fold = 20.0\npositive_min_fold = 5.0\npositive_not_enriched = "FAIL"\n')
    qc = run_qc(_tables(SIGNAL), load_rules(f), reference_sample="lysate")
    debris = _row(qc, "debris", PURITY)
    assert debris["status"] == "FAIL" and "rule: >= 5x, FAIL" in debris["reason"]
    assert "rule: <= 20x)" in debris["reason"]  # calnexin 10.2x now within the rule
    f.write_text('[misev]\nnegative_not_depleted = "WARN"\n')
    assert _row(run_qc(_tables(SIGNAL), load_rules(f), reference_sample="lysate"), "debris",
                PURITY)["status"] == "WARN"
    f.write_text('[misev]\nnegative_max_fold = -1\n')
    with pytest.raises(ExperimentError, match=r"rules.toml: \[misev\] negative_max_fold"):
        load_rules(f)


def test_purity_without_a_reference_is_not_assessed_and_says_so():
    qc = run_qc(_tables(SIGNAL), load_rules(), reference_sample=None)
    r = _row(qc, "debris", PURITY)
    assert r["status"] == "WARN" and "no reference sample stated" in r["reason"]
    qc = run_qc(_tables(SIGNAL), load_rules(), reference_sample="nobody")
    r = _row(qc, "debris", PURITY)
    assert r["status"] == "WARN" and "no signal of nobody" in r["reason"]


def test_qc_status_names_its_failing_checks():
    t = _tables(SIGNAL)
    qc = run_qc(t, load_rules(), reference_sample="lysate")
    status, reasons = sample_qc_status(qc, t), sample_qc_reasons(qc, t)
    assert status == {"EV": "WARN", "debris": "FAIL"}
    # debris: FAIL by purity; both WARN for no single-particle counting (no NTA)
    assert reasons["debris"] == f"FAIL: {PURITY}; WARN: MISEV: single-particle counting method"
    assert reasons["EV"] == "WARN: MISEV: single-particle counting method"


@pytest.mark.parametrize("value,match", [('""', "must name a sample"), ("3", "reference_sample = 3")])
def test_reference_sample_is_checked_at_load(tmp_path, value, match):
    root = tmp_path / "exp"
    shutil.copytree(SAMPLES / "nta", root / "nta")
    (root / "experiment.toml").write_text(f"[experiment]\nreference_sample = {value}\n")
    with pytest.raises(ExperimentError, match=match) as e:
        load_experiment(root)
    assert "\n" not in str(e.value) and str(e.value).startswith(str(root / "experiment.toml"))


@pytest.fixture(scope="module")
def nta_only(tmp_path_factory):
    root = tmp_path_factory.mktemp("nta_only") / "exp"
    shutil.copytree(SAMPLES / "nta", root / "nta")
    (root / "experiment.toml").write_text('[experiment]\nname = "NTA <only>"\n[samples.S1]\nlabel = "S1 & co"\n')
    out = root.parent / "out"
    res = run_experiment(load_experiment(root), out, workers=0, progress=False)
    return res, (out / "report.html").read_text()


def test_verdict_is_the_first_section(nta_only):
    res, html = nta_only
    sections = re.findall(r"<section id='([a-z]+)'", html)
    assert sections[0] == "verdict"
    body = html[html.index("<body>"):]
    assert body.index("<h2>") == body.index("<h2>Verdict</h2>")
    verdict = html[html.index("<section id='verdict'>"):html.index("</section>")]
    for s, st in res["tables"]["samples"].set_index("sample")["qc_status"].items():
        assert f"<span class='badge {st}'>{st}</span> <b>{s}</b>" in verdict
    assert "S1 &amp; co" in verdict and "S1 & co" not in html  # user text escaped
    assert "<title>exoimage QC report: NTA &lt;only&gt;</title>" in html  # the Jinja2 layout escapes the title
    assert html.count("<body>") == 1 and html.rstrip().endswith("</body>\n</html>")
    assert "Not measured: TEM vesicle size; Western blot markers" in verdict


def test_sections_without_data_are_hidden(nta_only):
    res, html = nta_only
    sections = re.findall(r"<section id='([a-z]+)'", html)
    assert sections == ["verdict", "summary", "qc", "nta", "provenance"]
    summary = html[html.index("<section id='summary'>"):]
    summary = summary[:summary.index("</section>")]
    assert "TEM" not in summary and "NTA D50 ± SE (nm)" in summary
    assert "TEM: vesicle size" not in html and "Western blots" not in html


def test_qc_reason_column_and_grouped_qc(nta_only):
    res, html = nta_only
    samples = res["tables"]["samples"]
    for r in samples.itertuples():
        if r.qc_status != "PASS":
            assert r.qc_status + ":" in r.qc_reason
    qc = html[html.index("<section id='qc'>"):]
    qc = qc[:qc.index("</section>")]
    n_pass = int((res["tables"]["qc"]["status"] == "PASS").sum())
    assert f"<details><summary>{n_pass} checks passed <span class='noprint'>(show)</span></summary>" in qc
    assert qc.index("Failures and warnings") < qc.index("<details>")
    # each source once, in the references list: a rule read from several NTA files is one entry naming them
    sources = list(dict.fromkeys(res["tables"]["qc"]["source"]))
    refs = re.findall(r"<li id='ref-(\d+)'>([^<]*)</li>", qc)
    assert [n for n, _ in refs] == [str(i + 1) for i in range(len(refs))]
    texts = [t for _, t in refs]
    assert len(set(texts)) == len(texts) < len(sources)
    ppf = [t for t in texts if t.startswith("particles per frame; range: Malvern NanoSight")]
    assert ppf == ["particles per frame; range: Malvern NanoSight NTA 3.x guidance: 20-100 particles per frame "
                   "(from nta/S1/S1-ExperimentSummary.csv, nta/S2/S2-ExperimentSummary.csv)"]
    for src in sources:  # every source's rule is listed
        assert any(src.split(": ", 1)[-1] in t or src in t for t in texts), src


def test_provenance_is_a_readable_table_with_the_command(tmp_path):
    from exoimage.cli import main

    root = tmp_path / "exp"
    shutil.copytree(SAMPLES / "nta", root / "nta")
    (root / "experiment.toml").write_text('[samples.S1]\nprotein_ug = 5.0\n')
    assert main(["run", str(root), "--out", str(tmp_path / "out"), "--workers", "0", "--no-progress"]) == 0
    html = (tmp_path / "out" / "report.html").read_text()
    prov = html[html.index("<section id='provenance'>"):]
    assert f"<td>command</td><td>exoimage run {root} --out {tmp_path / 'out'} --workers 0 --no-progress</td>" in prov
    assert "<td>NTA S1</td><td>protein_ug</td><td>5</td><td>µg</td>" in prov
    assert "<td>numpy version</td>" in prov and "<pre>" not in prov and "<a href='run.json'>" in prov
    assert "<td class='long'>nta/S1/S1-ExperimentSummary.csv</td>" in prov  # a long path may break anywhere


def test_verdict_says_which_marker_categories_were_not_measured():
    from exoimage.experiment.report import ReportInput, verdict_section

    t = _tables({"calnexin": SIGNAL["calnexin"]})
    t["qc"] = run_qc(t, load_rules(), reference_sample="lysate")
    t["blot_images"] = pd.DataFrame({"image": ["blots/calnexin.tif"], "sha256": [""]})  # a blot was read
    t["samples"] = pd.concat([t["samples"], pd.DataFrame({"sample": ["S9"], "label": ["S9"]})], ignore_index=True)
    html = verdict_section(ReportInput(out=Path("."), title="t", tables=t, records=[],
                                       params={"reference_sample": "lysate"}))
    assert "Measured: Western blot (calnexin)." in html
    assert ("Not measured: TEM vesicle size; NTA concentration and size; a transmembrane EV marker (CD63, CD81, "
            "CD9...); a cytosolic EV marker (TSG101, ALIX...).") in html
    assert "negative marker" not in html.split("Not measured:")[1]
    assert "Purity reference: sample <b>lysate</b>" in html
    # per sample: a sample of the experiment that is on no blot says so
    assert "<b>S9</b> <span class='muted'>(not measured: no Western blot lane)</span>" in html
    assert "<b>EV</b> <span class='muted'>" not in html
