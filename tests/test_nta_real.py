"""NTA readers against the vendors' own numbers in the real exports of ../shared/data/nta.

Skipped when ../shared is absent (the files are never copied into the repository).
The vendor's numbers are parsed here independently of exoimage (plain ``csv`` /
regular expressions on the file), then compared with what exoimage reports:

- NanoSight NTA 3.2 and 3.4: per video the six printed sizes (mean, mode, SD,
  D10, D50, D90), percentiles 1-99 of the percentile table, the concentration;
  per file the "Average" and "Standard Error" of each; the volume-weighted D
  values where the file has them; the instrument's warnings.
- ZetaView 8.05.16 SP3: every header number the reader uses (dilution,
  particles per frame, traces, conditions), the three printed medians, the
  concentration (column sum x dilution) and the drift verdict.

The instrument prints sizes to 0.1 nm (ZetaView to 1e-6 nm from 4-digit
bins): a reproduction by the same rule differs by at most 0.05 nm from
rounding; we allow :data:`PRINT_NM`. Concentrations are printed to 3
significant digits (0.5 %).
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from exoimage.nta import nta_qc_checks, nta_sample_summary, read_nta, size_stats
from exoimage.nta.stats import percentiles_from_bins

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nta"
if not SHARED.is_dir():
    pytest.skip("../shared/data/nta is not available", allow_module_level=True)

NANOSIGHT = sorted(SHARED.glob("nanosight_beads_*.csv")) + sorted((SHARED / "alteromonas_nta34").glob("*.csv"))
ZETAVIEW = SHARED / "zetaview" / "Sample1_35nm_1-5pool.txt"
PRINT_NM = 0.06
CONC_REL = 0.005
ROWS = {"Mean": "mean_nm", "Mode": "mode_nm", "SD": "sd_nm", "D10": "d10_nm", "D50": "d50_nm", "D90": "d90_nm"}


def vendor_nanosight(path: Path) -> dict:
    """The instrument's printed numbers, by row label (independent of exoimage)."""
    rows = list(csv.reader(path.read_text(encoding="cp1252").splitlines()))

    def first(label, start=0, stop=None):
        return next(i for i in range(start, stop or len(rows)) if rows[i] and rows[i][0].strip() == label)

    videos = [c.strip() for c in rows[first("Filename:")][1:] if c.strip()]
    n = len(videos)
    res = first("[Results]")
    conc = next(rows[i] for i in range(res, len(rows)) if rows[i] and rows[i][0].startswith("Concentration (Particles"))
    ppf = rows[first("Particles per frame", res)]
    out = {"videos": videos, "version": rows[1][0], "conc": [float(c) for c in conc[1:n + 1]],
           "conc_avg": float(conc[n + 1]), "conc_se": float(conc[n + 2]),
           "ppf": [float(c) for c in ppf[1:n + 1]]}
    blocks = [i for i, r in enumerate(rows) if [c.strip() for c in r[:1]] == ["Weighting"]]
    size_data = first("[Size Data]")
    number = next(i for i in blocks if i > size_data and rows[i][1].strip() == "Number")
    for lab, col in ROWS.items():
        r = rows[first(lab, number)]
        out[col] = [float(c) for c in r[1:n + 1]]
        out[col + "_avg"], out[col + "_se"] = float(r[n + 1]), float(r[n + 2])
    pct = first("Percentile", number)
    out["percentiles"] = np.array([[float(c) for c in rows[i][1:n + 1]] for i in range(pct + 1, pct + 102)])
    volume = [i for i in blocks if i > size_data and rows[i][1].strip() == "Volume"]
    nxt = [i for i, r in enumerate(rows) if i > size_data and r and r[0].startswith("[") and r[0] != "[Size Data]"]
    if volume and (not nxt or volume[0] < nxt[0]):
        for lab in ("D10", "D50", "D90"):
            out[f"volume_{lab.lower()}_nm"] = [float(c) for c in rows[first(lab, volume[0])][1:n + 1]]
    warn = first("[Concentration Warnings]")
    info = first("[Information]")
    stop = next(i for i in range(info + 1, len(rows)) if rows[i] and rows[i][0].startswith("["))
    out["flags"] = [(r[0].strip(), c.strip()) for r in rows[warn + 1:stop] if r and r[0].strip()
                    and not r[0].startswith("[") for c in r[1:n + 1]]
    return out


