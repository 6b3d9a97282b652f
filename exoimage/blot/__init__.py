"""Western blot densitometry: lanes, bands, background, saturation, normalisation.

Quick start::

    from exoimage.blot import quantify_blot
    result = quantify_blot(image_or_array)        # BlotResult
    result.lanes, result.bands                      # pandas tables

See ``docs/blot.md`` for the method, options and output columns.
"""

from .pipeline import (BAND_COLUMNS, DEFAULT_BACKGROUND, IMAGE_COLUMNS, LANE_COLUMNS, BlotFileResult,
                       BlotParams, BlotResult, analyze_blot_file, draw_blot_overlay, measure_rectangle,
                       quantify_blot)
from .signal import POLARITIES, detect_ceiling, detect_polarity

__all__ = ["quantify_blot", "analyze_blot_file", "draw_blot_overlay", "measure_rectangle", "BlotParams",
           "BlotResult", "BlotFileResult", "LANE_COLUMNS", "BAND_COLUMNS", "IMAGE_COLUMNS",
           "DEFAULT_BACKGROUND", "POLARITIES", "detect_polarity", "detect_ceiling"]
