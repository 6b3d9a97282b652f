"""napari plugin for exoimage: every number comes from the ``exoimage`` library."""

__version__ = "0.1.0"

__all__ = ["__version__"]
