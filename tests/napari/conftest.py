"""napari plugin tests: they skip (not fail) when napari, pytest-qt, the plugin or a display is missing.

The test modules ``importorskip`` napari, pytest-qt and napari_exoimage. A display is
checked at collection time (pytest-xvfb starts its virtual X server in ``pytest_configure``,
after this file is imported): without one Qt would abort the whole pytest process.
"""

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _no_display() -> bool:
    return (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
            and not os.environ.get("WAYLAND_DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen")


def pytest_collection_modifyitems(config, items):
    if not _no_display():
        return
    skip = pytest.mark.skip(reason="no X display: install Xvfb and pytest-xvfb (see plugins/napari/README.md)")
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)
