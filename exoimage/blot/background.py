"""Backgrounds under a lane profile: a registry of methods, one function each.

Every method is one function ``f(ctx, regions) -> baseline`` registered by name
with :func:`register`. ``ctx`` (:class:`LaneContext`) holds what a method may
need: the signal image, the lane and its neighbours, the lane profile, its
rolling-ball baseline, the ball radius and the free margin beside the lanes;
``regions`` are the band regions of the lane (:class:`Region`, profile indices).
The baseline is one value per row of the profile (profile units), or ``None``
where the method cannot be used for this lane. Volumes are the profile minus
the baseline, summed over a band's rows (:func:`exoimage.blot.measure.measure`).

To add a background, write one function here and decorate it with
``@register("name")``: it becomes a choice of ``BlotParams.background`` and
``--background`` (via :data:`CHOICES`) and a value of ``background_method``.
``choice=False`` registers a part that only a composite uses (``flank``, ``gap``).

``auto`` (the default) is a composite (:func:`auto`):

* under every region the rolling ball refined by a least-squares line through
  the profile just outside the region (``flank``; deconvolved clusters as one
  region), recorded as ``rolling-ball``; where the piece has free gel (membrane) beside every
  lane and that baseline lies above the free gel's level (:func:`gel_envelope`: the lane-edge
  background shifted to the lane's own band-free ends) by more than
  :data:`ENVELOPE_MIN_NOISE` profile-noise SDs on average over the region, the gel's level
  instead: between closely spaced bands (a ladder) the profile never comes down to the
  background, and a line through the valleys runs through the bands' tails;
* under a *smear* - a region taller than the ball radius, in a lane whose
  membrane piece has at least :data:`MIN_FREE_PX` of free membrane beside every
  lane - the ``gap`` background (a quadratic across the lane through the nearest
  gaps), or the lane-edge background (``edge``) where fewer than 3 gaps (one on
  each side) are usable.

A region may carry the method detection chose for it (``Region.method``); ``auto``
then keeps it (``gap`` falls back to ``edge`` where no gap background can be
formed), so re-measuring detected regions reproduces detection's numbers. A
region without one (drawn by hand) gets the rule above, the same rule detection
applies (:func:`auto_methods`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np
from scipy import ndimage as ndi

from .lanes import Lane
from .signal import median
from .profile import lane_index

__all__ = ["REGISTRY", "CHOICES", "METHODS", "register", "Region", "LaneContext", "lane_background",
           "auto_methods", "lane_label", "ball_radius_px", "edge_border_px", "edge_background",
           "gap_background", "off_lane_profile", "rolling_ball_background", "flank_background", "valley_background",
           "membrane_rows", "gel_envelope", "lane_gap", "own_free_px", "row_noise_sd", "BALL_RADIUS_FRACTION", "MIN_BALL_RADIUS_PX", "MIN_FREE_PX",
           "OFF_MEMBRANE_FRACTION", "OFF_MEMBRANE_MIN_STEP_NOISE", "MIN_FREE_END_PX", "ENVELOPE_MIN_NOISE"]

#: Default rolling-ball radius as a fraction of the lane length, and its floor (px). The project's
#: default since the first blot pipeline (docs/blot.md, ``--ball-radius``): the ball must be wider
#: than a sharp band so that it passes under it; bands taller than the radius count as smears
#: (``auto``). Not fitted to data; ``BlotParams.ball_radius_px`` overrides it.
BALL_RADIUS_FRACTION = 0.1
MIN_BALL_RADIUS_PX = 25.0

#: Smallest free margin (px) beside every lane of a piece for the lane-edge and gap backgrounds
#: under smears (``auto``): with lanes touching, the pixels beside a lane belong to its neighbour.
MIN_FREE_PX = 2

#: Fewest band-free membrane rows at a lane end for that end to give the lane's offset from the
#: free gel beside it (:func:`gel_envelope`): the same floor as a flank's (8 rows).
MIN_FREE_END_PX = 8
#: ``auto`` puts a region's background on the free gel's level (:func:`gel_envelope`) when its
#: flank baseline lies above it by more than this many profile-row noise SDs on average over
#: the region: 3 SD, beyond what the noise of the two estimates makes (not fitted to data).
ENVELOPE_MIN_NOISE = 3.0

#: Off-membrane rows at a lane end (the membrane's cut edge inside the lane): the end run whose
#: smoothed profile is below this fraction of the lane's median level. Half way between the
#: membrane's level and nothing, the usual half-maximum edge criterion; not fitted to data.
OFF_MEMBRANE_FRACTION = 0.5
#: ... and only where that step is this many times the profile's row-to-row noise (a lane whose
#: level is near zero has no edge to find: noise alone must never make one).
OFF_MEMBRANE_MIN_STEP_NOISE = 20.0


def ball_radius_px(n_rows: int, radius_px: float | None = None) -> float:
    """Rolling-ball radius for a lane of ``n_rows`` rows: ``radius_px`` if given, else
    :data:`BALL_RADIUS_FRACTION` of the lane length, at least :data:`MIN_BALL_RADIUS_PX`."""
    return radius_px or max(MIN_BALL_RADIUS_PX, BALL_RADIUS_FRACTION * n_rows)


class Region(NamedTuple):
    """A band region in a lane profile: rows ``top..bottom`` (profile indices, inclusive).

    ``cluster`` names the deconvolved cluster the region belongs to (None: on its own);
    ``method`` is the background method detection chose for it (None: not recorded).
    """

    top: int
    bottom: int
    cluster: object = None
    method: str | None = None

    @property
    def rows(self) -> int:
        return self.bottom - self.top + 1


@dataclass(frozen=True)
class LaneContext:
    """What a background method may use for one lane.

    Attributes
    ----------
    signal : ndarray
        The whole image as signal ("more protein = larger number", raw linear units).
    lane : Lane
    lanes : list of Lane
        Every lane of the image (the gap background uses the lane's neighbours).
    profile : ndarray
        The lane profile (row sums over the lane width).
    ball : ndarray
        Its rolling-ball baseline (radius ``radius_px``).
    radius_px : float
        The rolling-ball radius; regions taller than it are smears.
    free_px : int
        Smallest free margin beside the lanes of the lane's membrane piece, px.
    border_px : int
        Width of the strips beside the lane used by the lane-edge background, px.
    memo : dict
        Baselines of the lane that depend on nothing but these fields (edge, gap, membrane
        rows, the held ball), computed once per context (:func:`_memo`; read-only arrays; not
        an argument: a :func:`dataclasses.replace`-d context starts empty).
    """

    signal: np.ndarray
    lane: Lane
    lanes: list
    profile: np.ndarray
    ball: np.ndarray
    radius_px: float
    free_px: int
    border_px: int
    memo: dict = field(default_factory=dict, init=False, compare=False, repr=False)


def _memo(ctx: LaneContext, key: str, make: Callable):
    """``make()`` once per context and ``key`` (detection and measurement ask for the same
    baselines of a lane); arrays are returned read-only, as they are shared."""
    if key not in ctx.memo:
        v = make()
        if isinstance(v, np.ndarray):
            v.flags.writeable = False
        elif isinstance(v, tuple):
            for a in v:
                if isinstance(a, np.ndarray):
                    a.flags.writeable = False
        ctx.memo[key] = v
    return ctx.memo[key]


def _edge(ctx: LaneContext) -> np.ndarray:
    """The lane-edge background of the context's lane (:func:`edge_background`), memoised."""
    return _memo(ctx, "edge", lambda: edge_background(ctx.signal, ctx.lane, edge_border_px(ctx)))


def _membrane(ctx: LaneContext) -> tuple[int, int]:
    """:func:`membrane_rows` of the context's profile, memoised."""
    return _memo(ctx, "membrane", lambda: membrane_rows(ctx.profile))


def edge_border_px(ctx: LaneContext) -> int:
    """Strip width for the lane-edge background: ``border_px``, narrowed to the lane's own free
    margin (:func:`own_free_px`) when that is at least :data:`MIN_FREE_PX` (so the strips stay
    off the neighbours; the lane's own, so moving one lane leaves the others' strips alone)."""
    free = own_free_px(ctx)
    return min(ctx.border_px, free) if free >= MIN_FREE_PX else ctx.border_px


@dataclass(frozen=True)
class Method:
    """A registered background: ``func(ctx, regions)`` returns the baseline (or None), or for
    a ``composite`` the pair ``(baseline, method per region)``; ``choice``: offered to users."""

    name: str
    func: Callable
    choice: bool = True
    composite: bool = False


#: every background by name, in registration order
REGISTRY: dict[str, Method] = {}


def register(name: str, *, choice: bool = True, composite: bool = False):
    """Decorator: register ``func(ctx, regions)`` as the background ``name``."""
    def deco(func):
        if name in REGISTRY:
            raise ValueError(f"background {name!r} is registered twice")
        REGISTRY[name] = Method(name, func, choice, composite)
        return func
    return deco


# --------------------------------------------------------------------------
# the methods

#: what ``auto`` records under a region: the refined ball, or one of its two smear backgrounds
AUTO_PARTS = ("rolling-ball", "gap", "edge")


@register("auto", composite=True)
def auto(ctx: LaneContext, regions: list[Region]):
    """The default composite (see the module docstring): the rolling ball refined by
    ``flank`` under every region, ``gap`` (else ``edge``) under smears."""
    methods, gap = _auto_plan(ctx, regions)
    bg = flank(ctx, regions)
    env = gel_envelope(ctx, regions)
    if env is not None:
        # the flank (or ball) in the bands' tails: above the free gel's level by more than
        # noise over the region; below it, or within noise, it stays (a minimum of two noisy
        # baselines would be biased low)
        tol = ENVELOPE_MIN_NOISE * row_noise_sd(ctx.profile)
        for r, m in zip(regions, methods):
            s = slice(r.top, r.bottom + 1)
            if m == "rolling-ball" and float(np.mean(bg[s] - env[s])) > tol:
                bg[s] = env[s]
    edge = None
    for r, m in zip(regions, methods):
        if m == "gap":
            bg[r.top:r.bottom + 1] = gap[r.top:r.bottom + 1]
        elif m == "edge":
            if edge is None:
                edge = REGISTRY["edge"].func(ctx, regions)
            bg[r.top:r.bottom + 1] = edge[r.top:r.bottom + 1]
    return bg, methods


def lane_gap(ln: Lane, lanes: list, width: int) -> int:
    """A lane's free margin, px: the smaller of its gaps to the nearest lane of its piece on
    either side, or to the image side of ``width`` px (lanes overlapping it are not neighbours)."""
    left = min([ln.x_left_px - o.x_right_px - 1 for o in lanes
                if o.piece == ln.piece and o.x_right_px < ln.x_left_px] + [ln.x_left_px])
    right = min([o.x_left_px - ln.x_right_px - 1 for o in lanes
                 if o.piece == ln.piece and o.x_left_px > ln.x_right_px] + [width - 1 - ln.x_right_px])
    return int(min(left, right))


def own_free_px(ctx: LaneContext) -> int:
    """The context's lane's own free margin, px (:func:`lane_gap`)."""
    return lane_gap(ctx.lane, ctx.lanes, ctx.signal.shape[1])


def gel_envelope(ctx: LaneContext, regions: list[Region]) -> np.ndarray | None:
    """Upper bound on the background under a lane's bands from the free gel (membrane) beside it.

    Between closely spaced bands the profile never comes down to the background: the
    valleys between them are the bands' tails, so a baseline through them (``flank``, the
    ball) rises into the bands. The free gel beside the lane is not reached by the bands'
    tails: the lane-edge background (:func:`edge_background`) gives the background's
    shape along the lane, and the lane's own band-free ends (membrane rows above its first
    and below its last region) its offset from the lane: the median of profile minus edge
    over each end, joined by a straight line (one end: a constant). ``None`` where the
    lane itself has no free margin of :data:`MIN_FREE_PX` on both sides (:func:`own_free_px`:
    the lane's own gaps, so moving one lane does not change its piece's other lanes), or the
    lane has neither end free (at least :data:`MIN_FREE_END_PX` rows).
    """
    if own_free_px(ctx) < MIN_FREE_PX or not regions:
        return None
    lo, hi = _membrane(ctx)
    top = min(r.top for r in regions)
    bottom = max(r.bottom for r in regions)
    edge = _edge(ctx)
    d = ctx.profile - edge
    ends = []  # (row, offset)
    if top - lo >= MIN_FREE_END_PX:
        ends.append((0.5 * (lo + top - 1), float(median(d[lo:top]))))
    if hi - bottom - 1 >= MIN_FREE_END_PX:
        ends.append((0.5 * (bottom + 1 + hi - 1), float(median(d[bottom + 1:hi]))))
    if not ends:
        return None
    y = np.arange(len(d))
    if len(ends) == 1:
        off = np.full(len(d), ends[0][1])
    else:
        (y0, o0), (y1, o1) = ends
        off = o0 + (o1 - o0) * (y - y0) / (y1 - y0)
    return edge + off


def row_noise_sd(profile: np.ndarray) -> float:
    """Noise SD of one value of a lane profile, from its row-to-row differences (robust)."""
    return 1.4826 * float(median(np.abs(np.diff(np.asarray(profile, float))))) / np.sqrt(2.0)


def _is_smear(r: Region, ctx: LaneContext) -> bool:
    """``auto``'s rule: a region taller than the ball, with free membrane beside every lane."""
    return r.rows > ctx.radius_px and ctx.free_px >= MIN_FREE_PX


def _auto_plan(ctx: LaneContext, regions: list[Region]):
    """(method per region, gap baseline or None) for ``auto``: the recorded method where
    there is one of :data:`AUTO_PARTS`, else the rule; ``gap`` becomes ``edge`` where the
    gap background cannot be formed."""
    methods = [r.method if r.method in AUTO_PARTS else ("gap" if _is_smear(r, ctx) else "rolling-ball")
               for r in regions]
    gap = REGISTRY["gap"].func(ctx, regions) if "gap" in methods else None
    if gap is None:
        methods = ["edge" if m == "gap" else m for m in methods]
    return methods, gap


def auto_methods(ctx: LaneContext, regions: list[Region]) -> list[str]:
    """The method ``auto`` uses under each region (what detection records)."""
    return _auto_plan(ctx, regions)[0]


@register("rolling-ball")
def rolling_ball(ctx: LaneContext, regions: list[Region]) -> np.ndarray:
    """Rolling ball on the lane profile (:func:`rolling_ball_background`, radius ``ctx.radius_px``)."""
    return ctx.ball


@register("valley")
def valley(ctx: LaneContext, regions: list[Region]) -> np.ndarray:
    """Valley to valley: lines joining the profile at the borders of the regions."""
    return valley_background(ctx.profile, [(r.top, r.bottom) for r in regions])


@register("edge")
def edge(ctx: LaneContext, regions: list[Region]) -> np.ndarray:
    """Lane edge: the median of the strips just beside the lane, per row (:func:`edge_background`)."""
    return _edge(ctx)


@register("none")
def none(ctx: LaneContext, regions: list[Region]) -> np.ndarray:
    """Nothing subtracted (volumes are raw sums, ImageJ's RawIntDen)."""
    return np.zeros(len(ctx.profile))


@register("flank", choice=False)
def flank(ctx: LaneContext, regions: list[Region]) -> np.ndarray:
    """The rolling ball, replaced under every region (a deconvolved cluster as one) by a
    least-squares line through the profile just outside it (:func:`flank_background`).

    Rows off the membrane at the lane's ends (:func:`membrane_rows`: the lane runs past the
    membrane's cut edge) are no flank, and the ball is rolled over the membrane rows only
    (the off-membrane ends held at the nearest membrane row's level), so neither a flank line
    nor the ball follows the profile down the cut edge under the bands next to it."""
    lo, hi = _membrane(ctx)
    ball = ctx.ball
    if lo > 0 or hi < len(ctx.profile):
        ball = _memo(ctx, "held-ball", lambda: _held_ball(ctx, lo, hi))
    return flank_background(ctx.profile, _joined(regions), ball, valid=(lo, hi))


def _held_ball(ctx: LaneContext, lo: int, hi: int) -> np.ndarray:
    """The ball rolled over the membrane rows ``lo..hi-1`` only, the ends held at the nearest
    membrane row's level (the ball itself outside them)."""
    held = ctx.profile.astype(float).copy()
    held[:lo], held[hi:] = held[lo], held[hi - 1]
    ball = rolling_ball_background(held, ctx.radius_px)
    ball[:lo], ball[hi:] = ctx.ball[:lo], ctx.ball[hi:]
    return ball


@register("gap", choice=False)
def gap(ctx: LaneContext, regions: list[Region]) -> np.ndarray | None:
    """From the free membrane between the lanes: a quadratic across the lane through the
    nearest gaps on either side (:func:`gap_background`); None with too few gaps."""
    return _memo(ctx, "gap", lambda: gap_background(ctx.signal, ctx.lane, ctx.lanes))


def _joined(regions: list[Region]) -> list[tuple[int, int]]:
    """(top, bottom) of the regions, the members of each deconvolved cluster joined into one."""
    out, clusters = [], {}
    for r in regions:
        if r.cluster is not None:
            c = clusters.setdefault(r.cluster, [r.top, r.bottom])
            c[0], c[1] = min(c[0], r.top), max(c[1], r.bottom)
        else:
            out.append((r.top, r.bottom))
    return sorted(out + [tuple(c) for c in clusters.values()])


def lane_background(method: str, ctx: LaneContext, regions: list[Region]) -> tuple[np.ndarray, list[str]]:
    """The baseline of one lane by the registered ``method`` and the method used under each region.

    Raises
    ------
    ValueError
        For an unknown method, or one that cannot be used for this lane.
    """
    try:
        m = REGISTRY[method]
    except KeyError:
        raise ValueError(f"unknown background {method!r} (one of {', '.join(REGISTRY)})") from None
    if m.composite:
        bg, methods = m.func(ctx, regions)
        return np.asarray(bg, float), list(methods)
    bg = m.func(ctx, regions)
    if bg is None:
        raise ValueError(f"lane {ctx.lane.lane}: the {method} background cannot be formed here")
    return np.array(bg, dtype=float), [method] * len(regions)


def lane_label(method: str, methods: list[str]) -> str:
    """The lanes table's ``background``: the methods used under the lane's bands joined by
    ``+``; for a lane without bands the method itself (``auto``: ``rolling-ball``, its base)."""
    if methods:
        return "+".join(sorted(set(methods)))
    return "rolling-ball" if method == "auto" else method


# --------------------------------------------------------------------------
# the baselines themselves (plain functions on arrays)


def row_median(vals: np.ndarray) -> np.ndarray:
    """``median(vals, axis=1).astype(np.float64)`` of a (rows x few columns) array, by selection:
    the middle value (odd count, a sorting network of min/max for three) or the mean of the two
    middle ones (even), the same numbers as :func:`numpy.median` gives, several times faster for
    the few border columns the edge and gap backgrounds take. Rows holding NaN go to numpy."""
    vals = np.asarray(vals)
    k = vals.shape[1] if vals.ndim == 2 else 0
    if k == 0 or (vals.dtype.kind == "f" and np.isnan(vals).any()) or vals.dtype.kind not in "uif":
        return median(vals, axis=1).astype(np.float64)
    if k == 3:
        a, b, c = vals[:, 0], vals[:, 1], vals[:, 2]
        return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c)).astype(np.float64)
    h = k // 2
    if k % 2:
        return np.partition(vals, h, axis=1)[:, h].astype(np.float64)
    part = np.partition(vals, [h - 1, h], axis=1)
    return np.mean(part[:, h - 1:h + 1], axis=1).astype(np.float64)


