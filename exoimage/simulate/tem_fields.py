"""Harder simulated TEM fields (issue 13): the preparations real EV micrographs show.

:mod:`exoimage.simulate.tem` (``TemScene`` / ``SCENARIOS``) is left as it is, so
its numbers stay comparable; this module adds scenarios modelled on the real
images described in issue 13 and on the two real micrographs in ``../shared``
(the ScanEV negative stain: light cup-shaped EVs with bright rims and broad dark
halos on a mottled carbon film; the FRU-Net crop: EVs *darker* than a grainy
background, a lighter granular rim, a dark ring just outside and a halo about
one radius wide, measured from its radial profiles).

Scenarios (:data:`FIELD_SCENARIOS`; each has its own pixel sizes):

``small_evs``
    30-60 nm (32-60 drawn, clear of the default 30 nm cut) cup-shaped EVs, some touching.
``dense``
    200+ vesicles of 32-90 nm per field at low magnification, crowded, half touching.
``wide_range``
    50-550 nm at once at ~1.7 nm/px: large haloed (collapsed) vesicles, small
    light discs, faint "ghost" discs; stain precipitate and a square crystal.
``dark_grain``
    EVs darker than a grainy background with broad dark halos (like the dark crop).
``granular_caps``
    crowded 32-90 nm vesicles, half with a granular cap sticking out of the round
    outline; faint granular patches that are not vesicles.
``stain_pools``
    cup-shaped EVs, some faint ones inside dark stain pools.
``lobed``
    irregular 130-200 nm cup-shaped particles with a darker round lobe, on a
    speckled background.
``confounders``
    ordinary EVs among stain precipitate, debris < 25 nm, a square crystal and a
    burned-in scale bar with its text.
``meniscus``
    36-130 nm cup-shaped EVs whose edge is a graded stain meniscus 5-10 nm wide (body
    coverage falling linearly to the truth outline, the bright rim inside it): the truth is the
    ramp's **outer foot**, where annotators of real micrographs put the outer edge; in every
    other scenario the edge is a sharp step (its half-height after the optics' blur).

Truth (one row per object): ``object_id, kind, is_vesicle, x_px, y_px,
diameter_nm, touches_border, polarity, in_pool, pixel_size_nm``.
For a vesicle, ``x_px, y_px`` is the area centroid of its outline and
``diameter_nm`` the equivalent-circle diameter of the **outer edge** (the body /
stain boundary; the bright rim lies inside it, the halo and any granular cap
outside it; a lobed particle's outline includes its lobe). Non-vesicles
(``is_vesicle`` False: ``precipitate, debris, crystal, granular_patch, bar,
text``) carry their centre and a nominal size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

__all__ = ["FieldScenario", "FIELD_SCENARIOS", "simulate_field", "field_shape", "match_detections",
           "MATCH_RADIUS_FRAC", "TRUTH_COLUMNS"]

TRUTH_COLUMNS = ["object_id", "kind", "is_vesicle", "x_px", "y_px", "diameter_nm", "touches_border",
                 "polarity", "in_pool", "pixel_size_nm"]

#: largest field side in px (keeps one field's detection ~1-3 s on one core)
MAX_SIDE_PX = 1400
#: smallest field side in px
MIN_SIDE_PX = 256
#: a vesicle whose outline comes within this many px of the border counts as border-cut
#: (the detector's own margin is 1-2 px)
BORDER_PX = 2.0
#: optical blur (PSF sigma) in nm, as in :class:`exoimage.simulate.tem.TemScene`
PSF_NM = 1.2
#: uint16 counts of the stain background level
LEVEL = 20000.0


@dataclass(frozen=True)
class FieldScenario:
    """One scenario: what it models, its pixel sizes (nm/px) and field sides (nm)."""

    name: str
    about: str
    pixel_sizes: tuple
    field_nm: float  # side of the square field (full run)
    quick_field_nm: float  # side in the --quick / test runs


FIELD_SCENARIOS = {s.name: s for s in (
    FieldScenario("small_evs", "32-60 nm cup-shaped EVs, some touching", (0.5, 1.0, 2.0, 3.0), 900, 500),
    FieldScenario("dense", "200+ vesicles of 32-90 nm per field, crowded and touching", (1.5, 2.0, 3.0),
                  1600, 1600),
    FieldScenario("wide_range", "50-550 nm at once: haloed, light discs, ghost discs, precipitate, crystal",
                  (1.2, 1.7, 2.4), 2200, 1600),
    FieldScenario("dark_grain", "EVs darker than a grainy background, broad dark halos", (0.5, 1.0, 2.0),
                  1000, 800),
    FieldScenario("granular_caps", "crowded vesicles with granular caps; granular patches (not vesicles)",
                  (0.5, 1.0, 2.0), 800, 500),
    FieldScenario("stain_pools", "cup-shaped EVs, faint ones inside dark stain pools", (0.35, 0.7, 1.4), 900, 500),
    FieldScenario("lobed", "irregular 130-200 nm cup-shaped particles with a darker lobe, speckled background",
                  (0.7, 1.0, 1.7), 1400, 1000),
    FieldScenario("confounders", "EVs among precipitate, debris < 25 nm, a square crystal, scale bar and text",
                  (0.5, 1.0, 2.0), 1000, 600),
    FieldScenario("meniscus", "cup-shaped EVs whose edge is a graded stain meniscus 5-10 nm wide, truth at its "
                  "outer foot", (0.5, 1.0, 2.0), 900, 500),
)}


def field_shape(scenario: str, pixel_size_nm: float, quick: bool = False) -> tuple:
    """The (square) field shape in px of ``scenario`` at ``pixel_size_nm``: its side in nm
    over the pixel size, clamped to [MIN_SIDE_PX, MAX_SIDE_PX]."""
    sc = FIELD_SCENARIOS[scenario]
    side = (sc.quick_field_nm if quick else sc.field_nm) / pixel_size_nm
    side = int(np.clip(round(side), MIN_SIDE_PX, MAX_SIDE_PX))
    return side, side


# ----------------------------------------------------------------------------------------------
# shapes


def _outline(rng, r0, irregularity, kmax=5):
    """A smooth random star outline R(theta) (px) around r0: low harmonics and a mild ellipse."""
    ks = np.arange(2, kmax + 1)
    amps = irregularity * rng.uniform(0.3, 1.0, ks.size) / (ks - 1) ** 0.7
    phases = rng.uniform(0, 2 * np.pi, ks.size)

    cph, sph = np.cos(phases), np.sin(phases)

    def radius(theta):
        # cos(k t + phi) by the angle-addition recursion: two trig calls whatever the harmonics
        t = np.asarray(theta)
        c1, s1 = np.cos(t), np.sin(t)
        ck, sk = c1, s1
        r = np.ones_like(c1)
        for i in range(ks.size):  # ks = 2, 3, ..., kmax
            ck, sk = ck * c1 - sk * s1, sk * c1 + ck * s1
            r += amps[i] * (ck * cph[i] - sk * sph[i])
        return r0 * r

    th = np.linspace(0, 2 * np.pi, 2048, endpoint=False)
    rr = radius(th)
    return radius, float(rr.max())


def _exact_stats(radius, cy, cx):
    """Area (px^2) and area centroid of the star outline R(theta) about (cy, cx)."""
    th = np.linspace(0, 2 * np.pi, 8192, endpoint=False)
    r = radius(th)
    area = 0.5 * np.mean(r ** 2) * 2 * np.pi
    # centroid of a star polygon: (1/A) * integral (r^3/3) (cos, sin) dtheta
    mx = np.mean(r ** 3 / 3 * np.cos(th)) * 2 * np.pi / area
    my = np.mean(r ** 3 / 3 * np.sin(th)) * 2 * np.pi / area
    return area, cy + my, cx + mx


class _Canvas:
    """Layers of one field in display units (stain background ~1, vesicles lighter or darker)."""

    def __init__(self, rng, shape, px):
        self.rng, self.px = rng, px
        self.H, self.W = shape
        self.yy, self.xx = np.mgrid[0:self.H, 0:self.W].astype(np.float32)
        self.bg = np.ones(shape, np.float32)
        self.halo = np.zeros(shape, np.float32)
        self.halo_cap = 0.45
        self.bodies = []  # (y0, y1, x0, x1, coverage, body value relative to local background)
        self.adds = []  # (y0, y1, x0, x1, additive after compositing)
        self.burn = []  # (mask, value) burned in after the optics
        self.rows = []
        self.occupied = []  # (cy, cx, r) for placement
        self.forbidden = []  # (y0, y1, x0, x1) boxes nothing is placed in
        self.pool = np.zeros(shape, np.float32)  # 0..1 stain-pool weight
        self.grain = None
        self.noise = 0.04

    # -- background
    def background(self, uneven=0.12, texture=0.02, texture_nm=2.0, grain=0.0, grain_nm=1.5,
                   speckle_per_um2=0.0, speckle_amp=0.12, mottle=0.03, mottle_nm=10.0):
        rng, H, W, px = self.rng, self.H, self.W, self.px
        low = ndi.zoom(rng.normal(size=(6, 6)).astype(np.float32), (H / 6, W / 6), order=3)[:H, :W]
        low /= max(1e-6, float(np.abs(low).max()))
        self.bg += uneven * 0.5 * low + uneven * 0.3 * (self.xx / W - 0.5)
        if texture > 0:  # mottled carbon film
            tex = ndi.gaussian_filter(rng.normal(size=(H, W)).astype(np.float32), max(0.7, texture_nm / px))
            self.bg += texture * tex / (tex.std() + 1e-9)
        if mottle > 0:  # the film's mid-scale mottling (ScanEV: ~10 nm patches)
            mo = ndi.gaussian_filter(rng.normal(size=(H, W)).astype(np.float32), max(1.0, mottle_nm / px))
            self.bg += mottle * mo / (mo.std() + 1e-9)
        g = ndi.gaussian_filter(rng.normal(size=(H, W)).astype(np.float32), max(0.6, grain_nm / px))
        self.grain = g / (g.std() + 1e-9)
        if grain > 0:  # stain grain
            self.bg += grain * self.grain
        if speckle_per_um2 > 0:  # tiny bright (and some dark) specks, 1.5-3 nm
            n = rng.poisson(speckle_per_um2 * H * W * px * px / 1e6)
            ys, xs = rng.uniform(0, H, n), rng.uniform(0, W, n)
            sp = np.zeros((H, W), np.float32)
            np.add.at(sp, (ys.astype(int), xs.astype(int)), rng.choice([-0.6, 1.0], n) * rng.uniform(0.5, 1.0, n))
            sp = ndi.gaussian_filter(sp, max(0.6, 1.2 / px)) * (2 * np.pi * max(0.6, 1.2 / px) ** 2)
            self.bg += speckle_amp * sp

    def pools(self, n, d_nm=(250, 550), depth=(0.25, 0.4)):
        """Dark stain pools: large smooth irregular regions of thicker stain."""
        rng, px = self.rng, self.px
        for _ in range(n):
            r0 = rng.uniform(*d_nm) / 2 / px
            cy, cx = rng.uniform(0.1, 0.9) * self.H, rng.uniform(0.1, 0.9) * self.W
            radius, _ = _outline(rng, r0, 0.25, kmax=4)
            d = np.hypot(self.yy - cy, self.xx - cx) - radius(np.arctan2(self.yy - cy, self.xx - cx))
            w = 1 / (1 + np.exp(d / max(2.0, 0.08 * r0)))
            self.pool = np.maximum(self.pool, w * rng.uniform(*depth) / depth[1])
        self.bg -= depth[1] * self.pool

    # -- placement
    def place(self, r, touching=0.0, border=False, tries=300):
        """A centre for an object of max radius r (px) not overlapping what is placed; None if no room."""
        rng, H, W = self.rng, self.H, self.W
        occ = np.array(self.occupied, float).reshape(-1, 3)
        if not border and 2 * (r + BORDER_PX + 2) >= min(H, W) - 1:
            return None  # does not fit in this field
        for _ in range(tries):
            if border:
                side, t = rng.integers(4), rng.uniform(0.15, 0.85)
                off = rng.uniform(-0.4, 0.4) * r
                cy, cx = [(off, t * W), (H - 1 - off, t * W), (t * H, off), (t * H, W - 1 - off)][side]
                cx = min(cx, W - 1.0)
            elif len(occ) and rng.random() < touching:
                j = rng.integers(len(occ))
                a = rng.uniform(0, 2 * np.pi)
                dd = (occ[j, 2] + r) * rng.uniform(1.0, 1.05)
                cy, cx = occ[j, 0] + dd * np.sin(a), occ[j, 1] + dd * np.cos(a)
            else:
                cy, cx = rng.uniform(r * 1.1, H - r * 1.1), rng.uniform(r * 1.1, W - r * 1.1)
            if not border and not (r + BORDER_PX + 2 <= cy <= H - 1 - r - BORDER_PX - 2
                                   and r + BORDER_PX + 2 <= cx <= W - 1 - r - BORDER_PX - 2):
                continue
            if len(occ) and np.any(np.hypot(occ[:, 0] - cy, occ[:, 1] - cx) < occ[:, 2] + r + 0.5):
                continue
            if any(y0 - r <= cy <= y1 + r and x0 - r <= cx <= x1 + r for y0, y1, x0, x1 in self.forbidden):
                continue
            self.occupied.append((cy, cx, r))
            return cy, cx
        return None

    def _box(self, cy, cx, ext):
        y0, y1 = int(max(0, np.floor(cy - ext))), int(min(self.H, np.ceil(cy + ext) + 1))
        x0, x1 = int(max(0, np.floor(cx - ext))), int(min(self.W, np.ceil(cx + ext) + 1))
        return y0, y1, x0, x1

    # -- vesicles
    def vesicle(self, d_nm, *, style="cup", irregularity=0.05, touching=0.0, border=False, body=0.06,
                rim=0.18, halo=0.26, halo_w=(0.2, 0.5), cup=0.5, cup_depth=1.5, grain=0.0, cap=False,
                lobe=False, lobe_level=0.015, folds=0, pool_fade=0.45, kmax=5, meniscus_nm=0.0, kind="vesicle"):
        """Draw one vesicle and add its truth row; returns False when there was no room.

        ``style``: ``'cup'`` light body, bright rim inside the outline, optional darker
        collapsed centre, dark halo outside; ``'ghost'`` a faint light disc, no rim or halo;
        ``'dark'`` a body darker than the stain with a lighter granular rim, a dark ring just
        outside and a broad halo (about one radius).

        ``meniscus_nm`` > 0: the edge is a graded stain meniscus, the body's coverage falling
        linearly from full ``meniscus_nm`` inside the outline to none at it (the truth outline is
        the meniscus's outer foot, where annotators put a vesicle's outer edge); 0: a sharp step
        at the outline (its half-height, after the optics' blur).
        """
        rng, px = self.rng, self.px
        r0 = d_nm / 2 / px
        radius, rmax = _outline(rng, r0, irregularity, kmax=kmax)
        lobe_p = None
        if lobe:
            lr = r0 * rng.uniform(0.35, 0.5)
            la = rng.uniform(0, 2 * np.pi)
            ld = r0 * rng.uniform(0.85, 1.02)
            lobe_p = (ld * np.sin(la), ld * np.cos(la), lr)
            rmax = max(rmax, ld + lr * 1.02)
        cap_p = None
        if cap:
            cap_p = (rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(60, 140)), rng.uniform(0.15, 0.35))
        reach = rmax * (1 + (cap_p[2] if cap_p else 0.0)) + 1.0
        c = self.place(reach, touching=touching, border=border)
        if c is None:
            return False
        cy, cx = c
        wide = 2.6 if style == "dark" else 1.0 + halo_w[1] * 3
        y0, y1, x0, x1 = self._box(cy, cx, rmax * wide + 4)
        dy, dx = self.yy[y0:y1, x0:x1] - cy, self.xx[y0:y1, x0:x1] - cx
        rho, th = np.hypot(dy, dx), np.arctan2(dy, dx)
        d = rho - radius(th)  # radial signed distance to the outline (px), < 0 inside
        men = meniscus_nm / px if meniscus_nm / px > 1.0 else 0.0
        cov = np.clip(-d / men, 0.0, 1.0) if men else np.clip(0.5 - d, 0.0, 1.0)
        rim_w = max(0.6, 2.5 / px, 0.07 * r0)  # ScanEV cups: rims ~10 % of the radius
        poolw = self.pool[y0:y1, x0:x1]
        pool_here = float(self.pool[int(min(self.H - 1, max(0, cy))), int(min(self.W - 1, max(0, cx)))])
        fade = 1.0 - (1.0 - pool_fade) * poolw  # faint inside pools
        s = rng.uniform(0.8, 1.2)
        if style == "dark":
            # the lighter granular rim ends at the outline: its steepest fall is at d = 0 (FRU-Net crop)
            # (its peak ``rim`` above the dark ring just outside, however dark the body)
            h_amp = halo * rng.uniform(0.8, 1.2)
            rim_amp = rim + max(0.0, body * s - h_amp)
            b = -body * s + rim_amp * np.exp(-0.5 * ((d + 1.2 * rim_w) / (1.2 * rim_w)) ** 2)
            b = b + grain * self.grain[y0:y1, x0:x1]
            hw = r0 * rng.uniform(1.0, 1.5)
            dpos = np.clip(d, 0, None)
            h = h_amp * (0.55 * np.exp(-dpos / hw) + 0.45 * np.exp(-dpos / (2.0 * rim_w)))
        else:
            b = body * s * np.ones_like(d)
            if style == "cup":  # the rim (membrane) lies inside a meniscus
                b = b + rim * np.exp(-0.5 * ((d + men + 1.5 * rim_w) / rim_w) ** 2)
            if grain:
                b = b + grain * self.grain[y0:y1, x0:x1]
            if style == "cup" and rng.random() < cup:
                cr = radius(th) * rng.uniform(0.45, 0.75)
                oy, ox = rng.uniform(-0.2, 0.2, 2) * r0
                cd = np.hypot(dx - ox, dy - oy) - cr
                b = b - body * cup_depth / (1 + np.exp(cd / max(1.0, 0.08 * r0)))
            for _f in range(folds):  # bright fold lines of a large collapsed vesicle (chords)
                fa, fo = rng.uniform(0, np.pi), rng.uniform(-0.5, 0.5) * r0
                dist = np.abs(dx * np.cos(fa) + dy * np.sin(fa) - fo)
                b = b + 0.7 * rim * np.exp(-0.5 * (dist / (1.2 * rim_w)) ** 2) * (d < -2 * rim_w)
            hw = r0 * rng.uniform(*halo_w)
            h = (halo * rng.uniform(0.7, 1.3) * np.exp(-np.clip(d, 0, None) / hw)) if halo > 0 else 0 * d
        area_cov = cov
        if lobe_p is not None:
            ly, lx, lr = lobe_p
            dl = np.hypot(dy - ly, dx - lx) - lr
            cl = np.clip(0.5 - dl, 0.0, 1.0)
            lobe_val = lobe_level + 0.6 * rim * np.exp(-0.5 * ((dl + 1.5 * rim_w) / rim_w) ** 2)
            b = np.where(cl > cov, lobe_val, b)
            area_cov = np.maximum(cov, cl)
            d = np.minimum(d, dl)
            if halo > 0:
                h = halo * rng.uniform(0.7, 1.3) * np.exp(-np.clip(d, 0, None) / hw)
        self.halo[y0:y1, x0:x1] += (h * fade * (1 - area_cov)).astype(np.float32)
        self.bodies.append((y0, y1, x0, x1, area_cov.astype(np.float32), (b * fade).astype(np.float32)))
        if cap_p is not None:
            self._cap(cy, cx, radius, cap_p, body + rim * 0.6)
        # truth: exact for a star outline; a lobed outline on a 4x supersampled grid
        if lobe_p is None:
            area, ty, tx = _exact_stats(radius, cy, cx)
        else:
            area, ty, tx = self._union_stats(cy, cx, radius, lobe_p, rmax)
        ys, xs = np.nonzero(area_cov > 0)
        touches = bool(ys.size and (ys.min() + y0 <= BORDER_PX or xs.min() + x0 <= BORDER_PX
                                    or ys.max() + y0 >= self.H - 1 - BORDER_PX
                                    or xs.max() + x0 >= self.W - 1 - BORDER_PX))
        self.rows.append(dict(kind=kind, is_vesicle=True, x_px=tx, y_px=ty,
                              diameter_nm=2 * np.sqrt(area / np.pi) * px, touches_border=touches,
                              polarity="dark" if style == "dark" else "light", in_pool=pool_here > 0.5))
        return True

    def _union_stats(self, cy, cx, radius, lobe_p, rmax, ss=3):
        n = int(np.ceil(2 * rmax + 4)) * ss
        g = (np.arange(n) + 0.5) / ss - n / ss / 2
        gy, gx = np.meshgrid(g, g, indexing="ij")
        inside = np.hypot(gy, gx) <= radius(np.arctan2(gy, gx))
        ly, lx, lr = lobe_p
        inside |= np.hypot(gy - ly, gx - lx) <= lr
        a = inside.sum() / ss ** 2
        return float(a), cy + float(gy[inside].mean()), cx + float(gx[inside].mean())

    def _cap(self, cy, cx, radius, cap_p, amp):
        """A granular cap: granules in a band just outside the outline over an arc."""
        rng, px = self.rng, self.px
        a0, width, depth = cap_p
        r_mean = float(radius(np.array([a0]))[0])
        band = depth * r_mean
        gr = max(0.8, rng.uniform(2.0, 3.2) / px)
        n = int(2.2 * (width * (r_mean + band / 2) * band) / (np.pi * gr ** 2)) + 3
        for _ in range(n):
            a = a0 + rng.uniform(-width / 2, width / 2)
            taper = np.cos((a - a0) / width * np.pi) ** 0.5  # higher in the middle of the arc
            rr = float(radius(np.array([a]))[0]) + rng.uniform(0.0, band * taper) + 0.3 * gr
            self._granule(cy + rr * np.sin(a), cx + rr * np.cos(a), gr, amp * rng.uniform(0.6, 1.0))

    def _granule(self, gy, gx, gr, amp):
        y0, y1, x0, x1 = self._box(gy, gx, gr * 2 + 2)
        if y1 <= y0 or x1 <= x0:
            return
        rr = np.hypot(self.yy[y0:y1, x0:x1] - gy, self.xx[y0:y1, x0:x1] - gx)
        self.adds.append((y0, y1, x0, x1, (amp * np.clip(gr + 0.5 - rr, 0, 1)).astype(np.float32)))

    # -- non-vesicles
    def granular_patch(self, d_nm, amp=0.06):
        """A faint irregular patch of granules: no closed edge, no halo, no rim. Not a vesicle."""
        rng, px = self.rng, self.px
        r0 = d_nm / 2 / px
        c = self.place(r0 * 1.3)
        if c is None:
            return False
        cy, cx = c
        radius, _ = _outline(rng, r0, 0.35, kmax=5)
        gr = max(0.8, rng.uniform(2.0, 3.5) / px)
        n = int(0.45 * np.pi * r0 ** 2 / (np.pi * gr ** 2)) + 3
        for _ in range(n):
            a = rng.uniform(0, 2 * np.pi)
            rr = float(radius(np.array([a]))[0]) * np.sqrt(rng.uniform(0, 1))
            self._granule(cy + rr * np.sin(a), cx + rr * np.cos(a), gr, amp * rng.uniform(0.5, 1.2))
        self.rows.append(dict(kind="granular_patch", is_vesicle=False, x_px=cx, y_px=cy, diameter_nm=d_nm,
                              touches_border=False, polarity="light", in_pool=False))
        return True

    def precipitate(self, d_nm):
        """Stain precipitate: a very dark irregular blob."""
        rng, px = self.rng, self.px
        r = d_nm / 2 / px
        c = self.place(r * 1.2)
        if c is None:
            return False
        cy, cx = c
        y0, y1, x0, x1 = self._box(cy, cx, r * 2 + 3)
        dy, dx = self.yy[y0:y1, x0:x1] - cy, self.xx[y0:y1, x0:x1] - cx
        blob = np.zeros_like(dy)
        for _k in range(4):
            oy, ox = rng.normal(0, 0.35 * r, 2)
            blob = np.maximum(blob, np.exp(-((dy - oy) ** 2 + (dx - ox) ** 2) / (2 * (0.5 * r) ** 2)))
        self.adds.append((y0, y1, x0, x1, (-0.5 * rng.uniform(0.6, 1.2) * (blob > 0.5) * blob).astype(np.float32)))
        self.rows.append(dict(kind="precipitate", is_vesicle=False, x_px=cx, y_px=cy, diameter_nm=d_nm,
                              touches_border=False, polarity="dark", in_pool=False))
        return True

    def debris(self, d_nm):
        """Protein debris: a small light or dark speck (< 25 nm)."""
        rng, px = self.rng, self.px
        r = max(0.7, d_nm / 2 / px)
        c = self.place(r + 1)
        if c is None:
            return False
        cy, cx = c
        y0, y1, x0, x1 = self._box(cy, cx, r + 3)
        rr = np.hypot(self.yy[y0:y1, x0:x1] - cy, self.xx[y0:y1, x0:x1] - cx)
        sgn = rng.choice([-1.0, 1.0])
        self.adds.append((y0, y1, x0, x1, (sgn * rng.uniform(0.12, 0.3) * np.clip(r + 0.5 - rr, 0, 1))
                          .astype(np.float32)))
        self.rows.append(dict(kind="debris", is_vesicle=False, x_px=cx, y_px=cy, diameter_nm=d_nm,
                              touches_border=False, polarity="light" if sgn > 0 else "dark", in_pool=False))
        return True

    def crystal(self, side_nm):
        """A square stain crystal: sharp-edged, rotated, very dark with a thin light edge."""
        rng, px = self.rng, self.px
        h = side_nm / 2 / px
        c = self.place(h * 1.45)
        if c is None:
            return False
        cy, cx = c
        a = rng.uniform(0, np.pi / 2)
        y0, y1, x0, x1 = self._box(cy, cx, h * 1.5 + 3)
        dy, dx = self.yy[y0:y1, x0:x1] - cy, self.xx[y0:y1, x0:x1] - cx
        u, v = dx * np.cos(a) + dy * np.sin(a), -dx * np.sin(a) + dy * np.cos(a)
        dsq = np.maximum(np.abs(u), np.abs(v)) - h  # Chebyshev distance to the square's edge
        cov = np.clip(0.5 - dsq, 0, 1)
        edge = np.exp(-0.5 * ((dsq + 1.0) / 0.8) ** 2)
        self.adds.append((y0, y1, x0, x1, (-0.45 * cov + 0.12 * edge).astype(np.float32)))
        self.rows.append(dict(kind="crystal", is_vesicle=False, x_px=cx, y_px=cy, diameter_nm=side_nm,
                              touches_border=False, polarity="dark", in_pool=False))
        return True

    def scale_bar(self, bar_nm, text):
        """A burned-in black scale bar with its label at the bottom left (drawn after the optics)."""
        import cv2

        px, H, W = self.px, self.H, self.W
        L = int(round(bar_nm / px))
        th = max(3, int(round(0.012 * H)))
        x0, yb = int(0.05 * W), int(0.93 * H)
        bar = np.zeros((H, W), np.uint8)
        bar[yb:yb + th, x0:x0 + L] = 1
        scale = max(0.5, 0.0016 * H)
        thick = max(1, int(round(2 * scale)))
        (tw, tht), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        lab = np.zeros((H, W), np.uint8)
        cv2.putText(lab, text, (x0, yb - int(0.5 * tht)), cv2.FONT_HERSHEY_SIMPLEX, scale, 1, thick, cv2.LINE_AA)
        ty = yb - int(0.5 * tht) - tht / 2
        self.forbidden.append((ty - tht, yb + th + 4, x0 - 6, x0 + max(L, tw) + 6))
        self.burn.append((bar.astype(bool), 0.02))
        self.burn.append((lab > 0, 0.02))
        self.rows.append(dict(kind="bar", is_vesicle=False, x_px=x0 + L / 2, y_px=yb + th / 2, diameter_nm=bar_nm,
                              touches_border=False, polarity="dark", in_pool=False))
        self.rows.append(dict(kind="text", is_vesicle=False, x_px=x0 + tw / 2, y_px=ty, diameter_nm=tw * px,
                              touches_border=False, polarity="dark", in_pool=False))

    # -- optics, detector
    def render(self, noise=None):
        rng = self.rng
        img = self.bg - np.minimum(self.halo, self.halo_cap)
        for y0, y1, x0, x1, cov, b in self.bodies:
            sub = img[y0:y1, x0:x1]
            img[y0:y1, x0:x1] = sub * (1 - cov) + (self.bg[y0:y1, x0:x1] + b) * cov
        for y0, y1, x0, x1, a in self.adds:
            img[y0:y1, x0:x1] += a
        img = ndi.gaussian_filter(img, max(0.5, PSF_NM / self.px))
        img += rng.normal(0, self.noise if noise is None else noise, img.shape).astype(np.float32)
        for m, v in self.burn:
            img[m] = v
        return np.clip(img * LEVEL, 0, 65535).round().astype(np.uint16)


def _sizes(rng, n, median, sigma, lo, hi):
    return np.sort(np.clip(np.exp(rng.normal(np.log(median), sigma, n)), lo, hi))[::-1]


def _n_for(cv, coverage, median, sigma):
    """Number of vesicles of a lognormal size law covering ``coverage`` of the field."""
    mean_area = np.pi / 4 * median ** 2 * np.exp(2 * sigma ** 2)
    return max(3, int(round(coverage * cv.H * cv.W * cv.px ** 2 / mean_area)))


def _confetti(cv, *, precip=0.0, debris=0.0):
    """Precipitate and debris at the given densities per um^2."""
    rng = cv.rng
    um2 = cv.H * cv.W * cv.px ** 2 / 1e6
    for _ in range(rng.poisson(precip * um2)):
        cv.precipitate(rng.uniform(12, 45))
    for _ in range(rng.poisson(debris * um2)):
        cv.debris(rng.uniform(5, 24))


# ----------------------------------------------------------------------------------------------
# scenarios: each draws into a canvas


def _small_evs(cv):
    rng = cv.rng
    cv.background(uneven=0.12, texture=0.025)
    d = np.sort(rng.uniform(32, 60, _n_for(cv, 0.12, 45, 0.2)))[::-1]
    cv.vesicle(rng.uniform(40, 60), border=True)
    for di in d:
        cv.vesicle(di, touching=0.25, cup=0.6, irregularity=0.05)
    _confetti(cv, precip=2, debris=25)


def _dense(cv):
    rng = cv.rng
    cv.background(uneven=0.15, texture=0.02)
    for di in _sizes(rng, _n_for(cv, 0.34, 55, 0.3), 55, 0.3, 32, 90):
        cv.vesicle(di, touching=0.5, cup=0.5, irregularity=0.05, halo_w=(0.1, 0.3))
    for _ in range(2):
        cv.vesicle(rng.uniform(50, 80), border=True)
    _confetti(cv, precip=1, debris=10)


def _wide_range(cv):
    rng = cv.rng
    cv.background(uneven=0.15, texture=0.025)
    um2 = cv.H * cv.W * cv.px ** 2 / 1e6
    n_big = max(1, int(round(0.45 * um2)))
    for di in np.sort(rng.uniform(250, 550, n_big))[::-1]:  # large haloed, collapsed
        cv.vesicle(di, cup=1.0, cup_depth=1.2, irregularity=0.08, halo=0.3, halo_w=(0.3, 0.5), rim=0.15,
                   folds=int(rng.integers(1, 4)))
    for di in np.sort(rng.uniform(100, 250, int(round(3 * um2))))[::-1]:
        cv.vesicle(di, cup=0.7, irregularity=0.06, touching=0.2)
    for di in rng.uniform(60, 200, int(round(2 * um2))):  # faint ghost discs
        cv.vesicle(di, style="ghost", body=0.055, halo=0.0, irregularity=0.03)
    for di in np.sort(rng.uniform(50, 100, int(round(9 * um2))))[::-1]:  # small light discs
        cv.vesicle(di, cup=0.2, body=0.10, rim=0.10, halo=0.18, irregularity=0.04, touching=0.2)
    cv.crystal(rng.uniform(90, 180))
    _confetti(cv, precip=5, debris=10)


def _dark_grain(cv):
    rng = cv.rng
    cv.background(uneven=0.2, texture=0.01, grain=0.03, grain_nm=1.4, mottle=0.0)
    cv.noise = 0.022
    cv.halo_cap = 0.4
    for di in _sizes(rng, _n_for(cv, 0.10, 70, 0.3), 70, 0.3, 40, 130):
        cv.vesicle(di, style="dark", body=rng.uniform(0.12, 0.3), rim=0.06, halo=0.22, grain=0.02,
                   irregularity=0.04, touching=0.1)
    cv.vesicle(rng.uniform(50, 80), style="dark", body=0.18, rim=0.06, halo=0.22, grain=0.02, border=True)
    _confetti(cv, precip=0, debris=15)


def _granular_caps(cv):
    rng = cv.rng
    cv.background(uneven=0.12, texture=0.02)
    um2 = cv.H * cv.W * cv.px ** 2 / 1e6
    for di in _sizes(rng, _n_for(cv, 0.28, 55, 0.3), 55, 0.3, 32, 90):
        cv.vesicle(di, touching=0.45, cup=0.5, cap=rng.random() < 0.5, irregularity=0.05, halo_w=(0.1, 0.3))
    for _ in range(rng.poisson(24 * um2)):
        cv.granular_patch(rng.uniform(40, 110), amp=0.08)
    _confetti(cv, precip=1, debris=15)


def _stain_pools(cv):
    rng = cv.rng
    cv.background(uneven=0.1, texture=0.025)
    side_nm = min(cv.H, cv.W) * cv.px
    cv.pools(2, d_nm=(0.3 * side_nm, 0.55 * side_nm))  # pools cover ~20-40 % of the field
    for di in _sizes(rng, _n_for(cv, 0.14, 48, 0.3), 48, 0.3, 32, 80):
        cv.vesicle(di, touching=0.25, cup=0.7, irregularity=0.06, pool_fade=0.45)
    _confetti(cv, precip=2, debris=20)


def _lobed(cv):
    rng = cv.rng
    cv.background(uneven=0.12, texture=0.02, speckle_per_um2=15000, speckle_amp=0.22)
    um2 = cv.H * cv.W * cv.px ** 2 / 1e6
    n = max(2, int(round(12 * um2)))
    for _ in range(n):
        # the union (body + lobe) should span 130-200 nm: the lobe adds ~5-12 % to the body's diameter
        cv.vesicle(rng.uniform(125, 190), lobe=True, lobe_level=rng.uniform(-0.04, 0.01), cup=0.9,
                   cup_depth=rng.uniform(1.2, 2.4), irregularity=0.22, kmax=6, touching=0.15, body=0.05, rim=0.16,
                   halo=0.16, halo_w=(0.15, 0.35))
    _confetti(cv, precip=1, debris=10)


def _confounders(cv):
    rng = cv.rng
    cv.background(uneven=0.15, texture=0.025)
    bar_nm = {0.5: 100, 1.0: 200, 2.0: 500}.get(cv.px, round(cv.W * cv.px * 0.2, -1))
    cv.scale_bar(bar_nm, f"{int(bar_nm)} nm")
    cv.crystal(rng.uniform(80, 160))
    for di in _sizes(rng, _n_for(cv, 0.15, 70, 0.35), 70, 0.35, 35, 200):
        cv.vesicle(di, touching=0.15, cup=0.6, irregularity=0.06)
    _confetti(cv, precip=8, debris=60)


def _meniscus(cv):
    rng = cv.rng
    cv.background(uneven=0.12, texture=0.02)
    for di in _sizes(rng, _n_for(cv, 0.14, 60, 0.3), 60, 0.3, 36, 130):
        cv.vesicle(di, touching=0.2, cup=0.6, irregularity=0.05, meniscus_nm=rng.uniform(5.0, 10.0))
    _confetti(cv, precip=1, debris=15)


_DRAW = {"small_evs": _small_evs, "dense": _dense, "wide_range": _wide_range, "dark_grain": _dark_grain,
         "granular_caps": _granular_caps, "stain_pools": _stain_pools, "lobed": _lobed,
         "confounders": _confounders, "meniscus": _meniscus}


def simulate_field(scenario: str, pixel_size_nm: float, *, seed: int = 0, shape: tuple | None = None,
                   quick: bool = False):
    """Simulate one field of a :data:`FIELD_SCENARIOS` scenario.

    Parameters
    ----------
    scenario : str
        A key of :data:`FIELD_SCENARIOS`.
    pixel_size_nm : float
        Pixel size (nm/px); any positive value works, the scenario's own list is
        what the benchmark runs.
    seed : int
        Random seed: the same (scenario, pixel size, shape, seed) gives the same
        image, byte for byte.
    shape : (int, int), optional
        Field shape in px; default :func:`field_shape` (``quick`` for the smaller one).

    Returns
    -------
    image : ndarray of uint16
        Display polarity (stain dark, as a viewer shows a negative stain).
    truth : pandas.DataFrame
        :data:`TRUTH_COLUMNS`, one row per object (vesicles first).
    """
    if scenario not in FIELD_SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(FIELD_SCENARIOS)}")
    if not (np.isfinite(pixel_size_nm) and pixel_size_nm > 0):
        raise ValueError(f"pixel size must be positive, got {pixel_size_nm}")
    shape = tuple(shape) if shape is not None else field_shape(scenario, pixel_size_nm, quick)
    # one stream per (scenario, seed): the scenario name is part of the seed
    key = sum((i + 1) * ord(ch) for i, ch in enumerate(scenario))
    rng = np.random.default_rng([seed, key, int(round(pixel_size_nm * 1000))])
    cv = _Canvas(rng, shape, float(pixel_size_nm))
    _DRAW[scenario](cv)
    img = cv.render()
    truth = pd.DataFrame(cv.rows, columns=[c for c in TRUTH_COLUMNS if c not in ("object_id", "pixel_size_nm")])
    truth = truth.sort_values("is_vesicle", ascending=False, kind="stable").reset_index(drop=True)
    truth.insert(0, "object_id", np.arange(1, len(truth) + 1))
    truth["pixel_size_nm"] = float(pixel_size_nm)
    truth["touches_border"] = truth["touches_border"].astype(bool)
    truth["is_vesicle"] = truth["is_vesicle"].astype(bool)
    truth["in_pool"] = truth["in_pool"].astype(bool)
    return img, truth


# ----------------------------------------------------------------------------------------------
# scoring

#: a detection matches a truth vesicle when its centre lies within this fraction of the truth
#: RADIUS of the truth centre (issue 13's benchmark rule; stricter than
#: :func:`exoimage.simulate.tem.match_to_truth`, which allows the whole radius)
MATCH_RADIUS_FRAC = 0.5


def match_detections(found: pd.DataFrame, truth: pd.DataFrame, *, radius_frac: float = MATCH_RADIUS_FRAC) -> dict:
    """Score detections against field truth, one to one (Hungarian assignment).

    A detection (``x_px, y_px, diameter_nm, touches_border``) may match a truth
    vesicle when its centre lies within ``radius_frac`` x the truth radius of the
    truth centre; among those, the one-to-one assignment of least total centre
    distance is taken (:func:`scipy.optimize.linear_sum_assignment`). Border-cut
    vesicles are out of play: a truth vesicle with ``touches_border`` is neither
    found nor missed (a detection matched to it is neither TP nor FP), and an
    unmatched detection flagged ``touches_border`` is not a false positive.
    Every other unmatched detection is a false positive, including one on a
    non-vesicle object (counted by kind in ``fp_on``).

    Returns
    -------
    dict
        ``tp, fp, fn, precision, recall, f1``; ``errors``: relative diameter
        errors (found / truth - 1) of matched pairs; ``pairs``: (found row, truth
        row) positional indices of the true positives; ``fp_on``: {kind: count} of
        false positives whose centre lies on a non-vesicle object.
    """
    from scipy.optimize import linear_sum_assignment

    tv = truth[truth["is_vesicle"].astype(bool)] if "is_vesicle" in truth else truth[truth["kind"] == "vesicle"]
    t_idx = tv.index.to_numpy()
    tx, ty = tv["x_px"].to_numpy(float), tv["y_px"].to_numpy(float)
    px = tv["pixel_size_nm"].to_numpy(float) if "pixel_size_nm" in tv else np.ones(len(tv))
    tr = tv["diameter_nm"].to_numpy(float) / px / 2.0
    tb = tv["touches_border"].to_numpy(bool)
    fx, fy = found["x_px"].to_numpy(float), found["y_px"].to_numpy(float)
    fb = found["touches_border"].to_numpy(bool) if "touches_border" in found else np.zeros(len(found), bool)
    fd = found["diameter_nm"].to_numpy(float)
    matched_f = np.zeros(len(found), bool)
    pairs = []
    if len(tv) and len(found):
        dist = np.hypot(fx[:, None] - tx[None, :], fy[:, None] - ty[None, :])
        ok = dist <= radius_frac * tr[None, :]
        big = 1e9
        rows, cols = linear_sum_assignment(np.where(ok, dist, big))
        for i, j in zip(rows, cols):
            if ok[i, j]:
                matched_f[i] = True
                pairs.append((int(i), int(j)))
    tp_pairs = [(i, j) for i, j in pairs if not tb[j]]
    tp = len(tp_pairs)
    fn = int((~tb).sum()) - tp
    unmatched = ~matched_f & ~fb
    fp = int(unmatched.sum())
    fp_on = {}
    nv = truth[~truth.index.isin(t_idx)]
    if fp and len(nv):
        npx = nv["pixel_size_nm"].to_numpy(float) if "pixel_size_nm" in nv else np.ones(len(nv))
        nr = nv["diameter_nm"].to_numpy(float) / npx / 2.0 * 1.2 + 3.0
        for i in np.flatnonzero(unmatched):
            dd = np.hypot(nv["x_px"].to_numpy(float) - fx[i], nv["y_px"].to_numpy(float) - fy[i])
            k = int(np.argmin(dd / nr))
            if dd[k] <= nr[k]:
                kind = str(nv["kind"].iloc[k])
                fp_on[kind] = fp_on.get(kind, 0) + 1
    prec = tp / (tp + fp) if tp + fp else 1.0
    rec = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    errors = np.array([fd[i] / tv["diameter_nm"].iloc[j] - 1.0 for i, j in tp_pairs if not fb[i]], float)
    return dict(tp=tp, fp=fp, fn=fn, precision=prec, recall=rec, f1=f1, errors=errors, pairs=tp_pairs,
                fp_on=fp_on)
