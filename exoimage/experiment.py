"""An experiment folder: its layout convention and its optional ``experiment.toml``.

Layout (no configuration needed for the common case)::

    experiment/
      experiment.toml            optional, see below
      tem/<sample>/**/*.tif      TEM fields of each sample (any supported image type)
      blots/<name>.tif           Western blot images ...
      blots/<name>.lanes.csv     ... each with a lane sheet: lane,sample[,group][,loaded]
      nta/<sample>/*.csv|*.txt   NTA exports of each sample: NanoSight ExperimentSummary.csv
                                 (its <video>_ParticleData.csv / _AllTracks.csv are read with it)
                                 or ZetaView .txt; see docs/nta.md

A blot named after a marker (``CD63.tif``, ``tsg101.tif``, ``calnexin.tif``)
measures that marker; otherwise name it in ``experiment.toml``. Lanes whose
sample is ``ladder`` (or the configured ladder lane) are the weight marker.

``experiment.toml`` (every key optional; unknown keys are errors)::

    [experiment]
    name = "HEK293 EV isolation, batch 3"
    max_pixels = 268435456          # largest image read (height x width x samples; default 16384^2)

    [tem]                           # detector parameters (exoimage tem options)
    min_diameter_nm = 30
    max_diameter_nm = 1000
    min_contrast = 3.0
    polarity = "auto"

    [tem.pixel_size_nm]             # per-image overrides, path relative to tem/
    "S1/field_03.tif" = 0.84

    [samples.S1]
    label = "S1 - SEC fraction 7"
    group = "SEC"
    protein_ug = 12.5               # protein (ug) in volume_ml of the preparation, for particles per ug
    volume_ml = 1.0                 # volume the NTA concentration and protein_ug refer to (default 1 ml:
                                    # protein_ug is then ug/ml); particles_per_ug = conc * volume_ml / protein_ug
    dilution_factor = 1000          # NTA dilution for files that recorded none (never applied twice:
                                    # a file that recorded a different one becomes an error row)

    [blots.CD63]                    # key: the blot image's file stem
    marker = "CD63"
    target_kda = "30-60"            # or target_row = [1]
    control_row = [2]               # or control_kda, control_image, total_protein_image
    control_marker = "GAPDH"        # what the control is (for the MISEV checklist)
    reference_lane = 1
    lanes = 8
    ladder_lane = 1
    ladder_kda = [250, 150, 100, 75, 50, 37, 25, 20, 15, 10]
    background = "auto"
    polarity = "auto"

    [qc]
    rules = "my_rules.toml"         # a lab's own thresholds (see exoimage/qc_rules.toml)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from .io import SUPPORTED_SUFFIXES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ExperimentError", "Experiment", "ImageTask", "BlotSpec", "load_experiment", "KNOWN_MARKERS",
           "marker_category"]

#: MISEV2018 categories of common markers (lower-case names and aliases)
KNOWN_MARKERS = {
    "transmembrane": ["cd63", "cd81", "cd9", "integrin", "itgb1", "lamp1", "lamp2", "tspan"],
    "cytosolic": ["tsg101", "alix", "pdcd6ip", "syntenin", "sdcbp", "flotillin", "flot1", "flot2",
                  "annexin", "anxa2", "anxa5", "hsp70"],
    "promiscuous": ["gapdh", "actin", "beta-actin", "b-actin", "tubulin", "hspa8", "hsc70"],
    "purity": ["apoa1", "apoa2", "apob", "albumin", "alb"],
    "negative": ["calnexin", "canx", "grp94", "hsp90b1", "gm130", "golga2", "histone", "h3",
                 "cytochrome-c", "cytc", "cycs"],
}


def marker_category(name: str | None) -> str | None:
    """MISEV2018 category of a marker name, or None if not known."""
    if not name:
        return None
    key = str(name).strip().lower().replace("β", "b").replace(" ", "-").replace("_", "-")
    for cat, names in KNOWN_MARKERS.items():
        if key in names or key.split("-")[0] in names:
            return cat
    return None


class ExperimentError(ValueError):
    """The experiment folder or its configuration is not usable (raised before any work)."""


_TEM_KEYS = {"min_diameter_nm", "max_diameter_nm", "min_contrast", "polarity", "pixel_size_nm"}
_SAMPLE_KEYS = {"label", "group", "protein_ug", "particles_loaded", "volume_ml", "dilution_factor"}
_POSITIVE_SAMPLE_KEYS = ("protein_ug", "volume_ml", "dilution_factor")
_BLOT_KEYS = {"marker", "target_row", "target_kda", "control_row", "control_kda", "control_image",
              "total_protein_image", "control_marker", "reference_lane", "lanes", "lane_bounds",
              "ladder_lane", "ladder_kda", "background", "polarity", "min_snr", "lane_sheet"}
_TOP_KEYS = {"experiment", "tem", "samples", "blots", "qc", "nta"}


@dataclass
class ImageTask:
    """One image to analyse: what it is, where it is, which sample it belongs to."""

    kind: str  # 'tem' or 'blot'
    path: Path
    rel: str  # name in tables, relative to the experiment folder
    sample: str | None = None
    pixel_size_nm: float | None = None  # explicit override
    blot: "BlotSpec | None" = None


@dataclass
class BlotSpec:
    """How to read one blot: its marker, lane sheet and normalisation choices."""

    name: str
    marker: str | None
    lane_sheet: Path | None
    options: dict = field(default_factory=dict)


@dataclass
class Experiment:
    root: Path
    name: str
    tem: list
    blots: list
    samples: dict
    tem_params: dict
    config: dict
    nta: dict = field(default_factory=dict)  # sample -> list of NTA files
    rules_path: Path | None = None
    max_pixels: int | None = None  # pixel budget of exoimage.io.read_image (None: its default)

    @property
    def tasks(self) -> list:
        return self.tem + self.blots

    @property
    def sample_names(self) -> list:
        names = list(self.samples)
        for t in self.tem:
            if t.sample not in names:
                names.append(t.sample)
        for s in self.nta:
            if s not in names:
                names.append(s)
        return names


def _check_keys(section: dict, allowed: set, where: str, path: Path):
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ExperimentError(f"{path}: unknown key(s) {', '.join(unknown)} in [{where}]; "
                              f"allowed: {', '.join(sorted(allowed))}")


def _images_under(folder: Path) -> list:
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def load_experiment(root) -> Experiment:
    """Read an experiment folder's layout and configuration.

    Raises
    ------
    ExperimentError
        Missing folder, nothing to analyse, unknown configuration keys, files
        named in the configuration that do not exist, malformed values.
    """
    root = Path(root)
    if not root.is_dir():
        raise ExperimentError(f"{root}: experiment folder not found")
    cfg_path = root / "experiment.toml"
    cfg: dict = {}
    if cfg_path.exists():
        try:
            cfg = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ExperimentError(f"{cfg_path}: not valid TOML ({exc})") from None
    _check_keys(cfg, _TOP_KEYS, "top level", cfg_path)
    name = str(cfg.get("experiment", {}).get("name", root.resolve().name))
    _check_keys(cfg.get("experiment", {}), {"name", "description", "max_pixels"}, "experiment", cfg_path)
    max_pixels = cfg.get("experiment", {}).get("max_pixels")
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, int)
                                   or max_pixels < 1):
        raise ExperimentError(f"{cfg_path}: [experiment] max_pixels must be a positive whole number of "
                              f"pixels, got {max_pixels!r}")

    tem_cfg = dict(cfg.get("tem", {}))
    _check_keys(tem_cfg, _TEM_KEYS, "tem", cfg_path)
    px_over = {str(k): float(v) for k, v in tem_cfg.pop("pixel_size_nm", {}).items()}

    if cfg.get("nta"):
        raise ExperimentError(f"{cfg_path}: [nta] takes no keys; NTA files are found under nta/<sample>/ and "
                              "options are per sample ([samples.X] dilution_factor, protein_ug, volume_ml)")

    samples = {}
    for s, sc in cfg.get("samples", {}).items():
        _check_keys(sc, _SAMPLE_KEYS, f"samples.{s}", cfg_path)
        for key in _POSITIVE_SAMPLE_KEYS:
            if key in sc:
                v = sc[key]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or v == float("inf"):
                    raise ExperimentError(f"{cfg_path}: [samples.{s}] {key} must be a positive number, got {v!r}")
        samples[str(s)] = dict(sc)

    tem_tasks = []
    tem_dir = root / "tem"
    if tem_dir.is_dir():
        for p in _images_under(tem_dir):
            rel_tem = p.relative_to(tem_dir).as_posix()
            parts = p.relative_to(tem_dir).parts
            sample = parts[0] if len(parts) > 1 else "unassigned"
            tem_tasks.append(ImageTask("tem", p, f"tem/{rel_tem}", sample, px_over.get(rel_tem)))
    unknown_px = sorted(set(px_over) - {t.rel[4:] for t in tem_tasks})
    if unknown_px:
        raise ExperimentError(f"{cfg_path}: [tem.pixel_size_nm] names image(s) not found under "
                              f"{tem_dir}: {', '.join(unknown_px)}")

    blot_cfg = cfg.get("blots", {})
    blot_tasks = []
    blot_dir = root / "blots"
    stems = set()
    if blot_dir.is_dir():
        for p in _images_under(blot_dir):
            stem = p.name.split(".")[0]
            bc = dict(blot_cfg.get(stem, {}))
            _check_keys(bc, _BLOT_KEYS, f"blots.{stem}", cfg_path)
            for key in ("control_image", "total_protein_image"):
                if key in bc:
                    f = (blot_dir / bc[key]) if not Path(bc[key]).is_absolute() else Path(bc[key])
                    if not f.exists():
                        raise ExperimentError(f"{cfg_path}: [blots.{stem}] {key} {f} not found")
                    bc[key] = f
            controls = {Path(v).resolve() for b in blot_cfg.values() for k, v in b.items()
                        if k in ("control_image", "total_protein_image")}
            if p.resolve() in {(blot_dir / c).resolve() for c in controls} or p.resolve() in controls:
                continue  # a control / total-protein image is read with its blot, not on its own
            sheet = blot_dir / bc.pop("lane_sheet", f"{stem}.lanes.csv")
            if "lane_sheet" in blot_cfg.get(stem, {}) and not sheet.exists():
                raise ExperimentError(f"{cfg_path}: [blots.{stem}] lane_sheet {sheet} not found")
            marker = bc.pop("marker", None)
            if marker is None and marker_category(stem):
                marker = stem
            stems.add(stem)
            blot_tasks.append(ImageTask("blot", p, f"blots/{p.name}", None, None,
                                        BlotSpec(stem, marker, sheet if sheet.exists() else None, bc)))
    missing = sorted(set(blot_cfg) - stems)
    if missing:
        raise ExperimentError(f"{cfg_path}: [blots] names blot(s) with no image in {blot_dir}: "
                              f"{', '.join(missing)}")

    nta = {}
    nta_dir = root / "nta"
    if nta_dir.is_dir():
        for p in sorted(nta_dir.rglob("*")):
            if p.is_file() and p.suffix.lower() in (".csv", ".txt") and not p.name.startswith("."):
                parts = p.relative_to(nta_dir).parts
                nta.setdefault(parts[0] if len(parts) > 1 else "unassigned", []).append(p)

    qc = cfg.get("qc", {})
    _check_keys(qc, {"rules"}, "qc", cfg_path)
    rules_path = None
    if "rules" in qc:
        rules_path = root / qc["rules"]
        if not rules_path.exists():
            raise ExperimentError(f"{cfg_path}: [qc] rules file {rules_path} not found")

    if not tem_tasks and not blot_tasks and not nta:
        raise ExperimentError(f"{root}: nothing to analyse: expected images under tem/<sample>/, "
                              f"blots/ or NTA exports under nta/<sample>/")
    return Experiment(root=root, name=name, tem=tem_tasks, blots=blot_tasks, samples=samples,
                      tem_params=tem_cfg, config=cfg, nta=nta, rules_path=rules_path, max_pixels=max_pixels)
