"""Old import path of :mod:`exoimage.experiment.run` (documented in plugins/napari/README.md); use that."""

from .experiment.run import check_output_folder, run_experiment, write_session_report

__all__ = ["run_experiment", "check_output_folder", "write_session_report"]
