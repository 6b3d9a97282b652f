"""NTA readers, recomputed statistics, sample summary and QC checks on simulated exports.

The real exports (../shared/data/nta) are checked in tests/test_nta_real.py.
Fixtures in tests/data/nta were written by tests/data/nta/make_fixtures.py
(ZetaView in the real 8.05 SP3 multi-key header layout); other variants and
hostile files are generated here at test time.

Tolerances for recomputed-vs-instrument statistics: the instrument prints
sizes to 0.1 nm, so a recomputation that follows the same definition can differ
by up to 0.05 nm from rounding alone; we allow 0.06 nm.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from exoimage.io import ImageReadError
from exoimage.nta import (DEFAULT_NTA_RULES, NtaReadError, apply_dilution, nta_qc_checks, nta_sample_summary,
                          percentiles_from_bins, read_nanosight_summary, read_nta, read_zetaview_txt, size_stats,
                          size_stats_from_bins)
from exoimage.nta.qc import dilution_series
from exoimage.nta.zetaview import parse_header
from exoimage.simulate.nta import zetaview_txt

DATA = Path(__file__).resolve().parent / "data" / "nta"
ZV_DOT = DATA / "zetaview_EV-HEK_1000x_dot.txt"
ZV_COMMA = DATA / "zetaview_EV-HEK_1000x_comma.txt"
ZV_500 = DATA / "zetaview_EV-HEK_500x_dot.txt"
NS_SYN = DATA / "nanosight_synthetic_ExperimentSummary.csv"
ROUNDING_NM = 0.06
STATS = ["mean_nm", "mode_nm", "sd_nm", "d10_nm", "d50_nm", "d90_nm"]


@pytest.fixture(scope="module")
def zv():
    return read_nta(ZV_DOT)


@pytest.fixture(scope="module")
def zv500():
    return read_nta(ZV_500)


@pytest.fixture(scope="module")
def syn():
    return read_nta(NS_SYN)


def _status(checks, name):
    (c,) = [c for c in checks if c["check"] == name]
    assert set(c) == {"check", "status", "reason", "source"}
    return c["status"], c["reason"]


# ----------------------------------------------------------------------------- NanoSight, synthetic 3.3 layout

def test_synthetic_nanosight_layout_and_stats(syn):
    """Rows in a different order than 3.2/3.4 (concentration before dilution); analytic log-normal truth.

    Tolerance 0.1 nm: the header holds exact log-normal statistics and the bins
    its exact per-bin probabilities written as whole particles/ml; the 1-nm
    binning moves mean and SD by < 0.01 nm and the mode parabola by < 0.1 nm.
    """
    assert syn.sample == "EV µ-fraction" and syn.metadata["Operator Name"] == "Zoë"   # cp1252 text
    assert (syn.videos["dilution_factor"] == 500).all()
    got = size_stats(syn.bins).set_index("video")
    ref = syn.videos.set_index("video")
    for col in STATS:
        np.testing.assert_allclose(got[col], ref[col], atol=0.1, err_msg=col)
    assert list(syn.warnings["value"]) == ["Too few"]


def test_synthetic_particle_files(syn):
    assert set(syn.particles["video"]) == {"syn_00", "syn_01", "syn_02"}
    assert {"particle_id", "size_nm", "included_in_distribution"} <= set(syn.particles.columns)
    assert syn.particles["included_in_distribution"].dtype == bool
    assert syn.tracks["frame_number"].tolist() == list(range(12))
    assert read_nanosight_summary(NS_SYN, with_particle_files=False).particles is None


# ----------------------------------------------------------------------------- ZetaView

#: one header line of the real ZetaView 8.05.16 SP3 export (../shared/data/nta/zetaview), verbatim
REAL_MULTI_KEY_LINE = ("Number of Traces:\t2235\t(at 0,100000)\tAverage Number of Particles:\t228,500000"
                       "\tDilution::\t5000,000000")


def test_parse_header_multi_key_lines():
    meta = parse_header([REAL_MULTI_KEY_LINE, "Original File:\tC:\\a\\b_size_488.avi\tSection:\t0,1 [0]",
                         "Time:\t10:31:11", "pH:\t7,000000\tentered", "Sample Info 3:", "Dilution:: 20",
                         "actual Microscope:\t-118322\t(Pos\t0,100001)", "Size Distribution"])
    assert meta["Number of Traces"] == "2235 (at 0,100000)"
    assert meta["Average Number of Particles"] == "228,500000" and meta["Dilution"] == "5000,000000"
    assert meta["Original File"] == "C:\\a\\b_size_488.avi" and meta["Section"] == "0,1 [0]"
    assert meta["Time"] == "10:31:11" and meta["pH"] == "7,000000 entered" and meta["Sample Info 3"] == ""
    assert meta["actual Microscope"] == "-118322 (Pos 0,100001)"
    assert "Size Distribution" not in meta


def test_zetaview_header_and_tables(zv):
    assert zv.instrument == "zetaview" and zv.sample == "EV-HEK" and zv.software_version == "ZetaView 8.05.16 SP3"
    v = zv.videos.iloc[0]
    assert v["video"] == "20240312_0001_EV-HEK_1000x_size_488"
    assert v["temperature_C"] == 23.51 and v["viscosity_cP"] == 0.92 and v["ph"] == 7.0
    assert v["particles_per_frame"] == 155.0 and v["frame_rate_fps"] == 30.0 and v["completed_tracks"] == 1850
    assert v["dilution_factor"] == 1000 and v["particles_counted"] == 1850
    assert zv.metadata["Camera Trigger Duration µs"] == "Shutter Duration"          # Latin-1
    assert set(zv.bins["scale"]) == {"linear", "log"} and set(zv.bins["percentile_convention"]) == {"bin_centres"}
    lin = zv.bins[zv.bins["scale"] == "linear"]
    assert len(lin) == 200 and lin["bin_width_nm"].eq(5.0).all() and (zv.bins["bin_nm"] > 0).all()
    assert len(zv.bins[zv.bins["scale"] == "log"]) == 21


def test_zetaview_decimal_comma_equals_dot(zv):
    comma = read_nta(ZV_COMMA)
    pd.testing.assert_frame_equal(comma.videos, zv.videos)
    pd.testing.assert_frame_equal(comma.bins, zv.bins)


@pytest.mark.parametrize("layout,encoding,newline,comma", [
    ("multi_key", "utf-8", "\n", True), ("multi_key", "latin-1", "\r\n", False),
    ("one_key_per_line", "latin-1", "\r\n", True), ("one_key_per_line", "utf-8", "\n", False)])
def test_zetaview_layouts_encodings_newlines(tmp_path, layout, encoding, newline, comma):
    data, t = zetaview_txt("L", dilution=200.0, in_cell_per_ml=4e7, n_traces=1200, seed=7, comma=comma,
                           layout=layout, encoding=encoding, newline=newline)
    f = tmp_path / "l.txt"
    f.write_bytes(data)
    r = read_nta(f)
    v = r.videos.iloc[0]
    assert v["dilution_factor"] == 200 and v["particles_per_frame"] == pytest.approx(t.particles_per_frame[0])
    assert v["concentration_per_ml"] == pytest.approx(t.concentration_per_ml[0], rel=1e-3)
    assert v["completed_tracks"] == len(t.extra["sizes"])
    assert v["d50_nm"] == pytest.approx(t.extra["printed_d50_nm"], abs=1e-4)
    got = size_stats(r.bins).iloc[0]
    assert got["d50_nm"] == pytest.approx(v["d50_nm"], abs=ROUNDING_NM)
    assert got["volume_d50_nm"] == pytest.approx(t.extra["printed_volume_d50_nm"], abs=ROUNDING_NM)


def test_zetaview_dilution_applied_once(zv):
    v = zv.videos.iloc[0]
    assert v["dilution_factor"] == 1000 and v["dilution_applied_by"] == "exoimage"
    lin = zv.bins[zv.bins["scale"] == "linear"]
    assert lin["concentration_measured_per_ml"].sum() == pytest.approx(3.1e7, rel=1e-3)
    np.testing.assert_allclose(lin["concentration_per_ml"], 1000 * lin["concentration_measured_per_ml"])
    assert v["concentration_per_ml"] == pytest.approx(3.1e10, rel=1e-3)
    assert apply_dilution(zv, 1000) is zv
    with pytest.raises(ValueError):
        read_nta(ZV_DOT, dilution_factor=10)


def test_zetaview_d50_by_the_instruments_rule_and_the_raw_median(zv, zv500):
    """The printed D50 (instrument's rule, between bin centres) is reproduced to print precision;
    the raw sizes' median lies within one 5-nm bin of it."""
    for res, seed in ((zv, 1), (zv500, 2)):
        got = size_stats(res.bins).iloc[0]
        printed = res.videos.iloc[0]["d50_nm"]
        assert got["d50_nm"] == pytest.approx(printed, abs=ROUNDING_NM)
        raw = float(np.median(np.random.default_rng(seed).lognormal(np.log(115.0), 0.33, 3700 if seed == 2 else 1850)))
        assert abs(got["d50_nm"] - raw) < 5.0


# ----------------------------------------------------------------------------- bad files

def _bad(tmp_path, name, content: bytes):
    f = tmp_path / name
    f.write_bytes(content)
    return f


def _raises_one_line(f, match):
    with pytest.raises(NtaReadError) as err:
        read_nta(f)
    msg = str(err.value)
    assert isinstance(err.value, ImageReadError)
    assert "\n" not in msg and f.name in msg and err.value.path == str(f)
    assert match in msg, msg


def test_bad_files(tmp_path):
    ns = NS_SYN.read_bytes()
    zvb = ZV_DOT.read_bytes()
    cases = [
        ("missing.csv", None, "file not found"),
        ("empty.csv", b"", "empty"),
        ("image.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("zetasizer.csv", "Sample Name,Z-Ave (d.nm),PdI\r\nEV1,121.3,0.21\r\n".encode(), "not a recognised NTA"),
        ("no_size_ExperimentSummary.csv", ns[: ns.index(b"[Size Data]")], "missing section [Size Data]"),
        ("no_results_ExperimentSummary.csv", ns.replace(b"[Results]", b"[Resultz]"), "missing section [Results]"),
        ("cut_bins_ExperimentSummary.csv", ns[: ns.index(b"\r\n300.5,")], "percentile table"),
        ("short_row_ExperimentSummary.csv",
         ns.replace(b"\r\n300.5,", b"\r\n300.5\r\n301.5,", 1), "truncated bin table"),
        ("edited_bins_ExperimentSummary.csv", ns.replace(b"\r\n130.5,", b"\r\n130.5,9", 1), "sums to"),
        ("cut_pct_ExperimentSummary.csv", ns[: ns.index(b"\r\n60,")], "stops at 59"),
        ("cut.txt", zvb[: zvb.index(b"1.025E+2")], "no logarithmic bins"),
        ("short.txt", zvb.replace(b"1.025E+2\t", b"1.025E+2\r\n", 1), "truncated size table"),
        # issue 10: a negative concentration or text where numbers belong is an error, never a number
        ("neg_conc_ExperimentSummary.csv", ns.replace(b"(Particles / ml),", b"(Particles / ml),-", 1),
         "[Results] concentration of video syn_00: negative value"),
        ("text_conc_ExperimentSummary.csv", ns.replace(b"(Particles / ml),1.00e+10", b"(Particles / ml),lots", 1),
         "[Results] concentration of video syn_00: 'lots' where a number belongs"),
        ("blank_conc_ExperimentSummary.csv", ns.replace(b"(Particles / ml),1.00e+10", b"(Particles / ml),", 1),
         "empty where a number belongs"),
        ("neg_bin_ExperimentSummary.csv", ns.replace(b"\r\n130.5,", b"\r\n130.5,-", 1), "negative value"),
        ("text_bin_ExperimentSummary.csv", ns.replace(b"\r\n130.5,", b"\r\n130.5,x", 1),
         "bin '130.5', video column 1"),
        ("inf_bin_ExperimentSummary.csv", ns.replace(b"\r\n130.5,", b"\r\n130.5,inf", 1), "where a number belongs"),
        ("text_dil_ExperimentSummary.csv", ns.replace(b"this factor),5.00e+02", b"this factor),five hundred", 1),
         "dilution factor of video syn_00: 'five hundred'"),
        ("zero_dil_ExperimentSummary.csv", ns.replace(b"this factor),5.00e+02", b"this factor),0", 1),
         "dilution factor 0"),
        ("text_cell.txt", zvb.replace(b"1.025E+2\t", b"1.025E+2\tabc\t", 1), "row '1.025E+2' number: 'abc'"),
        ("neg_cell.txt", zvb.replace(b"1.025E+2\t", b"1.025E+2\t-", 1), "negative value"),
        ("text_dil.txt", zvb.replace(b"Dilution::\t1000.000000", b"Dilution::\tunknown"),
         "header Dilution::: 'unknown' where a number belongs"),
        ("zero_dil.txt", zvb.replace(b"Dilution::\t1000.000000", b"Dilution::\t0.000000"), "not a positive"),
        ("text_ppf.txt", zvb.replace(b"Particles:\t155.000000", b"Particles:\tmany"), "Average Number of Particles"),
        ("lines_ExperimentSummary.csv", b"NTA Experiment Summary File\r\n" + b"\r\n" * 100_001, "line limit"),
    ]
    for name, content, match in cases:
        f = tmp_path / name if content is None else _bad(tmp_path, name, content)
        _raises_one_line(f, match)
    with pytest.raises(NtaReadError, match="not a ZetaView"):
        read_zetaview_txt(NS_SYN)
    with pytest.raises(NtaReadError, match="not a NanoSight"):
        read_nanosight_summary(ZV_DOT)


def test_files_over_the_size_limit_are_refused_before_reading(tmp_path):
    """issue 10: a 200 MB summary went to 4.2 GB before its error; now refused from its size on disk."""
    from exoimage.nta._common import MAX_NTA_TEXT_BYTES

    f = tmp_path / "big_ExperimentSummary.csv"
    with open(f, "wb") as fh:                       # sparse: no disk space, no time
        fh.write(b"NTA Experiment Summary File,\r\n")
        fh.truncate(200 * 2 ** 20)
    _raises_one_line(f, f"over the {MAX_NTA_TEXT_BYTES / 2 ** 20:g} MiB limit")
    d = tmp_path / "folder.csv"
    d.mkdir()
    _raises_one_line(d, "is a folder")


def test_a_fifo_is_refused_without_blocking(tmp_path):
    import os

    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this system")
    f = tmp_path / "pipe_ExperimentSummary.csv"
    os.mkfifo(f)
    _raises_one_line(f, "not a regular file")


def test_unreadable_particle_table_is_left_out_and_said(tmp_path, monkeypatch):
    import shutil

    from exoimage.nta import nanosight

    for g in DATA.glob("*.csv"):
        shutil.copy(g, tmp_path / g.name)
    monkeypatch.setattr(nanosight, "MAX_NTA_PARTICLE_BYTES", 600)
    r = read_nta(tmp_path / NS_SYN.name)
    assert r.particles is None or set(r.particles["video"]) < {"syn_00", "syn_01", "syn_02"}
    assert any("_ParticleData.csv not read" in n and "limit" in n for n in r.notes)
    pd.testing.assert_frame_equal(r.videos, read_nta(NS_SYN).videos)       # the numbers do not change
    assert read_nta(NS_SYN, with_particle_files=False).particles is None


# ----------------------------------------------------------------------------- stats helpers

def test_size_stats_from_bins_known_distribution():
    x = np.arange(0.5, 300, 1.0)
    c = np.exp(-0.5 * ((x - 100.3) / 12.0) ** 2)
    s = size_stats_from_bins(x, c, 1.0)
    assert s["mean_nm"] == pytest.approx(100.3, abs=1e-6) and s["sd_nm"] == pytest.approx(12.0, abs=0.01)
    assert s["mode_nm"] == pytest.approx(100.3, abs=0.05) and s["d50_nm"] == pytest.approx(100.3, abs=0.01)
    assert s["d90_nm"] - s["d10_nm"] == pytest.approx(2 * 1.2816 * 12.0, abs=0.05)
    assert np.isnan(size_stats_from_bins(x, 0 * c)["d50_nm"])


def test_percentile_conventions_on_a_known_table():
    x = np.array([2.5, 7.5, 12.5, 17.5])              # 5-nm bins
    n = np.array([0.0, 2.0, 2.0, 0.0])
    # between edges: the cumulative is 0 at 5 nm, 0.5 at 10 nm, 1 at 15 nm
    assert percentiles_from_bins(x, n, [0, 0.25, 0.5, 1.0], 5.0, "bin_edges").tolist() == [5.0, 7.5, 10.0, 15.0]
    # between centres: 0.5 at 7.5 nm, 1 at 12.5 nm; below the first centre with particles: that centre
    assert percentiles_from_bins(x, n, [0.25, 0.5, 0.75, 1.0], 5.0, "bin_centres").tolist() == [7.5, 7.5, 10.0, 12.5]
    # NTA 3.2: between edges, one bin lower
    assert percentiles_from_bins(x, n, [0.5], 5.0, "bin_edges_minus_one_bin").tolist() == [5.0]
    with pytest.raises(ValueError, match="unknown percentile convention"):
        percentiles_from_bins(x, n, 0.5, 5.0, "median")


# ----------------------------------------------------------------------------- QC, each check both ways

def test_qc_videos(syn, zv):
    assert _status(nta_qc_checks(syn), "nta_videos")[0] == "PASS"          # 3 videos
    assert _status(nta_qc_checks(zv), "nta_videos")[0] == "WARN"           # 1 measurement


def test_qc_concentration_cv(syn):
    status, reason = _status(nta_qc_checks(syn), "nta_concentration_cv")
    assert status == "PASS" and "5.0 %" in reason                          # 1.0e10, 1.05e10, 0.95e10
    videos = syn.videos.copy()
    videos.loc[2, "concentration_per_ml"] *= 1.5
    assert _status(nta_qc_checks(replace(syn, videos=videos)), "nta_concentration_cv")[0] == "WARN"
    assert _status(nta_qc_checks(syn, {"max_concentration_cv_percent": 4}), "nta_concentration_cv")[0] == "WARN"


def test_qc_particles_per_frame(zv, zv500, syn):
    assert _status(nta_qc_checks(zv), "nta_particles_per_frame")[0] == "PASS"         # 155
    status, reason = _status(nta_qc_checks(zv500), "nta_particles_per_frame")
    assert status == "WARN" and "315.0" in reason
    assert _status(nta_qc_checks(syn), "nta_particles_per_frame")[0] == "PASS"        # 76-84 on NanoSight
    low = syn.videos.assign(particles_per_frame=[80.0, 12.0, 80.0])
    assert _status(nta_qc_checks(replace(syn, videos=low)), "nta_particles_per_frame")[0] == "WARN"


def test_qc_instrument_warnings(zv, zv500, syn):
    assert _status(nta_qc_checks(zv), "nta_instrument_warnings")[0] == "PASS"
    status, reason = _status(nta_qc_checks(zv500), "nta_instrument_warnings")
    assert status == "WARN" and "Too high" in reason
    assert "Too few" in _status(nta_qc_checks(syn), "nta_instrument_warnings")[1]


def test_qc_dilution_recorded(zv, tmp_path):
    assert _status(nta_qc_checks(zv), "nta_dilution_recorded")[0] == "PASS"
    # the fixture without its Dilution:: pair (same measurement: make_fixtures.py's parameters)
    data, _ = zetaview_txt("EV-HEK_1000x", dilution=None, in_cell_per_ml=3.1e7, n_traces=1850, seed=1, comma=False)
    assert b"Dilution::" not in data
    bare = read_nta(_bad(tmp_path, "nodil.txt", data))
    assert bare.videos["dilution_applied_by"].iloc[0] == "none"
    assert _status(nta_qc_checks(bare), "nta_dilution_recorded")[0] == "WARN"
    assert nta_sample_summary(bare)["concentration_dilutions"] == "not recorded"
    given = read_nta(tmp_path / "nodil.txt", dilution_factor=1000)
    assert _status(nta_qc_checks(given), "nta_dilution_recorded")[0] == "PASS"
    pd.testing.assert_series_equal(given.bins["concentration_per_ml"], read_nta(ZV_DOT).bins["concentration_per_ml"])


def test_qc_dilution_linearity(zv, zv500, tmp_path):
    status, reason = _status(nta_qc_checks([zv, zv500]), "nta_dilution_linearity")
    assert status == "PASS" and "1:500 -> 3.15e+10/ml" in reason and "1:1000 -> 3.1e+10/ml" in reason
    assert "all dilutions (1:500, 1:1000) agree" in reason
    # the 1:500 measurement labelled 1:250 no longer scales: corrected values differ twofold
    wrong = read_nta(_bad(tmp_path, "x.txt", ZV_500.read_bytes().replace(b"Dilution::\t500.000000",
                                                                         b"Dilution::\t250.000000")))
    status, reason = _status(nta_qc_checks([zv, wrong]), "nta_dilution_linearity")
    assert status == "FAIL" and "spread 96.8 %" in reason
    # 1:1000 is inside the ZetaView particles-per-frame range (155), 1:250 is not (315): 1:1000 is reported
    assert "1:1000, the only dilution inside the particles-per-frame range" in reason
    s = nta_sample_summary([zv, wrong])
    assert s["concentration_dilutions"] == "1:1000"
    assert s["concentration_per_ml"] == pytest.approx(zv.videos["concentration_per_ml"].iloc[0])
    assert "not applicable" in _status(nta_qc_checks(zv), "nta_dilution_linearity")[1]


def _series_videos(rows):
    return pd.DataFrame([{"video": f"v{i}", "instrument": "nanosight", "dilution_factor": d,
                          "concentration_per_ml": c, "particles_per_frame": p} for i, (d, c, p) in enumerate(rows)])


def test_dilution_series_picks_the_linear_range():
    # a real-like pair: 1:20 overloaded (117-135 particles/frame), 136 % above 1:200
    pair = dilution_series(_series_videos([(20, 2.36e10, 117), (20, 2.36e10, 135), (200, 1.0e10, 60),
                                           (200, 1.0e10, 62)]))
    assert pair["linear"] is False and pair["spread_percent"] == pytest.approx(136.0)
    assert pair["used"] == [200.0] and "only dilution inside" in pair["basis"]
    # three dilutions, two agree: the linear range is those two
    three = dilution_series(_series_videos([(10, 3.0e10, 90), (100, 1.02e10, 50), (1000, 1.0e10, 30)]))
    assert three["used"] == [100.0, 1000.0] and "linear range 1:100, 1:1000" in three["basis"]
    # two dilutions in range that disagree: no linear range, pooled, and said
    none = dilution_series(_series_videos([(10, 3.0e10, 60), (100, 1.0e10, 40)]))
    assert none["used"] == [10.0, 100.0] and "no linear range" in none["basis"]
    # videos without a dilution are never pooled with corrected ones
    mixed = dilution_series(_series_videos([(np.nan, 1e8, 50), (100, 1.0e10, 40)]))
    assert mixed["used"] == [100.0] and "left out" in mixed["basis"]
    assert dilution_series(_series_videos([(np.nan, 1e8, 50)]))["basis"].startswith("dilution not recorded")


def test_qc_values_never_pass_for_a_negative_or_missing_concentration(syn):
    assert _status(nta_qc_checks(syn), "nta_values")[0] == "PASS"
    for bad in (-1.0, np.nan):
        videos = syn.videos.copy()
        videos.loc[1, "concentration_per_ml"] = bad
        status, reason = _status(nta_qc_checks(replace(syn, videos=videos)), "nta_values")
        assert status == "FAIL" and "syn_01" in reason


def test_qc_particles_per_frame_not_recorded_is_not_a_pass(syn):
    videos = syn.videos.assign(particles_per_frame=np.nan)
    status, reason = _status(nta_qc_checks(replace(syn, videos=videos)), "nta_particles_per_frame")
    assert status == "WARN" and "not recorded for 3 video(s)" in reason


def test_empty_zetaview_measurement(tmp_path, zv):
    data, _ = zetaview_txt("E", dilution=1000.0, in_cell_per_ml=3.1e7, n_traces=0, seed=1, comma=True)
    empty = read_nta(_bad(tmp_path, "empty.txt", data))
    assert empty.videos["concentration_per_ml"].iloc[0] == 0
    assert size_stats(empty.bins)["empty"].tolist() == [True]
    s = nta_sample_summary([zv, empty])
    assert s["n_empty_videos"] == 1 and "no size" in s["empty_video_rule"]
    assert s["d50_nm"] == pytest.approx(size_stats(zv.bins)["d50_nm"].iloc[0])     # left out of sizes
    assert s["concentration_per_ml"] == pytest.approx(zv.videos["concentration_per_ml"].iloc[0] / 2)
    assert _status(nta_qc_checks([zv, empty]), "nta_empty_videos")[0] == "WARN"
    assert _status(nta_qc_checks([zv, empty]), "nta_values")[0] == "PASS"


def test_qc_rules_are_plain_and_complete(zv, zv500):
    assert all(isinstance(v, (int, float, str, dict)) for v in DEFAULT_NTA_RULES.values())
    checks = nta_qc_checks(zv, {"min_videos": 1})
    assert _status(checks, "nta_videos")[0] == "PASS"
    assert {c["status"] for c in checks} <= {"PASS", "WARN", "FAIL"}
    s = nta_sample_summary([zv, zv500])
    assert s["n_files"] == 2 and s["dilution_factors"] == [500.0, 1000.0]
    assert s["concentration_per_ml"] == pytest.approx(3.1e10, rel=0.05)


def test_summary_keeps_files_with_the_same_video_names_apart(syn, tmp_path):
    copy = tmp_path / "again_ExperimentSummary.csv"
    copy.write_bytes(NS_SYN.read_bytes())
    again = read_nta(copy, sample=syn.sample)
    s = nta_sample_summary([syn, again])
    assert s["n_files"] == 2 and s["n_videos"] == 6
    one = nta_sample_summary(syn)
    for col in STATS:                     # six videos, three distinct: same means, smaller SE
        assert s[col] == pytest.approx(one[col]) and s[f"{col}_se"] < one[f"{col}_se"]
