"""Typed records through the run: cache round trip, tables, session provenance, registries, progress.

The run's data path is records -> tables -> QC rules -> report sections; these
tests check each joint against the analyses' own outputs (not against the code
under test), and that the registries (calibration sources, warning codes, QC
rules, report sections) are what the checks read.
"""

import copy
import io
import json
import pickle
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import tifffile

from exoimage.blot import BlotParams, analyze_blot_file
from exoimage.calibration import CALIBRATION_SOURCES, CalibrationSource
from exoimage.experiment import batch
from exoimage.experiment import cache as cache_mod
from exoimage.experiment import load_experiment
from exoimage.experiment import report as report_mod
from exoimage.experiment.qc import QC_RULES, QcRow, QcRule, load_rules, run_qc
from exoimage.experiment.records import BlotRecord, Provenance, TemRecord, record_fields, record_from_fields, tem_record
from exoimage.experiment.run import run_experiment, write_session_report
from exoimage.experiment.tables import assemble, experiment_tables, sample_names_of
from exoimage.io import read_image, sha256_file, write_calibrated_tiff
from exoimage.simulate.blot import simulate_blot
from exoimage.simulate.tem import SCENARIOS, TemScene, simulate_tem
from exoimage.tem import VESICLE_COLUMNS, TemParams, analyze_tem_file, analyze_tem_image
from exoimage.warning_codes import WARNING_CODES, CodedWarning, coded

TEM = ["tem/A/f0.tif", "tem/B/f0.tif"]
PX = 2.0