@pytest.fixture(scope="module", params=NANOSIGHT, ids=lambda p: p.name[:24])
def nanosight(request):
    return read_nta(request.param), vendor_nanosight(request.param)


def test_nanosight_per_video_sizes_and_concentrations(nanosight):
    res, v = nanosight
    assert list(res.videos["video"]) == v["videos"]
    st = size_stats(res.bins).set_index("video").loc[v["videos"]]
    for col in ROWS.values():
        np.testing.assert_allclose(st[col], v[col], atol=PRINT_NM, err_msg=col)
    np.testing.assert_allclose(res.videos["concentration_per_ml"], v["conc"], rtol=CONC_REL)
    np.testing.assert_allclose(res.videos["particles_per_frame"], v["ppf"], atol=0.051)


def test_nanosight_percentile_table_by_the_versions_rule(nanosight):
    """Percentiles 1-99 by the software's own rule (0 and 100 are the extreme particles, not bins)."""
    res, v = nanosight
    conv = set(res.bins["percentile_convention"])
    assert conv == ({"bin_edges_minus_one_bin"} if "NTA 3.2" in v["version"] else {"bin_edges"})
    assert any(f"percentile convention {conv.pop()}" in n and "reproduces" in n for n in res.notes)
    q = np.arange(1, 100) / 100
    for j, vid in enumerate(v["videos"]):
        g = res.bins[res.bins["video"] == vid].sort_values("bin_nm")
        got = percentiles_from_bins(g["bin_nm"], g["concentration_per_ml"], q, 1.0, g["percentile_convention"].iloc[0])
        np.testing.assert_allclose(got, v["percentiles"][1:100, j], atol=PRINT_NM, err_msg=vid)


def test_nanosight_file_averages_and_standard_errors(nanosight):
    res, v = nanosight
    s = nta_sample_summary(res)
    n = len(v["videos"])
    assert s["n_videos"] == n and s["n_empty_videos"] == 0
    assert s["concentration_per_ml"] == pytest.approx(v["conc_avg"], rel=CONC_REL)
    # SE from per-video values printed to 3 digits: within their rounding, propagated
    unit = lambda x: 10 ** (math.floor(math.log10(abs(x))) - 2)  # noqa: E731
    bound = max(unit(c) for c in v["conc"]) / 2 / math.sqrt(n - 1) + unit(v["conc_se"]) / 2
    assert abs(s["concentration_se_per_ml"] - v["conc_se"]) <= bound
    for col in ROWS.values():
        assert s[col] == pytest.approx(v[col + "_avg"], abs=PRINT_NM), col
        assert s[col + "_se"] == pytest.approx(v[col + "_se"], abs=PRINT_NM), col


def test_nanosight_volume_weighted_d_values_are_the_instruments(nanosight):
    res, v = nanosight
    if "volume_d50_nm" not in v:
        assert res.videos["volume_d50_nm"].isna().all()
        return
    for col in ("volume_d10_nm", "volume_d50_nm", "volume_d90_nm"):
        np.testing.assert_allclose(res.videos[col], v[col], atol=1e-9, err_msg=col)
    s = nta_sample_summary(res)
    assert s["volume_d50_nm"] == pytest.approx(np.mean(v["volume_d50_nm"]), abs=1e-9)
    # number x size^3 of the bins is NOT NanoSight's volume distribution: not reported for it
    assert size_stats(res.bins)["volume_d50_nm"].isna().all()


def test_nanosight_warnings_verbatim(nanosight):
    res, v = nanosight
    flagged = [(i, c) for i, c in v["flags"] if c.lower() not in ("ok", "no", "good", "very good", "none", "")
               and not i.lower().startswith("vibration correction")]
    assert sorted(zip(res.warnings["item"], res.warnings["value"])) == sorted(flagged)
    status = {c["check"]: c["status"] for c in nta_qc_checks(res)}
    assert status["nta_instrument_warnings"] == ("WARN" if flagged else "PASS")
    assert status["nta_values"] == "PASS"


