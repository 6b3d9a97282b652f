"""Re-measure vesicles after hand corrections of a label image.

The napari plugin (and any other editor) lets the user delete false
detections, paint missing vesicles, and merge or split labels. Only the
objects that changed need new numbers: a label whose pixels are exactly as
the detector left them keeps the detector's row (sub-pixel outline
measurements, edge contrast and confidence), so unedited vesicles have the
same numbers as in ``exoimage tem``'s ``vesicles.csv``. Changed and new
labels are measured from their pixels with :func:`exoimage.tem.measure_labels`
(``contrast_snr`` and ``confidence`` are then NaN).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .tem import VESICLE_COLUMNS, measure_labels

__all__ = ["remeasure_labels", "changed_labels"]


def changed_labels(before: np.ndarray, after: np.ndarray) -> set[int]:
    """Label ids of ``after`` whose pixel set differs from the same id in ``before`` (or is new)."""
    before = np.asarray(before)
    after = np.asarray(after)
    if before.shape != after.shape:
        return set(int(v) for v in np.unique(after) if v)
    sl_a = ndi.find_objects(after.astype(np.int64, copy=False)) if after.max(initial=0) > 0 else []
    sl_b = ndi.find_objects(before.astype(np.int64, copy=False)) if before.max(initial=0) > 0 else []
    out = set()
    for i, sa in enumerate(sl_a, start=1):
        if sa is None:
            continue
        sb = sl_b[i - 1] if i - 1 < len(sl_b) else None
        if sb is None or sa != sb or not np.array_equal(after[sa] == i, before[sb] == i):
            out.add(i)
    return out


def remeasure_labels(labels: np.ndarray, pixel_size_nm: float, *, previous_labels: np.ndarray | None = None,
                     previous_table: pd.DataFrame | None = None, name: str = "") -> pd.DataFrame:
    """One row per label of the edited ``labels`` (columns :data:`~exoimage.tem.VESICLE_COLUMNS`).

    Parameters
    ----------
    labels : ndarray of int
        Edited label image (0 = background; label k = vesicle_id k).
    pixel_size_nm : float
    previous_labels, previous_table : optional
        The label image and table the edits started from (e.g. the detector's).
        Labels unchanged since then keep their previous row.
    name : str
        Value of the ``image`` column.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2-D image, got shape {labels.shape}")
    if labels.min(initial=0) < 0:
        raise ValueError("labels must not be negative")
    if previous_labels is None or previous_table is None or len(previous_table) == 0:
        table = measure_labels(labels, pixel_size_nm)
    else:
        changed = changed_labels(previous_labels, labels)
        present = set(int(v) for v in np.unique(labels) if v)
        keep = previous_table[previous_table["vesicle_id"].astype(int).isin(present - changed)]
        if changed:
            sub = np.where(np.isin(labels, list(changed)), labels, 0)
            new = measure_labels(sub, pixel_size_nm)
            table = pd.concat([keep, new], ignore_index=True) if len(keep) else new
        else:
            table = keep.copy()
        table = table.sort_values("vesicle_id", kind="stable").reset_index(drop=True)
    table = table[VESICLE_COLUMNS].copy()
    table["image"] = name
    return table