def edge_background(signal: np.ndarray, lane: Lane, border_px: int = 3, smooth_px: int = 41) -> np.ndarray:
    """Lane-edge (local border) background: median of the ``border_px`` columns just
    outside each side of the lane, per row, smoothed along the lane, times the lane width.
    A side that leaves the image is not used."""
    h, w = signal.shape
    left = np.arange(-border_px, 0)
    right = np.arange(lane.width_px, lane.width_px + border_px)
    rows, cols_lr, valid_lr = lane_index(lane, w, np.concatenate([left, right]))  # both sides at once
    cols_l, cols_r = cols_lr[:, :border_px], cols_lr[:, border_px:]
    valid_l, valid_r = valid_lr[:, :border_px], valid_lr[:, border_px:]
    parts = []
    if valid_l.all():
        parts.append(cols_l)
    if valid_r.all():
        parts.append(cols_r)
    if not parts:
        return np.zeros(len(rows))
    cols = np.concatenate(parts, axis=1)
    vals = row_median(signal[rows[:, None], cols])
    vals = ndi.median_filter(vals, size=max(3, smooth_px), mode="nearest")
    vals = ndi.gaussian_filter1d(vals, smooth_px / 3.0, mode="nearest")
    return vals * lane.width_px


def gap_background(signal: np.ndarray, lane: Lane, others, border_px: int = 3, smooth_px: int = 41):
    """Background under a lane from the free membrane in the gaps between lanes, per row:
    the median of ``border_px`` columns at the middle of each of the two nearest gaps on
    either side (the lane's own edges and the gaps beyond its neighbours), fitted by a
    quadratic in x and summed over the lane's columns; smoothed along the lane like
    :func:`edge_background`. Unlike the two lane edges alone, it follows a background
    that curves across the lane (blotches about as wide as a lane). ``None`` with fewer
    than 3 usable gaps or none on one side.
    """
    h, w = signal.shape
    lanes = sorted([lane] + [o for o in others if o.lane != lane.lane and o.piece == lane.piece
                             and o.y_top_px == lane.y_top_px], key=lambda o: o.x_left_px)
    # gap middles relative to this lane's left edge (the same tilt moves them all)
    mids = []
    for a, b in zip(lanes[:-1], lanes[1:]):
        g0, g1 = a.x_right_px + 1, b.x_left_px - 1
        if g1 - g0 + 1 >= border_px:
            mids.append(0.5 * (g0 + g1))
    first, last = lanes[0], lanes[-1]
    if first.x_left_px - border_px - 1 >= 0:
        mids.append(first.x_left_px - 1 - border_px / 2.0)
    if last.x_right_px + border_px + 1 < w:
        mids.append(last.x_right_px + 1 + border_px / 2.0)
    xc = lane.x_center_px
    left = sorted([m for m in mids if m < lane.x_left_px], reverse=True)[:2]
    right = sorted([m for m in mids if m > lane.x_right_px])[:2]
    xs = np.array(left + right)
    if not left or not right or len(xs) < 3:
        return None
    offs = np.concatenate([np.arange(int(round(m - border_px / 2.0)), int(round(m - border_px / 2.0)) + border_px)
                           for m in xs]) - lane.x_left_px
    rows, cols_all, valid_all = lane_index(lane, w, offs)  # every gap's columns at once
    vals = []
    for j in range(len(xs)):
        cols, valid = cols_all[:, j * border_px:(j + 1) * border_px], valid_all[:, j * border_px:(j + 1) * border_px]
        if not valid.all():
            return None
        vals.append(row_median(signal[rows[:, None], cols]))
    V = np.array(vals)  # gaps x rows
    u = (xs - xc) / max(1.0, lane.width_px)
    A = np.stack([np.ones_like(u), u, u ** 2], axis=1)
    lx = (np.arange(lane.x_left_px, lane.x_right_px + 1) - xc) / max(1.0, lane.width_px)
    wts = np.stack([np.ones_like(lx), lx, lx ** 2], axis=1).sum(axis=0) @ np.linalg.pinv(A)
    bg = wts @ V
    bg = ndi.median_filter(bg, size=max(3, smooth_px), mode="nearest")
    return ndi.gaussian_filter1d(bg, smooth_px / 3.0, mode="nearest")