def _tem(path, seed, size=192):
    img, _ = simulate_tem(TemScene(shape=(size, size), pixel_size_nm=PX,
                                   **{**SCENARIOS["clean"], "coverage": 0.2, "median_diameter_nm": 60.0}), seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_calibrated_tiff(path, img, PX)


@pytest.fixture(scope="module")
def exp_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("records") / "exp"
    for i, rel in enumerate(TEM):
        _tem(root / rel, seed=i + 1)
    (root / "blots").mkdir(parents=True)
    data = simulate_blot(n_lanes=5, seed=3).data
    tifffile.imwrite(root / "blots" / "CD63.tif", data)
    # the same blot as an 8-bit export: its warning comes back from the cache with its code
    tifffile.imwrite(root / "blots" / "CD9.tif", (data.astype(float) / data.max() * 255).astype(np.uint8))
    for m in ("CD63", "CD9"):
        pd.DataFrame({"lane": [1, 2, 3, 4, 5], "sample": ["ladder", "A", "A", "B", "B"],
                      "loaded": [0, 1, 2, 4, 8]}).to_csv(root / "blots" / f"{m}.lanes.csv", index=False)
    kda = "ladder_lane = 1\nladder_kda = [250, 150, 100, 75, 50, 37, 25, 20, 15, 10]\n"
    (root / "experiment.toml").write_text(f"[samples.A]\nlabel = 'a'\n[blots.CD63]\n{kda}[blots.CD9]\n{kda}")
    return root


@pytest.fixture(scope="module")
def run(exp_root, tmp_path_factory):
    """A fresh in-process run and its records as the cache gives them back."""
    out = tmp_path_factory.mktemp("out") / "out"
    exp = load_experiment(exp_root)
    s = run_experiment(exp, out, workers=0, progress=False)
    assert s["n_failed"] == 0 and s["n_images"] == 4
    recs = {}
    for t in exp.tasks:
        rec, status = cache_mod.load_cache_entry(out, cache_mod._binding(t, exp, sha256_file(t.path)))
        assert status == "done", status
        recs[t.rel] = rec
    return exp, out, s, recs


def _assert_same_record(a, b):
    assert type(a) is type(b)
    fa, ta = record_fields(a)
    fb, tb = record_fields(b)
    assert json.dumps(cache_mod._enc(fa)) == json.dumps(cache_mod._enc(fb))  # same values and the same types
    assert list(ta) == list(tb)
    for k in ta:
        if ta[k] is None:
            assert tb[k] is None
        else:
            pd.testing.assert_frame_equal(ta[k], tb[k], check_exact=True)
            assert ta[k].attrs == tb[k].attrs


# ---------------------------------------------------------------------------
# the cache


def test_record_round_trip_through_the_cache(run):
    exp, out, _, recs = run
    for t in exp.tasks:
        rec = recs[t.rel]
        assert isinstance(rec, TemRecord if t.kind == "tem" else BlotRecord) and rec.ok
        assert rec.sha256 == sha256_file(t.path) and rec.provenance.input_path == str(t.path)
        assert rec.provenance.params == json.loads(json.dumps(cache_mod._params_for(t, exp), default=str))
        manifest, blobs = cache_mod.encode_entry(rec, cache_mod._binding(t, exp, rec.sha256))
        _assert_same_record(cache_mod.decode_entry(json.loads(cache_mod._dumps(manifest)), blobs), rec)
    # the 8-bit blot's warning kept its code through the cache
    w = recs["blots/CD9.tif"].warnings
    assert [x.code for x in w] == ["eight_bit"] and isinstance(w[0], CodedWarning)
    assert str(w[0]) == recs["blots/CD9.tif"].image_row["warnings"]


def test_synthetic_record_with_awkward_values_round_trips():
    bands = pd.DataFrame({"image": ["b.tif"] * 3, "volume": [1.5, np.nan, 3.0],
                          "flag": pd.Series([True, pd.NA, "x"], dtype=object)})
    rec = BlotRecord(rel="b.tif", image_row={"image": "b.tif", "status": "ok", "error": "", "n": np.int64(3)},
                     marker="CD9", bands=bands, linear_range=[None, {"r2": np.float64(0.99)}],
                     warnings=(coded("jpeg", "lossy"), CodedWarning("unclassified", "plain")),
                     provenance=Provenance(input_path="/x/b.tif", sha256="ab" * 32, params={"p": (1, 2)},
                                           edits=("moved lane 2",)))
    manifest, blobs = cache_mod.encode_entry(rec, {"key": "k"})
    back = cache_mod.decode_entry(json.loads(cache_mod._dumps(manifest)), blobs)
    _assert_same_record(back, rec)
    assert back.provenance.edits == ("moved lane 2",) and back.linear_range[1]["r2"] == np.float64(0.99)


@pytest.mark.parametrize("edit", ["extra field", "missing provenance", "table of another kind", "unknown kind",
                                  "warning not a pair"])
def test_a_record_of_the_wrong_shape_is_refused(edit):
    rec = tem_record("a.tif", "A", {"image": "a.tif", "status": "ok"}, pd.DataFrame({"image": ["a.tif"]}))
    fields, tables = record_fields(rec)
    if edit == "extra field":
        fields["extra"] = 1
    elif edit == "missing provenance":
        del fields["provenance"]
    elif edit == "table of another kind":
        tables["bands"] = pd.DataFrame()
    elif edit == "unknown kind":
        fields["kind"] = "sem"
    else:
        fields["warnings"] = [["jpeg"]]
    with pytest.raises(ValueError):
        record_from_fields(fields, tables)


def test_an_edited_manifest_with_a_new_field_is_recomputed(run, tmp_path):
    import shutil

    exp, out, _, recs = run
    out2 = tmp_path / "out"
    shutil.copytree(out, out2)
    t = exp.tem[0]
    binding = cache_mod._binding(t, exp, sha256_file(t.path))
    m = out2 / ".cache" / f"{binding['key']}.json"
    doc = json.loads(m.read_text())
    doc["entry"]["record"]["note"] = "added by hand"
    doc["entry_sha256"] = __import__("hashlib").sha256(cache_mod._dumps(doc["entry"])).hexdigest()  # re-signed
    m.write_bytes(cache_mod._dumps(doc))
    rec, why = cache_mod.load_cache_entry(out2, binding)
    assert rec is None and why.startswith("rejected") and "note" in why


# ---------------------------------------------------------------------------
# tables from records


def test_tables_from_records_equal_the_analyses(run):
    exp, out, s, recs = run
    records = [recs[t.rel] for t in sorted(exp.tasks, key=lambda t: t.rel)]
    tables = assemble(records, sample_names=exp.sample_names, sample_meta=exp.samples, rules=load_rules(),
                      nta=None)
    for name, csv in (("vesicles", "vesicles"), ("tem_images", "images"), ("bands", "bands"), ("lanes", "lanes"),
                      ("normalized", "normalized"), ("samples", "samples"), ("qc", "qc")):
        # the run's own tables (from freshly computed records) equal those of the cache's records
        pd.testing.assert_frame_equal(tables[name].reset_index(drop=True), s["tables"][name].reset_index(drop=True),
                                      check_exact=True, obj=name)
        assert (out / f"{csv}.csv").is_file()
    params = TemParams(**exp.tem_params)
    for t in exp.tem:  # each image's rows are exactly what the TEM pipeline gives for that file
        res = analyze_tem_file(t.path, params=params, name=t.rel)
        want = res.vesicles.copy()
        want.insert(1, "sample", t.sample)
        got = tables["vesicles"][tables["vesicles"]["image"] == t.rel].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want.reset_index(drop=True), check_exact=True)
        row = tables["tem_images"].set_index("image").loc[t.rel]
        for k in ("n_vesicles", "d50_nm", "pixel_size_nm", "pixel_size_source"):
            assert row[k] == res.image_row[k], k
        assert row["sha256"] == sha256_file(t.path)
        sized = want.loc[~want["touches_border"].astype(bool), "diameter_nm"].to_numpy(float)
        srow = tables["samples"].set_index("sample").loc[t.sample]
        assert srow["tem_n"] == sized.size and srow["tem_d50_nm"] == round(float(np.median(sized)), 4)
    spec = exp.blots[0].blot
    from exoimage.experiment.batch import _blot_params

    b = analyze_blot_file(exp.blots[0].path, _blot_params(spec.options), name=exp.blots[0].rel)
    got = tables["bands"][tables["bands"]["image"] == exp.blots[0].rel].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, b.bands.reset_index(drop=True), check_exact=True)
    assert set(tables["warnings"]["code"]) == {"eight_bit"}


