"""Parameter rules, written next to each dataclass field, and the one validator that reads them.

Every analysis parameter (:class:`~exoimage.tem.TemParams`,
:class:`~exoimage.blot.BlotParams`, :class:`~exoimage.blot.plan.NormalizationSpec`)
declares its type, unit, bounds and choices in its field's ``metadata``; the
command line, ``experiment.toml``, the batch, the QC rules file and the napari
plugin all check values with :func:`check_value` / :func:`validate_mapping` /
:func:`check_instance`, so they accept and refuse exactly the same values and
their errors name the parameter (``min_diameter_nm = 0: must be a number > 0 nm``).

Metadata keys (all optional except ``type``)::

    type           "float" | "int" | "bool" | "str" | "path" | "float_list" | "int_list"
                   | "int_pairs" | "kda_range" | "table"
    unit           unit of the number(s), e.g. "nm", "px", "kDa", "%", "noise SD"
    min, max       bounds of the number (of each item of a list); inclusive unless
    min_exclusive, max_exclusive   is True
    choices        allowed values of a "str"
    optional       True: None is allowed (means "automatic" / "not given")
    min_len, max_len   length of a list
    sorted         True: a list's items must not decrease (e.g. a [low, high] range)
    below          name of another field this one must be strictly less than
    at_most        name of another field this one must not exceed
    requires       name of another field that must be given when this one is
    excludes       name of another field that must not be given with this one
    parse          callable(value) that raises ValueError for a bad "kda_range"
    values         for a "table": the metadata of each of its values
    toml           the key in experiment.toml (absent: not settable there)
    cli            the command-line option (absent: no option)
    help           one line for users (forms, --help)

Numbers are always required to be finite; ``bool`` is never taken for a number.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from dataclasses import fields, is_dataclass
from pathlib import PurePath

import numpy as np

__all__ = ["ParamError", "check_value", "describe", "param_meta", "toml_names", "validate_mapping",
           "check_instance", "show_value"]

#: longest value shown in an error message (characters); longer ones are cut with "..."
_SHOW_MAX = 60


class ParamError(ValueError):
    """A parameter value is not allowed; ``str(err)`` is ``"<key> = <value>: <problem>"`` (one line)."""

    def __init__(self, key: str, value, problem: str):
        self.key, self.value, self.problem = str(key), value, _one_line(problem)
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
        return value
    if t == "table":
        if not isinstance(value, dict):
            raise ParamError(key, value, f"must be {describe(meta)}, not {_kind(value)}")
        return {k: check_value(f"{key}.{k}", v, meta["values"], text=text) for k, v in value.items()}
    raise ValueError(f"unknown parameter type {t!r}")  # pragma: no cover


def param_meta(cls) -> dict:
    """``{field name: metadata}`` of a dataclass's fields that carry a ``type``."""
    return {f.name: dict(f.metadata) for f in fields(cls) if "type" in f.metadata}


def toml_names(cls) -> dict:
    """``{experiment.toml key: field name}`` of the fields settable in experiment.toml."""
    return {m["toml"]: name for name, m in param_meta(cls).items() if m.get("toml")}


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
                raise ParamError(label(name), v, f"must be {word} {label(other)} ({show_value(w)})")
        other = meta.get("requires")
        if other and values.get(other) is None:
            raise ParamError(label(name), v, f"needs {label(other)} as well")
        other = meta.get("excludes")
        if other and values.get(other) is not None:
            raise ParamError(label(name), v, f"give {label(name)} or {label(other)}, not both")


def validate_mapping(cls, values: dict, *, names: str = "field", text: bool = False) -> dict:
    """Check a mapping of parameter values for dataclass ``cls``; returns ``{field name: value}``.

    Parameters
    ----------
    cls : dataclass type
    values : dict
        Values by field name (``names='field'``) or by experiment.toml key
        (``names='toml'``); keys that are not parameters of ``cls`` are errors.
    names : {'field', 'toml'}
        Which names ``values`` uses (errors use the same names).
    text : bool
        Values may be command-line text (see :func:`check_value`).

    Raises
    ------
    ParamError
        The first value that is not allowed, including the checks between
        fields (e.g. ``min_diameter_nm`` below ``max_diameter_nm``), done on
        the values merged with the defaults.
    """
    metas = param_meta(cls)
    key_of = toml_names(cls) if names == "toml" else {n: n for n in metas}
    label_of = {f: k for k, f in key_of.items()}
    out = {}
    for k, v in values.items():
        if k not in key_of:
            raise ParamError(k, v, "unknown parameter; allowed: " + ", ".join(sorted(key_of)))
        out[key_of[k]] = check_value(k, v, metas[key_of[k]], text=text)
    defaults = {f.name: f.default for f in fields(cls) if isinstance(f.default, (int, float, str, type(None)))}
    _cross_check(cls, {**defaults, **out}, lambda n: label_of.get(n, n))
    return out


def check_instance(obj) -> None:
    """Check every field of a parameter dataclass instance (raises :class:`ParamError`)."""
    if not is_dataclass(obj):  # pragma: no cover
        raise TypeError(f"{obj!r} is not a dataclass instance")
    cls = type(obj)
    values = {n: getattr(obj, n) for n in param_meta(cls)}
    checked = {n: check_value(n, v, param_meta(cls)[n]) for n, v in values.items()}
    _cross_check(cls, checked, lambda n: n)
