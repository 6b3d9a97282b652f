"""Calibration sources: where an image's pixel size came from, and whether QC trusts it.

Every :class:`~exoimage.io.Image` names the source of its pixel size
(``pixel_size_source``). The QC report reads this registry: a pixel size from a
``trusted`` source passes the calibration check; one from an untrusted source
(a burned-in scale bar read by OCR) gets the status its rule says (``[calibration]``
of the rules file, key = the source's name); no pixel size, or one from a
source that is not registered, gets ``[calibration] missing``.

A new reader or calibration method registers its source once
(:func:`register_calibration_source`); nothing else needs to know about it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CalibrationSource", "CALIBRATION_SOURCES", "register_calibration_source", "calibration_source",
           "is_trusted", "NO_CALIBRATION"]

#: ``pixel_size_source`` of an image without a pixel size.
NO_CALIBRATION = "none"


@dataclass(frozen=True)
class CalibrationSource:
    """One source of a pixel size.

    Attributes
    ----------
    name : str
        The ``pixel_size_source`` value.
    trusted : bool
        A calibration from here passes QC as it is (written by the instrument,
        or given by the user); untrusted ones are flagged for a check.
    description : str
        Where the value comes from, worded to follow "<n> nm/px" (the QC
        reason of an untrusted source: "1.2 nm/px read from the burned-in scale bar").
    """

    name: str
    trusted: bool
    description: str = ""


#: Every known calibration source by name; add one with :func:`register_calibration_source`.
CALIBRATION_SOURCES: dict[str, CalibrationSource] = {}


def register_calibration_source(name: str, *, trusted: bool, description: str = "") -> CalibrationSource:
    """Register a calibration source (re-registering the same name replaces it); returns it."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"calibration source name {name!r}: must be a non-empty string")
    src = CalibrationSource(name, bool(trusted), description)
    CALIBRATION_SOURCES[name] = src
    return src


def calibration_source(name) -> CalibrationSource | None:
    """The registered source called ``name``, or None."""
    return CALIBRATION_SOURCES.get(name) if isinstance(name, str) else None


def is_trusted(name) -> bool:
    """True when ``name`` is a registered, trusted source."""
    src = calibration_source(name)
    return bool(src and src.trusted)


# the sources of exoimage.io.read_image and exoimage.scalebar today
for _name, _trusted, _what in (
        ("given", True, "given by the user (command line, experiment.toml or the plugin)"),
        ("imagej", True, "ImageJ TIFF metadata"),
        ("ome", True, "OME-XML metadata"),
        ("fei", True, "FEI / Thermo Fisher TIFF metadata"),
        ("zeiss", True, "Zeiss SEM/TEM TIFF metadata"),
        ("olympus_sis", True, "Olympus SIS TIFF metadata"),
        ("tiff_resolution", True, "TIFF resolution tags"),
        ("gatan", True, "Gatan DigitalMicrograph metadata"),
        ("mrc", True, "MRC header"),
        ("tia", True, "FEI / Thermo Fisher TIA .ser/.emi metadata"),
        ("velox", True, "Thermo Fisher Velox EMD metadata"),
        ("emd", True, "EMD (NCEM) metadata"),
        ("jeol", True, "JEOL Analysis Station .img/.map metadata"),
        ("jeol_sightx", True, "JEOL SightX TIFF metadata (magnification and resolution)"),
        ("phenom", True, "Phenom ELID archive metadata"),
        ("tvips", True, "TVIPS EM-MENU TIFF metadata"),
        ("scale_bar", False, "read from the burned-in scale bar"),
        ("scale_bar_drawn", True, "measured by the user on the burned-in scale bar (a line drawn in the plugin)"),
        (NO_CALIBRATION, False, "no pixel size")):
    register_calibration_source(_name, trusted=_trusted, description=_what)
del _name, _trusted, _what
