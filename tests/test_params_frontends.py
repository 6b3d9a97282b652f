"""Every parameter of every analysis is settable in every front end, under one name (issue 11).

The test walks the dataclass fields of TemParams, BlotParams and NormalizationSpec (not a
hand-kept list: a new field is tested, or fails, by itself). For each field it makes a
valid value different from the default, from the field's own rules, and checks that it
reaches the parameters object through

(a) the command line (``exoimage tem`` / ``exoimage blot`` options),
(b) experiment.toml (``load_experiment`` -> the task's parameters),
(c) the batch's construction of the parameters from those options,
(d) the napari plugin's forms (the dock widgets built headless, the form's editor set
    as a user would, the parameters read back).
"""

from __future__ import annotations

import ast
import importlib.util
import json
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest

from exoimage.experiment import batch
from exoimage.blot import BlotParams
from exoimage.blot.plan import NormalizationSpec
from exoimage.cli import build_parser
from exoimage.cli import blot as cli_blot
from exoimage.cli import tem as cli_tem
from exoimage.experiment import ExperimentError, load_experiment
from exoimage.params import (ParamError, cli_option, from_mapping, param_defaults, param_meta, reference_table,
                             reword, toml_names)
from exoimage.tem import TemParams

REPO = Path(__file__).resolve().parents[1]
CLASSES = (TemParams, BlotParams, NormalizationSpec)
CASES = [(cls, f.name) for cls in CLASSES for f in fields(cls)]
IDS = [f"{cls.__name__}.{name}" for cls, name in CASES]


# --------------------------------------------------------------------------- values from the rules


def _number(meta, default, integer):
    lo, hi = meta.get("min"), meta.get("max")
    base = default if default is not None else (lo if lo is not None else 0)
    v = base + (1 if integer else 0.5) if hi is None or base + 1 <= hi else (base + hi) / 2
    if lo is not None and (v < lo or (meta.get("min_exclusive") and v <= lo)):
        v = lo + 1
    v = int(v) if integer else float(v)
    assert v != default and (hi is None or v <= hi), (meta, v)
    return v


def other_value(name, meta, default, tmp_path):
    """(value, command-line text): a valid value of the field that is not its default."""
    t = meta["type"]
    if t == "bool":
        return (not default), None
    if t == "str":
        v = next(c for c in meta["choices"] if c != default)
        return v, v
    if t in ("int", "float"):
        v = _number(meta, default, t == "int")
        return v, str(v)
    if t == "float_list":
        return [250.0, 150.0], "250,150"
    if t == "int_list":
        return [2], "2"
    if t == "int_pairs":
        return [(10, 40), (50, 80)], "10-40,50-80"
    if t == "kda_range":
        return "30-60", "30-60"
    if t == "path":
        f = tmp_path / "exp" / "blots" / f"{name}.tif"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"junk: never read")
        return f, str(f)
    raise AssertionError(f"no test value for type {t}")


def case_values(cls, name, tmp_path):
    """{field: (value, text)}: the field's value and the values of the fields it needs."""
    metas, defaults = param_meta(cls), param_defaults(cls)
    assert name in metas, f"{cls.__name__}.{name} has no rules (metadata)"
    out = {name: other_value(name, metas[name], defaults[name], tmp_path)}
    need = metas[name].get("requires")
    if need:
        out[need] = other_value(need, metas[need], defaults[need], tmp_path)
    return out


def _same(got, want):
    if isinstance(want, Path):
        return got is not None and Path(got).resolve() == want.resolve()
    if isinstance(want, list):
        return list(map(tuple, got) if want and isinstance(want[0], tuple) else got) == want
    return got == want and type(got) is type(want)


def _toml(v, tmp_path):
    if isinstance(v, Path):
        return json.dumps(str(v.relative_to(tmp_path / "exp" / "blots")))
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x, tmp_path) for x in v) + "]"
    return repr(v)


# --------------------------------------------------------------------------- (a) command line


def _argv(cls, values):
    argv = []
    for name, (v, text) in values.items():
        flag = cli_option(name, param_meta(cls)[name])
        assert flag, f"{cls.__name__}.{name} has no command-line option"
        if text is None:  # a bool: --name / --no-name
            argv.append(flag if v else "--no-" + flag[2:])
        else:
            argv.append(f"{flag}={text}")
    return argv


@pytest.mark.parametrize("cls,name", CASES, ids=IDS)
def test_settable_on_the_command_line(cls, name, tmp_path):
    values = case_values(cls, name, tmp_path)
    command = "tem" if cls is TemParams else "blot"
    args = build_parser().parse_args([command, "x.tif", "--out", str(tmp_path / "out"), *_argv(cls, values)])
    if cls is TemParams:
        obj = cli_tem.params_from_args(args)
    else:
        p = cli_blot.params_from_args(args)
        obj = p if cls is BlotParams else cli_blot.spec_from_args(args)
    for n, (v, _) in values.items():
        assert _same(getattr(obj, n), v), (n, getattr(obj, n), v)


