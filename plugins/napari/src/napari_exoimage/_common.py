"""Shared helpers: Image <-> napari layer, notifications, tables, matplotlib canvas.

No image processing here: numbers come from ``exoimage``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from exoimage.calibration import register_calibration_source
from exoimage.io import Image, ImageReadError, sha256_file, unit_to_nm

META_KEY = "exoimage"
#: warning codes of the library that matter only for sizes in nm (TEM): the reader does not notify
#: them and the blot dock does not list them (a blot needs no pixel size); the vesicle widget marks a
#: missing pixel size itself
CALIBRATION_ONLY_WARNINGS = frozenset({"scale_bar_missing"})

# the pixel-size sources the plugin adds to the library's (QC trusts them like a file's own calibration)
register_calibration_source("layer scale", trusted=True, description="from the napari layer's scale in nm")
register_calibration_source("simulated", trusted=True, description="the simulator's pixel size (sample data)")


# --------------------------------------------------------------------------
# Image <-> layer


def image_layer_kwargs(img: Image, name: str | None = None, **extra) -> dict:
    """``add_image`` keyword arguments for an exoimage Image: physical scale in nm with units."""
    px = img.pixel_size_nm
    meta = {
        "pixel_size_nm": px,
        "pixel_size_source": img.pixel_size_source,
        "white_is_zero": bool(img.white_is_zero),
        "file_format": img.file_format,
        "was_rgb": bool(img.was_rgb),
        "path": img.path,
        "warnings": list(img.warnings),
        # the scale-bar reading and the annotation mask of read_image(..., scale_bar="auto"):
        # image_from_layer gives them back, so the widget measures as `exoimage tem` does
        "scale_bar": {k: v for k, v in img.metadata.items() if k.startswith("scale_bar")},
        "annotation_mask": img.annotation_mask,
    }
    meta.update(extra.pop("meta", {}))
    kw = dict(
        name=name or (Path(img.path).stem if img.path else "image"),
        metadata={META_KEY: meta},
        colormap="gray_r" if img.white_is_zero else "gray",
    )
    lo, hi = _display_range(img.data)
    if hi > lo:
        kw["contrast_limits"] = (lo, hi)  # display only: the layer holds the raw values
    if px:
        kw["scale"] = (px, px)
        kw["units"] = ("nm", "nm")
    kw.update(extra)
    return kw


def _display_range(data):
    """Contrast limits from the 0.5th and 99.5th percentiles (saturated spots and hot pixels
    would otherwise wash out the picture)."""
    d = np.asarray(data)
    step = max(1, int(np.ceil(np.sqrt(d.size / 250_000))))
    sub = d[::step, ::step].astype(np.float64)
    lo, hi = np.percentile(sub, [0.5, 99.5])
    return float(lo), float(hi)


def layer_name_for_tables(layer) -> str:
    """The ``image`` column value: the file name when the layer came from a file, else the layer name."""
    meta = layer.metadata.get(META_KEY, {}) if hasattr(layer, "metadata") else {}
    path = meta.get("path") or getattr(getattr(layer, "source", None), "path", None)
    return Path(path).name if path else str(layer.name)


def layer_pixel_size(layer) -> tuple[float | None, str]:
    """(pixel size in nm, where it came from) for an Image layer."""
    meta = layer.metadata.get(META_KEY, {})
    if meta.get("pixel_size_nm"):
        return float(meta["pixel_size_nm"]), str(meta.get("pixel_size_source", "file"))
    try:
        unit = str(layer.units[-1])
        sc = float(layer.scale[-1])
    except Exception:  # noqa: BLE001 - old napari without units
        return None, "none"
    f = unit_to_nm(unit)  # None for napari's default unit, 'pixel'
    if f:
        return sc * f, "layer scale"
    return None, "none"


def image_from_layer(layer, pixel_size_nm: float | None, *, source: str | None = None) -> Image:
    """An exoimage Image for a napari Image layer (raises ImageReadError with the CLI's wording)."""
    name = layer_name_for_tables(layer)
    meta = layer.metadata.get(META_KEY, {})
    path = meta.get("path") or getattr(getattr(layer, "source", None), "path", None) or name
    if getattr(layer, "multiscale", False):
        raise ImageReadError(path, "multiscale (pyramid) layers are not supported; open a single image")
    data = np.asarray(layer.data)
    if getattr(layer, "rgb", False) and data.ndim == 3 and data.shape[-1] in (3, 4):
        rgb = data[..., :3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            data = np.ascontiguousarray(rgb[..., 0])
        else:
            raise ImageReadError(path, "colour (RGB) layer: open the file with the exoimage reader, "
                                       "which converts it to grey")
    if data.ndim != 2:
        raise ImageReadError(path, f"expected a 2-D image, got shape {data.shape}")
    if data.size == 0:
        raise ImageReadError(path, "image has no pixels")
    src = source or ("given" if pixel_size_nm else "none")
    # what the reader found: the annotation mask while the layer holds the file's pixels, the
    # scale-bar reading while the file's own calibration (or the bar's) is the one used
    mask = meta.get("annotation_mask")
    mask = mask if isinstance(mask, np.ndarray) and mask.shape == data.shape else None
    bar = dict(meta.get("scale_bar") or {}) if src == meta.get("pixel_size_source") else {}
    return Image(data=data, pixel_size_nm=float(pixel_size_nm) if pixel_size_nm else None,
                 pixel_size_source=src, path=str(path), file_format=meta.get("file_format", "array"),
                 white_is_zero=bool(meta.get("white_is_zero", False)), was_rgb=bool(meta.get("was_rgb", False)),
                 metadata=bar, annotation_mask=mask,
                 warnings=list(meta.get("warnings", [])))


def layer_provenance(layer, params: dict, edits=()):
    """The :class:`~exoimage.experiment.records.Provenance` of results computed from an image layer.

    The file is the one the layer was read from, with the SHA-256 taken when
    the exoimage reader opened it (else of the file as it is now; None when the
    layer came from no file).
    """
    from exoimage.experiment.records import Provenance

    meta = layer.metadata.get(META_KEY, {}) if hasattr(layer, "metadata") else {}
    path = meta.get("path") or getattr(getattr(layer, "source", None), "path", None)
    digest = meta.get("sha256")
    if digest is None and path and Path(path).is_file():
        try:
            digest = sha256_file(path)
        except OSError:
            digest = None
    return Provenance(input_path=str(path) if path else None, sha256=digest, params=dict(params),
                      edits=tuple(edits))


# --------------------------------------------------------------------------
# notifications


def notify_error(message: str) -> None:
    """Show ``message`` as a napari error notification (never a traceback)."""
    from napari.utils.notifications import show_error

    show_error(str(message))


def dismiss_notifications(messages) -> int:
    """Close the napari toasts still shown for ``messages`` (an error is old news once the
    action succeeds); returns how many were closed. Qt's public API only: napari's toast widgets
    are found by class name and their ``message`` label."""
    from qtpy.QtWidgets import QApplication

    wanted = {str(m) for m in messages}
    if not wanted or QApplication.instance() is None:
        return 0
    n = 0
    for w in QApplication.allWidgets():
        if type(w).__name__ != "NapariQtNotification" or not w.isVisible():
            continue
        label = getattr(w, "message", None)
        try:
            text = label.text() if label is not None else None
        except (AttributeError, RuntimeError):
            continue
        if text in wanted:
            w.close()
            n += 1
    return n


def notify_warning(message: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(str(message))


def notify_info(message: str) -> None:
    from napari.utils.notifications import show_info

    show_info(str(message))


# --------------------------------------------------------------------------
# Qt helpers


def fill_table(table, df: pd.DataFrame, columns: list[str], *, row_colors: list | None = None,
               formats: dict | None = None) -> None:
    """Fill a QTableWidget with ``df[columns]``; numbers sort numerically."""
    from qtpy.QtCore import Qt
    from qtpy.QtGui import QColor
    from qtpy.QtWidgets import QTableWidgetItem

    formats = formats or {}
    table.setSortingEnabled(False)
    table.clearContents()
    table.setColumnCount(len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.setRowCount(len(df))
    for i, row in enumerate(df[columns].itertuples(index=False)):
        for j, (col, v) in enumerate(zip(columns, row)):
            item = QTableWidgetItem()
            if isinstance(v, (bool, np.bool_)):
                item.setData(Qt.ItemDataRole.DisplayRole, "yes" if v else "")
            elif isinstance(v, (int, np.integer)):
                item.setData(Qt.ItemDataRole.DisplayRole, int(v))
            elif isinstance(v, (float, np.floating)):
                fv = float(v)
                if np.isfinite(fv):
                    fmt = formats.get(col)
                    item.setData(Qt.ItemDataRole.DisplayRole, float(fmt.format(fv)) if fmt else fv)
                else:
                    item.setData(Qt.ItemDataRole.DisplayRole, "")
            else:
                item.setData(Qt.ItemDataRole.DisplayRole, "" if v is None else str(v))
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            if row_colors and row_colors[i]:
                item.setBackground(QColor(row_colors[i]))
            table.setItem(i, j, item)
    table.setSortingEnabled(True)
    table.resizeColumnsToContents()


def sort_ascending(table, column: int = 0) -> None:
    """Start a sortable table ascending by its first column (the ids): Qt's default sort
    indicator is descending. A column the user clicks later stays their choice."""
    from qtpy.QtCore import Qt

    table.horizontalHeader().setSortIndicator(column, Qt.SortOrder.AscendingOrder)


class MplCanvas:
    """A matplotlib figure embedded as a Qt widget (``.widget``), styled for napari's dark theme."""

    def __init__(self, nrows: int = 1, height: float = 2.4, width: float = 4.0):
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(width, height * nrows), tight_layout=True)
        self.figure.patch.set_facecolor("#262930")
        self.axes = [self.figure.add_subplot(nrows, 1, i + 1) for i in range(nrows)]
        for ax in self.axes:
            self.style(ax)
        self.widget = FigureCanvasQTAgg(self.figure)
        self.widget.setMinimumHeight(int(150 * nrows))

    @staticmethod
    def style(ax):
        ax.set_facecolor("#262930")
        for s in ax.spines.values():
            s.set_color("#d0d0d0")
        ax.tick_params(colors="#d0d0d0", labelsize=8)
        ax.xaxis.label.set_color("#d0d0d0")
        ax.yaxis.label.set_color("#d0d0d0")
        ax.title.set_color("#ffffff")

    def clear(self):
        for ax in self.axes:
            ax.clear()
            self.style(ax)

    def draw(self):
        self.widget.draw_idle()


def render_figure(draw, nrows: int = 1, height: float = 2.4, width: float = 4.0, dpi: float = 100.0):
    """Draw a figure off the GUI thread: ``draw(axes)`` on a new Agg figure styled like
    :class:`MplCanvas`; returns its RGBA pixels (uint8, H x W x 4). A worker can call this
    (the figure is its own; nothing of Qt is touched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height * nrows), dpi=dpi, tight_layout=True)
    fig.patch.set_facecolor("#262930")
    axes = [fig.add_subplot(nrows, 1, i + 1) for i in range(nrows)]
    for ax in axes:
        MplCanvas.style(ax)
    draw(axes)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.array(canvas.buffer_rgba(), copy=True)


class PlotImage:
    """A QLabel (``.widget``) showing the pixels of :func:`render_figure` (a plot drawn in a worker
    costs the GUI thread only the copy onto the screen)."""

    def __init__(self, nrows: int = 1, height: float = 2.4, width: float = 4.0, dpi: float = 100.0):
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import QLabel

        self.size = dict(nrows=nrows, height=height, width=width, dpi=dpi)
        self.widget = QLabel()
        self.widget.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.widget.setMinimumHeight(int(round(height * nrows * dpi)))   # the whole figure, never cropped
        self.widget.setStyleSheet("background-color: #262930")
        self.rgba = None

    def render(self, draw):
        """Pixels of ``draw(axes)`` at this plot's size (any thread)."""
        return render_figure(draw, **self.size)

    def show(self, rgba):
        from qtpy.QtGui import QImage, QPixmap

        self.rgba = np.ascontiguousarray(rgba)
        h, w = self.rgba.shape[:2]
        img = QImage(self.rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
        self.widget.setPixmap(QPixmap.fromImage(img))


def rows_text_to_list(text: str) -> list[int]:
    """``'2, 3'`` -> [2, 3]; raises ValueError with a readable message."""
    out = []
    for part in str(text).replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise ValueError(f"row numbers must be whole numbers separated by commas, got {text!r}") from None
    return out


def camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def show_scale_bar(viewer):
    """Turn napari's scale bar on (units come from the layers)."""
    canvas = getattr(viewer, "canvas", None)
    overlays = getattr(canvas, "overlays", None) if canvas is not None else None
    bar = getattr(overlays, "scale_bar", None) if overlays is not None else None
    (bar if bar is not None else viewer.scale_bar).visible = True


class Failed:
    """A worker's failure passed back as a value (superqt re-raises returned exceptions,
    which would print a traceback): the widget turns it into one notification."""

    def __init__(self, exc: BaseException):
        self.exc = exc


class Cancelled(BaseException):
    """Raised in a worker thread to stop it (a BaseException, so the library's ``except
    Exception`` handlers do not swallow it)."""


class CancelToken:
    """What a job checks between its stages: ``token.check()`` raises :class:`Cancelled`
    once Cancel was pressed. :meth:`cancel` also interrupts a long library call that has no
    stages of its own: :class:`Cancelled` is raised asynchronously in the worker thread, at
    its next Python bytecode (CPython's ``PyThreadState_SetAsyncExc``), so the computation
    stops instead of running on in the background."""

    def __init__(self):
        import threading

        self._event = threading.Event()
        self._lock = threading.Lock()
        self.thread_id = None       # the worker thread while the job runs, else None

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self):
        if self._event.is_set():
            raise Cancelled()

    def cancel(self):
        import ctypes

        self._event.set()
        with self._lock:
            tid = self.thread_id
            if tid is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), ctypes.py_object(Cancelled))

    def _enter(self):
        import threading

        with self._lock:
            self.thread_id = threading.get_ident()

    def _leave(self):
        import ctypes

        with self._lock:
            tid, self.thread_id = self.thread_id, None
            if tid is not None and self._event.is_set():
                # an interrupt not yet delivered must not hit the thread's next job
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), None)


