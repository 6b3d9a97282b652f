"""Reader: every format exoimage reads, opened at its physical scale (nm).

Files are read as ``exoimage tem`` reads them (``read_image(..., scale_bar='auto')``): one with no
calibration of its own is calibrated from its burned-in scale bar, and the bar, its label and any
databar strip are remembered with the layer, so that the vesicle widget leaves them out as the CLI does.
"""

from __future__ import annotations

from pathlib import Path

from exoimage.io import ImageReadError, read_image, sha256_file, supported_suffixes

from ._common import CALIBRATION_ONLY_WARNINGS, image_layer_kwargs, notify_error, notify_warning


def get_reader(path):
    """Return :func:`read_exoimage` for a single file exoimage can read, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if Path(str(path)).suffix.lower() not in supported_suffixes():
        return None
    return read_exoimage


def read_exoimage(path):
    """Layer data for one image: raw pixel values, scale in nm/px, units nm.

    Unreadable files give a napari error notification with the same one-line
    message as the command line (``path: problem``) and no layer: napari's
    "nothing to open" value ``[(None,)]``, which it accepts without a message of its own.

    A missing pixel size is not notified (a blot needs none; the vesicle widget
    asks for it where it is needed); the library's other warnings are.
    """
    if isinstance(path, list):
        path = path[0]
    try:
        img = read_image(path, scale_bar="auto")
    except ImageReadError as exc:
        notify_error(str(exc))
        return [(None,)]
    for w in img.warnings:
        if getattr(w, "code", None) not in CALIBRATION_ONLY_WARNINGS:
            notify_warning(f"{img.path}: {w}")
    try:  # provenance of what is measured in this layer (the session report shows it)
        digest = sha256_file(path)
    except OSError:
        digest = None
    return [(img.data, image_layer_kwargs(img, meta={"sha256": digest}), "image")]
