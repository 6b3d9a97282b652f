"""Parameters as data: the rules written next to each dataclass field, and everything built from them.

Every analysis parameter (:class:`~exoimage.tem.TemParams`,
:class:`~exoimage.blot.BlotParams`, :class:`~exoimage.blot.plan.NormalizationSpec`)
declares its type, unit, bounds, choices and help in its field's ``metadata``.
From that one declaration come

* the checks: :func:`check_value` / :func:`validate_mapping` /
  :func:`check_instance` (the library, ``experiment.toml``, the QC rules file and
  the napari plugin accept and refuse exactly the same values);
* the command-line options: :func:`add_arguments` / :func:`from_args`;
* the parameters of a batch task: :func:`from_mapping` (``experiment.toml`` values);
* the napari plugin's forms (``napari_exoimage._common.ParamForm``).

Every parameter has one name, its field name: the ``experiment.toml`` key, the
Python keyword and the key of errors. The command-line option is the name with
dashes (``--min-snr``) unless ``cli`` keeps an older documented option
(``--min-diameter`` for ``min_diameter_nm``); ``aliases`` are older
``experiment.toml`` spellings still accepted (``lanes`` for ``n_lanes``).

Errors are :class:`ParamError` (``key``, ``value``, ``problem``): the library
words them ``min_diameter_nm = 0: must be a number > 0 nm``; each front end
words them for its user (the command line ``argument --min-diameter: ...``,
the plugin ``Min diameter (nm): must be ...``). Library messages that ask for
a parameter name it by its field name; :func:`reword` puts a front end's name
for it (``--pixel-size``, "Pixel size") in its place.

Metadata keys (all optional except ``type``)::

    type           "float" | "int" | "bool" | "str" | "path" | "float_list" | "int_list"
                   | "int_pairs" | "kda_range" | "table"
    unit           unit of the number(s), e.g. "nm", "px", "kDa", "%", "noise SD"
    min, max       bounds of the number (of each item of a list); inclusive unless
    min_exclusive, max_exclusive   is True
    choices        allowed values of a "str"
    optional       True: None is allowed (means "automatic" / "not given")
    auto           what None means, in a few words ("found automatically"): --help and forms
    min_len, max_len   length of a list
    sorted         True: a list's items must not decrease (e.g. a [low, high] range)
    below          name of another field this one must be strictly less than
    at_most        name of another field this one must not exceed
    requires       name of another field that must be given when this one is
    excludes       name of another field that must not be given with this one
    parse          callable(value) that raises ValueError for a bad "kda_range"
    values         for a "table": the metadata of each of its values
    help           one line for users (--help, form tooltips)
    label          the name shown in forms ("Min diameter"); default: from the field name
    advanced       True: shown in the forms' "Advanced" group
    decimals       digits after the point in a form's spin box (default 3)
    cli            the command-line option (default: ``--`` + the name with dashes;
                   False: no option)
    metavar        the value's name in --help (default: from the type and unit)
    aliases        other experiment.toml keys accepted for this field (older spellings)
    toml           False: not settable in experiment.toml (every field is, by default)

Numbers are always required to be finite; ``bool`` is never taken for a number.
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import re
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path, PurePath

import numpy as np

__all__ = ["ParamError", "check_value", "describe", "param_meta", "toml_names", "validate_mapping",
           "check_instance", "show_value", "from_mapping", "add_arguments", "add_option", "from_args",
           "cli_option", "cli_help", "cli_type", "flag_of", "label_of", "param_defaults", "reword"]

#: longest value shown in an error message (characters); longer ones are cut with "..."
_SHOW_MAX = 60


class ParamError(ValueError):
    """A parameter value is not allowed; ``str(err)`` is ``"<key> = <value>: <problem>"`` (one line)."""

    def __init__(self, key: str, value, problem: str, *, field: str | None = None):
        self.key, self.value, self.problem = str(key), value, _one_line(problem)
        #: the dataclass field concerned (``key`` is the name the user wrote, e.g. an alias or a label)
        self.field = str(field) if field is not None else self.key
        super().__init__(f"{self.key} = {show_value(value)}: {self.problem}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class _Text(str):
    """Command-line text: shown as typed in errors (no quotes)."""


def show_value(value) -> str:
    """A short, one-line, TOML-like rendering of ``value`` for error messages."""
    if isinstance(value, _Text):
        s = _one_line(value)
        return s if len(s) <= _SHOW_MAX else s[:_SHOW_MAX - 3] + "..."
    if isinstance(value, dict):
        return "a table"
    if value is None:
        return "nothing"
    if _is_bool(value):
        s = "true" if value else "false"
    elif isinstance(value, (str, PurePath)):
        s = json.dumps(str(value), ensure_ascii=False)
    elif isinstance(value, numbers.Real) and not math.isfinite(float(value)):
        s = "nan" if math.isnan(float(value)) else ("inf" if value > 0 else "-inf")
    elif isinstance(value, (list, tuple)):
        s = "[" + ", ".join(show_value(v) for v in value) + "]"
    else:
        s = str(value)
    s = _one_line(s)
    return s if len(s) <= _SHOW_MAX else s[:_SHOW_MAX - 3] + "..."


def _kind(value) -> str:
    if _is_bool(value):
        return "true/false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, numbers.Real):
        return "a number"
    return f"a {type(value).__name__}"


def _g(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _bounds_text(meta: dict) -> str:
    lo, hi = meta.get("min"), meta.get("max")
    lo_x, hi_x = meta.get("min_exclusive", False), meta.get("max_exclusive", False)
    if lo is not None and hi is not None and not lo_x and not hi_x:
        return f"from {_g(lo)} to {_g(hi)}"
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_x else '>='} {_g(lo)}")
    if hi is not None:
        parts.append(f"{'<' if hi_x else '<='} {_g(hi)}")
    return " and ".join(parts)


def _number_text(meta: dict, integer: bool) -> str:
    noun = "whole number" if integer else "number"
    unit = meta.get("unit", "")
    if meta.get("min") == 0 and meta.get("min_exclusive") and meta.get("max") is None and not unit:
        return f"a positive {noun}"
    b = _bounds_text(meta)
    return " ".join(x for x in (f"a {noun}", b, unit) if x)


def describe(meta: dict) -> str:
    """What a value must be, in words: ``'a number > 0 nm'``, ``'one of "auto", "light", "dark"'``."""
    t = meta["type"]
    if t in ("float", "int"):
        s = _number_text(meta, t == "int")
    elif t == "bool":
        s = "true or false"
    elif t == "str":
        s = ("one of " + ", ".join(json.dumps(c) for c in meta["choices"])) if meta.get("choices") else "text"
    elif t == "path":
        s = "a file name (text)"
    elif t in ("float_list", "int_list"):
        item = _number_text(meta, t == "int_list")
        lo, hi = meta.get("min_len"), meta.get("max_len")
        n = (f"{lo}" if lo == hi else f"{lo} to {hi}") if lo is not None and hi is not None else (
            f"at least {lo}" if lo is not None else (f"at most {hi}" if hi is not None else ""))
        s = f"a list of {n + ' ' if n else ''}items, each {item}"
        if meta.get("sorted"):
            s += ", in increasing order"
    elif t == "int_pairs":
        s = (f"a list of [left, right] pairs of whole numbers >= {_g(meta.get('min', 0))}"
             + (f" {meta['unit']}" if meta.get("unit") else "") + " with left < right"
             + (f" (at most {meta['max_len']})" if meta.get("max_len") else ""))
    elif t == "kda_range":
        s = "a weight in kDa (44, meaning +-15 %) or a range (\"30-60\")"
    elif t == "table":
        s = "a table"
    else:  # pragma: no cover - a programming error in a metadata dict
        raise ValueError(f"unknown parameter type {t!r}")
    return s


def _is_bool(v) -> bool:
    return isinstance(v, (bool, np.bool_))


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not _is_bool(v)


def _in_bounds(x: float, meta: dict) -> bool:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and (x <= lo if meta.get("min_exclusive") else x < lo):
        return False
    if hi is not None and (x >= hi if meta.get("max_exclusive") else x > hi):
        return False
    return True


def _number(key, value, meta, integer: bool, text: bool, whole):
    """One number (or list item) checked against meta; ``whole`` is the value shown in errors."""
    v = value
    if text and isinstance(v, str):
        try:
            v = int(v.strip()) if integer else float(v.strip())
        except ValueError:
            raise ParamError(key, whole, f"must be {describe(meta)}") from None
    if integer:
        ok = isinstance(v, numbers.Integral) and _is_number(v)
    else:
        ok = _is_number(v) and math.isfinite(float(v))
    if not ok:
        hint = "" if _is_number(v) or isinstance(value, (list, tuple)) else f", not {_kind(v)}"
        if isinstance(v, str) and not isinstance(v, _Text):
            hint += " (write numbers without quotes or units)"
        raise ParamError(key, whole, f"must be {describe(meta)}{hint}")
    v = int(v) if integer else float(v)
    if not _in_bounds(v, meta):
        raise ParamError(key, whole, f"must be {describe(meta)}")
    return v


def _split_text(value: str) -> list:
    return [p.strip() for p in re.split(r"[,;]", value) if p.strip()]


def check_value(key: str, value, meta: dict, *, text: bool = False):
    """Check one value against its field metadata; returns it normalised (ints as int, floats as float).

    Parameters
    ----------
    key : str
        Name used in the error (the field or its experiment.toml key).
    value
        The value (from TOML, Python, or a command-line string with ``text=True``).
    meta : dict
        The field's metadata (see the module docstring).
    text : bool
        ``value`` may be text to parse (a command-line option): ``"2.5"``,
        ``"250,150,100"``, ``"40-90,110-160"``.

    Raises
    ------
    ParamError
    """
    t = meta["type"]
    if text and isinstance(value, str):
        value = _Text(value)
    if value is None:
        if meta.get("optional"):
            return None
        raise ParamError(key, value, f"must be {describe(meta)}")
    if t in ("float", "int"):
        return _number(key, value, meta, t == "int", text, value)
    if t == "bool":
        if text and isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.strip().lower() in ("true", "yes", "1")
        if _is_bool(value):
            return bool(value)
        raise ParamError(key, value, f"must be {describe(meta)}, not {_kind(value)}")
    if t == "str":
        if not isinstance(value, str):
            raise ParamError(key, value, f"must be {describe(meta)}, not {_kind(value)}")
        if meta.get("choices") and value not in meta["choices"]:
            raise ParamError(key, value, f"must be {describe(meta)}")
        return str(value)
    if t == "path":
        if isinstance(value, PurePath):
            value = str(value)
        if not isinstance(value, str):
            raise ParamError(key, value, f"must be {describe(meta)}, not {_kind(value)}")
        if not value.strip():
            raise ParamError(key, value, f"must be {describe(meta)}, not empty")
        if "\x00" in value:
            raise ParamError(key, value, f"must be {describe(meta)} without a NUL character")
        return str(value)
    if t in ("float_list", "int_list"):
        items = _split_text(value) if text and isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ParamError(key, value, f"must be {describe(meta)}, not {_kind(value)}")
        out = [_number(key, v, meta, t == "int_list", text, value) for v in items]
        lo, hi = meta.get("min_len"), meta.get("max_len")
        if (lo is not None and len(out) < lo) or (hi is not None and len(out) > hi):
            raise ParamError(key, value, f"must be {describe(meta)}; got {len(out)} item(s)")
        if meta.get("sorted") and any(b < a for a, b in zip(out, out[1:])):
            raise ParamError(key, value, f"must be {describe(meta)}")
        return out
    if t == "int_pairs":
        pairs = value
        if text and isinstance(value, str):
            pairs = [p.split("-") if p.count("-") == 1 else [p] for p in _split_text(value)]
        if not isinstance(pairs, (list, tuple)) or not pairs:
            raise ParamError(key, value, f"must be {describe(meta)}")
        out = []
        item_meta = {"type": "int", "min": meta.get("min", 0)}
        for p in pairs:
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                raise ParamError(key, value, f"must be {describe(meta)}")
            a, b = (_number(key, v, item_meta, True, text, value) for v in p)
            if not a < b:
                raise ParamError(key, value, f"must be {describe(meta)}")
            out.append((a, b))
        if meta.get("max_len") is not None and len(out) > meta["max_len"]:
            raise ParamError(key, value, f"must be {describe(meta)}; got {len(out)}")
        return out
    if t == "kda_range":
        if not (isinstance(value, str) or _is_number(value)):
            raise ParamError(key, value, f"must be {describe(meta)}, not {_kind(value)}")
        try:
            meta["parse"](value)
        except ValueError:
            raise ParamError(key, value, f"must be {describe(meta)}") from None
        return str(value) if isinstance(value, str) else value
    if t == "table":
        if not isinstance(value, dict):
            raise ParamError(key, value, f"must be {describe(meta)}, not {_kind(value)}")
        return {k: check_value(f"{key}.{k}", v, meta["values"], text=text) for k, v in value.items()}
    raise ValueError(f"unknown parameter type {t!r}")  # pragma: no cover


def param_meta(cls) -> dict:
    """``{field name: metadata}`` of a dataclass's fields that carry a ``type``."""
    return {f.name: dict(f.metadata) for f in fields(cls) if "type" in f.metadata}


