"""Normalisation: target / loading control or total protein, reference lane, lane sheet,
replicate statistics and the linear range of a dilution series."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["parse_kda_range", "rows_by_kda", "row_volumes", "match_lanes_by_position", "normalize",
           "read_lane_sheet", "replicate_stats", "linear_range", "NORMALIZED_COLUMNS", "ControlPairingError",
           "register_pieces", "pair_control_lanes", "default_reference_lane"]

NORMALIZED_COLUMNS = ["image", "lane", "sample", "group", "loaded", "target_rows", "target_volume",
                      "target_saturated", "control", "control_volume", "ratio", "reference_lane",
                      "relative", "in_linear_range"]


def parse_kda_range(text) -> tuple[float, float]:
    """``'30-60'`` -> (30, 60); ``'44'`` -> (44*0.85, 44*1.15) (a single weight +-15 %)."""
    s = str(text).strip()
    try:
        if "-" in s[1:]:
            a, b = s.split("-", 1) if not s.startswith("-") else (s, "")
            lo, hi = sorted((float(a), float(b)))
            if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo):
                raise ValueError
            return lo, hi
        v = float(s)
        lo, hi = v * 0.85, v * 1.15
        if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo <= hi):
            raise ValueError
    except ValueError:
        raise ValueError(f"kDa must be a number (44) or a range (30-60), got {text!r}") from None
    return lo, hi


def rows_by_kda(bands: pd.DataFrame, kda) -> list[int]:
    """Rows whose median apparent weight lies in ``kda`` (a (lo, hi) tuple or text)."""
    lo, hi = parse_kda_range(kda) if not isinstance(kda, tuple) else kda
    b = bands[(bands["row"] > 0) & bands["mw_kda"].notna()]
    if b.empty:
        raise ValueError("no molecular weights: give ladder_lane and ladder_kda")
    med = b.groupby("row")["mw_kda"].median()
    rows = [int(r) for r, m in med.items() if lo <= m <= hi]
    if not rows:
        near = ", ".join(f"row {r}: {m:.0f} kDa" for r, m in med.items())
        raise ValueError(f"no band row between {lo:g} and {hi:g} kDa ({near})")
    return rows


def row_volumes(bands: pd.DataFrame, rows) -> pd.DataFrame:
    """Per lane: summed volume of the bands in ``rows`` and whether any was saturated."""
    b = bands[bands["row"].isin(list(rows))]
    g = b.groupby("lane")
    return pd.DataFrame({"volume": g["volume"].sum(), "saturated": g["saturated"].any()})


def match_lanes_by_position(lanes_a: pd.DataFrame, lanes_b: pd.DataFrame, max_frac: float = 0.5) -> dict:
    """Lane of ``a`` -> lane of ``b`` with the nearest centre within ``max_frac`` of a lane width."""
    out = {}
    for r in lanes_a.itertuples():
        d = (lanes_b["x_center_px"] - r.x_center_px).abs()
        if len(d) and d.min() <= max_frac * r.width_px:
            out[int(r.lane)] = int(lanes_b.loc[d.idxmin(), "lane"])
    return out


def default_reference_lane(lanes: pd.DataFrame, bands: pd.DataFrame, target_rows, control_rows=(),
                           chosen: int | None = None) -> tuple[int | None, str]:
    """The reference lane of the normalisation and, when it gives no relative values, why.

    With none chosen: the first sample lane with a band in every target row (and every control
    row), so on the membrane piece the rows are on; a lane whose bands are all above noise is
    preferred. (The first sample lane is on the other piece when the rows are on the second
    one: every relative value would be NaN.)

    Parameters
    ----------
    lanes, bands : DataFrame
        Lane and band tables of one blot.
    target_rows, control_rows : sequence of int
        Band rows summed as target and as loading control.
    chosen : int, optional
        A reference lane the user gave; it is kept, with a note when it has no band.

    Returns
    -------
    lane : int or None
        None when no lane has the bands (the caller keeps the first sample lane).
    note : str
        "" or one line saying why the relative values are missing and what to do.
    """
    rows = [int(r) for r in list(target_rows) + list(control_rows or [])]
    sample = [int(v) for v in lanes.loc[~lanes["is_ladder"].astype(bool), "lane"]]
    b = bands[bands["row"].isin(rows) & np.isfinite(bands["volume"].to_numpy(float))]
    have = {ln: set(g["row"].astype(int)) for ln, g in b.groupby("lane")}
    clean = {ln: not g["below_noise"].astype(bool).any() if "below_noise" in g else True
             for ln, g in b.groupby("lane")}
    full = [ln for ln in sample if have.get(ln, set()) >= set(rows)]
    what = f"row(s) {','.join(map(str, target_rows))}" + (
        f" and control row(s) {','.join(map(str, control_rows))}" if control_rows else "")
    if chosen is not None:
        if chosen in full:
            return chosen, ""
        return chosen, (f"reference lane {chosen} has no band in {what}: every relative value is NaN; "
                        f"choose a lane with those bands" + (f" (e.g. {full[0]})" if full else ""))
    if not full:
        return None, (f"no sample lane has a band in {what} (are they on different membrane pieces?): "
                      f"relative values are NaN; choose rows on one piece")
    return next((ln for ln in full if clean[ln]), full[0]), ""


def normalize(image: str, lanes: pd.DataFrame, bands: pd.DataFrame, *, target_rows,
              control_rows=None, control_by_lane: pd.Series | None = None, control_name: str = "",
              reference_lane: int = 1, sheet: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per sample lane: target volume, control, ratio, relative to the reference lane.

    Parameters
    ----------
    target_rows, control_rows : list of int
        Band rows of this image (summed per lane when several).
    control_by_lane : Series, optional
        Control value per lane from elsewhere (separate control image or a
        total-protein image, already matched to this image's lanes).
    reference_lane : int
        ``relative = ratio / ratio(reference lane)``. Without any control,
        ``ratio`` is the target volume itself.
    sheet : DataFrame, optional
        Lane sheet (lane, sample, group, loaded).
    """
    sample_lanes = lanes.loc[~lanes["is_ladder"].astype(bool), "lane"].astype(int).tolist()
    t = row_volumes(bands, target_rows)
    out = pd.DataFrame({"lane": sample_lanes})
    out["image"] = image
    out["target_rows"] = ",".join(str(r) for r in target_rows)
    out["target_volume"] = out["lane"].map(t["volume"]).astype(float)
    out["target_saturated"] = out["lane"].map(t["saturated"]).fillna(False).astype(bool)
    if control_rows:
        c = row_volumes(bands, control_rows)
        out["control"] = "rows " + ",".join(str(r) for r in control_rows)
        out["control_volume"] = out["lane"].map(c["volume"]).astype(float)
    elif control_by_lane is not None:
        out["control"] = control_name
        out["control_volume"] = out["lane"].map(control_by_lane).astype(float)
    else:
        out["control"] = "none"
        out["control_volume"] = np.nan
    has_control = bool(control_rows) or control_by_lane is not None
    out["ratio"] = out["target_volume"] / out["control_volume"] if has_control else out["target_volume"]
    if reference_lane not in set(out["lane"]):
        raise ValueError(f"reference lane {reference_lane} is not a sample lane "
                         f"(sample lanes: {', '.join(map(str, sample_lanes))})")
    ref = float(out.loc[out["lane"] == reference_lane, "ratio"].iloc[0])
    out["reference_lane"] = reference_lane
    out["relative"] = out["ratio"] / ref if ref and np.isfinite(ref) else np.nan
    out["sample"], out["group"], out["loaded"] = "", "", np.nan
    if sheet is not None:
        if "image" in sheet:
            sheet = sheet[sheet["image"].astype(str).isin([image, str(image).rsplit("/", 1)[-1]])]
        s = sheet.set_index("lane")
        out["sample"] = out["lane"].map(s["sample"]).fillna("").astype(str)
        if "group" in s:
            out["group"] = out["lane"].map(s["group"]).fillna("").astype(str)
        if "loaded" in s:
            out["loaded"] = out["lane"].map(s["loaded"]).astype(float)
    out["in_linear_range"] = pd.NA
    ok = out["loaded"].notna() & out["target_volume"].notna()
    if ok.sum() >= 3:
        lr = linear_range(out["loaded"], out["target_volume"])
        out.loc[ok, "in_linear_range"] = lr["inside"][ok.to_numpy()]
        out.attrs["linear_range"] = {k: v for k, v in lr.items() if k != "inside"}
    return out[NORMALIZED_COLUMNS]


