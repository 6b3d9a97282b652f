"""Membrane pieces and lanes.

A blot image may hold several membrane pieces (strips imaged together). Pieces
are the horizontal slabs between the cut edges of the membrane (dips of its
level against the off-membrane floor, whether the gap is dark or the strips
touch). Inside a piece cut out of the frame the lanes are the positions of one
comb (evenly spaced lanes) fitted to the band rows: the pitch from the spectrum
of the band rows' profile (it survives touching bands), the lanes where the
strongest repeating row carries a band, a marker lane beside them, widths from
the bands' extent, never overlapping. A blot filling the frame keeps the grid
finder (column-profile peaks completed on the lane grid).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .signal import find_peaks, median, peak_widths, robust_sd  # scipy.signal on first use

__all__ = ["Piece", "Lane", "find_pieces", "find_lanes", "lanes_from_bounds", "lane_columns", "membrane_level"]


@dataclass
class Piece:
    """A membrane piece: rows ``y0:y1`` and columns ``x0:x1`` (px, end exclusive)."""

    index: int
    y0: int
    y1: int
    x0: int
    x1: int
    #: the piece was cut out of the frame at a membrane edge (False: the blot fills the frame)
    cut: bool = False


@dataclass
class Lane:
    """One lane: a band of columns, possibly tilted.

    The lane covers columns ``x_left_px .. x_right_px`` (inclusive) at row
    ``y_ref_px``; at row ``y`` it is shifted by ``slope * (y - y_ref_px)`` px
    (``slope`` = dx/dy). It spans rows ``y_top_px .. y_bottom_px`` (inclusive).
    """

    lane: int
    piece: int
    x_left_px: int
    x_right_px: int
    y_top_px: int
    y_bottom_px: int
    y_ref_px: float
    slope: float = 0.0
    is_ladder: bool = False

    @property
    def width_px(self) -> int:
        return self.x_right_px - self.x_left_px + 1

    @property
    def x_center_px(self) -> float:
        return 0.5 * (self.x_left_px + self.x_right_px)

    def shift_at(self, y) -> np.ndarray:
        """Integer column shift of the lane at row(s) ``y``."""
        return np.rint(self.slope * (np.asarray(y, float) - self.y_ref_px)).astype(int)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end-exclusive) of each run of True."""
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


#: off-membrane vs membrane: the level of the smoothed membrane (bands removed by a median wider
#: than a band) is compared with the off-membrane floor; a piece boundary is a row where that level
#: dips by at least this fraction of the membrane's rise above the floor on both sides (a cut edge
#: between two strips: the strips' edges are darker than their middles even when they touch)
PIECE_DIP_FRAC = 0.12
#: a dip this deep (half the rise: the dark gaps of the Kodak images dip 0.5-1.1) is a gap whatever
#: its shape; a shallower one must be a straight edge across the membrane (see _dip_splits)
PIECE_DEEP_FRAC = 0.5
#: fraction of the membrane's columns darker at a shallow dip than at the highest rows on both
#: sides: Kodak touching strips 0.78-0.98 (June 25, Oct 10); simulated frame-filling blots between a
#: smear or band row and the ladder's lowest bands 0.25-0.69; RhoA bubble fields 0.23. Measured
#: shallow Kodak seams at 0.60-0.68 (June 21 GAPDH, Oct 8) are missed at this value
PIECE_DIP_COLUMNS = 0.7
#: a shallow dip must also be as narrow as a cut line seen through the level filter: its width at
#: half prominence at most this many level-window heights (PIECE_LEVEL_ROWS). Kodak touching strips
#: 1.10-1.14 (Oct 10, June 25: a 1-5 px edge widened to the window), the missed Oct 8 seams
#: 1.09-1.29; simulated one-row blots split falsely between a band row and the ladder's lowest bands
#: 1.55-7.1 (a valley between band rows is as wide as the rows are apart)
PIECE_DIP_WIDTH = 1.4
#: a shallow dip that fails the straight-edge rules above (too wide, or too few columns darker:
#: the level filter widens a thin seam into the lower membrane between two strips) is still a cut
#: when a straight thin dark line runs through it: in the x-pass level image (bands gone, a line
#: across the membrane kept) the dark-line depth (vertical closing over PIECE_LINE_ROWS rows minus
#: the image) reaches a tenth of the rise, on one straight line (within PIECE_LINE_TOL rows), in at
#: least this fraction of the membrane's columns. Kodak seams 0.64 (June 21 GAPDH), 0.66 (June 25),
#: 0.55-0.83 (Oct 10, Oct 8); simulated one-row blots and frame-filling blots (valleys between band
#: rows, smears, bubbles: 168 dips over 360 blots and the sample blots) at most 0.23. Half: between the two (not fitted)
PIECE_LINE_COLUMNS = 0.5
#: rows of the dark-line closing (a cut line is 1-8 px wide: 1-2 rows of the level image)
PIECE_LINE_ROWS = 3
PIECE_LINE_TOL = 1.5
#: membrane pieces smaller than this fraction of the image height are not pieces (a label, a pen
#: mark, the gap's glow); the Kodak strips are 25-45 % of the frame, a single piece 60-100 %
PIECE_MIN_HEIGHT_FRAC = 0.2
#: the level image is a low percentile over a window taller than a band (Kodak bands 30-50 px =
#: 8-13 downsampled px) and wider than a lane pitch (Kodak 58-90 px = 15-23, simulated 70 px = 23),
#: so it always holds membrane between lanes and above or below the bands: the membrane's level,
#: not its bands'
PIECE_LEVEL_ROWS, PIECE_LEVEL_COLS, PIECE_LEVEL_PCT = 15, 25, 20
#: percentile of the y pass (a lower one, 5, keeps 1-px cut lines but merged the July 4 GAPDH strips
#: and split simulated blots between band rows)
PIECE_LEVEL_PCT_Y = 20
#: the level image's longest side, px
PIECE_LEVEL_SIDE = 300