def param_defaults(cls) -> dict:
    """``{field name: default}`` of a parameter dataclass."""
    return {f.name: f.default for f in fields(cls) if "type" in f.metadata}


def toml_names(cls) -> dict:
    """``{experiment.toml key: field name}``: every field by its name, and its older spellings
    (``aliases``), unless ``toml`` is False."""
    out = {}
    for name, m in param_meta(cls).items():
        if m.get("toml", True) is False:
            continue
        out[name] = name
        for a in m.get("aliases", ()):
            out[a] = name
    return out


def label_of(name: str, meta: dict) -> str:
    """The name of a parameter in forms: ``meta['label']``, else the field name in words."""
    if meta.get("label"):
        return str(meta["label"])
    words = name.split("_")
    if len(words) > 1 and words[-1] in ("nm", "px", "kda", "pct"):
        words = words[:-1]
    return " ".join(words).capitalize()


def _cross_check(cls, values: dict, label):
    """Checks between fields (``below``, ``at_most``, ``requires``, ``excludes``) on complete values."""
    metas = param_meta(cls)
    for name, meta in metas.items():
        v = values.get(name)
        if v is None:
            continue
        for rel in ("below", "at_most"):
            other = meta.get(rel)
            w = values.get(other) if other else None
            if w is not None and not (v < w if rel == "below" else v <= w):
                word = "less than" if rel == "below" else "at most"
                raise ParamError(label(name), v, f"must be {word} {label(other)} ({show_value(w)})", field=name)
        other = meta.get("requires")
        if other and values.get(other) is None:
            raise ParamError(label(name), v, f"needs {label(other)} as well", field=name)
        other = meta.get("excludes")
        if other and values.get(other) is not None:
            raise ParamError(label(name), v, f"give {label(name)} or {label(other)}, not both", field=name)


