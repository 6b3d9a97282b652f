"""Size statistics recomputed from an NTA bin table.

The instrument's own summary rows are what a user copies into a paper; these
functions recompute them from the binned distribution so that the numbers can
be checked, and so that instruments that do not report them (or report them
differently) are summarised the same way.

Conventions (checked against NanoSight NTA 3.2 and 3.4 exports, see
``tests/test_nta.py``):

- **mean, SD**: concentration-weighted mean and population standard deviation
  of the bin centres.
- **mode**: vertex of the parabola through the highest bin and its two
  neighbours (NanoSight reports the mode to 0.1 nm, finer than its 1-nm bins).
- **D10/D50/D90**: the cumulative distribution is taken as linear *within*
  each bin, i.e. interpolated between bin edges (centre ± width/2).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["size_stats_from_bins", "percentiles_from_bins", "size_stats"]

STAT_COLUMNS = ["mean_nm", "mode_nm", "sd_nm", "d10_nm", "d50_nm", "d90_nm"]


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


def percentiles_from_bins(bin_nm, concentration, q, bin_width_nm=None) -> np.ndarray:
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

    Returns
    -------
    ndarray
        Sizes in nm (NaN when the distribution is empty).
    """
    c = np.clip(np.asarray(concentration, dtype=float), 0, None)
    q = np.atleast_1d(np.asarray(q, dtype=float))
    total = c.sum()
    if not np.isfinite(total) or total <= 0:
        return np.full(q.shape, np.nan)
    edges = _edges(bin_nm, bin_width_nm)
    cdf = np.concatenate([[0.0], np.cumsum(c) / total])
    # drop flat stretches so that interp returns the first size reaching q
    keep = np.concatenate([[True], np.diff(cdf) > 0])
    return np.interp(q, cdf[keep], edges[keep])


def size_stats_from_bins(bin_nm, concentration, bin_width_nm=None) -> dict:
    """Mean, mode, SD, D10, D50, D90 (nm) of one binned number distribution.

    Parameters
    ----------
    bin_nm : array_like
        Bin centres in nm, increasing.
    concentration : array_like
        Particles in each bin (any unit; only the shape matters).
    bin_width_nm : float or array_like, optional
        Bin widths; default from the spacing of the centres.

    Returns
    -------
    dict
        ``mean_nm, mode_nm, sd_nm, d10_nm, d50_nm, d90_nm`` (NaN when empty).
    """
    x = np.asarray(bin_nm, dtype=float)
    c = np.clip(np.nan_to_num(np.asarray(concentration, dtype=float)), 0, None)
    total = c.sum()
    if total <= 0:
        return {k: float("nan") for k in STAT_COLUMNS}
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
    d10, d50, d90 = percentiles_from_bins(x, c, [0.1, 0.5, 0.9], bin_width_nm)
    return {"mean_nm": mean, "mode_nm": mode, "sd_nm": sd,
            "d10_nm": float(d10), "d50_nm": float(d50), "d90_nm": float(d90)}


def size_stats(bins: pd.DataFrame, scale: str = "linear") -> pd.DataFrame:
    """Per-video size statistics recomputed from a tidy bin table.

    Parameters
    ----------
    bins : DataFrame
        :attr:`NtaResult.bins` (columns ``sample, video, scale, bin_nm,
        bin_width_nm, concentration_per_ml``), possibly of several results.
    scale : str
        Which bin series to use where a file has several (ZetaView writes
        ``'linear'`` and ``'log'`` bins); NanoSight bins are ``'linear'``.

    Returns
    -------
    DataFrame
        ``sample, video, mean_nm, mode_nm, sd_nm, d10_nm, d50_nm, d90_nm``,
        preceded by ``file`` when the bin table has that column (tables
        combined with :func:`exoimage.nta.combine_tables`, where two files may
        use the same video names).
    """
    keys = [k for k in ("file", "sample", "video") if k in bins.columns]
    rows = []
    sub = bins[bins["scale"] == scale]
    for key, g in sub.groupby(keys, sort=False):
        g = g.sort_values("bin_nm")
        stats = size_stats_from_bins(g["bin_nm"], g["concentration_per_ml"], g["bin_width_nm"])
        rows.append({**dict(zip(keys, key)), **stats})
    return pd.DataFrame(rows, columns=[*keys, *STAT_COLUMNS])
