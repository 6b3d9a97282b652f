"""Known molecular-weight ladders as data files (``*.toml`` in this package).

Each file gives a ladder's ``name`` (what ``BlotParams.ladder`` / ``--ladder`` takes),
a ``label``, the ``unit`` of its sizes (``kDa`` or ``bp``), the band ``sizes`` top to
bottom (largest first) and, where the vendor publishes them, ``masses_ng`` per band
(with ``masses_per_ug``, the amount of ladder they refer to) and two ``ratio_bands``
whose volume ratio the mass-proportionality check reports. Every file cites its source.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

__all__ = ["Ladder", "LADDER_NAMES", "load_ladder", "known_ladders"]


@dataclass(frozen=True)
class Ladder:
    """A known ladder (see the module docstring)."""

    name: str
    label: str
    unit: str
    sizes: tuple
    masses_ng: tuple | None = None
    ratio_bands: tuple | None = None


def _read(text: str, where: str) -> Ladder:
    d = tomllib.loads(text)
    sizes = tuple(float(v) for v in d["sizes"])
    masses = d.get("masses_ng")
    if masses is not None and len(masses) != len(sizes):
        raise ValueError(f"{where}: {len(masses)} masses for {len(sizes)} sizes")
    if d["unit"] not in ("kDa", "bp"):
        raise ValueError(f"{where}: unit must be kDa or bp, not {d['unit']!r}")
    if any(b >= a for a, b in zip(sizes[:-1], sizes[1:])):
        raise ValueError(f"{where}: sizes must be listed largest first")
    rb = d.get("ratio_bands")
    return Ladder(d["name"], d["label"], d["unit"], sizes,
                  tuple(float(v) for v in masses) if masses is not None else None,
                  tuple(float(v) for v in rb) if rb else None)


def known_ladders() -> dict:
    """``{name: Ladder}`` of every data file in this package."""
    out = {}
    for f in sorted(resources.files(__name__).iterdir(), key=lambda p: p.name):
        if f.name.endswith(".toml"):
            lad = _read(f.read_text(encoding="utf-8"), f.name)
            out[lad.name] = lad
    return out


#: names ``BlotParams.ladder`` accepts
LADDER_NAMES = tuple(known_ladders())


def load_ladder(name: str) -> Ladder:
    """The known ladder ``name`` (one of :data:`LADDER_NAMES`)."""
    lads = known_ladders()
    if name not in lads:
        raise ValueError(f"unknown ladder {name!r} (one of {', '.join(lads)})")
    return lads[name]
