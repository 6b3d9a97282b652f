"""Hostile and clumsy configuration (issue 10): experiment.toml, QC rules files, parameters and
the numeric options of ``exoimage tem`` / ``blot``.

Every bad value must be refused before any image is read, with ONE line naming the file (or the
option), the key and the problem: no traceback, no output, exit code 2 on the command line.
Every valid existing configuration must still load.
"""

import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from exoimage.experiment import layout as experiment_module
from exoimage.blot import BlotParams
from exoimage.blot.plan import NormalizationSpec
from exoimage.experiment import MAX_CONFIG_BYTES, ExperimentError, load_experiment
from exoimage.io import PLAUSIBLE_GIVEN_PIXEL_NM, write_calibrated_tiff
from exoimage.params import ParamError, param_meta, toml_names
from exoimage.experiment.qc import DEFAULT_RULES, RULES_SCHEMA, RulesError, load_rules
from exoimage.tem import PIXEL_SIZE_META, TemParams

REPO = Path(__file__).resolve().parents[1]
PARAM_CLASSES = (TemParams, BlotParams, NormalizationSpec)


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def exp(tmp_path):
    """An experiment folder whose images are never read by the loader (their bytes are junk)."""
    root = tmp_path / "exp"
    (root / "tem" / "S1").mkdir(parents=True)
    (root / "blots" / "sub").mkdir(parents=True)
    (root / "tem" / "S1" / "a.tif").write_bytes(b"junk: the loader must not read images")
    (root / "blots" / "CD63.tif").write_bytes(b"junk")
    (root / "blots" / "CD63.lanes.csv").write_text("lane,sample\n1,ladder\n2,A\n")
    return root


def _one_line(msg: str, root: Path):
    assert msg and "\n" not in msg and "\r" not in msg, msg
    assert "Traceback" not in msg
    assert msg.count(str(root)) <= 1, f"path repeated: {msg}"


def _load_error(root: Path) -> str:
    with pytest.raises(ExperimentError) as ei:
        load_experiment(root)
    msg = str(ei.value)
    _one_line(msg, root)
    return msg


def _assert_names(msg: str, file: Path, *fragments):
    assert msg.startswith(f"{file}: "), msg
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"


# --------------------------------------------------------------------------- experiment.toml: the cases

