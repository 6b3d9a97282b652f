"""TEM detector parameters (:class:`TemParams`) and the rules of a given pixel size.

The field metadata (unit, bounds, choices, help, CLI/TOML names) is what every
front end is built from (:mod:`exoimage.params`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..io import PLAUSIBLE_GIVEN_PIXEL_NM
from ..params import check_instance

__all__ = ["TemParams", "PIXEL_SIZE_META"]


@dataclass
class TemParams:
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
        "toml": "min_diameter_nm", "cli": "--min-diameter",
        "help": "smallest vesicle diameter to report, nm; anything smaller is debris"})
    max_diameter_nm: float = field(default=1000.0, metadata={
        "type": "float", "unit": "nm", "min": 0, "min_exclusive": True,
        "toml": "max_diameter_nm", "cli": "--max-diameter", "help": "largest vesicle diameter to report, nm"})
    min_contrast: float = field(default=3.0, metadata={
        "type": "float", "unit": "noise SD", "min": 0,
        "toml": "min_contrast", "cli": "--min-contrast",
        "help": "minimum edge contrast of a vesicle's outline, in noise SDs of the image"})
    polarity: str = field(default="auto", metadata={
        "type": "str", "choices": ("auto", "light", "dark"), "toml": "polarity", "cli": "--polarity",
        "help": "vesicle body lighter than the stain, darker, or decided per image"})
    min_circularity: float = field(default=0.55, metadata={
        "type": "float", "min": 0, "max": 1, "help": "outlines less round than this (4 pi A / P^2) are rejected"})

    def __post_init__(self):
        self.check()

    def as_dict(self) -> dict:
        return asdict(self)

    def check(self):
        """Check every field against its metadata (:mod:`exoimage.params`).

        Raises
        ------
        exoimage.params.ParamError
            (a ``ValueError``) naming the parameter, its value and the problem.
        """
        check_instance(self)


#: rules of a pixel size given by the user (``--pixel-size``, ``[tem.pixel_size_nm]``), same
#: format as the field metadata above; the plausible range is :data:`exoimage.io.PLAUSIBLE_GIVEN_PIXEL_NM`
PIXEL_SIZE_META = {"type": "float", "unit": "nm", "min": PLAUSIBLE_GIVEN_PIXEL_NM[0],
                   "max": PLAUSIBLE_GIVEN_PIXEL_NM[1], "cli": "--pixel-size", "optional": True,
                   "help": "pixel size in nm/px; overrides the file's calibration"}