def test_nanosight_dilution_as_recorded():
    r34 = read_nta(SHARED / "nanosight_beads_NTA3.4_ExperimentSummary.csv")
    assert (r34.videos["dilution_factor"] == 1e4).all() and (r34.videos["dilution_applied_by"] == "instrument").all()
    alt = read_nta(NANOSIGHT[-1])
    assert alt.videos["dilution_factor"].isna().all()         # 'Not recorded' in all of them
    s = nta_sample_summary(alt)
    assert s["concentration_dilutions"] == "not recorded"
    assert {c["check"]: c["status"] for c in nta_qc_checks(alt)}["nta_dilution_recorded"] == "WARN"


# ----------------------------------------------------------------------------- conventions chosen by version

def _relabel(src: Path, dst: Path, version_line: str | None) -> Path:
    lines = src.read_text(encoding="cp1252").splitlines()
    lines[1] = version_line if version_line is not None else ","
    dst.write_text("\r\n".join(lines) + "\r\n", encoding="cp1252")
    return dst


def test_nta32_convention_follows_the_file_when_the_version_is_unknown(tmp_path):
    src = SHARED / "nanosight_beads_NTA3.2_ExperimentSummary.csv"
    v = vendor_nanosight(src)
    unknown = read_nta(_relabel(src, tmp_path / "u_ExperimentSummary.csv", None))
    assert set(unknown.bins["percentile_convention"]) == {"bin_edges_minus_one_bin"}
    assert "chosen because it reproduces" in unknown.notes[0]
    mislabelled = read_nta(_relabel(src, tmp_path / "m_ExperimentSummary.csv", "Created with NTA 3.4 Build 3.4.003,"))
    assert set(mislabelled.bins["percentile_convention"]) == {"bin_edges_minus_one_bin"}
    assert "normally uses bin_edges" in mislabelled.notes[0]
    st = size_stats(mislabelled.bins).set_index("video").loc[v["videos"]]
    np.testing.assert_allclose(st["d50_nm"], v["d50_nm"], atol=PRINT_NM)
    # the bins' own value, for reference: exactly one 1-nm bin above what NTA 3.2 prints
    g = mislabelled.bins[mislabelled.bins["video"] == v["videos"][0]].sort_values("bin_nm")
    edges = percentiles_from_bins(g["bin_nm"], g["concentration_per_ml"], 0.5, 1.0, "bin_edges")[0]
    assert edges - v["d50_nm"][0] == pytest.approx(1.0, abs=PRINT_NM)


# ----------------------------------------------------------------------------- empty video, instrument's rule

def _empty_video(src: Path, dst: Path, k: int) -> Path:
    """The file with video ``k`` as NanoSight writes a video that tracked nothing: 0 everywhere."""
    rows = list(csv.reader(src.read_text(encoding="cp1252").splitlines()))
    n = len([c for c in rows[next(i for i, r in enumerate(rows) if r and r[0] == "Filename:")][1:] if c.strip()])
    in_size, in_bins, in_pct = False, False, False
    for r in rows:
        if not r:
            in_bins = in_pct = False
            continue
        lab = r[0].strip()
        if lab == "[Size Data]":
            in_size = True
        elif lab.startswith("[") and lab != "[Size Data]":
            in_size = False
        if lab.startswith("Concentration (Particles") or (in_size and lab in ROWS) or in_bins or in_pct:
            if len(r) > k + 1 and r[k + 1].strip():
                r[k + 1] = "0"
        if lab.startswith("Bin centre"):
            in_bins = True
        if lab == "Percentile":
            in_pct = True
    text = "\r\n".join(",".join(r) for r in rows) + "\r\n"
    dst.write_text(text, encoding="cp1252")
    assert n > k
    return dst


