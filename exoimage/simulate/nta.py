"""Simulated NTA exports with known truth: NanoSight NTA 3.x summaries and ZetaView ``.txt``.

Nothing here comes from an instrument. The files follow the layouts that
:mod:`exoimage.nta` reads (``docs/nta.md``): the NanoSight summary in an
NTA 3.3-like layout (sections and row labels as in real 3.2/3.4 exports, rows
reordered and padded differently), the ZetaView export from its format
description (header of ``Key: value`` lines, linear then logarithmic size
tables, decimal point or comma).

- :func:`nanosight_summary`: one ``ExperimentSummary.csv`` of several videos.
  The 1-nm bins hold the *exact* log-normal probability of each bin times the
  concentration, and the size rows hold the *analytic* statistics of that
  log-normal, so a reader that recomputes statistics from the bins is checked
  against numbers that were not computed from bins.
- :func:`zetaview_txt`: one ZetaView measurement in the header layout of the
  real 8.05.16 SP3 export (several keys on one line) or one key per line; the
  size tables are histograms of random log-normal sizes, the header's medians
  follow the instrument's rule (between bin centres).

Both return the file's bytes and the truth. Deterministic for a given seed.
``tests/data/nta/make_fixtures.py`` writes the test fixtures with these
functions; ``sample_images/make_samples.py`` writes the sample experiment's NTA
files.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import lognorm

__all__ = ["NtaTruth", "nanosight_summary", "nanosight_particle_files", "zetaview_txt",
           "LIN_CENTRES", "LOG_CENTRES", "ZETAVIEW_LAYOUTS"]

LIN_CENTRES = np.arange(2.5, 1000, 5.0)                     # ZetaView 5-nm linear bins
LOG_CENTRES = 10 ** np.linspace(1, 3, 21)                   # 10 per decade, 10-1000 nm


@dataclass
class NtaTruth:
    """What a simulated export was made from (one entry per video / measurement).

    ``concentration_per_ml`` is particles per ml of the *undiluted* sample,
    ``concentration_measured_per_ml`` in the measurement cell (undiluted /
    dilution). Sizes in nm: for NanoSight the analytic log-normal statistics,
    for ZetaView the statistics of the random sizes drawn.
    """

    instrument: str
    videos: list
    dilution: float | None
    concentration_measured_per_ml: np.ndarray
    concentration_per_ml: np.ndarray
    median_nm: np.ndarray
    mean_nm: np.ndarray
    mode_nm: np.ndarray
    d10_nm: np.ndarray
    d90_nm: np.ndarray
    particles_per_frame: np.ndarray
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- ZetaView

def _zv_num(x: float, comma: bool) -> str:
    s = f"{x:.3E}".replace("E+0", "E+").replace("E-0", "E-")
    return s.replace(".", ",") if comma else s


def _zv_plain(x: float, fmt: str, comma: bool) -> str:
    s = format(x, fmt)
    return s.replace(".", ",") if comma else s


def _zv_table(sizes, centres, edges, conc_per_particle, comma):
    counts, _ = np.histogram(sizes, edges)
    lines = []
    for c, n in zip(centres, counts):
        conc = n * conc_per_particle
        vol = conc * np.pi / 6 * c ** 3
        area = conc * np.pi * c ** 2
        lines.append("\t".join(_zv_num(v, comma) for v in (c, n, conc, vol, area)))
    return lines


#: ZetaView header layouts :func:`zetaview_txt` writes
ZETAVIEW_LAYOUTS = ("multi_key", "one_key_per_line")


def _centre_median(x, w, q=0.5):
    """The ZetaView instrument's median: cumulative interpolated between bin centres."""
    w = np.asarray(w, float)
    if w.sum() <= 0:
        return float("nan")
    cdf = np.cumsum(w) / w.sum()
    keep = np.concatenate([[True], np.diff(cdf) > 0])
    return float(np.interp(q, cdf[keep], np.asarray(x, float)[keep]))


