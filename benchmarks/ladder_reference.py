"""ImageJ-style reference volumes on the NEB 1 kb Plus ladder gel (issue 12), beside exoimage's.

Lane rectangles = exoimage's lanes (straight, tilt ignored); profile = row sums over the rectangle;
baseline = a rolling ball on the profile (radius 25 / 50 px), or the free gel's level (mean of 10 px
strips 15-25 px outside the lane, smoothed 41 rows, offset to the lane's band-free rows above the
bands); bands split by drop lines at the profile minimum between consecutive exoimage band centres
(Gel Analyzer's wand). Scored as real-check scores exoimage: one scale per lane (median
volume/mass), mean |error| over 76 bands, 3 kb / 1.5 kb per lane.

Usage: PYTHONPATH=$PWD python benchmarks/ladder_reference.py [path/to/dna_ladder_gel_8bit.tif]
"""
import sys
from pathlib import Path
import numpy as np
from scipy import ndimage as ndi
from exoimage.io import read_image
from exoimage.blot import quantify_blot

NG = np.array([40, 40, 48, 40, 32, 120, 40, 57, 45, 122, 34, 31, 27, 23, 124, 49, 37, 32, 61], float)
KB = [10.0, 8.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.5, 1.2, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]


def ball(p, r):
    s = ndi.gaussian_filter1d(p, 2)
    return ndi.uniform_filter1d(ndi.grey_opening(s, size=int(2 * r) + 1), int(r) | 1)


def err(v):
    return 100 * (v / (np.median(v / NG) * NG) - 1)


def main(path):
    img = np.asarray(read_image(path).data, float)
    r = quantify_blot(img)
    res = {}
    for ln in r.lane_geometry:
        b = r.bands[r.bands.lane == ln.lane].sort_values("y_px")
        if len(b) != 19:
            continue
        prof = img[:, ln.x_left_px:ln.x_right_px + 1].sum(1)
        gl = img[:, ln.x_left_px - 25:ln.x_left_px - 15].mean(1)
        gr = img[:, ln.x_right_px + 15:ln.x_right_px + 25].mean(1)
        gel = ndi.uniform_filter1d(0.5 * (gl + gr), 41) * ln.width_px
        top = int(b.y_top_px.min())
        gel += np.median((prof - gel)[max(0, top - 70):top - 10])
        yi = np.round(b.y_px.to_numpy()).astype(int)
        cuts = [yi[0] - 25] + [yi[i] + int(np.argmin(prof[yi[i]:yi[i + 1] + 1])) for i in range(18)] + [yi[-1] + 25]
        for name, base in (("ball 25 px", ball(prof, 25)), ("ball 50 px", ball(prof, 50)), ("free-gel level", gel)):
            res.setdefault(name, []).append([np.sum((prof - base)[cuts[i]:cuts[i + 1]]) for i in range(19)])
        res.setdefault("exoimage", []).append(b.volume.to_numpy())
    print("method            mean|err|  3kb/1.5kb per lane            per band (mean over lanes)")
    for name, vs in res.items():
        vs = np.array(vs, float)
        E = np.array([err(v) for v in vs])
        print(f"{name:16s} {np.abs(E).mean():7.1f} %  {' '.join(f'{v[5] / v[7]:.3f}' for v in vs):28s} "
              + " ".join(f"{k}:{e:+.0f}" for k, e in zip(KB, E.mean(0))))


DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "dna_ladder_gel_8bit.tif"

if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    if not path.is_file():
        sys.exit(f"{path}: no such file (pass the NEB 1 kb Plus gel's path; ../shared/ beside the checkout holds it)")
    main(path)
