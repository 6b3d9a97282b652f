"""The self-contained QC report (``report.html``): figures and HTML from an experiment's tables.

The tables come from :func:`exoimage.experiment.tables.assemble` (statistics in
:mod:`exoimage.stats`, checks in :mod:`exoimage.experiment.qc`); this module only draws
and writes. The page is a list of sections (:data:`SECTIONS`): each is a
function that takes the :class:`ReportInput` (the assembled tables, the
records, the run's parameters and statistics) and returns its HTML, and
:func:`write_report` joins them in order. A new section is one function
registered with :func:`report_section`. ``report.html`` embeds plots and
thumbnails as PNG data (no external scripts, styles or fonts);
``report_data/`` holds the table behind every figure.
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

__all__ = ["write_report", "ReportInput", "SECTIONS", "report_section", "size_figures", "marker_figure",
           "nta_tem_figure"]


# ---------------------------------------------------------------------------
# figures


def _fig_png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


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
        ax.set_ylabel("relative to reference lane", fontsize=8)
    return _fig_png(fig)


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


def _closeup(path: Path, vesicles: pd.DataFrame, image_row, size: int = 260) -> str | None:
    """A close-up crop of the overlay around the vesicle nearest the sample's median size."""
    import cv2

    img = cv2.imread(str(path))
    if img is None or not len(vesicles):
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
    return base64.b64encode(buf.tobytes()).decode("ascii") if ok else None