def test_an_empty_video_is_averaged_as_the_instrument_does(tmp_path):
    src = SHARED / "nanosight_beads_NTA3.4_ExperimentSummary.csv"
    v = vendor_nanosight(src)
    res = read_nta(_empty_video(src, tmp_path / "e_ExperimentSummary.csv", 2))
    st = size_stats(res.bins)
    assert list(st["empty"]) == [False, False, True, False, False]
    s = nta_sample_summary(res)
    assert s["n_empty_videos"] == 1 and "0 nm" in s["empty_video_rule"]
    # the NanoSight "Average" of a file with a dead video: its 0.0 nm averaged in, n = 5
    live = [0, 1, 3, 4]
    for col in ROWS.values():
        assert s[col] == pytest.approx(sum(v[col][i] for i in live) / 5, abs=PRINT_NM), col
    assert s["concentration_per_ml"] == pytest.approx(sum(v["conc"][i] for i in live) / 5, rel=CONC_REL)
    assert s["d50_nm_nonempty"] == pytest.approx(np.mean([v["d50_nm"][i] for i in live]), abs=PRINT_NM)
    (check,) = [c for c in nta_qc_checks(res) if c["check"] == "nta_empty_videos"]
    assert check["status"] == "WARN" and "stdv34_02" in check["reason"] and f"{s['d50_nm']:.1f} nm" in check["reason"]
    from exoimage.nta import combine_tables
    from exoimage.experiment.nta import nta_size_density
    d = nta_size_density(combine_tables([res], "bins"))
    assert d["n_videos"].iloc[0] == 4 and d["density_per_nm"].notna().all()


# ----------------------------------------------------------------------------- ZetaView

def vendor_zetaview(path: Path) -> dict:
    text = path.read_bytes().decode("latin-1")
    num = lambda s: float(s.replace(",", "."))  # noqa: E731
    grab = lambda pat: num(re.search(pat, text).group(1))  # noqa: E731
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Size / nm"))
    lin = []
    for line in lines[start + 1:]:
        c = [num(x) for x in line.split("\t")]
        if c[0] == -1:
            break
        lin.append(c)
    lin = np.array(lin)
    return {"dilution": grab(r"Dilution::\t([-\d.,]+)"), "ppf": grab(r"Average Number of Particles:\t([-\d.,]+)"),
            "traces": grab(r"Number of Traces:\t(\d+)"), "temperature": grab(r"Temperature:\t([-\d.,]+)"),
            "viscosity": grab(r"Viscosity:\t([-\d.,]+)"), "ph": grab(r"pH:\t([-\d.,]+)"),
            "conductivity": grab(r"Conductivity:\t([-\d.,]+)"), "laser": grab(r"Laser Wavelength nm:\t([-\d.,]+)"),
            "fps": grab(r"FRate ([-\d.,]+)"), "d50_number": grab(r"Median Number \(D50\):\t([-\d.,]+)"),
            "d50_conc": grab(r"Median Concentration \(D50\):\t([-\d.,]+)"),
            "d50_volume": grab(r"Median Volume \(D50\):\t([-\d.,]+)"),
            "drift": re.search(r"Particle Drift Check Result:\t([^\r\n]*)", text).group(1).strip(),
            "cell": re.search(r"Cell Check Result:\t([^\r\n]*)", text).group(1).strip(),
            "software": re.search(r"Software:\tZetaView \(version ([^)]+)\)", text).group(1), "lin": lin}


@pytest.fixture(scope="module")
def zv():
    return read_nta(ZETAVIEW), vendor_zetaview(ZETAVIEW)


def test_zetaview_header_numbers_from_multi_key_lines(zv):
    res, v = zv
    row = res.videos.iloc[0]
    assert res.software_version == f"ZetaView {v['software']}" == "ZetaView 8.05.16 SP3"
    assert row["dilution_factor"] == v["dilution"] == 5000 and row["dilution_applied_by"] == "exoimage"
    assert row["particles_per_frame"] == v["ppf"] == 228.5
    assert row["completed_tracks"] == v["traces"] == row["particles_counted"] == v["lin"][:, 1].sum()
    assert (row["temperature_C"], row["viscosity_cP"], row["ph"]) == (v["temperature"], v["viscosity"], v["ph"])
    assert row["conductivity_uS_per_cm"] == v["conductivity"] and row["laser_wavelength_nm"] == v["laser"]
    assert row["frame_rate_fps"] == v["fps"] and row["video"] == "20230419_0002_190423_5000_35nm_1-5pool_size_488"
    assert res.metadata["Section"] == "0,1 [0]" and res.metadata["Analyze"] == "8.05.16 SP3"


