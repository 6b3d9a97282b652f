"""Parameter forms generated from the parameters' metadata (:mod:`exoimage.params`).

One :class:`ParamForm` per parameter dataclass (TemParams, BlotParams,
NormalizationSpec): every field is an editor built from its rules - a spin box
with the field's bounds, unit suffix and help as tooltip for a number; an "auto"
box beside it when the value may be left to the analysis (None); a combo box for
choices; a check box for on/off; a text box for lists, ranges and file names,
written as on the command line (``250,150,100``, ``40-90,110-160``). Fields marked
``advanced`` go into a collapsible "Advanced" group. Values are checked by the
library's own rules (:func:`exoimage.params.validate_mapping`); a refused value is
a :class:`FormError` worded with the form's labels (``Min diameter (nm): must be a
number > 0 nm``) and its editor turns red.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout,
                            QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from exoimage.params import ParamError, cli_help, label_of, param_defaults, param_meta, reword, validate_mapping

__all__ = ["ParamForm", "FormError", "gui_words"]

#: a spin box's limits when the parameter has no bound (Qt needs one): far beyond any real value
SPIN_LIMIT = 1e9
INT_SPIN_LIMIT = 2 ** 31 - 1
#: background of an editor whose value was refused (the colour the widgets use for "missing")
ERROR_STYLE = "background-color: #6a2020"


class FormError(ValueError):
    """A form value the parameter's rules refuse, worded for the form's user;
    ``field`` is the parameter."""

    def __init__(self, text: str, field: str):
        super().__init__(text)
        self.field = field


def _tooltip(meta: dict, default) -> str:
    return cli_help(meta, default).replace("%%", "%")


def _configure_spin(s, meta: dict, tip: str):
    integer = meta["type"] == "int"
    limit = INT_SPIN_LIMIT if integer else SPIN_LIMIT
    lo = meta["min"] if meta.get("min") is not None else -limit
    hi = meta["max"] if meta.get("max") is not None else limit
    if not integer:
        dec = int(meta.get("decimals", 3))
        s.setDecimals(dec)
        s.setSingleStep(10.0 ** -(dec - 1) if dec > 1 else 1.0)
    s.setRange(int(lo) if integer else float(lo), int(hi) if integer else float(hi))
    if meta.get("unit"):
        s.setSuffix(f" {meta['unit']}")
    s.setToolTip(tip)


class _SpinEditor:
    """A spin box made from a parameter's metadata; ``_cast`` is the value's type."""

    _cast = float

    def __init__(self, meta: dict, tip: str):
        super().__init__()
        _configure_spin(self, meta, tip)

    def param_value(self):
        return self.value()

    def set_param_value(self, v):
        self.setValue(self._cast(v))


class IntEditor(_SpinEditor, QSpinBox):
    _cast = int


class FloatEditor(_SpinEditor, QDoubleSpinBox):
    _cast = float


class OptionalNumberEditor(QWidget):
    """A spin box and an "auto" (or "none") box: checked, the value is None (the analysis decides)."""

    def __init__(self, meta: dict, tip: str):
        super().__init__()
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.spin = IntEditor(meta, tip) if meta["type"] == "int" else FloatEditor(meta, tip)
        self.auto = QCheckBox("none" if meta.get("auto") == "none" else "auto")
        self.auto.setToolTip(f"{self.auto.text()}: {meta.get('auto', 'not given')}")
        row.addWidget(self.spin, 1)
        row.addWidget(self.auto)
        self.auto.toggled.connect(lambda on: self.spin.setEnabled(not on))
        self.setToolTip(tip)

    def param_value(self):
        return None if self.auto.isChecked() else self.spin.value()

    def set_param_value(self, v):
        self.auto.setChecked(v is None)
        if v is not None:
            self.spin.set_param_value(v)

    # a spin box's API, for code that sets a number directly
    def value(self):
        return self.param_value()

    def setValue(self, v):  # noqa: N802 - Qt's name
        self.set_param_value(v)


class BoolEditor(QCheckBox):
    def __init__(self, meta: dict, tip: str):
        super().__init__()
        self.setToolTip(tip)

    def param_value(self):
        return self.isChecked()

    def set_param_value(self, v):
        self.setChecked(bool(v))


class ChoiceEditor(QComboBox):
    """A list of choices; an optional parameter's first item is empty ("not given": None)."""

    def __init__(self, meta: dict, tip: str):
        super().__init__()
        self.optional = bool(meta.get("optional"))
        self.addItems(([""] if self.optional else []) + [str(c) for c in meta["choices"]])
        self.setToolTip(tip)

    def param_value(self):
        text = self.currentText()
        return None if self.optional and not text else text

    def set_param_value(self, v):
        self.setCurrentText("" if v is None else str(v))


