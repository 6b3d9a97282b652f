"""Quantify one blot: lanes, bands, volumes, QC; file wrapper and overlay drawing."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..io import Image, ImageReadError, read_image, validate_image
from ..params import CheckedParams
from .background import CHOICES as BACKGROUND_CHOICES  # the registry's names (auto first)
from .lanes import Piece, find_lanes, find_pieces, lanes_from_bounds
from .ladders import LADDER_NAMES
from .signal import POLARITIES, detect_polarity, to_signal

__all__ = ["BlotParams", "BlotResult", "BlotFileResult", "quantify_blot", "analyze_blot_file",
           "draw_blot_overlay", "measure_rectangle", "LANE_COLUMNS", "BAND_COLUMNS", "IMAGE_COLUMNS",
           "DEFAULT_BACKGROUND", "MAX_LANES", "MAX_LADDER_MARKERS", "NO_LANES"]

#: default background: rolling ball on the lane profile (see docs/blot.md)
DEFAULT_BACKGROUND = "auto"

#: most lanes a blot parameter may name: the widest common gels have 26-30 wells (e.g. 26-well
#: midi gels); 100 leaves room for several membrane pieces and bounds the work a typo can ask for
MAX_LANES = 100

#: most molecular-weight markers in a ladder: commercial ladders have 8-15 bands; 30 leaves room and
#: bounds the ladder matching (it tries the combinations of up to 3 missing markers)
MAX_LADDER_MARKERS = 30

#: the problem of a blot where no lane was found (it names the parameters; front ends reword it,
#: :func:`exoimage.params.reword`)
NO_LANES = "no lanes found (give the count, n_lanes, or the boundaries, lane_bounds)"

LANE_COLUMNS = ["image", "lane", "piece", "x_left_px", "x_right_px", "x_center_px", "width_px",
                "y_top_px", "y_bottom_px", "slope_dx_per_dy", "x_center_top_px", "x_center_bottom_px",
                "is_ladder", "n_bands", "lane_total", "background"]
BAND_COLUMNS = ["image", "lane", "row", "band_id", "y_px", "y_top_px", "y_bottom_px", "sigma_px",
                "volume", "background", "saturated", "saturated_px", "hot_px", "snr", "low_snr", "below_noise",
                "deconvolved", "is_ladder", "mw_kda", "size_bp", "background_method"]
IMAGE_COLUMNS = ["image", "status", "error", "polarity", "polarity_source", "dtype", "file_format",
                 "ceiling", "ceiling_source", "noise_sd", "n_pieces", "n_lanes", "n_rows", "n_bands",
                 "n_saturated_bands", "background", "warnings"]


@dataclass
class BlotParams(CheckedParams):
    """Parameters of :func:`quantify_blot` (pixel units: px; intensities: raw linear units).

    Attributes
    ----------
    polarity : str
        ``'auto'``, ``'light-bands'`` or ``'dark-bands'``.
    n_lanes : int or None
        Force this many lanes per membrane piece.
    lane_bounds : list of (int, int) or None
        Explicit lanes ``[(x_left_px, x_right_px), ...]`` (inclusive): full height, or each
        membrane piece's rows where there are several (:func:`.lanes.lanes_from_bounds`).
    background : str
        ``'auto'`` (default: ``'edge'`` for lanes with free membrane beside them,
        else ``'rolling-ball'``), ``'rolling-ball'``, ``'valley'``, ``'edge'`` or ``'none'``.
    ball_radius_px : float or None
        Rolling-ball radius along the lane, px (default: 10 % of the lane length, at least 25).
    min_snr : float
        Detection threshold: band peak / noise SD of the baseline-corrected lane profile.
    min_snr_px : float
        Detection threshold: band peak per pixel / pixel noise SD (same scale as ``snr``).
    low_snr : float
        Bands with ``snr`` (peak per pixel / pixel noise SD) below this are flagged ``low_snr``.
    resolve : bool
        Split overlapping bands by fitting Gaussians.
    ladder_lane : int or None
        Lane number (1-based) of the molecular-weight marker.
    ladder_kda : list of float or None
        Marker weights in kDa, largest first.
    ladder : str or None
        A known ladder by name (:data:`~exoimage.blot.ladders.LADDER_NAMES`) in
        ``ladder_lane``: its sizes replace ``ladder_kda`` (a bp ladder fills
        ``size_bp`` instead of ``mw_kda``), its masses give the mass check.
    edge_border_px : int
        Width of the strips beside a lane used by the ``'edge'`` background, px.
    row_regions : bool
        Give faint bands the region shape of their row's strong bands (same protein,
        same shape), instead of edges set by noise.
    """

    polarity: str = field(default="auto", metadata={
        "type": "str", "choices": ("auto",) + POLARITIES, "cli": "--polarity", "label": "Polarity",
        "help": "bands lighter (chemiluminescence) or darker (film) than the background in the raw values, "
                "or auto (WhiteIsZero TIFFs count as light-bands)"})
    n_lanes: int | None = field(default=None, metadata={
        "type": "int", "min": 1, "max": MAX_LANES, "optional": True, "aliases": ("lanes",), "cli": "--lanes",
        "metavar": "N", "label": "Lanes", "auto": "found automatically",
        "help": "number of lanes per membrane piece"})
    lane_bounds: list | None = field(default=None, metadata={
        "type": "int_pairs", "unit": "px", "min": 0, "max_len": MAX_LANES, "optional": True,
        "cli": "--lane-bounds", "label": "Lane bounds", "auto": "lanes found automatically", "advanced": True,
        "help": "explicit lanes as inclusive column ranges in px, e.g. 40-90,110-160 (overrides the lane "
                "count); on a membrane of several pieces they span each piece's rows, and a range left of the "
                "previous one starts the next piece's lanes"})
    # the choices: exoimage.blot.bands.BACKGROUNDS (a registry of backgrounds is coming, issue 11)
    background: str = field(default=DEFAULT_BACKGROUND, metadata={
        "type": "str", "choices": BACKGROUND_CHOICES, "cli": "--background", "label": "Background",
        "help": "background under the bands: edge (median of the pixels beside the lane, per row), "
                "rolling-ball (on the lane profile), valley (valley-to-valley lines), none (raw sums = "
                "ImageJ RawIntDen); auto = rolling ball refined by a least-squares line through each "
                "band's flanks, and the lane-edge background under smears where lanes have free membrane "
                "beside them"})
    ball_radius_px: float | None = field(default=None, metadata={
        "type": "float", "unit": "px", "min": 0, "min_exclusive": True, "optional": True,
        "cli": "--ball-radius", "metavar": "PX", "label": "Ball radius", "auto": "10 % of the lane length, >= 25 px",
        "advanced": True, "decimals": 1, "help": "rolling-ball radius along the lane"})
    min_snr: float = field(default=4.0, metadata={
        "type": "float", "unit": "noise SD", "min": 0, "min_exclusive": True, "cli": "--min-snr", "metavar": "SD",
        "label": "Min band SNR", "decimals": 2, "help": "smallest band peak, in noise SDs of the lane profile"})
    min_snr_px: float = field(default=2.0, metadata={
        "type": "float", "unit": "noise SD", "min": 0, "min_exclusive": True, "cli": "--min-snr-px",
        "metavar": "SD", "label": "Min band SNR per pixel", "advanced": True, "decimals": 2,
        "help": "smallest band peak per pixel, in pixel noise SDs"})
    low_snr: float = field(default=3.0, metadata={
        "type": "float", "unit": "noise SD", "min": 0, "cli": "--low-snr", "metavar": "SD",
        "label": "Low SNR flag", "advanced": True, "decimals": 2,
        "help": "bands whose snr (peak per pixel / pixel noise SD) is lower are flagged low_snr"})
    resolve: bool = field(default=True, metadata={
        "type": "bool", "cli": "--resolve", "label": "Split overlapping bands", "advanced": True,
        "help": "split overlapping bands by fitting Gaussians"})
    ladder_lane: int | None = field(default=None, metadata={
        "type": "int", "min": 1, "max": MAX_LANES, "at_most": "n_lanes", "optional": True,
        "cli": "--ladder-lane", "metavar": "K", "label": "Ladder lane", "auto": "none",
        "help": "lane number (1 = leftmost) of the molecular-weight marker"})
    ladder_kda: list | None = field(default=None, metadata={
        "type": "float_list", "unit": "kDa", "min": 0, "min_exclusive": True, "min_len": 2,
        "max_len": MAX_LADDER_MARKERS, "requires": "ladder_lane", "optional": True,
        "cli": "--ladder-kda", "metavar": "KDA,...", "label": "Ladder weights", "auto": "none",
        "help": "marker weights in kDa, largest first, e.g. 250,150,100,75,50,37,25,20,15,10"})
    ladder: str | None = field(default=None, metadata={
        "type": "str", "choices": LADDER_NAMES, "optional": True, "requires": "ladder_lane",
        "excludes": "ladder_kda", "cli": "--ladder", "metavar": "NAME", "label": "Known ladder", "auto": "none",
        "help": "a known ladder in the ladder lane (exoimage/blot/ladders/*.toml): its sizes give every band a "
                "molecular weight (kDa) or size (bp); where its masses are known, volumes are checked against "
                "them (ladder_check.csv)"})
    edge_border_px: int = field(default=3, metadata={
        "type": "int", "unit": "px", "min": 1, "cli": "--edge-border", "metavar": "PX",
        "label": "Edge strip width", "advanced": True,
        "help": "width of the strips beside a lane used by the edge background"})
    row_regions: bool = field(default=True, metadata={
        "type": "bool", "cli": "--row-regions", "label": "Row-shaped regions", "advanced": True,
        "help": "give faint bands the region shape of their row's strong bands (same protein, same shape) "
                "instead of edges set by noise"})


@dataclass
class BlotResult:
    """Result of :func:`quantify_blot`: tables plus geometry for drawing."""

    lanes: pd.DataFrame
    bands: pd.DataFrame
    lane_geometry: list
    pieces: list
    polarity: str
    polarity_source: str
    ceiling: float | None
    ceiling_source: str
    noise_sd: float
    warnings: list
    saturated_mask: np.ndarray
    hot_mask: np.ndarray
    ladder: dict = field(default_factory=dict)
    params: BlotParams | None = None
    #: the band regions measured, one row per band in ``bands`` order (see exoimage.blot.measure)
    regions: pd.DataFrame | None = None


def measure_rectangle(data: np.ndarray, x: int, y: int, w: int, h: int) -> float:
    """Sum of the pixel values in a rectangle: ImageJ's RawIntDen (background ``none``)."""
    return float(np.asarray(data)[y:y + h, x:x + w].sum(dtype=np.float64))


