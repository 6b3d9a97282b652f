"""Pixel sizes of vendor TIFF dialects that tifffile parses but exoimage's generic TIFF calibration missed.

Each parser takes an open ``tifffile.TiffFile`` and the page read and returns
nm/px or None; :func:`exoimage.io._calibrate_tiff` tries them in its order.
They follow rosettasciio's tiff plugin (``rsciio/tiff/_api.py``, 0.15:
``_axes_tvips``, ``_add_axes_digital_micrograph``, ``_axes_jeol_sightx``), re-
implemented here on tifffile so that the default install (without the GPL
``[em]`` extra) reads them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .io import unit_to_nm

__all__ = ["tiff_tvips", "tiff_gatan", "tiff_jeol_sightx", "INCH_M", "CM_M"]

#: TIFF ResolutionUnit 2 (inch) and 3 (cm), in metres
INCH_M = 0.0254
CM_M = 0.01

#: Gatan DigitalMicrograph's private TIFF tags ("Save as TIFF"): units and
#: scales of the two image axes (rosettasciio ``_add_axes_digital_micrograph``:
#: 65003 / 65009 are y, 65004 / 65010 are x)
GATAN_UNIT_Y, GATAN_UNIT_X, GATAN_SCALE_Y, GATAN_SCALE_X = 65003, 65004, 65009, 65010


def tiff_tvips(tf, page):
    """TVIPS EM-MENU (tag 37706): ``PixelSizeX`` in nm (rosettasciio ``_axes_tvips``)."""
    md = getattr(tf, "tvips_metadata", None) if "tvips" in tf.flags else None
    if not md or "PixelSizeX" not in md:
        return None
    return float(md["PixelSizeX"])


def _tag(page, code):
    t = page.tags.get(code)
    return None if t is None else t.value


def tiff_gatan(tf, page):
    """DigitalMicrograph-written TIFF: scale tag 65010 in the unit of tag 65004 (x axis)."""
    sx, ux = _tag(page, GATAN_SCALE_X), _tag(page, GATAN_UNIT_X)
    if sx is None or ux is None:
        return None
    if isinstance(ux, bytes):
        ux = ux.decode("utf-8", "replace")
    f = unit_to_nm(str(ux).strip("\x00 "))
    if not f:
        return None  # uncalibrated ('pixel') or reciprocal space ('1/nm')
    return float(sx) * f


def tiff_jeol_sightx(tf, page):
    """JEOL SightX TIFF: TEM MAG mode only, (inch or cm / XResolution) / magnification.

    The TemReporter XML in ImageDescription gives the mode and magnification;
    diffraction (reciprocal space) and STEM images give None, as in rosettasciio.
    """
    if _tag(page, "Make") != "JEOL Ltd.":
        return None
    desc = page.description
    if not desc or "TemReporter" not in desc:
        return None
    text = "".join(line.strip(" \r\n\t\x01\x00") for line in desc.split("\n"))
    root = ET.fromstring(text)  # DOCTYPE/ENTITY already refused by the TIFF header check
    eos = root.findtext("Eos/EosMode")
    forming = root.find("ImageFormingSystem")
    if eos != "eosTEM" or forming is None or forming.findtext("ModeString") != "MAG":
        return None
    mag = float(forming.findtext("SelectorValue"))
    xres = _tag(page, "XResolution")
    if not mag or not xres or not xres[0] or not xres[1]:
        return None
    unit = _tag(page, "ResolutionUnit")
    per = INCH_M if int(unit if unit is not None else 2) == 2 else CM_M
    return per * xres[1] / xres[0] / mag * 1e9
