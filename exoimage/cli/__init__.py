"""The ``exoimage`` command line.

Each sub-command lives in its own module of this package with two functions:
``add_parser(subparsers)`` and ``run(args) -> int``. The commands only find
inputs, call the library's pipelines and write outputs; they hold no image
processing of their own.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__

#: sub-command modules, in the order ``--help`` lists them
COMMANDS = ["tem", "blot", "calibrate", "run", "report", "simulate"]


def _max_pixels(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number of pixels, got {text!r}")
    return v


def add_max_pixels_option(p) -> None:
    """``--max-pixels N``: the pixel budget of :func:`exoimage.io.read_image` (shared by the commands)."""
    from ..io import DEFAULT_MAX_PIXELS

    p.add_argument("--max-pixels", type=_max_pixels, default=None, metavar="N",
                   help="largest image to read, height x width x samples (default "
                        f"{DEFAULT_MAX_PIXELS} = 16384^2); larger files are refused from their header")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exoimage",
        description="Numbers from extracellular-vesicle images: TEM vesicle sizing and "
                    "Western blot densitometry.",
    )
    parser.add_argument("--version", action="version", version=f"exoimage {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # command not built yet
            raise
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args._argv = list(sys.argv[1:] if argv is None else argv)  # the command line, for the report's provenance
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("exoimage: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `exoimage tem ... | head`: outputs are already written
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