def _as_image(image) -> Image:
    if isinstance(image, Image):
        return image
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ImageReadError(None, f"expected a 2-D array, got shape {arr.shape}")
    return Image.from_array(arr)


def signal_of(img: Image, params: BlotParams):
    """(signal, polarity, polarity source): "more protein = larger number" in raw linear units."""
    if params.polarity == "auto":
        polarity = detect_polarity(img.data, img.white_is_zero)
        pol_src = "white_is_zero" if img.white_is_zero else "auto"
    else:
        polarity, pol_src = params.polarity, "given"
    return to_signal(img.data, polarity), polarity, pol_src


def quantify_blot(image, params: BlotParams | None = None, *, name: str = "", lane_totals: bool = False,
                  **overrides) -> BlotResult:
    """Find lanes and bands and measure band volumes in one blot image.

    Detection (:func:`exoimage.blot.detect.detect_bands`) gives lanes and band
    regions; :func:`exoimage.blot.measure.measure` measures them, as it measures
    regions drawn by hand.

    Parameters
    ----------
    image : Image or ndarray
        Raw pixel values (never display-scaled data if raw exists).
    params : BlotParams, optional
        Parameters; keyword ``overrides`` replace single fields.
    name : str
        Value of the ``image`` column.
    lane_totals : bool
        Also compute each lane's whole-lane signal (``lane_total``, for
        total-protein normalisation) with the lane-edge background.

    Returns
    -------
    BlotResult
        ``lanes`` and ``bands`` tables (see ``LANE_COLUMNS``/``BAND_COLUMNS``),
        the band ``regions`` detected, lane geometry, QC masks and the ladder fit.
    """
    # detect and measure build on this module's tables and parameters
    from .detect import detect_bands
    from .measure import lane_contexts, measure_prepared, prepare

    params = params or BlotParams()
    if overrides:
        params = BlotParams(**{**params.as_dict(), **overrides})
    prep = prepare(image, params)
    img, signal = prep.image, prep.signal
    if params.lane_bounds:
        try:
            # explicit lanes per membrane piece where there are several (lanes.lanes_from_bounds)
            found = find_pieces(signal)
            pieces = found if len(found) > 1 else [Piece(1, 0, signal.shape[0], 0, signal.shape[1])]
            lanes = lanes_from_bounds(params.lane_bounds, signal.shape, pieces)
        except ValueError as exc:
            raise ImageReadError(img.path, str(exc)) from None
    else:
        pieces = find_pieces(signal)
        lanes = find_lanes(signal, pieces, n_lanes=params.n_lanes)
    if params.ladder_lane:
        if not 1 <= params.ladder_lane <= len(lanes):
            raise ImageReadError(img.path, f"ladder lane {params.ladder_lane} does not exist "
                                           f"({len(lanes)} lanes found)")
        for ln in lanes:  # the ladder named replaces any marker lane recognised
            ln.is_ladder = False
        lanes[params.ladder_lane - 1].is_ladder = True
    contexts = lane_contexts(prep, lanes, params)
    regions = detect_bands(prep, lanes, params, contexts=contexts)
    return measure_prepared(prep, lanes, regions, params, name=name, pieces=pieces, lane_totals=lane_totals,
                            contexts=contexts)



