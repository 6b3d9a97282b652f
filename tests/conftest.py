from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL = SHARED / "data" / "real"


@pytest.fixture
def real_dir():
    """../shared/data/real, or skip when the shared folder is absent."""
    if not REAL.is_dir():
        pytest.skip("../shared/data/real is not available")
    return REAL


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
