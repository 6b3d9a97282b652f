"""Size statistics recomputed from an NTA bin table.

The instrument's own summary rows are what a user copies into a paper; these
functions recompute them from the binned distribution so that the numbers can
be checked, and so that instruments that do not report them (or report them
differently) are summarised the same way.

Conventions (each checked against real exports in ``../shared/data/nta``,
see ``docs/nta.md`` and ``tests/test_nta_real.py``):

- **mean, SD**: concentration-weighted mean and population standard deviation
  of the bin centres.
- **mode**: vertex of the parabola through the highest bin and its two
  neighbours (NanoSight reports the mode to 0.1 nm, finer than its 1-nm bins).
- **D10/D50/D90**: each instrument software reads them off its cumulative
  distribution in its own way, and exoimage reproduces each one; the rule is
  named per bin in ``percentile_convention`` (:data:`PERCENTILE_CONVENTIONS`):

  ``bin_edges``
      cumulative linear *within* each bin, i.e. interpolated between bin
      edges (centre ± width/2): NanoSight NTA 3.3 and 3.4.
  ``bin_edges_minus_one_bin``
      the same, one bin width (1.0 nm) lower: NanoSight NTA 3.2 prints every
      D value and its whole percentile table 1.0 nm below what its own bin
      table gives (the cumulative up to a bin is placed at the bin's lower
      edge instead of its upper edge).
  ``bin_centres``
      cumulative interpolated between bin *centres* (the cumulative up to and
      including a bin sits at its centre): ZetaView 8.05, for its
      ``Median Number/Concentration/Volume (D50)``.
- **volume D10/D50/D90**: the same rule applied to the volume distribution,
  number x (bin centre)^3: ZetaView's ``Median Volume (D50)`` is exactly
  this on its linear bins. NanoSight builds its volume distribution
  otherwise (per particle; on real NTA 3.4 files number x size^3 misses its
  printed volume D50 by up to 9 nm), so :func:`size_stats` gives volume D
  values only for the ``bin_centres`` rule and NaN elsewhere; the NanoSight
  reader keeps the instrument's printed ones in ``videos``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["size_stats_from_bins", "percentiles_from_bins", "size_stats", "PERCENTILE_CONVENTIONS",
           "STAT_COLUMNS", "VOLUME_COLUMNS"]

STAT_COLUMNS = ["mean_nm", "mode_nm", "sd_nm", "d10_nm", "d50_nm", "d90_nm"]
VOLUME_COLUMNS = ["volume_d10_nm", "volume_d50_nm", "volume_d90_nm"]

#: The rules for reading D values off binned counts, and which software uses each.
PERCENTILE_CONVENTIONS = {
    "bin_edges": "cumulative linear within each bin (between bin edges): NanoSight NTA 3.3, 3.4",
    "bin_edges_minus_one_bin": "between bin edges, one bin width lower: NanoSight NTA 3.2 (prints D values "
                               "1.0 nm below its bin table)",
    "bin_centres": "cumulative interpolated between bin centres: ZetaView 8.05",
}
DEFAULT_CONVENTION = "bin_edges"
#: A reproduction by the instrument's own rule matches its printed sizes this closely: they are
#: printed to 0.1 nm (rounding <= 0.05 nm; ZetaView's medians from 4-digit concentration bins
#: differ by < 0.005 nm) plus float noise.
PRINT_TOLERANCE_NM = 0.06
#: Conventions whose software computes its volume distribution as number x (bin centre)^3
VOLUME_FROM_NUMBER = ("bin_centres",)


def _edges(bin_nm: np.ndarray, bin_width_nm) -> np.ndarray:
    """Bin edges from centres and widths (scalar, per bin, or None = from spacing)."""
    x = np.asarray(bin_nm, dtype=float)
    if bin_width_nm is None:
        if len(x) < 2:
            raise ValueError("need a bin width for a single bin")
        w = np.gradient(x)
    else:
        w = np.broadcast_to(np.asarray(bin_width_nm, dtype=float), x.shape)
    return np.concatenate([[x[0] - w[0] / 2], x + w / 2])


def percentiles_from_bins(bin_nm, concentration, q, bin_width_nm=None,
                          convention: str = DEFAULT_CONVENTION) -> np.ndarray:
    """Sizes below which a fraction ``q`` of the particles lie.

    Parameters
    ----------
    bin_nm : array_like
        Bin centres in nm, increasing.
    concentration : array_like
        Particles (any unit) in each bin.
    q : float or array_like
        Fractions in [0, 1] (0.5 is the median, D50).
    bin_width_nm : float or array_like, optional
        Bin widths; default from the spacing of the centres.
    convention : str
        A key of :data:`PERCENTILE_CONVENTIONS`.

    Returns
    -------
    ndarray
        Sizes in nm (NaN when the distribution is empty).
    """
    if convention not in PERCENTILE_CONVENTIONS:
        raise ValueError(f"unknown percentile convention {convention!r}; known: {', '.join(PERCENTILE_CONVENTIONS)}")
    x = np.asarray(bin_nm, dtype=float)
    c = np.clip(np.nan_to_num(np.asarray(concentration, dtype=float)), 0, None)
    q = np.atleast_1d(np.asarray(q, dtype=float))
    total = c.sum()
    if not np.isfinite(total) or total <= 0:
        return np.full(q.shape, np.nan)
    if convention == "bin_centres":
        cdf = np.cumsum(c) / total
        sizes = x
        # the first centre with particles and every later point where the cumulative rises
        keep = np.diff(np.concatenate([[0.0], cdf])) > 0
    else:
        edges = _edges(x, bin_width_nm)
        cdf = np.concatenate([[0.0], np.cumsum(c) / total])
        sizes = edges
        if convention == "bin_edges_minus_one_bin":
            sizes = edges - (edges[1:] - edges[:-1]).mean() if len(edges) > 1 else edges
        # the lower edge of the first bin with particles (D0) and every edge where the cumulative rises
        keep = np.concatenate([[False], np.diff(cdf) > 0])
        keep[int(np.argmax(keep)) - 1] = True
    # flat stretches dropped: interp returns the first size reaching q
    return np.interp(q, cdf[keep], sizes[keep])


def size_stats_from_bins(bin_nm, concentration, bin_width_nm=None, convention: str = DEFAULT_CONVENTION) -> dict:
    """Mean, mode, SD, D10, D50, D90 and volume D10/D50/D90 (nm) of one binned number distribution.

    Parameters
    ----------
    bin_nm : array_like
        Bin centres in nm, increasing.
    concentration : array_like
        Particles in each bin (any unit; only the shape matters).
    bin_width_nm : float or array_like, optional
        Bin widths; default from the spacing of the centres.
    convention : str
        How D values are read off the bins (:data:`PERCENTILE_CONVENTIONS`).

    Returns
    -------
    dict
        ``mean_nm, mode_nm, sd_nm, d10_nm, d50_nm, d90_nm, volume_d10_nm,
        volume_d50_nm, volume_d90_nm`` (NaN when empty).
    """
    x = np.asarray(bin_nm, dtype=float)
    c = np.clip(np.nan_to_num(np.asarray(concentration, dtype=float)), 0, None)
    total = c.sum()
    if total <= 0:
        return {k: float("nan") for k in STAT_COLUMNS + VOLUME_COLUMNS}
    mean = float((x * c).sum() / total)
    sd = float(np.sqrt(((x - mean) ** 2 * c).sum() / total))
    k = int(np.argmax(c))
    mode = float(x[k])
    if 0 < k < len(c) - 1:
        y0, y1, y2 = c[k - 1], c[k], c[k + 1]
        denom = y0 - 2 * y1 + y2
        step = (x[k + 1] - x[k - 1]) / 2
        if denom < 0:
            mode = float(x[k] + 0.5 * step * (y0 - y2) / denom)
    d10, d50, d90 = percentiles_from_bins(x, c, [0.1, 0.5, 0.9], bin_width_nm, convention)
    v10, v50, v90 = percentiles_from_bins(x, c * x ** 3, [0.1, 0.5, 0.9], bin_width_nm, convention)
    return {"mean_nm": mean, "mode_nm": mode, "sd_nm": sd,
            "d10_nm": float(d10), "d50_nm": float(d50), "d90_nm": float(d90),
            "volume_d10_nm": float(v10), "volume_d50_nm": float(v50), "volume_d90_nm": float(v90)}


def size_stats(bins: pd.DataFrame, scale: str = "linear") -> pd.DataFrame:
    """Per-video size statistics recomputed from a tidy bin table.

    Parameters
    ----------
    bins : DataFrame
        :attr:`NtaResult.bins` (columns ``sample, video, scale, bin_nm,
        bin_width_nm, concentration_per_ml`` and ``percentile_convention``),
        possibly of several results. Without ``percentile_convention``, D
        values are read between bin edges.
    scale : str
        Which bin series to use where a file has several (ZetaView writes
        ``'linear'`` and ``'log'`` bins); NanoSight bins are ``'linear'``.

    Returns
    -------
    DataFrame
        ``sample, video, mean_nm, mode_nm, sd_nm, d10_nm, d50_nm, d90_nm,
        volume_d10_nm, volume_d50_nm, volume_d90_nm, empty,
        percentile_convention`` (``empty``: the video counted no particle;
        its sizes are NaN; volume D values only where the software's volume
        distribution is number x size^3, i.e. ZetaView), preceded by ``file`` when the bin table has that
        column (tables combined with :func:`exoimage.nta.combine_tables`,
        where two files may use the same video names).
    """
    keys = [k for k in ("file", "sample", "video") if k in bins.columns]
    rows = []
    sub = bins[bins["scale"] == scale]
    has_conv = "percentile_convention" in sub.columns
    for key, g in sub.groupby(keys, sort=False):
        g = g.sort_values("bin_nm")
        conv = str(g["percentile_convention"].iloc[0]) if has_conv else DEFAULT_CONVENTION
        conc = np.clip(np.nan_to_num(g["concentration_per_ml"].to_numpy(float)), 0, None)
        stats = size_stats_from_bins(g["bin_nm"], conc, g["bin_width_nm"], conv)
        if conv not in VOLUME_FROM_NUMBER:
            stats.update({c: float("nan") for c in VOLUME_COLUMNS})
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(keys, key)), **stats, "empty": bool(conc.sum() <= 0),
                     "percentile_convention": conv})
    return pd.DataFrame(rows, columns=[*keys, *STAT_COLUMNS, *VOLUME_COLUMNS, "empty", "percentile_convention"])