# --------------------------------------------------------------------------
# files


@dataclass
class BlotFileResult:
    """Outcome of :func:`analyze_blot_file` (``ok`` False: see ``image_row['error']``)."""

    ok: bool
    image_row: dict
    lanes: pd.DataFrame
    bands: pd.DataFrame
    result: BlotResult | None = None
    image: Image | None = None


def _image_row(name, result: BlotResult | None, img: Image | None, params: BlotParams, error: str = ""):
    row = {c: None for c in IMAGE_COLUMNS}
    row.update(image=name, status="error" if error else "ok", error=error, background=params.background)
    if img is not None:
        row.update(dtype=str(img.data.dtype), file_format=img.file_format)
    if result is not None:
        b = result.bands
        row.update(polarity=result.polarity, polarity_source=result.polarity_source, ceiling=result.ceiling,
                   ceiling_source=result.ceiling_source, noise_sd=result.noise_sd, n_pieces=len(result.pieces),
                   n_lanes=len(result.lanes), n_rows=int(b.loc[b["row"] > 0, "row"].nunique()),
                   n_bands=len(b), n_saturated_bands=int(b["saturated"].sum()),
                   warnings="; ".join(result.warnings))
    return row


def blot_image_row(name, result: BlotResult | None, img: Image | None, params: BlotParams, error: str = ""):
    """The ``blot_images`` row of a result (the run's records and the napari session report use it)."""
    return _image_row(name, result, img, params, error)