def test_zetaview_medians_by_the_instruments_rule(zv):
    res, v = zv
    row = res.videos.iloc[0]
    assert (row["d50_nm"], row["concentration_d50_nm"], row["volume_d50_nm"]) == (
        v["d50_number"], v["d50_conc"], v["d50_volume"])
    st = size_stats(res.bins).iloc[0]
    assert st["percentile_convention"] == "bin_centres"
    assert st["d50_nm"] == pytest.approx(v["d50_number"], abs=PRINT_NM)
    assert st["volume_d50_nm"] == pytest.approx(v["d50_volume"], abs=PRINT_NM)
    # from the Number column (integers) the rule is exact
    lin = v["lin"]
    assert percentiles_from_bins(lin[:, 0], lin[:, 1], 0.5, convention="bin_centres")[0] == pytest.approx(
        v["d50_number"], abs=1e-5)
    assert percentiles_from_bins(lin[:, 0], lin[:, 1] * lin[:, 0] ** 3, 0.5, convention="bin_centres")[0] == \
        pytest.approx(v["d50_volume"], abs=1e-5)
    # between bin edges it would be 2.5 nm (half a 5-nm bin) higher: the 101.65 vs 99.15
    assert percentiles_from_bins(lin[:, 0], lin[:, 1], 0.5, 5.0, "bin_edges")[0] - v["d50_number"] == pytest.approx(2.5)
    s = nta_sample_summary(res)
    assert s["d50_nm"] == pytest.approx(v["d50_number"], abs=PRINT_NM)
    assert s["volume_d50_nm"] == pytest.approx(v["d50_volume"], abs=PRINT_NM)
    assert any("reproduces the file's Median Number (D50)" in n for n in res.notes)


def test_zetaview_concentration_and_qc(zv):
    res, v = zv
    expect = v["lin"][:, 2].sum() * v["dilution"]
    assert res.videos.iloc[0]["concentration_per_ml"] == pytest.approx(expect, rel=1e-12)
    assert nta_sample_summary(res)["concentration_per_ml"] == pytest.approx(4.308e11, rel=CONC_REL)
    lin = res.bins[res.bins["scale"] == "linear"]
    log = res.bins[res.bins["scale"] == "log"]
    assert len(lin) == 1200 and lin["bin_width_nm"].eq(5.0).all() and len(log) == 200
    assert list(res.warnings["value"]) == [v["drift"]] == ["too high"]      # 'Very Good' cell check is not one
    checks = {c["check"]: c for c in nta_qc_checks(res)}
    assert checks["nta_dilution_recorded"]["status"] == "PASS" and "1:5000" in checks["nta_dilution_recorded"]["reason"]
    ppf, warn = checks["nta_particles_per_frame"], checks["nta_instrument_warnings"]
    assert ppf["status"] == "WARN" and "228.5" in ppf["reason"]
    assert warn["status"] == "WARN" and "too high" in warn["reason"]


@pytest.mark.parametrize("variant", ["utf-8", "lf", "decimal point", "utf-8-bom"])
def test_zetaview_encodings_newlines_and_decimal_points(zv, tmp_path, variant):
    """The real file re-written as other computers would: same tables."""
    res, _ = zv
    text = ZETAVIEW.read_bytes().decode("latin-1")
    if variant == "decimal point":
        text = re.sub(r"(?<=\d),(?=\d)", ".", text)
    if variant == "lf":
        text = text.replace("\r\n", "\n")
    data = text.encode("latin-1" if variant in ("lf", "decimal point") else "utf-8")
    if variant == "utf-8-bom":
        data = b"\xef\xbb\xbf" + data
    f = tmp_path / ZETAVIEW.name
    f.write_bytes(data)
    other = read_nta(f)
    pd.testing.assert_frame_equal(other.videos, res.videos)
    pd.testing.assert_frame_equal(other.bins, res.bins)
    assert other.metadata["Camera Trigger Duration µs"] == "Shutter Duration"        # µ read in either encoding