def validate_mapping(cls, values: dict, *, names: str = "field", text: bool = False, label=None) -> dict:
    """Check a mapping of parameter values for dataclass ``cls``; returns ``{field name: value}``.

    Parameters
    ----------
    cls : dataclass type
    values : dict
        Values by field name (``names='field'``) or by experiment.toml key
        (``names='toml'``: the field names and their ``aliases``); keys that are
        not parameters of ``cls`` are errors, and so is a field given twice (by
        its name and an alias).
    names : {'field', 'toml'}
        Which names ``values`` uses (errors use the names as given).
    text : bool
        Values may be command-line text (see :func:`check_value`).
    label : callable, optional
        ``label(field name) -> str``: the names errors use instead (a form's labels).

    Raises
    ------
    ParamError
        The first value that is not allowed, including the checks between
        fields (e.g. ``min_diameter_nm`` below ``max_diameter_nm``), done on
        the values merged with the defaults. ``err.field`` is the field.
    """
    metas = param_meta(cls)
    key_of = toml_names(cls) if names == "toml" else {n: n for n in metas}
    given = {}  # field -> the key it was given as
    out = {}
    for k, v in values.items():
        if k not in key_of:
            raise ParamError(k, v, "unknown parameter; allowed: " + ", ".join(sorted(key_of)))
        f = key_of[k]
        if f in given:
            raise ParamError(k, v, f"{given[f]} and {k} are the same parameter ({f}); give it once", field=f)
        given[f] = k
        try:
            out[f] = check_value(label(f) if label else k, v, metas[f], text=text)
        except ParamError as exc:
            exc.field = f
            raise
    defaults = {f.name: f.default for f in fields(cls) if isinstance(f.default, (int, float, str, type(None)))}
    _cross_check(cls, {**defaults, **out}, label or (lambda n: given.get(n, n)))
    return out


