"""The TEM overlay drawn per vesicle in its bounding box is pixel-identical to drawing each
vesicle from a scan of the whole picture (the earlier implementation, kept here as the reference)."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from exoimage.tem import draw
from exoimage.tem.draw import draw_overlay


def _reference_overlay(display, labels, table, max_side=2048, *, pixel_size_nm=None):
    """The whole-picture drawing: one full-size mask, contour search and centroid per id."""
    grey = draw._to_uint8(np.asarray(display, np.float32))
    scale = min(1.0, max_side / max(grey.shape))
    if scale < 1.0:
        size = (max(1, int(grey.shape[1] * scale)), max(1, int(grey.shape[0] * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        lab = cv2.resize(labels.astype(np.int32).astype(np.float32), size,
                         interpolation=cv2.INTER_NEAREST).astype(np.int32)
    else:
        lab = labels
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    thick = max(1, int(round(max(rgb.shape) / draw.PX_PER_LINE_WIDTH)))
    border_ids = set(table.loc[table["touches_border"].astype(bool), "vesicle_id"].astype(int)) \
        if len(table) else set()
    font = max(draw.MIN_FONT_SCALE, max(rgb.shape) / draw.PX_PER_FONT_SCALE)
    for vid in np.unique(lab):
        if vid == 0:
            continue
        m = (lab == vid).astype(np.uint8)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        colour = draw.BORDER_RGB if vid in border_ids else draw.SIZED_RGB
        cv2.drawContours(rgb, contours, -1, colour, thick)
        ys, xs = np.nonzero(m)
        cv2.putText(rgb, str(vid), (int(xs.mean()) + draw.LABEL_OFFSET_PX[0],
                                    int(ys.mean()) + draw.LABEL_OFFSET_PX[1]),
                    cv2.FONT_HERSHEY_SIMPLEX, font, draw.ID_RGB, max(1, thick), cv2.LINE_AA)
    if pixel_size_nm:
        draw.draw_scale_bar(rgb, pixel_size_nm * display.shape[1] / rgb.shape[1])
    return rgb


def _scene(shape, n, seed, max_id_gap=1):
    """Discs (some cut by the border, some touching each other, one id in two pieces) with
    ids 1, 1 + gap, ... and a noisy display."""
    rng = np.random.default_rng(seed)
    h, w = shape
    labels = np.zeros(shape, np.int32)
    yy, xx = np.mgrid[:h, :w]
    ids = []
    for k in range(n):
        vid = 1 + k * max_id_gap
        r = rng.uniform(4, max(5, min(h, w) / 12))
        cy, cx = rng.uniform(-r / 2, h + r / 2), rng.uniform(-r / 2, w + r / 2)  # some leave the picture
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        if disc.any():
            labels[disc] = vid
            ids.append(vid)
    if ids:  # a second, separate piece of the first id (two outer contours)
        labels[h - 6:h - 2, 2:9] = ids[0]
    ids = sorted(set(np.unique(labels)) - {0})
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))) - {0}
    table = pd.DataFrame({"vesicle_id": ids, "touches_border": [i in border for i in ids]})
    display = rng.normal(100, 20, shape)
    return display, labels, table


@pytest.mark.parametrize("shape,n,seed,gap,px", [
    ((300, 420), 25, 0, 1, 1.0),
    ((257, 257), 40, 1, 7, None),    # ids with gaps, no scale bar
    ((900, 1500), 30, 2, 1, 1.6),    # thicker lines (1500 px: 2 px outlines)
    ((2600, 700), 20, 3, 3, 0.8),    # shrunk to max_side (labels resized)
])
def test_overlay_is_pixel_identical_to_the_whole_picture_drawing(shape, n, seed, gap, px):
    display, labels, table = _scene(shape, n, seed, gap)
    assert len(table) >= 5
    ref = _reference_overlay(display, labels, table, pixel_size_nm=px)
    for lab in (labels, labels.astype(np.uint16), labels.astype(np.int64)):
        got = draw_overlay(display, lab, table, pixel_size_nm=px)
        assert got.shape == ref.shape and got.dtype == np.uint8
        assert np.array_equal(got, ref)
    # something was drawn: outline colours are present
    assert (got == np.array(draw.SIZED_RGB, np.uint8)).all(axis=2).sum() > 0


def test_overlay_with_negative_or_huge_ids_matches_too():
    display, labels, table = _scene((200, 240), 10, 4)
    for lab in (np.where(labels > 0, -labels, 0), np.where(labels > 0, labels + 10 ** 9, 0).astype(np.int64)):
        tab = pd.DataFrame({"vesicle_id": sorted(set(np.unique(lab)) - {0}), "touches_border": False})
        assert np.array_equal(draw_overlay(display, lab, tab), _reference_overlay(display, lab, tab))


def test_display_to_uint8_in_place_equals_the_plain_formula():
    rng = np.random.default_rng(5)
    for d in (rng.normal(100, 30, (300, 500)).astype(np.float32), rng.integers(0, 65535, (256, 256)).astype(np.float32)):
        lo, hi = np.percentile(d[::1, ::1], list(draw.DISPLAY_PERCENTILES))
        assert np.array_equal(draw._to_uint8(d), np.clip((d - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8))