# (id, experiment.toml text, fragments the one-line error must contain after "<experiment.toml>: ")
CASES = [
    ("pixel size with unit", '[tem.pixel_size_nm]\n"S1/a.tif" = "0.8 nm"\n',
     ['[tem.pixel_size_nm] "S1/a.tif" = "0.8 nm": must be a number from 0.0001 to 1e+07 nm, not text']),
    ("pixel size 1e300", '[tem.pixel_size_nm]\n"S1/a.tif" = 1e300\n',
     ['[tem.pixel_size_nm] "S1/a.tif" = 1e+300: must be a number from 0.0001 to 1e+07 nm']),
    ("pixel size 0", '[tem.pixel_size_nm]\n"S1/a.tif" = 0\n', ['"S1/a.tif" = 0: must be a number from 0.0001']),
    ("pixel size negative", '[tem.pixel_size_nm]\n"S1/a.tif" = -0.8\n', ['"S1/a.tif" = -0.8: must be']),
    ("pixel size nan", '[tem.pixel_size_nm]\n"S1/a.tif" = nan\n', ['"S1/a.tif" = nan: must be']),
    ("pixel size inf", '[tem.pixel_size_nm]\n"S1/a.tif" = inf\n', ['"S1/a.tif" = inf: must be']),
    ("pixel size too small", '[tem.pixel_size_nm]\n"S1/a.tif" = 1e-5\n', ['"S1/a.tif" = 1e-05: must be']),
    ("pixel size true", '[tem.pixel_size_nm]\n"S1/a.tif" = true\n', ['"S1/a.tif" = true: must be', "not true/false"]),
    ("pixel sizes not a table", "[tem]\npixel_size_nm = 0.8\n", ["[tem] pixel_size_nm = 0.8: must be a table"]),
    ("min diameter 0", "[tem]\nmin_diameter_nm = 0\n", ["[tem] min_diameter_nm = 0: must be a number > 0 nm"]),
    ("min diameter nan", "[tem]\nmin_diameter_nm = nan\n", ["[tem] min_diameter_nm = nan: must be a number > 0 nm"]),
    ("min diameter text", '[tem]\nmin_diameter_nm = "30"\n',
     ['[tem] min_diameter_nm = "30": must be a number > 0 nm, not text']),
    ("min > max", "[tem]\nmin_diameter_nm = 500\nmax_diameter_nm = 100\n",
     ["[tem] min_diameter_nm = 500.0: must be less than max_diameter_nm (100.0)"]),
    ("min > default max", "[tem]\nmin_diameter_nm = 2000\n",
     ["[tem] min_diameter_nm = 2000.0: must be less than max_diameter_nm (1000.0)"]),
    ("min = max", "[tem]\nmin_diameter_nm = 100\nmax_diameter_nm = 100\n", ["must be less than max_diameter_nm"]),
    ("polarity sideways", '[tem]\npolarity = "sideways"\n',
     ['[tem] polarity = "sideways": must be one of "auto", "light", "dark"']),
    ("min_contrast nan", "[tem]\nmin_contrast = nan\n", ["[tem] min_contrast = nan: must be a number >= 0 noise SD"]),
    ("tem unknown key", "[tem]\nmin_diam = 3\n", ["unknown key(s) min_diam in [tem]"]),
    ("tem not a table", 'tem = "fast"\n', ['tem = "fast": must be a table']),
    ("samples not a table", "samples = 5\n", ["samples = 5: must be a table"]),
    ("experiment not a table", "experiment = 5\n", ["experiment = 5: must be a table"]),
    ("blots not a table", "blots = [1, 2]\n", ["blots = [1, 2]: must be a table"]),
    ("qc not a table", 'qc = "strict"\n', ['qc = "strict": must be a table']),
    ("one sample not a table", "[samples]\nS1 = 5\n", ["samples.S1 = 5: must be a table"]),
    ("one blot not a table", '[blots]\nCD63 = "x"\n', ['blots.CD63 = "x": must be a table']),
    ("unknown top-level section", "[colour]\nx = 1\n", ["unknown key(s) colour in [top level]"]),
    ("experiment name not text", "[experiment]\nname = 5\n", ["[experiment] name = 5: must be text, not a number"]),
    ("experiment unknown key", '[experiment]\nauthor = "me"\n', ["unknown key(s) author in [experiment]"]),
    ("max_pixels 0", "[experiment]\nmax_pixels = 0\n", ["[experiment] max_pixels = 0: must be a whole number >= 1"]),
    ("max_pixels float", "[experiment]\nmax_pixels = 2.5e8\n", ["max_pixels = 250000000.0: must be a whole number"]),
    ("max_pixels text", '[experiment]\nmax_pixels = "big"\n', ['max_pixels = "big": must be a whole number']),
    ("protein negative", "[samples.S1]\nprotein_ug = -1\n", ["[samples.S1] protein_ug = -1: must be a positive number"]),
    ("volume inf", "[samples.S1]\nvolume_ml = inf\n", ["[samples.S1] volume_ml = inf: must be a positive number"]),
    ("dilution true", "[samples.S1]\ndilution_factor = true\n", ["dilution_factor = true: must be a positive number"]),
    ("particles_loaded text", '[samples.S1]\nparticles_loaded = "1e9"\n', ['particles_loaded = "1e9": must be']),
    ("label not text", "[samples.S1]\nlabel = 5\n", ["[samples.S1] label = 5: must be text"]),
    ("group not text", "[samples.S1]\ngroup = [1]\n", ["[samples.S1] group = [1]: must be text"]),
    ("sample unknown key", "[samples.S1]\nprotein = 5\n", ["unknown key(s) protein in [samples.S1]"]),
    ("lanes 1e9", "[blots.CD63]\nlanes = 1e9\n", ["[blots.CD63] lanes = 1000000000.0: must be a whole number from 1 to 100"]),
    ("lanes 0", "[blots.CD63]\nlanes = 0\n", ["[blots.CD63] lanes = 0: must be a whole number from 1 to 100"]),
    ("min_snr nan", "[blots.CD63]\nmin_snr = nan\n", ["[blots.CD63] min_snr = nan: must be a number > 0 noise SD"]),
    ("blot polarity", '[blots.CD63]\npolarity = "up"\n', ['polarity = "up": must be one of "auto", "light-bands"']),
    ("background", '[blots.CD63]\nbackground = "magic"\n', ['background = "magic": must be one of "auto"']),
    ("lane bounds reversed", "[blots.CD63]\nlane_bounds = [[50, 30]]\n", ["lane_bounds = [[50, 30]]: must be a list of"]),
    ("lane bounds not pairs", "[blots.CD63]\nlane_bounds = [[1, 2, 3]]\n", ["lane_bounds = [[1, 2, 3]]: must be"]),
    ("ladder lane 0", "[blots.CD63]\nladder_lane = 0\n", ["ladder_lane = 0: must be a whole number from 1 to 100"]),
    ("ladder lane beyond lanes", "[blots.CD63]\nlanes = 5\nladder_lane = 9\n",
     ["[blots.CD63] ladder_lane = 9: must be at most lanes (5)"]),
    ("ladder kDa without lane", "[blots.CD63]\nladder_kda = [250, 150]\n",
     ["[blots.CD63] ladder_kda = [250.0, 150.0]: needs ladder_lane as well"]),
    ("ladder kDa one marker", "[blots.CD63]\nladder_lane = 1\nladder_kda = [250]\n", ["ladder_kda = [250]: must be a list of 2 to 30"]),
    ("ladder kDa negative", "[blots.CD63]\nladder_lane = 1\nladder_kda = [250, -1]\n", ["each a number > 0 kDa"]),
    ("ladder kDa text", '[blots.CD63]\nladder_lane = 1\nladder_kda = "250,150"\n', ['ladder_kda = "250,150": must be a list']),
    ("target row 0", "[blots.CD63]\ntarget_row = [0]\n", ["target_row = [0]: must be a list of 1 to 100 items, each a whole number >= 1"]),
    ("target row and kDa", '[blots.CD63]\ntarget_row = [1]\ntarget_kda = "30-60"\n',
     ["target_row = [1]: give target_row or target_kda, not both"]),
    ("target kDa words", '[blots.CD63]\ntarget_kda = "heavy"\n', ['target_kda = "heavy": must be a weight in kDa']),
    ("target kDa negative", "[blots.CD63]\ntarget_kda = -5\n", ["target_kda = -5: must be a weight in kDa"]),
    ("control kDa nan", '[blots.CD63]\ncontrol_kda = "nan"\n', ['control_kda = "nan": must be a weight in kDa']),
    ("control row empty", "[blots.CD63]\ncontrol_row = []\n", ["control_row = []: must be a list of 1 to 100"]),
    ("control image missing", '[blots.CD63]\ncontrol_image = "nope.tif"\n',
     ['[blots.CD63] control_image = "nope.tif": not found (relative to blots/)']),
    ("control image a folder", '[blots.CD63]\ncontrol_image = "sub"\n', ['control_image = "sub": a folder, not a file']),
    ("control image not text", "[blots.CD63]\ncontrol_image = 5\n", ["control_image = 5: must be a file name (text)"]),
    ("two controls", '[blots.CD63]\ncontrol_image = "CD63.lanes.csv"\ntotal_protein_image = "CD63.lanes.csv"\n',
     ["give control_image or total_protein_image, not both"]),
    ("total protein image empty", '[blots.CD63]\ntotal_protein_image = ""\n', ['total_protein_image = "": must be a file name']),
    ("reference lane 1.5", "[blots.CD63]\nreference_lane = 1.5\n", ["reference_lane = 1.5: must be a whole number"]),
    ("marker not text", "[blots.CD63]\nmarker = 63\n", ["[blots.CD63] marker = 63: must be text"]),
    ("control marker not text", "[blots.CD63]\ncontrol_marker = true\n", ["control_marker = true: must be text"]),
    ("lane sheet missing", '[blots.CD63]\nlane_sheet = "other.csv"\n', ['lane_sheet = "other.csv": not found']),
    ("blot unknown key", "[blots.CD63]\nlane = 5\n", ["unknown key(s) lane in [blots.CD63]"]),
    ("blot with no image", "[blots.CD81]\nmarker = 'CD81'\n", ["[blots] names blot(s) with no image"]),
    ("rules not text", "[qc]\nrules = 5\n", ["[qc] rules = 5: must be a file name (text), not a number"]),
    ("rules missing", '[qc]\nrules = "missing.toml"\n', ['[qc] rules = "missing.toml": not found']),
    ("rules a folder", '[qc]\nrules = "tem"\n', ['[qc] rules = "tem": a folder, not a file']),
    ("rules NUL", '[qc]\nrules = "a\\u0000b"\n', ["[qc] rules = ", "without a NUL character"]),
    ("qc unknown key", '[qc]\nrule = "x.toml"\n', ["unknown key(s) rule in [qc]"]),
    ("not TOML", "this is = = not toml", ["not valid TOML (", "(at line 1, column 6))"]),
]