def _text_of(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return ",".join("-".join(str(x) for x in p) if isinstance(p, (list, tuple)) else f"{p:g}" for p in v)
    return str(v)


class TextEditor(QLineEdit):
    """Lists, ranges, weights, file names: the text is parsed like a command-line option;
    empty is "not given"."""

    def __init__(self, meta: dict, tip: str):
        super().__init__()
        self.setToolTip(tip)
        if meta.get("optional"):
            self.setPlaceholderText(meta.get("auto", ""))
        self.row_widget = self
        if meta["type"] == "path":
            holder = QWidget()
            row = QHBoxLayout(holder)
            row.setContentsMargins(0, 0, 0, 0)
            browse = QPushButton("…")
            browse.setToolTip("choose the file")
            browse.setMaximumWidth(32)
            browse.clicked.connect(lambda: self._pick(meta.get("label", "file")))
            row.addWidget(self, 1)
            row.addWidget(browse)
            self.row_widget = holder

    def _pick(self, title):
        path, _ = QFileDialog.getOpenFileName(self, title)
        if path:
            self.setText(path)

    def param_value(self):
        text = self.text().strip()
        return text or None

    def set_param_value(self, v):
        self.setText(_text_of(v))


def make_editor(meta: dict, default):
    """The editor of one parameter: a QWidget with ``param_value()`` and ``set_param_value(v)``."""
    t, tip = meta["type"], _tooltip(meta, default)
    if t in ("int", "float"):
        cls = OptionalNumberEditor if meta.get("optional") else (IntEditor if t == "int" else FloatEditor)
    elif t == "bool":
        cls = BoolEditor
    elif t == "str" and meta.get("choices"):
        cls = ChoiceEditor
    else:
        cls = TextEditor
    ed = cls(meta, tip)
    ed.set_param_value(default)
    return ed


class ParamForm:
    """A Qt form for a parameter dataclass, generated from its fields' metadata.

    Parameters
    ----------
    cls : parameter dataclass
        TemParams, BlotParams, NormalizationSpec.
    advanced_title : str
        Title of the collapsible group of the ``advanced`` fields.

    Attributes
    ----------
    widget : QWidget
        The form, to add to a layout.
    editors : dict
        Field name -> editor.
    """

    def __init__(self, cls, *, advanced_title: str = "Advanced"):
        self.cls = cls
        self.metas = param_meta(cls)
        self.defaults = param_defaults(cls)
        self.editors: dict = {}
        self.widget = QWidget()
        lay = QVBoxLayout(self.widget)
        lay.setContentsMargins(0, 0, 0, 0)
        self.form = QFormLayout()
        lay.addLayout(self.form)
        self.advanced = None
        adv_form = None
        if any(m.get("advanced") for m in self.metas.values()):
            from superqt import QCollapsible  # a napari dependency

            self.advanced = QCollapsible(advanced_title)
            inner = QWidget()
            adv_form = QFormLayout(inner)
            adv_form.setContentsMargins(0, 0, 0, 0)
            self.advanced.addWidget(inner)
            lay.addWidget(self.advanced)
        for name, meta in self.metas.items():
            ed = make_editor(meta, self.defaults[name])
            self.editors[name] = ed
            (adv_form if meta.get("advanced") else self.form).addRow(self._row_label(name), ed.row_widget
                                                                     if hasattr(ed, "row_widget") else ed)

    def label(self, name: str) -> str:
        """The parameter's name in this form's messages: ``Min diameter (nm)``."""
        meta = self.metas[name]
        unit = meta.get("unit")
        return f"{label_of(name, meta)} ({unit})" if unit else label_of(name, meta)

    def _row_label(self, name: str) -> str:
        meta = self.metas[name]
        # spin boxes show the unit themselves
        return label_of(name, meta) if meta["type"] in ("int", "float") else self.label(name)

    def words(self) -> dict:
        """``{field name: '"Label"'}``: the form's names for parameters named in library messages."""
        return {n: f'"{label_of(n, m)}"' for n, m in self.metas.items() if "_" in n}

    def values(self) -> dict:
        """``{field name: value}`` of the form, checked by the parameters' rules.

        Raises
        ------
        FormError
        """
        raw = {n: ed.param_value() for n, ed in self.editors.items()}
        for ed in self.editors.values():
            ed.setStyleSheet("")
        try:
            return validate_mapping(self.cls, raw, text=True, label=self.label)
        except ParamError as exc:
            ed = self.editors.get(exc.field)
            if ed is not None:
                ed.setStyleSheet(ERROR_STYLE)
                if self.advanced is not None and self.metas[exc.field].get("advanced"):
                    self.advanced.expand(animate=False)
            raise FormError(f"{exc.key}: {exc.problem}", exc.field) from None

    def params(self):
        """The parameters object, ``cls(...)``, of the form's values.

        Raises
        ------
        FormError
        """
        vals = self.values()
        for n, v in vals.items():
            if self.metas[n]["type"] == "path" and v is not None:
                vals[n] = Path(v)
        return self.cls(**vals)

    def set_params(self, obj) -> None:
        """Show the values of a parameters object (or of a mapping by field name)."""
        vals = obj if isinstance(obj, dict) else {n: getattr(obj, n) for n in self.editors}
        for n, v in vals.items():
            self.editors[n].set_param_value(v)


def gui_words(message: str, *forms, extra: dict | None = None) -> str:
    """A library message with the parameter names it mentions replaced by the forms' labels
    (``give pixel_size_nm`` -> ``give "Pixel size"``)."""
    names = {}
    for f in forms:
        names.update(f.words())
    names.update(extra or {})
    return reword(str(message), names)