def _guarded(fn, args, token):
    """Run ``fn(*args)`` in the worker thread (``token=`` too when ``fn`` takes one); a failure
    comes back as :class:`Failed`, a cancelled job as :class:`Cancelled`."""
    import inspect

    try:
        try:
            token._enter()
            token.check()
            kw = {"token": token} if "token" in inspect.signature(fn).parameters else {}
            return fn(*args, **kw)
        finally:
            token._leave()
    except Cancelled as exc:
        return exc
    except Exception as exc:  # noqa: BLE001
        return Failed(exc)


class BackgroundJobs:
    """Mixin for the dock widgets: one library call at a time in a napari thread worker.

    The widget provides ``run_btn``, ``cancel_btn``, ``progress`` (QProgressBar), ``status``
    (QLabel) and ``_name`` (the image's name in messages). Results reach the main thread
    through napari's ``returned`` signal; failures become one notification worded like
    the command line's error rows, never a traceback. Cancel stops the running job (see
    :class:`CancelToken`) and drops its result.
    """

    def _init_jobs(self):
        self._worker = None
        self._token = None
        self._run_id = 0
        self.jobs_running = 0       # workers still computing, including cancelled ones
        self._name = ""
        self._errors_shown = []     # error toasts of this widget, closed after the next success

    def _add_run_controls(self, layout, label: str):
        """Run and Cancel buttons and a thin busy bar, added to ``layout``."""
        from qtpy.QtWidgets import QHBoxLayout, QProgressBar, QPushButton

        row = QHBoxLayout()
        self.run_btn = QPushButton(label)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        row.addWidget(self.run_btn, 2)
        row.addWidget(self.cancel_btn, 1)
        layout.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        layout.addWidget(self.progress)
        self.cancel_btn.clicked.connect(self.cancel)

    # session report ----------------------------------------------------

    def _report_ready(self) -> bool:
        """False (after saying why) when there is nothing to report."""
        return True

    def _report_dialog(self):
        """Ask for a folder and write the session report into it in a worker: the widget's
        ``_report_writer(folder, *self._report_args())``."""
        from qtpy.QtWidgets import QFileDialog

        if self.busy or not self._report_ready():
            return
        folder = QFileDialog.getExistingDirectory(self, "Write the QC report into folder")
        if not folder:
            return
        try:
            args = self._report_args()
        except ValueError as exc:
            self._error(str(exc))
            return
        self._start_job(self._report_writer, (folder, *args), self._wrote,
                        desc=f"exoimage: writing the report of {self._name}", status="Writing the report…",
                        what=f"writing the report into {folder}")

    def _wrote(self, path):
        self.status.setText(f"Wrote {path}")
        notify_info(f"wrote {path}")

    # image-layer chooser -------------------------------------------------

    def _add_layer_combo(self, form, tooltip: str):
        """A combo box of the viewer's Image layers, kept up to date, added to ``form``."""
        from qtpy.QtWidgets import QComboBox

        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip(tooltip)
        form.addRow("Image", self.layer_combo)
        self.layer_combo.currentTextChanged.connect(lambda _t: self._on_layer_choice())
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)

    def _refresh_layers(self, event=None):
        from napari.layers import Image as ImageLayer

        cur = self.layer_combo.currentText()
        names = [ly.name for ly in self.viewer.layers if isinstance(ly, ImageLayer)]
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        self.layer_combo.addItems(names)
        if cur in names:
            self.layer_combo.setCurrentText(cur)
        self.layer_combo.blockSignals(False)
        if self.layer_combo.currentText() != cur:
            self._on_layer_choice()

    def _layer(self):
        name = self.layer_combo.currentText()
        return self.viewer.layers[name] if name and name in self.viewer.layers else None

    def _on_layer_choice(self):
        """Called when another image layer is chosen (override to react)."""

    def _slot(self, fn, what: str):
        """A button's slot: ``fn()``, any failure one notification (no traceback reaches the user)."""
        def slot(*_args):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - a notification, not a traceback
                first = str(exc).splitlines()[0] if str(exc) else ""
                self._error(f"{self._name or 'exoimage'}: {what} failed ({type(exc).__name__}: {first})")
        return slot

    def _gone(self, layer) -> bool:
        """True when ``layer`` is None or no longer in the viewer (the user deleted it)."""
        return layer is None or layer not in self.viewer.layers

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def _error(self, message: str):
        self.status.setText(f"<span style='color:#ff6060'>{message}</span>")
        self._errors_shown.append(str(message))
        notify_error(message)

    def _succeeded(self):
        """An action worked: the error toasts this widget raised before are closed."""
        dismiss_notifications(self._errors_shown)
        self._errors_shown = []

    def _set_busy(self, busy: bool):
        self.run_btn.setEnabled(not busy)
        self.cancel_btn.setEnabled(busy)
        self.progress.setRange(0, 0 if busy else 1)
        self.progress.setValue(0)

    def _start_job(self, fn, args: tuple, on_result, *, desc: str, status: str, what: str = "analysis"):
        from napari.qt.threading import create_worker

        self._run_id += 1
        run_id = self._run_id
        token = CancelToken()
        worker = create_worker(_guarded, fn, args, token, _progress={"desc": desc})
        worker.returned.connect(lambda res: self._job_returned(res, run_id, on_result, what))
        worker.finished.connect(lambda: self._job_finished(run_id))
        self.jobs_running += 1
        self._worker, self._token = worker, token
        self._set_busy(True)
        self.status.setText(status)
        worker.start()

    def cancel(self):
        """Stop the running job (between its stages, or at once inside a library call); its
        result is dropped."""
        if self._worker is None:
            return
        if self._token is not None:
            self._token.cancel()
        try:
            self._worker.quit()
        except RuntimeError:  # already finished and deleted
            pass
        self._run_id += 1  # the running job's callbacks now see a stale id
        self._worker, self._token = None, None
        self._set_busy(False)
        self.status.setText("Cancelled.")

    def _job_finished(self, run_id):
        self.jobs_running -= 1
        if run_id == self._run_id:
            self._worker, self._token = None, None
            self._set_busy(False)

    def _job_returned(self, res, run_id, on_result, what="analysis"):
        if run_id != self._run_id or isinstance(res, Cancelled):
            return
        if isinstance(res, Failed):
            exc = res.exc
            if isinstance(exc, ImageReadError):
                self._error(str(exc))
            elif isinstance(exc, ValueError):  # the library's or the plugin's readable message
                self._error(f"{self._name}: {exc}")
            else:
                first = str(exc).splitlines()[0] if str(exc) else ""
                self._error(f"{self._name}: {what} failed ({type(exc).__name__}: {first})")
            return
        self._succeeded()
        on_result(res)
