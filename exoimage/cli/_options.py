"""Command-line option checks shared by ``exoimage tem`` and ``exoimage blot``.

Every numeric / choice option is parsed and checked by the same rules as the
library and experiment.toml (the field metadata of the parameter dataclasses,
:mod:`exoimage.params`), before any file is read. A bad option ends the command
with one argparse-style line, ``exoimage tem: error: argument --min-diameter:
min_diameter_nm = -5: must be a number > 0 nm``, and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..params import ParamError, cli_type, cli_option, param_meta, reword
from ..params import flag_of as params_flag_of

#: exit code of a bad option (as argparse)
USAGE_ERROR = 2


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make ``parser``'s errors one line (no usage block), exit code 2 as argparse."""

    def error(message):
        fail(parser.prog, f"{message} (see {parser.prog} --help)")

    parser.error = error
    return parser


def fail(prog: str, message: str):
    """Print ``<prog>: error: <message>`` (one line) and exit with :data:`USAGE_ERROR`."""
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(USAGE_ERROR)


def param_type(meta_or_cls, name: str):
    """An argparse ``type=`` that parses and checks an option by a field's metadata.

    ``param_type(TemParams, "min_diameter_nm")``, or ``param_type(meta_dict, "pixel_size_nm")``
    for rules that are not a dataclass field. (:func:`exoimage.params.add_arguments` uses
    the same parsing for every parameter.)
    """
    meta = meta_or_cls if isinstance(meta_or_cls, dict) else param_meta(meta_or_cls)[name]
    return cli_type(name or "value", meta)


def flag_of(key: str, *classes) -> str | None:
    """The command-line option of parameter ``key`` (a field of one of ``classes``)."""
    return params_flag_of(key, *classes)


def cli_words(message: str, *classes, extra: dict | None = None) -> str:
    """A library message with each parameter name it mentions replaced by its option
    (``give pixel_size_nm`` -> ``give --pixel-size``), for printing on the command line.

    Only names with an underscore are replaced: ``polarity`` or ``background`` are also
    ordinary words of messages.
    """
    names = {n: cli_option(n, m) for cls in classes for n, m in param_meta(cls).items()
             if cli_option(n, m) and "_" in n}
    return reword(message, {**names, **(extra or {})})


def build_or_fail(prog: str, build, *classes):
    """``build()`` (e.g. ``TemParams(...)``); a :class:`ParamError` (checks between options)
    ends the command with one line naming the option."""
    try:
        return build()
    except ParamError as exc:
        flag = flag_of(exc.field, *classes)
        fail(prog, f"argument {flag}: {exc}" if flag else str(exc))


def check_input_file(prog: str, flag: str, path) -> None:
    """An option naming an input file: it must be an existing regular file."""
    if path is None:
        return
    p = Path(path)
    try:
        ok, exists = p.is_file(), p.exists()
    except (OSError, ValueError) as exc:
        fail(prog, f"argument {flag}: {path}: cannot be used ({getattr(exc, 'strerror', None) or exc})")
    if not ok:
        fail(prog, f"argument {flag}: {path}: {'not a regular file' if exists else 'not found'}")


def check_out_dir(prog: str, out) -> None:
    """``--out`` must be a folder we can write, or be creatable (its nearest existing parent a
    writable folder)."""
    p = Path(out)
    try:
        if p.exists() and not p.is_dir():
            fail(prog, f"argument --out: {p}: exists and is not a folder")
        q = p
        while not q.exists() and q != q.parent:
            q = q.parent
        if not q.is_dir() or not os.access(q, os.W_OK | os.X_OK):
            fail(prog, f"argument --out: {p}: {'not writable' if q == p else f'cannot be created in {q}'}")
    except (OSError, ValueError) as exc:
        fail(prog, f"argument --out: {p}: cannot be used ({getattr(exc, 'strerror', None) or exc})")


def inputs_and_out(prog: str, paths, out):
    """The inputs found in ``paths`` and the output folder (created), or None after saying,
    in one line, that no image was found (the commands then exit 1)."""
    from ..outputs import find_inputs

    inputs = find_inputs(paths)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not inputs:
        print(f"{prog}: no image files found in " + ", ".join(map(str, paths)), file=sys.stderr)
        return None
    return inputs, out
