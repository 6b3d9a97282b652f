"""The experiment machinery: an experiment folder in, tables and the QC report out.

The analyses (:mod:`exoimage.tem`, :mod:`exoimage.blot`, :mod:`exoimage.nta`)
know nothing of experiments; this package runs them over a folder and turns
their results into one report::

    layout   the folder convention and experiment.toml -> Experiment (its ImageTasks)
    batch    one task per image (in process or on Dask): analyse -> a typed record
    cache    each finished record on disk (JSON + Parquet), reused by a rerun
    records  TemRecord / BlotRecord: image row, tables, warnings with codes, provenance
    nta      the NTA exports of the folder, read in this process
    tables   records + NTA -> the experiment's tables (statistics: exoimage.stats)
    qc       the registered QC rules on those tables (rules file: qc_rules.toml)
    report   report.html from the tables: a list of section functions
    run      run_experiment (the whole job) and write_session_report (napari)

Where to add things: a QC check is one function registered with
:func:`exoimage.experiment.qc.qc_rule`; a report section is one function
registered with :func:`exoimage.experiment.report.report_section`; a pixel-size
source is registered in :mod:`exoimage.calibration`; a warning code in
:mod:`exoimage.warning_codes`.

``from exoimage.experiment import load_experiment, run_experiment`` is the
public entry point (the experiment.toml reference is in :mod:`exoimage.experiment.layout`).
"""

from .layout import (KNOWN_MARKERS, MAX_CONFIG_BYTES, BlotSpec, Experiment, ExperimentError, ImageTask,
                     load_experiment, marker_category, read_config_toml)

__all__ = ["ExperimentError", "Experiment", "ImageTask", "BlotSpec", "load_experiment", "KNOWN_MARKERS",
           "marker_category", "read_config_toml", "MAX_CONFIG_BYTES", "run_experiment", "write_session_report"]


def __getattr__(name):  # the run's functions on first use: importing the layout stays light
    if name in ("run_experiment", "write_session_report", "check_output_folder"):
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
