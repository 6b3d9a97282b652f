"""The self-contained QC report (``report.html``): figures and HTML from an experiment's tables.

The tables come from :func:`exoimage.experiment.tables.assemble` (statistics in
:mod:`exoimage.stats`, checks in :mod:`exoimage.experiment.qc`); this module only draws
and writes. The page is a list of sections (:data:`SECTIONS`): each is a
function that takes the :class:`ReportInput` (the assembled tables, the
records, the run's parameters and statistics) and returns its HTML, and
:func:`write_report` joins them in order. A new section is one function
registered with :func:`report_section`. The HTML itself is Jinja2 templates with
autoescaping (``templates/``: the page layout, one template per section, and the
table and image macros they share); the section functions only prepare the data.
``report.html`` embeds plots and thumbnails as PNG data (no external scripts,
styles or fonts); ``report_data/`` holds the table behind every figure. Its print
stylesheet lays it out on A4, and :func:`write_pdf` prints it with headless Chromium.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .. import __version__
from ..outputs import mpl_literal
from .qc import QC_COLUMNS
from .tables import concat_tables

__all__ = ["write_report", "write_pdf", "find_browser", "BrowserNotFound", "ReportInput", "SECTIONS",
           "report_section", "size_figures", "marker_figure",
           "nta_tem_figure", "blot_figure"]


# ---------------------------------------------------------------------------
# figures


class FigurePNG(str):
    """A figure as base64 PNG text that also carries the labels of its axes.

    ``axes``: one ``(x label, y label)`` per panel that shows data; a label of an axis
    whose ticks are category names (samples, lanes) starts with ``[categories] ``. The
    report puts them on the ``<img>`` (``data-axes``) so a check can read what each
    figure's axes say.
    """

    axes: tuple = ()


#: the prefix of an axis label whose ticks are names, not numbers (see :class:`FigurePNG`)
CATEGORIES = "[categories] "


def _axis_label(axis) -> str:
    """An axis' label, prefixed with :data:`CATEGORIES` when its tick labels (as drawn) are names."""
    label = axis.get_label_text()

    def is_num(t):
        try:
            float(t.replace("\u2212", "-"))
            return True
        except ValueError:
            return False

    ticks = [t.get_text() for t in axis.get_ticklabels() if t.get_text()]
    return CATEGORIES + label if ticks and not all(is_num(t) for t in ticks) else label


