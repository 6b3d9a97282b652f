"""Write the NTA test fixtures in this folder (run once; the outputs are committed).

None of these files came from an instrument. They are built from the format
descriptions in ``docs/nta.md`` (ZetaView) and from the layout of the real
NanoSight NTA 3.2/3.4 exports in ``../shared/data/nta`` (NanoSight), with
particle sizes drawn from a log-normal distribution so that the statistics the
"instrument" writes into the header (median from the raw particle sizes) are
independent of the binned tables the reader recomputes them from.

    python tests/data/nta/make_fixtures.py
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from scipy.stats import lognorm

HERE = Path(__file__).resolve().parent
LIN_CENTRES = np.arange(2.5, 1000, 5.0)                     # 5-nm linear bins
LOG_CENTRES = 10 ** np.linspace(1, 3, 21)                   # 10 per decade, 10-1000 nm


def _sizes(rng, n, median=115.0, sigma=0.33):
    return rng.lognormal(np.log(median), sigma, n)


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


def zetaview(name, *, dilution, in_cell_per_ml, n_traces, seed, comma, drift="Good", date="2024-03-12"):
    rng = np.random.default_rng(seed)
    sizes = _sizes(rng, n_traces)
    sizes = sizes[(sizes > 0) & (sizes < 1000)]
    per_particle = in_cell_per_ml / len(sizes)
    d50 = float(np.median(sizes))
    ppf = in_cell_per_ml / 2.0e5          # ~155 particles per frame at 3.1e7/ml
    p = lambda x, fmt: _zv_plain(x, fmt, comma)  # noqa: E731
    header = [
        f"Original File:\tC:\\ZetaView\\Data\\{date.replace('-', '')}_0001_{name}_size_488.avi\tSection:\t",
        "Operator:\tAB",
        "Experiment:\tEV-HEK",
        "ZetaView S/N:\t19-462",
        "Cell S/N:\t19-462-C",
        "Software:\tZetaView (version 8.05.14 SP7)\tAnalyze:\t8.05.14 SP7",
        "SOP:\tEV_size_488",
        "Sample:\tEV-HEK",
        "Electrolyte:\tPBS",
        f"pH:\t{p(7.0, '.2f')} entered",
        f"Conductivity:\t{p(15210.0, '.2f')} sensed µS/cm",
        "TempControl:\tOff",
        f"SetTemperature:\t{p(25.0, '.2f')} °C",
        f"Temperature:\t{p(23.51, '.2f')} sensed",
        f"Viscosity:\t{p(0.92, '.2f')} mPas",
        f"Date:\t{date}",
        "Time:\t14:22:05",
        "General Remarks:\t",
        "Remarks:\t",
        "Sample Info 1:\t",
        "Particle Drift Checked:\t2024-03-12 14:10:00",
        f"Particle Drift Check Result:\t{drift}",
        "Cell Checked:\t2024-03-12",
        "Cell Check Result:\tVery Good",
        "Type of Measurement:\tSize Distribution",
        "Positions:\t11",
        "Microscope Position:\thigh",
        f"Number of Traces:\t{len(sizes)}",
        f"Average Number of Particles:\t{p(ppf, '.2f')}",
        f"Dilution::\t{p(dilution, '.2f')}",
        f"Concentration Correction Factor:\t{p(1.0, '.2f')}",
        f"Laser Wavelength nm:\t{p(488.0, '.2f')}",
        f"Median Number (D50):\t{p(d50, '.1f')} nm",
        "Minimum Brightness:\t30",
        "Minimum Area:\t10",
        "Maximum Area:\t1000",
        "Maximum Brightness:\t255",
        "Tracking Radius2:\t100",
        "Minimum Tracelength:\t15",
        f"Camera:\tFpSec 30 #Cycles 2 FRate {p(30.0, '.2f')}",
        f"Sensitivity:\t{p(80.0, '.1f')}",
        "Shutter:\t100",
        f"Gain:\t{p(1.0, '.1f')}",
        "",
        "Size Distribution",
    ]
    cols = "Size / nm\tNumber\tConcentration / cm-3\tVolume / nm^3\tArea / nm^2"
    lin_edges = np.append(LIN_CENTRES - 2.5, LIN_CENTRES[-1] + 2.5)
    r = np.sqrt(LOG_CENTRES[1] / LOG_CENTRES[0])
    log_edges = np.append(LOG_CENTRES / r, LOG_CENTRES[-1] * r)
    body = [cols] + _zv_table(sizes, LIN_CENTRES, lin_edges, per_particle, comma)
    body += [_zv_num(-1.0, comma)]
    body += _zv_table(sizes, LOG_CENTRES, log_edges, per_particle, comma)
    text = "\r\n".join(header + body) + "\r\n"
    (HERE / f"zetaview_{name}_{'comma' if comma else 'dot'}.txt").write_bytes(text.encode("latin-1"))


# --------------------------------------------------------------------------- NanoSight

def nanosight(name="synthetic", videos=("syn_00", "syn_01", "syn_02"), seed=3, dilution=500.0):
    """A NanoSight summary in an NTA 3.3-like layout: rows reordered, extra rows.

    Unlike the real instrument (whose FTLA output is smooth), a histogram of a
    few thousand random sizes is too noisy at 1-nm bins, so the bins hold the
    exact log-normal probability of each bin and the summary rows hold the
    analytic statistics of that log-normal: the reader's recomputation from
    bins is then compared against numbers that were not computed from bins.
    """
    rng = np.random.default_rng(seed)
    n = len(videos)
    centres = np.arange(0.5, 1000, 1.0)
    edges = np.arange(0.0, 1001, 1.0)
    conc_cell = np.array([2.0e7, 2.1e7, 1.9e7])
    medians = np.array([128.0, 131.0, 133.0])
    sigma = 0.3
    hist, stats, particles = [], [], []
    for k in range(n):
        dist = lognorm(sigma, scale=medians[k])
        prob = np.diff(dist.cdf(edges))
        hist.append(prob * conc_cell[k] * dilution)
        mean, var = dist.stats(moments="mv")
        mode = medians[k] * np.exp(-sigma ** 2)
        stats.append([float(mean), mode, float(np.sqrt(var)), *dist.ppf([0.1, 0.5, 0.9]), 2500])
        particles.append(dist)
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
                 ("Sample Description", "EV µ-fraction"), ("Pre-treatment", ""), ("Diluent", "PBS"),
                 ("Remarks", "made by tests/data/nta/make_fixtures.py")]:
        w.writerow([k, v])
    w.writerow([])
    row("Filename:", videos)
    row("Processed", ["Yes"] * n)
    w.writerow([])
    w.writerow(["[Conditions]"])
    for label, vals in [("Temperature/C", ["24.100", "24.150", "24.180"]),
                        ("Viscosity/cP", ["0.911", "0.910", "0.909"]), ("Camera Type", ["sCMOS"] * n),
                        ("Laser Type", ["Blue488"] * n), ("Camera Level", [14] * n),
                        ("Shutter/ms", ["25.0"] * n), ("Slider Shutter", [1000] * n), ("Slider Gain", [250] * n),
                        ("Frame rate/fps", ["24.98"] * n), ("Syringe Pump Speed/AU", [50] * n)]:
        row(label, vals)
    w.writerow([])
    w.writerow(["[Settings]"])
    for label, vals in [("Detection Threshold", [5] * n), ("Min Track Length", ["Auto"] * n),
                        ("Max Jump Mode", ["Auto"] * n), ("Max Jump Distance", ["12.1", "12.3", "12.0"]),
                        ("Blur", ["Auto"] * n), ("First frame", [0] * n), ("Total frames analysed", [1498] * n)]:
        row(label, vals)
    w.writerow([])
    w.writerow(["[Results]", *[""] * n, "Average", "Standard Error"])
    se = lambda v: np.std(v, ddof=1) / np.sqrt(len(v))  # noqa: E731
    ppf = conc / dilution / 2.5e5
    row("Concentration (Particles / ml)", [f"{c:.2e}" for c in conc] + [f"{conc.mean():.2e}", f"{se(conc):.2e}"])
    row("Dilution factor (concentrations adjusted for this factor)", [f"{dilution:.2e}"] * n)
    row("Particles per frame", [f"{v:.1f}" for v in ppf] + [f"{ppf.mean():.1f}", f"{se(ppf):.1f}"])
    row("Centres per frame", [f"{v * 0.9:.1f}" for v in ppf])
    row("Completed tracks", [3100, 3250, 2980])
    row("X-Drift (pix/frame)", ["1.2", "1.1", "1.3"])
    row("Y-Drift (pix/frame)", ["0.0", "0.1", "0.0"])
    w.writerow([])
    w.writerow(["[Concentration Warnings]"])
    row("Validity of concentration measurement", ["OK"] * n)
    row("Particles per frame", ["OK", "OK", "Too few"])
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
    for q in range(101):
        row(q, [f"{d.ppf(min(max(q, 0.01), 99.99) / 100):.1f}" for d in particles])
    w.writerow([])
    (HERE / f"nanosight_{name}_ExperimentSummary.csv").write_bytes(out.getvalue().encode("cp1252"))

    for v, dist in zip(videos, particles):
        s = dist.rvs(40, random_state=rng)
        pd_out = io.StringIO()
        w = csv.writer(pd_out, lineterminator="\r\n")
        w.writerow(["Particle ID", "Size/nm", "D/nm^2/s", "Track length", "Included in distribution?"])
        for i, x in enumerate(s):
            w.writerow([i + 1, f"{x:.1f}", f"{4.3e6 / x:.0f}", 10 + i % 7, "True" if i % 9 else "False"])
        (HERE / f"{v}_ParticleData.csv").write_text(pd_out.getvalue(), encoding="cp1252")
    tr = io.StringIO()
    w = csv.writer(tr, lineterminator="\r\n")
    w.writerow(["Frame Number", "Particle ID", "x", "y", "Size/nm", "Included in distribution?"])
    for i in range(12):
        w.writerow([i, 1 + i // 4, f"{100 + i * 1.5:.1f}", f"{200 - i:.1f}", "131.0", "True"])
    (HERE / f"{videos[0]}_AllTracks.csv").write_text(tr.getvalue(), encoding="cp1252")


if __name__ == "__main__":
    zetaview("EV-HEK_1000x", dilution=1000, in_cell_per_ml=3.1e7, n_traces=1850, seed=1, comma=False)
    zetaview("EV-HEK_1000x", dilution=1000, in_cell_per_ml=3.1e7, n_traces=1850, seed=1, comma=True)
    zetaview("EV-HEK_500x", dilution=500, in_cell_per_ml=6.3e7, n_traces=3700, seed=2, comma=False,
             drift="Too high")
    nanosight()