def read_lane_sheet(path) -> pd.DataFrame:
    """Read a lane sheet CSV (columns lane, sample, optional group, optional loaded, optional
    image: when present, each row applies only to that image; otherwise to every image)."""
    try:
        df = pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{path}: cannot read lane sheet ({exc})") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    if "lane" not in df or "sample" not in df:
        raise ValueError(f"{path}: lane sheet needs columns lane and sample (found {', '.join(df.columns)})")
    try:
        df["lane"] = df["lane"].astype(int)
    except ValueError:
        raise ValueError(f"{path}: column lane must hold lane numbers") from None
    if "loaded" in df:
        df["loaded"] = pd.to_numeric(df["loaded"], errors="coerce")
    if df.duplicated(["image", "lane"] if "image" in df else ["lane"]).any():
        raise ValueError(f"{path}: lane numbers repeat")
    return df


def replicate_stats(norm: pd.DataFrame, value: str = "relative") -> pd.DataFrame:
    """Per image and sample: n, mean, SD (n-1), CV % of ``value``."""
    d = norm[norm["sample"].astype(str) != ""]
    if d.empty:
        return pd.DataFrame(columns=["image", "sample", "n", "mean", "sd", "cv_pct"])
    g = d.groupby(["image", "sample"])[value]
    out = pd.DataFrame({"n": g.count(), "mean": g.mean(), "sd": g.std(ddof=1)}).reset_index()
    out["cv_pct"] = 100 * out["sd"] / out["mean"]
    return out


