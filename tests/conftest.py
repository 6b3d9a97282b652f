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