# ---------------------------------------------------------------------------
# HTML

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1180px;color:#222;
line-height:1.4;padding:0 16px}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 7px;
text-align:left;vertical-align:top}th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.PASS{background:#e5f5e0;color:#1b5e20;font-weight:600}.WARN{background:#fff3cd;color:#7a5900;font-weight:600}
.FAIL{background:#fde0dc;color:#b71c1c;font-weight:600}.muted{color:#666;font-size:.85em}
.gallery{display:flex;flex-wrap:wrap;gap:12px}.gallery figure{margin:0;border:1px solid #ddd;padding:6px;
background:#fafafa}.gallery figcaption{font-size:.8em;color:#444;max-width:420px;word-break:break-all}
img{max-width:100%;height:auto}.scroll{max-width:100%;overflow-x:auto}pre{max-width:100%;overflow-x:auto;
white-space:pre-wrap;word-break:break-all}.verdict{border:2px solid #999;padding:8px 14px;border-radius:6px}
.verdict li{margin:4px 0}.badge{padding:1px 6px;border-radius:3px}details{margin:8px 0}
summary{cursor:pointer;font-weight:600}.gallery.tem figure{box-sizing:border-box;width:calc(50% - 6px)}
.gallery.tem figure img{width:calc(50% - 3px);vertical-align:top}sup{font-size:.75em}ol.refs{font-size:.85em}
"""


#: the report's Jinja2 templates (page layout, verdict block); autoescaping on for every template
TEMPLATES = Path(__file__).with_name("templates")


def _template(name: str):
    """A template of :data:`TEMPLATES`, rendered with autoescaping (user text is escaped by default)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.get_template(name)


def _e(x) -> str:
    return html.escape("" if x is None or (isinstance(x, float) and not np.isfinite(x)) else str(x))


def _num(x, fmt="{:.1f}") -> str:
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return _e(x)
    return fmt.format(xf) if np.isfinite(xf) else "–"


def _table(df: pd.DataFrame, columns=None, status_col=None, fmt=None) -> str:
    fmt = fmt or {}
    columns = columns or list(df.columns)
    out = ["<div class='scroll'><table><thead><tr>", *[f"<th>{_e(c)}</th>" for c in columns], "</tr></thead><tbody>"]
    for _, r in df.iterrows():
        out.append("<tr>")
        for c in columns:
            val = r.get(c)
            if c == status_col:
                out.append(f'<td class="{_e(val)}">{_e(val)}</td>')
            elif c in fmt:
                out.append(f'<td class="num">{_num(val, fmt[c])}</td>')
            else:
                out.append(f"<td>{_e(val)}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _raw_table(headers, rows) -> str:
    """A table from already-escaped cell HTML (``rows``: lists of (html, css class or ''))."""
    out = ["<div class='scroll'><table><thead><tr>", *[f"<th>{_e(h)}</th>" for h in headers], "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td class='{c}'>{h}</td>" if c else f"<td>{h}</td>" for h, c in row) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _img(b64: str | None, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{b64}">' if b64 else ""


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
    return "\n".join([
        f"<header><h1>EV characterisation QC report</h1><p class='muted'>Experiment <b>{_e(r.title)}</b> · "
        f"exoimage {_e(__version__)} · {_e(_dt.datetime.now().strftime('%Y-%m-%d %H:%M'))}</p></header>"])


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
    refs = {src: i + 1 for i, src in enumerate(dict.fromkeys(qc["source"].astype(str)))}
    g = qc.assign(group=group, analysis=[_analysis(x) for x in qc.itertuples()],
                  ref=qc["source"].astype(str).map(refs))
    rank = {"FAIL": 0, "WARN": 1, "PASS": 2}
    g = g.assign(_st=g["status"].map(rank), _g=g["group"].map(order), _i=range(len(g)))
    return g.sort_values(["_st", "_g", "analysis", "_i"], kind="stable").drop(columns=["_st", "_g", "_i"])


def _ref_link(n) -> str:
    return f"<sup><a href='#ref-{int(n)}'>[{int(n)}]</a></sup>"


@report_section
def verdict_section(r: ReportInput) -> str:
    """The verdict first: per sample PASS / WARN / FAIL and the checks behind it, then what was
    measured and what was not."""
    samples = r.tables["samples"]
    g = _qc_grouped(r)

    def checks(rows, sample=None):
        return [{"status": b.status, "check": b.check, "item": "" if b.item == sample else b.item,
                 "reason": b.reason} for b in rows.itertuples()]

    items = []
    for x in samples.itertuples():
        bad = g[(g["group"] == x.sample) & (g["status"] != "PASS")] if len(g) else g
        items.append({"status": getattr(x, "qc_status", "PASS") or "PASS", "sample": x.sample,
                      "label": "" if str(x.label) == str(x.sample) else x.label, "checks": checks(bad, x.sample)})
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
    if markers:
        from .layout import marker_category
        if not {marker_category(m) for m in markers} & {"negative", "purity"}:
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
    return "\n".join([
        "<section id='summary'><h2>Summary</h2>",
        _table(summ, summary_cols, status_col="qc_status", fmt={"TEM span": "{:.2f}", "TEM images": "{:.0f}",
                                                                 "TEM n sized": "{:.0f}"}),
        "<p class='muted'>"
        + ("D50: median equivalent-circle diameter of the sized vesicles (border-cut vesicles are flagged, not "
           "sized), with a percentile-bootstrap 95 % CI; span = (D90−D10)/D50. " if tem_cols else "")
        + ("Marker signal: band volume (background-subtracted raw counts) per lane, normalised to the loading "
           "control when one is given, relative to the reference lane; mean ± SD of replicates. "
           if marker_cols else "")
        + "</p></section>"])


@report_section
def qc_section(r: ReportInput) -> str:
    """The QC checks: failures and warnings first, grouped by sample and analysis; the passed checks
    collapsed; each source once, in a numbered references list."""
    g = _qc_grouped(r)
    parts = ["<section id='qc'><h2>QC checks</h2>", f"<p class='muted'>Rules: {_e(r.rules_source)}</p>"]
    if not len(g):
        return "\n".join(parts + ["<p>No checks.</p></section>"])
    counts = g["status"].value_counts()
    parts.append("<p>" + ", ".join(f"<span class='badge {st}'>{int(counts.get(st, 0))} {st}</span>"
                                    for st in ("FAIL", "WARN", "PASS")) + "</p>")
    headers = ["sample", "analysis", "item", "check", "status", "reason", "source"]

    def rows(df):
        return [[(_e(x.group), ""), (_e(x.analysis), ""), (_e(x.item), ""), (_e(x.check), ""),
                 (_e(x.status), _e(x.status)), (_e(x.reason), ""), (_ref_link(x.ref), "")] for x in df.itertuples()]

    bad = g[g["status"] != "PASS"]
    parts.append("<h3>Failures and warnings</h3>")
    parts.append(_raw_table(headers, rows(bad)) if len(bad) else "<p>None: every check passed.</p>")
    ok = g[g["status"] == "PASS"]
    if len(ok):
        parts.append(f"<details><summary>{len(ok)} checks passed (show)</summary>")
        for grp, d in ok.groupby("group", sort=False):
            parts.append(f"<h4>{_e(grp)}</h4>" + _raw_table(headers, rows(d)))
        parts.append("</details>")
    refs = dict.fromkeys(zip(g["ref"], g["source"].astype(str)))
    parts.append("<h3>Sources of the rules</h3><ol class='refs'>"
                 + "".join(f"<li id='ref-{int(n)}'>{_e(src)}</li>" for n, src in sorted(refs)) + "</ol></section>")
    return "\n".join(parts)


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
    parts = ["<section id='tem'><h2>TEM: vesicle size</h2>"]
    if per_sample_png:
        parts += [_img(per_sample_png, "per-sample size histograms"),
                  "<p class='muted'>Histogram (probability density) and KDE per sample, with the number of sized "
                  "vesicles and the D50 with its 95 % CI in each title; red lines: D10, D50 (solid), D90.</p>",
                  _img(overlay_png, "all samples, size KDE")]
        st_cols = ["sample", "tem_n", "tem_mean_nm", "tem_sd_nm", "tem_median_nm", "tem_mode_nm", "tem_d10_nm",
                   "tem_d50_nm", "D50 95 % CI (nm)", "tem_d90_nm", "tem_span", "tem_border_fraction"]
        samples = samples.assign(**{"D50 95 % CI (nm)": [
            f"{_num(a, '{:.1f}')}–{_num(b, '{:.1f}')}" for a, b in
            zip(samples["tem_d50_ci_low_nm"], samples["tem_d50_ci_high_nm"])]})
        parts.append(_table(samples, st_cols, fmt={c: "{:.1f}" for c in st_cols[2:]} | {"tem_n": "{:.0f}",
                            "tem_span": "{:.2f}", "tem_border_fraction": "{:.2f}"}))
    else:
        parts.append("<p>No vesicles were sized.</p>")
    tem_res = [x for x in r.records if x.kind == "tem"]
    if tem_res:
        parts.append("<h3>Fields (wide field and a close-up of a typical vesicle)</h3><div class='gallery tem'>")
        for x in tem_res:
            row = x.image_row
            if row.get("status") != "ok" or not x.overlay:
                parts.append(f"<figure><figcaption><b>{_e(x.rel)}</b>: <span class='FAIL'>not analysed</span>"
                             f" – {_e(row.get('error'))}</figcaption></figure>")
                continue
            p = r.out / x.overlay
            cap = (f"<b>{_e(x.rel)}</b> · sample {_e(x.sample)} · {_e(row.get('n_vesicles'))} vesicles · "
                   f"{_num(row.get('pixel_size_nm'), '{:.3g}')} nm/px ({_e(row.get('pixel_size_source'))})")
            parts.append(f"<figure>{_img(_thumb(p), x.rel)}{_img(_closeup(p, x.vesicles, row), 'close-up')}"
                         f"<figcaption>{cap}</figcaption></figure>")
        parts.append("</div>")
    parts.append("</section>")
    return "\n".join(parts)


@report_section
def nta_section(r: ReportInput) -> str:
    """NTA concentration and size, with the TEM size density of the same sample."""
    if not _has_nta(r):
        return ""  # an experiment without NTA shows no NTA section
    return "\n".join(["<section id='nta'>", *_nta_section(r.tables, r.tables["samples"], r.data_dir), "</section>"])


@report_section
def blot_section(r: ReportInput) -> str:
    """Blot overlays, the normalised marker signal per sample and its replicate table."""
    if not _has_blots(r):
        return ""  # an experiment without blots shows no blot section
    parts = ["<section id='blots'><h2>Western blots</h2>"]
    blot_res = [x for x in r.records if x.kind == "blot"]
    if blot_res:
        parts.append("<div class='gallery'>")
        for x in blot_res:
            row = x.image_row or {}
            if not x.overlay:
                parts.append(f"<figure><figcaption><b>{_e(x.rel)}</b>: <span class='FAIL'>not analysed</span>"
                             f" – {_e(row.get('error'))}</figcaption></figure>")
                continue
            cap = (f"<b>{_e(x.rel)}</b> · marker {_e(x.marker or '?')} · {_e(row.get('n_lanes'))} lanes, "
                   f"{_e(row.get('n_bands'))} bands, {_e(row.get('n_saturated_bands'))} saturated")
            lc = getattr(x, "ladder_check", None) or {}
            if lc:
                cap += (f" · ladder {_e(lc.get('ladder'))} (lane {_e(lc.get('lane'))}): band volumes vs the "
                        f"vendor's masses, mean |error| {lc.get('mean_abs_error_pct', float('nan')):.1f} % over "
                        f"{_e(lc.get('n_bands'))} of {_e(lc.get('n_sizes'))} bands")
            parts.append(f"<figure>{_img(_thumb(r.out / x.overlay, 520), x.rel)}<figcaption>{cap}. "
                         f"Lanes and bands outlined; in each lane its profile (white) and the background "
                         f"subtracted (blue); saturated pixels in red.</figcaption></figure>")
        parts.append("</div>")
        marker_png = marker_figure(r.tables["normalized"])
        if marker_png:
            parts.append(_img(marker_png, "normalised marker signal per sample"))
        if len(r.tables["markers"]):
            parts.append(_table(r.tables["markers"], fmt={"mean": "{:.3f}", "sd": "{:.3f}", "cv_pct": "{:.1f}",
                                                          "n": "{:.0f}"}))
    parts.append("</section>")
    return "\n".join(parts)


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
    parts = ["<section id='provenance'><h2>Provenance</h2>",
             _raw_table(["", ""], [[(_e(a), ""), (_e(b), "")] for a, b in run_rows]),
             "<h3>Parameters</h3>",
             _raw_table(["section", "parameter", "value", "unit"],
                        [[(_e(x), "") for x in row] for row in _param_rows(r.params)])]
    nta_files = t.get("nta_files")
    nta_prov = (nta_files[["file", "sha256"]].rename(columns={"file": "image"}) if nta_files is not None
                and len(nta_files) else None)
    files = concat_tables([t["tem_images"][["image", "sha256"]], t["blot_images"][["image", "sha256"]], nta_prov],
                    ["image", "sha256"])
    parts.append("<h3>Inputs (relative to the experiment folder)</h3>")
    parts.append(_table(files.rename(columns={"image": "input", "sha256": "SHA-256"}), ["input", "SHA-256"]))
    # exoimage run writes run.json next to the report (after it); an interactive session writes none
    record = ("The full record (parameters, inputs, execution): <a href='run.json'>run.json</a>. "
              if r.run_stats.get("writes_run_json") else "")
    parts.append(f"<p class='muted'>{record}Tables behind every figure: report_data/. Full tables: *.csv and "
                 "*.parquet next to this report.</p></section>")
    return "\n".join(parts)


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

    # each section returns its HTML (user text escaped inside it); the page layout is a template
    # with autoescaping (templates/report.html.j2): the title is escaped there
    parts = [Markup(h) for h in (fn(r) for fn in (SECTIONS if sections is None else sections)) if h]
    html_text = _template("report.html.j2").render(title=r.title, css=Markup(_CSS), sections=parts)
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


NTA_NOTE = (
    "NTA sizes are <b>hydrodynamic</b> diameters of hydrated particles in suspension (from their Brownian "
    "motion, including the hydration layer and any corona); TEM sizes are <b>projected</b> diameters of "
    "dried, negatively stained vesicles, which shrink and flatten. NTA also barely detects particles below "
    "about 70 nm in scatter mode. The two methods therefore agree only above ~70 nm, and TEM D50 / NTA D50 "
    "is normally below 1: the ratio is reported for comparison, never checked (no PASS/FAIL).")


def _nta_section(tables: dict, samples: pd.DataFrame, data_dir: Path) -> list:
    """HTML of the NTA section (and its tables in ``report_data/``)."""
    from ..outputs import write_table

    files = tables.get("nta_files")
    parts = ["<h2>NTA: particle concentration and hydrodynamic size</h2>"]
    if files is None or not len(files):
        parts.append("<p>No NTA exports in this experiment (expected under <code>nta/&lt;sample&gt;/</code>: "
                     "NanoSight ExperimentSummary.csv or ZetaView .txt).</p>")
        return parts
    has = samples[samples["nta_n_videos"].fillna(0) > 0] if "nta_n_videos" in samples else samples.iloc[:0]
    nta_png, curves = nta_tem_figure(tables["nta_density"], tables["vesicles"], samples)
    write_table(curves, data_dir / "nta_tem_size_density.csv")
    write_table(has[["sample"] + [c for c in samples.columns if c.startswith(("nta_", "tem_nta_"))]
                    + ["tem_d50_nm", "protein_ug", "volume_ml", "particles_per_ug"]],
                data_dir / "nta_samples.csv")
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
        cols = (["sample", "instrument", "files", "videos", "dilution"]
                + (["from dilution(s)", "why these dilutions"] if several.any() else [])
                + ["concentration of", "concentration (particles/ml) ± SE", "CV (%)", "mode (nm)", "D10 (nm)",
                   "D50 ± SE (nm)", "D90 (nm)", "volume D50 (nm)", "D-value rule"]
                + (["empty videos"] if (has["nta_n_empty_videos"].fillna(0) > 0).any() else [])
                + (["TEM D50 [95% CI] (nm)", "TEM / NTA D50"] if any_tem else [])
                + ["protein (µg)", "particles / µg"])
        parts.append(_table(t, cols, fmt={"files": "{:.0f}", "videos": "{:.0f}", "CV (%)": "{:.1f}",
                                          "mode (nm)": "{:.1f}", "D10 (nm)": "{:.1f}", "D90 (nm)": "{:.1f}",
                                          "volume D50 (nm)": "{:.1f}", "TEM D50 (nm)": "{:.1f}",
                                          "TEM / NTA D50": "{:.2f}", "protein (µg)": "{:.3g}"}))
        undiluted = has["nta_concentration_of"].eq("undiluted sample")
        if undiluted.all():
            what = ("Concentration: particles per ml of the undiluted sample (dilution applied once: by the "
                    "instrument for NanoSight, by exoimage for ZetaView or from experiment.toml).")
        elif not undiluted.any():
            what = ("Concentration: particles per ml <b>as measured in the cell</b>: no dilution was recorded in "
                    "the files or given in experiment.toml (<code>dilution_factor</code> or "
                    "<code>[samples.X.nta_dilution]</code>), so it is not the concentration of the sample.")
        else:
            what = ("Concentration: particles per ml of the undiluted sample where a dilution is known (column "
                    "<i>concentration of</i>); <b>as measured in the cell</b> where none was recorded or given in "
                    "experiment.toml.")
        parts.append(
            f"<p class='muted'>{what} Mean ± SE across videos (ZetaView: across measurement files) at the "
            "dilution(s) shown; CV across those videos. A sample measured at several dilutions reports the "
            "dilutions inside its linear range (see the dilution-linearity QC row). Mode and D10/D50/D90 are "
            "recomputed from each video's size bins by each software's own rule (<i>D-value rule</i>: "
            "bin_edges = NanoSight NTA 3.3/3.4, bin_edges_minus_one_bin = NTA 3.2, bin_centres = ZetaView; "
            "docs/nta.md) and averaged over videos; volume D50: the instrument's volume-weighted D50 (NanoSight, "
            "where the file has one) or number × size³ by the same rule (ZetaView). "
            "Particles per µg = concentration × <code>volume_ml</code> (default 1 ml) / <code>protein_ug</code> "
            "from experiment.toml (only for the undiluted sample): the particle-to-protein purity ratio of "
            "MISEV2018 (Webber &amp; Clayton 2013).</p>")
        parts.append(f"<p class='muted'>{NTA_NOTE}</p>")
    else:
        parts.append("<p>No NTA export could be read (see the file list below).</p>")
    if nta_png:
        parts.append(_img(nta_png, "NTA size distribution with the TEM size density, per sample"))
        parts.append("<p class='muted'>Orange: NTA number distribution as a probability density per nm, mean "
                     "(line) ± SE (band) across the videos that counted particles; blue: TEM KDE of the sized "
                     "vesicles of the same sample; dashed: D50 of each. Data: "
                     "report_data/nta_tem_size_density.csv.</p>")
    f = files.copy()
    f["read"] = f["status"].map({"ok": "PASS", "error": "FAIL", "companion": "–"}).fillna("–")
    f["note"] = [e if st == "error" else ("per-video table of a NanoSight summary; not used by the run's tables"
                                         if st == "companion" else "")
                 for st, e in zip(f["status"], f["error"])]
    parts.append("<h3>NTA files</h3>")
    if "dilution_source" not in f:
        f["dilution_source"] = ""
    parts.append(_table(f, ["file", "sample", "instrument", "software_version", "n_videos", "dilution_factor",
                            "dilution_applied_by", "dilution_source", "read", "note"], status_col="read",
                        fmt={"n_videos": "{:.0f}", "dilution_factor": "{:g}"}))
    w = tables.get("nta_warnings")
    if w is not None and len(w):
        parts.append("<h3>Instrument warnings (verbatim)</h3>")
        parts.append(_table(w, ["sample", "file", "video", "section", "item", "value"]))
    return parts

