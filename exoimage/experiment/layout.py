"""An experiment folder: its layout convention and its optional ``experiment.toml``.

Layout (no configuration needed for the common case)::

    experiment/
      experiment.toml            optional, see below
      tem/<sample>/**/*.tif      TEM fields of each sample (any supported image type)
      blots/**/<name>.tif        Western blot images (in blots/ or sub-folders, e.g. blots/gel1/) ...
      blots/**/<name>.lanes.csv  ... each with a lane sheet next to it: lane,sample[,group][,loaded]
      nta/<sample>/*.csv|*.txt   NTA exports of each sample: NanoSight ExperimentSummary.csv
                                 (its <video>_ParticleData.csv / _AllTracks.csv are listed, not needed)
                                 or ZetaView .txt; see docs/nta.md

A blot named after a marker (``CD63.tif``, ``tsg101.tif``, ``calnexin.tif``)
measures that marker; otherwise name it in ``experiment.toml``. Lanes whose
sample is ``ladder`` (or the configured ladder lane) are the weight marker.

Every input is known by its path relative to the experiment folder
(``tem/S1/field_03.tif``, ``blots/gel1/CD63.tif``, ``nta/S2/summary.csv``) in
every table, cache key, overlay name and the report, so ``blots/gel1/CD63.tif``
and ``blots/gel2/CD63.tif`` are two blots. Symbolic links to folders elsewhere
(``tem/S3 -> /data/S3``) are followed; a link leading back to its own folder or
a parent, a broken link, a FIFO / socket / device with an image suffix, and a
folder that cannot be listed are error rows (never opened, never skipped
silently). Hidden files and folders (``.name``) are skipped.

``experiment.toml`` (every key optional; unknown keys are errors)::

    [experiment]
    name = "HEK293 EV isolation, batch 3"
    max_pixels = 268435456          # largest image (pixels) read; default exoimage.io.DEFAULT_MAX_PIXELS
    reference_sample = "lysate"     # MISEV purity: markers of each sample against this sample (a cell
                                    # lysate lane, or a stated sample); none: purity not assessed

    [tem]                           # detector parameters: every field of exoimage.tem.TemParams
    min_diameter_nm = 30
    max_diameter_nm = 1000
    min_contrast = 3.0
    polarity = "auto"
    min_circularity = 0.55

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

    [samples.S1.nta_dilution]       # NTA dilution per file (wins over dilution_factor), for files that
    "d20" = 20                      # recorded none: a name token (S1_d20-ExperimentSummary.csv), a glob
    "S1_run3.txt" = 200             # ("*_1to50_*") or a file name/path under nta/S1/; see docs/nta.md

    [blots.CD63]                    # key: the file stem: applies to every blot named CD63.* (in any
                                    # sub-folder); or the path under blots/, e.g. [blots."gel2/CD63.tif"],
                                    # for that image only (its keys override the stem's, key by key)
    marker = "CD63"
    target_kda = "30-60"            # or target_rows = [1]
    control_rows = [2]              # or control_kda, control_image, total_protein_image
    control_marker = "GAPDH"        # what the control is (for the MISEV checklist)
    reference_lane = 1
    n_lanes = 8                     # and every other field of exoimage.blot.BlotParams and
    ladder_lane = 1                 # exoimage.blot.plan.NormalizationSpec: lane_bounds, ball_radius_px,
    ladder_kda = [250, 150, 100, 75, 50, 37, 25, 20, 15, 10]  # min_snr, min_snr_px, low_snr, resolve,
    background = "auto"             # edge_border_px, row_regions (see docs/parameters.md)
    polarity = "auto"

    [qc]
    rules = "my_rules.toml"         # a lab's own thresholds (see exoimage/experiment/qc_rules.toml)

Every value is checked when the folder is loaded, before any image is read
(types, ranges, finiteness, choices, files named; the rules of the analysis
parameters are the field metadata of :class:`~exoimage.tem.TemParams`,
:class:`~exoimage.blot.BlotParams` and
:class:`~exoimage.blot.plan.NormalizationSpec`, see :mod:`exoimage.params`);
the first problem is an :class:`ExperimentError` of one line naming the
file, the key and the problem.

The keys of ``[tem]`` and of the parameters in ``[blots.X]`` are the parameters' names:
the fields of those dataclasses, the names of the Python API (docs/parameters.md lists
each with its command-line option, unit and default; the plugin's forms show them). The
older spellings ``lanes``, ``target_row`` and ``control_row`` are still read (as
``n_lanes``, ``target_rows``, ``control_rows``; giving both spellings is an error).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..io import supported_suffixes
from ..params import ParamError, check_value, param_meta, show_value, toml_names, validate_mapping
from ..outputs import walk_folder

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ExperimentError", "Experiment", "ImageTask", "BlotSpec", "load_experiment", "KNOWN_MARKERS",
           "marker_category", "read_config_toml", "MAX_CONFIG_BYTES"]

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


#: largest configuration file read (experiment.toml, a QC rules file): hand-written files are a
#: few kB; 1 MB leaves room for thousands of per-image pixel sizes and keeps a wrong file (a disk
#: image named experiment.toml, /dev/zero as rules) from filling memory
MAX_CONFIG_BYTES = 1_000_000

#: rules of the keys of ``[experiment]``, ``[samples.X]`` and the non-parameter keys of ``[blots.X]``
#: (same format as the field metadata of the parameter dataclasses, see :mod:`exoimage.params`)
_EXPERIMENT_META = {
    "name": {"type": "str"},
    "description": {"type": "str"},
    "max_pixels": {"type": "int", "min": 1, "help": "largest image read, in pixels (height x width x samples)"},
    "reference_sample": {"type": "str", "help": "the sample (a lane-sheet or [samples] name, e.g. a cell "
                         "lysate) the MISEV purity check compares each sample's markers with"},
}
_SAMPLE_META = {
    "label": {"type": "str"},
    "group": {"type": "str"},
    "protein_ug": {"type": "float", "min": 0, "min_exclusive": True},
    "particles_loaded": {"type": "float", "min": 0, "min_exclusive": True},
    "volume_ml": {"type": "float", "min": 0, "min_exclusive": True},
    "dilution_factor": {"type": "float", "min": 0, "min_exclusive": True},
    # NTA dilution per file name / glob / name token (see exoimage.experiment.nta.file_dilutions)
    "nta_dilution": {"type": "table", "values": {"type": "float", "min": 0, "min_exclusive": True}},
}
_BLOT_OWN_META = {
    "marker": {"type": "str"},
    "control_marker": {"type": "str"},
    "lane_sheet": {"type": "path"},
}
_BLOT_FILE_KEYS = ("control_image", "total_protein_image", "lane_sheet")
_QC_META = {"rules": {"type": "path", "help": "a lab's QC rules file, relative to the experiment folder"}}
_TOP_KEYS = {"experiment", "tem", "samples", "blots", "qc", "nta"}


def _tem_keys() -> set:
    from ..tem import TemParams

    return set(toml_names(TemParams)) | {"pixel_size_nm"}


_SAMPLE_KEYS = set(_SAMPLE_META)


@dataclass
class ImageTask:
    """One image to analyse: what it is, where it is, which sample it belongs to."""

    kind: str  # 'tem' or 'blot'
    path: Path
    rel: str  # name in tables, relative to the experiment folder
    sample: str | None = None
    pixel_size_nm: float | None = None  # explicit override
    blot: "BlotSpec | None" = None
    error: str | None = None  # found at discovery (not a regular file, link loop...): never opened


@dataclass
class BlotSpec:
    """How to read one blot: its marker, lane sheet and normalisation choices."""

    name: str
    marker: str | None
    lane_sheet: Path | None
    options: dict = field(default_factory=dict)
    # name: the image's path under blots/ (unique); the default lane sheet is
    # <stem>.lanes.csv next to the image


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
    rules: dict | None = None  # the QC rules (defaults + rules_path), checked at load
    max_pixels: int | None = None  # [experiment] max_pixels; None: exoimage.io.DEFAULT_MAX_PIXELS
    reference_sample: str | None = None  # [experiment] reference_sample (the MISEV purity reference)
    #: OCR engine reading burned-in scale-bar labels (``exoimage run --ocr``); None: ``$EXOIMAGE_OCR_ENGINE``,
    #: else the default (:data:`exoimage.scalebar.DEFAULT_OCR_ENGINE`)
    ocr_engine: str | None = None
    #: path relative to the experiment folder -> one-line problem, for the NTA entries found at
    #: discovery that cannot be read (not a regular file, link loop...); they are in ``nta`` too
    input_errors: dict = field(default_factory=dict)

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


def read_config_toml(path, error=ExperimentError, what: str = "") -> dict:
    """Read a TOML configuration file; every problem is one ``error`` line naming the file.

    Refuses anything but a regular file (a folder, a FIFO, a device), files
    over :data:`MAX_CONFIG_BYTES`, text that is not UTF-8 and TOML syntax errors.
    ``what`` (e.g. ``"QC rules file"``) is said after the path.
    """
    path = Path(path)
    head = f"{path}: {what}: " if what else f"{path}: "
    try:
        if not path.is_file():
            what_is = "a folder" if path.is_dir() else ("not found" if not path.exists() else "not a regular file")
            raise error(head + (what_is if what_is == "not found" else f"{what_is}, not a TOML file"))
        with path.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise error(head + f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise error(head + f"larger than {MAX_CONFIG_BYTES} bytes, not a configuration file")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise error(head + "not valid TOML (not UTF-8 text)") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(head + f"not valid TOML ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise error(head + "not valid TOML (nested too deeply)") from None


def _table(value, key: str, path: Path, hint: str = "") -> dict:
    if not isinstance(value, dict):
        raise ExperimentError(f"{path}: {ParamError(key, value, 'must be a table' + hint)}")
    return value


def _checked(path: Path, where: str, fn, *args, **kw):
    """``fn(*args, **kw)``, a ParamError becoming one ExperimentError line ``path: [where] key = v: problem``."""
    try:
        return fn(*args, **kw)
    except ParamError as exc:
        raise ExperimentError(f"{path}: [{where}] {exc}") from None


def _config_file(base: Path, name: str, cfg_path: Path, where: str, key: str) -> Path:
    """A file named in the configuration (relative to ``base``): it must be a regular file."""
    f = Path(name) if Path(name).is_absolute() else base / name
    try:
        ok, exists = f.is_file(), f.exists()
    except (OSError, ValueError) as exc:
        raise ExperimentError(f"{cfg_path}: [{where}] {key} = {show_value(name)}: cannot be used "
                              f"({getattr(exc, 'strerror', None) or exc})") from None
    if not ok:
        problem = "not found" if not exists else ("a folder, not a file" if f.is_dir() else "not a regular file")
        rel = "" if Path(name).is_absolute() else f" (relative to {base.name + '/' if base != cfg_path.parent else 'the experiment folder'})"
        raise ExperimentError(f"{cfg_path}: [{where}] {key} = {show_value(name)}: {problem}{rel}")
    return f


def _validate_config(cfg: dict, cfg_path: Path, root: Path) -> dict:
    """Check every section, key and value of experiment.toml (and load the QC rules file it names).

    Returns the checked values: ``name``, ``max_pixels``, ``tem_params`` (TemParams field ->
    value), ``pixel_size_nm`` (path under tem/ -> nm), ``samples``, ``blots`` (stem -> options
    by field name, older spellings renamed), ``rules_path`` and ``rules``. Raises ExperimentError (one line).
    """
    from ..blot import BlotParams
    from ..blot.plan import NormalizationSpec
    from .qc import load_rules
    from ..tem import PIXEL_SIZE_META, TemParams

    _check_keys(cfg, _TOP_KEYS, "top level", cfg_path)
    out = {}
    ex = _table(cfg.get("experiment", {}), "experiment", cfg_path)
    _check_keys(ex, set(_EXPERIMENT_META), "experiment", cfg_path)
    for k, v in ex.items():
        _checked(cfg_path, "experiment", check_value, k, v, _EXPERIMENT_META[k])
    out["name"] = ex.get("name", root.resolve().name)
    out["max_pixels"] = ex.get("max_pixels")
    if "reference_sample" in ex and not ex["reference_sample"].strip():
        raise ExperimentError(f"{cfg_path}: [experiment] "
                              f"{ParamError('reference_sample', ex['reference_sample'], 'must name a sample, not be empty')}")
    out["reference_sample"] = ex.get("reference_sample")

    tem_cfg = dict(_table(cfg.get("tem", {}), "tem", cfg_path))
    _check_keys(tem_cfg, _tem_keys(), "tem", cfg_path)
    px = _table(tem_cfg.pop("pixel_size_nm", {}), "[tem] pixel_size_nm", cfg_path,
                ' of image = nm per pixel, e.g. [tem.pixel_size_nm] "S1/a.tif" = 0.8')
    out["tem_params"] = _checked(cfg_path, "tem", validate_mapping, TemParams, tem_cfg, names="toml")
    px_meta = {**PIXEL_SIZE_META, "optional": False}
    out["pixel_size_nm"] = {str(k): _checked(cfg_path, "tem.pixel_size_nm", check_value, show_value(str(k)), v,
                                             px_meta) for k, v in px.items()}

    samples = {}
    for s, sc in _table(cfg.get("samples", {}), "samples", cfg_path, " of [samples.<name>] sections").items():
        _table(sc, f"samples.{s}", cfg_path, " (label, group, protein_ug, ...)")
        _check_keys(sc, _SAMPLE_KEYS, f"samples.{s}", cfg_path)
        samples[str(s)] = {k: _checked(cfg_path, f"samples.{s}", check_value, k, v, _SAMPLE_META[k])
                           for k, v in sc.items()}
    out["samples"] = samples

    blots = {}
    blot_meta = {**{k: param_meta(BlotParams)[f] for k, f in toml_names(BlotParams).items()},
                 **{k: param_meta(NormalizationSpec)[f] for k, f in toml_names(NormalizationSpec).items()},
                 **_BLOT_OWN_META}
    canonical = {**toml_names(BlotParams), **toml_names(NormalizationSpec)}
    for stem, bc in _table(cfg.get("blots", {}), "blots", cfg_path, " of [blots.<image stem>] sections").items():
        where = f"blots.{stem}"
        _table(bc, where, cfg_path, " (marker, lanes, ladder_lane, ...)")
        _check_keys(bc, set(blot_meta), where, cfg_path)
        for cls in (BlotParams, NormalizationSpec):  # each value, then the rules between values
            _checked(cfg_path, where, validate_mapping, cls, {k: v for k, v in bc.items() if k in toml_names(cls)},
                     names="toml")
        checked = {k: _checked(cfg_path, where, check_value, k, v, blot_meta[k]) for k, v in bc.items()}
        checked = {canonical.get(k, k): v for k, v in checked.items()}  # older spellings -> field names
        for k in _BLOT_FILE_KEYS:
            if k in checked:
                _config_file(root / "blots", checked[k], cfg_path, where, k)
        blots[str(stem)] = checked
    out["blots"] = blots

    qc = _table(cfg.get("qc", {}), "qc", cfg_path)
    _check_keys(qc, set(_QC_META), "qc", cfg_path)
    for k, v in qc.items():
        _checked(cfg_path, "qc", check_value, k, v, _QC_META[k])
    out["rules_path"] = _config_file(root, qc["rules"], cfg_path, "qc", "rules") if "rules" in qc else None
    out["rules"] = load_rules(out["rules_path"])
    return out


def _images_under(folder: Path, prefix: str) -> list:
    """The images under ``folder`` (links followed, loops and non-regular files as error entries)."""
    return walk_folder(folder, supported_suffixes(), prefix=prefix)


def _sample_of(rel_under: str) -> str:
    """The sample of an entry under tem/ or nta/: its first folder ('unassigned' for a file at the top)."""
    parts = rel_under.split("/")
    return parts[0] if len(parts) > 1 else "unassigned"


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
    if cfg_path.exists() or cfg_path.is_symlink():
        cfg = read_config_toml(cfg_path)

    if cfg.get("nta"):
        raise ExperimentError(f"{cfg_path}: [nta] takes no keys; NTA files are found under nta/<sample>/ and "
                              "options are per sample ([samples.X] dilution_factor, protein_ug, volume_ml)")
    conf = _validate_config(cfg, cfg_path, root)  # every value, before any file is looked at
    name = str(conf["name"])
    tem_cfg = conf["tem_params"]
    px_over = conf["pixel_size_nm"]
    samples = conf["samples"]

    tem_tasks = []
    tem_dir = root / "tem"
    if tem_dir.is_dir():
        for f in _images_under(tem_dir, "tem/"):
            rel_tem = f.rel[len("tem/"):]
            tem_tasks.append(ImageTask("tem", f.path, f.rel, _sample_of(rel_tem), px_over.get(rel_tem),
                                       error=f.error))
    unknown_px = sorted(set(px_over) - {t.rel[4:] for t in tem_tasks})
    if unknown_px:
        raise ExperimentError(f"{cfg_path}: [tem.pixel_size_nm] names image(s) not found under "
                              f"tem/: {', '.join(unknown_px)}")

    blot_cfg = conf["blots"]
    blot_tasks = []
    blot_dir = root / "blots"
    stems = set()
    if blot_dir.is_dir():
        for entry in _images_under(blot_dir, "blots/"):
            p, rel_blot = entry.path, entry.rel[len("blots/"):].rstrip("/")
            stem = p.name.split(".")[0]
            if entry.error:
                blot_tasks.append(ImageTask("blot", p, entry.rel, None, None,
                                            BlotSpec(rel_blot, stem if marker_category(stem) else None, None),
                                            error=entry.error))
                continue
            # the stem's keys ([blots.CD63]: every CD63.* blot), then the image's own ([blots."gel2/CD63.tif"])
            keys = [k for k in dict.fromkeys((stem, rel_blot)) if k in blot_cfg]  # checked by _validate_config
            bc = {**blot_cfg.get(stem, {}), **(blot_cfg.get(rel_blot, {}) if rel_blot != stem else {})}
            for key in ("control_image", "total_protein_image"):
                if key in bc:
                    bc[key] = (blot_dir / bc[key]) if not Path(bc[key]).is_absolute() else Path(bc[key])
            controls = {Path(v).resolve() for b in blot_cfg.values() for k, v in b.items()
                        if k in ("control_image", "total_protein_image")}
            if p.resolve() in {(blot_dir / c).resolve() for c in controls} or p.resolve() in controls:
                continue  # a control / total-protein image is read with its blot, not on its own
            stems.update(keys)
            # lane sheet: as configured (relative to blots/), else <stem>.lanes.csv next to the image
            sheet = blot_dir / bc.pop("lane_sheet") if "lane_sheet" in bc else p.parent / f"{stem}.lanes.csv"
            if not sheet.exists() and any("lane_sheet" in blot_cfg.get(k, {}) for k in (stem, rel_blot)):
                raise ExperimentError(f"{cfg_path}: [blots.{stem}] lane_sheet {sheet} not found")
            marker = bc.pop("marker", None)
            if marker is None and marker_category(stem):
                marker = stem
            blot_tasks.append(ImageTask("blot", p, entry.rel, None, None,
                                        BlotSpec(rel_blot, marker, sheet if sheet.exists() else None, bc)))
    missing = sorted(set(blot_cfg) - stems)
    if missing:
        raise ExperimentError(f"{cfg_path}: [blots] names blot(s) with no image in blots/: "
                              f"{', '.join(missing)}")

    nta, nta_errors = {}, {}
    nta_dir = root / "nta"
    if nta_dir.is_dir():
        for f in walk_folder(nta_dir, (".csv", ".txt"), prefix="nta/"):
            nta.setdefault(_sample_of(f.rel[len("nta/"):]), []).append(f.path)
            if f.error:
                nta_errors[f.rel.rstrip("/")] = f.error
    try:  # NTA dilutions per file / pattern: each entry must match a file (exoimage.experiment.nta.file_dilutions)
        from .nta import file_dilutions
        file_dilutions(samples, nta, root)
    except ValueError as exc:
        raise ExperimentError(str(exc)) from None

    if not tem_tasks and not blot_tasks and not nta:
        raise ExperimentError(f"{root}: nothing to analyse: expected images under tem/<sample>/, "
                              f"blots/ or NTA exports under nta/<sample>/")
    return Experiment(root=root, name=name, tem=tem_tasks, blots=blot_tasks, samples=samples,
                      tem_params=tem_cfg, config=cfg, nta=nta, rules_path=conf["rules_path"], rules=conf["rules"],
                      max_pixels=conf["max_pixels"], reference_sample=conf["reference_sample"], input_errors=nta_errors)
