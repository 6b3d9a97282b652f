"""TEM detector parameters (:class:`TemParams`) and the rules of a given pixel size.

The field metadata (unit, bounds, choices, help, CLI/TOML names) is what every
front end is built from (:mod:`exoimage.params`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..io import PLAUSIBLE_GIVEN_PIXEL_NM
from ..params import CheckedParams

__all__ = ["TemParams", "PIXEL_SIZE_META", "NO_PIXEL_SIZE"]


@dataclass
class TemParams(CheckedParams):
    """Detector parameters; sizes in nm, contrast in units of the image's noise.

    Attributes
    ----------
    min_diameter_nm, max_diameter_nm : float
        Size range of reported vesicles (equivalent-circle diameter).
        Objects below the minimum are debris.
    min_contrast : float
        Minimum median edge strength of an outline, in noise standard
        deviations of the image gradient.
    polarity : {'auto', 'light', 'dark'}
        Whether vesicle bodies are lighter than the stain (classic negative
        stain), darker, or decided per image from which gives more and
        stronger outlines.
    min_circularity : float
        Outlines less round than this (4 pi A / P^2) are rejected.
    """

    min_diameter_nm: float = field(default=30.0, metadata={
        "type": "float", "unit": "nm", "min": 0, "min_exclusive": True, "below": "max_diameter_nm",
        "cli": "--min-diameter", "metavar": "NM", "label": "Min diameter", "decimals": 1,
        "help": "smallest vesicle diameter to report; anything smaller is debris"})
    max_diameter_nm: float = field(default=1000.0, metadata={
        "type": "float", "unit": "nm", "min": 0, "min_exclusive": True,
        "cli": "--max-diameter", "metavar": "NM", "label": "Max diameter", "decimals": 1,
        "help": "largest vesicle diameter to report"})
    min_contrast: float = field(default=3.0, metadata={
        "type": "float", "unit": "noise SD", "min": 0, "cli": "--min-contrast", "metavar": "SNR",
        "label": "Min contrast", "decimals": 2,
        "help": "minimum edge contrast of a vesicle's outline, in noise SDs of the image; "
                "raise it to drop faint objects"})
    polarity: str = field(default="auto", metadata={
        "type": "str", "choices": ("auto", "light", "dark"), "cli": "--polarity", "label": "Polarity",
        "help": "vesicle body lighter than the stain (classic negative stain), darker, or decided per image"})
    min_circularity: float = field(default=0.55, metadata={
        "type": "float", "min": 0, "max": 1, "cli": "--min-circularity", "metavar": "C",
        "label": "Min circularity", "advanced": True,
        "help": "outlines less round than this (4 pi area / perimeter^2; 1 = a circle) are rejected"})


#: rules of a pixel size given by the user (``--pixel-size``, ``[tem.pixel_size_nm]``), same
#: format as the field metadata above; the plausible range is :data:`exoimage.io.PLAUSIBLE_GIVEN_PIXEL_NM`
PIXEL_SIZE_META = {"type": "float", "unit": "nm", "min": PLAUSIBLE_GIVEN_PIXEL_NM[0],
                   "max": PLAUSIBLE_GIVEN_PIXEL_NM[1], "cli": "--pixel-size", "metavar": "NM", "optional": True,
                   "label": "Pixel size", "auto": "read from the file's calibration",
                   "help": "pixel size in nm/px; overrides the file's calibration"}

#: the problem of an image with no pixel size (it names the parameter; front ends reword it,
#: :func:`exoimage.params.reword`)
NO_PIXEL_SIZE = "no pixel size: give pixel_size_nm (nm per pixel)"
