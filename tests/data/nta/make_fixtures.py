"""Write the NTA test fixtures in this folder (run once; the outputs are committed).

None of these files came from an instrument. They are built by
:mod:`exoimage.simulate.nta` in the layouts of the real exports in
``../shared/data/nta``: the ZetaView 8.05.16 SP3 header (several keys on one
line, ``Dilution::`` after ``Average Number of Particles``) and the NanoSight
NTA 3.2/3.4 sections, with particle sizes drawn from a log-normal
distribution so that the statistics the "instrument" writes into the header
(median from the raw particle sizes) are independent of the binned tables the
reader recomputes them from.

    python tests/data/nta/make_fixtures.py
"""

from __future__ import annotations

from pathlib import Path

from exoimage.simulate.nta import nanosight_particle_files, nanosight_summary, zetaview_txt

HERE = Path(__file__).resolve().parent


def zetaview(name, *, comma, **kw):
    data, _ = zetaview_txt(name, comma=comma, **kw)
    (HERE / f"zetaview_{name}_{'comma' if comma else 'dot'}.txt").write_bytes(data)


def nanosight(name="synthetic", videos=("syn_00", "syn_01", "syn_02"), medians=(128.0, 131.0, 133.0)):
    """A NanoSight summary in an NTA 3.3-like layout (rows reordered, extra rows), with particle files.

    Unlike the real instrument (whose FTLA output is smooth), a histogram of a
    few thousand random sizes is too noisy at 1-nm bins, so the bins hold the
    exact log-normal probability of each bin and the summary rows hold the
    analytic statistics of that log-normal.
    """
    data, _ = nanosight_summary(name, videos, dilution=500.0, medians=medians)
    (HERE / f"nanosight_{name}_ExperimentSummary.csv").write_bytes(data)
    for fname, blob in nanosight_particle_files(videos, medians, seed=3).items():
        (HERE / fname).write_bytes(blob)


if __name__ == "__main__":
    zetaview("EV-HEK_1000x", dilution=1000, in_cell_per_ml=3.1e7, n_traces=1850, seed=1, comma=False)
    zetaview("EV-HEK_1000x", dilution=1000, in_cell_per_ml=3.1e7, n_traces=1850, seed=1, comma=True)
    zetaview("EV-HEK_500x", dilution=500, in_cell_per_ml=6.3e7, n_traces=3700, seed=2, comma=False,
             drift="Too high")
    nanosight()