def analyze_blot_file(path, params: BlotParams | None = None, *, name: str | None = None,
                      lane_totals: bool = False, max_pixels: int | None = None) -> BlotFileResult:
    """Read and quantify one blot file; every failure becomes an error row naming the file.

    ``max_pixels`` is the pixel budget of :func:`exoimage.io.read_image` (None: its default).
    """
    params = params or BlotParams()
    name = name or str(path)
    empty_l, empty_b = pd.DataFrame(columns=LANE_COLUMNS), pd.DataFrame(columns=BAND_COLUMNS)
    img = None
    try:
        img = read_image(path, max_pixels=max_pixels)
        validate_image(img)
        res = quantify_blot(img, params, name=name, lane_totals=lane_totals)
        if len(res.lanes) == 0:
            raise ImageReadError(path, NO_LANES)
    except ImageReadError as exc:
        return BlotFileResult(False, _image_row(name, None, img, params, str(exc)), empty_l, empty_b, None, img)
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the run
        msg = f"{path}: analysis failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        return BlotFileResult(False, _image_row(name, None, img, params, msg), empty_l, empty_b, None, img)
    return BlotFileResult(True, _image_row(name, res, img, params), res.lanes,
                          res.bands[BAND_COLUMNS], res, img)


# --------------------------------------------------------------------------
# overlay


#: overlay colours of the lane profile trace and of the background under it (RGB)
TRACE_COLOUR = (255, 255, 255)
BACKGROUND_COLOUR = (70, 130, 255)


