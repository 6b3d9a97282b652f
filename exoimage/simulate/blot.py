"""Simulated Western blots with known per-band volumes.

:func:`simulate_blot` renders lanes of bands (sharp bands, broad glycosylated
smears, close doublets, a marker ladder), optional dilution series, smile,
tilt, uneven background, noise, dust/hot pixels and detector saturation, in
either polarity and at 8, 12 (in 16) or 16 bits. The truth volume of a band
is the sum of its rendered pixel values (raw units above the background)
before noise, quantisation and clipping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

__all__ = ["SimBlot", "simulate_blot", "write_blot_set", "DEFAULT_LADDER_KDA", "SCENARIOS"]

DEFAULT_LADDER_KDA = [250, 150, 100, 75, 50, 37, 25, 20, 15, 10]

#: rows of the default layout: name, kDa, kind, base volume (raw units x px), sigma (px at 600 px height)
DEFAULT_ROWS = [
    ("alix", 96.0, "sharp", 4.0e5, 3.0),
    ("cd63", 42.0, "smear", 1.0e6, 0.0),
    ("doublet_a", 22.0, "sharp", 2.5e5, 2.6),
    ("doublet_b", 20.0, "sharp", 2.0e5, 2.6),
    ("control", 15.0, "sharp", 5.0e5, 3.0),
]

SCENARIOS = ("clean", "realistic", "dilution", "saturated", "film", "12bit")


@dataclass
class SimBlot:
    """A simulated blot: raw image, truth tables and the settings used."""

    data: np.ndarray
    bands: pd.DataFrame
    lanes: pd.DataFrame
    settings: dict = field(default_factory=dict)
    white_is_zero: bool = False


def _y_of_kda(kda, height, top=0.1, bottom=0.93, hi=250.0, lo=10.0):
    f = (np.log(hi) - np.log(np.asarray(kda, float))) / (np.log(hi) - np.log(lo))
    return height * (top + (bottom - top) * f)


def simulate_blot(*, n_lanes: int = 8, height: int = 600, width: int | None = None, seed: int = 0,
                  ladder: bool = True, ladder_kda=DEFAULT_LADDER_KDA, rows=DEFAULT_ROWS,
                  loads=None, lane_width_frac: float = 0.7, margin_px: int | None = None,
                  smile_px: float = 0.0, tilt_deg: float = 0.0, background: float = 800.0,
                  gradient: float = 0.5, blotchy: float = 0.3, noise: float = 1.0, dust: int = 0,
                  hot_pixels: int = 0, bubbles: int = 0, saturate_lanes=(), bit_depth: int = 16,
                  polarity: str = "light-bands", gain: float = 1.0, empty_lanes=()) -> SimBlot:
    """Render one blot with known band volumes.

    Parameters
    ----------
    n_lanes : int
        Number of lanes, including the ladder lane (lane 1) when ``ladder``.
    height, width : int
        Image size, px (width default: 70 px per lane + margins).
    seed : int
        Random seed.
    ladder : bool
        Lane 1 is a molecular-weight marker with bands at ``ladder_kda``.
    rows : list of (name, kDa, kind, volume, sigma_px)
        Proteins of every sample lane; ``kind`` 'sharp' or 'smear' (30-60 kDa hump).
    loads : list of float, optional
        Relative load of each sample lane (dilution series); default: random
        0.5-1.5 per lane and row (independent per row, so ratios vary).
    lane_width_frac : float
        Lane width / lane pitch.
    margin_px : int, optional
        Distance from the image side to the first lane's edge, px (small = edge lanes).
    smile_px : float
        Bands at the sides sit this many px higher than in the middle.
    tilt_deg : float
        Lanes tilted by this angle (degrees, clockwise).
    background, gradient, blotchy : float
        Background level (raw units per px), left-right/top-bottom gradient
        (fraction of the level), low-frequency blotches (fraction).
    noise : float
        Noise scale: SD = noise * sqrt(signal) + 2 (shot + read noise), raw units.
    dust, hot_pixels, bubbles : int
        Number of bright dust specks (2-3 px), single hot pixels at the ceiling,
        and dark bubbles.
    saturate_lanes : sequence of int
        Lanes whose strongest row is made bright enough to clip.
    bit_depth : int
        8, 12 (stored in uint16) or 16.
    polarity : str
        'light-bands' (chemiluminescence) or 'dark-bands' (film scan: stored inverted).
    gain : float
        Multiplies every band volume.
    empty_lanes : sequence of int
        Lane positions left empty (a gap): not rendered and not in the truth lanes.

    Returns
    -------
    SimBlot
        ``bands`` has ``lane, row, name, kind, y_px, x_center_px, volume, kda,
        saturated, is_ladder``; ``lanes`` has ``lane, x_left_px, x_right_px,
        x_center_px`` (at the image's middle row) and ``slope_dx_per_dy``.
    """
    rng = np.random.default_rng(seed)
    pitch = 70.0
    if width is None:
        width = int(pitch * n_lanes + 2 * (margin_px if margin_px is not None else 40))
    margin = margin_px if margin_px is not None else (width - pitch * n_lanes) / 2
    pitch = (width - 2 * margin) / n_lanes
    lw = lane_width_frac * pitch
    slope = np.tan(np.deg2rad(tilt_deg))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    yc = height / 2
    ceiling = {8: 255, 12: 4095, 16: 65535}[bit_depth]
    # background
    bg = background * (1 + gradient * (xx / width - 0.5) + 0.5 * gradient * (yy / height - 0.5))
    if blotchy:
        blot = ndi.gaussian_filter(rng.normal(size=(height, width)), min(height, width) / 8)
        blot /= max(np.abs(blot).max(), 1e-12)
        bg *= 1 + blotchy * blot
    sig = np.zeros((height, width))
    truth_b, truth_l = [], []
    sy = height / 600.0
    lane_no = 0
    positions = [i for i in range(n_lanes) if (i + 1) not in set(empty_lanes)]
    for pos in positions:
        lane_no += 1
        xcen = margin + pitch * (pos + 0.5)
        is_ladder = ladder and pos == 0
        truth_l.append(dict(lane=lane_no, x_left_px=xcen - lw / 2, x_right_px=xcen + lw / 2 - 1,
                            x_center_px=xcen, slope_dx_per_dy=slope, is_ladder=is_ladder))
        xl = xx - (xcen + slope * (yy - yc))
        hx = 0.5 * (np.tanh((xl + lw / 2) / 2.0) - np.tanh((xl - lw / 2) / 2.0))
        x0, x1 = int(max(0, xcen - lw / 2 - 8 - abs(slope) * height)), int(min(width, xcen + lw / 2 + 8 + abs(slope) * height))
        smile = smile_px * ((xcen - width / 2) / (width / 2)) ** 2
        if is_ladder:
            bl = [(f"ladder_{k:g}", float(k), "sharp", 2.5e5, 2.5) for k in ladder_kda]
        else:
            bl = rows
        for ri, (nm, kda, kind, vol, s) in enumerate(bl):
            if is_ladder:
                v = vol * rng.uniform(0.7, 1.3)
            elif loads is not None:
                v = vol * loads[len([t for t in truth_l if not t["is_ladder"]]) - 1]
            else:
                v = vol * rng.uniform(0.5, 1.5)
            v *= gain * sy
            ycen = _y_of_kda(kda, height) - smile
            sub_y = slice(0, height)
            ys = yy[:, x0:x1] - slope * 0 - ycen
            if kind == "smear":
                # glycosylated smear between 60 and 30 kDa: skewed hump
                ya, yb = _y_of_kda(60, height) - smile, _y_of_kda(30, height) - smile
                mid, half = 0.5 * (ya + yb), 0.5 * (yb - ya)
                u = (yy[:, x0:x1] - mid) / half
                gy = np.exp(-0.5 * (u / 0.55) ** 2) * (1 + 0.35 * np.tanh(2 * u))
                ycen = mid
            else:
                gy = np.exp(-0.5 * (ys / (s * sy)) ** 2)
            b = gy * hx[:, x0:x1]
            tot = b.sum()
            b *= v / tot
            if not is_ladder and (lane_no in set(saturate_lanes)) and ri == 0:
                # make the band's core clip: peak 1.6x the detector ceiling
                k = 1.6 * ceiling / max(b.max(), 1e-12) / (200.0 / ceiling if bit_depth == 8 else 1.0)
                b *= k
                v *= k
            sig[sub_y, x0:x1] += b
            truth_b.append(dict(lane=lane_no, row=0 if is_ladder else ri + 1, name=nm, kind=kind,
                                y_px=float(ycen), x_center_px=float(xcen), volume=float(v), kda=kda,
                                is_ladder=is_ladder, peak=float(b.max())))
    img = bg + sig
    # bubbles: dark discs (less signal reaches the detector)
    for _ in range(bubbles):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(4, 12) * sy
        d = np.hypot(yy - cy, xx - cx)
        img *= np.where(d < r, 0.55, 1.0)
    img = img + rng.normal(size=img.shape) * (noise * np.sqrt(np.clip(img, 0, None)) + 2.0)
    for _ in range(dust):
        cy, cx = int(rng.integers(0, height - 3)), int(rng.integers(0, width - 3))
        img[cy:cy + 2, cx:cx + 2] += background * 3
    # scale to the bit depth: 8-bit keeps the same relative dynamic range
    scale = 1.0
    if bit_depth == 8:
        scale = 200.0 / np.percentile(bg + sig, 99.9)
        img = img * scale
    pre_clip = (bg + sig) * scale
    raw = np.clip(np.rint(img), 0, ceiling)
    for _ in range(hot_pixels):
        raw[int(rng.integers(0, height)), int(rng.integers(0, width))] = ceiling
    tb = pd.DataFrame(truth_b)
    tb["volume"] *= scale
    # a band is saturated when its noise-free pixels clip over a solid (>= 3x3) area
    over = pre_clip >= ceiling
    if over.any():
        solid = ndi.binary_opening(over, np.ones((3, 3), bool))
        lab, _ = ndi.label(solid)
        sat = []
        for r in tb.itertuples():
            yi = int(np.clip(round(r.y_px), 0, height - 1))
            xi = int(np.clip(round(r.x_center_px + slope * (r.y_px - yc)), 0, width - 1))
            win = solid[max(0, yi - 6):yi + 7, max(0, xi - int(lw / 2)):xi + int(lw / 2)]
            sat.append(bool(win.any()))
        tb["saturated"] = sat
    else:
        tb["saturated"] = False
    if polarity == "dark-bands":
        raw = ceiling - raw
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    tl = pd.DataFrame(truth_l)
    settings = dict(n_lanes=n_lanes, height=height, width=width, seed=seed, smile_px=smile_px,
                    tilt_deg=tilt_deg, bit_depth=bit_depth, polarity=polarity, ceiling=ceiling,
                    ladder=ladder, ladder_kda=list(ladder_kda) if ladder else None,
                    loads=list(loads) if loads is not None else None)
    return SimBlot(data=raw.astype(dtype), bands=tb.drop(columns=["peak"]), lanes=tl, settings=settings)


def scenario(name: str, seed: int = 0, **kw) -> SimBlot:
    """Presets: clean, realistic (smile, tilt, uneven background, dust, bubbles),
    dilution (2-fold series), saturated, film (8-bit dark bands), 12bit."""
    base = dict(seed=seed)
    if name == "clean":
        base.update(blotchy=0.0, gradient=0.0)
    elif name == "realistic":
        base.update(smile_px=6.0, tilt_deg=0.8, dust=6, hot_pixels=4, bubbles=3, blotchy=0.3)
    elif name == "dilution":
        base.update(n_lanes=8, loads=[1.0, 0.5, 0.25, 0.125, 1.0, 0.5, 0.25], smile_px=4.0)
    elif name == "saturated":
        base.update(saturate_lanes=(3, 6), hot_pixels=5)
    elif name == "film":
        base.update(bit_depth=8, polarity="dark-bands", noise=0.5)
    elif name == "12bit":
        base.update(bit_depth=12, gain=0.25, background=300.0, saturate_lanes=(4,))
    else:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    base.update(kw)
    return simulate_blot(**base)


def write_blot_set(out, *, n: int = 3, seed: int = 0, scenarios=None, **kw) -> list[Path]:
    """Write ``n`` simulated blots (16-bit or 8-bit TIFF), ``<name>.truth.csv``,
    ``<name>.lanes.csv`` (lane sheet) and ``truth.csv`` (all bands) into ``out``."""
    import tifffile
    from ..outputs import write_table  # every CSV through one writer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scenarios = list(scenarios or SCENARIOS)
    paths, truths = [], []
    for i in range(n):
        sc = scenarios[i % len(scenarios)]
        sim = scenario(sc, seed=seed + i, **kw)
        name = f"blot_{i + 1:02d}_{sc}"
        p = out / f"{name}.tif"
        tifffile.imwrite(str(p), sim.data, compression="zlib", photometric="minisblack")
        tb = sim.bands.copy()
        tb.insert(0, "image", p.name)
        write_table(tb, out / f"{name}.truth.csv")
        sheet = _lane_sheet(sim)
        write_table(sheet, out / f"{name}.lanes.csv")
        truths.append(tb)
        paths.append(p)
    write_table(pd.concat(truths, ignore_index=True), out / "truth.csv")
    return paths


def _lane_sheet(sim: SimBlot) -> pd.DataFrame:
    rows = []
    k = 0
    for ln in sim.lanes.itertuples():
        if ln.is_ladder:
            rows.append(dict(lane=ln.lane, sample="ladder", group="", loaded=np.nan))
            continue
        k += 1
        loads = sim.settings.get("loads")
        if loads:
            rows.append(dict(lane=ln.lane, sample=f"load_{loads[k - 1]:g}", group=f"series{1 if k <= 4 else 2}",
                             loaded=float(loads[k - 1])))
        else:
            rows.append(dict(lane=ln.lane, sample=f"S{(k - 1) % 3 + 1}", group=f"rep{(k - 1) // 3 + 1}",
                             loaded=np.nan))
    return pd.DataFrame(rows)