# ----------------------------------------------------------------------------- layout, truncation, dilution API

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


def test_parsing_does_not_depend_on_row_numbers(tmp_path):
    src = SHARED / "nanosight_beads_NTA3.4_ExperimentSummary.csv"
    real = read_nta(src)
    moved = read_nta(_shifted_layout(src, tmp_path / "moved_ExperimentSummary.csv"))
    pd.testing.assert_frame_equal(moved.videos, real.videos)
    pd.testing.assert_frame_equal(moved.bins, real.bins)


def test_truncated_copies_raise(tmp_path):
    from exoimage.nta import NtaReadError

    text = (SHARED / "nanosight_beads_NTA3.2_ExperimentSummary.csv").read_text(encoding="cp1252")
    for frac in (0.05, 0.5, 0.97):
        f = tmp_path / f"cut{frac}_ExperimentSummary.csv"
        f.write_text(text[: int(len(text) * frac)], encoding="cp1252")
        with pytest.raises(NtaReadError, match=f.name):
            read_nta(f)
    zv = ZETAVIEW.read_bytes()
    f = tmp_path / "cut.txt"
    f.write_bytes(zv[: zv.index(b"-1,000E+0")])
    with pytest.raises(NtaReadError, match="no logarithmic bins"):
        read_nta(f)


def test_dilution_applied_once_on_real_files():
    from exoimage.nta import apply_dilution

    r32 = read_nta(SHARED / "nanosight_beads_NTA3.2_ExperimentSummary.csv")
    r34 = read_nta(SHARED / "nanosight_beads_NTA3.4_ExperimentSummary.csv")
    assert r34.videos["concentration_measured_per_ml"].iloc[0] == pytest.approx(5.91e8)
    sums = r34.bins.groupby("video", sort=False)["concentration_per_ml"].sum().to_numpy()
    np.testing.assert_allclose(sums, r34.videos["concentration_per_ml"], rtol=0.01)
    assert r32.videos["dilution_factor"].isna().all() and (r32.bins["dilution_applied_by"] == "none").all()
    fixed = apply_dilution(r32, 50)
    assert fixed.videos["concentration_per_ml"].iloc[0] == pytest.approx(50 * 1.43e9)
    assert (fixed.bins["dilution_applied_by"] == "exoimage").all()
    assert apply_dilution(fixed, 50) is fixed
    with pytest.raises(ValueError, match="already applied"):
        apply_dilution(r34, 100)
    zv = read_nta(ZETAVIEW)
    assert apply_dilution(zv, 5000) is zv
    with pytest.raises(ValueError, match="already applied"):
        read_nta(ZETAVIEW, dilution_factor=500)


def test_qc_on_the_bead_files():
    c32 = {c["check"]: c for c in nta_qc_checks(read_nta(SHARED / "nanosight_beads_NTA3.2_ExperimentSummary.csv"))}
    c34 = {c["check"]: c for c in nta_qc_checks(read_nta(SHARED / "nanosight_beads_NTA3.4_ExperimentSummary.csv"))}
    assert list(c34) == ["nta_values", "nta_videos", "nta_concentration_cv", "nta_particles_per_frame",
                         "nta_instrument_warnings", "nta_dilution_recorded", "nta_dilution_linearity",
                         "nta_empty_videos"]
    # 3.2 combines runs at two camera levels: 1.18e9 .. 2.51e9 per ml, CV 25 %
    assert c32["nta_concentration_cv"]["status"] == "WARN" and "25.4 %" in c32["nta_concentration_cv"]["reason"]
    assert c34["nta_concentration_cv"]["status"] == "PASS"
    assert (c32["nta_dilution_recorded"]["status"], c34["nta_dilution_recorded"]["status"]) == ("WARN", "PASS")
    assert (c32["nta_instrument_warnings"]["status"], c34["nta_instrument_warnings"]["status"]) == ("PASS", "WARN")
    # both bead runs were recorded above the 20-100 particles/frame NanoSight range
    assert c32["nta_particles_per_frame"]["status"] == c34["nta_particles_per_frame"]["status"] == "WARN"