def test_command_line_defaults_are_the_dataclass_defaults(tmp_path):
    """Numbers must not change: no option means the library's default."""
    out = str(tmp_path / "out")
    args = build_parser().parse_args(["tem", "x.tif", "--out", out])
    assert cli_tem.params_from_args(args) == TemParams() and args.pixel_size_nm is None
    args = build_parser().parse_args(["blot", "x.tif", "--out", out])
    assert cli_blot.params_from_args(args) == BlotParams() and cli_blot.spec_from_args(args) == NormalizationSpec()


def test_documented_options_still_work(tmp_path):
    """Options named in README / docs keep their names (fields named otherwise keep the old option)."""
    args = build_parser().parse_args(["blot", "x.tif", "--out", str(tmp_path), "--lanes", "8", "--target-row", "1",
                                      "--control-row", "2", "--ball-radius", "40", "--ladder-lane", "1",
                                      "--ladder-kda", "250,150"])
    p, s = cli_blot.params_from_args(args), cli_blot.spec_from_args(args)
    assert (p.n_lanes, p.ball_radius_px, p.ladder_lane, p.ladder_kda) == (8, 40.0, 1, [250.0, 150.0])
    assert (s.target_rows, s.control_rows) == ([1], [2])
    args = build_parser().parse_args(["tem", "x.tif", "--out", str(tmp_path), "--pixel-size", "0.8",
                                      "--min-diameter", "40"])
    assert args.pixel_size_nm == 0.8 and cli_tem.params_from_args(args).min_diameter_nm == 40.0


def test_a_rule_between_options_names_the_option(tmp_path, capsys):
    args = build_parser().parse_args(["tem", "x.tif", "--out", str(tmp_path), "--min-diameter", "500",
                                      "--max-diameter", "400"])
    with pytest.raises(SystemExit):
        cli_tem.params_from_args(args)
    assert capsys.readouterr().err.strip() == ("exoimage tem: error: argument --min-diameter: min_diameter_nm = 500.0:"
                                               " must be less than max_diameter_nm (400.0)")


# --------------------------------------------------------------------------- (b) experiment.toml, (c) the batch