def linear_range(loaded, volume, r2_min: float = 0.995) -> dict:
    """Linear range of a dilution series: R² of volume vs load for all points, and
    after dropping the highest loads one by one until R² >= ``r2_min`` (at least 3 points).

    Returns dict with ``r2_all``, ``r2``, ``slope``, ``intercept``, ``max_load_in_range``,
    ``inside`` (bool per point, in the input order).
    """
    x = np.asarray(loaded, float)
    y = np.asarray(volume, float)
    ok = np.isfinite(x) & np.isfinite(y)
    xs, ys = x[ok], y[ok]

    def fit(mask):
        c = np.polyfit(xs[mask], ys[mask], 1)
        pred = np.polyval(c, xs[mask])
        ss = np.sum((ys[mask] - ys[mask].mean()) ** 2)
        return c, 1 - np.sum((ys[mask] - pred) ** 2) / ss if ss > 0 else 1.0

    mask = np.ones(len(xs), bool)
    c, r2_all = fit(mask)
    r2 = r2_all
    loads = np.unique(xs)[::-1]
    for top in loads[:-1]:
        if r2 >= r2_min:
            break
        m2 = xs < top
        if m2.sum() < 3 or len(np.unique(xs[m2])) < 2:
            break
        mask = m2
        c, r2 = fit(mask)
    inside = np.zeros(len(x), bool)
    inside[np.flatnonzero(ok)[mask]] = True
    return dict(r2_all=float(r2_all), r2=float(r2), slope=float(c[0]), intercept=float(c[1]),
                max_load_in_range=float(xs[mask].max()), inside=inside)


# --------------------------------------------------------------------------
# a separate control image: pieces and lanes paired by position after registration

#: largest shift searched between the target and control images, as a fraction of the image
#: side (the Kodak re-probes move a strip by up to ~90 px of 1092 = 8 %; a third is far beyond)
MAX_SHIFT_FRAC = 1 / 3
#: a control lane pairs with a target lane when its centre, after the piece's shift, is within
#: this fraction of the target lane's pitch (half: never the neighbour's)
PAIR_MAX_PITCH_FRAC = 0.5


class ControlPairingError(ValueError):
    """The target and control images cannot be paired (one-line message)."""


def _xshift(pa: np.ndarray, pb: np.ndarray, max_shift: int) -> tuple[int, float]:
    """(shift, normalised correlation) that best maps profile ``pa`` onto ``pb`` (b[x + s] ~ a[x]).

    The profiles are compared by their derivatives, so the cut edges of the membrane (not the
    exposure's overall level) place them."""
    from scipy import ndimage as ndi

    da = np.gradient(ndi.gaussian_filter1d(np.asarray(pa, float), 1.0))
    db = np.gradient(ndi.gaussian_filter1d(np.asarray(pb, float), 1.0))
    da, db = da - da.mean(), db - db.mean()
    na, nb = float(np.linalg.norm(da)), float(np.linalg.norm(db))
    if na == 0 or nb == 0:
        return 0, 0.0
    n = len(da)
    best = (0, -np.inf)
    for s in range(-max_shift, max_shift + 1):
        a = da[max(0, -s):n - max(0, s)]
        b = db[max(0, s):n + min(0, s)]
        v = float(np.dot(a, b)) / (na * nb)
        if v > best[1]:
            best = (s, v)
    return best


