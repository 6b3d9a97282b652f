"""NTA readers, recomputed statistics, sample summary and QC checks.

Real data: NanoSight NTA 3.2 and 3.4 bead standards in ../shared/data/nta
(skipped when absent, never copied into the repository). Fixtures in
tests/data/nta were written by tests/data/nta/make_fixtures.py.

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
                          read_nanosight_summary, read_nta, read_zetaview_txt, size_stats, size_stats_from_bins)

SHARED_NTA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nta"
DATA = Path(__file__).resolve().parent / "data" / "nta"
ZV_DOT = DATA / "zetaview_EV-HEK_1000x_dot.txt"
ZV_COMMA = DATA / "zetaview_EV-HEK_1000x_comma.txt"
ZV_500 = DATA / "zetaview_EV-HEK_500x_dot.txt"
NS_SYN = DATA / "nanosight_synthetic_ExperimentSummary.csv"
ROUNDING_NM = 0.06
STATS = ["mean_nm", "mode_nm", "sd_nm", "d10_nm", "d50_nm", "d90_nm"]


def _real(version):
    f = SHARED_NTA / f"nanosight_beads_NTA{version}_ExperimentSummary.csv"
    if not f.is_file():
        pytest.skip("../shared/data/nta is not available")
    return f


@pytest.fixture(scope="module")
def real32():
    return read_nta(_real("3.2"))


@pytest.fixture(scope="module")
def real34():
    return read_nta(_real("3.4"))


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


# ----------------------------------------------------------------------------- NanoSight, real files

def test_real_nanosight_tables(real32, real34):
    assert real32.instrument == "nanosight" and "3.2" in real32.software_version
    assert "3.4" in real34.software_version
    assert real32.n_videos == 12 and real34.n_videos == 5
    assert list(real34.videos["video"]) == [f"stdv34_0{i}" for i in range(5)]
    assert real34.sample == "100nmbeads"           # 'Sample Description' (3.4)
    assert real32.sample == "std_combined"         # no sample name in 3.2: experiment name
    v = real34.videos.iloc[0]
    assert v["temperature_C"] == 22.0 and v["frame_rate_fps"] == pytest.approx(24.9825)
    assert v["camera_level"] == 11 and v["detection_threshold"] == 5 and v["frames_analysed"] == 499
    assert v["particles_per_frame"] == pytest.approx(109.7) and v["valid_tracks"] == 1872
    assert v["drift_x_px_per_frame"] == pytest.approx(-3.8) and v["min_track_length"] == "Auto"
    assert len(real34.bins) == 5 * 1000 and real34.bins["bin_width_nm"].eq(1.0).all()
    assert real34.percentiles["percentile"].max() == 100


def test_real_dilution_applied_once(real32, real34):
    v = real34.videos
    assert (v["dilution_factor"] == 1e4).all() and (v["dilution_applied_by"] == "instrument").all()
    # the instrument already multiplied by the dilution: the raw cell value is 1e4 times smaller
    assert v["concentration_per_ml"].iloc[0] == pytest.approx(5.91e12)
    assert v["concentration_measured_per_ml"].iloc[0] == pytest.approx(5.91e8)
    # per-bin values add up to the reported (already corrected) concentration of each video
    sums = real34.bins.groupby("video", sort=False)["concentration_per_ml"].sum().to_numpy()
    np.testing.assert_allclose(sums, v["concentration_per_ml"], rtol=0.01)
    assert real32.videos["dilution_factor"].isna().all()
    assert (real32.bins["dilution_applied_by"] == "none").all()
    fixed = apply_dilution(real32, 50)
    assert fixed.videos["concentration_per_ml"].iloc[0] == pytest.approx(50 * 1.43e9)
    assert (fixed.bins["dilution_applied_by"] == "exoimage").all()
    assert apply_dilution(fixed, 50) is fixed          # same factor again: nothing happens
    with pytest.raises(ValueError, match="already applied"):
        apply_dilution(real34, 100)


def test_real_recomputed_stats_match_instrument(real32, real34):
    """Mean, SD and mode to the instrument's 0.1-nm rounding in both versions.

    D10/D50/D90: NTA 3.4 agrees with the cumulative distribution interpolated
    between 1-nm bin edges; NTA 3.2 reports every D value exactly one bin
    (1.0 nm) lower than its own bin table implies, so for 3.2 we assert that
    offset (its mean, computed from the same bins, agrees to 0.05 nm).
    """
    for res, d_offset in ((real34, 0.0), (real32, 1.0)):
        got = size_stats(res.bins).set_index("video")
        ref = res.videos.set_index("video")
        for col in ("mean_nm", "sd_nm", "mode_nm"):
            np.testing.assert_allclose(got[col], ref[col], atol=ROUNDING_NM, err_msg=col)
        for col in ("d10_nm", "d50_nm", "d90_nm"):
            np.testing.assert_allclose(got[col] - d_offset, ref[col], atol=ROUNDING_NM, err_msg=col)
        # the D rows are the 10/50/90 rows of the instrument's percentile table
        pct = res.percentiles.pivot(index="video", columns="percentile", values="size_nm")
        np.testing.assert_allclose(pct[50.0].loc[ref.index], ref["d50_nm"])


def test_real_sample_summary_matches_instrument_averages(real34):
    s = nta_sample_summary(real34)
    inst = real34.instrument_summary.set_index("statistic")
    assert s["n_videos"] == 5 and s["dilution_factors"] == [1e4]
    assert s["concentration_per_ml"] == pytest.approx(inst.loc["concentration_per_ml", "average"], rel=0.005)
    assert s["concentration_se_per_ml"] == pytest.approx(inst.loc["concentration_per_ml", "standard_error"],
                                                         rel=0.01)
    for col in STATS:
        assert s[col] == pytest.approx(inst.loc[col, "average"], abs=ROUNDING_NM), col
        assert s[f"{col}_se"] == pytest.approx(inst.loc[col, "standard_error"], abs=ROUNDING_NM), col


def test_real_warnings_verbatim(real32, real34):
    assert real32.warnings.empty
    w = real34.warnings
    assert set(w["item"]) == {"Vibration detected"}
    assert list(w["value"]) == ["Moderate vibration", "Minor vibration", "Moderate vibration",
                                "Minor vibration", "Minor vibration"]


def test_real_qc(real32, real34):
    c32, c34 = nta_qc_checks(real32), nta_qc_checks(real34)
    assert [c["check"] for c in c34] == ["nta_videos", "nta_concentration_cv", "nta_particles_per_frame",
                                         "nta_instrument_warnings", "nta_dilution_recorded",
                                         "nta_dilution_linearity"]
    # 3.2 combines runs at two camera levels: 1.18e9 .. 2.51e9 per ml, CV 25 %
    assert _status(c32, "nta_concentration_cv")[0] == "WARN"
    assert "25.4 %" in _status(c32, "nta_concentration_cv")[1]
    assert _status(c34, "nta_concentration_cv")[0] == "PASS"
    assert _status(c32, "nta_dilution_recorded")[0] == "WARN"
    assert _status(c34, "nta_dilution_recorded")[0] == "PASS"
    assert _status(c32, "nta_instrument_warnings")[0] == "PASS"
    assert _status(c34, "nta_instrument_warnings")[0] == "WARN"
    # both bead runs were recorded above the 20-100 particles/frame NanoSight range
    assert _status(c34, "nta_particles_per_frame")[0] == "WARN"


def _shifted_layout(src: Path, dst: Path) -> Path:
    """The same file with rows moved: extra rows and blank lines inside sections, wider padding."""
    out = []
    for line in src.read_text(encoding="cp1252").splitlines():
        out.append(line + ",,")
        if line.startswith("["):
            out.append("Inserted By Test,x,y,z")
            out.append("")
    dst.write_text("\r\n".join(out), encoding="cp1252")
    return dst


def test_real_parsing_does_not_depend_on_row_numbers(real34, tmp_path):
    moved = read_nta(_shifted_layout(_real("3.4"), tmp_path / "moved_ExperimentSummary.csv"))
    pd.testing.assert_frame_equal(moved.videos, real34.videos)
    pd.testing.assert_frame_equal(moved.bins, real34.bins)


def test_real_truncated_copies_raise(tmp_path):
    text = _real("3.2").read_text(encoding="cp1252")
    for frac in (0.05, 0.5, 0.97):
        f = tmp_path / f"cut{frac}_ExperimentSummary.csv"
        f.write_text(text[: int(len(text) * frac)], encoding="cp1252")
        with pytest.raises(NtaReadError, match=f.name):
            read_nta(f)


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

def test_zetaview_header_and_tables(zv):
    assert zv.instrument == "zetaview" and zv.sample == "EV-HEK" and zv.software_version == "ZetaView 8.05.14 SP7"
    v = zv.videos.iloc[0]
    assert v["video"] == "20240312_0001_EV-HEK_1000x_size_488"
    assert v["temperature_C"] == 23.51 and v["viscosity_cP"] == 0.92 and v["positions"] == 11
    assert v["particles_per_frame"] == 155.0 and v["frame_rate_fps"] == 30.0 and v["completed_tracks"] == 1850
    assert zv.metadata["SetTemperature"] == "25.00 °C"                         # Latin-1
    assert set(zv.bins["scale"]) == {"linear", "log"}
    lin = zv.bins[zv.bins["scale"] == "linear"]
    assert len(lin) == 200 and lin["bin_width_nm"].eq(5.0).all() and (zv.bins["bin_nm"] > 0).all()
    assert len(zv.bins[zv.bins["scale"] == "log"]) == 21


def test_zetaview_decimal_comma_equals_dot(zv):
    comma = read_nta(ZV_COMMA)
    pd.testing.assert_frame_equal(comma.videos, zv.videos)
    pd.testing.assert_frame_equal(comma.bins, zv.bins)


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


def test_zetaview_recomputed_d50_matches_header(zv, zv500):
    """The header's D50 is the median of the raw particle sizes; from 5-nm bins we
    allow half a bin (2.5 nm), the most linear interpolation inside a bin can miss by."""
    for res in (zv, zv500):
        got = size_stats(res.bins).iloc[0]
        assert got["d50_nm"] == pytest.approx(res.videos.iloc[0]["d50_nm"], abs=2.5)
        log = size_stats(res.bins, scale="log").iloc[0]
        assert log["d50_nm"] == pytest.approx(got["d50_nm"], rel=0.05)


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
    ]
    for name, content, match in cases:
        f = tmp_path / name if content is None else _bad(tmp_path, name, content)
        _raises_one_line(f, match)
    with pytest.raises(NtaReadError, match="not a ZetaView"):
        read_zetaview_txt(NS_SYN)
    with pytest.raises(NtaReadError, match="not a NanoSight"):
        read_nanosight_summary(ZV_DOT)


# ----------------------------------------------------------------------------- stats helpers

def test_size_stats_from_bins_known_distribution():
    x = np.arange(0.5, 300, 1.0)
    c = np.exp(-0.5 * ((x - 100.3) / 12.0) ** 2)
    s = size_stats_from_bins(x, c, 1.0)
    assert s["mean_nm"] == pytest.approx(100.3, abs=1e-6) and s["sd_nm"] == pytest.approx(12.0, abs=0.01)
    assert s["mode_nm"] == pytest.approx(100.3, abs=0.05) and s["d50_nm"] == pytest.approx(100.3, abs=0.01)
    assert s["d90_nm"] - s["d10_nm"] == pytest.approx(2 * 1.2816 * 12.0, abs=0.05)
    assert np.isnan(size_stats_from_bins(x, 0 * c)["d50_nm"])


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
    text = ZV_DOT.read_bytes().replace(b"Dilution::\t1000.00\r\n", b"")
    bare = read_nta(_bad(tmp_path, "nodil.txt", text))
    assert bare.videos["dilution_applied_by"].iloc[0] == "none"
    assert _status(nta_qc_checks(bare), "nta_dilution_recorded")[0] == "WARN"
    given = read_nta(tmp_path / "nodil.txt", dilution_factor=1000)
    assert _status(nta_qc_checks(given), "nta_dilution_recorded")[0] == "PASS"
    pd.testing.assert_series_equal(given.bins["concentration_per_ml"], read_nta(ZV_DOT).bins["concentration_per_ml"])


def test_qc_dilution_linearity(zv, zv500, tmp_path):
    status, reason = _status(nta_qc_checks([zv, zv500]), "nta_dilution_linearity")
    assert status == "PASS" and "1:500" in reason and "1:1000" in reason
    # the 1:500 measurement labelled 1:250 no longer scales: corrected values differ twofold
    wrong = read_nta(_bad(tmp_path, "x.txt", ZV_500.read_bytes().replace(b"Dilution::\t500.00", b"Dilution::\t250.00")))
    assert _status(nta_qc_checks([zv, wrong]), "nta_dilution_linearity")[0] == "FAIL"
    assert "not applicable" in _status(nta_qc_checks(zv), "nta_dilution_linearity")[1]


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
