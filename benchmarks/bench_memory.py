"""Peak memory of reading + analysing one image, per analysis kind, size and dtype.

Run from the repository root:

    python benchmarks/bench_memory.py            # TEM and blot, 1024^2 / 2048^2 / 4096^2 uint16 + other dtypes
    python benchmarks/bench_memory.py --quick    # 1024^2 and 2048^2 only

Each measurement runs in a fresh process (one core: OpenCV and BLAS limited to
one thread, as in a batch worker) that imports everything first, notes its peak
RSS (``VmHWM``) after the imports, then reads and analyses one simulated
image from disk exactly as a batch task does (``analyze_tem_file`` + overlay +
label TIFF, ``analyze_blot_file`` + overlay) and notes its peak RSS again. The
difference divided by the pixel count is the per-pixel cost that
``exoimage.io.PEAK_BYTES_PER_PIXEL`` is set from (worst case plus a margin);
the import baseline is the fixed cost of a worker process. Images are written
to ``benchmarks/out/memory/`` (not committed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "out" / "memory"


def peak_rss_bytes() -> int:
    """This process's peak RSS: ``VmHWM`` (Linux; reset by exec, unlike ``ru_maxrss``, which a
    child inherits from the parent that forked it), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(kind: str, path: str, pixel_size_nm: str) -> None:
    """In a fresh process: peak RSS after imports, then after one read + analysis (+ overlay)."""
    import cv2
    import numpy as np  # noqa: F401

    from exoimage import scalebar  # noqa: F401 - imported by the TEM pipeline
    from exoimage.blot import analyze_blot_file, draw_blot_overlay
    from exoimage.io import write_calibrated_tiff
    from exoimage.tem import analyze_tem_file, draw_overlay

    cv2.setNumThreads(1)
    base = peak_rss_bytes()
    t0 = time.perf_counter()
    if kind == "tem":
        res = analyze_tem_file(path, pixel_size_nm=float(pixel_size_nm))
        assert res.ok, res.image_row
        analysed = peak_rss_bytes()
        draw_overlay(res.display, res.labels, res.vesicles)
        write_calibrated_tiff(OUT / "labels.tif", res.labels, res.pixel_size_nm)
        n = int(res.image_row["n_vesicles"])
    else:
        res = analyze_blot_file(path)
        assert res.ok, res.image_row
        analysed = peak_rss_bytes()
        draw_blot_overlay(res.image, res.result)
        n = int(res.image_row["n_bands"])
    dt = time.perf_counter() - t0
    peak = peak_rss_bytes()
    print(f"{base} {analysed} {peak} {dt:.2f} {n}")


def _make(kind: str, size: int, dtype: str, scene: str) -> Path:
    import numpy as np
    import tifffile

    path = OUT / f"{kind}_{scene}_{size}_{dtype}.tif"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    if kind == "tem":
        from exoimage.simulate.tem import SCENARIOS, TemScene, simulate_tem

        img, _ = simulate_tem(TemScene(shape=(size, size), pixel_size_nm=1.0, **SCENARIOS[scene]), seed=1)
    else:
        from exoimage.simulate.blot import scenario

        img = scenario(scene, seed=1, height=size, width=size, n_lanes=max(6, size // 256)).data
    if dtype == "uint8":
        img = (img // 257).astype(np.uint8)
    elif dtype != "uint16":
        img = img.astype(dtype)
    tifffile.imwrite(path, img)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1024^2 and 2048^2 only")
    ap.add_argument("--child", nargs=3, metavar=("KIND", "PATH", "NM"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return
    sizes = [1024, 2048] if args.quick else [1024, 2048, 4096]
    default_scene = {"tem": "mixed", "blot": "clean"}
    cases = [(k, s, "uint16", default_scene[k]) for k in ("tem", "blot") for s in sizes]
    cases += [(k, 2048, d, default_scene[k]) for k in ("tem", "blot") for d in ("uint8", "float32", "float64")]
    cases += [("tem", 2048, "uint16", "crowded"), ("blot", 2048, "uint16", "realistic")]
    real = ROOT.parent / "shared" / "data" / "real"
    reals = [("tem", real / "ev_tem_negative_stain.jpg", 0.624), ("blot", real / "wb_rhoa_chemi_16bit.tif", 1.0)]
    print("kind  image                          | import base | read+analyse | + overlay    | s      | found")
    print("                                     |   MB        | MB    B/px   | MB    B/px   |        |")
    worst: dict = {}
    runs = [(k, _make(k, s, d, sc), f"{sc} {s}x{s} {d}", 1.0) for k, s, d, sc in cases]
    runs += [(k, p, f"real {p.name[:25]}", nm) for k, p, nm in reals if p.exists()]
    for kind, path, label, nm in runs:
        out = subprocess.run([sys.executable, __file__, "--child", kind, str(path), str(nm)], capture_output=True,
                             text=True, check=True).stdout.split()
        base, analysed, peak, dt, n = int(out[0]), int(out[1]), int(out[2]), float(out[3]), int(out[4])
        from exoimage.io import probe_image

        px = probe_image(path).n_pixels
        bpp_a, bpp = (analysed - base) / px, (peak - base) / px
        if px >= 2048 * 2048:
            worst[kind] = max(worst.get(kind, 0.0), bpp)
        print(f"{kind:5s} {label:30s} | {base / 1e6:7.0f}     | {(analysed - base) / 1e6:5.0f} {bpp:5.1f}  | "
              f"{(peak - base) / 1e6:5.0f} {bpp:5.1f}  | {dt:6.1f} | {n}".replace(f"{bpp:5.1f}  |", f"{bpp_a:5.1f}  |", 1))
    print("worst case at >= 2048^2 px, bytes per pixel over the import baseline: "
          + ", ".join(f"{k} {v:.1f}" for k, v in worst.items()))
    from exoimage.io import PEAK_BYTES_PER_PIXEL

    print(f"exoimage.io.PEAK_BYTES_PER_PIXEL = {PEAK_BYTES_PER_PIXEL}")


if __name__ == "__main__":
    main()
