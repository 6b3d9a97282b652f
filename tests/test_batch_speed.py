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
