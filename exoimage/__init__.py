"""exoimage: numbers from extracellular-vesicle images (TEM sizing, Western blot densitometry)."""

__version__ = "0.1.0"

from .io import Image, ImageReadError, read_image  # noqa: E402,F401
