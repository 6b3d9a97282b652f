"""Warning codes: what a warning means, apart from how it is worded.

A reader or an analysis that warns the user appends a :class:`CodedWarning` to
the image's ``warnings`` list: a ``str`` (so everything that prints, joins or
stores warnings as text works unchanged) that also carries a ``code``
registered here. Checks that act on warnings - the QC report's
"raw linear data" check - look at the codes and their flags (:data:`WARNING_CODES`),
never at the wording, so rewording a warning cannot silently change QC.

A new warning: register its code once (:func:`register_warning_code`, with
``lossy=True`` when it means the pixel values are not the raw linear signal),
then warn with ``coded(code, text)``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WarningCode", "WARNING_CODES", "CodedWarning", "register_warning_code", "coded", "warning_code",
           "is_lossy", "UNCLASSIFIED"]

#: Code of a warning given as plain text (not made with :func:`coded`).
UNCLASSIFIED = "unclassified"


@dataclass(frozen=True)
class WarningCode:
    """One kind of warning.

    Attributes
    ----------
    code : str
        Short stable identifier (lower case, ``_``-separated).
    lossy : bool
        The data are not the raw linear signal (8-bit, lossy compression,
        colour conversion, contrast or display adjustment): the QC check
        "raw linear data" of a blot fails on it.
    description : str
        What the warning means (for docs and error messages).
    """

    code: str
    lossy: bool = False
    description: str = ""


#: Every known warning code; add one with :func:`register_warning_code`.
WARNING_CODES: dict[str, WarningCode] = {}


def register_warning_code(code: str, *, lossy: bool = False, description: str = "") -> WarningCode:
    """Register (or re-register identically) a warning code; returns it.

    Raises
    ------
    ValueError
        ``code`` is not a lower-case identifier, or is registered already with other flags.
    """
    if not isinstance(code, str) or not code.replace("_", "").isalnum() or code != code.lower():
        raise ValueError(f"warning code {code!r}: must be a lower-case identifier")
    new = WarningCode(code, bool(lossy), description)
    old = WARNING_CODES.get(code)
    if old is not None and old != new:
        raise ValueError(f"warning code {code!r} is registered already ({old})")
    WARNING_CODES[code] = new
    return new


class CodedWarning(str):
    """A warning's text (a ``str``) with its registered ``code``."""

    code: str

    def __new__(cls, code: str, text: str):
        obj = super().__new__(cls, text)
        obj.code = code
        return obj

    def __getnewargs__(self):  # pickling / copying (Dask, deepcopy) keeps the code
        return (self.code, str(self))

    def __repr__(self) -> str:
        return f"CodedWarning({self.code!r}, {str(self)!r})"


def coded(code: str, text: str) -> CodedWarning:
    """The warning ``text`` with ``code`` (which must be registered: a typo fails at once)."""
    if code not in WARNING_CODES:
        raise KeyError(f"unregistered warning code {code!r}")
    return CodedWarning(code, text)


def warning_code(w) -> str:
    """The code of a warning (:data:`UNCLASSIFIED` for plain text)."""
    return getattr(w, "code", UNCLASSIFIED)


def is_lossy(code: str) -> bool:
    """True when the code says the pixel values are not the raw linear signal."""
    wc = WARNING_CODES.get(code)
    return bool(wc and wc.lossy)


# the warnings exoimage gives today (exoimage.io, exoimage.blot.signal, exoimage.scalebar, exoimage.tem)
register_warning_code(UNCLASSIFIED, description="a warning given as plain text, without a code")
register_warning_code("calibration_unparsed", description="a calibration block of the file could not be parsed")
register_warning_code("calibration_implausible", description="the file's pixel size is outside the plausible "
                                                             "range and was ignored")
register_warning_code("several_images", description="the file holds several 2-D images; the one read "
                      "and the others are named")
register_warning_code("calibration_unusual", description="the file's pixel size is used but lies "
                      "outside the usual TEM range (shown)")
register_warning_code("non_square_pixels", description="x and y pixel sizes differ; x is used")
register_warning_code("jpeg", lossy=True, description="JPEG: lossy compression changed the pixel values")
register_warning_code("rgb_converted", lossy=True, description="colour (RGB) data converted to grey")
register_warning_code("eight_bit", lossy=True, description="8-bit data: limited dynamic range (an export?)")
register_warning_code("histogram_gaps", lossy=True, description="regularly missing values: contrast stretched")
register_warning_code("display_clipped", lossy=True, description="many pixels at both ends of the range: display "
                                                                 "levels adjusted")
register_warning_code("scale_bar_missing", description="no pixel size in the file and no scale bar found")
register_warning_code("scale_bar_unreadable", description="a scale bar was found but its label not read")
register_warning_code("scale_bar_low_confidence", description="the scale bar calibration has low confidence")
register_warning_code("scale_bar_disagrees", description="the scale bar disagrees with the file's pixel size")
register_warning_code("scale_bar_not_read", description="the scale bar search failed (e.g. OCR missing)")
