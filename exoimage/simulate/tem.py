"""Simulated negative-stain TEM fields of extracellular vesicles, with ground truth.

The image model, in display units (stain is dark, vesicles lighter):

* background: grey stain level with low-frequency unevenness and carbon-film
  texture (band-passed noise);
* vesicle: an irregular star-shaped outline ``R(theta)`` (low radial harmonics),
  a lighter body, a bright membrane rim just inside the outline, optionally a
  darker collapsed centre (the "cup"), and a dark halo of pooled stain outside;
* confounders: stain precipitate (very dark irregular blobs), protein debris
  (< 20 nm specks), touching vesicles, vesicles cut by the border;
* optics and detector: Gaussian blur (PSF) and Gaussian noise, stored as uint16.

The truth table has one row per vesicle: ``x_px, y_px`` (centre, column/row),
``diameter_nm`` (equivalent-circle diameter of the outline, computed exactly
from ``R(theta)``), ``touches_border`` and ``kind``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

__all__ = ["TemScene", "SCENARIOS", "simulate_tem", "write_tem_set", "match_to_truth"]


@dataclass(frozen=True)
class TemScene:
    """Parameters of one simulated field (all sizes in nm unless named ``_px``)."""

    shape: tuple = (1024, 1024)
    pixel_size_nm: float = 1.0
    coverage: float = 0.08  # fraction of the field covered by vesicles
    median_diameter_nm: float = 90.0
    diameter_spread: float = 0.4  # lognormal sigma
    min_diameter_nm: float = 36.0
    max_diameter_nm: float = 300.0
    touching_fraction: float = 0.0  # fraction of vesicles placed touching another
    cup_fraction: float = 0.5
    irregularity: float = 0.04  # amplitude of radial harmonics (fraction of radius)
    body_contrast: float = 0.10  # body lighter than stain (fraction of background level)
    rim_contrast: float = 0.15
    halo_contrast: float = 0.20
    cup_depth: float = 0.9  # fraction of body contrast removed in the cup
    noise: float = 0.035  # noise SD, fraction of background level
    uneven: float = 0.15  # amplitude of background unevenness
    texture: float = 0.02  # carbon-film texture amplitude
    n_precipitate_per_um2: float = 3.0
    n_debris_per_um2: float = 15.0
    psf_nm: float = 1.2
    border_vesicles: int = 2  # vesicles deliberately placed across the border
    level: float = 20000.0  # background grey level in counts


SCENARIOS = {
    "clean": dict(coverage=0.06, touching_fraction=0.0, cup_fraction=0.3, noise=0.02,
                  uneven=0.05, n_precipitate_per_um2=0.0, n_debris_per_um2=5.0),
    "crowded": dict(coverage=0.22, touching_fraction=0.5, cup_fraction=0.5),
    "low_contrast": dict(body_contrast=0.06, rim_contrast=0.07, halo_contrast=0.10, noise=0.035),
    "cups": dict(cup_fraction=1.0, cup_depth=1.3, irregularity=0.07),
    "uneven": dict(uneven=0.4, texture=0.04, n_precipitate_per_um2=8.0, n_debris_per_um2=30.0),
    "mixed": dict(coverage=0.12, touching_fraction=0.25, cup_fraction=0.6),
}


def _radius_fn(rng, r0, irregularity):
    """Random smooth outline R(theta) = r0 * (1 + sum_k a_k cos(k theta + phi_k))."""
    ks = np.arange(2, 6)
    amps = irregularity * rng.uniform(0.3, 1.0, ks.size) / (ks - 1) ** 0.7
    phases = rng.uniform(0, 2 * np.pi, ks.size)
    stretch = 1.0 + rng.uniform(0, 2.5 * irregularity)  # mild ellipticity

    def radius(theta):
        r = 1.0 + np.sum(amps[:, None] * np.cos(ks[:, None] * np.asarray(theta).ravel()[None, :]
                                                + phases[:, None]), axis=0)
        ell = 1.0 + (stretch - 1.0) * np.cos(2 * (np.asarray(theta).ravel() - phases[0]))
        return (r0 * r * ell).reshape(np.shape(theta))

    theta = np.linspace(0, 2 * np.pi, 4096, endpoint=False)
    area = 0.5 * np.mean(radius(theta) ** 2) * 2 * np.pi
    return radius, area


def _place(rng, scene, radii_px, H, W):
    """Centres for vesicles of the given radii: non-overlapping, some touching, some at the border."""
    centres = []
    placed_r = []
    n_border = min(scene.border_vesicles, len(radii_px))
    for i, r in enumerate(radii_px):
        for _attempt in range(200):
            if i < n_border:
                side = rng.integers(4)
                t = rng.uniform(0.2, 0.8)
                off = rng.uniform(-0.5, 0.4) * r
                cy, cx = [(off, t * W), (H - 1 - off, t * W), (t * H, off), (t * H, W - 1 - off)][side]
            elif placed_r and rng.random() < scene.touching_fraction:
                j = rng.integers(len(centres))
                ang = rng.uniform(0, 2 * np.pi)
                d = (placed_r[j] + r) * rng.uniform(1.0, 1.06)
                cy, cx = centres[j][0] + d * np.sin(ang), centres[j][1] + d * np.cos(ang)
            else:
                cy, cx = rng.uniform(r * 1.2, H - r * 1.2), rng.uniform(r * 1.2, W - r * 1.2)
            ok = all(np.hypot(cy - c[0], cx - c[1]) >= (r + rr) * 0.99 + 1.0
                     for c, rr in zip(centres, placed_r))
            if i >= n_border:
                ok = ok and (r * 1.15 <= cy <= H - 1 - r * 1.15) and (r * 1.15 <= cx <= W - 1 - r * 1.15)
            if ok:
                centres.append((cy, cx))
                placed_r.append(r)
                break
        else:
            centres.append(None)
            placed_r.append(r)
    return centres


def simulate_tem(scene: TemScene | None = None, *, seed: int = 0, **overrides):
    """Simulate one negative-stain TEM field.

    Parameters
    ----------
    scene : TemScene, optional
        Scene parameters; keyword ``overrides`` replace single fields
        (e.g. ``pixel_size_nm=2.0``, ``shape=(512, 512)``).
    seed : int
        Random seed; the same seed gives the same image, byte for byte.

    Returns
    -------
    image : ndarray of uint16
    truth : pandas.DataFrame
        ``vesicle_id, x_px, y_px, diameter_nm, touches_border, kind`` with kind
        ``'vesicle'``; debris and precipitate are listed separately with
        ``kind`` ``'debris'`` / ``'precipitate'`` and are not vesicles.
    """
    scene = replace(scene or TemScene(), **overrides)
    rng = np.random.default_rng(seed)
    H, W = scene.shape
    px = scene.pixel_size_nm
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)

    # --- background: level, unevenness, carbon texture
    img = np.ones((H, W), np.float32)
    low = ndi.zoom(rng.normal(size=(6, 6)).astype(np.float32), (H / 6, W / 6), order=3)[:H, :W]
    low /= max(1e-6, np.abs(low).max())
    img += scene.uneven * 0.5 * low
    img += scene.uneven * 0.5 * (xx / W - 0.5)  # a gradient too
    if scene.texture > 0:
        tex = ndi.gaussian_filter(rng.normal(size=(H, W)).astype(np.float32), 2.0 / px + 0.5)
        tex /= tex.std() + 1e-9
        img += scene.texture * tex
    bg = img.copy()

    # --- vesicle sizes
    area_nm2 = H * W * px * px
    mean_area = np.pi / 4 * scene.median_diameter_nm ** 2 * np.exp(2 * scene.diameter_spread ** 2)
    n = max(3, int(round(scene.coverage * area_nm2 / mean_area)))
    d_nm = np.exp(rng.normal(np.log(scene.median_diameter_nm), scene.diameter_spread, n))
    d_nm = np.clip(d_nm, scene.min_diameter_nm, min(scene.max_diameter_nm, 0.45 * min(H, W) * px))
    d_nm = np.sort(d_nm)[::-1]  # place large ones first
    radii_px = d_nm / 2 / px
    centres = _place(rng, scene, radii_px, H, W)

    rows = []
    halo_acc = np.zeros((H, W), np.float32)
    bodies = []
    for i, (r0, c) in enumerate(zip(radii_px, centres)):
        if c is None:
            continue
        radius, area = _radius_fn(rng, r0, scene.irregularity)
        cy, cx = c
        ext = r0 * 2.2 + 4
        y0, y1 = int(max(0, cy - ext)), int(min(H, cy + ext + 1))
        x0, x1 = int(max(0, cx - ext)), int(min(W, cx + ext + 1))
        if y1 <= y0 or x1 <= x0:
            continue
        dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
        rho = np.hypot(dy, dx)
        theta = np.arctan2(dy, dx)
        R = radius(theta)
        d = rho - R  # signed distance to the outline (px), <0 inside
        inside = np.clip(0.5 - d, 0.0, 1.0)  # 1-px anti-aliased coverage
        halo_w = R * rng.uniform(0.15, 0.45)
        halo = scene.halo_contrast * rng.uniform(0.7, 1.3) * np.exp(-np.clip(d, 0, None) / halo_w) * (d > -0.5)
        halo_acc[y0:y1, x0:x1] += halo * (1 - inside)
        rim_w = max(0.6, 2.5 / px)
        body = scene.body_contrast * rng.uniform(0.75, 1.25) * np.ones_like(d)
        body += scene.rim_contrast * np.exp(-0.5 * ((d + 1.5 * rim_w) / rim_w) ** 2)
        if rng.random() < scene.cup_fraction:
            cr = R * rng.uniform(0.35, 0.65)
            ox, oy = rng.uniform(-0.2, 0.2, 2) * r0
            cup_d = np.hypot(dx - ox, dy - oy) - cr
            body -= scene.body_contrast * scene.cup_depth * 1.2 / (1 + np.exp(cup_d / max(1.0, 0.08 * r0)))
        bodies.append((y0, y1, x0, x1, inside, body))
        ys, xs = np.nonzero(inside > 0)
        touches = bool(ys.size and (ys.min() + y0 <= 0 or xs.min() + x0 <= 0
                                    or ys.max() + y0 >= H - 1 or xs.max() + x0 >= W - 1))
        rows.append(dict(x_px=cx, y_px=cy, diameter_nm=2 * np.sqrt(area / np.pi) * px,
                         touches_border=touches, kind="vesicle"))

    img = bg - np.minimum(halo_acc, scene.halo_contrast * 1.6)
    for y0, y1, x0, x1, inside, body in bodies:
        sub = img[y0:y1, x0:x1]
        img[y0:y1, x0:x1] = sub * (1 - inside) + (bg[y0:y1, x0:x1] + body) * inside

    # --- confounders: precipitate (dark, irregular) and debris (small specks)
    um2 = area_nm2 / 1e6
    extras = []
    for kind, count, lo, hi, contrast in (
            ("precipitate", scene.n_precipitate_per_um2 * um2, 12, 50, -0.5),
            ("debris", scene.n_debris_per_um2 * um2, 6, 18, None)):
        for _ in range(rng.poisson(count)):
            dn = rng.uniform(lo, hi)
            r = dn / 2 / px
            cy, cx = rng.uniform(0, H), rng.uniform(0, W)
            ext = int(r * 2 + 3)
            y0, y1 = int(max(0, cy - ext)), int(min(H, cy + ext + 1))
            x0, x1 = int(max(0, cx - ext)), int(min(W, cx + ext + 1))
            if y1 <= y0 or x1 <= x0:
                continue
            dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
            if kind == "precipitate":
                blob = np.zeros_like(dy)
                for _k in range(4):
                    oy, ox = rng.normal(0, 0.4 * r, 2)
                    blob = np.maximum(blob, np.exp(-((dy - oy) ** 2 + (dx - ox) ** 2) / (2 * (0.5 * r) ** 2)))
                img[y0:y1, x0:x1] += contrast * rng.uniform(0.6, 1.2) * (blob > 0.5) * blob
            else:
                c = rng.choice([-1, 1]) * rng.uniform(0.1, 0.3)
                img[y0:y1, x0:x1] += c * np.clip(r + 0.5 - np.hypot(dy, dx), 0, 1)
            extras.append(dict(x_px=cx, y_px=cy, diameter_nm=dn, touches_border=False, kind=kind))

    # --- optics and detector
    img = ndi.gaussian_filter(img, max(0.5, scene.psf_nm / px))
    img += rng.normal(0, scene.noise, img.shape).astype(np.float32)
    out = np.clip(img * scene.level, 0, 65535).round().astype(np.uint16)

    truth = pd.DataFrame(rows + extras, columns=["x_px", "y_px", "diameter_nm", "touches_border", "kind"])
    truth.insert(0, "vesicle_id", np.arange(1, len(truth) + 1))
    return out, truth


def write_tem_set(out_dir, *, n: int = 4, seed: int = 0, size: int = 1024,
                  pixel_size_nm: float | None = None, scenario: str = "mixed") -> list[Path]:
    """Write ``n`` simulated fields as calibrated 16-bit ImageJ TIFFs plus ``truth.csv``.

    Pixel sizes vary between images (0.5-4 nm/px, log-spaced) unless
    ``pixel_size_nm`` is given. Returns the image paths.
    """
    from ..io import write_calibrated_tiff
    from ..outputs import write_table  # every CSV through one writer

    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sizes = ([pixel_size_nm] * n if pixel_size_nm else
             list(np.round(np.geomspace(0.5, 4.0, max(n, 1)), 3))[:n])
    paths, truths = [], []
    for i in range(n):
        scene = TemScene(shape=(size, size), pixel_size_nm=float(sizes[i]), **SCENARIOS[scenario])
        img, truth = simulate_tem(scene, seed=seed * 1000 + i)
        name = f"sim_tem_{scenario}_{i:03d}.tif"
        write_calibrated_tiff(out / name, img, scene.pixel_size_nm)
        truth.insert(0, "image", name)
        truth["pixel_size_nm"] = scene.pixel_size_nm
        truths.append(truth)
        paths.append(out / name)
    write_table(pd.concat(truths, ignore_index=True), out / "truth.csv")
    return paths


def match_to_truth(found: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Score detections against simulator truth.

    A detection matches a truth vesicle when its centre lies within half the
    truth diameter of the truth centre (one-to-one, closest first). Only
    ``kind == 'vesicle'`` truth rows count. Border-cut vesicles (truth or
    found) are left out: they are flagged, not sized, and their visible
    centroid is not their centre.

    Returns
    -------
    dict with ``tp, fp, fn, precision, recall, f1``, ``errors`` (relative
    diameter errors of matched, sized vesicles: found/truth - 1) and
    ``pairs`` (list of (found index, truth index)).
    """
    t = truth[(truth["kind"] == "vesicle") & ~truth["touches_border"].astype(bool)].reset_index(drop=True)
    f = found[~found["touches_border"].astype(bool)].reset_index(drop=True)
    pairs = []
    if len(t) and len(f):
        px = t.get("pixel_size_nm", pd.Series([1.0] * len(t))).to_numpy(float)
        d = np.hypot(f["x_px"].to_numpy()[:, None] - t["x_px"].to_numpy()[None, :],
                     f["y_px"].to_numpy()[:, None] - t["y_px"].to_numpy()[None, :])
        lim = (t["diameter_nm"].to_numpy() / px / 2.0)[None, :]
        cand = np.argwhere(d <= lim)
        cand = cand[np.argsort(d[cand[:, 0], cand[:, 1]])]
        used_f, used_t = set(), set()
        for i, j in cand:
            if i in used_f or j in used_t:
                continue
            used_f.add(i)
            used_t.add(j)
            pairs.append((int(i), int(j)))
    tp = len(pairs)
    fp = len(f) - tp
    fn = len(t) - tp
    prec = tp / (tp + fp) if tp + fp else 1.0
    rec = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    errors = []
    for i, j in pairs:
        if not bool(t.loc[j, "touches_border"]) and not bool(f.loc[i, "touches_border"]):
            errors.append(f.loc[i, "diameter_nm"] / t.loc[j, "diameter_nm"] - 1.0)
    return dict(tp=tp, fp=fp, fn=fn, precision=prec, recall=rec, f1=f1,
                errors=np.asarray(errors, float), pairs=pairs)
