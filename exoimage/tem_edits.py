"""Re-measure vesicles after hand corrections of a label image.

The napari plugin (and any other editor) lets the user delete false
detections, paint missing vesicles, and merge or split labels. Only the
objects that changed need new numbers: a label whose pixels are exactly as
the detector left them keeps the detector's row (sub-pixel outline
measurements, edge contrast and confidence), so unedited vesicles have the
same numbers as in ``exoimage tem``'s ``vesicles.csv``. Changed and new
labels are measured from their pixels with :func:`exoimage.tem.measure_labels`
(``contrast_snr`` and ``confidence`` are then NaN).

Provenance of the edits: every table :func:`remeasure_labels` returns has an
``origin`` column (``detected``: the detector's row, ``edited``: a detected
vesicle redrawn by hand, ``added``: a label the detector did not make), and
:func:`edit_log` lists, for one round of edits, which vesicles were deleted,
added and redrawn, as lines for :attr:`~exoimage.experiment.records.Provenance.edits`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .tem import VESICLE_COLUMNS, measure_labels

__all__ = ["remeasure_labels", "changed_labels", "edit_log", "mark_detected", "ORIGINS"]

#: values of the ``origin`` column
ORIGINS = ("detected", "edited", "added")


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


def _ids(labels) -> set[int]:
    return set(int(v) for v in np.unique(labels) if v)


def edit_log(before: np.ndarray, after: np.ndarray) -> list[str]:
    """What one round of hand edits did, one line per kind (empty when nothing changed).

    ``deleted``: ids of ``before`` absent from ``after``; ``added``: ids of
    ``after`` absent from ``before``; ``redrawn``: ids in both whose pixels
    differ. E.g. ``["deleted vesicles 3, 7", "redrawn vesicle 5"]``.
    """
    b, a = _ids(before), _ids(after)
    changed = changed_labels(before, after)
    out = []
    for what, ids in (("deleted", b - a), ("added", a - b), ("redrawn", changed & b)):
        if ids:
            word = "vesicle" if len(ids) == 1 else "vesicles"
            out.append(f"{what} {word} " + ", ".join(str(i) for i in sorted(ids)))
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

    Returns
    -------
    DataFrame
        :data:`~exoimage.tem.VESICLE_COLUMNS` and ``origin``: a kept row keeps
        its previous origin (``detected`` when the previous table has none); a
        changed id that was in ``previous_labels`` is ``edited`` unless it was
        ``added`` before; a new id is ``added``. Without a previous table every
        row is ``added``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2-D image, got shape {labels.shape}")
    if labels.min(initial=0) < 0:
        raise ValueError("labels must not be negative")
    if previous_labels is None or previous_table is None or len(previous_table) == 0:
        table = measure_labels(labels, pixel_size_nm)
        origin = pd.Series("added", index=table.index, dtype=object)
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
        prev_origin = (previous_table.set_index(previous_table["vesicle_id"].astype(int))["origin"]
                       if "origin" in previous_table else pd.Series(dtype=object))
        prev_origin = prev_origin[~prev_origin.index.duplicated()]
        before = _ids(previous_labels)
        origin = []
        for vid in table["vesicle_id"].astype(int):
            was = prev_origin.get(vid, "detected")
            if vid not in changed:
                origin.append(was)
            elif vid in before and was != "added":
                origin.append("edited")
            else:
                origin.append("added")
        origin = pd.Series(origin, index=table.index, dtype=object)
    table = table[VESICLE_COLUMNS].copy()
    table["image"] = name
    table["origin"] = origin.to_numpy()
    return table


def mark_detected(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of a detector's vesicle table with ``origin`` = ``detected`` on every row."""
    out = table.copy()
    out["origin"] = "detected"
    return out