@pytest.mark.parametrize("toml,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_experiment_toml_cases(exp, toml, fragments):
    (exp / "experiment.toml").write_text(toml, encoding="utf-8")
    msg = _load_error(exp)
    _assert_names(msg, exp / "experiment.toml", *fragments)


def _file_cases(root: Path):
    cfg = root / "experiment.toml"
    return {
        "folder": (lambda: cfg.mkdir(), "a folder, not a TOML file"),
        "fifo": (lambda: os.mkfifo(cfg), "not a regular file"),
        "too large": (lambda: cfg.write_text("# padding\n" * (MAX_CONFIG_BYTES // 10 + 1)), "larger than"),
        "binary": (lambda: cfg.write_bytes(b"\xff\xfe\x00\x01 binary"), "not valid TOML (not UTF-8 text)"),
        "deeply nested": (lambda: cfg.write_text("a = " + "[" * 20000 + "]" * 20000), "not valid TOML"),
        "dangling link": (lambda: cfg.symlink_to(root / "nowhere.toml"), "not found"),
    }


@pytest.mark.parametrize("case", list(_file_cases(Path("/x"))))
def test_experiment_toml_file_cases(exp, case):
    make, fragment = _file_cases(exp)[case]
    if case == "fifo" and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    make()
    msg = _load_error(exp)
    _assert_names(msg, exp / "experiment.toml", fragment)


def test_experiment_folder_is_a_file(tmp_path):
    f = tmp_path / "exp"
    f.write_text("x")
    with pytest.raises(ExperimentError, match="experiment folder not found"):
        load_experiment(f)


# --------------------------------------------------------------------------- every parameter field


def _bad_values(meta: dict) -> list:
    """(TOML text, Python value) of values that break ``meta``: wrong type, NaN, out of range, wrong choice."""
    t = meta["type"]
    out = []
    if t in ("float", "int"):
        out += [('"3"', "3"), ("true", True), ("[1]", [1])]
        if t == "float":
            out += [("nan", float("nan")), ("inf", float("inf")), ("-inf", float("-inf"))]
        else:
            out += [("2.5", 2.5)]
        if meta.get("min") is not None:
            lo = meta["min"] if meta.get("min_exclusive") else meta["min"] - 1
            out.append((repr(lo), lo))
        if meta.get("max") is not None:
            hi = meta["max"] * 2 + 1
            out.append((repr(hi), hi))
    elif t == "str":
        out += [("5", 5), ("true", True)]
        if meta.get("choices"):
            out += [('"no-such-choice"', "no-such-choice"), (f'"{meta["choices"][0].upper()}x"', "X")]
    elif t == "bool":
        out += [('"yes"', "yes"), ("1", 1)]
    elif t == "path":
        out += [("5", 5), ('""', ""), ("[1]", [1])]
    elif t == "int_pairs":
        out += [("5", 5), ("[[50, 30]]", [[50, 30]]), ("[[1, 2, 3]]", [[1, 2, 3]]), ("[[-1, 2]]", [[-1, 2]]),
                ('[["a", 2]]', [["a", 2]]), ("[[1.5, 3]]", [[1.5, 3]]), ("[]", [])]
    elif t == "float_list":
        out += [('"250,150"', "250,150"), ("[250]", [250]), ("[250, -1]", [250, -1]), ("[250, nan]", [250, float("nan")]),
                ('[250, "150"]', [250, "150"]), (repr([1.0] * 31), [1.0] * 31)]
    elif t == "int_list":
        out += [("[0]", [0]), ('"1"', "1"), ("[]", []), ("[1.5]", [1.5]), ("[true]", [True])]
    elif t == "kda_range":
        out += [('"heavy"', "heavy"), ("true", True), ("-5", -5), ('"nan"', "nan"), ('"0-10"', "0-10"), ("[30, 60]", [30, 60])]
    assert out, f"no bad values for type {t}"
    return out


_NEEDS = {"ladder_kda": "ladder_lane = 1\n"}  # so the value, not its missing partner, is the problem


def _toml_param_cases():
    cases = []
    for cls, section in ((TemParams, "tem"), (BlotParams, "blots.CD63"), (NormalizationSpec, "blots.CD63")):
        for key, fname in toml_names(cls).items():
            for text, _ in _bad_values(param_meta(cls)[fname]):
                cases.append(pytest.param(section, key, text, id=f"{section}.{key}={text[:20]}"))
    return cases


@pytest.mark.parametrize("section,key,text", _toml_param_cases())
def test_every_parameter_in_experiment_toml(exp, section, key, text):
    (exp / "experiment.toml").write_text(f"[{section}]\n{_NEEDS.get(key, '')}{key} = {text}\n", encoding="utf-8")
    msg = _load_error(exp)
    _assert_names(msg, exp / "experiment.toml", f"[{section}] {key} = ")
    assert re.search(r": (must be|needs|give)", msg), msg


def _python_param_cases():
    cases = []
    for cls in PARAM_CLASSES:
        for fname, meta in param_meta(cls).items():
            for _, value in _bad_values(meta):
                cases.append(pytest.param(cls, fname, value, id=f"{cls.__name__}.{fname}={str(value)[:20]}"))
    return cases


@pytest.mark.parametrize("cls,field,value", _python_param_cases())
def test_every_parameter_field_in_python(cls, field, value):
    """The library (batch, napari plugin) refuses the same values, naming the field."""
    extra = {"ladder_lane": 1} if field == "ladder_kda" else {}
    with pytest.raises(ParamError) as ei:
        obj = cls(**extra, **{field: value})
        obj.check()
    assert ei.value.key == field
    assert "\n" not in str(ei.value) and str(ei.value).startswith(f"{field} = ")


def test_good_parameter_values_are_accepted():
    assert TemParams(min_diameter_nm=1e-3, max_diameter_nm=1e6, min_contrast=0, polarity="dark",
                     min_circularity=1.0).min_circularity == 1.0
    BlotParams(n_lanes=100, lane_bounds=[(0, 5), (7, 9)], ladder_lane=1, ladder_kda=[250, 150.5],
               ball_radius_px=1e-3, low_snr=0, resolve=False)
    NormalizationSpec(target_kda="30-60", control_kda=44, reference_lane=2).check()
    with pytest.raises(ParamError, match="must be less than max_diameter_nm"):
        TemParams(min_diameter_nm=50, max_diameter_nm=50)


def test_every_field_has_rules():
    """A field without rules would escape the validation (and the forms built from it)."""
    for cls in PARAM_CLASSES:
        assert {f.name for f in fields(cls)} == set(param_meta(cls)), cls
    assert PIXEL_SIZE_META["min"] == PLAUSIBLE_GIVEN_PIXEL_NM[0] and PIXEL_SIZE_META["max"] == PLAUSIBLE_GIVEN_PIXEL_NM[1]


def test_target_row_in_experiment_toml_reaches_the_normalisation():
    """experiment.toml keys (target_row, control_row) used to be dropped silently."""
    spec = NormalizationSpec.from_mapping({"target_row": [1], "control_row": [2], "marker": "CD63"})
    assert spec.target_rows == [1] and spec.control_rows == [2]


# --------------------------------------------------------------------------- QC rules files


def _rules_exp(exp, text=None, data=None, name="my_rules.toml"):
    rules = exp / name
    if data is not None:
        rules.write_bytes(data)
    elif text is not None:
        rules.write_text(text, encoding="utf-8")
    (exp / "experiment.toml").write_text(f'[qc]\nrules = "{name}"\n', encoding="utf-8")
    return rules


RULES_CASES = [
    ("syntax error", "[tem\nmin_vesicles = 3\n", ["QC rules file: not valid TOML"]),
    ("unknown section", "[colour]\nx = 1\n", ["unknown section [colour]; known: calibration"]),
    ("section not a table", "tem = 5\n", ["tem = 5: must be a table"]),
    ("unknown key", "[tem]\nmin_vesicle = 3\n", ["unknown key(s) min_vesicle in [tem]"]),
    ("passwd-like text", "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/bin/sh\n", ["not valid TOML"]),
    ("count as text", '[tem]\nmin_vesicles = "100"\n', ['[tem] min_vesicles = "100": must be a whole number >= 0']),
    ("count float", "[tem]\nmin_vesicles = 99.5\n", ["[tem] min_vesicles = 99.5: must be a whole number"]),
    ("fraction > 1", "[tem]\nborder_fraction = 20\n", ["[tem] border_fraction = 20: must be a number from 0 to 1"]),
    ("percent nan", "[blot]\nreplicate_cv_pct = nan\n", ["[blot] replicate_cv_pct = nan: must be a number >= 0 %"]),
    ("r2 negative", "[blot]\nlinear_r2 = -0.5\n", ["[blot] linear_r2 = -0.5: must be a number from 0 to 1"]),
    ("status lower case", '[blot]\nsaturated = "warn"\n', ['[blot] saturated = "warn": must be one of "PASS", "WARN", "FAIL"']),
    ("status a number", "[calibration]\nmissing = 2\n", ["[calibration] missing = 2: must be one of"]),
    ("source not text", "[misev]\nsource = 5\n", ["[misev] source = 5: must be text"]),
    ("nta videos negative", "[nta]\nmin_videos = -3\n", ["[nta] min_videos = -3: must be a whole number >= 0"]),
    ("ppf range reversed", "[nta.particles_per_frame_range]\nnanosight = [100.0, 20.0]\n",
     ["[nta] particles_per_frame_range.nanosight = [100.0, 20.0]: must be a list of 2 items"]),
    ("ppf range one number", "[nta.particles_per_frame_range]\nnanosight = 20.0\n",
     ["particles_per_frame_range.nanosight = 20.0: must be a list"]),
    ("ppf unknown instrument", "[nta.particles_per_frame_range]\nqnano = [1.0, 2.0]\n",
     ["particles_per_frame_range.qnano = [1.0, 2.0]: unknown; known: nanosight, zetaview"]),
    ("ppf not a table", "[nta]\nparticles_per_frame_range = [20, 100]\n", ["particles_per_frame_range = [20, 100]: must be a table"]),
]


@pytest.mark.parametrize("text,fragments", [c[1:] for c in RULES_CASES], ids=[c[0] for c in RULES_CASES])
def test_rules_file_cases(exp, text, fragments):
    rules = _rules_exp(exp, text)
    msg = _load_error(exp)
    _assert_names(msg, rules, *fragments)
    with pytest.raises(RulesError):   # the library loader says the same
        load_rules(rules)


def _rules_key_cases():
    defaults = load_rules()
    cases = []
    for sec, keys in RULES_SCHEMA.items():
        for key, meta in keys.items():
            if meta["type"] == "table":
                continue  # RULES_CASES above
            for text, _ in _bad_values(meta):
                cases.append(pytest.param(sec, key, text, id=f"{sec}.{key}={text[:20]}"))
            assert key in defaults[sec]
    return cases


@pytest.mark.parametrize("sec,key,text", _rules_key_cases())
def test_every_rules_value(exp, sec, key, text):
    rules = _rules_exp(exp, f"[{sec}]\n{key} = {text}\n")
    msg = _load_error(exp)
    _assert_names(msg, rules, f"[{sec}] {key} = ", "must be")


@pytest.mark.parametrize("case", ["folder", "binary", "too large", "fifo", "system file"])
def test_rules_file_that_is_not_a_rules_file(exp, case):
    if case == "folder":
        (exp / "rules_dir").mkdir()
        (exp / "experiment.toml").write_text('[qc]\nrules = "rules_dir"\n')
        _assert_names(_load_error(exp), exp / "experiment.toml", '[qc] rules = "rules_dir": a folder, not a file')
        return
    if case == "fifo":
        os.mkfifo(exp / "r.toml")
        (exp / "experiment.toml").write_text('[qc]\nrules = "r.toml"\n')
        _assert_names(_load_error(exp), exp / "experiment.toml", '[qc] rules = "r.toml": not a regular file')
        return
    if case == "system file":
        system = next((p for p in ("/etc/passwd", "/etc/hostname", "/etc/os-release") if Path(p).is_file()), None)
        if system is None:
            pytest.skip("no system file to try")
        (exp / "experiment.toml").write_text(f'[qc]\nrules = "{system}"\n')
        msg = _load_error(exp)
        assert msg.startswith(f"{system}: QC rules file: ") and "TOML" in msg, msg
        return
    data = b"\x89PNG\r\n\x1a\n\x00\xff" if case == "binary" else b"# x\n" * (MAX_CONFIG_BYTES // 4 + 1)
    rules = _rules_exp(exp, data=data)
    _assert_names(_load_error(exp), rules, "not valid TOML" if case == "binary" else "larger than")


def test_rules_schema_covers_the_built_in_rules():
    """Every key of exoimage/experiment/qc_rules.toml has its rules, and the built-in values obey them."""
    defaults = load_rules()
    assert set(RULES_SCHEMA) == set(defaults)
    for sec in defaults:
        assert set(RULES_SCHEMA[sec]) == set(defaults[sec]), sec
    assert load_rules(DEFAULT_RULES) == defaults   # a lab's unedited copy of the built-in file is valid


def test_lab_rules_still_merge(exp):
    rules = _rules_exp(exp, '[tem]\nmin_vesicles = 50\n[blot]\nsaturated = "WARN"\n'
                            "[nta.particles_per_frame_range]\nnanosight = [20, 150]\n")
    e = load_experiment(exp)
    assert e.rules_path == rules
    assert e.rules["tem"]["min_vesicles"] == 50 and e.rules["blot"]["saturated"] == "WARN"
    assert e.rules["nta"]["particles_per_frame_range"] == {"nanosight": [20, 150], "zetaview": [50.0, 200.0]}


# --------------------------------------------------------------------------- valid configurations still load


def test_sample_images_experiment_loads():
    root = REPO / "sample_images"
    if not (root / "experiment.toml").is_file():
        pytest.skip("sample_images not in this checkout")
    e = load_experiment(root)
    assert len(e.tem) > 0 and {t.blot.name for t in e.blots} == {"CD63.tif", "TSG101.tif", "calnexin.tif"}
    assert all(t.blot.options["ladder_lane"] == 1 for t in e.blots)
    assert e.rules == load_rules()


def _docstring_example() -> str:
    doc = experiment_module.__doc__
    block = doc[doc.index("``experiment.toml`` (every key optional"):]
    block = block[block.index("::") + 2:block.index("Every value is checked")]
    return "\n".join(line[4:] for line in block.splitlines())


def test_documented_example_loads(exp):
    """The experiment.toml shown in exoimage/experiment/layout.py's docstring is valid as written."""
    (exp / "tem" / "S1" / "field_03.tif").write_bytes(b"junk")
    (exp / "my_rules.toml").write_text("# no overrides\n")
    for name in ("S1_d20-ExperimentSummary.csv", "S1_run3.txt"):  # the files its [samples.S1.nta_dilution] names
        (exp / "nta" / "S1").mkdir(parents=True, exist_ok=True)
        (exp / "nta" / "S1" / name).write_text("not read by load_experiment\n")
    (exp / "experiment.toml").write_text(_docstring_example(), encoding="utf-8")
    e = load_experiment(exp)
    assert e.tem_params == {"min_diameter_nm": 30.0, "max_diameter_nm": 1000.0, "min_contrast": 3.0,
                            "polarity": "auto", "min_circularity": 0.55}
    assert {t.rel: t.pixel_size_nm for t in e.tem}["tem/S1/field_03.tif"] == 0.84
    opts = e.blots[0].blot.options
    assert opts["n_lanes"] == 8 and opts["target_kda"] == "30-60" and opts["control_rows"] == [2]
    assert e.max_pixels == 268435456 and e.samples["S1"]["dilution_factor"] == 1000


def test_test_suite_configs_load(exp):
    (exp / "experiment.toml").write_text(
        '[experiment]\nname = "test exp"\n[samples.A]\nlabel = "sample A"\n'
        '[blots.CD63]\nladder_lane = 1\nladder_kda = [250, 150, 100, 75, 50, 37, 25, 20, 15, 10]\n')
    e = load_experiment(exp)
    assert e.name == "test exp" and e.blots[0].blot.options["ladder_kda"][0] == 250.0
    (exp / "experiment.toml").write_text("[samples.S]\ndilution_factor = 1000\nprotein_ug = 12.5\nvolume_ml = 1\n")
    assert load_experiment(exp).samples["S"] == {"dilution_factor": 1000.0, "protein_ug": 12.5, "volume_ml": 1.0}


# --------------------------------------------------------------------------- the library run: rules before work


def _real_tem(path, seed=1):
    from exoimage.simulate.tem import SCENARIOS, TemScene, simulate_tem

    img, _ = simulate_tem(TemScene(shape=(128, 128), pixel_size_nm=2.0, **SCENARIOS["clean"]), seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_calibrated_tiff(path, img, 2.0)


def test_run_experiment_checks_rules_before_any_image(tmp_path):
    """A wrongly typed rules value used to fail only after every image was analysed."""
    from exoimage.experiment.run import run_experiment

    root = tmp_path / "exp"
    _real_tem(root / "tem" / "S1" / "a.tif")
    (root / "rules.toml").write_text("[tem]\nmin_vesicles = 1\n")
    (root / "experiment.toml").write_text('[qc]\nrules = "rules.toml"\n')
    e = load_experiment(root)
    (root / "rules.toml").write_text('[tem]\nmin_vesicles = "1"\n')   # broken after loading
    out = tmp_path / "out"
    with pytest.raises(RulesError, match=r'min_vesicles = "1": must be a whole number'):
        run_experiment(e, out, workers=0, progress=False)
    assert not (out / ".cache").exists() and not (out / "overlays").exists() and not (out / "images.csv").exists()


# --------------------------------------------------------------------------- command line


def _cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "exoimage", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def _assert_cli_error(r, expected: str, out: Path):
    assert r.returncode == 2, (r.returncode, r.stderr)
    err = r.stderr.strip()
    assert "Traceback" not in err and "\n" not in err, err
    assert expected in err, err
    assert not out.exists(), "nothing may be written for a bad option"


@pytest.fixture(scope="module")
def real_inputs(tmp_path_factory):
    """A real TEM image and a real blot: a check that came too late would analyse them."""
    import tifffile

    from exoimage.simulate.blot import simulate_blot

    d = tmp_path_factory.mktemp("inputs")
    _real_tem(d / "tem" / "S1" / "a.tif")
    (d / "blots").mkdir()
    tifffile.imwrite(d / "blots" / "CD63.tif", simulate_blot(n_lanes=4, height=200, seed=1).data)
    return d


@pytest.mark.parametrize("args,expected", [
    (["--min-diameter", "-5"], "exoimage tem: error: argument --min-diameter: min_diameter_nm = -5: must be a number > 0 nm"),
    (["--min-diameter", "50", "--max-diameter", "40"],
     "exoimage tem: error: argument --min-diameter: min_diameter_nm = 50.0: must be less than max_diameter_nm (40.0)"),
    (["--pixel-size", "1e300"], "argument --pixel-size: pixel_size_nm = 1e300: must be a number from 0.0001 to 1e+07 nm"),
], ids=["tem min diameter -5", "tem min > max", "tem pixel size 1e300"])
def test_tem_bad_options_subprocess(real_inputs, tmp_path, args, expected):
    out = tmp_path / "out"
    _assert_cli_error(_cli("tem", real_inputs / "tem", "--out", out, *args), expected, out)


@pytest.mark.parametrize("args,expected", [
    (["--lanes", "1e9"], "exoimage blot: error: argument --lanes: n_lanes = 1e9: must be a whole number from 1 to 100"),
    (["--ladder-kda", "250,150"], "argument --ladder-kda: ladder_kda = [250.0, 150.0]: needs ladder_lane as well"),
], ids=["blot lanes 1e9", "blot ladder kDa without lane"])
def test_blot_bad_options_subprocess(real_inputs, tmp_path, args, expected):
    out = tmp_path / "out"
    _assert_cli_error(_cli("blot", real_inputs / "blots", "--out", out, *args), expected, out)


@pytest.mark.parametrize("setup,expected", [
    (lambda r: (r / "experiment.toml").write_text("[tem]\nmin_diameter_nm = 0\n"),
     "[tem] min_diameter_nm = 0: must be a number > 0 nm"),
    (lambda r: ((r / "rules.toml").write_text('[tem]\nmin_vesicles = "100"\n'),
                (r / "experiment.toml").write_text('[qc]\nrules = "rules.toml"\n')),
     'rules.toml: [tem] min_vesicles = "100": must be a whole number >= 0'),
    (lambda r: (r / "experiment.toml").mkdir(), "experiment.toml: a folder, not a TOML file"),
], ids=["run min diameter 0", "run rules value text", "run experiment.toml folder"])
def test_run_bad_config_subprocess(tmp_path, setup, expected):
    root = tmp_path / "exp"
    _real_tem(root / "tem" / "S1" / "a.tif")
    setup(root)
    out = tmp_path / "out"
    r = _cli("run", root, "--out", out, "--workers", "0", "--no-progress")
    _assert_cli_error(r, "exoimage run: " + str(root) + "/", out)
    assert expected in r.stderr


TEM_BAD = [
    ("--min-diameter", "0"), ("--min-diameter", "nan"), ("--min-diameter", "abc"), ("--max-diameter", "-1"),
    ("--max-diameter", "inf"), ("--min-contrast", "nan"), ("--min-contrast", "-1"), ("--pixel-size", "0"),
    ("--pixel-size", "-2"), ("--pixel-size", "nan"), ("--pixel-size", "1e-9"), ("--pixel-size", "0.8nm"),
    ("--polarity", "sideways"),
]
BLOT_BAD = [
    ("--lanes", "0"), ("--lanes", "101"), ("--lanes", "2.5"), ("--lane-bounds", "9-3"), ("--lane-bounds", "a-b"),
    ("--lane-bounds", "5"), ("--ball-radius", "0"), ("--ball-radius", "nan"), ("--min-snr", "0"),
    ("--min-snr", "inf"), ("--ladder-lane", "0"), ("--ladder-kda", "250"), ("--ladder-kda", "250,x"),
    ("--ladder-kda", "250,-5"), ("--target-row", "0"), ("--target-row", "x"), ("--control-row", "1.5"),
    ("--target-kda", "-5"), ("--target-kda", "heavy"), ("--control-kda", "nan"), ("--reference-lane", "0"),
    ("--polarity", "up"), ("--background", "magic"), ("--control-image", "/no/such.tif"),
    ("--total-protein-image", "."), ("--lane-sheet", "/no/such.csv"),
]


@pytest.mark.parametrize("command,flag,value", [("tem", *c) for c in TEM_BAD] + [("blot", *c) for c in BLOT_BAD],
                         ids=[f"tem {f} {v}" for f, v in TEM_BAD] + [f"blot {f} {v}" for f, v in BLOT_BAD])
def test_every_bad_option_in_process(tmp_path, capsys, command, flag, value):
    from exoimage.cli import main

    (tmp_path / "a.tif").write_bytes(b"junk")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as ei:
        main([command, str(tmp_path / "a.tif"), "--out", str(out), f"{flag}={value}"])
    assert ei.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"exoimage {command}: error: argument {flag}"), err
    assert not out.exists()


def test_out_that_is_a_file(tmp_path, capsys):
    from exoimage.cli import main

    (tmp_path / "a.tif").write_bytes(b"junk")
    out = tmp_path / "out.txt"
    out.write_text("a file")
    for command in ("tem", "blot"):
        with pytest.raises(SystemExit) as ei:
            main([command, str(tmp_path / "a.tif"), "--out", str(out)])
        assert ei.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err == f"exoimage {command}: error: argument --out: {out}: exists and is not a folder"
    assert out.read_text() == "a file"


def test_good_options_still_run(real_inputs, tmp_path):
    from exoimage.cli import main

    out = tmp_path / "out"
    assert main(["tem", str(real_inputs / "tem"), "--out", str(out), "--min-diameter", "20",
                 "--max-diameter", "500", "--pixel-size", "2", "--polarity", "light"]) == 0
    assert (out / "vesicles.csv").exists()