# ---------------------------------------------------------------------------
# the session report (napari) goes through the same path, with its real provenance


def test_session_report_provenance_has_the_input_sha256(tmp_path):
    path = tmp_path / "field.tif"
    _tem(path, seed=5)
    digest = sha256_file(path)
    img = read_image(path)
    res = analyze_tem_image(img, name="field.tif")
    edited = res.vesicles[VESICLE_COLUMNS].iloc[1:]  # as if one vesicle had been deleted by hand
    rec = tem_record("field.tif", "S", res.image_row, edited, warnings=res.warnings, remeasured=True,
                     provenance=Provenance(input_path=str(path), sha256=digest, params={"tem": {"x": 1}},
                                           edits=("deleted vesicle 1",)))
    rep = write_session_report(tmp_path / "rep", [rec], name="napari: field.tif")
    images = pd.read_csv(tmp_path / "rep" / "images.csv")
    assert images["sha256"].tolist() == [digest]
    assert images["n_vesicles"].iloc[0] == int((~edited["touches_border"].astype(bool)).sum())  # re-summarised
    html = rep.read_text()
    assert digest in html and "deleted vesicle 1" in html and str(path) in html
    qc = pd.read_csv(tmp_path / "rep" / "qc.csv").set_index("check")
    assert qc.loc["calibration", "status"] == "PASS" and "from imagej" in qc.loc["calibration", "reason"]


# ---------------------------------------------------------------------------
# registries: calibration sources, warning codes, QC rules, report sections


def _tem_tables(run, source: str):
    exp, _, _, recs = run
    rec = recs[TEM[0]]
    rec = replace(rec, image_row={**rec.image_row, "pixel_size_source": source})
    t = experiment_tables([rec], sample_names=sample_names_of([rec]))
    return t


def _calibration_row(run, source):
    q = run_qc(_tem_tables(run, source), load_rules())
    return q[q["check"] == "calibration"].iloc[0]


def test_qc_reads_trust_from_the_calibration_registry(run, monkeypatch):
    r = _calibration_row(run, "my_reader")
    assert r["status"] == "FAIL" and "not a registered calibration source" in r["reason"]
    monkeypatch.setitem(CALIBRATION_SOURCES, "my_reader", CalibrationSource("my_reader", True, "my reader's header"))
    r = _calibration_row(run, "my_reader")
    assert r["status"] == "PASS" and r["reason"] == "2 nm/px from my_reader"
    monkeypatch.setitem(CALIBRATION_SOURCES, "my_reader", CalibrationSource("my_reader", False, "guessed by my reader"))
    r = _calibration_row(run, "my_reader")
    assert r["status"] == load_rules()["calibration"]["scale_bar"] == "WARN"
    assert r["reason"] == "2 nm/px guessed by my reader"
    monkeypatch.setitem(CALIBRATION_SOURCES, "imagej", CalibrationSource("imagej", False, "distrusted here"))
    assert _calibration_row(run, "imagej")["status"] == "WARN"  # qc.py holds no list of its own


def _blot_qc(run, warnings, text):
    exp, _, _, recs = run
    rec = recs["blots/CD63.tif"]
    rec = replace(rec, warnings=tuple(warnings), image_row={**rec.image_row, "warnings": text})
    q = run_qc(experiment_tables([rec], sample_names=[]), load_rules())
    return q[q["check"] == "raw linear data"].iloc[0]


