"""Find and measure extracellular vesicles in negative-stain TEM micrographs.

Method
------
1. **Working scale.** The image is area-averaged so that the smallest vesicle
   asked for (``min_diameter_nm``) spans about 10 working pixels; every size
   parameter is in nm and converted with the pixel size, so one setting works
   from 0.3 to 5 nm/px.
2. **Candidates.** A scale-normalised Laplacian-of-Gaussian over radii from
   ``min_diameter_nm/2`` to ``max_diameter_nm/2`` (an octave pyramid, so large
   scales stay cheap) marks blobs lighter than their surroundings (or darker,
   with ``polarity='dark'``). The LoG ignores smooth, uneven stain. With
   ``polarity='auto'`` the light polarity runs in full, the dark one quickly
   and in full only when it beats the light outlines. Circles of the
   band-passed image (Hough, in radius spans of 4x and 2x) add candidates a
   nearby larger circle or blob would hide; spans whose radii are under 8
   working pixels also run on a copy enlarged up to 2x (a faint small cup has
   too few edge pixels at working size).
3. **Outlines.** Around each candidate the full-resolution image is sampled on
   a polar grid; the outline is the closed path, found by dynamic programming,
   that follows the strongest light-to-dark edge going outwards (the body /
   stain boundary) with bounded changes in radius between neighbouring angles.
   A collapsed, darker cup centre does not matter: the path looks for the
   outer edge, so the interior is filled by construction. The edge position is
   refined to sub-pixel precision and moved out by the smoothing's curvature
   shift (sigma^2 / 2R). Outlines that failed only on edge strength, and
   circles found on the band-passed image, get a second look on the
   band-passed image (a vesicle inside a dark stain pool or broad halo), kept
   when their body is not darker than their surround there. The edge rule is
   documented in ``docs/tem.md``: the outline is moved out to the outer foot
   of the body / stain step by the step's width in excess of the image's blur,
   and a granular cap (an arc lying outside a robust low-harmonic fit of the
   outline, brighter than both the stain and the body) is cut back to the fit.
4. **Decisions.** Outlines with an edge weaker than ``min_contrast`` times the
   noise of the image's gradient, outside the size range, too irregular, or
   sitting on annotation pixels are dropped; duplicates of the same vesicle are
   merged; an outline that swallows two or more good vesicles is replaced by
   them (touching vesicles are split), while small outlines inside a large
   well-outlined vesicle (folds of a collapsed vesicle) are dropped.
5. **Measurements** come from the sub-pixel outline: equivalent-circle
   diameter, Feret diameters, circularity, aspect ratio. Vesicles whose
   outline reaches the image border are flagged (``touches_border``) and not
   sized. ``confidence`` is a logistic map of outline features fitted on
   simulator truth (:mod:`.confidence`).

Everything is deterministic: the same input gives the same output, byte for byte.

Modules
-------
:mod:`.params` (:class:`TemParams`), :mod:`.candidates` (step 2),
:mod:`.outline` (3), :mod:`.select` (4: the selection rules, one named
function each), :mod:`.measure` (5, and :func:`measure_labels` for edited
labels), :mod:`.detect` (:func:`detect_vesicles`: steps 1-5 on one array),
:mod:`.pipeline` (:func:`analyze_tem_file` / :func:`analyze_tem_image`: a
file or an Image to the per-image row every front end shows; calibration,
including from a burned-in scale bar, happens when the file is read, in
:func:`exoimage.io.read_image`) and :mod:`.draw` (:func:`draw_overlay`).
"""

from .detect import VesicleResult, detect_vesicles, measure_vesicles
from .draw import draw_overlay
from .measure import VESICLE_COLUMNS, measure_labels, summarize_diameters
from .params import NO_PIXEL_SIZE, PIXEL_SIZE_META, TemParams
from .pipeline import IMAGE_COLUMNS, TemFileResult, analyze_tem_file, analyze_tem_image

__all__ = [
    "TemParams",
    "PIXEL_SIZE_META",
    "NO_PIXEL_SIZE",
    "VesicleResult",
    "TemFileResult",
    "VESICLE_COLUMNS",
    "IMAGE_COLUMNS",
    "detect_vesicles",
    "measure_vesicles",
    "measure_labels",
    "summarize_diameters",
    "analyze_tem_file",
    "analyze_tem_image",
    "draw_overlay",
]
