"""Nanoparticle tracking analysis (NTA) exports: NanoSight and ZetaView.

Entry points
------------
:func:`read_nta`
    Read any supported export, choosing the reader by content.
:func:`read_nanosight_summary`, :func:`read_zetaview_txt`
    The instrument-specific readers.
:func:`size_stats`
    Mean, mode, SD, D10/D50/D90 recomputed from the bin table.
:func:`nta_sample_summary`, :func:`nta_qc_checks`, :func:`dilution_series`
    Per-sample numbers, QC checks and the dilution series for the experiment report.

Formats, columns and checks are described in ``docs/nta.md``.
"""

from ._common import (MAX_NTA_LINES, MAX_NTA_PARTICLE_BYTES, MAX_NTA_TEXT_BYTES, NtaReadError, NtaResult,
                      apply_dilution)
from .nanosight import read_nanosight_particle_csv, read_nanosight_summary
from .qc import (DEFAULT_NTA_RULES, EMPTY_VIDEO_RULES, combine_tables, dilution_series, nta_qc_checks,
                 nta_sample_summary)
from .read import read_nta
from .stats import PERCENTILE_CONVENTIONS, percentiles_from_bins, size_stats, size_stats_from_bins
from .zetaview import parse_header, read_zetaview_txt

__all__ = [
    "NtaReadError", "NtaResult", "apply_dilution", "read_nta", "read_nanosight_summary",
    "read_nanosight_particle_csv", "read_zetaview_txt", "parse_header", "size_stats", "size_stats_from_bins",
    "percentiles_from_bins", "PERCENTILE_CONVENTIONS", "nta_sample_summary", "nta_qc_checks", "dilution_series",
    "DEFAULT_NTA_RULES", "EMPTY_VIDEO_RULES", "combine_tables", "MAX_NTA_TEXT_BYTES", "MAX_NTA_LINES",
    "MAX_NTA_PARTICLE_BYTES",
]