def _level_rows(n: int) -> int:
    """Height (rows) of the level image's percentile window for a level image ``n`` rows tall."""
    return int(min(PIECE_LEVEL_ROWS, max(3, n // 6))) | 1


def _level_image(signal: np.ndarray):
    """(downsampling factor, membrane-level image): block mean to ~300 px, then a low percentile
    over a window larger than a band and a lane pitch (see PIECE_LEVEL_ROWS)."""
    f, _, m = _level_images(signal)
    return f, m


def _level_images(signal: np.ndarray):
    """(downsampling factor, x-pass level image, membrane-level image) of :func:`_level_image`:
    the x pass alone (bands gone, a thin dark line across the membrane kept) and both passes."""
    h, w = signal.shape
    f = max(1, int(np.ceil(max(h, w) / PIECE_LEVEL_SIDE)))
    hh, ww = h // f * f, w // f * f
    small = signal[:hh, :ww].reshape(hh // f, f, ww // f, f).mean(axis=(1, 3))
    ky = _level_rows(small.shape[0])
    kx = int(min(PIECE_LEVEL_COLS, max(3, small.shape[1] // 6))) | 1
    # separable (along x, then along y): ten times less work than the 2-D window, and as blind to
    # the bands (the x pass takes the membrane between lanes, the y pass that above and below rows)
    m = _percentile_rows(small, PIECE_LEVEL_PCT, kx)
    return f, m, np.ascontiguousarray(_percentile_rows(m.T, PIECE_LEVEL_PCT_Y, ky).T)


def _percentile_rows(a: np.ndarray, pct: float, k: int) -> np.ndarray:
    """``ndi.percentile_filter(a, pct, size=(1, k), mode="nearest")`` of a 2-D array, the same values
    four times faster: the rows, each padded with its end values, are filtered as one 1-D array
    (scipy's fast 1-D rank filter; the padding keeps every window inside its own row)."""
    if not np.isfinite(a).all():  # NaN orders differently in the two paths: scipy's 2-D filter
        return ndi.percentile_filter(a, pct, size=(1, k), mode="nearest")
    h = k // 2
    p = np.pad(a, ((0, 0), (h, h)), mode="edge")
    return ndi.percentile_filter(p.ravel(), pct, size=k, mode="nearest").reshape(p.shape)[:, h:h + a.shape[1]]


def membrane_level(signal: np.ndarray) -> tuple[int, np.ndarray]:
    """(downsampling factor, membrane-level image) of a blot: see :func:`find_pieces`."""
    return _level_image(np.asarray(signal, float))


def _cut_line_columns(mx: np.ndarray, p: int, reach: float, mem: np.ndarray, depth: float) -> float:
    """Fraction of the membrane columns ``mem`` crossed by one straight thin dark line within
    ``reach`` rows of row ``p`` of the x-pass level image ``mx``: per column, the deepest dark
    line (closing over :data:`PIECE_LINE_ROWS` rows minus the image) at least ``depth`` deep,
    on a straight line fitted to those rows (twice refitted to the columns within
    :data:`PIECE_LINE_TOL` rows of it)."""
    n = mx.shape[0]
    a, b = max(0, int(p - reach)), min(n, int(np.ceil(p + reach)) + 1)
    lo, hi = max(0, a - PIECE_LINE_ROWS), min(n, b + PIECE_LINE_ROWS)
    bh = (ndi.grey_closing(mx[lo:hi], size=(PIECE_LINE_ROWS, 1), mode="nearest") - mx[lo:hi])[a - lo:b - lo]
    if not len(bh) or not mem.any():
        return 0.0
    deep = bh.max(axis=0) >= depth
    rows = bh.argmax(axis=0).astype(float)
    xs = np.arange(bh.shape[1], dtype=float)
    ok = deep & mem
    for _ in range(3):
        if ok.sum() < 3:
            return 0.0
        c = np.polyfit(xs[ok], rows[ok], 1)
        ok = deep & mem & (np.abs(rows - np.polyval(c, xs)) <= PIECE_LINE_TOL)
    return float(np.mean(ok[mem]))


def _dip_splits(prof: np.ndarray, m: np.ndarray, floor: float, min_len: int,
                mx: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Split a level profile at the cut edges between membrane pieces.

    A dip deeper than ``PIECE_DEEP_FRAC`` of the membrane's rise above ``floor``
    is a gap between pieces; a shallower one (down to ``PIECE_DIP_FRAC``: two
    strips touching) counts only when the dip row is darker, by a tenth of the
    rise, than the membrane at the highest rows on both sides in at least
    ``PIECE_DIP_COLUMNS`` of the membrane's columns (a straight cut edge; a
    bubble or a smear row is local) and is no wider than ``PIECE_DIP_WIDTH``
    level-window heights at half its prominence (a cut line, not the valley
    between two band rows of one membrane).
    """
    n = len(prof)
    rise = float(np.percentile(prof, 90)) - floor
    if rise <= 0:
        return [(0, n)]
    pk, props = find_peaks(-prof, prominence=PIECE_DIP_FRAC * rise)
    widths = peak_widths(-prof, pk, rel_height=0.5, prominence_data=(props["prominences"], props["left_bases"],
                                                                      props["right_bases"]))[0]
    max_width = PIECE_DIP_WIDTH * _level_rows(n)
    reach = 2 * min_len
    cuts = []
    # deepest first: a shallow dip never displaces the gap beside it
    for p, pr, wd in sorted(zip(pk, props["prominences"], widths), key=lambda t: -t[1]):
        if pr < PIECE_DEEP_FRAC * rise:
            lo, hi = max(0, p - reach), min(n, p + reach + 1)
            ul = lo + int(np.argmax(prof[lo:p])) if p > lo else p
            dr = p + 1 + int(np.argmax(prof[p + 1:hi])) if hi > p + 1 else p
            up = m[max(0, ul - 1):ul + 2].mean(axis=0)
            dn = m[max(0, dr - 1):dr + 2].mean(axis=0)
            at = m[max(0, p - 1):p + 2].mean(axis=0)
            mem = np.maximum(up, dn) > floor + 0.3 * rise
            dip = at < np.minimum(up, dn) - 0.1 * rise
            edge = wd <= max_width and mem.any() and float(np.mean(dip[mem])) >= PIECE_DIP_COLUMNS
            if not edge and (mx is None or _cut_line_columns(mx, p, wd, mem, 0.1 * rise) < PIECE_LINE_COLUMNS):
                continue
        if p >= min_len and n - p >= min_len and all(abs(p - c) >= min_len for c in cuts):
            cuts.append(int(p))
    cuts = [0] + sorted(cuts) + [n]
    return list(zip(cuts[:-1], cuts[1:]))


def find_pieces(signal: np.ndarray, *, min_height_frac: float = PIECE_MIN_HEIGHT_FRAC) -> list[Piece]:
    """Membrane pieces found from the membrane's own level against the off-membrane area.

    The image is reduced to a membrane-level image (block mean, then a low percentile over a
    window larger than a band and a lane pitch, so bands do not count). Its row profile (the
    75th percentile of each row: the membrane, whatever columns it occupies) is split at the
    cut edges between pieces: every dip deeper than ``PIECE_DEEP_FRAC`` of the membrane's rise
    above the off-membrane floor (a gap, dark or not), and shallower dips (down to
    ``PIECE_DIP_FRAC``: strips that touch) that darken ``PIECE_DIP_COLUMNS`` of the membrane's
    columns (a straight cut, not a bubble or a smear) and are as narrow as a cut line
    (``PIECE_DIP_WIDTH``: not the valley between band rows). Pieces are the full-width slabs between
    cuts, deepest cuts first, none lower than ``min_height_frac`` of the image; lanes then keep
    to each piece's own band evidence (see :func:`find_lanes`). Everything is relative to the
    floor (2nd percentile of the level image), so an offset or a gain changes nothing. An image
    with no cut is one piece (``cut`` False), the whole frame.
    """
    h, w = signal.shape
    whole = [Piece(1, 0, h, 0, w)]
    if h < 16 or w < 16:
        return whole
    f, mx, m = _level_images(np.asarray(signal, float))
    sh, sw = m.shape
    floor = float(np.percentile(m, 2))
    top = float(np.percentile(m, 98))
    if not np.isfinite(top - floor) or top - floor <= 0:
        return whole
    min_len = max(2, int(min_height_frac * sh))
    rowp = np.percentile(m, 75, axis=1)
    rowp = ndi.gaussian_filter1d(rowp, 1.0)
    pieces = []
    for a, b in _dip_splits(rowp, m, floor, min_len, mx):
        ya, yb = a, b
        if yb - ya < min_len:
            continue
        xa, xb = 0, sw
        y0, y1 = ya * f, (yb * f if yb < sh else h)
        x0, x1 = xa * f, (xb * f if xb < sw else w)
        pieces.append(Piece(len(pieces) + 1, int(y0), int(y1), int(x0), int(x1), cut=True))
    if not pieces:
        return whole
    if len(pieces) == 1 and (pieces[0].y1 - pieces[0].y0) > 0.9 * h and (pieces[0].x1 - pieces[0].x0) > 0.9 * w:
        return whole
    return pieces


def _band_image(sub: np.ndarray, length: int) -> np.ndarray:
    """White top-hat along y: signal of features shorter than ``length`` px vertically."""
    import cv2

    k = np.ones((int(length) | 1, 1), np.uint8)
    a = np.ascontiguousarray(sub, dtype=np.float32)
    opened = cv2.morphologyEx(a, cv2.MORPH_OPEN, k, borderType=cv2.BORDER_REPLICATE)
    return a - opened


def _shear(img: np.ndarray, slope: float, yref: float) -> np.ndarray:
    """Shift each row by ``-slope*(y-yref)`` px so a lane tilted by ``slope`` becomes vertical."""
    if slope == 0:
        return img
    h, w = img.shape
    shifts = np.rint(-slope * (np.arange(h) - yref)).astype(int)
    # rows with one shift lie in runs (the shift changes monotonically): each run is rolled
    # as a block, out[y, x] = img[y, (x - shift) % w] as a per-pixel index would give
    out = np.empty_like(img)
    edges = np.flatnonzero(np.diff(shifts)) + 1
    for a, b in zip(np.concatenate([[0], edges]), np.concatenate([edges, [h]])):
        out[a:b] = np.roll(img[a:b], int(shifts[a]), axis=1)
    return out


def _pitch(profile: np.ndarray, min_lag: int, max_lag: int) -> float | None:
    p = profile - profile.mean()
    ac = np.correlate(p, p, mode="full")[len(p) - 1:]
    if ac[0] <= 0 or max_lag <= min_lag + 2:
        return None
    seg = ac[min_lag:max_lag]
    pk, _ = find_peaks(seg)
    if not len(pk):
        return None
    top = float(seg[pk].max())
    if top < 0.1 * ac[0]:
        return None
    # the first strong peak (a multiple of the pitch can correlate as well or better)
    best = int(pk[np.flatnonzero(seg[pk] >= 0.5 * top)[0]])
    return float(best + min_lag)


def _band_rows(t: np.ndarray, max_rows: int = 10):
    """Rows where bands line up across the piece: list of (y0, y1) windows and row weights."""
    hgt = t.shape[0]
    rowp = median(t, axis=1) + 0.5 * np.mean(t, axis=1)
    rowp = np.clip(rowp - median(rowp), 0, None)
    rowp = ndi.gaussian_filter1d(rowp, 1.0)
    if rowp.max() <= 0:
        return [(0, hgt)], []
    pk, props = find_peaks(rowp, prominence=0.1 * rowp.max(), distance=3)
    if not len(pk):
        pk = np.array([int(np.argmax(rowp))])
        props = {"prominences": np.array([rowp.max()])}
    pk = pk[np.argsort(props["prominences"])[::-1][:max_rows]]
    # ignore peaks hugging the piece's top/bottom edge (membrane edge, not bands)
    edge = max(3, int(0.03 * hgt))
    inner = pk[(pk >= edge) & (pk < hgt - edge)]
    pk = inner if len(inner) else pk
    cand = []
    for p in sorted(pk):
        half = rowp[p] / 2
        a = p
        while a > 0 and rowp[a] > half:
            a -= 1
        b = p
        while b < hgt - 1 and rowp[b] > half:
            b += 1
        cand.append((a, b))
    # bands are thin along y: candidate rows much thicker than the thinnest are
    # set apart (bubble fields, wells, smudges, but also broad smears); they are
    # used only when they repeat lane after lane and no thin row does
    # (see _keep_lane_like_rows)
    thin = min(b - a for a, b in cand)
    wins, thick = [], []
    for a, b in cand:
        # widen: bands of one row are not at exactly the same height in every lane (smile)
        pad = max(6, (b - a) // 2)
        w = (max(0, a - pad), min(hgt, b + 1 + pad))
        (thick if (b - a) > 2.5 * max(thin, 4) else wins).append(w)
    return wins, thick


def _row_weights(wins, hgt):
    wts = np.zeros(hgt)
    for a, b in wins:
        wts[a:b] += 1.0 / (b - a)
    return wts / wts.sum()


def _period_score(pr: np.ndarray, min_lag: int = 8) -> float:
    """How strongly a column profile repeats: the highest autocorrelation peak (lags
    ``min_lag`` .. 1/3 of the width) after removing trends longer than ~40 px."""
    d = pr - ndi.gaussian_filter1d(pr, 40.0)
    if len(d) < 3 * min_lag:
        return 0.0
    ac = np.correlate(d, d, mode="full")[len(d) - 1:]
    if ac[0] <= 0:
        return 0.0
    seg = ac[min_lag:len(d) // 3] / ac[0]
    pk, _ = find_peaks(seg)
    return float(seg[pk].max()) if len(pk) else 0.0


def _keep_lane_like_rows(t, wins, thick=()):
    """Drop band rows whose column profile does not repeat lane after lane (a well
    region, a smudge, the bands of a marker lane alone) when others do: keep rows
    scoring >= half the best. Thick rows (see :func:`_band_rows`) take part only
    when they repeat clearly better (2x) than every thin row: a blot whose only
    protein is a broad smear (CD63) has no thin row but the marker's."""
    if thick:
        sc_thin = [_period_score(t[a:b].mean(axis=0)) for a, b in wins]
        best_thin = max(sc_thin) if sc_thin else 0.0
        extra = [w for w in thick if _period_score(t[w[0]:w[1]].mean(axis=0)) > max(2 * best_thin, 0.2)]
        wins = sorted(list(wins) + extra)
    if len(wins) < 2:
        return wins, _row_weights(wins, t.shape[0])
    prs = [t[a:b].mean(axis=0) for a, b in wins]
    sc = np.array([_period_score(p) for p in prs])
    keep = [w for w, s in zip(wins, sc) if s >= 0.5 * sc.max()]
    return keep, _row_weights(keep, t.shape[0])


def _periodic_rows(t, wins, min_score: float = 0.25):
    """Keep the band rows whose column profile repeats with the lane pitch.

    Rows of real bands repeat lane after lane; a membrane edge, a bubble or a
    smudge does not. The pitch is the strongest autocorrelation lag of all
    candidate rows together; each row is scored by its own normalised
    autocorrelation at that lag.
    """
    if len(wins) < 2:
        return wins
    wid = t.shape[1]
    acs = []
    for a, b in wins:
        pr = t[a:b].mean(axis=0)
        pr = pr - pr.mean()
        ac = np.correlate(pr, pr, mode="full")[wid - 1:]
        acs.append(ac / ac[0] if ac[0] > 0 else np.zeros_like(ac))
    acs = np.array(acs)
    lo, hi = 6, max(8, wid // 2)
    tot = acs.mean(axis=0)
    pk, _ = find_peaks(tot[lo:hi])
    if not len(pk):
        return wins
    lag = int(pk[np.argmax(tot[lo:hi][pk])] + lo)
    tol = max(1, lag // 10)
    scores = acs[:, max(1, lag - tol):lag + tol + 1].max(axis=1)
    keep = [w for w, s in zip(wins, scores) if s >= min_score]
    if not keep:
        keep = [wins[int(np.argmax(scores))]]
    return keep


def _win_profile(t, a, b):
    """Column profile of the band row in rows ``a:b``: their mean minus the median of
    the rows just above and below (half the window's height each), so that what the
    top-hat left of the membrane's unevenness does not bury faint lanes."""
    f = max(3, (b - a) // 2)
    pr = t[a:b].mean(axis=0)
    fl = np.concatenate([t[max(0, a - f):a], t[b:b + f]])
    # median: a band of another row (a marker band) in the flanks does not count
    return pr - median(fl, axis=0) if len(fl) else pr


def _row_profiles(t, wins):
    out = []
    for a, b in wins:
        pr = t[a:b].mean(axis=0)
        # log compression, in units of the row's noise: a 2-fold dilution series or a
        # saturated lane then weighs about as much as an ordinary lane
        d = np.diff(pr)
        nz = robust_sd(d) / np.sqrt(2)
        base = np.percentile(pr, 5)
        v = np.log1p(np.clip(pr - base, 0, None) / (3 * nz + 1e-12))
        s = v.max()
        if s > 0:
            out.append(v / s)
    return out


def _column_profile(t, wins):
    """Combine the normalised column profiles of the band rows (median of >= 3 rows, so
    that a bubble or smudge in one row cannot make a lane)."""
    prs = _row_profiles(t, wins)
    if not prs:
        return t.mean(axis=0)
    prs = np.array(prs)
    if len(prs) >= 3:
        return 0.5 * median(prs, axis=0) + 0.5 * np.sort(prs, axis=0)[len(prs) // 3]
    return prs.mean(axis=0)


def _tilt(t, wins, max_tilt):
    """Lane slope dx/dy from the column shift between upper and lower band rows."""
    if len(wins) < 2:
        return 0.0
    ys = np.array([(a + b) / 2 for a, b in wins])
    prs = _row_profiles(t, wins)
    if len(prs) != len(wins):
        return 0.0
    wid = t.shape[1]
    est, wt = [], []
    for i in range(len(wins)):
        for j in range(i + 1, len(wins)):
            dy = ys[j] - ys[i]
            if dy < 0.15 * t.shape[0]:
                continue
            maxs = int(max_tilt * dy) + 1
            a, b = prs[i] - prs[i].mean(), prs[j] - prs[j].mean()
            lags = np.arange(-maxs, maxs + 1)
            xc = np.array([np.dot(a[max(0, -k):wid - max(0, k)], b[max(0, k):wid - max(0, -k)]) for k in lags])
            m = int(np.argmax(xc))
            if m == 0 or m == len(lags) - 1 or xc[m] <= 0:
                continue
            den = xc[m - 1] - 2 * xc[m] + xc[m + 1]
            k = lags[m] + (0.5 * (xc[m - 1] - xc[m + 1]) / den if den < 0 else 0.0)
            est.append(k / dy)
            wt.append(dy)
    if not est:
        return 0.0
    return float(median(est))


def _grid_lanes(ts: np.ndarray, centres, spacing: float, lw: float, band_rows=(), faint=None):
    """Lanes on the lane grid whose bands line up with no other lane's.

    The band rows only see lanes that share a protein row; a marker lane (its
    bands at heights of their own) or a lane holding a different protein is not
    in them. Every free position on the lane grid (beyond the outer lanes and in
    gaps of about a whole spacing) becomes a lane when the band-like signal of
    the whole lane height there (column mean of the top-hat image) rises above
    the membrane between lanes by at least half as much as it does at the median
    lane found (of those where it rises at all), and far above its noise, over a lane-like width (a speck or a
    spot is much narrower). Returns the centres (px) of the extra lanes.
    """
    wid = ts.shape[1]
    if len(centres) < 2 or spacing < 6:
        return [float(v) for v in centres], [bool(f) for f in (faint if faint is not None else [False] * len(centres))]
    braw = ts.mean(axis=0)
    b2 = ndi.gaussian_filter1d(braw, 2.0)
    sm = max(2.0, spacing / 8.0)
    bs = ndi.gaussian_filter1d(braw, sm)
    c = np.asarray(centres, float)
    mids = 0.5 * (c[1:] + c[:-1])
    base = float(median(bs[np.clip(np.rint(mids).astype(int), 0, wid - 1)]))
    at = bs[np.clip(np.rint(c).astype(int), 0, wid - 1)] - base
    # lanes found by a faint row may carry no band signal over the whole height above
    # the membrane's unevenness: the reference is the median lane among those that do
    ref = float(median(at[at > 0])) if (at > 0).any() else 0.0
    d = np.diff(braw)
    nz = robust_sd(d) / np.sqrt(2)
    nz_s = nz / np.sqrt(2 * np.sqrt(np.pi) * sm)
    need = max(0.5 * ref, 6 * nz_s)

    def probe(q, reach=0.3):
        lo, hi = int(round(q - reach * spacing)), int(round(q + reach * spacing))
        if ref <= 0 or lo < 0 or hi > wid - 1 or hi - lo < 3:
            return None
        x = lo + int(np.argmax(bs[lo:hi + 1]))
        if x in (lo, hi) or bs[x] - base < need:
            return None
        # half-maximum width of the (lightly smoothed) profile around the peak
        top = float(b2[max(0, x - 2):x + 3].max())
        hm = base + 0.5 * (top - base)
        l = x
        while l > 0 and b2[l] > hm and x - l < spacing:
            l -= 1
        r = x
        while r < wid - 1 and b2[r] > hm and r - x < spacing:
            r += 1
        if r - l < 0.5 * lw or r - l > 1.5 * spacing:
            return None
        return 0.5 * (l + r)

    win_profiles, strips = {}, {}  # probes read the same row profiles (and strips) again

    def probe_row(q):
        """A faint lane: a band at the height of a band row in the strip of columns at
        ``q``, standing >= 6 robust SDs out of the same contrast measured at every
        other height of that strip (the strip's own noise and texture)."""
        if not band_rows:
            return None
        hw = max(1, int(round(lw / 2)))
        best = None
        for a, b in band_rows:
            if (a, b) not in win_profiles:
                win_profiles[a, b] = _win_profile(ts, a, b)
            cr = win_profiles[a, b]
            x = int(round(_matched_centre(cr, int(round(q)), 2 * hw, spacing)))
            if x - hw < 0 or x + hw > wid:
                continue
            if (x, hw) not in strips:
                strips[x, hw] = ts[:, x - hw:x + hw].mean(axis=1)
            strip = strips[x, hw]
            # contrast of the band's core (a third of the row window, which is padded
            # for the smile) against the rows just above and below it
            n = max(3, (b - a) // 3)
            s1 = ndi.uniform_filter1d(strip, n, mode="nearest")
            con = s1 - 0.5 * (np.roll(s1, n) + np.roll(s1, -n))
            con = con[n:len(con) - n]
            if len(con) < 8 * n:
                continue
            yc = (a + b) // 2 - n
            if not 3 <= yc < len(con) - 3:
                continue
            sd = robust_sd(con)
            z = (float(con[yc - 3:yc + 4].max()) - float(median(con))) / max(sd, 1e-12)
            if z >= 6 and (best is None or z > best[0]):
                best = (z, float(x))
        return None if best is None else best[1]

    def probe_any(q):
        x = probe(q)
        if x is not None:
            return x, False
        x = probe_row(q)
        return None if x is None else (x, True)

    # a faint lane (found through a faint row only) where the whole lane height shows
    # a clear lane nearby: the clear evidence places it (a marker lane seen through
    # the edge of one of its bands in a protein row)
    moved = []
    for i in range(len(c)):
        if faint is not None and faint[i]:
            x = probe(c[i], 0.5)
            if x is not None:
                moved.append((i, x))
    for i, x in moved:
        c[i] = x
    extra = []
    for direction, start in ((-1, c.min()), (1, c.max())):
        k = 1
        while True:
            x = probe_any(start + direction * k * spacing)
            if x is None:
                break
            extra.append(x)
            k += 1
    for a, b in zip(c[:-1], c[1:]):
        m = int(round((b - a) / spacing)) - 1
        for j in range(1, m + 1):
            x = probe_any(a + j * (b - a) / (m + 1))
            if x is not None:
                extra.append(x)
    # never closer than 0.6 spacing to another lane
    out = []
    for x, fa in extra:
        if all(abs(x - y) >= 0.6 * spacing for y in list(c) + [o[0] for o in out]):
            out.append((float(x), fa))
    fl = [bool(f) for f in (faint if faint is not None else np.zeros(len(c), bool))]
    for i, _ in moved:
        fl[i] = False
    return [float(v) for v in c] + [x for x, _ in out], fl + [fa for _, fa in out]


def _regularise(centres, faint, spacing: float) -> list[float]:
    """Faint lanes onto the comb: lanes are cast evenly spaced, and the centre of a
    lane seen only through a faint band is noisier than that spacing is irregular.

    The lane pitch is the median of the adjacent centre differences within 30 % of
    ``spacing``; a grid ``x0 + k * pitch`` is fitted by least squares to all lanes
    (clear lanes weigh 5 times a faint one). When the clear lanes sit on it (within
    10 % of the pitch), each faint lane within a quarter pitch of its grid slot moves
    there; otherwise nothing moves.
    """
    c = np.asarray(centres, float)
    fa = np.asarray(faint, bool)
    if (~fa).sum() < 2 or not fa.any():
        return list(c)
    order = np.sort(c)
    dif = np.diff(order)
    ok = dif[(dif >= 0.7 * spacing) & (dif <= 1.3 * spacing)]
    pitch = float(median(ok)) if len(ok) else float(spacing)
    ref = float(np.sort(c[~fa])[0])
    w = np.where(fa, 0.2, 1.0)
    for _ in range(3):
        k = np.rint((c - ref) / pitch)
        if len(np.unique(k)) < len(k):
            return list(c)
        A = np.stack([np.ones_like(k), k], axis=1) * np.sqrt(w)[:, None]
        x0, pitch = np.linalg.lstsq(A, c * np.sqrt(w), rcond=None)[0]
        ref = x0
        # a faint "lane" far off its slot (noise, a marker seen through a neighbour's
        # row) does not pull the grid
        w = np.where(fa & (np.abs(x0 + k * pitch - c) > 0.25 * pitch), 0.0, w)
    g = x0 + k * pitch
    if np.abs(g - c)[~fa].max() > 0.1 * pitch:
        return list(c)
    out = np.where(fa & (np.abs(g - c) <= 0.25 * pitch), g, c)
    return [float(v) for v in out]


def _matched_centre(lin: np.ndarray, p: int, w: float, spacing: float) -> float:
    """Centre near ``p`` where the mean of ``lin`` over a lane of width ``w`` stands
    highest above the mean of the gaps (0.15 spacing) on both sides (searched within
    0.25 spacing)."""
    n = len(lin)
    cs = np.concatenate([[0.0], np.cumsum(lin)])
    hw = max(1, int(round(w / 2)))
    g = max(2, int(round(0.15 * spacing)))

    def mean(a, b):
        a, b = max(0, a), min(n, b)
        return (cs[b] - cs[a]) / (b - a) if b > a else np.nan

    best, bx = -np.inf, float(p)
    for x in range(int(p - 0.25 * spacing), int(p + 0.25 * spacing) + 1):
        if x - hw < 0 or x + hw > n:
            continue
        v = mean(x - hw, x + hw) - 0.5 * (mean(x - hw - g, x - hw) + mean(x + hw, x + hw + g))
        if np.isfinite(v) and v > best:
            best, bx = v, float(x)
    return bx


#: lanes of one piece are cast by one comb: evenly spaced. A position of the comb holds a lane when
#: its band evidence (the band rows' profile over the lane's core) reaches this fraction of the
#: strong lanes' (75th percentile): faint B3AR/receptor lanes are 0.2-0.5 of the strong ones,
#: empty membrane and the gap beside the outer lanes < 0.1
LANE_EVIDENCE_FRAC = 0.15
LANE_HARMONIC_FRAC = 0.5
#: a lane's band in the best band row stands this many noise SDs of that row's profile above the
#: membrane (the detection threshold of bands, min_snr, is 4 SD)
LANE_MIN_SNR = 6.0
#: the best-repeating band row holds a band where its profile reaches this fraction of its maximum
LANE_SPAN_FRAC = 0.15
#: with three band rows or more, the outermost lanes hold a band in at least this fraction of them
LANE_ROWS_FRAC = 0.5
#: the outermost lanes of a piece: their linear band evidence (band rows' profile, best core mean
#: within half a pitch of the comb position) is at least this fraction of the lanes' 75th
#: percentile of core means; an empty position between two such lanes stays a lane (an empty well).
#: Kodak (all 21 images): at 0.2 pen writing and bare membrane right of June 21 B3AR's strips
#: still give 4 lanes (0.3: none); 0.4 drops the faint, off-centre end band of July 23 B2AR's top
#: strip; every analyst lane is found up to 0.4 (306/306), not at 0.5 (300/306)
LANE_END_FRAC = 0.3
#: a marker lane beside the sample lanes: its whole-height band evidence is at least this fraction
#: of the sample lanes' median (a ladder has 8-15 bands against the samples' few rows)
LANE_MARKER_FRAC = 0.5
#: bands a marker lane shows at least (protein markers 8-15, DNA ladders 10-20)
LANE_MARKER_BANDS = 4
#: a marker band stands at least this fraction of the sample lanes' band in the best row
LANE_MARKER_REL = 0.15
LANE_PEAK_SIGMA = 4.0
#: lane width from the bands' own extent: this multiple of their median full width at half maximum
#: (the analyst's rectangles are ~1.1-1.3 x the bands' half-maximum width), between these fractions
#: of the pitch (lanes never overlap; touching bands: the lane is the pitch less a gap)
LANE_WIDTH_FWHM = 1.25
LANE_WIDTH_MIN_PITCH, LANE_WIDTH_MAX_PITCH = 0.5, 0.92


def _evidence_profile(ts: np.ndarray, wins) -> np.ndarray:
    """Column profile of the band rows: each row's mean profile scaled by its robust maximum,
    summed (linear: the dips between touching bands keep their depth)."""
    out = np.zeros(ts.shape[1])
    for a, b in wins:
        pr = ts[a:b].mean(axis=0)
        s = float(np.percentile(pr, 99))
        if s > 0:
            out += np.clip(pr, 0, None) / s
    return ndi.gaussian_filter1d(out, 1.5)


def _presence_profile(ts: np.ndarray, wins) -> np.ndarray:
    """Column profile of band evidence for telling lanes from empty membrane: the band rows'
    profiles, each log-compressed in units of its noise (a 2-fold dilution series weighs about as
    much as an ordinary lane) and scaled to its maximum, summed."""
    prs = _row_profiles(ts, list(wins))
    out = np.sum(prs, axis=0) if prs else np.zeros(ts.shape[1])
    return ndi.gaussian_filter1d(out, 1.5)


def _whole_profile(ts: np.ndarray) -> np.ndarray:
    """The band evidence of the whole piece height (log-compressed as :func:`_presence_profile`)."""
    return _presence_profile(ts, [(0, ts.shape[0])])


#: periods of the comb spectrum evaluated per block (bounds the periods x columns work array)
COMB_SPECTRUM_BLOCK = 256
#: columns per block of the split exponential (any value gives the same spectrum; 64 is fast)
COMB_SPECTRUM_SPLIT = 64


def _comb_spectrum(e: np.ndarray, pmin: float, pmax: float):
    """(periods, Fourier coefficients, i0, i1) of the derivative of the evidence profile ``e`` over
    the columns that carry bands (``i0:i1``), at periods ``pmin..pmax`` in 0.25 px steps, or None
    when there are too few such columns."""
    wid = len(e)
    sup = e > 0.2 * float(e.max())
    if sup.sum() < 3:
        return None
    i0, i1 = int(np.flatnonzero(sup)[0]), int(np.flatnonzero(sup)[-1]) + 1
    # the derivative: the plateau of touching bands and its two ends weigh the same at every period
    # (a step's spectrum is flat), the dips and lanes repeat at the lane period
    i0, i1 = max(0, i0 - 3), min(wid, i1 + 3)
    d = np.gradient(e)[i0:i1]
    xs = np.arange(i0, i1)
    ps = np.arange(pmin, pmax + 0.25, 0.25)
    ps = ps[(i1 - i0) >= 1.5 * ps]
    if not len(ps):
        return None
    # exp(-2 pi i x / p) with x = i0 + S h + l is exp(.. (i0 + S h)) exp(.. l): two small tables of
    # exponentials per period instead of one per column (the exponentials are the cost)
    s_ = COMB_SPECTRUM_SPLIT
    nh = -(-len(d) // s_)
    dd = np.zeros(nh * s_)
    dd[:len(d)] = d
    dd = dd.reshape(nh, s_)
    zs = np.empty(len(ps), complex)
    for j in range(0, len(ps), COMB_SPECTRUM_BLOCK):
        w = -2j * np.pi / ps[j:j + COMB_SPECTRUM_BLOCK]
        hi = np.exp(np.outer(w, i0 + s_ * np.arange(nh)))
        lo = np.exp(np.outer(w, np.arange(s_)))
        zs[j:j + len(w)] = np.sum((lo @ dd.T) * hi, axis=1)
    return ps, zs, i0, i1


def _comb_pitch(e: np.ndarray, pmin: float, pmax: float):
    """(pitch, phase x0) of the lane comb: the period with the largest Fourier amplitude of the
    evidence profile with trends longer than the period removed, over the columns that carry bands.

    The amplitude at the lane period comes from the dips between lanes as much as from the lanes,
    so touching bands (no gap, only a dip) keep their pitch instead of doubling it.
    """
    wid = len(e)
    spec = _comb_spectrum(e, pmin, pmax)
    if spec is None:
        return None
    ps, zs, i0, i1 = spec
    amp = np.abs(zs)

    def pick(a_):
        k = int(np.argmax(a_))
        return ps[k], zs[k]

    def with_harmonic(k):
        j = int(np.argmin(np.abs(ps - 2 * ps[k])))
        if abs(ps[j] - 2 * ps[k]) <= 1.0 and amp[max(0, j - 4):j + 5].max() >= LANE_HARMONIC_FRAC * amp[k]:
            lo = max(0, j - 4)
            return lo + int(np.argmax(amp[lo:j + 5]))
        return k

    # the derivative favours the harmonics of the lane period (narrow gaps between wide lanes make
    # two edges a lane): candidates are the best period (or its double when that carries
    # LANE_HARMONIC_FRAC of its amplitude) and the best period near the spacing of the profile's
    # own maxima (lanes, or the bumps of touching bands); the lane period is the candidate whose
    # comb puts lanes on the profile's highs and the gaps between on its lows
    cands = [with_harmonic(int(np.argmax(amp)))]
    es = ndi.gaussian_filter1d(e, LANE_PEAK_SIGMA)
    pk, _ = find_peaks(es, prominence=0.03 * float(es.max()))
    if len(pk) >= 3:
        rough = float(median(np.diff(pk)))
        sel = (ps >= 0.7 * rough) & (ps <= 1.45 * rough)
        if sel.any():
            cands.append(int(np.argmax(np.where(sel, amp, 0.0))))

    def contrast(k):
        p, z = ps[k], zs[k]
        x0 = (-float(np.angle(-1j * z)) / (2 * np.pi) * p) % p
        pos = np.arange(x0, wid, p)
        pos = pos[(pos >= i0) & (pos < i1)]
        mid = pos + p / 2
        ok = mid < i1
        if ok.sum() < 1:
            return -np.inf
        ii, mm = np.rint(pos[ok]).astype(int), np.rint(mid[ok]).astype(int)
        return float(median(es[ii] - es[np.clip(mm, 0, wid - 1)]))

    k = max(cands, key=contrast)
    best = (amp[k], float(ps[k]), zs[k])
    _, p, z = best
    # the lanes' Fourier coefficient is the derivative's divided by i (d/dx exp(iwx) = iw exp(iwx));
    # a comb cos(w (x - x0)) has the coefficient's angle -w x0
    return p, (-float(np.angle(-1j * z)) / (2 * np.pi) * p) % p


def _fwhm(e: np.ndarray, x: float, pitch: float) -> float:
    i = int(round(x))
    if min(len(e), int(i + pitch) + 1) - max(0, int(i - pitch)) < 3:
        return 0.0
    left, right = _half_max_extent(e, x, pitch)
    return right - left


def _is_marker(ts: np.ndarray, c: float, core: int, band: float = 0.0) -> bool:
    """A marker lane: at least ``LANE_MARKER_BANDS`` bands across the lane, each standing
    ``LANE_MIN_SNR`` noise SDs and ``LANE_MARKER_REL`` of the sample lanes' band (``band``) out
    in the vertical profiles of both halves of the lane (a band crosses the lane; a spot, a
    bubble or a smudge does not, and membrane texture is weak against the bands)."""
    c = int(round(c))
    found = []
    for lo, hi in ((c - core, c), (c, c + core + 1)):
        v = ndi.gaussian_filter1d(ts[:, max(0, lo):max(lo + 1, hi)].mean(axis=1), 1.0)
        nz = robust_sd(np.diff(v)) / np.sqrt(2)
        if nz <= 0:
            return False
        pk, _ = find_peaks(v, prominence=max(LANE_MIN_SNR * nz, LANE_MARKER_REL * band), distance=3)
        found.append(pk)
    both = [p for p in found[0] if len(found[1]) and np.min(np.abs(found[1] - p)) <= 3]
    return len(both) >= LANE_MARKER_BANDS


def _comb_lanes(ts: np.ndarray, wins, n_lanes: int | None, pmin: float):
    """(lane centres px, lane width px, centres of the marker lanes recognised) of one piece, from
    the comb fitted to its band rows."""
    wid = ts.shape[1]
    e = _evidence_profile(ts, wins)
    if e.max() <= 0:
        return [], 0.0, set()
    fit = _comb_pitch(e, pmin, max(pmin + 1, wid / 2.0))
    if fit is None:
        return [], 0.0, set()
    pitch, x0 = fit
    ks = np.arange(int(np.floor(-x0 / pitch)), int(np.ceil((wid - x0) / pitch)) + 1)
    pos = x0 + ks * pitch
    pos = pos[(pos >= 0.25 * pitch) & (pos <= wid - 1 - 0.25 * pitch)]
    if not len(pos):
        return [], 0.0, set()
    core = max(1, int(round(0.25 * pitch)))
    # each comb position moves to its own lane (lanes are not cast perfectly evenly), within 0.2 pitch
    cs = []
    for p in pos:
        lo, hi = int(round(p - 0.2 * pitch)), int(round(p + 0.2 * pitch))
        lo, hi = max(core, lo), min(wid - 1 - core, hi)
        if hi <= lo:
            cs.append(float(p))
            continue
        sm = ndi.uniform_filter1d(e, 2 * core + 1)
        cs.append(float(lo + np.argmax(sm[lo:hi + 1])))
    cs = np.array(cs)
    def at(prof):
        qb = float(np.percentile(prof, 10))
        return np.array([float(prof[max(0, int(c) - core):int(c) + core + 1].mean()) - qb for c in cs])

    # sample lanes: band evidence in the band rows; a marker lane (bands at heights of their own)
    # shows over the whole height, beside the sample lanes
    ev = at(_presence_profile(ts, wins)) if len(wins) else at(_presence_profile(ts, []))
    evw = at(_whole_profile(ts))
    markers: set = set()
    if n_lanes:
        n = min(int(n_lanes), len(cs))
        tot = np.convolve(ev, np.ones(n), mode="valid")
        k = int(np.argmax(tot))
        keep = np.arange(k, k + n)
    else:
        # the span of the sample lanes: where the band row that repeats best lane after lane, and
        # strongly (its period score times its bands' height), carries a band; pen marks and
        # writing in other rows do not repeat, a faint row at a strip's edge is weak
        if len(wins):
            def strength(w):
                pr = ts[w[0]:w[1]].mean(axis=0)
                return _period_score(pr) * float(np.percentile(pr, 95) - np.percentile(pr, 10))

            best = max(wins, key=strength)
            evb = at(ndi.gaussian_filter1d(ts[best[0]:best[1]].mean(axis=0), 1.5))
        else:
            evb = ev
        refb = float(evb.max())
        # a lane is a band far above the noise of its row (a piece of empty membrane or a gel's
        # well region has band rows of noise and texture only)
        if len(wins):
            prb = ts[best[0]:best[1]].mean(axis=0)
            nz = robust_sd(np.diff(prb)) / np.sqrt(2)
            if refb < LANE_MIN_SNR * nz:
                return [], 0.0, set()
        good = np.flatnonzero(evb >= LANE_SPAN_FRAC * refb) if refb > 0 else np.array([], int)
        if not len(good):
            return [], 0.0, set()
        i0, i1 = int(good[0]), int(good[-1])
        # the span's ends hold bands in most band rows (writing beside the marker, a label at
        # the height of one row, is in one row only)
        if len(wins) >= 3:
            pres = np.zeros(len(cs), int)
            for a, b in wins:
                er = at(ndi.gaussian_filter1d(ts[a:b].mean(axis=0), 1.5))
                if er.max() > 0:
                    pres += er >= LANE_SPAN_FRAC * float(er.max())
            need = int(np.ceil(LANE_ROWS_FRAC * len(wins)))
            while i0 < i1 and pres[i0] < need:
                i0 += 1
            while i1 > i0 and pres[i1] < need:
                i1 -= 1
        # the span's outermost lanes carry bands: a run of positions at a piece's end whose linear
        # band evidence is far below the lanes' (pen writing, bare membrane beyond the last well)
        # is no lane; an empty position between two lanes with bands is a lane (an empty well)
        # (an end lane's band may sit off its comb position, beyond the 0.2 pitch the position
        # moved: its evidence is the best core mean within half a pitch)
        lin = at(e)
        lref = float(np.percentile(lin[i0:i1 + 1], 75))
        sm = ndi.uniform_filter1d(e, 2 * core + 1) - float(np.percentile(e, 10))
        half = int(round(0.5 * pitch))

        def end_ev(c):
            return float(sm[max(0, int(c) - half):int(c) + half + 1].max())

        if lref > 0:
            while i0 < i1 and end_ev(cs[i0]) < LANE_END_FRAC * lref:
                i0 += 1
            while i1 > i0 and end_ev(cs[i1]) < LANE_END_FRAC * lref:
                i1 -= 1
        wref = float(median(evw[i0:i1 + 1]))
        if wref > 0:
            if i0 > 0 and evw[i0 - 1] >= LANE_MARKER_FRAC * wref and _is_marker(ts, cs[i0 - 1], core, refb):
                i0 -= 1
                markers.add(float(cs[i0]))
            if i1 < len(cs) - 1 and evw[i1 + 1] >= LANE_MARKER_FRAC * wref and _is_marker(ts, cs[i1 + 1], core, refb):
                i1 += 1
                markers.add(float(cs[i1]))
        keep = np.arange(i0, i1 + 1)
    cs = cs[keep]
    fw = [_fwhm(e, c, pitch) for c in cs]
    fw = [f for f, v in zip(fw, ev[keep]) if f > 0 and v >= 0.3 * ev[keep].max()] or fw
    lw = float(np.clip(LANE_WIDTH_FWHM * median(fw), LANE_WIDTH_MIN_PITCH * pitch, LANE_WIDTH_MAX_PITCH * pitch))
    return [float(c) for c in cs], lw, markers


#: a lane split in two: two neighbouring comb lanes closer than LANE_SPLIT_SPACING of the piece's
#: median lane spacing whose evidence profile between them dips less than LANE_SPLIT_DIP of the
#: piece's median dip between neighbours (dip: 1 - the profile's minimum between two lane centres
#: over the lower of their two peaks) are one band, one lane. Kodak: the wide right-hand band of
#: July 23 B2AR (35 px apart at a 49 px spacing, dip 0.28 of the median) and the first GAPDH lane
#: of April 22 bottom (33 at 59 px, 0.09); the nearest pairs of real lanes there (touching GAPDH
#: bands) dip 0.40-0.47 of the median
LANE_SPLIT_SPACING = 0.8
LANE_SPLIT_DIP = 0.35
#: the merged band must look like one lane: its half-maximum extent at most this many spacings
LANE_SPLIT_MAX_FWHM = 1.6


def _pair_dip(e: np.ndarray, a: float, b: float) -> float:
    """1 - (minimum of ``e`` between columns a and b) / (lower of the two peaks near a and b)."""
    ia, ib = int(round(a)), int(round(b))
    pa = float(e[max(0, ia - 3):ia + 4].max())
    pb = float(e[max(0, ib - 3):ib + 4].max())
    lo = min(pa, pb)
    if lo <= 0 or ib <= ia:
        return 1.0
    return 1.0 - float(e[ia:ib + 1].min()) / lo


def _half_max_extent(e: np.ndarray, x: float, reach: float) -> tuple[float, float]:
    """(left, right) columns where ``e`` falls to half its height above the local minimum (within
    ``reach`` px) on either side of column x."""
    i = int(round(x))
    lo, hi = max(0, int(i - reach)), min(len(e), int(i + reach) + 1)
    base = float(e[lo:hi].min())
    top = float(e[max(0, i - 2):i + 3].max())
    hm = base + 0.5 * (top - base)
    l = i
    while l > lo and e[l] > hm:
        l -= 1
    r = i
    while r < hi - 1 and e[r] > hm:
        r += 1
    return float(l), float(r)


def _merge_half_pitch(e: np.ndarray, cs) -> tuple[list[float], dict]:
    """(centres, {centre: width}) of a comb fitted at half the lane pitch, every lane split in two:
    every other gap between neighbouring lanes is none (its dips' median below
    :data:`LANE_SPLIT_DIP` of the other gaps' median: the Kodak Oct 8 GAPDH strip, a merged row
    whose narrow dips between lanes made the half period the comb's, 0.07; 0.52 or more on every
    other Kodak strip), so the lanes across those gaps are merged pairwise (centre midway, width
    from the merged bands' half-maximum extent as :func:`_comb_lanes` sets it). Unchanged otherwise."""
    cs = sorted(float(c) for c in cs)
    if len(cs) < 5:
        return cs, {}
    dips = np.array([_pair_dip(e, a, b) for a, b in zip(cs, cs[1:])])
    med = [float(median(dips[0::2])), float(median(dips[1::2]))]
    s = int(np.argmin(med))
    if med[1 - s] <= 0 or med[s] >= LANE_SPLIT_DIP * med[1 - s]:
        return cs, {}
    out, merged, i = [], [], 0
    while i < len(cs):
        if i % 2 == s and i + 1 < len(cs):
            out.append(0.5 * (cs[i] + cs[i + 1]))
            merged.append(out[-1])
            i += 2
        else:
            out.append(cs[i])
            i += 1
    pitch = float(median(np.diff(out))) if len(out) > 1 else 2.0 * float(median(np.diff(cs)))
    fw = [f for f in (_fwhm(e, c, pitch) for c in merged) if f > 0]
    w = LANE_WIDTH_FWHM * float(median(fw)) if fw else LANE_WIDTH_MAX_PITCH * pitch
    w = float(np.clip(w, LANE_WIDTH_MIN_PITCH * pitch, LANE_WIDTH_MAX_PITCH * pitch))
    return out, {c: w for c in merged}


def _merge_split_lanes(e: np.ndarray, cs, lw: float):
    """(centres, {centre: width}) with a comb at half the lane pitch merged back
    (:func:`_merge_half_pitch`) and each lane split in two merged back (see
    :data:`LANE_SPLIT_DIP`): the merged lane spans the band's half-maximum extent widened as every
    lane is (``LANE_WIDTH_FWHM``), centred on it."""
    cs, widths = _merge_half_pitch(e, cs)
    if len(cs) < 4:
        return cs, widths
    while len(cs) >= 4:
        sp = np.diff(cs)
        med_sp = float(median(sp))
        dips = np.array([_pair_dip(e, a, b) for a, b in zip(cs, cs[1:])])
        med_dip = float(median(dips))
        if med_sp <= 0 or med_dip <= 0:
            break
        cand = [i for i in range(len(sp)) if sp[i] < LANE_SPLIT_SPACING * med_sp
                and dips[i] < LANE_SPLIT_DIP * med_dip]
        if not cand:
            break
        i = min(cand, key=lambda k: dips[k])
        mid = 0.5 * (cs[i] + cs[i + 1])
        l, r = _half_max_extent(e, mid, 1.5 * med_sp)
        # touching bands: the merged band ends at the dips to its neighbours
        if i > 0:
            a = int(round(cs[i - 1]))
            l = max(l, float(a + np.argmin(e[a:int(round(cs[i])) + 1])))
        if i + 2 < len(cs):
            a = int(round(cs[i + 1]))
            r = min(r, float(a + np.argmin(e[a:int(round(cs[i + 2])) + 1])))
        fw = r - l
        if fw > LANE_SPLIT_MAX_FWHM * med_sp or fw < sp[i]:
            break
        c = 0.5 * (l + r)
        w = max(lw, LANE_WIDTH_FWHM * fw)
        widths = {k: v for k, v in widths.items() if k not in (cs[i], cs[i + 1])}
        cs = cs[:i] + [c] + cs[i + 2:]
        widths[c] = w
    return cs, widths


def _free_grid_lanes(ts, band_rows, n_lanes, min_lane_width_px, wid):
    """Lane centres and width of a piece filling the frame (no cut edges): peaks of the combined
    column profile of the band rows, completed on the lane grid (the finder used before membrane
    pieces were found from cut edges; kept for whole-frame blots and gels)."""
    col = _column_profile(ts, band_rows)
    pitch = _pitch(col, min_lane_width_px, max(min_lane_width_px + 3, wid // 2))
    dist = max(min_lane_width_px, int(0.6 * pitch)) if pitch else min_lane_width_px
    col = ndi.gaussian_filter1d(col, max(2.0, (pitch or 0) / 8.0))
    base = float(np.percentile(col, 10))
    rng = float(col.max() - base)
    if rng <= 0:
        return [], 0.0
    if n_lanes:
        pk, props = find_peaks(col, distance=dist, prominence=1e-12 * rng)
        order = np.argsort(props["prominences"])[::-1][:n_lanes]
        pk = np.sort(pk[order])
    else:
        pk, props = find_peaks(col, distance=dist, prominence=0.08 * rng, height=base + 0.08 * rng)
        if len(pk) > 1:
            # drop peaks much weaker than their lane-mates (smudges between lanes)
            keep = props["prominences"] >= 0.15 * median(props["prominences"])
            pk = pk[keep]
    if not len(pk):
        return [], 0.0
    if len(pk) > 1:
        spacing = float(median(np.diff(pk)))
    else:
        spacing = float(pitch) if pitch else float(wid)
    # lane width: 1.2 x the median full width at half maximum of the linear
    # (not log-compressed) band-row profile, at most 90 % of the lane spacing
    lin = np.zeros(wid)
    for a, b in band_rows:
        pr = ts[a:b].mean(axis=0)
        if pr.max() > 0:
            lin += pr / pr.max()
    lin = ndi.gaussian_filter1d(lin, 1.0)
    widths, mids, amps = [], [], []
    half_sp = int(max(2, spacing / 2))
    for p in pk:
        seg = lin[max(0, p - half_sp):min(wid, p + half_sp + 1)]
        base = float(seg.min())
        top = float(lin[max(0, p - 3):p + 4].max())
        hm = base + 0.5 * (top - base)
        l = p
        while l > 0 and lin[l] > hm:
            l -= 1
        r = p
        while r < wid - 1 and lin[r] > hm:
            r += 1
        widths.append(r - l)
        mids.append(0.5 * (l + r))
        amps.append(top - base)
    # faint lanes (a tenth of the strongest, say) have noisy half-maximum
    # crossings: the width comes from the clear lanes, and their centres from a
    # matched filter (lane mean minus the mean of the gaps beside it, blind to
    # a sloping baseline) over the whole lane width
    amps = np.array(amps)
    faint = amps < 0.3 * amps.max()
    medw = float(median(np.array(widths)[~faint]))
    lw = min(1.2 * medw, 0.9 * spacing)
    # lane centre: middle of the half-maximum crossings (more precise than the
    # peak of a flat-topped profile) when that width is plausible
    pk = [_matched_centre(lin, p, medw, spacing) if fa else
          m if 0.6 * medw <= wdt <= 1.5 * medw else float(p)
          for p, m, wdt, fa in zip(pk, mids, widths, faint)]
    lw = max(lw, 3.0)
    if not n_lanes:
        # the lane step: the median spacing of the lanes found, each spacing divided by
        # the multiple of the autocorrelation pitch it spans (lanes missing between)
        grid = spacing
        if pitch and len(pk) > 1:
            d = np.diff(np.sort(np.asarray(pk, float)))
            unit = float(median(d / np.maximum(1, np.rint(d / pitch))))
            if abs(unit - pitch) <= 0.15 * pitch:
                grid = unit
        allc, allf = _grid_lanes(ts, pk, grid, lw, band_rows, faint)
        pk = sorted(_regularise(allc, allf, grid))
    return [float(p) for p in pk], float(lw)


#: pieces of one image are strips of one gel, cast by one comb: a cut piece whose lanes come out at
#: LANE_PITCH_SHARE_RATIO times (or more) another cut piece's pitch has merged touching bands
#: (Kodak GAPDH rows with no dip between lanes: 3 lanes of 187 px beside 10 of ~54 px); its lanes are
#: placed again at the other piece's pitch (:func:`_merged_lanes`). 1.8: below two pitches (a doubled
#: pitch) and above the Kodak pitches' spread between blots (55-90 px, 1.64)
LANE_PITCH_SHARE_RATIO = 1.8
#: lanes a piece needs for its pitch to serve another piece
LANE_PITCH_SHARE_MIN_LANES = 5
#: a cut piece whose comb pitch is at least LANE_PITCH_SUB_RATIO times another piece's pitch, while
#: the strongest period of its own comb spectrum lies within LANE_PITCH_SUB_TOL of that pitch, has
#: merged bands too: its own spectrum says the other piece's comb, its comb fit took a longer period
#: (a doubled or 1.5-fold one: 1.4 is below 1.5 with room for uneven casting). Kodak July 23 GAPDH:
#: the bottom strip's spectrum peaks at 46 px, its comb at 94 px (78 after merging), the top strip's
#: pitch is 54 px
LANE_PITCH_SUB_RATIO = 1.4
LANE_PITCH_SUB_TOL = 0.2


def _piece_pitch(cs) -> float | None:
    return float(median(np.diff(sorted(cs)))) if len(cs) >= 2 else None


#: a boundary between merged lanes: a dip of the row's evidence profile at least this prominent, as
#: a fraction of the row's median evidence level (touching bands still dip a little between lanes;
#: noise dips are shallower). July 23 GAPDH bottom strip: the dips between its touching lanes
#: 0.044-0.49, the profile's noise dips below 0.01
LANE_MERGED_DIP_PROM = 0.03
#: two such dips closer than this fraction of the pitch are one boundary (the more prominent one;
#: lanes are cast a pitch apart, 0.6: the closest :func:`_grid_lanes` lets two lanes be)
LANE_MERGED_DIP_MERGE = 0.6
#: a stretch between two boundaries holding several lanes is cut at the most prominent such dip
#: within this fraction of the stretch's pitch of each even position (the even position where there
#: is none): lanes are not cast perfectly evenly
LANE_MERGED_SNAP = 0.3
#: a dip that leaves more than this fraction of a lane over a whole number of lanes on both sides
#: (between two other boundaries) is not a lane edge when the two stretches together hold a whole
#: number of lanes more nearly: a crack or a hole in one band (Kodak April 22 GAPDH top strip: a dip
#: of 0.49 inside its third lane, stretches of 1.49 and 1.56 pitches, 3.05 together)
LANE_MERGED_HALF = 0.3


def _lane_count(length: float, ref: float) -> tuple[int, float]:
    """(lanes, how far the stretch is from that many pitches, in pitches) of a stretch of
    ``length`` px at pitch ``ref``: the nearest whole number of pitches, at least one."""
    x = length / ref
    n = max(1, int(round(x)))
    return n, abs(x - n)


def _merged_edges(e: np.ndarray, a: int, b: int, ref: float, hi: float) -> list[float]:
    """Lane edges of a row of merged lanes (evidence profile ``e``, extent ``a:b``, median evidence
    level ``hi``) cast by a comb of pitch ``ref``: the row's prominent dips
    (:data:`LANE_MERGED_DIP_PROM`; of two within :data:`LANE_MERGED_DIP_MERGE` pitches of each other
    or of the row's ends the more prominent, the ends first) bound stretches of whole lanes, less a
    dip that leaves half lanes on both sides (:data:`LANE_MERGED_HALF`); a stretch holds
    ``round(length / ref)`` lanes, at least one (the extent ends at the row's half level, so an
    end stretch holds no band tail to count); a stretch of several lanes is cut at its
    most prominent of those dips near the even positions (:data:`LANE_MERGED_SNAP`; the even
    position where there is none)."""
    dx, props = find_peaks(-e, prominence=LANE_MERGED_DIP_PROM * hi)
    prom = props["prominences"]
    sel = (dx > a) & (dx < b)
    dx, prom = dx[sel], prom[sel]
    gap = LANE_MERGED_DIP_MERGE * ref
    kept = [float(a), float(b)]
    for i in np.argsort(-prom, kind="stable"):
        if all(abs(dx[i] - x) >= gap for x in kept):
            kept.append(float(dx[i]))
    bounds = sorted(kept)
    while len(bounds) > 3:
        best = None
        for k in range(2, len(bounds) - 2):
            r1 = _lane_count(bounds[k] - bounds[k - 1], ref)[1]
            r2 = _lane_count(bounds[k + 1] - bounds[k], ref)[1]
            r12 = _lane_count(bounds[k + 1] - bounds[k - 1], ref)[1]
            if min(r1, r2) > LANE_MERGED_HALF and r12 < min(r1, r2) and (best is None or r12 < best[0]):
                best = (r12, k)
        if best is None:
            break
        del bounds[best[1]]
    edges = [float(a)]
    for l, r in zip(bounds, bounds[1:]):
        n = _lane_count(r - l, ref)[0]
        p = (r - l) / n
        for j in range(1, n):
            x = edges[-1] + (r - edges[-1]) / (n - j + 1)
            near = np.flatnonzero(np.abs(dx - x) <= LANE_MERGED_SNAP * p)
            edges.append(float(dx[near[np.argmax(prom[near])]]) if len(near) else x)
        edges.append(float(r))
    return edges


def _merged_lanes(ts: np.ndarray, wins, ref: float):
    """(lane centres, {centre: width}) of a band row of merged lanes cast by a comb of pitch
    ``ref``: the row's extent (where its evidence profile is at least half its median over the
    bands' support, the longest such run) is cut into lanes at the row's dips
    (:func:`_merged_edges`: the dips between touching bands are the lane edges, whatever the lanes'
    uneven widths), side by side from dip to dip: no free membrane between merged bands (a free
    margin would put the lane-edge strips and the gel envelope on the neighbours' band tails; with
    3 px left free the Kodak April 22 B2AR 10w ZDF/ZL moved from -12 to -44 points). A row of lanes has no
    Fourier phase of its own when its bands merge: its two ends alone favour the pitches that fit a
    half number of times, so the comb only gives the pitch."""
    e = _evidence_profile(ts, wins)
    if e.max() <= 0:
        return [], {}
    es = ndi.gaussian_filter1d(e, LANE_PEAK_SIGMA)
    hi = float(median(es[es > 0.2 * es.max()]))
    runs = _runs(es >= 0.5 * hi)
    if not runs:
        return [], {}
    a, b = max(runs, key=lambda r: r[1] - r[0])
    edges = _merged_edges(e, a, b, ref, hi)
    if len(edges) < 3:
        return [], {}
    cs = [0.5 * (l + r) for l, r in zip(edges, edges[1:])]
    return cs, {c: r - l + 1.0 for c, l, r in zip(cs, edges, edges[1:])}


def _share_comb_pitch(found, pmin: float) -> None:
    """Refit, in place, a cut piece whose pitch is :data:`LANE_PITCH_SHARE_RATIO` times the pitch of
    another cut piece of the image (one with at least :data:`LANE_PITCH_SHARE_MIN_LANES` lanes): its
    bands merged, and its lanes become :func:`_merged_lanes` at that piece's pitch, side by side
    from dip to dip (no free membrane between merged bands); kept when there are more of them. A piece only
    :data:`LANE_PITCH_SUB_RATIO` times that pitch is refitted so when its own comb spectrum peaks
    within :data:`LANE_PITCH_SUB_TOL` of that pitch (a sub-harmonic its comb fit passed over)."""
    refs = [_piece_pitch(f[5]) for f in found if f[0].cut and len(f[5]) >= LANE_PITCH_SHARE_MIN_LANES]
    refs = [p for p in refs if p and p >= pmin]
    if not refs:
        return
    ref = min(refs)
    for f in found:
        pc, ts, wins, cs = f[0], f[1], f[2], f[5]
        p = _piece_pitch(cs)
        if not pc.cut or p is None or p < LANE_PITCH_SUB_RATIO * ref:
            continue
        if p < LANE_PITCH_SHARE_RATIO * ref:
            # below a doubled pitch: shared only when the piece's own spectrum peaks at ``ref``
            e = _evidence_profile(ts, wins)
            spec = _comb_spectrum(e, pmin, max(pmin + 1, ts.shape[1] / 2.0)) if e.max() > 0 else None
            if spec is None:
                continue
            own = float(spec[0][int(np.argmax(np.abs(spec[1])))])
            if abs(own - ref) > LANE_PITCH_SUB_TOL * ref:
                continue
        cs2, w2 = _merged_lanes(ts, wins, ref)
        if len(cs2) > len(cs):
            f[5:9] = [cs2, float(median(list(w2.values()))), set(), w2]


#: lanes reach their bands' extent as an analyst draws them (the comb's lanes are one width, centred:
#: a wider band, or one off its lane's centre, sticks out): each edge of a lane moves out to where
#: the band rows' evidence profile falls to LANE_EDGE_LEVEL of the lane's peak above the floor beside
#: it (towards a neighbour the profile's lowest point between the two centres: the dip between
#: touching bands, the membrane between apart ones; beyond an end lane the lowest evidence within
#: LANE_END_REACH pitches). A Gaussian band's profile is at 0.15 of its peak 1.95 SD from its centre,
#: so the lane holds 95 % of the band's width-wise mass (its half-maximum width 76 %). The analysts'
#: end rectangles on the Kodak strips end at 0.0-0.7 of the end band's peak, median 0.12
LANE_EDGE_LEVEL = 0.15
#: free membrane, px, an edge keeps from the lowest point towards a neighbour (so from the
#: neighbour's edge LANE_FREE_PX + 1) and from the piece's side: the lane-edge strips and the gel
#: envelope need :data:`~exoimage.blot.background.MIN_FREE_PX` = 2 free beside a lane. A lane never
#: shrinks; lanes that touch already (merged bands) stay so
LANE_FREE_PX = 2
#: an end lane's outer edge moves out by at most this fraction of the lane pitch
LANE_END_REACH = 0.5


def _widen_lanes(e: np.ndarray, cs, bounds, markers) -> None:
    """Widen, in place, the lanes ``bounds`` ([left, right] per centre of ``cs``, piece columns) to
    their bands' extent in the evidence profile ``e`` (see :data:`LANE_EDGE_LEVEL`). A marker lane
    keeps its bounds (its bands are not in the band rows)."""
    wid = len(e)
    n = len(cs)
    pitch = float(median(np.diff(cs)))
    reach = int(LANE_END_REACH * pitch)
    # per gap between neighbours: the lowest point between their centres
    dips = []
    for i in range(n - 1):
        ca, cb = int(round(cs[i])), int(round(cs[i + 1]))
        dips.append(ca + int(np.argmin(e[ca:cb + 1])) if cb > ca else None)
    for i in range(n):
        if cs[i] in markers:
            continue
        xl, xr = bounds[i]
        lo, hi = max(0, xl), min(wid, xr + 1)
        if hi <= lo:
            continue
        peak = float(e[lo:hi].max())
        for side in (0, 1):
            if side == 0:
                if i > 0:
                    if dips[i - 1] is None or cs[i - 1] in markers:
                        continue
                    stop = max(dips[i - 1] + LANE_FREE_PX, bounds[i - 1][1] + LANE_FREE_PX + 1)
                    base = float(e[dips[i - 1]])
                else:
                    stop = max(LANE_FREE_PX, xl - reach)
                    out = e[max(0, xl - reach):max(0, xl)]
                    if not len(out):
                        continue
                    base = float(out.min())
                level = base + LANE_EDGE_LEVEL * (peak - base)
                x = xl
                while x > stop and e[x - 1] > level:
                    x -= 1
                bounds[i][0] = min(xl, x)
            else:
                if i < n - 1:
                    if dips[i] is None or cs[i + 1] in markers:
                        continue
                    stop = min(dips[i] - LANE_FREE_PX, bounds[i + 1][0] - LANE_FREE_PX - 1)
                    base = float(e[dips[i]])
                else:
                    stop = min(wid - 1 - LANE_FREE_PX, xr + reach)
                    out = e[xr + 1:xr + 1 + reach]
                    if not len(out):
                        continue
                    base = float(out.min())
                level = base + LANE_EDGE_LEVEL * (peak - base)
                x = xr
                while x < stop and e[x + 1] > level:
                    x += 1
                bounds[i][1] = max(xr, x)


def find_lanes(signal: np.ndarray, pieces: list[Piece] | None = None, *, n_lanes: int | None = None,
               min_lane_width_px: int = 8, max_tilt: float = 0.1) -> list[Lane]:
    """Find lanes (count and boundaries) in every membrane piece.

    Parameters
    ----------
    signal : ndarray
        Linear signal (bands bright), float.
    pieces : list of Piece, optional
        Default: :func:`find_pieces`.
    n_lanes : int, optional
        Force this many lanes per piece (the most prominent column peaks).
    min_lane_width_px : int
        Smallest plausible lane pitch, px.
    max_tilt : float
        Largest lane tilt searched, dx/dy.

    Returns
    -------
    list of Lane
        Numbered 1..N piece by piece (top piece first), left to right.
    """
    if pieces is None:
        pieces = find_pieces(signal)
    found = []
    for pc in pieces:
        sub = signal[pc.y0:pc.y1, pc.x0:pc.x1]
        hgt, wid = sub.shape
        if hgt < 8 or wid < 2 * min_lane_width_px:
            continue
        # tall pieces: average row pairs first (lanes need full x resolution, not y)
        fy = 2 if hgt >= 800 else 1
        subr = sub[:hgt // fy * fy].reshape(hgt // fy, fy, wid).mean(axis=1) if fy > 1 else sub
        hr = subr.shape[0]
        t = _band_image(subr, max(15 // fy, hr // 4))
        t = ndi.gaussian_filter1d(t, 1.5, axis=1)
        # the top-hat of pure noise is positive, in proportion to the local noise
        # (shot noise grows with the background): remove each column's typical
        # level so that brighter (noisier) membrane does not look like lanes
        t -= median(t, axis=0)
        band_rows, thick = _band_rows(t)
        band_rows, wts = _keep_lane_like_rows(t, band_rows, thick)
        yref_r = float(np.sum(wts * np.arange(hr)))
        # tilt: shift between the column profiles of the upper and lower band rows
        slope_r = _tilt(t, band_rows, max_tilt * fy)
        ts = _shear(t, slope_r, yref_r)
        yref, slope = fy * yref_r + (fy - 1) / 2.0, slope_r / fy
        markers: set = set()
        widths: dict = {}
        if pc.cut:
            cs, lw, markers = _comb_lanes(ts, band_rows, n_lanes, float(min_lane_width_px))
            if not n_lanes and cs:
                kept = set(markers)
                cs, widths = _merge_split_lanes(_evidence_profile(ts, band_rows), cs, lw)
                markers = {c for c in cs if c in kept}
        else:
            cs, lw = _free_grid_lanes(ts, band_rows, n_lanes, min_lane_width_px, wid)
        found.append([pc, ts, band_rows, yref, slope, cs, lw, markers, widths if pc.cut and not n_lanes else {}])
    if not n_lanes:
        _share_comb_pitch(found, float(min_lane_width_px))
    lanes: list[Lane] = []
    for pc, ts, band_rows, yref, slope, cs, lw, markers, widths in found:
        if not cs:
            continue
        cs = sorted(cs)
        bounds = []
        for c in cs:
            w = widths.get(c, lw)
            xl = int(round(c - w / 2))
            xr = int(round(c + w / 2)) - 1
            bounds.append([xl, xr])
        if pc.cut and not n_lanes and len(cs) >= 2:
            _widen_lanes(_evidence_profile(ts, band_rows), cs, bounds, markers)
        # never two lanes on one: a lane moved towards its neighbour gives way at the midpoint
        for i in range(1, len(bounds)):
            if bounds[i][0] <= bounds[i - 1][1]:
                mid = 0.5 * (cs[i - 1] + cs[i])
                bounds[i - 1][1] = int(np.floor(mid)) - 1
                bounds[i][0] = int(np.floor(mid)) + 1
        for c, (xl, xr) in zip(cs, bounds):
            xl, xr = max(xl + pc.x0, pc.x0), min(xr + pc.x0, pc.x1 - 1)
            if xr - xl < 2:
                continue
            lanes.append(Lane(lane=len(lanes) + 1, piece=pc.index, x_left_px=xl, x_right_px=xr,
                              y_top_px=pc.y0, y_bottom_px=pc.y1 - 1, y_ref_px=yref + pc.y0, slope=slope,
                              is_ladder=c in markers))
        mine = [ln for ln in lanes if ln.piece == pc.index]
        assert all(a.x_right_px < b.x_left_px for a, b in zip(mine, mine[1:])), "overlapping lanes"
    return lanes


def bound_groups(bounds) -> list[list[tuple[int, int]]]:
    """Split explicit lane bounds into one group per membrane piece.

    The bounds of a piece are given left to right; a bound that starts left of the previous
    one starts the next piece's group (``40-90,110-160,30-80,100-150`` -> two groups).
    """
    groups: list[list[tuple[int, int]]] = []
    for a, b in bounds:
        a, b = int(a), int(b)
        if not groups or a < groups[-1][-1][0]:
            groups.append([])
        groups[-1].append((a, b))
    return groups


def lanes_from_bounds(bounds, shape, pieces: list[Piece] | None = None) -> list[Lane]:
    """Lanes from explicit ``[(x_left, x_right), ...]`` (px, inclusive).

    Without ``pieces`` (or with one piece) the lanes span the full image height, in the order
    left to right (groups of bounds that overlap are then a ``ValueError``: they were meant for
    pieces that were not found). With several membrane pieces the lanes span each piece's rows: one group of
    bounds (:func:`bound_groups`) is used for every piece, or one group per piece, top piece
    first; any other number of groups is a ``ValueError``. Lanes are numbered 1..N over the
    image, top piece first, as :func:`find_lanes` numbers them.
    """
    h, w = shape
    for a, b in bounds:
        a, b = int(a), int(b)
        if not (0 <= a < b < w):
            raise ValueError(f"lane bounds {a}-{b} px are outside the image width (0-{w - 1})")
    if not pieces or len(pieces) == 1:
        srt = sorted((int(a), int(b)) for a, b in bounds)
        n_groups = len(bound_groups(bounds))
        if n_groups > 1 and any(b >= a2 for (_, b), (a2, _) in zip(srt, srt[1:])):
            raise ValueError(f"lane bounds give {n_groups} groups of overlapping lanes (a range left of the "
                             f"previous one starts the next piece) but one membrane piece was found")
        return [Lane(lane=i, piece=1, x_left_px=int(a), x_right_px=int(b), y_top_px=0, y_bottom_px=h - 1,
                     y_ref_px=h / 2) for i, (a, b) in enumerate(sorted(bounds), start=1)]
    groups = bound_groups(bounds)
    if len(groups) == 1:
        groups = groups * len(pieces)
    if len(groups) != len(pieces):
        raise ValueError(f"lane bounds give {len(groups)} groups of lanes (a bound left of the previous one "
                         f"starts the next piece) but {len(pieces)} membrane pieces were found; give one group "
                         f"for all pieces or one per piece")
    out = []
    for pc, grp in zip(pieces, groups):
        for a, b in grp:
            out.append(Lane(lane=len(out) + 1, piece=pc.index, x_left_px=a, x_right_px=b, y_top_px=pc.y0,
                            y_bottom_px=pc.y1 - 1, y_ref_px=0.5 * (pc.y0 + pc.y1 - 1)))
    return out


def lane_columns(lane: Lane, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of the lane: (rows, first column); columns are clipped to the image by the caller."""
    rows = np.arange(lane.y_top_px, lane.y_bottom_px + 1)
    x0 = lane.x_left_px + lane.shift_at(rows)
    return rows, x0