def test_lossy_data_check_matches_codes_not_text(run):
    r = _blot_qc(run, [], "")
    assert r["status"] == "PASS" and r["reason"] == "16-bit raw data"
    # a lossy code fires whatever the wording
    reworded = "exported with eight bits per pixel"
    r = _blot_qc(run, [coded("eight_bit", reworded)], reworded)
    assert r["status"] == "WARN" and r["reason"] == reworded
    # text that merely contains the old keywords, without a lossy code, does not
    words = "8-bit JPEG RGB contrast mentioned in passing"
    assert _blot_qc(run, [CodedWarning("unclassified", words)], words)["status"] == "PASS"
    # display levels clipped at both ends is contrast adjustment (the old text match missed it)
    r = _blot_qc(run, [coded("display_clipped", "2% at 0 and 2% at 65535")], "2% at 0 and 2% at 65535")
    assert r["status"] == "WARN"
    # and from the real analysis: the 8-bit export
    exp, _, s, _ = run
    qc = s["tables"]["qc"]
    row = qc[(qc["item"] == "blots/CD9.tif") & (qc["check"] == "raw linear data")].iloc[0]
    assert row["status"] == "WARN" and row["reason"].startswith("8-bit image")


def test_every_warning_of_the_library_has_a_registered_code(tmp_path):
    data = simulate_blot(n_lanes=4, seed=1).data
    p = tmp_path / "b.png"
    import cv2

    rgb = np.dstack([(data // 256).astype(np.uint8)] * 2 + [(data // 512).astype(np.uint8)])
    cv2.imwrite(str(p), rgb)
    res = analyze_blot_file(p, BlotParams())
    codes = [w.code for w in res.result.warnings]
    assert {"rgb_converted", "eight_bit"} <= set(codes) and all(c in WARNING_CODES for c in codes)
    with pytest.raises(KeyError):
        coded("no_such_code", "text")


def test_coded_warning_survives_pickle_and_copy():
    w = coded("jpeg", "JPEG is lossy")
    for back in (pickle.loads(pickle.dumps(w)), copy.deepcopy(w), copy.copy(w)):
        assert isinstance(back, CodedWarning) and back.code == "jpeg" and back == "JPEG is lossy"
    assert "; ".join([w, "x"]) == "JPEG is lossy; x"  # still a str everywhere


def test_a_new_qc_rule_is_one_function(run, monkeypatch):
    def fn(q):
        return [QcRow("sample", s, "my check", "WARN", "because", "me") for s in q.tables["samples"]["sample"]]

    monkeypatch.setitem(QC_RULES, "my_check", QcRule("my_check", fn))
    t = _tem_tables(run, "imagej")
    q = run_qc(t, load_rules())
    assert q.iloc[-1].tolist() == ["sample", "A", "my check", "WARN", "because", "me"]
    monkeypatch.setitem(QC_RULES, "my_check", QcRule("my_check", lambda q: [QcRow("x", "y", "z", "OK?", "", "")]))
    with pytest.raises(ValueError, match="my_check"):
        run_qc(t, load_rules())


def test_a_new_report_section_is_one_function(run, tmp_path, monkeypatch):
    exp, out, s, recs = run

    def my_section(r):
        return f"<h2>My section</h2><p>{len(r.tables['vesicles'])} vesicles</p>"

    monkeypatch.setattr(report_mod, "SECTIONS", report_mod.SECTIONS[:-1] + [my_section, report_mod.SECTIONS[-1]])
    import shutil

    shutil.copytree(out / "overlays", tmp_path / "overlays")
    path = report_mod.write_report(tmp_path, s["tables"], list(recs.values()), title="t")
    html = path.read_text()
    n = len(s["tables"]["vesicles"])
    assert f"<h2>My section</h2><p>{n} vesicles</p>" in html
    assert html.index("My section") > html.index("Western blots") and html.rstrip().endswith("</html>")


# ---------------------------------------------------------------------------
# progress


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_log_file_is_plain_lines():
    buf = io.StringIO()
    p = batch.Progress(stream=buf, log_interval_s=0.0)
    p.start(3, reused=2)
    for ok in (True, False, True):
        p.update(ok)
    p.close()
    lines = buf.getvalue().splitlines()
    assert "\r" not in buf.getvalue() and len(lines) == 4
    assert lines[-1].startswith("exoimage run: done 100% 3/3 [") and lines[-1].endswith("1 failed, 2 reused")
    assert "img/s" in lines[-1] or "s/img" in lines[-1]


def test_progress_on_a_terminal_is_a_tqdm_bar_and_can_be_off():
    buf = _Tty()
    p = batch.Progress(stream=buf)
    p.start(2)
    p.update(True)
    p.update(False)
    p.close()
    out = buf.getvalue()
    assert "\r" in out and "2/2" in out and "1 failed" in out and "exoimage run: done" not in out
    off = _Tty()
    p = batch.Progress(stream=off, enabled=False)
    p.start(2)
    p.update(True)
    p.close()
    assert off.getvalue() == ""
    nothing = io.StringIO()
    p = batch.Progress(stream=nothing)
    p.start(0, reused=5)  # everything reused: no line at all
    p.close()
    assert nothing.getvalue() == ""