def draw_blot_overlay(image, result: BlotResult, *, max_side: int | None = None, traces: bool = True) -> np.ndarray:
    """RGB uint8 picture: lanes (green, ladder magenta), band regions (yellow,
    deconvolved cyan), row numbers, solid saturated pixels red, hot pixels orange.

    With ``traces`` every lane also carries its profile (white) and the background
    that was subtracted from it (blue, :data:`BACKGROUND_COLOUR`), drawn down the lane on
    one scale per lane (signal to the right): a band's volume is the area between them."""
    import cv2

    img = _as_image(image)
    disp = img.displayed() if img.white_is_zero else img.data.astype(np.float64)
    if result.polarity == "light-bands" and img.white_is_zero:
        disp = img.data.astype(np.float64)  # show counts, bands bright
    lo, hi = np.percentile(disp, [0.5, 99.8])
    g = np.clip((disp - lo) / max(hi - lo, 1e-12), 0, 1)
    g = (np.sqrt(g) * 255).astype(np.uint8)
    rgb = np.dstack([g, g, g])
    rgb[result.saturated_mask] = (255, 0, 0)
    rgb[result.hot_mask] = (255, 140, 0)
    th = max(1, int(round(max(img.data.shape) / 800)))
    fs = 0.4 * th
    for ln in result.lane_geometry:
        col = (255, 0, 255) if ln.is_ladder else (0, 220, 0)
        yt, yb = ln.y_top_px, ln.y_bottom_px
        st, sb = int(ln.shift_at(yt)), int(ln.shift_at(yb))
        pts = np.array([[ln.x_left_px + st, yt], [ln.x_right_px + st, yt], [ln.x_right_px + sb, yb],
                        [ln.x_left_px + sb, yb]], np.int32)
        cv2.polylines(rgb, [pts], True, col, th)
        cv2.putText(rgb, str(ln.lane), (int(ln.x_center_px + st) - 6 * th, yt + 14 * th),
                    cv2.FONT_HERSHEY_SIMPLEX, fs, col, th)
    if traces and result.lane_geometry:
        _draw_traces(rgb, img, result, th)
        rgb[result.saturated_mask] = (255, 0, 0)  # QC marks stay on top of the traces
        rgb[result.hot_mask] = (255, 140, 0)
    geo = {ln.lane: ln for ln in result.lane_geometry}
    for b in result.bands.itertuples():
        ln = geo[b.lane]
        s = int(ln.shift_at(b.y_px))
        col = (0, 200, 255) if b.deconvolved else (255, 220, 0)
        if b.saturated:
            col = (255, 0, 0)
        cv2.rectangle(rgb, (ln.x_left_px + s + th, int(b.y_top_px)), (ln.x_right_px + s - th, int(b.y_bottom_px)),
                      col, max(1, th // 2 + (1 if th == 1 else 0)))
        cv2.line(rgb, (ln.x_left_px + s + 2 * th, int(round(b.y_px))), (ln.x_right_px + s - 2 * th, int(round(b.y_px))),
                 col, 1)
        if b.row and ln.lane == min(L for L in result.bands.loc[result.bands["row"] == b.row, "lane"]):
            cv2.putText(rgb, f"r{b.row}", (max(0, ln.x_left_px + s - 28 * th), int(b.y_px) + 4 * th),
                        cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 255, 255), th)
    if max_side and max(rgb.shape[:2]) > max_side:
        f = max_side / max(rgb.shape[:2])
        rgb = cv2.resize(rgb, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    return rgb


def _draw_traces(rgb: np.ndarray, img: Image, result: BlotResult, th: int) -> None:
    """Each lane's profile and its background as two polylines inside the lane (in place)."""
    import cv2

    from .measure import lane_traces

    traces = lane_traces(img, result.lane_geometry, result.regions, result.params)
    for ln in result.lane_geometry:
        tr = traces.get(ln.lane)
        if tr is None or not len(tr):
            continue
        y = tr["y_px"].to_numpy()
        prof, bg = tr["profile"].to_numpy(float), tr["background"].to_numpy(float)
        lo = float(min(np.nanmin(prof), np.nanmin(bg)))
        hi = float(np.nanmax(prof))
        if not np.isfinite(hi - lo) or hi <= lo:
            continue
        shift = np.array([ln.shift_at(v) for v in y])
        x0 = ln.x_left_px + 2 * th
        span = max(1, ln.x_right_px - ln.x_left_px - 4 * th)
        for vals, col in ((prof, TRACE_COLOUR), (bg, BACKGROUND_COLOUR)):
            xs = x0 + shift + (vals - lo) / (hi - lo) * span
            pts = np.stack([np.round(xs), y], axis=1).astype(np.int32)
            cv2.polylines(rgb, [pts], False, (0, 0, 0), th + 2)  # dark edge: readable on bright bands
            cv2.polylines(rgb, [pts], False, col, th)
