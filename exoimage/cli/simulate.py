"""``exoimage simulate``: write simulated images with their ground truth."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("simulate", help="write simulated images with ground truth",
                       description="Write simulated images plus a truth table, for trying "
                                   "and testing the analyses.")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)

    t = kinds.add_parser("tem", help="negative-stain TEM fields of vesicles",
                         description="Simulated negative-stain TEM fields (16-bit ImageJ TIFFs "
                                     "with pixel size in nm) and truth.csv with each vesicle's "
                                     "centre, diameter_nm and touches_border.")
    t.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    t.add_argument("--n", type=int, default=4, help="number of images (default 4)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    t.add_argument("--size", type=int, default=1024, metavar="PX", help="image side in px (default 1024)")
    t.add_argument("--pixel-size", type=float, default=None, metavar="NM",
                   help="pixel size in nm/px (default: varied 0.5-4 nm/px between images)")
    t.add_argument("--scenario", default="mixed",
                   help="appearance preset: mixed, clean, crowded, low_contrast, cups, "
                        "uneven (default mixed)")
    t.set_defaults(_kind_run=_run_tem)

    try:
        from . import simulate_blot  # added by the blot command
    except ImportError:
        pass
    else:
        simulate_blot.add_parser(kinds)
    return p


def _run_tem(args) -> int:
    from ..simulate.tem import write_tem_set

    paths = write_tem_set(args.out, n=args.n, seed=args.seed, size=args.size,
                          pixel_size_nm=args.pixel_size, scenario=args.scenario)
    print(f"wrote {len(paths)} simulated TEM images and truth.csv to {args.out}")
    return 0


def run(args) -> int:
    return args._kind_run(args)
