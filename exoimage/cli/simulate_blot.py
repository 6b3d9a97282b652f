"""The ``blot`` kind of ``exoimage simulate``."""

from __future__ import annotations

from pathlib import Path


def add_parser(kinds):
    from ..simulate.blot import SCENARIOS

    b = kinds.add_parser("blot", help="Western blots with known band volumes",
                         description="Simulated Western blots (TIFF) with <name>.truth.csv (every band's "
                                     "lane, row, y_px, volume in raw units x px, kDa, saturated), "
                                     "<name>.lanes.csv (a lane sheet) and truth.csv.")
    b.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    b.add_argument("--n", type=int, default=len(SCENARIOS), help=f"number of blots (default {len(SCENARIOS)})")
    b.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    b.add_argument("--scenario", action="append", choices=SCENARIOS, default=None,
                   help="preset(s), cycled over the blots: " + ", ".join(SCENARIOS) + " (default: all)")
    b.add_argument("--lanes", type=int, default=None, metavar="N", help="lanes incl. the ladder lane (default 8)")
    b.add_argument("--height", type=int, default=None, metavar="PX", help="image height in px (default 600)")
    b.set_defaults(_kind_run=_run_blot)
    return b


def _run_blot(args) -> int:
    from ..simulate.blot import write_blot_set

    kw = {}
    if args.lanes:
        kw["n_lanes"] = args.lanes
    if args.height:
        kw["height"] = args.height
    paths = write_blot_set(args.out, n=args.n, seed=args.seed, scenarios=args.scenario, **kw)
    print(f"wrote {len(paths)} simulated blots with truth to {args.out}")
    return 0