def off_lane_profile(signal: np.ndarray, lane: Lane, lanes, border_px: int = 3) -> np.ndarray | None:
    """The free gel or membrane beside a lane, per row, on the lane profile's scale.

    Per row, the median of the middle third (at least ``border_px`` columns) of each
    gap between ``lane`` and its neighbours in its piece, averaged over the (one or
    two) gaps, times the lane width. Unlike :func:`edge_background` it is not
    smoothed along the lane, so structures of the gel itself (the well row, a
    membrane's cut edge, a dye front) keep their shape. An end lane also uses the membrane
    beyond it on its outer side, and a lane with no gap at least ``3 * border_px`` wide
    (lanes touching) the membrane beyond both end lanes of its piece: an end lane, a lone
    lane and a lane between touching neighbours have the free gel an inner lane has.
    ``None`` when none of these lies on the membrane (or inside the image).
    """
    h, w = signal.shape
    mine = sorted([o for o in lanes if o.piece == lane.piece], key=lambda o: o.x_left_px)
    i = next(k for k, o in enumerate(mine) if o.lane == lane.lane)
    gaps = []  # (first, last) column of a gap between lanes
    if i > 0:
        gaps.append((mine[i - 1].x_right_px + 1, lane.x_left_px - 1))
    if i + 1 < len(mine):
        gaps.append((lane.x_right_px + 1, mine[i + 1].x_left_px - 1))
    sides = []
    for a, b in gaps:
        n = b - a + 1
        if n < 3 * border_px:
            continue
        m = max(border_px, n // 3)
        c0 = a + (n - m) // 2
        rows, cc, valid = lane_index(lane, w, np.arange(c0, c0 + m) - lane.x_left_px)
        if not valid.all():
            continue
        sides.append(row_median(signal[rows[:, None], cc]))
    # the membrane between a piece's end lanes and its edges is free gel as a gap is: an end
    # lane's outer side is used as a gap, and a lane with no free gap beside it (lanes touching)
    # takes the piece's outer membrane on both sides (the nearest free gel on its rows), so
    # what counts as gel does not depend on whether a lane has a neighbour. Each strip is
    # taken as the narrowest gap above is (border_px columns, border_px from the end lane) and
    # only while it lies on the membrane: its median level at least OFF_MEMBRANE_FRACTION of
    # the lane's own (past the cut edge the pixels beside are no gel)
    inner = not sides
    own = None  # the lane's own level, taken only when an outer strip is to be compared with it
    for end, is_out, c0 in ((mine[0], i == 0 or inner, -2 * border_px),
                            (mine[-1], i + 1 == len(mine) or inner, mine[-1].width_px + border_px)):
        if not is_out:
            continue
        rows, cc, valid = lane_index(end, w, np.arange(c0, c0 + border_px))
        if not valid.all() or end.y_top_px != lane.y_top_px or end.y_bottom_px != lane.y_bottom_px:
            continue
        side = row_median(signal[rows[:, None], cc])
        if own is None:
            _, lc, _ = lane_index(lane, w, np.arange(lane.width_px))
            own = float(median(signal[np.arange(lane.y_top_px, lane.y_bottom_px + 1)[:, None], lc]))
        if median(side) >= OFF_MEMBRANE_FRACTION * own:
            sides.append(side)
    if not sides:
        return None
    return np.mean(sides, axis=0) * lane.width_px


def rolling_ball_background(profile: np.ndarray, radius_px: float) -> np.ndarray:
    """Rolling-ball-like baseline of a 1-D lane profile.

    The profile is smoothed (Gaussian, 2 px) to keep noise from dragging the
    baseline down, then opened with a flat element of ``2*radius_px+1`` px (a
    ball of infinite radius in intensity: everything narrower than the element
    is treated as signal), and the result smoothed with a window of
    ``radius_px`` so that the baseline has no corners; it never exceeds the
    smoothed profile.
    """
    n = len(profile)
    size = int(min(2 * radius_px + 1, 2 * n - 1)) | 1
    ps = ndi.gaussian_filter1d(profile, 2.0, mode="nearest")
    base = ndi.grey_opening(ps, size=size, mode="nearest")
    base = ndi.uniform_filter1d(base, max(1, int(radius_px)), mode="nearest")
    return np.minimum(base, ps)


def membrane_rows(profile: np.ndarray) -> tuple[int, int]:
    """Rows ``lo..hi-1`` of a lane profile that lie on the membrane (or gel).

    A run of rows at either end of the lane whose smoothed profile (Gaussian, 2 px) is below
    :data:`OFF_MEMBRANE_FRACTION` of the lane's median level is off the membrane: the lane
    runs past the membrane's cut edge. Only a step of at least
    :data:`OFF_MEMBRANE_MIN_STEP_NOISE` times the row-to-row noise counts; ``(0, n)``
    otherwise (and when the run would leave fewer than half the rows).
    """
    p = np.asarray(profile, float)
    n = len(p)
    if n < 8:
        return 0, n
    ps = ndi.gaussian_filter1d(p, 2.0, mode="nearest")
    level = float(median(ps))
    noise = 1.4826 * float(median(np.abs(np.diff(p)))) / np.sqrt(2.0)
    thr = OFF_MEMBRANE_FRACTION * level
    if not level > 0 or level - thr < OFF_MEMBRANE_MIN_STEP_NOISE * noise:
        return 0, n
    on = np.flatnonzero(ps >= thr)
    lo, hi = int(on[0]), int(on[-1]) + 1
    if hi - lo < n // 2:
        return 0, n
    return lo, hi


def flank_background(profile: np.ndarray, regions, fallback: np.ndarray, flank_px: int | None = None,
                     valid: tuple[int, int] | None = None) -> np.ndarray:
    """Local straight-line baseline under each band region, fitted (least squares) to the
    profile just outside it.

    For every region ``(y0, y1)`` the profile values within ``flank_px`` (default: the
    region's length, at least 8 px) above and below it, excluding any band region, are
    fitted with a line that is used inside the region. Least squares, unlike a minimum
    or an opening, is not biased by noise, so faint and strong bands lose or gain
    nothing systematically. A region with fewer than 3 flank points on one side gets
    ``fallback`` (the rolling ball) shifted to the mean level of its free flank; with
    neither side free it keeps ``fallback``. Rows outside ``valid`` (``(lo, hi)``: rows
    ``lo..hi-1``, default all) are never flank points.
    """
    n = len(profile)
    base = fallback.astype(float).copy()
    inside = np.zeros(n, bool)
    if valid is not None:
        inside[:max(0, valid[0])] = True
        inside[min(n, valid[1]):] = True
    for a, b in regions:
        inside[max(0, a):min(n, b + 1)] = True
    x = np.arange(n)
    merged = []
    for a, b in sorted(regions):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    for a, b in merged:
        w = int(flank_px or max(8, b - a + 1))
        lo = x[max(0, a - w):a]
        hi = x[b + 1:min(n, b + 1 + w)]
        lo, hi = lo[~inside[lo]], hi[~inside[hi]]
        if len(lo) < 3 or len(hi) < 3:
            # one free side (a neighbour's region on the other): the ball's shape,
            # shifted to the least-squares level of the free flank
            side = lo if len(lo) >= 3 else hi if len(hi) >= 3 else None
            if side is not None:
                base[a:b + 1] = fallback[a:b + 1] + float(np.mean(profile[side] - fallback[side]))
            continue
        xs = np.concatenate([lo, hi])
        c = np.polyfit(xs, profile[xs], 1)
        base[a:b + 1] = np.polyval(c, x[a:b + 1])
    return base


def valley_background(profile: np.ndarray, regions) -> np.ndarray:
    """Valley-to-valley baseline: straight lines joining the (smoothed) profile at the
    borders of the band regions ``[(y0, y1), ...]`` (profile indices, inclusive)."""
    n = len(profile)
    ps = ndi.gaussian_filter1d(profile, 2.0, mode="nearest")
    inside = np.zeros(n, bool)
    for a, b in regions:
        inside[max(0, a):min(n, b + 1)] = True
    xs = np.flatnonzero(~inside)
    if xs.size < 2:
        return np.full(n, ps.min())
    base = np.interp(np.arange(n), xs, ps[xs])
    return np.minimum(base, ps)




#: user choices of ``BlotParams.background`` / ``--background`` (``auto`` first, the default)
CHOICES = tuple(name for name, m in REGISTRY.items() if m.choice)
#: the single (non-composite) choices
METHODS = tuple(name for name in CHOICES if not REGISTRY[name].composite)
