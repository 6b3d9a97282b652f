"""What to normalise on a blot and how: one function used by ``exoimage blot``,
``exoimage run`` and the napari plugin alike."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import pandas as pd

from ..params import check_instance, from_mapping
from .normalize import (ControlPairingError, default_reference_lane, normalize, pair_control_lanes,
                        parse_kda_range, register_pieces, row_volumes, rows_by_kda)
from .pipeline import MAX_LANES, BlotParams, analyze_blot_file

#: most band rows a spec may name: a blot has a handful of rows; 100 is far above any real one
MAX_BAND_ROWS = 100

__all__ = ["NormalizationSpec", "normalize_blot"]


@dataclass
class NormalizationSpec:
    """Which rows are target and control, and the reference lane.

    Attributes
    ----------
    target_rows, control_rows : list of int, optional
        Band rows (1 = top) in this image.
    target_kda, control_kda : str, optional
        Rows chosen by apparent weight ("30-60" or "44"); needs a ladder.
    control_image, total_protein_image : path, optional
        Separate image of the same membrane giving the control per lane
        (matched by lane position).
    reference_lane : int, optional
        Lane that ``relative`` refers to (default: the first sample lane with a
        band in every target and control row, see
        :func:`~exoimage.blot.normalize.default_reference_lane`).

    With no target given, every band row is normalised on its own (one table
    per row); with no control, ``ratio`` is the target volume.
    """

    target_rows: list | None = field(default=None, metadata={
        "type": "int_list", "min": 1, "min_len": 1, "max_len": MAX_BAND_ROWS, "optional": True,
        "excludes": "target_kda", "aliases": ("target_row",), "cli": "--target-row", "metavar": "R[,R]",
        "label": "Target rows", "auto": "every row on its own",
        "help": "band row(s) of the target protein (rows numbered 1.. top to bottom)"})
    target_kda: str | None = field(default=None, metadata={
        "type": "kda_range", "parse": parse_kda_range, "unit": "kDa", "optional": True,
        "cli": "--target-kda", "metavar": "KDA", "label": "Target weight", "auto": "none", "advanced": True,
        "help": "choose the target rows by apparent weight, kDa: 30-60 or 44 (+-15 %); needs a ladder"})
    control_rows: list | None = field(default=None, metadata={
        "type": "int_list", "min": 1, "min_len": 1, "max_len": MAX_BAND_ROWS, "optional": True,
        "excludes": "control_kda", "aliases": ("control_row",), "cli": "--control-row", "metavar": "R[,R]",
        "label": "Control rows", "auto": "no loading control",
        "help": "band row(s) of the loading control in the same image"})
    control_kda: str | None = field(default=None, metadata={
        "type": "kda_range", "parse": parse_kda_range, "unit": "kDa", "optional": True,
        "cli": "--control-kda", "metavar": "KDA", "label": "Control weight", "auto": "none", "advanced": True,
        "help": "choose the control rows by apparent weight, kDa (range or value); needs a ladder"})
    control_image: Path | None = field(default=None, metadata={
        "type": "path", "optional": True, "excludes": "total_protein_image", "cli": "--control-image",
        "label": "Control image", "auto": "none", "advanced": True,
        "help": "separate image of the same membrane with the loading control (the two images are registered, "
                "membrane pieces and lanes paired by position; the control rows are taken in it, else the "
                "strongest row within each target piece)"})
    total_protein_image: Path | None = field(default=None, metadata={
        "type": "path", "optional": True, "cli": "--total-protein-image", "label": "Total-protein image",
        "auto": "none", "advanced": True,
        "help": "total-protein stain image (Ponceau, stain-free) of the same membrane: its whole-lane "
                "signal (lane-edge background) is the control"})
    reference_lane: int | None = field(default=None, metadata={
        "type": "int", "min": 1, "max": MAX_LANES, "optional": True, "cli": "--reference-lane", "metavar": "K",
        "label": "Reference lane", "auto": "first sample lane with the rows",
        "help": "lane that relative values refer to"})

    @classmethod
    def from_mapping(cls, m: dict) -> "NormalizationSpec":
        """The spec from a mapping keyed by field names or their experiment.toml aliases
        (``target_row``, ``control_row``); other keys are ignored (:func:`exoimage.params.from_mapping`)."""
        return from_mapping(cls, m)

    def check(self):
        """Check every field against its metadata (raises :class:`exoimage.params.ParamError`)."""
        check_instance(self)

    @property
    def wanted(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))


def _signal_and_pieces(res):
    """(linear signal, membrane pieces) of an analysed blot (BlotFileResult)."""
    from .signal import to_signal

    return to_signal(res.image.data, res.result.polarity), res.result.pieces


def _external_control(path, params: BlotParams, target, spec: NormalizationSpec, total: bool):
    """Control value per lane of the target from a separate image of the same membrane.

    The two images are registered and their membrane pieces paired
    (:func:`~exoimage.blot.normalize.register_pieces`); lanes pair per piece by position after
    the piece's shift (:func:`~exoimage.blot.normalize.pair_control_lanes`). The control of a
    target lane is its paired lane's bands in the control rows (given, by weight, or else the
    strongest row) that lie within the target piece's rows once registered: a control piece that
    holds two strips serves each target strip with its own row.
    """
    lanes = target.lanes
    r = analyze_blot_file(path, params, name=str(path), lane_totals=total)
    if not r.ok:
        raise ValueError(f"control image: {r.image_row['error']}")
    name_c = Path(path).name
    if target.result is None or target.image is None or r.result is None or r.image is None:
        raise ValueError(f"control image {name_c} cannot be paired with the target: an image was not analysed")
    st, pt = _signal_and_pieces(target)
    sc, pc = _signal_and_pieces(r)
    try:
        shifts = register_pieces(st, pt, sc, pc)
    except ControlPairingError as exc:
        raise ValueError(f"control image {name_c} cannot be paired with the target: {exc}") from None
    m = pair_control_lanes(lanes, r.lanes, shifts)
    if not m:
        raise ValueError(f"control image {name_c} cannot be paired with the target: no lane of it lies where a "
                         f"target lane is after registering the two images")
    if total:
        vals = r.lanes.set_index("lane")["lane_total"]
        return (pd.Series({a: vals.get(bb) for a, bb in m.items()}, dtype=float),
                f"total protein ({name_c})")
    b = r.bands[r.bands["row"] > 0]
    given = None
    if spec.control_rows:
        given = list(spec.control_rows)
    elif spec.control_kda:
        given = rows_by_kda(r.bands, spec.control_kda)
    piece_of = {int(p.index): p for p in pt}
    out, used_rows = {}, set()
    for sh in shifts:
        p = piece_of[sh["piece"]]
        tl = [int(x) for x in lanes.loc[lanes["piece"] == sh["piece"], "lane"] if int(x) in m]
        cl = [m[x] for x in tl]
        inside = b[b["lane"].isin(cl) & (b["y_px"] >= p.y0 + sh["dy_px"]) & (b["y_px"] < p.y1 + sh["dy_px"])]
        if given is not None:
            rows = [x for x in given if x in set(inside["row"])]
        else:
            rows = [int(inside.groupby("row")["volume"].sum().idxmax())] if len(inside) else []
        used_rows.update(rows)
        v = row_volumes(inside, rows)["volume"] if rows else pd.Series(dtype=float)
        for t, c in zip(tl, cl):
            out[t] = v.get(c)
    name = f"{name_c} rows {','.join(map(str, sorted(used_rows)))}"
    return pd.Series(out, dtype=float), name


def normalize_blot(res, spec: NormalizationSpec, params: BlotParams | None = None,
                   sheet: pd.DataFrame | None = None, *, all_rows_as_target: bool = False) -> list:
    """Normalised tables (see ``NORMALIZED_COLUMNS``) for one analysed blot.

    Parameters
    ----------
    res : BlotFileResult
        From :func:`~exoimage.blot.analyze_blot_file` (must be ok).
    spec : NormalizationSpec
    params : BlotParams
        Used to read a separate control / total-protein image the same way.
    sheet : DataFrame, optional
        Lane sheet (lane, sample, group, loaded).
    all_rows_as_target : bool
        With no target given, sum every band row into one target (a blot
        probed for a single marker) instead of one table per row.

    Raises
    ------
    ValueError
        Rows asked by weight without a ladder, a reference lane that is not a
        sample lane, an unreadable control image.
    """
    params = params or BlotParams()
    b, lanes = res.bands, res.lanes
    if spec.target_rows:
        target = list(spec.target_rows)
    elif spec.target_kda:
        target = rows_by_kda(b, spec.target_kda)
    else:
        target = None
    ctrl_rows = None
    if not (spec.control_image or spec.total_protein_image):
        if spec.control_rows:
            ctrl_rows = list(spec.control_rows)
        elif spec.control_kda:
            ctrl_rows = rows_by_kda(b, spec.control_kda)
    ctrl_series, ctrl_name = None, ""
    if spec.control_image:
        ctrl_series, ctrl_name = _external_control(spec.control_image, params, res, spec, total=False)
    elif spec.total_protein_image:
        ctrl_series, ctrl_name = _external_control(spec.total_protein_image, params, res, spec, total=True)
    sample = lanes.loc[~lanes["is_ladder"].astype(bool), "lane"]
    if sample.empty:
        raise ValueError("no sample lanes")

    def ref_for(rows) -> int:
        # the user's lane, else the first sample lane with a band in every row used (on their piece)
        if spec.reference_lane is not None:
            return spec.reference_lane
        lane, _ = default_reference_lane(lanes, b, rows, ctrl_rows or [])
        return int(sample.min()) if lane is None else int(lane)

    all_rows = [int(r) for r in sorted(b.loc[b["row"] > 0, "row"].unique()) if not (ctrl_rows and int(r) in ctrl_rows)]
    if target:
        targets = [target]
    elif all_rows_as_target:
        targets = [all_rows] if all_rows else []
    else:
        targets = [[r] for r in all_rows]
    return [normalize(res.image_row["image"], lanes, b, target_rows=t, control_rows=ctrl_rows,
                      control_by_lane=ctrl_series, control_name=ctrl_name, reference_lane=ref_for(t), sheet=sheet)
            for t in targets]
