"""Batch-side costs of ``exoimage run`` (issue 14): how the local Dask workers are started and
the report's thumbnails."""

from __future__ import annotations

import logging
import os

import pytest


def _worker_env():
    import os

    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


@pytest.mark.skipif("MALLOC_TRIM_THRESHOLD_" in os.environ, reason="exported by the user: the workers inherit it")
def test_local_workers_keep_glibc_default_malloc_trim():
    """Dask's MALLOC_TRIM_THRESHOLD_=65536 (20x the page faults of a TEM field) is not given to our workers."""
    import dask
    from dask.distributed import Client, LocalCluster

    from exoimage.experiment.batch import WORKER_DASK_CONFIG

    with dask.config.set(WORKER_DASK_CONFIG):
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=logging.CRITICAL) as cl, Client(cl) as c:
            assert list(c.run(_worker_env).values()) == [None]
    assert dask.config.get("distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_") == 65536  # Dask's own


def _overlay_scene(seed, shape=(600, 800)):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    ves = pd.DataFrame({"vesicle_id": [1, 2, 3], "x_px": [100.0, 400.0, 780.0], "y_px": [120.0, 300.0, 590.0],
                        "diameter_nm": [40.0, 55.0, 90.0], "touches_border": [False, False, True]})
    row = {"width_px": shape[1], "height_px": shape[0], "pixel_size_nm": 1.25}
    return rgb, ves, row


def test_gallery_made_in_the_worker_is_what_the_report_would_make_from_the_overlay(tmp_path):
    """The gallery pictures stored next to an overlay equal those decoded from the overlay file;
    an overlay redrawn afterwards (another hash) is not shown with the stale pictures."""
    from types import SimpleNamespace

    import cv2
    import numpy as np

    from exoimage.experiment import report
    from exoimage.outputs import save_png

    rgb, ves, row = _overlay_scene(0)
    rel = "overlays/f.png"
    png = save_png(tmp_path / rel, rgb)
    report.write_gallery_entry(tmp_path, rel, png, report.gallery_pictures(
        np.ascontiguousarray(rgb[..., ::-1]), ves, row))
    rec = SimpleNamespace(overlay=rel, vesicles=ves, image_row=row)
    stored = report._read_gallery(tmp_path, rel)
    from_file = report.gallery_pictures(cv2.imread(str(tmp_path / rel)), ves, row)
    assert stored is not None and stored["field"] == from_file["field"] and stored["closeup"] == from_file["closeup"]
    assert stored["field"][0] and stored["closeup"][0] and stored["field"][2] == 800 * 1.25 / 260
    assert report._field_gallery(tmp_path, rec)["field"] == from_file["field"]
    # redrawn overlay (an interactive session's edits): the stored pictures no longer match it
    rgb2, _, _ = _overlay_scene(1)
    save_png(tmp_path / rel, rgb2)
    assert report._read_gallery(tmp_path, rel) is None
    fresh = report._field_gallery(tmp_path, rec)
    assert fresh["field"] == report.gallery_pictures(cv2.imread(str(tmp_path / rel)), ves, row)["field"]
    assert fresh["field"] != from_file["field"]


def test_png_bytes_are_lossless_and_valid():
    """The libdeflate PNG writer gives back exactly the pixels (OpenCV and Pillow, which checks CRCs)."""
    import io

    import cv2
    import numpy as np
    from PIL import Image

    from exoimage.outputs import png_bytes

    rng = np.random.default_rng(0)
    for shape in [(1, 1, 3), (7, 1, 3), (1, 9, 3), (33, 17, 3), (20, 31), (300, 401, 3)]:
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        data = png_bytes(a)
        assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), a)
        pil = np.asarray(Image.open(io.BytesIO(data)))
        assert np.array_equal(pil, a if a.ndim == 2 else a[..., ::-1])
    # other pictures (16-bit, 4 channels) still go through OpenCV
    b = rng.integers(0, 65536, (5, 6), dtype=np.uint16)
    assert np.array_equal(cv2.imdecode(np.frombuffer(png_bytes(b), np.uint8), cv2.IMREAD_UNCHANGED), b)