def register_pieces(signal_t: np.ndarray, pieces_t, signal_c: np.ndarray, pieces_c) -> list[dict]:
    """Pair the membrane pieces of a target and a control image and find each pair's x shift.

    Both images are reduced to their membrane level (:func:`exoimage.blot.lanes.membrane_level`);
    the whole images are registered first (:func:`skimage.registration.phase_cross_correlation`
    of the level images: the membrane outline against the off-membrane area), each target piece
    pairs with the control piece it overlaps most after that shift, and the pair's own x shift
    (strips are re-laid independently) comes from the cross-correlation of the derivatives of
    their column profiles (the cut edges, pen marks).

    Returns
    -------
    list of dict
        ``piece`` (target), ``control_piece``, ``dx_px`` and ``dy_px`` (control = target + shift),
        ``score`` (normalised correlation of the pair's profiles).

    Raises
    ------
    ControlPairingError
        Images of different sizes, or a target piece that overlaps no control piece.
    """
    from skimage.registration import phase_cross_correlation

    from .lanes import membrane_level

    if signal_t.shape != signal_c.shape:
        raise ControlPairingError(f"the control image is {signal_c.shape[1]}x{signal_c.shape[0]} px and the "
                                  f"target {signal_t.shape[1]}x{signal_t.shape[0]} px: not two exposures of "
                                  f"one membrane")
    f, mt = membrane_level(signal_t)
    _, mc = membrane_level(signal_c)

    def z(m):
        s = float(m.std())
        return (m - m.mean()) / s if s > 0 else m * 0.0

    (dy_s, dx_s), _, _ = phase_cross_correlation(z(mt), z(mc), normalization=None)
    # phase_cross_correlation gives the shift that registers the moving image (mc) onto mt
    dy, dx = -float(dy_s) * f, -float(dx_s) * f
    h, w = signal_t.shape
    if abs(dy) > MAX_SHIFT_FRAC * h or abs(dx) > MAX_SHIFT_FRAC * w:
        dy, dx = 0.0, 0.0
    out = []
    for pt in pieces_t:
        best = None
        for pc in pieces_c:
            ov = min(pt.y1 + dy, pc.y1) - max(pt.y0 + dy, pc.y0)
            if ov > 0 and (best is None or ov > best[0]):
                best = (ov, pc)
        if best is None or best[0] < 0.3 * (pt.y1 - pt.y0):
            raise ControlPairingError(f"membrane piece {pt.index} of the target (rows {pt.y0}-{pt.y1 - 1}) "
                                      f"overlaps no membrane piece of the control image")
        pc = best[1]
        ra = slice(max(0, pt.y0 // f), max(pt.y0 // f + 1, pt.y1 // f))
        rb = slice(max(0, pc.y0 // f), max(pc.y0 // f + 1, pc.y1 // f))
        s, score = _xshift(mt[ra].mean(axis=0), mc[rb].mean(axis=0), int(MAX_SHIFT_FRAC * mt.shape[1]))
        out.append(dict(piece=int(pt.index), control_piece=int(pc.index), dx_px=float(s * f), dy_px=dy,
                        score=score))
    return out


def pair_control_lanes(lanes_t: pd.DataFrame, lanes_c: pd.DataFrame, shifts: list[dict]) -> dict:
    """Target lane -> control lane, per piece pair, by position after the piece's shift.

    A target lane pairs with the nearest control lane of the paired piece whose centre (at the
    target lane's mid-height, shifted) lies within ``PAIR_MAX_PITCH_FRAC`` of the target piece's
    lane pitch; a control lane serves one target lane at most. Target lanes left without a
    partner are absent from the result.
    """
    out = {}
    for sh in shifts:
        lt = lanes_t[lanes_t["piece"] == sh["piece"]].sort_values("x_center_px")
        lc = lanes_c[lanes_c["piece"] == sh["control_piece"]]
        if lt.empty or lc.empty:
            continue
        xs = lt["x_center_px"].to_numpy(float)
        pitch = float(np.median(np.diff(xs))) if len(xs) > 1 else float(lt["width_px"].iloc[0])
        used = set()
        for r in lt.itertuples():
            want = r.x_center_px + sh["dx_px"]
            d = (lc["x_center_px"] - want).abs()
            d = d[~lc["lane"].isin(used)]
            if len(d) and d.min() <= PAIR_MAX_PITCH_FRAC * pitch:
                cl = int(lc.loc[d.idxmin(), "lane"])
                used.add(cl)
                out[int(r.lane)] = cl
    return out
