"""napari plugin tests: skipped (not failed) when napari, pytest-qt or an X display is missing.

pytest-xvfb starts a virtual X server before collection when Xvfb is installed; without
any display Qt would abort the whole pytest process, so these modules are not collected.
"""

import importlib.util
import os
import sys

collect_ignore_glob = []
_missing = [m for m in ("napari", "pytestqt", "napari_exoimage") if importlib.util.find_spec(m) is None]
if _missing or (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
                and os.environ.get("QT_QPA_PLATFORM") != "offscreen"):
    collect_ignore_glob = ["test_*.py"]
