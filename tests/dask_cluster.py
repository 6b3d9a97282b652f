"""Helpers for the tests that start a separate dask scheduler and worker."""

import pytest


def wait_for_dask_workers(port: int, timeout_s: float = 60.0) -> None:
    """Wait until the dask scheduler on 127.0.0.1:``port`` has a worker (fail the test after ``timeout_s``)."""
    import time

    from distributed import Client

    deadline = time.time() + timeout_s
    while True:
        try:
            with Client(f"tcp://127.0.0.1:{port}", timeout=5) as c:
                if c.scheduler_info()["workers"]:
                    return
        except OSError:
            pass
        if time.time() > deadline:
            pytest.fail("dask cluster did not start")
        time.sleep(0.5)
