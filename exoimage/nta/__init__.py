"""Nanoparticle tracking analysis (NTA) exports: NanoSight and ZetaView.

Entry points
------------
:func:`read_nta`
    Read any supported export, choosing the reader by content.
:func:`read_nanosight_summary`, :func:`read_zetaview_txt`
    The instrument-specific readers.
:func:`size_stats`
    Mean, mode, SD, D10/D50/D90 recomputed from the bin table.
:func:`nta_sample_summary`, :func:`nta_qc_checks`
    Per-sample numbers and QC checks for the experiment report.

Formats, columns and checks are described in ``docs/nta.md``.
"""

from ._common import NtaReadError, NtaResult, apply_dilution
from .nanosight import read_nanosight_particle_csv, read_nanosight_summary
from .qc import DEFAULT_NTA_RULES, combine_tables, nta_qc_checks, nta_sample_summary
from .read import read_nta
from .stats import percentiles_from_bins, size_stats, size_stats_from_bins
from .zetaview import read_zetaview_txt

__all__ = [
    "NtaReadError", "NtaResult", "apply_dilution", "read_nta", "read_nanosight_summary",
    "read_nanosight_particle_csv", "read_zetaview_txt", "size_stats", "size_stats_from_bins",
    "percentiles_from_bins", "nta_sample_summary", "nta_qc_checks", "DEFAULT_NTA_RULES",
    "combine_tables",
]