def check_instance(obj) -> None:
    """Check every field of a parameter dataclass instance (raises :class:`ParamError`)."""
    if not is_dataclass(obj):  # pragma: no cover
        raise TypeError(f"{obj!r} is not a dataclass instance")
    cls = type(obj)
    values = {n: getattr(obj, n) for n in param_meta(cls)}
    checked = {n: check_value(n, v, param_meta(cls)[n]) for n, v in values.items()}
    _cross_check(cls, checked, lambda n: n)


class CheckedParams:
    """Base of the parameter dataclasses: each instance is checked against its fields'
    metadata when it is made (:func:`check_instance`), so an invalid one cannot exist."""

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Check every field against its metadata.

        Raises
        ------
        ParamError
            (a ``ValueError``) naming the parameter, its value and the problem.
        """
        check_instance(self)

    def as_dict(self) -> dict:
        """The fields as a plain dict (``dataclasses.asdict``)."""
        from dataclasses import asdict

        return asdict(self)


def from_mapping(cls, mapping: dict, *, strict: bool = False):
    """The parameters ``cls(...)`` from a mapping of values, e.g. an ``experiment.toml`` section.

    The one way a batch task builds its :class:`~exoimage.tem.TemParams`,
    :class:`~exoimage.blot.BlotParams` and
    :class:`~exoimage.blot.plan.NormalizationSpec`: keys are field names or their
    ``aliases``; every value is checked (:func:`validate_mapping`); fields not
    given keep their defaults; ``"path"`` values become :class:`~pathlib.Path`.

    Parameters
    ----------
    cls : parameter dataclass
    mapping : dict
    strict : bool
        False (default): keys that are not parameters of ``cls`` are ignored (a
        ``[blots.X]`` section holds both BlotParams and NormalizationSpec keys,
        and ``marker``); True: they are errors.

    Raises
    ------
    ParamError
    """
    keys = toml_names(cls)
    picked = {k: v for k, v in mapping.items() if strict or k in keys}
    values = validate_mapping(cls, picked, names="toml")
    metas = param_meta(cls)
    for k, v in values.items():
        if metas[k]["type"] == "path" and v is not None:
            values[k] = Path(v)
    return cls(**values)


# --------------------------------------------------------------------------- command line


def cli_option(name: str, meta: dict) -> str | None:
    """The command-line option of a parameter: ``meta['cli']``, else ``--`` + the name with dashes
    (None when ``cli`` is False)."""
    if meta.get("cli") is False:
        return None
    return meta.get("cli") or "--" + name.replace("_", "-")


_METAVARS = {"int_pairs": "X1-X2,...", "kda_range": "KDA", "path": "FILE", "bool": None}


def _metavar(meta: dict) -> str:
    if meta.get("metavar"):
        return meta["metavar"]
    t = meta["type"]
    if t in _METAVARS:
        return _METAVARS[t]
    unit = str(meta.get("unit", "")).upper()
    if t in ("float_list", "int_list"):
        one = unit or ("N" if t == "int_list" else "X")
        return f"{one}[,{one}...]"
    if t == "int":
        return unit or "N"
    return unit.replace(" ", "_") if unit and " " not in unit else "X"


def _default_text(meta: dict, default) -> str:
    if default is None:
        return meta.get("auto", "not given")
    t = meta["type"]
    if t == "bool":
        return "on" if default else "off"
    if isinstance(default, (list, tuple)):
        return ",".join(_g(v) for v in default)
    return _g(default)


def cli_help(meta: dict, default) -> str:
    """The ``--help`` text of a parameter: its help, what it must be, its default."""
    t = meta["type"]
    rule = "" if t in ("bool", "path", "kda_range") or (t == "str" and meta.get("choices")) else describe(meta)
    parts = [p for p in (rule, f"default: {_default_text(meta, default)}") if p]
    return f"{meta.get('help', '')} ({'; '.join(parts)})".replace("%", "%%").strip()


def cli_type(name: str, meta: dict):
    """An argparse ``type=``: parse and check one option's text by the field's rules."""
    rules = {**meta, "optional": False}

    def parse(text):
        try:
            v = check_value(name, text, rules, text=True)
        except ParamError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return Path(v) if meta["type"] == "path" else v

    parse.__name__ = name  # argparse names the type in some messages
    return parse


def add_option(parser, name: str, meta: dict, default=None, *, option: str | None = None):
    """Add one parameter to an argparse ``parser`` (``dest`` = the parameter's name).

    Numbers, lists and ranges are parsed and checked by ``meta``
    (:func:`check_value`); a choice is an argparse ``choices``; a bool is
    ``--name`` / ``--no-name``.
    """
    flag = option or cli_option(name, meta)
    kw = dict(dest=name, default=default, help=cli_help(meta, default))
    t = meta["type"]
    if t == "bool":
        kw["action"] = argparse.BooleanOptionalAction
        if sys.version_info < (3, 11):  # BooleanOptionalAction adds "(default: ...)" itself
            kw["help"] = meta.get("help", "")
    elif t == "str" and meta.get("choices"):
        kw["choices"] = list(meta["choices"])
    else:
        kw["type"] = cli_type(name, meta)
        kw["metavar"] = _metavar(meta)
    return parser.add_argument(flag, **kw)


def add_arguments(parser, cls, *, skip=()) -> None:
    """One command-line option per parameter of dataclass ``cls`` (except ``skip``), with
    its help, rules, unit and default; read them back with :func:`from_args`."""
    defaults = param_defaults(cls)
    for name, meta in param_meta(cls).items():
        if name in skip or cli_option(name, meta) is None:
            continue
        add_option(parser, name, meta, defaults[name])


def from_args(cls, args, **fixed):
    """``cls(...)`` from the options :func:`add_arguments` added (and ``fixed`` values).

    Raises
    ------
    ParamError
        From the checks between fields (each option was checked when parsed).
    """
    values = {n: getattr(args, n) for n in param_meta(cls) if hasattr(args, n)}
    return cls(**{**values, **fixed})


def flag_of(name: str, *classes) -> str | None:
    """The command-line option of parameter ``name`` (a field of one of ``classes``)."""
    for cls in classes:
        meta = param_meta(cls).get(name)
        if meta:
            return cli_option(name, meta)
    return None


def reword(message: str, names: dict) -> str:
    """``message`` with each parameter name (whole word) replaced by a front end's name for it.

    ``reword("no pixel size: give pixel_size_nm", {"pixel_size_nm": "--pixel-size"})``
    -> ``"no pixel size: give --pixel-size"``.
    """
    if not names:
        return message
    pattern = re.compile(r"(?<![\w-])(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
                         + r")(?![\w-])")
    return pattern.sub(lambda m: names[m.group(1)], str(message))


# --------------------------------------------------------------------------- documentation


def reference_table(cls) -> str:
    """A Markdown table of the parameters of ``cls``: name (experiment.toml key, Python keyword),
    command-line option, form label, what it must be, default, help (docs/parameters.md)."""
    rows = ["| name | option | in the plugin | value | default | meaning |", "|---|---|---|---|---|---|"]
    defaults = param_defaults(cls)
    for name, meta in param_meta(cls).items():
        flag = cli_option(name, meta)
        if meta["type"] == "bool":
            flag = f"{flag} / --no-{flag[2:]}"
        names = f"`{name}`" + "".join(f" (or `{a}`)" for a in meta.get("aliases", ()))
        label = label_of(name, meta) + (" (advanced)" if meta.get("advanced") else "")
        cells = [names, f"`{flag}`" if flag else "", label, describe(meta).replace("|", "\\|"),
                 _default_text(meta, defaults[name]), meta.get("help", "").replace("|", "\\|")]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)
