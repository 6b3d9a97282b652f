"""napari plugin tests: they skip (not fail) when napari, pytest-qt, the plugin or a working Qt
display is missing.

The test modules ``importorskip`` napari, pytest-qt and napari_exoimage. Whether Qt can start
is checked at collection time (pytest-xvfb starts its virtual X server in ``pytest_configure``,
after this file is imported), in a subprocess: without a display, or with a Qt system library
missing, Qt aborts the whole process instead of raising.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
_PROBE = "from qtpy.QtWidgets import QApplication; app = QApplication([]); print('ok')"


def _qt_problem():
    """None if a Qt application starts here, else the reason it does not."""
    if importlib.util.find_spec("napari") is None or importlib.util.find_spec("qtpy") is None:
        return None  # the modules skip themselves through importorskip
    if (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
            and not os.environ.get("WAYLAND_DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen"):
        return "no X display: install Xvfb and pytest-xvfb (see plugins/napari/README.md)"
    try:
        r = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"Qt did not start ({exc})"
    if r.returncode != 0 or "ok" not in r.stdout:
        lines = [ln for ln in (r.stderr or "").splitlines() if ln.strip()]
        return "Qt cannot start here (missing system libraries?): " + (lines[-1] if lines else f"exit {r.returncode}")
    return None


def pytest_collection_modifyitems(config, items):
    mine = [it for it in items if HERE in Path(str(it.fspath)).resolve().parents]
    if not mine:
        return
    reason = _qt_problem()
    if reason:
        skip = pytest.mark.skip(reason=reason)
        for item in mine:
            item.add_marker(skip)