def _experiment(tmp_path, section, values):
    root = tmp_path / "exp"
    (root / "tem" / "S1").mkdir(parents=True, exist_ok=True)
    (root / "blots").mkdir(parents=True, exist_ok=True)
    (root / "tem" / "S1" / "a.tif").write_bytes(b"junk: the loader does not read images")
    (root / "blots" / "CD63.tif").write_bytes(b"junk")
    lines = [f"[{section}]"] + [f"{n} = {_toml(v, tmp_path)}" for n, (v, _) in values.items()]
    (root / "experiment.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_experiment(root)


@pytest.mark.parametrize("cls,name", CASES, ids=IDS)
def test_settable_in_experiment_toml_and_the_batch(cls, name, tmp_path):
    values = case_values(cls, name, tmp_path)
    exp = _experiment(tmp_path, "tem" if cls is TemParams else "blots.CD63", values)
    if cls is TemParams:
        given = exp.tem_params                                 # (b) what the TEM tasks get
        obj = from_mapping(TemParams, exp.tem_params)          # (c) as batch._process_tem builds it
    else:
        (task,) = [t for t in exp.blots if t.rel == "blots/CD63.tif"]
        given = task.blot.options                              # (b) the blot task's options
        obj = (batch._blot_params(given) if cls is BlotParams  # (c) as batch._process_blot builds them
               else NormalizationSpec.from_mapping(given))
    for n, (v, _) in values.items():
        assert n in given, f"{n} not in the task's parameters {given}"
        assert _same(given[n], v) and _same(getattr(obj, n), v), (n, given[n], getattr(obj, n), v)
    others = {f.name for f in fields(cls)} - set(values)
    assert all(getattr(obj, n) == param_defaults(cls)[n] for n in others)


def test_older_experiment_toml_spellings_still_load(tmp_path):
    """``lanes``, ``target_row``, ``control_row`` (documented before) mean the fields; both spellings: an error."""
    root = tmp_path / "exp"
    _experiment(tmp_path, "blots.CD63", {})
    (root / "experiment.toml").write_text("[blots.CD63]\nlanes = 8\ntarget_row = [1]\ncontrol_row = [2]\n")
    opts = load_experiment(root).blots[0].blot.options
    assert opts == {"n_lanes": 8, "target_rows": [1], "control_rows": [2]}
    assert batch._blot_params(opts).n_lanes == 8 and NormalizationSpec.from_mapping(opts).target_rows == [1]
    (root / "experiment.toml").write_text("[blots.CD63]\nlanes = 8\nn_lanes = 7\n")
    with pytest.raises(ExperimentError, match=r"\[blots.CD63\] n_lanes = 7: lanes and n_lanes are the same "
                                              r"parameter \(n_lanes\); give it once"):
        load_experiment(root)


def test_batch_defaults_are_the_dataclass_defaults():
    assert batch._blot_params({}) == BlotParams() and from_mapping(TemParams, {}) == TemParams()
    assert NormalizationSpec.from_mapping({"marker": "CD63", "control_marker": "GAPDH"}) == NormalizationSpec()
    with pytest.raises(ParamError, match="min_snr = 0: must be a number > 0 noise SD"):
        batch._blot_params({"min_snr": 0})


# --------------------------------------------------------------------------- (d) the plugin's forms


def _qt_problem():
    """The napari tests' own check that Qt can start here (tests/napari/conftest.py)."""
    spec = importlib.util.spec_from_file_location("_napari_conftest", REPO / "tests" / "napari" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod._qt_problem()


@pytest.fixture(scope="module")
def qt_ok():
    pytest.importorskip("napari")
    pytest.importorskip("pytestqt")
    pytest.importorskip("napari_exoimage")
    problem = _qt_problem()
    if problem:
        pytest.skip(problem)


@pytest.fixture
def widgets(qt_ok, make_napari_viewer):
    from napari_exoimage._blot_widget import BlotWidget
    from napari_exoimage._vesicle_widget import VesicleWidget

    viewer = make_napari_viewer()
    return VesicleWidget(viewer), BlotWidget(viewer)


def _form_of(widgets, cls):
    ves, blot = widgets
    return {TemParams: (ves.tem_form, ves.params), BlotParams: (blot.blot_form, blot.params),
            NormalizationSpec: (blot.norm_form, blot.norm_spec)}[cls]


def _set_like_a_user(editor, value, text):
    from napari_exoimage._forms import BoolEditor, ChoiceEditor, OptionalNumberEditor, TextEditor

    if isinstance(editor, OptionalNumberEditor):
        editor.auto.setChecked(False)
        editor.spin.setValue(value)
    elif isinstance(editor, BoolEditor):
        editor.setChecked(value)
    elif isinstance(editor, ChoiceEditor):
        editor.setCurrentText(value)
    elif isinstance(editor, TextEditor):
        editor.setText(text)
    else:
        editor.setValue(value)


def test_settable_in_the_plugin_forms(widgets, tmp_path):
    for cls, name in CASES:
        form, read = _form_of(widgets, cls)
        assert read() == cls(), f"{cls.__name__}: the form's defaults are not the library's"
        values = case_values(cls, name, tmp_path)
        for n, (v, text) in values.items():
            _set_like_a_user(form.editors[n], v, text)
        obj = read()
        for n, (v, _) in values.items():
            assert _same(getattr(obj, n), v), (cls.__name__, n, getattr(obj, n), v)
        form.set_params(cls())  # back to the defaults for the next field
        assert read() == cls()


def test_plugin_errors_speak_of_the_form(widgets, monkeypatch):
    from napari_exoimage._forms import FormError

    ves, blot = widgets
    messages = []
    monkeypatch.setattr("napari_exoimage._common.notify_error", messages.append)
    ves.tem_form.editors["min_diameter_nm"].setValue(0)
    with pytest.raises(FormError, match=r"^Min diameter \(nm\): must be a number > 0 nm$"):
        ves.params()
    ves.tem_form.editors["min_diameter_nm"].setValue(500)
    ves.tem_form.editors["max_diameter_nm"].setValue(400)
    with pytest.raises(FormError, match=r"^Min diameter \(nm\): must be less than Max diameter \(nm\) \(400.0\)$"):
        ves.params()
    assert ves.tem_form.editors["min_diameter_nm"].styleSheet()  # the editor is marked
    blot.ladder_kda.setText("250,x")
    with pytest.raises(FormError, match=r"^Ladder weights \(kDa\): must be a list of 2 to 30 items"):
        blot.params()
    blot.ladder_kda.setText("250,150")
    with pytest.raises(FormError, match=r"^Ladder weights \(kDa\): needs Ladder lane as well$"):
        blot.params()
    # a library message naming parameters, as the plugin shows it
    blot._error("x.tif: no lanes found (give the count, n_lanes, or the boundaries, lane_bounds)")
    assert messages[-1] == 'x.tif: no lanes found (give the count, "Lanes", or the boundaries, "Lane bounds")'
    assert "--" not in blot.status.text()


def test_plugin_quantify_uses_the_normalisation_form(qt_ok, make_napari_viewer, qtbot):
    """Quantify normalises as the form says, also by weight (not only by row numbers)."""
    from exoimage.blot.normalize import rows_by_kda
    from napari_exoimage._blot_widget import BlotWidget
    from napari_exoimage._sample_data import sample_blot

    viewer = make_napari_viewer()
    (data, kw, _), = sample_blot()
    viewer.add_image(data, **kw)
    w = BlotWidget(viewer)
    w.ladder_lane.setValue(1)
    w.ladder_kda.setText(",".join(str(k) for k in kw["metadata"]["exoimage"]["ladder_kda"]))
    w.detect()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert w.detected is not None, w.status.text()
    truth = kw["metadata"]["exoimage"]["truth_bands"]
    kda = float(truth.loc[truth["name"] == "alix", "kda"].iloc[0])  # 96 kDa
    w.norm_form.editors["target_kda"].setText(f"{kda:g}")
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    by_kda = w.normalized
    assert by_kda is not None, w.status.text()
    rows = rows_by_kda(w.result.bands, f"{kda:g}")
    w.norm_form.editors["target_kda"].setText("")
    w.target_rows.setText(",".join(map(str, rows)))
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert by_kda["target_rows"].iloc[0] == ",".join(map(str, rows))
    pd.testing.assert_frame_equal(by_kda, w.normalized)
    # both ways at once: the rule between the two fields, in the form's words
    w.norm_form.editors["target_kda"].setText(f"{kda:g}")
    w.quantify()
    qtbot.waitUntil(lambda: not w.busy, timeout=60000)
    assert "Target rows: give Target rows or Target weight (kDa), not both" in w.status.text()


# --------------------------------------------------------------------------- one vocabulary


def _strings(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    for child in ast.iter_child_nodes(node):
        yield from _strings(child)


#: library texts that may name an option: a command to type, not a parameter's name
#: (exoimage/experiment/batch.py: the error row of an image whose earlier failure is remembered)
NAMES_A_COMMAND = {"RETRY_HINT"}


def _names_an_option(s: str) -> bool:
    return any(part[:1].isalpha() for part in f" {s}".split(" --")[1:])


def test_library_messages_never_name_a_command_line_option():
    """Errors and warnings of the library speak of parameters (``pixel_size_nm``), not of options
    (``--pixel-size``): the plugin shows them too. Only exoimage/cli/ words them as options.
    Scanned: the strings of every ``raise``, of every ``...Error(...)`` and ``warnings.append(...)``
    call, and module-level text constants (``NO_PIXEL_SIZE``)."""
    bad = []
    for path in sorted((REPO / "exoimage").rglob("*.py")):
        if "cli" in path.relative_to(REPO / "exoimage").parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module-level constants
            if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets):
                if not {t.id for t in node.targets} & NAMES_A_COMMAND and isinstance(node.value, (ast.Constant,
                                                                                                   ast.JoinedStr)):
                    bad += [f"{path.relative_to(REPO)}:{node.lineno}: {s!r}" for s in _strings(node.value)
                            if _names_an_option(s)]
        for node in ast.walk(tree):
            call = node.exc if isinstance(node, ast.Raise) else node
            if not isinstance(call, ast.Call):
                continue
            f = call.func
            is_warning = isinstance(f, ast.Attribute) and f.attr == "append" and "warn" in ast.unparse(f.value)
            if isinstance(node, ast.Raise) or is_warning or ast.unparse(f).endswith("Error"):
                bad += [f"{path.relative_to(REPO)}:{node.lineno}: {s!r}" for s in _strings(call) if _names_an_option(s)]
    assert not bad, "\n".join(bad)


def test_reword():
    assert reword("no pixel size: give pixel_size_nm (nm per pixel)", {"pixel_size_nm": "--pixel-size"}) == \
        "no pixel size: give --pixel-size (nm per pixel)"
    assert reword("n_lanes_x and xn_lanes stay; n_lanes goes", {"n_lanes": "N"}) == "n_lanes_x and xn_lanes stay; N goes"


def test_one_name_per_parameter():
    """The experiment.toml key is the field name; an alias never shadows another field."""
    for cls in CLASSES:
        names = toml_names(cls)
        assert all(names[f] == f for f in param_meta(cls))
    keys = [k for cls in (BlotParams, NormalizationSpec) for k in toml_names(cls)]
    assert len(keys) == len(set(keys)), "a [blots.X] key belongs to two parameters"


def test_docs_list_every_parameter():
    """docs/parameters.md holds the tables generated from the metadata (``reference_table(cls)``:
    paste its output there when a field changes)."""
    text = (REPO / "docs" / "parameters.md").read_text(encoding="utf-8")
    for cls in CLASSES:
        assert reference_table(cls) in text, f"docs/parameters.md: the {cls.__name__} table is out of date"