def zetaview_txt(name, *, dilution, in_cell_per_ml, n_traces, seed, comma, drift="Good", date="2024-03-12",
                 sample="EV-HEK", median_nm=115.0, sigma=0.33, layout="multi_key", encoding="latin-1",
                 newline="\r\n") -> tuple[bytes, NtaTruth]:
    """One ZetaView ``.txt`` export and its truth.

    Parameters
    ----------
    name : str
        Measurement name (in the ``Original File:`` video path).
    dilution : float or None
        Written as ``Dilution::``; None leaves it out (not recorded).
    in_cell_per_ml : float
        Concentration in the measurement cell (the ``Concentration / cm-3``
        column sums to it).
    n_traces : int
        Number of sizes drawn (particles tracked); 0 gives an empty measurement.
    seed : int
    comma : bool
        Decimal commas (German locale) instead of points, in the header too.
    drift : str
        ``Particle Drift Check Result`` (``'Good'``; anything else is a warning).
    sample, median_nm, sigma
        Sample name, and median and log-SD of the log-normal sizes.
    layout : str
        ``'multi_key'``: the header of the real ZetaView 8.05.16 SP3 export in
        ../shared/data/nta/zetaview (several ``Key:\tvalue`` pairs on one
        line: ``Number of Traces``, ``Average Number of Particles`` and
        ``Dilution::``; remarks after a tab: ``pH:\t7,000000\tentered``; six
        decimals; ``Results`` with the three medians).
        ``'one_key_per_line'``: one pair per line (not taken from a real file).
    encoding : str
        ``'latin-1'`` (the real file) or ``'utf-8'``.
    newline : str
        ``'\r\n'`` (the real file) or ``'\n'``.

    Notes
    -----
    The header's ``Median Number (D50)`` and ``Median Volume (D50)`` are
    computed as the instrument does (cumulative count between the centres of
    the linear bins; volume = number x centre^3), so a reader is checked
    against the instrument's rule; ``truth.median_nm`` is the median of the
    raw sizes.
    """
    if layout not in ZETAVIEW_LAYOUTS:
        raise ValueError(f"layout must be one of {ZETAVIEW_LAYOUTS}, got {layout!r}")
    rng = np.random.default_rng(seed)
    sizes = rng.lognormal(np.log(median_nm), sigma, n_traces)
    sizes = sizes[(sizes > 0) & (sizes < 1000)]
    per_particle = in_cell_per_ml / len(sizes) if len(sizes) else 0.0
    lin_edges = np.append(LIN_CENTRES - 2.5, LIN_CENTRES[-1] + 2.5)
    counts, _ = np.histogram(sizes, lin_edges)
    d50 = _centre_median(LIN_CENTRES, counts)
    vd50 = _centre_median(LIN_CENTRES, counts * LIN_CENTRES ** 3)
    ppf = in_cell_per_ml / 2.0e5          # ~155 particles per frame at 3.1e7/ml
    p = lambda x, fmt=".6f": _zv_plain(x, fmt, comma)  # noqa: E731
    video = f"{date.replace('-', '')}_0001_{name}_size_488"
    if layout == "multi_key":
        traces = f"Number of Traces:\t{len(sizes)}\t(at {p(0.1)})\tAverage Number of Particles:\t{p(ppf)}"
        if dilution is not None:
            traces += f"\tDilution::\t{p(dilution)}"
        header = [
            f"Original File:\tC:\\ZetaView\\{video}.avi\tSection:\t{p(0.1, '.1f')} [0]",
            "Operator:\tZetaUser", f"Experiment:\t{date.replace('-', '')}_0001", "ZetaView S/N:\t18-398",
            "Cell S/N:\t018-020-16-244-014-1", "Software:\tZetaView (version 8.05.16 SP3)\tAnalyze:\t8.05.16 SP3",
            "SOP:\tEV_size_488", f"Sample:\t{sample}", "Electrolyte:\tPBS", f"pH:\t{p(7.0)}\tentered",
            f"Conductivity:\t{p(14912.0)}\tsensed", f"Temperature:\t{p(23.51)}\tsensed", f"Viscosity:\t{p(0.92)}",
            f"Date:\t{date}", "Time:\t14:22:05", "General Remarks:\t", "Remarks:\t", "Sample Info 1:\t",
            "Sample Info 2:\t", "Sample Info 3:", f"Scattering Intensity:\t{p(33.0)}",
            f"Detected Particles:\t{int(round(ppf))}", "Particle Drift Checked:\t2024-03-12 14:10:00",
            f"Particle Drift Check Result:\t{drift}", "Cell Checked:\t2024-03-12 09:47:06",
            "Cell Check Result:\tVery Good", "Type of Measurement:\tSize Distribution",
            f"Microscope Position:\t{p(0.100001)}", traces, "Image Evaluation:", "Minimum Brightness:\t30",
            "Minimum Area:\t10", "Maximum Area:\t1000", "Maximum Brightness:\t255", "Tracking Radius2:\t100",
            "Minimum Tracelength:\t15", "Begin New Traces:\t1", "PSD log Correction:\t0",
            f"Camera:\tFpSec 30 #Cycles 2 FRate {p(30.0)}", f"Sensitivity:\t{p(80.0)}", f"Gain:\t{p(1.0)}",
            f"Offset:\t{p(0.0)}", f"Shutter:\t{p(100.0)}", "Brightness:\tNaN",
            "Camera Trigger Duration µs:\tShutter Duration", "Camera Trigger Delay µs:\t0",
            f"Laser Wavelength nm:\t{p(488.0)}", "Filter Wavelength nm:\tScatter",
            f"actual Microscope:\t-118322\t(Pos\t{p(0.100001)})", f"Micrometer per Pixel:\t{p(0.714)}",
            f"ZP Factor:\t{p(13.231712)} (Smoluchowski)", f"Results (Pos {p(0.100001)}):",
            f"Median Number (D50):\t{p(d50)}", f"Median Concentration (D50):\t{p(d50)}",
            f"Median Volume (D50):\t{p(vd50)}", "Size Distribution"]
    else:
        header = [
            f"Original File:\tC:\\ZetaView\\Data\\{video}.avi\tSection:\t",
            "Operator:\tAB", f"Experiment:\t{sample}", "ZetaView S/N:\t19-462", "Cell S/N:\t19-462-C",
            "Software:\tZetaView (version 8.05.14 SP7)\tAnalyze:\t8.05.14 SP7", "SOP:\tEV_size_488",
            f"Sample:\t{sample}", "Electrolyte:\tPBS", f"pH:\t{p(7.0, '.2f')} entered",
            f"Conductivity:\t{p(15210.0, '.2f')} sensed µS/cm", "TempControl:\tOff",
            f"SetTemperature:\t{p(25.0, '.2f')} °C", f"Temperature:\t{p(23.51, '.2f')} sensed",
            f"Viscosity:\t{p(0.92, '.2f')} mPas", f"Date:\t{date}", "Time:\t14:22:05", "General Remarks:\t",
            "Remarks:\t", "Sample Info 1:\t", "Particle Drift Checked:\t2024-03-12 14:10:00",
            f"Particle Drift Check Result:\t{drift}", "Cell Checked:\t2024-03-12", "Cell Check Result:\tVery Good",
            "Type of Measurement:\tSize Distribution", "Positions:\t11", "Microscope Position:\thigh",
            f"Number of Traces:\t{len(sizes)}", f"Average Number of Particles:\t{p(ppf, '.2f')}",
            *([f"Dilution::\t{p(dilution, '.2f')}"] if dilution is not None else []),
            f"Concentration Correction Factor:\t{p(1.0, '.2f')}", f"Laser Wavelength nm:\t{p(488.0, '.2f')}",
            f"Median Number (D50):\t{p(d50, '.4f')} nm", f"Median Volume (D50):\t{p(vd50, '.4f')} nm",
            "Minimum Brightness:\t30", "Minimum Area:\t10", "Maximum Area:\t1000", "Maximum Brightness:\t255",
            "Tracking Radius2:\t100", "Minimum Tracelength:\t15", f"Camera:\tFpSec 30 #Cycles 2 FRate {p(30.0, '.2f')}",
            f"Sensitivity:\t{p(80.0, '.1f')}", "Shutter:\t100", f"Gain:\t{p(1.0, '.1f')}", "", "Size Distribution"]
    cols = "Size / nm\tNumber\tConcentration / cm-3\tVolume / nm^3\tArea / nm^2"
    r = np.sqrt(LOG_CENTRES[1] / LOG_CENTRES[0])
    log_edges = np.append(LOG_CENTRES / r, LOG_CENTRES[-1] * r)
    body = [cols] + _zv_table(sizes, LIN_CENTRES, lin_edges, per_particle, comma)
    body += ["\t".join(_zv_num(v, comma) for v in (-1.0, -1.0, -1.0, -1.0, 0.0))]
    body += _zv_table(sizes, LOG_CENTRES, log_edges, per_particle, comma)
    text = newline.join(header + body) + newline
    factor = 1.0 if dilution is None else float(dilution)
    one = lambda v: np.array([float(v)])  # noqa: E731
    raw_stat = (lambda f, *a: f(sizes, *a)) if len(sizes) else (lambda f, *a: np.nan)  # noqa: E731
    truth = NtaTruth(
        instrument="zetaview", videos=[video],
        dilution=None if dilution is None else float(dilution),
        concentration_measured_per_ml=one(in_cell_per_ml if len(sizes) else 0.0),
        concentration_per_ml=one((in_cell_per_ml if len(sizes) else 0.0) * factor),
        median_nm=one(raw_stat(np.median)), mean_nm=one(raw_stat(np.mean)), mode_nm=one(np.nan),
        d10_nm=one(raw_stat(np.percentile, 10)), d90_nm=one(raw_stat(np.percentile, 90)),
        particles_per_frame=one(round(ppf, 6 if layout == "multi_key" else 2)),
        extra={"sizes": sizes, "printed_d50_nm": d50, "printed_volume_d50_nm": vd50})
    return text.encode(encoding), truth


