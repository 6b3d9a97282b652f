"""A separate control image (loading-control exposure of the same membrane): pieces and lanes
paired by position after registering the two images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from exoimage.blot import analyze_blot_file
from exoimage.blot.lanes import find_lanes, find_pieces
from exoimage.blot.normalize import ControlPairingError, pair_control_lanes, register_pieces

from test_blot_lanes import two_strips

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "real" / "blots_kodak"

def _lanes_df(lanes):
    return pd.DataFrame({"lane": [ln.lane for ln in lanes], "piece": [ln.piece for ln in lanes],
                         "x_center_px": [ln.x_center_px for ln in lanes],
                         "width_px": [ln.width_px for ln in lanes]})

def _shift_strips(img, dx_top, dx_bottom, cut=360):
    """The same membrane re-laid: each strip moved right by its own amount (the floor fills in)."""
    out = np.full_like(img, int(np.median(img[:40])))
    out[:cut] = np.roll(img[:cut], dx_top, axis=1)
    out[cut:] = np.roll(img[cut:], dx_bottom, axis=1)
    return out

def test_control_lanes_paired_per_piece_after_registration():
    target, truth = two_strips(shift_px=40.0, seed=1)
    # the control exposure: strips moved by different amounts, the lower one by more than a pitch
    control = _shift_strips(two_strips(shift_px=40.0, seed=2)[0], 20, 80)
    st, sc = target.astype(float), control.astype(float)
    pt, pc = find_pieces(st), find_pieces(sc)
    assert len(pt) == len(pc) == 2
    shifts = register_pieces(st, pt, sc, pc)
    assert [(s["piece"], s["control_piece"]) for s in shifts] == [(1, 1), (2, 2)]
    assert abs(shifts[0]["dx_px"] - 20) <= 8 and abs(shifts[1]["dx_px"] - 80) <= 8
    lt, lc = _lanes_df(find_lanes(st, pt)), _lanes_df(find_lanes(sc, pc))
    m = pair_control_lanes(lt, lc, shifts)
    # every target lane pairs with the control lane of the same position in its own strip
    for pcs in (1, 2):
        t = lt[lt.piece == pcs].sort_values("x_center_px")["lane"].tolist()
        c = lc[lc.piece == pcs].sort_values("x_center_px")["lane"].tolist()
        assert len(t) == len(c) == 9
        assert [m.get(x) for x in t] == c
    # pairing by x alone (the old rule) would give the lower strip's lanes their neighbours'
    by_x = {}
    for r in lt[lt.piece == 2].itertuples():
        d = (lc["x_center_px"] - r.x_center_px).abs()
        by_x[r.lane] = int(lc.loc[d.idxmin(), "lane"])
    assert by_x != {k: m[k] for k in by_x}

def test_control_of_another_size_is_a_one_line_error():
    target, _ = two_strips()
    small = target[:500, :800]
    with pytest.raises(ControlPairingError) as e:
        register_pieces(target.astype(float), find_pieces(target.astype(float)), small.astype(float),
                        find_pieces(small.astype(float)))
    msg = str(e.value)
    assert "\n" not in msg and "800x500" in msg and "1092x736" in msg

def test_cli_control_image_cannot_be_paired_names_the_file(tmp_path):
    import tifffile

    from exoimage.blot.plan import NormalizationSpec, normalize_blot

    target, _ = two_strips()
    tifffile.imwrite(tmp_path / "t.tif", target)
    tifffile.imwrite(tmp_path / "c.tif", target[:500, :800])
    res = analyze_blot_file(tmp_path / "t.tif")
    assert res.ok
    spec = NormalizationSpec(control_image=tmp_path / "c.tif")
    with pytest.raises(ValueError) as e:
        normalize_blot(res, spec)
    msg = str(e.value)
    assert "\n" not in msg and "c.tif cannot be paired with the target" in msg

def test_cli_control_image_end_to_end(tmp_path):
    import tifffile

    from exoimage.blot.plan import NormalizationSpec, normalize_blot

    target, _ = two_strips(seed=3)
    control = _shift_strips(two_strips(seed=4)[0], 20, 80)
    tifffile.imwrite(tmp_path / "t.tif", target)
    tifffile.imwrite(tmp_path / "c.tif", control)
    res = analyze_blot_file(tmp_path / "t.tif")
    tabs = normalize_blot(res, NormalizationSpec(control_image=tmp_path / "c.tif"), all_rows_as_target=True)
    assert len(tabs) == 1
    t = tabs[0]
    # every one of the 18 sample lanes has a control value (its own strip's control row)
    assert len(t) == 18 and t["control_volume"].notna().all()
    # target and control bands have the same amplitude pattern lane by lane (0.6-1.0 of the
    # strongest: a spread of 1.67 when lanes are paired with their neighbours); paired right,
    # the ratio stays within the measurement's own scatter
    r = t["ratio"].to_numpy()
    assert np.nanmax(r) / np.nanmin(r) < 1.3

def test_kodak_target_and_gapdh_lanes_paired_like_the_analyst():
    tr = "B2AR/June 20/June20.2013_B2AR_10wtop_16wbottom.tif"
    cr = "B2AR/June 20/June20.2013_B2AR_10wtop_16wbottom_GAPDH.tif"
    if not (KODAK / tr).exists():
        pytest.skip("../shared Kodak blots absent")
    from exoimage.blot.plan import _signal_and_pieces

    truth = json.loads((KODAK / "lanes_truth.json").read_text())["images"]
    rt, rc = analyze_blot_file(KODAK / tr), analyze_blot_file(KODAK / cr)
    st, pt = _signal_and_pieces(rt)
    sc, pc = _signal_and_pieces(rc)
    shifts = register_pieces(st, pt, sc, pc)
    m = pair_control_lanes(rt.lanes, rc.lanes, shifts)

    def owner(lanes, pieces_truth):
        """exo lane -> (strip, analyst lane) whose AOI its centre line crosses."""
        out = {}
        for strip, ls in pieces_truth.items():
            for a in ls:
                x1, y1, x2, y2 = a["aoi"]
                yc = (y1 + y2) / 2
                for r in lanes.itertuples():
                    if r.y_top_px <= yc <= r.y_bottom_px:
                        f = (yc - r.y_top_px) / max(1, r.y_bottom_px - r.y_top_px)
                        xc = r.x_center_top_px + f * (r.x_center_bottom_px - r.x_center_top_px)
                        if x1 <= xc <= x2:
                            out.setdefault(int(r.lane), (strip, a["lane"]))
        return out

    ot, oc = owner(rt.lanes, truth[tr]["pieces"]), owner(rc.lanes, truth[cr]["pieces"])
    pairs = [(ot[t], oc.get(c)) for t, c in m.items() if t in ot]
    assert len(pairs) == 18
    assert all(a == b for a, b in pairs), pairs
