"""A dark outline holding several vesicles' outlines is a region round them, not a vesicle (issue 13)."""

import numpy as np

from exoimage.tem.detect import _holds_vesicles
from exoimage.tem.outline import N_ANGLES, polygon


def _obj(y, x, r):
    radii = np.full(N_ANGLES, float(r))
    return {"centre": (float(y), float(x)), "radii": radii, "poly": polygon(y, x, radii), "area": np.pi * r * r}


def test_region_holding_two_vesicles_is_not_one():
    big = _obj(100, 100, 80)
    assert _holds_vesicles(big, [big, _obj(70, 100, 25), _obj(135, 100, 25)])


def test_one_vesicle_outlined_twice_inside_is_not_two():
    big = _obj(100, 100, 80)
    # the same body from two candidates (centres 5 px apart) and an outline outside the big one
    assert not _holds_vesicles(big, [big, _obj(100, 100, 30), _obj(104, 103, 28), _obj(100, 300, 30)])


def test_smaller_outline_cannot_hold_a_bigger_one():
    small = _obj(100, 100, 20)
    assert not _holds_vesicles(small, [_obj(100, 100, 60), _obj(100, 104, 58)])