def _fig_png(fig) -> FigurePNG:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    axes = tuple((_axis_label(ax.xaxis), _axis_label(ax.yaxis)) for ax in fig.axes
                 if ax.axison and (ax.lines or ax.patches or ax.collections or ax.images))
    import matplotlib.pyplot as plt

    plt.close(fig)
    out = FigurePNG(base64.b64encode(buf.getvalue()).decode("ascii"))
    out.axes = axes
    return out


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def size_figures(vesicles: pd.DataFrame, samples: pd.DataFrame) -> tuple[str | None, str | None, pd.DataFrame]:
    """(per-sample histograms PNG, all-samples overlay PNG, table of the KDE curves)."""
    if not len(vesicles):
        return None, None, pd.DataFrame()
    from scipy.stats import gaussian_kde

    plt = _plt()
    v = vesicles[~vesicles["touches_border"].astype(bool) & vesicles["diameter_nm"].notna()]
    names = [s for s in samples["sample"] if (v["sample"] == s).sum() > 0]
    if not names:
        return None, None, pd.DataFrame()
    lo, hi = 0.0, float(np.percentile(v["diameter_nm"], 99.5)) * 1.15
    grid = np.linspace(lo, hi, 300)
    curves = []
    n = len(names)
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, s in zip(axes.ravel(), names):
        d = v.loc[v["sample"] == s, "diameter_nm"].to_numpy(float)
        ax.hist(d, bins=np.linspace(lo, hi, 40), density=True, color="#9ecae1", edgecolor="white",
                label=f"n = {d.size} vesicles")
        if d.size >= 3 and np.ptp(d) > 0:
            k = gaussian_kde(d)(grid)
            ax.plot(grid, k, color="#08519c")
            curves.append(pd.DataFrame({"sample": s, "diameter_nm": grid, "density": k}))
        srow = samples.set_index("sample").loc[s]
        for q, ls in (("tem_d10_nm", ":"), ("tem_d50_nm", "-"), ("tem_d90_nm", ":")):
            if np.isfinite(srow[q]):
                ax.axvline(srow[q], color="#de2d26", ls=ls, lw=1)
        ax.set_title(f"{mpl_literal(s)}  (n = {d.size})\nD50 = {_d50_ci(srow)}", fontsize=9)
        ax.set_xlabel("diameter (nm)", fontsize=8)
        ax.set_ylabel("probability density (1/nm)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    per_sample = _fig_png(fig)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    lines = [ax.plot(c["diameter_nm"], c["density"])[0] for c in curves]
    ax.set_xlabel("diameter (nm)")
    ax.set_ylabel("probability density (1/nm)")
    if curves:  # labels given explicitly: matplotlib would hide a sample named "_x"
        srows = samples.set_index("sample")
        ax.legend(lines, [f"{mpl_literal(c['sample'].iloc[0])} (n = {int((v['sample'] == c['sample'].iloc[0]).sum())}"
                          f", D50 {_d50_ci(srows.loc[c['sample'].iloc[0]])})" for c in curves], fontsize=7,
                  loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title("TEM size distributions (KDE), all samples", fontsize=10)
    overlay = _fig_png(fig)
    return per_sample, overlay, (pd.concat(curves, ignore_index=True) if curves else pd.DataFrame())


def marker_figure(normalized: pd.DataFrame) -> str | None:
    """Dot plot of the normalised marker signal per sample (replicates as dots, mean as a bar)."""
    if not len(normalized):
        return None
    d = normalized[normalized["sample"].astype(str) != ""]
    if d.empty:
        return None
    plt = _plt()
    markers = sorted(set(d["marker"].astype(str)))
    fig, axes = plt.subplots(1, len(markers), figsize=(3.6 * len(markers), 3.0), squeeze=False)
    for ax, m in zip(axes[0], markers):
        dm = d[d["marker"].astype(str) == m]
        names = list(dict.fromkeys(dm["sample"].astype(str)))
        for i, s in enumerate(names):
            vals = dm.loc[dm["sample"].astype(str) == s, "relative"].to_numpy(float)
            vals = vals[np.isfinite(vals)]
            if vals.size:
                ax.bar(i, vals.mean(), color="#c6dbef", width=0.6)
            ax.plot(np.full(vals.size, i) + np.linspace(-0.12, 0.12, vals.size), vals, "o", color="#08519c", ms=4)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([mpl_literal(x) for x in names], rotation=30, ha="right", fontsize=8)
        ax.set_title(mpl_literal(m) if m else "(unnamed marker)", fontsize=10)
        ax.set_xlabel("sample", fontsize=8)
        ax.set_ylabel("signal / reference lane (ratio)", fontsize=8)
    fig.tight_layout()
    return _fig_png(fig)


#: width of a blot figure in the report (inches at the figures' 110 dpi: two side by side on the page)
BLOT_FIGURE_WIDTH_IN = 5.0


def _lane_names(rec) -> dict:
    """lane -> the name shown under it: the sample of the lane sheet, 'ladder' for a ladder lane."""
    names = {}
    norm = rec.normalized
    if norm is not None and len(norm) and {"lane", "sample"} <= set(norm.columns):
        for lane, sample in zip(norm["lane"], norm["sample"]):
            if str(_blank(sample)).strip():
                names.setdefault(int(lane), str(sample))
    lanes = rec.lanes
    if lanes is not None and len(lanes) and "is_ladder" in lanes:
        for lane in lanes.loc[lanes["is_ladder"].astype(bool), "lane"]:
            names.setdefault(int(lane), "ladder")
    return names


def blot_figure(overlay_path: Path, rec) -> tuple[dict | None, str]:
    """A blot overlay with its lanes named (sample of the lane sheet) along the top and the
    ladder's molecular weights (kDa) along the left.

    The overlay (:func:`exoimage.blot.draw_blot_overlay`, same pixel grid as the image) is shown
    in matplotlib axes: x ticks at the lane centres labelled ``lane: sample``, y ticks at the
    ladder bands of the first ladder lane with a calibrated ``mw_kda``; without a calibrated
    ladder the y axis is the image row in pixels.

    Returns
    -------
    (figure dict for the page or None, a note on what the axes show)
    """
    import cv2

    bgr = cv2.imread(str(overlay_path), cv2.IMREAD_COLOR)
    if bgr is None:
        return None, ""
    plt = _plt()
    h, w = bgr.shape[:2]
    fig, ax = plt.subplots(figsize=(BLOT_FIGURE_WIDTH_IN, max(1.5, BLOT_FIGURE_WIDTH_IN * h / w)))
    ax.imshow(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), interpolation="antialiased")
    lanes = rec.lanes if rec.lanes is not None else pd.DataFrame(columns=["lane", "x_center_px"])
    centres = lanes.groupby("lane")["x_center_px"].mean() if len(lanes) else pd.Series(dtype=float)
    names = _lane_names(rec)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xticks(centres.to_numpy(float))
    ax.set_xticklabels([mpl_literal(f"{int(k)}: {names[k]}" if k in names else f"{int(k)}") for k in centres.index],
                       rotation=40, ha="left", fontsize=7)
    ax.set_xlabel("lane: sample (lane sheet)", fontsize=8)
    b = rec.bands if rec.bands is not None else pd.DataFrame()
    ladder = b[b["is_ladder"].astype(bool) & np.isfinite(b["mw_kda"].astype(float))] \
        if len(b) and {"is_ladder", "mw_kda"} <= set(b.columns) else b.iloc[:0]
    if len(ladder):
        ladder = ladder[ladder["lane"] == ladder["lane"].min()].sort_values("y_px")
        ax.set_yticks(ladder["y_px"].to_numpy(float))
        ax.set_yticklabels([f"{m:.0f}" if m >= 10 else f"{m:.2g}" for m in ladder["mw_kda"].astype(float)],
                           fontsize=7)
        ax.set_ylabel("molecular weight (kDa), ladder lane %d" % int(ladder["lane"].iloc[0]), fontsize=8)
        note = f"kDa marks from the ladder calibration of lane {int(ladder['lane'].iloc[0])}"
    else:
        ax.tick_params(axis="y", labelsize=7)
        ax.set_ylabel("image row (px)", fontsize=8)
        note = "no calibrated ladder: rows in pixels, no kDa marks"
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    png = _fig_png(fig)
    return {"png": png, "alt": f"{rec.rel}: lanes and bands", "axes": [f"{x} | {y}" for x, y in png.axes]}, note


_mpl_text = mpl_literal  # user text for a matplotlib label (see exoimage.outputs.mpl_literal)


def nta_tem_figure(density: pd.DataFrame, vesicles: pd.DataFrame,
                   samples: pd.DataFrame) -> tuple[str | None, pd.DataFrame]:
    """NTA size density (mean ± SE across videos) with the TEM size density of the same sample.

    One panel per sample with NTA data; both curves are probability densities
    per nm on one axis. The TEM curve is a Gaussian KDE of the sample's sized
    (not border-cut) vesicles, evaluated on the NTA size grid.

    Returns
    -------
    (PNG as base64 or None, DataFrame)
        The table behind the figure: ``sample, method, size_nm,
        density_per_nm, density_se_per_nm`` (SE across videos; NaN for TEM).
    """
    cols = ["sample", "method", "size_nm", "density_per_nm", "density_se_per_nm"]
    with_nta = (set(samples.loc[samples["nta_n_videos"].fillna(0) > 0, "sample"]) if "nta_n_videos" in samples
                else set())
    if not len(density) and not with_nta:
        return None, pd.DataFrame(columns=cols)
    from scipy.stats import gaussian_kde

    plt = _plt()
    v = vesicles[~vesicles["touches_border"].astype(bool) & vesicles["diameter_nm"].notna()] if len(vesicles) \
        else pd.DataFrame(columns=["sample", "diameter_nm"])
    have = set(density["sample"]) | with_nta if len(density) else with_nta
    names = [x for x in samples["sample"] if x in have] + [x for x in dict.fromkeys(density.get("sample", []))
                                                          if x not in set(samples["sample"])]
    n = len(names)
    ncols = min(3, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.1 * nrows), squeeze=False)
    srows = samples.set_index("sample")
    frames = []
    for ax, s in zip(axes.ravel(), names):
        d = density[density["sample"] == s] if len(density) else density
        if not len(d):
            # every video of this sample counted no particle: say so instead of an empty frame
            ax.text(0.5, 0.5, f"{_mpl_text(s)}\nno NTA video counted a particle", ha="center", va="center",
                    fontsize=9, transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        x = d["size_nm"].to_numpy(float)
        m = np.nan_to_num(d["density_per_nm"].to_numpy(float))     # a NaN never blanks the panel
        se = np.nan_to_num(d["density_se_per_nm"].to_numpy(float))
        frames.append(pd.DataFrame({"sample": s, "method": "NTA", "size_nm": x, "density_per_nm": m,
                                    "density_se_per_nm": d["density_se_per_nm"].to_numpy(float)}))
        cdf = np.cumsum(m * np.gradient(x)) if len(x) > 1 else np.ones(1)
        hi = float(x[min(len(x) - 1, int(np.searchsorted(cdf, 0.99 * cdf[-1])))]) if len(x) and cdf[-1] > 0 else 500.0
        ax.fill_between(x, m - se, m + se, color="#fdae6b", alpha=0.6, lw=0, label="NTA ± SE (videos)")
        ax.plot(x, m, color="#d94801", lw=1.4, label=f"NTA (n={int(d['n_videos'].iloc[0])} videos)")
        tem = v.loc[v["sample"] == s, "diameter_nm"].to_numpy(float) if len(v) else np.array([])
        if tem.size >= 3 and np.ptp(tem) > 0:
            k = gaussian_kde(tem)(x)
            ax.plot(x, k, color="#08519c", lw=1.4, label=f"TEM KDE (n={tem.size})")
            frames.append(pd.DataFrame({"sample": s, "method": "TEM (KDE)", "size_nm": x, "density_per_nm": k,
                                        "density_se_per_nm": np.nan}))
            hi = max(hi, float(np.percentile(tem, 99.5)))
        row = srows.loc[s] if s in srows.index else None
        title = _mpl_text(s)
        if row is not None:
            for col, colour in (("nta_d50_nm", "#d94801"), ("tem_d50_nm", "#08519c")):
                if np.isfinite(row.get(col, np.nan)):
                    ax.axvline(row[col], color=colour, ls="--", lw=0.9)
            se = row.get("nta_d50_nm_se", np.nan)
            title += f"\nD50 NTA {_num(row.get('nta_d50_nm'), '{:.0f}')}" + (
                f" ± {_num(se, '{:.0f}')} nm (SE)" if np.isfinite(float(se if se is not None else np.nan)) else " nm")
            if np.isfinite(row.get("tem_d50_nm", np.nan)):
                title += f" / TEM {_d50_ci(row)}"
        ax.set_xlim(0, min(1000.0, hi * 1.15))
        ax.set_ylim(bottom=0)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("diameter (nm): NTA hydrodynamic, TEM projected", fontsize=8)
        ax.set_ylabel("probability density (1/nm)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, frameon=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    return _fig_png(fig), (pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols))


def _d50_ci(row) -> str:
    """A TEM D50 with its 95 % CI: ``78 nm [70–98]`` ('–' when not sized)."""
    d50 = row.get("tem_d50_nm", np.nan)
    if d50 is None or not np.isfinite(float(d50)):
        return "–"
    return (f"{float(d50):.0f} nm [95 % CI {_num(row.get('tem_d50_ci_low_nm'), '{:.0f}')}–"
            f"{_num(row.get('tem_d50_ci_high_nm'), '{:.0f}')}]")


def _thumb(path: Path, max_side: int = 420) -> str | None:
    import cv2

    img = cv2.imread(str(path))
    if img is None:
        return None
    s = max_side / max(img.shape[:2])
    if s < 1:
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", img)
    return base64.b64encode(buf.tobytes()).decode("ascii") if ok else None


def _micrograph(b64: str | None, alt: str, field_nm: float, nm_per_px: float) -> dict:
    """A micrograph for the page: its PNG, alt text and the scale bar drawn on it (length, nm per
    picture pixel), which the page carries as ``data-scale-bar-nm`` / ``data-nm-per-px``."""
    from ..tem.draw import scale_bar_length_nm

    ok = b64 is not None and np.isfinite(field_nm) and field_nm > 0
    bar = scale_bar_length_nm(field_nm) if ok else None
    return {"png": b64, "alt": f"{alt} (scale bar {bar:g} nm)" if bar else alt,
            "scale_bar_nm": f"{bar:g}" if bar else None, "nm_per_px": f"{nm_per_px:.6g}" if bar else None}


#: where a worker of ``exoimage run`` leaves the gallery pictures of each TEM field
#: (``<out>/.gallery/<overlay stem>.json``: :func:`gallery_pictures` of the overlay it has just
#: drawn, with the SHA-256 of the overlay file), so that the report does not decode every overlay
#: (twice) in the main process. A missing entry, or one whose hash does not match the overlay as it
#: is now (redrawn, e.g. by an interactive session), is made again from the overlay file.
GALLERY_DIR = ".gallery"


def _field_picture(img, image_row, max_side: int = 260) -> list:
    """[PNG base64 or None, field width nm, nm per picture pixel] of the gallery picture of a field
    (BGR overlay ``img``, None if unreadable)."""
    import cv2

    from ..tem.draw import draw_scale_bar

    field_nm = float(image_row.get("width_px") or np.nan) * float(image_row.get("pixel_size_nm") or np.nan)
    if img is None:
        return [None, field_nm, float("nan")]
    s = max_side / max(img.shape[:2])
    if s < 1:
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    else:
        img = img.copy()
    nm_per_px = field_nm / img.shape[1]
    if np.isfinite(nm_per_px) and nm_per_px > 0:
        draw_scale_bar(img, nm_per_px)
    ok, buf = cv2.imencode(".png", img)
    return [base64.b64encode(buf.tobytes()).decode("ascii") if ok else None, field_nm, nm_per_px]


def _closeup_picture(img, vesicles, image_row, size: int = 260) -> list | None:
    """[PNG base64 or None, crop width nm, nm per picture pixel] of the close-up around the vesicle
    nearest the field's median size, or None."""
    import cv2

    if img is None or vesicles is None or not len(vesicles):
        return None
    v = vesicles[~vesicles["touches_border"].astype(bool)]
    if not len(v):
        return None
    med = v["diameter_nm"].median()
    r = v.iloc[int(np.argmin(np.abs(v["diameter_nm"].to_numpy() - med)))]
    scale = img.shape[1] / float(image_row["width_px"])
    cx, cy = int(r["x_px"] * scale), int(r["y_px"] * scale)
    half = int(max(40, 3 * r["diameter_nm"] / float(image_row["pixel_size_nm"]) * scale / 2))
    y0, x0 = max(0, cy - half), max(0, cx - half)
    crop = img[y0:cy + half, x0:cx + half]
    if crop.size == 0:
        return None
    nm_per_px = crop.shape[1] / scale * float(image_row["pixel_size_nm"]) / size  # after the resize
    crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)
    from ..tem.draw import draw_scale_bar

    draw_scale_bar(crop, nm_per_px)  # the overlay's own bar is outside the crop
    ok, buf = cv2.imencode(".png", crop)
    return [base64.b64encode(buf.tobytes()).decode("ascii") if ok else None, nm_per_px * size, nm_per_px]


def gallery_pictures(img, vesicles, image_row) -> dict:
    """The report's pictures of one TEM field from its overlay ``img`` (BGR uint8, as
    ``cv2.imread`` gives it; None if unreadable): ``{"field": [...], "closeup": [...] or None}``
    (see :func:`_field_picture`, :func:`_closeup_picture`). A worker of ``exoimage run`` makes them
    from the overlay it drew (:func:`write_gallery_entry`); the report reads them back."""
    return {"field": _field_picture(img, image_row), "closeup": _closeup_picture(img, vesicles, image_row)}


def _gallery_path(out: Path, overlay_rel: str) -> Path:
    return Path(out) / GALLERY_DIR / (Path(overlay_rel).stem + ".json")


def write_gallery_entry(out, overlay_rel: str, overlay_png: bytes, pictures: dict) -> None:
    """Write the gallery pictures of the overlay ``out/overlay_rel`` (whose file bytes are
    ``overlay_png``) for the report (atomically)."""
    import hashlib
    import json

    from ..outputs import atomic_write_bytes

    entry = {"overlay_sha256": hashlib.sha256(overlay_png).hexdigest(), **pictures}
    atomic_write_bytes(_gallery_path(out, overlay_rel), json.dumps(entry).encode("ascii"))


def _read_gallery(out: Path, overlay_rel: str) -> dict | None:
    """The stored gallery pictures of an overlay, if they were made from the overlay file as it is now."""
    import hashlib
    import json

    try:
        entry = json.loads(_gallery_path(out, overlay_rel).read_bytes())
        current = hashlib.sha256((Path(out) / overlay_rel).read_bytes()).hexdigest()
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("overlay_sha256") != current or "field" not in entry:
        return None
    return entry


def _field_gallery(out: Path, x) -> dict:
    """The gallery pictures of TEM record ``x``: stored by its worker, else made from its overlay."""
    g = _read_gallery(out, x.overlay)
    if g is None:
        import cv2

        g = gallery_pictures(cv2.imread(str(Path(out) / x.overlay)), x.vesicles, x.image_row)
    return g


# ---------------------------------------------------------------------------
# HTML

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1180px;color:#222;
line-height:1.4;padding:0 16px}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 7px;
text-align:left;vertical-align:top}th{background:#f3f3f3}td{overflow-wrap:break-word}
td.long{overflow-wrap:anywhere}td.num,td.PASS,td.WARN,td.FAIL{white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.PASS{background:#e5f5e0;color:#1b5e20;font-weight:600}.WARN{background:#fff3cd;color:#7a5900;font-weight:600}
.FAIL{background:#fde0dc;color:#b71c1c;font-weight:600}.muted{color:#666;font-size:.85em}
.gallery{display:flex;flex-wrap:wrap;gap:12px}.gallery figure{margin:0;border:1px solid #ddd;padding:6px;
background:#fafafa}.gallery figcaption{font-size:.8em;color:#444}
img{max-width:100%;height:auto}.scroll{max-width:100%;overflow-x:auto}pre{max-width:100%;overflow-x:auto;
white-space:pre-wrap;word-break:break-all}.verdict{border:2px solid #999;padding:8px 14px;border-radius:6px}
.verdict li{margin:4px 0}.badge{padding:1px 6px;border-radius:3px}details{margin:8px 0}
summary{cursor:pointer;font-weight:600}.gallery.tem figure{box-sizing:border-box;width:calc(50% - 6px)}
.gallery.tem figure img{width:calc(50% - 3px);vertical-align:top}sup{font-size:.75em}ol.refs{font-size:.85em}
.gallery.blot figure{box-sizing:border-box;width:calc(50% - 6px)}.gallery figcaption{overflow-wrap:anywhere}
@page{size:A4;margin:12mm 10mm}
@media print{
body{max-width:none;margin:0;padding:0;font-size:9pt}
#qc,#tem,#nta,#blots,#provenance{break-before:page}
h2,h3,h4,summary{break-after:avoid}
figure,img,tr,.verdict li,.verdict{break-inside:avoid}
.scroll{overflow:visible}table{font-size:7pt;max-width:100%}td,th{padding:1px 3px}
pre{white-space:pre-wrap}
details::details-content{content-visibility:visible;display:contents}details>summary{list-style:none}
.noprint{display:none}
.gallery figure{break-inside:avoid}
a{color:inherit;text-decoration:none}
}
"""


#: the report's Jinja2 templates (page layout, verdict block); autoescaping on for every template
TEMPLATES = Path(__file__).with_name("templates")


def _blank(x):
    return "" if x is None or (isinstance(x, float) and not np.isfinite(x)) else x


def _escape_value(x):
    """Jinja2 ``finalize``: every ``{{ value }}`` is escaped (as :func:`html.escape` does, quotes
    included) unless it is already markup; None and NaN show as nothing."""
    from markupsafe import Markup

    if hasattr(x, "__html__"):
        return x
    return Markup(html.escape(str(_blank(x))))


def _env():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              finalize=_escape_value)


def _template(name: str):
    """A template of :data:`TEMPLATES`, rendered with autoescaping (user text is escaped by default)."""
    return _env().get_template(name)


def _render(name: str, **data) -> str:
    return _template(name).render(**data)


def _num(x, fmt="{:.1f}") -> str:
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return str(_blank(x))
    return fmt.format(xf) if np.isfinite(xf) else "–"


#: a cell text without spaces longer than this (a path, a SHA-256) may break anywhere, so that its
#: table still fits the page; shorter words never break
LONG_TOKEN = 20


def _cell(val):
    """A plain table cell: its text, marked ``long`` when it is one long unbreakable token."""
    text = str(_blank(val))
    return {"text": val, "cls": "long"} if len(text) > LONG_TOKEN and not any(c.isspace() for c in text) else val


def _table(df: pd.DataFrame, columns=None, status_col=None, fmt=None) -> dict:
    """A table for the ``table`` macro (templates/macros.html.j2): the cells of ``columns`` of ``df``,
    numbers formatted by ``fmt`` (column -> format), ``status_col`` coloured by its value."""
    fmt = fmt or {}
    columns = columns or list(df.columns)
    rows = []
    for _, r in df.iterrows():
        row = []
        for c in columns:
            val = r.get(c)
            if c == status_col:
                row.append({"text": val, "cls": _blank(val)})
            elif c in fmt:
                row.append({"text": _num(val, fmt[c]), "cls": "num"})
            else:
                row.append(_cell(val))
        rows.append(row)
    return {"headers": columns, "rows": rows}


@dataclass
class ReportInput:
    """What every report section sees.

    Attributes
    ----------
    out : Path
        The output folder (overlays are read from it; ``report_data/`` is written in it).
    title : str
        The experiment's name.
    tables : dict
        :func:`exoimage.experiment.tables.assemble`.
    records : list of ImageRecord
        The per-image records (galleries).
    run_stats : dict
        How the run went (executor, images computed / reused).
    params : dict
        The parameters, shown in the provenance section.
    rules_source : str
        Where the QC rules come from.
    """

    out: Path
    title: str
    tables: dict
    records: list
    run_stats: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    rules_source: str = ""

    @property
    def data_dir(self) -> Path:
        return self.out / "report_data"


#: The report's sections in page order: functions ReportInput -> HTML.
SECTIONS: list[Callable[[ReportInput], str]] = []


def report_section(fn: Callable[[ReportInput], str]) -> Callable[[ReportInput], str]:
    """Decorator: append ``fn`` to :data:`SECTIONS` (the page shows sections in registration order)."""
    SECTIONS.append(fn)
    return fn


@report_section
def header_section(r: ReportInput) -> str:
    """Title, experiment name, version and date (the page's head is templates/report.html.j2)."""
    return _render("header.html.j2", title=r.title, version=__version__,
                   date=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"))


def _has_tem(r: "ReportInput") -> bool:
    return any(x.kind == "tem" for x in r.records) or bool(len(r.tables["tem_images"]))


def _has_blots(r: "ReportInput") -> bool:
    return any(x.kind == "blot" for x in r.records) or bool(len(r.tables["blot_images"]))


def _has_nta(r: "ReportInput") -> bool:
    f = r.tables.get("nta_files")
    return f is not None and bool(len(f))


def _analysis(row) -> str:
    """The analysis a QC row belongs to (its group in the report)."""
    c = str(row.check)
    if c.startswith("MISEV"):
        return "MISEV"
    if row.scope == "nta file" or c.startswith("nta"):
        return "NTA"
    if row.scope == "blot" or c == "replicate CV":
        return "Western blot"
    if row.scope == "experiment":
        return "experiment"
    return "TEM"


def _qc_grouped(r: "ReportInput") -> pd.DataFrame:
    """The QC rows with ``group`` (their sample, or 'all samples' for blot and experiment checks),
    ``analysis`` and the number of their source in the references list (``ref``), in report order:
    FAIL, then WARN, then PASS; within a status by sample (table order) and analysis."""
    from .qc import sample_qc_rows

    qc = r.tables["qc"]
    if not len(qc):
        return qc.assign(group=[], analysis=[], ref=[])
    group = pd.Series("all samples", index=qc.index, dtype=object)
    for s, rows in sample_qc_rows(qc, r.tables).items():
        group[rows.index] = s
    order = {s: i for i, s in enumerate(list(r.tables["samples"]["sample"]) + ["all samples"])}
    nta_files = r.tables.get("nta_files")
    rule = qc["source"].astype(str).map(lambda src: _split_source(
        src, set(nta_files["file"].astype(str)) if nta_files is not None and len(nta_files) else set())[0])
    refs = {src: i + 1 for i, src in enumerate(dict.fromkeys(rule))}
    g = qc.assign(group=group, analysis=[_analysis(x) for x in qc.itertuples()],
                  ref=rule.map(refs))
    rank = {"FAIL": 0, "WARN": 1, "PASS": 2}
    g = g.assign(_st=g["status"].map(rank), _g=g["group"].map(order), _i=range(len(g)))
    return g.sort_values(["_st", "_g", "analysis", "_i"], kind="stable").drop(columns=["_st", "_g", "_i"])


def _split_source(source: str, files: set) -> tuple[str, list]:
    """(the rule's source, the input files it was read from): an NTA check's source starts with
    the export files it read (``nta/S1/x.csv: particles per frame; range: ...``), so the same rule
    read from three files is one reference, not three."""
    head, sep, rest = source.partition(": ")
    names = [h.strip() for h in head.split(",")]
    if sep and rest and names and all(n in files for n in names):
        return rest, names
    return source, []


@report_section
def verdict_section(r: ReportInput) -> str:
    """The verdict first: per sample PASS / WARN / FAIL and the checks behind it, then what was
    measured and what was not."""
    samples = r.tables["samples"]
    g = _qc_grouped(r)

    def checks(rows, sample=None):
        return [{"status": b.status, "check": b.check, "item": "" if b.item == sample else b.item,
                 "reason": b.reason} for b in rows.itertuples()]

    norm = r.tables["normalized"]
    blotted = set(norm["sample"].dropna().astype(str)) if len(norm) and "sample" in norm else set()

    def not_measured(x) -> list:
        """The analyses of the experiment that have no data for this sample."""
        out = []
        if _has_tem(r) and not (getattr(x, "tem_n", 0) or 0) > 0:
            out.append("no TEM vesicle sized")
        if _has_nta(r) and not (getattr(x, "nta_n_videos", 0) or 0) > 0:
            out.append("no NTA video")
        if _has_blots(r) and str(x.sample) not in blotted:
            out.append("no Western blot lane")
        return out

    items = []
    for x in samples.itertuples():
        bad = g[(g["group"] == x.sample) & (g["status"] != "PASS")] if len(g) else g
        items.append({"status": getattr(x, "qc_status", "PASS") or "PASS", "sample": x.sample,
                      "label": "" if str(x.label) == str(x.sample) else x.label, "checks": checks(bad, x.sample),
                      "missing": not_measured(x)})
    other = g[(g["group"] == "all samples") & (g["status"] != "PASS")] if len(g) else g
    measured, missing = [], []
    (measured if _has_tem(r) else missing).append("TEM vesicle size")
    markers = sorted(set(r.tables["normalized"]["marker"].dropna().astype(str))) if len(r.tables["normalized"]) \
        else []
    if _has_blots(r):
        measured.append("Western blot" + (f" ({', '.join(markers)})" if markers else ""))
    else:
        missing.append("Western blot markers")
    (measured if _has_nta(r) else missing).append("NTA concentration and size")
    if markers:  # the MISEV2018 marker categories without a marker on any blot
        from .layout import marker_category
        cats = {marker_category(m) for m in markers}
        if "transmembrane" not in cats:
            missing.append("a transmembrane EV marker (CD63, CD81, CD9...)")
        if "cytosolic" not in cats:
            missing.append("a cytosolic EV marker (TSG101, ALIX...)")
        if not cats & {"negative", "purity"}:
            missing.append("a negative marker (calnexin, ApoA1...)")
    ref = r.params.get("reference_sample") if isinstance(r.params, dict) else None
    return _template("verdict.html.j2").render(samples=items, other=checks(other), measured=measured,
                                               missing=missing, reference=ref, has_markers=bool(markers))


@report_section
def summary_section(r: ReportInput) -> str:
    """One row per sample: TEM D50 with its CI, NTA, marker signal, QC status and its reasons."""
    samples = r.tables["samples"]
    marker_cols = [c for c in samples.columns if c.endswith("_relative_mean")]
    summ = samples.copy()
    summ["TEM D50 [95% CI] (nm)"] = [
        f"{_num(x.tem_d50_nm, '{:.1f}')} [{_num(x.tem_d50_ci_low_nm, '{:.1f}')}–"
        f"{_num(x.tem_d50_ci_high_nm, '{:.1f}')}]" for x in samples.itertuples()]
    for c in marker_cols:
        m = c[: -len("_relative_mean")]
        sd = samples.get(f"{m}_relative_sd")
        summ[f"{m} (rel.)"] = [f"{_num(a, '{:.2f}')} ± {_num(b, '{:.2f}')}" for a, b in
                               zip(samples[c], sd if sd is not None else [np.nan] * len(samples))]
    nta_cols = []
    if "nta_n_videos" in samples and (samples["nta_n_videos"].fillna(0) > 0).any():
        summ["NTA conc. (/ml)"] = [_conc(x.nta_concentration_per_ml, x.nta_concentration_se_per_ml)
                                   for x in samples.itertuples()]
        summ["NTA D50 ± SE (nm)"] = [f"{_num(a)} ± {_num(b)}" if np.isfinite(float(b)) else _num(a) for a, b in
                                     zip(samples["nta_d50_nm"], samples["nta_d50_nm_se"].astype(float))]
        nta_cols = ["NTA conc. (/ml)", "NTA D50 ± SE (nm)"]
    if "qc_reason" not in summ:
        summ["qc_reason"] = ""
    summ = summ.rename(columns={"qc_reason": "why (checks not passed)", "tem_n": "TEM n sized",
                                "n_tem_images": "TEM images", "tem_span": "TEM span"})
    tem_cols = ["TEM images", "TEM n sized", "TEM D50 [95% CI] (nm)", "TEM span"] if _has_tem(r) else []
    summary_cols = (["sample", "label"] + tem_cols + nta_cols
                    + [f"{c[: -len('_relative_mean')]} (rel.)" for c in marker_cols]
                    + ["qc_status", "why (checks not passed)"])
    return _render("summary.html.j2", has_tem=bool(tem_cols), has_markers=bool(marker_cols),
                   summary=_table(summ, summary_cols, status_col="qc_status",
                                  fmt={"TEM span": "{:.2f}", "TEM images": "{:.0f}", "TEM n sized": "{:.0f}"}))


@report_section
def qc_section(r: ReportInput) -> str:
    """The QC checks: failures and warnings first, grouped by sample and analysis; the passed checks
    collapsed; each source once, in a numbered references list."""
    g = _qc_grouped(r)
    headers = ["sample", "analysis", "item", "check", "status", "reason", "source"]

    def table(df):
        return {"headers": headers,
                "rows": [[_cell(x.group), x.analysis, _cell(x.item), x.check, {"text": x.status, "cls": x.status},
                          _cell(x.reason), {"ref": int(x.ref)}] for x in df.itertuples()]}

    if not len(g):
        return _render("qc.html.j2", rules_source=r.rules_source, n_checks=0)
    counts = g["status"].value_counts()
    ok = g[g["status"] == "PASS"]
    nta_files = r.tables.get("nta_files")
    files = set(nta_files["file"].astype(str)) if nta_files is not None and len(nta_files) else set()
    refs = {}
    for n, src in zip(g["ref"].astype(int), g["source"].astype(str)):
        text, where = _split_source(src, files)
        refs.setdefault(n, (text, []))[1].extend(w for w in where if w not in refs[n][1])
    refs = [(n, text + (f" (from {', '.join(where)})" if where else "")) for n, (text, where) in sorted(refs.items())]
    return _render("qc.html.j2", rules_source=r.rules_source, n_checks=len(g),
                   counts=[(st, int(counts.get(st, 0))) for st in ("FAIL", "WARN", "PASS")],
                   bad=table(g[g["status"] != "PASS"]), n_pass=len(ok),
                   passed=[(grp, table(d)) for grp, d in ok.groupby("group", sort=False)], refs=refs)


@report_section
def tem_section(r: ReportInput) -> str:
    """Size histograms and KDEs per sample, the size table, and the gallery of fields."""
    from ..outputs import write_table

    samples = r.tables["samples"]
    per_sample_png, overlay_png, curves = size_figures(r.tables["vesicles"], samples)
    if len(curves):
        write_table(curves, r.data_dir / "tem_size_kde.csv")
    if not _has_tem(r):
        return ""  # an experiment without TEM shows no TEM section
    stats = None
    if per_sample_png:
        st_cols = ["sample", "tem_n", "tem_mean_nm", "tem_sd_nm", "tem_median_nm", "tem_mode_nm", "tem_d10_nm",
                   "tem_d50_nm", "D50 95 % CI (nm)", "tem_d90_nm", "tem_span", "tem_border_fraction"]
        samples = samples.assign(**{"D50 95 % CI (nm)": [
            f"{_num(a, '{:.1f}')}–{_num(b, '{:.1f}')}" for a, b in
            zip(samples["tem_d50_ci_low_nm"], samples["tem_d50_ci_high_nm"])]})
        names = {"tem_n": "n sized", "tem_mean_nm": "mean (nm)", "tem_sd_nm": "SD (nm)", "tem_median_nm":
                 "median (nm)", "tem_mode_nm": "mode (nm)", "tem_d10_nm": "D10 (nm)", "tem_d50_nm": "D50 (nm)",
                 "tem_d90_nm": "D90 (nm)", "tem_span": "span", "tem_border_fraction": "border-cut fraction"}
        stats = _table(samples.rename(columns=names), [names.get(c, c) for c in st_cols],
                       fmt={names.get(c, c): "{:.1f}" for c in st_cols[2:]} | {
                           "n sized": "{:.0f}", "span": "{:.2f}", "border-cut fraction": "{:.2f}"})
    fields = []
    for x in (x for x in r.records if x.kind == "tem"):
        row = x.image_row
        if row.get("status") != "ok" or not x.overlay:
            fields.append({"rel": x.rel, "error": row.get("error") or ""})
            continue
        g = _field_gallery(r.out, x)  # made by the worker (else from the overlay file, decoded once)
        fields.append({"rel": x.rel, "error": None, "sample": x.sample, "n_vesicles": row.get("n_vesicles"),
                       "pixel_size": _num(row.get("pixel_size_nm"), "{:.3g}"),
                       "pixel_size_source": row.get("pixel_size_source"),
                       "field": _micrograph(*g["field"][:1], f"{x.rel}: detected vesicles outlined",
                                            *g["field"][1:]),
                       "closeup": None if g.get("closeup") is None else _micrograph(
                           g["closeup"][0], "close-up", g["closeup"][1], g["closeup"][2])})
    return _render("tem.html.j2", stats=stats, fields=fields,
                   per_sample=_figure(per_sample_png, "per-sample size histograms"),
                   overlay=_figure(overlay_png, "all samples, size KDE"))


def _figure(png, alt: str) -> dict | None:
    """A plot for the ``img`` macro: its PNG, alt text and axes labels (``data-axes``)."""
    if not png:
        return None
    return {"png": png, "alt": alt, "axes": [f"{x} | {y}" for x, y in getattr(png, "axes", ())]}


@report_section
def nta_section(r: ReportInput) -> str:
    """NTA concentration and size, with the TEM size density of the same sample."""
    if not _has_nta(r):
        return ""  # an experiment without NTA shows no NTA section
    return _nta_section(r.tables, r.tables["samples"], r.data_dir)


@report_section
def blot_section(r: ReportInput) -> str:
    """Blot overlays (lanes named by their sample, kDa marks from the ladder), the normalised
    marker signal per sample and its replicate table."""
    if not _has_blots(r):
        return ""  # an experiment without blots shows no blot section
    blots = []
    for x in (x for x in r.records if x.kind == "blot"):
        row = x.image_row or {}
        if not x.overlay:
            blots.append({"rel": x.rel, "error": row.get("error") or ""})
            continue
        fig, note = blot_figure(r.out / x.overlay, x)
        blots.append({"rel": x.rel, "error": None, "marker": x.marker or "?", "n_lanes": row.get("n_lanes"),
                      "n_bands": row.get("n_bands"), "n_saturated": row.get("n_saturated_bands"),
                      "overlay": fig, "axes_note": note,
                      "ladder_check": getattr(x, "ladder_check", None) or {}})
    markers = r.tables["markers"]
    return _render("blots.html.j2", blots=blots,
                   markers_fig=_figure(marker_figure(r.tables["normalized"]), "normalised marker signal per sample"),
                   markers=_table(markers.rename(columns={"n": "replicates", "mean": "mean (rel.)",
                                                          "sd": "SD (rel.)", "cv_pct": "CV (%)"}),
                                  fmt={"mean (rel.)": "{:.3f}", "SD (rel.)": "{:.3f}", "CV (%)": "{:.1f}",
                                       "replicates": "{:.0f}"}) if len(markers) else None)


#: libraries whose version is shown in the provenance (distribution names)
KEY_LIBRARIES = ("numpy", "scipy", "scikit-image", "opencv-python-headless", "pandas", "matplotlib", "tifffile",
                 "imagecodecs", "dask", "jinja2")


def _versions() -> list:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in KEY_LIBRARIES:
        try:
            out.append((name, version(name)))
        except PackageNotFoundError:
            out.append((name, "not installed"))
    return out


def _param_units() -> dict:
    """(section, key) -> unit, from the parameter field metadata (exoimage.params)."""
    from ..blot import BlotParams
    from ..blot.plan import NormalizationSpec
    from ..params import param_meta, toml_names
    from ..tem import TemParams

    units = {("tem", f): m.get("unit", "") for f, m in param_meta(TemParams).items()}
    for cls in (BlotParams, NormalizationSpec):
        meta = param_meta(cls)
        units.update({("blot", k): meta[f].get("unit", "") for k, f in toml_names(cls).items()})
    return units


def _show(v) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(_show(x) for x in v)
    if isinstance(v, float):
        return f"{v:g}"
    return "" if v is None else str(v)


def _param_rows(params: dict) -> list:
    """(section, parameter, value, unit) of the run's parameters, one row each."""
    units = _param_units()
    rows = [("tem", k, _show(v), units.get(("tem", k), "")) for k, v in sorted(params.get("tem", {}).items())]
    for name, opts in sorted(params.get("blots", {}).items()):
        rows += [(f"blot {name}", k, _show(v), units.get(("blot", k), "")) for k, v in opts.items() if v is not None]
    rows += [("TEM pixel size", k, _show(v), "nm/px") for k, v in sorted(params.get("pixel_size_overrides", {}).items())]
    for sample, opts in sorted(params.get("nta", {}).items()):
        rows += [(f"NTA {sample}", k, _show(v), {"protein_ug": "µg", "volume_ml": "ml"}.get(k, ""))
                 for k, v in opts.items()]
    for k in ("reference_sample", "rules"):
        if k in params:
            rows.append(("QC", k, _show(params[k]), ""))
    known = {"tem", "blots", "pixel_size_overrides", "nta", "reference_sample", "rules"}
    for k, v in params.items():  # anything else (an interactive session's per-image provenance), flattened
        if k in known:
            continue
        if isinstance(v, dict):
            for sub, val in v.items():
                rows += [(f"{k} {sub}", key, text, units.get(("tem", key.split(".")[-1]), ""))
                         for key, text in _flatten(val)]
        else:
            rows.append(("", k, _show(v), ""))
    return rows


def _flatten(v, prefix: str = "") -> list:
    """(dotted key, text) of a nested dict; lists of dicts as compact JSON."""
    import json

    if isinstance(v, dict):
        return [kv for k, x in v.items() for kv in _flatten(x, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(v, (list, tuple)) and any(isinstance(x, (dict, list)) for x in v):
        return [(prefix, json.dumps(v, default=str, ensure_ascii=False))]
    return [(prefix, _show(v))]


@report_section
def provenance_section(r: ReportInput) -> str:
    """Command, versions, platform, parameters with units and the SHA-256 of every input; the
    full record is run.json next to the report."""
    import platform

    t, stats = r.tables, r.run_stats
    run_rows = [("command", stats.get("command") or "(called from Python, not from the command line)"),
                ("exoimage", __version__), ("Python", platform.python_version()), ("platform", platform.platform()),
                ("executor", stats.get("executor")),
                ("images", f"{stats.get('n_computed')} computed, {stats.get('n_cached')} reused from an earlier "
                           "identical run")] + [(f"{n} version", v) for n, v in _versions()]
    nta_files = t.get("nta_files")
    nta_prov = (nta_files[["file", "sha256"]].rename(columns={"file": "image"}) if nta_files is not None
                and len(nta_files) else None)
    files = concat_tables([t["tem_images"][["image", "sha256"]], t["blot_images"][["image", "sha256"]], nta_prov],
                          ["image", "sha256"])
    # exoimage run writes run.json next to the report (after it); an interactive session writes none
    return _render("provenance.html.j2", run={"headers": ["", ""], "rows": [[_cell(v) for v in x] for x in run_rows]},
                   params={"headers": ["section", "parameter", "value", "unit"],
                           "rows": [[_cell(v) for v in x] for x in _param_rows(r.params)]},
                   inputs=_table(files.rename(columns={"image": "input", "sha256": "SHA-256"}), ["input", "SHA-256"]),
                   run_json=bool(r.run_stats.get("writes_run_json")))


def write_report_data(r: ReportInput) -> None:
    """The tables behind the summary, the QC list and the TEM and blot figures, in ``report_data/``."""
    from ..outputs import write_table

    t, d = r.tables, r.data_dir
    qc = t["qc"]
    write_table(t["samples"], d / "summary_samples.csv")
    write_table(qc if len(qc) else pd.DataFrame(columns=QC_COLUMNS), d / "qc_checks.csv")
    write_table(t["vesicles"], d / "tem_size_histograms.csv")
    write_table(t["normalized"], d / "blot_marker_signal.csv")
    write_table(t["markers"], d / "blot_marker_replicates.csv")


def write_report(out, tables: dict, records: list, *, title: str, run_stats: dict | None = None,
                 params: dict | None = None, rules_source: str = "", sections=None) -> Path:
    """Write ``out/report.html`` and ``out/report_data/*.csv``; returns the report path.

    Parameters
    ----------
    out : path
        Output folder (holds the records' overlays).
    tables : dict
        :func:`exoimage.experiment.tables.assemble`.
    records : list of ImageRecord
    title : str
        The experiment's name.
    run_stats, params, rules_source
        Shown in the provenance and QC sections.
    sections : list of callables, optional
        The sections to render (default :data:`SECTIONS`).
    """
    from ..outputs import atomic_write_bytes

    r = ReportInput(out=Path(out), title=title, tables=tables, records=list(records), run_stats=run_stats or {},
                    params=params or {}, rules_source=rules_source)
    write_report_data(r)
    from markupsafe import Markup

    # each section is a template with autoescaping (templates/*.html.j2) and returns its HTML; the page
    # layout (templates/report.html.j2) joins them
    parts = [Markup(h) for h in (fn(r) for fn in (SECTIONS if sections is None else sections)) if h]
    html_text = _render("report.html.j2", title=r.title, css=Markup(_CSS), sections=parts)
    path = r.out / "report.html"
    atomic_write_bytes(path, html_text.encode("utf-8"))
    return path


def _conc(value, se) -> str:
    """A concentration ± SE as ``1.23e+11 ± 4.5e+09`` ('–' when missing)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    if not np.isfinite(v):
        return "–"
    try:
        e = float(se)
    except (TypeError, ValueError):
        e = float("nan")
    return f"{v:.2e} ± {e:.1e}" if np.isfinite(e) else f"{v:.2e}"


def _nta_section(tables: dict, samples: pd.DataFrame, data_dir: Path) -> str:
    """HTML of the NTA section (templates/nta.html.j2; its tables in ``report_data/``)."""
    from ..outputs import write_table

    files = tables.get("nta_files")
    has = samples[samples["nta_n_videos"].fillna(0) > 0] if "nta_n_videos" in samples else samples.iloc[:0]
    nta_png, curves = nta_tem_figure(tables["nta_density"], tables["vesicles"], samples)
    write_table(curves, data_dir / "nta_tem_size_density.csv")
    write_table(has[["sample"] + [c for c in samples.columns if c.startswith(("nta_", "tem_nta_"))]
                    + ["tem_d50_nm", "protein_ug", "volume_ml", "particles_per_ug"]],
                data_dir / "nta_samples.csv")
    table, undiluted = None, None
    if len(has):
        t = has.copy()
        t["concentration (particles/ml) ± SE"] = [
            _conc(a, b) for a, b in zip(has["nta_concentration_per_ml"], has["nta_concentration_se_per_ml"])]
        t["D50 ± SE (nm)"] = [f"{_num(a)} ± {_num(b)}" if np.isfinite(b) else _num(a)
                              for a, b in zip(has["nta_d50_nm"], has["nta_d50_nm_se"].astype(float))]
        t["TEM D50 [95% CI] (nm)"] = [
            f"{_num(x.tem_d50_nm)} [{_num(x.tem_d50_ci_low_nm)}–{_num(x.tem_d50_ci_high_nm)}]"
            if np.isfinite(float(x.tem_d50_nm)) else "–" for x in has.itertuples()]
        t["particles / µg"] = [f"{x:.3g}" if np.isfinite(x) else "–" for x in has["particles_per_ug"].astype(float)]
        t["dilution"] = [d if str(d).strip() else "not recorded" for d in has["nta_dilution_factors"].fillna("")]
        t["empty videos"] = [f"{int(n)} ({rule})" if n and n > 0 else "0"
                             for n, rule in zip(has["nta_n_empty_videos"].fillna(0), has["nta_empty_video_rule"])]
        t = t.rename(columns={"nta_instrument": "instrument", "nta_n_files": "files", "nta_n_videos": "videos",
                              "nta_concentration_cv_percent": "CV (%)", "nta_concentration_of": "concentration of",
                              "nta_concentration_dilutions": "from dilution(s)",
                              "nta_concentration_basis": "why these dilutions",
                              "nta_mode_nm": "mode (nm)", "nta_d10_nm": "D10 (nm)", "nta_d90_nm": "D90 (nm)",
                              "nta_volume_d50_nm": "volume D50 (nm)", "nta_percentile_convention": "D-value rule",
                              "tem_d50_nm": "TEM D50 (nm)", "tem_nta_d50_ratio": "TEM / NTA D50",
                              "protein_ug": "protein (µg)"})
        several = (has["nta_concentration_basis"].fillna("").str.len() > 0) & \
            (has["nta_dilution_factors"].fillna("").str.contains(";"))
        any_tem = "tem_d50_nm" in has and np.isfinite(has["tem_d50_nm"].astype(float)).any()
        # two tables (concentration, size) rather than one of 20 columns: each fits the page
        conc_cols = (["sample", "instrument", "files", "videos", "dilution"]
                     + (["from dilution(s)", "why these dilutions"] if several.any() else [])
                     + ["concentration of", "concentration (particles/ml) ± SE", "CV (%)"]
                     + (["empty videos"] if (has["nta_n_empty_videos"].fillna(0) > 0).any() else [])
                     + ["protein (µg)", "particles / µg"])
        size_cols = (["sample", "mode (nm)", "D10 (nm)", "D50 ± SE (nm)", "D90 (nm)", "volume D50 (nm)",
                      "D-value rule"] + (["TEM D50 [95% CI] (nm)", "TEM / NTA D50"] if any_tem else []))
        fmt = {"files": "{:.0f}", "videos": "{:.0f}", "CV (%)": "{:.1f}", "mode (nm)": "{:.1f}",
               "D10 (nm)": "{:.1f}", "D90 (nm)": "{:.1f}", "volume D50 (nm)": "{:.1f}", "TEM D50 (nm)": "{:.1f}",
               "TEM / NTA D50": "{:.2f}", "protein (µg)": "{:.3g}"}
        table = [_table(t, conc_cols, fmt=fmt), _table(t, size_cols, fmt=fmt)]
        und = has["nta_concentration_of"].eq("undiluted sample")
        undiluted = "all" if und.all() else ("none" if not und.any() else "some")
    f = files.copy()
    f["read"] = f["status"].map({"ok": "PASS", "error": "FAIL", "companion": "–"}).fillna("–")
    f["note"] = [e if st == "error" else ("per-video table of a NanoSight summary; not used by the run's tables"
                                         if st == "companion" else "")
                 for st, e in zip(f["status"], f["error"])]
    if "dilution_source" not in f:
        f["dilution_source"] = ""
    w = tables.get("nta_warnings")
    return _render(
        "nta.html.j2", samples=table, undiluted=undiluted,
        figure=_figure(nta_png, "NTA size distribution with the TEM size density, per sample"),
        files=_table(f.rename(columns={"software_version": "software", "n_videos": "videos",
                                       "dilution_factor": "dilution", "dilution_applied_by": "applied by",
                                       "dilution_source": "dilution from"}),
                     ["file", "sample", "instrument", "software", "videos", "dilution", "applied by",
                      "dilution from", "read", "note"], status_col="read",
                     fmt={"videos": "{:.0f}", "dilution": "{:g}"}),
        warnings=_table(w, ["sample", "file", "video", "section", "item", "value"]) if w is not None and len(w)
        else None)


# ---------------------------------------------------------------------------
# PDF (printed by a real browser engine: the page's print stylesheet decides the layout)

#: environment variable naming the browser that prints the PDF (an executable name or path)
BROWSER_ENV = "EXOIMAGE_BROWSER"
#: executables tried in order when neither ``browser=`` nor $EXOIMAGE_BROWSER names one (Chromium-based:
#: ``--print-to-pdf`` is a Chromium headless switch)
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
#: seconds a browser may take to print the report before it is stopped (the sample experiment takes ~2 s)
PDF_TIMEOUT_S = 180
#: the Chromium switches of a headless print that touches no network and no profile
_CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--no-pdf-header-footer")


class BrowserNotFound(RuntimeError):
    """No Chromium-based browser to print the PDF with (the message says what to install)."""


def find_browser(browser: str | None = None) -> str:
    """The browser executable that prints the PDF.

    Parameters
    ----------
    browser : str, optional
        An executable name or path; default ``$EXOIMAGE_BROWSER``, else the first of
        :data:`BROWSER_NAMES` on ``PATH``.

    Raises
    ------
    BrowserNotFound
        One line naming what was looked for and what to install.
    """
    import os
    import shutil

    wanted = browser or os.environ.get(BROWSER_ENV) or None
    if wanted:
        found = shutil.which(wanted)
        if not found:
            origin = "--browser" if browser else f"${BROWSER_ENV}"
            raise BrowserNotFound(f"{origin} {wanted}: no such executable; give a Chromium or Chrome executable "
                                  "(Debian: apt-get install chromium)")
        return found
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserNotFound(f"no browser to print the PDF: none of {', '.join(BROWSER_NAMES)} is on PATH; install "
                          f"Chromium (Debian: apt-get install chromium) or set ${BROWSER_ENV} to a Chromium or "
                          "Chrome executable")


def write_pdf(html_path, pdf_path=None, *, browser: str | None = None, timeout_s: float = PDF_TIMEOUT_S) -> Path:
    """Print ``report.html`` to a PDF (A4, the report's print stylesheet) with headless Chromium.

    Parameters
    ----------
    html_path : path
        The report (self-contained HTML).
    pdf_path : path, optional
        Default: ``report.pdf`` next to ``html_path``. Written to a temporary name and renamed,
        so a failed print leaves no partial PDF.
    browser : str, optional
        See :func:`find_browser`.

    Raises
    ------
    BrowserNotFound
        No browser (see :func:`find_browser`).
    RuntimeError
        One line: the browser failed, timed out or wrote no PDF.
    """
    import os
    import subprocess
    import tempfile

    html_path = Path(html_path).resolve()
    pdf_path = Path(pdf_path) if pdf_path is not None else html_path.with_suffix(".pdf")
    exe = find_browser(browser)
    with tempfile.TemporaryDirectory(prefix="exoimage-pdf-") as tmp:
        tmp_pdf = Path(tmp) / "report.pdf"
        cmd = [exe, *_CHROMIUM_ARGS, f"--user-data-dir={Path(tmp) / 'profile'}", f"--print-to-pdf={tmp_pdf}",
               html_path.as_uri()]
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=timeout_s, env={**os.environ, "HOME": tmp})
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{pdf_path}: {exe} did not print the report within {timeout_s:g} s") from None
        except OSError as exc:
            raise RuntimeError(f"{pdf_path}: cannot start {exe} ({exc.strerror or exc})") from None
        ok = tmp_pdf.is_file() and tmp_pdf.read_bytes()[:5] == b"%PDF-"
        if p.returncode != 0 or not ok:
            last = [ln for ln in p.stderr.decode("utf-8", "replace").splitlines() if ln.strip()][-1:]
            why = f"exit status {p.returncode}" + (f": {last[0].strip()[:200]}" if last else "")
            raise RuntimeError(f"{pdf_path}: {Path(exe).name} wrote no PDF ({why})")
        from ..outputs import atomic_write_bytes

        atomic_write_bytes(pdf_path, tmp_pdf.read_bytes())
    return pdf_path