# --------------------------------------------------------------------------- NanoSight

_CONDITIONS = {"Temperature/C": ["24.100", "24.150", "24.180"], "Viscosity/cP": ["0.911", "0.910", "0.909"],
               "Max Jump Distance": ["12.1", "12.3", "12.0"], "Completed tracks": [3100, 3250, 2980],
               "X-Drift (pix/frame)": ["1.2", "1.1", "1.3"], "Y-Drift (pix/frame)": ["0.0", "0.1", "0.0"],
               "Particles per frame flag": ["OK", "OK", "Too few"]}


def _per_video(label, n, conditions):
    vals = conditions.get(label, _CONDITIONS[label])
    return [vals[k % len(vals)] for k in range(n)]


def nanosight_summary(name="synthetic", videos=("syn_00", "syn_01", "syn_02"), *, dilution=500.0,
                      conc_cell=(2.0e7, 2.1e7, 1.9e7), medians=(128.0, 131.0, 133.0), sigma=0.3,
                      sample_description="EV µ-fraction", ppf_divisor=2.5e5,
                      remarks="made by tests/data/nta/make_fixtures.py",
                      conditions: dict | None = None) -> tuple[bytes, NtaTruth]:
    """A NanoSight ``ExperimentSummary.csv`` (cp1252, CRLF) in an NTA 3.3-like layout, and its truth.

    Parameters
    ----------
    name : str
        Experiment name (``<name>.nano``).
    videos : sequence of str
        Video names (``Filename:`` row); one per entry of ``conc_cell`` and ``medians``.
    dilution : float or None
        Recorded dilution; concentrations are multiplied by it, as the
        instrument does. None writes ``Not recorded`` (concentrations as measured).
    conc_cell : sequence of float
        Concentration in the cell per video, particles/ml.
    medians : sequence of float
        Median hydrodynamic diameter per video, nm; log-normal with log-SD ``sigma``.
    sample_description : str
        ``Sample Description`` (the reader's default sample name).
    ppf_divisor : float
        Particles per frame = concentration in the cell / ``ppf_divisor``.
    remarks : str
        The ``Remarks`` line.
    conditions : dict, optional
        Per-video overrides of the defaults in ``_CONDITIONS`` (row label ->
        list of cells, repeated when shorter than ``videos``), e.g.
        ``{"Particles per frame flag": ["OK"]}`` for no concentration warning.
    """
    conditions = conditions or {}
    n = len(videos)
    factor = 1.0 if dilution is None else float(dilution)
    centres = np.arange(0.5, 1000, 1.0)
    edges = np.arange(0.0, 1001, 1.0)
    conc_cell = np.asarray(conc_cell, dtype=float)
    medians = np.asarray(medians, dtype=float)
    hist, stats = [], []
    for k in range(n):
        dist = lognorm(sigma, scale=medians[k])
        prob = np.diff(dist.cdf(edges))
        hist.append(prob * conc_cell[k] * factor)
        mean, var = dist.stats(moments="mv")
        mode = medians[k] * np.exp(-sigma ** 2)
        stats.append([float(mean), mode, float(np.sqrt(var)), *dist.ppf([0.1, 0.5, 0.9]), 2500])
    hist = np.array(hist)
    conc = hist.sum(axis=1)
    stats = np.array(stats)

    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    row = lambda label, vals: w.writerow([label, *vals])  # noqa: E731
    w.writerow(["NTA Experiment Summary File", ""])
    w.writerow(["Created with NTA 3.3 Dev Build 3.3.104", ""])
    w.writerow([])
    w.writerow(["[Experiment Details]", ""])
    for k, v in [("Software Version", "NTA 3.3 Dev Build 3.3.104"), ("Experiment Name", f"{name}.nano"),
                 ("Operator Name", "Zoë"), ("Time Captured", "09:15:00  02/03/2019"),
                 ("Sample Description", sample_description), ("Pre-treatment", ""), ("Diluent", "PBS"),
                 ("Remarks", remarks)]:
        w.writerow([k, v])
    w.writerow([])
    row("Filename:", videos)
    row("Processed", ["Yes"] * n)
    w.writerow([])
    w.writerow(["[Conditions]"])
    for label, vals in [("Temperature/C", _per_video("Temperature/C", n, conditions)),
                        ("Viscosity/cP", _per_video("Viscosity/cP", n, conditions)), ("Camera Type", ["sCMOS"] * n),
                        ("Laser Type", ["Blue488"] * n), ("Camera Level", [14] * n),
                        ("Shutter/ms", ["25.0"] * n), ("Slider Shutter", [1000] * n), ("Slider Gain", [250] * n),
                        ("Frame rate/fps", ["24.98"] * n), ("Syringe Pump Speed/AU", [50] * n)]:
        row(label, vals)
    w.writerow([])
    w.writerow(["[Settings]"])
    for label, vals in [("Detection Threshold", [5] * n), ("Min Track Length", ["Auto"] * n),
                        ("Max Jump Mode", ["Auto"] * n),
                        ("Max Jump Distance", _per_video("Max Jump Distance", n, conditions)),
                        ("Blur", ["Auto"] * n), ("First frame", [0] * n), ("Total frames analysed", [1498] * n)]:
        row(label, vals)
    w.writerow([])
    w.writerow(["[Results]", *[""] * n, "Average", "Standard Error"])
    se = lambda v: np.std(v, ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan  # noqa: E731
    ppf = conc / factor / ppf_divisor
    row("Concentration (Particles / ml)", [f"{c:.2e}" for c in conc] + [f"{conc.mean():.2e}", f"{se(conc):.2e}"])
    row("Dilution factor (concentrations adjusted for this factor)",
        [f"{dilution:.2e}" if dilution is not None else "Not recorded"] * n)
    row("Particles per frame", [f"{v:.1f}" for v in ppf] + [f"{ppf.mean():.1f}", f"{se(ppf):.1f}"])
    row("Centres per frame", [f"{v * 0.9:.1f}" for v in ppf])
    row("Completed tracks", _per_video("Completed tracks", n, conditions))
    row("X-Drift (pix/frame)", _per_video("X-Drift (pix/frame)", n, conditions))
    row("Y-Drift (pix/frame)", _per_video("Y-Drift (pix/frame)", n, conditions))
    w.writerow([])
    w.writerow(["[Concentration Warnings]"])
    row("Validity of concentration measurement", ["OK"] * n)
    row("Particles per frame", _per_video("Particles per frame flag", n, conditions))
    w.writerow([])
    w.writerow(["[Information]"])
    row("Vibration detected", ["No"] * n)
    row("Vibration correction applied", ["No"] * n)
    row("Errors (1)", [""] * n)
    w.writerow([])
    w.writerow(["[Size Data]"])
    w.writerow(["Analysis Method", "FTLA"])
    w.writerow(["Weighting", "Number"])
    row("Filename", list(videos) + ["Average", "Standard Error"])
    for i, label in enumerate(["Mean", "Mode", "SD", "D10", "D50", "D90"]):
        v = stats[:, i]
        row(label, [f"{x:.1f}" for x in v] + [f"{v.mean():.1f}", f"{se(v):.1f}"])
    row("Valid Tracks", [f"{x:.1f}" for x in stats[:, 6]])
    w.writerow(["Graph Data"])
    row("Bin centre (nm)", ["Concentration (particles / ml)"] * n + ["Concentration average", "Standard Error"])
    for j, c in enumerate(centres):
        vals = hist[:, j]
        row(f"{c:.1f}", [f"{v:.0f}" for v in vals] + [f"{vals.mean():.0f}", f"{se(vals):.0f}"])
    w.writerow([])
    row("Percentile", ["Size (nm)"] * n)
    dists = [lognorm(sigma, scale=m) for m in medians]
    for q in range(101):
        row(q, [f"{d.ppf(min(max(q, 0.01), 99.99) / 100):.1f}" for d in dists])
    w.writerow([])
    truth = NtaTruth(
        instrument="nanosight", videos=list(videos), dilution=None if dilution is None else float(dilution),
        concentration_measured_per_ml=conc / factor, concentration_per_ml=conc,
        median_nm=stats[:, 4], mean_nm=stats[:, 0], mode_nm=stats[:, 1], d10_nm=stats[:, 3], d90_nm=stats[:, 5],
        particles_per_frame=ppf, extra={"sd_nm": stats[:, 2], "sigma": sigma})
    return out.getvalue().encode("cp1252"), truth


def nanosight_particle_files(videos, medians, sigma=0.3, seed=3, n=40) -> dict:
    """Minimal per-video ``<video>_ParticleData.csv`` and a ``<videos[0]>_AllTracks.csv``.

    Returns
    -------
    dict
        File name -> bytes.
    """
    rng = np.random.default_rng(seed)
    files = {}
    for v, m in zip(videos, medians):
        s = lognorm(sigma, scale=m).rvs(n, random_state=rng)
        pd_out = io.StringIO()
        w = csv.writer(pd_out, lineterminator="\r\n")
        w.writerow(["Particle ID", "Size/nm", "D/nm^2/s", "Track length", "Included in distribution?"])
        for i, x in enumerate(s):
            w.writerow([i + 1, f"{x:.1f}", f"{4.3e6 / x:.0f}", 10 + i % 7, "True" if i % 9 else "False"])
        files[f"{v}_ParticleData.csv"] = pd_out.getvalue().encode("cp1252")
    tr = io.StringIO()
    w = csv.writer(tr, lineterminator="\r\n")
    w.writerow(["Frame Number", "Particle ID", "x", "y", "Size/nm", "Included in distribution?"])
    for i in range(12):
        w.writerow([i, 1 + i // 4, f"{100 + i * 1.5:.1f}", f"{200 - i:.1f}", "131.0", "True"])
    files[f"{videos[0]}_AllTracks.csv"] = tr.getvalue().encode("cp1252")
    return files
