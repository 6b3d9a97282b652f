"""Which outlines are vesicles: the selection rules, each a named function.

Selection runs in three stages, each a list of rules applied in order:

1. **Outline rules** (:data:`OUTLINE_RULES`), vectorised over every candidate's
   polar outline (:class:`OutlineScores`): size range, roundness, inside the
   image, edge strength, closure and coverage, not at the end of the radial
   search. An outline must pass all of them.
2. **Shape rules** on the polygon of each survivor: a vesicle not cut by the
   border is round and convex enough (:func:`smooth_convex_shape`), and a light
   one is not a solid speck brightest in its middle (:func:`solid_speck`).
3. **Overlap rules** (:func:`resolve_overlaps`) between the survivors: first an
   outline running from one vesicle into the next goes for the two
   (:func:`bridges_parts`); then, best first, the same vesicle found twice
   (:func:`same_vesicle`), two different
   outlines overlapping partly (:func:`partial_overlap`: the better stays),
   and an outline holding smaller ones (:func:`one_inside_other`): a merged
   blob of touching vesicles (:func:`is_merged_blob`: the parts stay), a poor
   outline around one much better one (:func:`inner_replaces_outer`), or else
   folds of a collapsed vesicle (:func:`folds_of_outer`: the outer stays).

The polarity of an image, when it is decided per image, is
:func:`stronger_polarity`.

Where the values come from: set when each rule was written and tuned on the
simulator's scenarios (``tests/test_tem.py``) and the real ScanEV micrograph
(the merged-blob rule counting non-overlapping parts: commit 2867a90); none
was measured on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .outline import N_ANGLES, nan_percentile_rows

# ---- outline rules
#: an outline's ``quality``: this percentile of its edge strength (its weakest fifth)
QUALITY_PERCENTILE = 20
#: the smallest diameter is compared with this tolerance (the polar area of an exact
#: min-size circle comes out a hair below it)
MIN_DIAMETER_TOLERANCE = 0.999
#: the polar outline's circularity (from its 96-gon) may be this much below
#: ``min_circularity``; the polygon's own circularity is checked exactly (shape rule)
POLAR_CIRCULARITY_TOLERANCE = 0.95
#: at least this share of the angles sampled inside the image
MIN_INSIDE_FRACTION = 0.3
#: the 20th percentile of the edge strength must reach this share of ``min_contrast``
#: (the edge is closed, not strong on one side only)
CLOSED_EDGE_FRACTION = 0.5
#: an angle "has an edge" above COVERAGE_EDGE_FRACTION x ``min_contrast``; at least
#: MIN_EDGE_COVERAGE of the angles inside the image must have one
COVERAGE_EDGE_FRACTION = 0.5
MIN_EDGE_COVERAGE = 0.8
#: at most this share of the angles may have their edge at an end of the radial search
MAX_AT_LIMIT_FRACTION = 0.25

# ---- shape rule
#: polygon area / convex-hull area of a vesicle not cut by the border
MIN_SOLIDITY = 0.8

# ---- speck rule (issue 13: the ScanEV debris speck at (558, 462))
#: a light outline is a solid speck, not a vesicle, when its centre stands above the band just
#: inside its outline (:func:`~exoimage.tem.outline.interior_dome`) by more than DOME_FRACTION of its
#: edge step AND by more than DOME_MIN_SNR pixel-noise SDs, AND no dark stain ring DOME_MIN_SNR SDs
#: deep lies just outside it. Measured (seed 0, quick fields, every light-polarity scenario x pixel
#: size of exoimage.simulate.tem_fields): real vesicles reach at most 0.24 of the step (faint ghost
#: discs) and 0.8 SDs; the ScanEV speck 0.29 and 5.0 with no ring; the second vesicle of the ScanEV
#: collapsed pair (a 187 nm outline at (701, 1354)) is a dome (0.8, 8.9 SDs) inside a dark ring
#: ~5 SDs deep. Dark-polarity vesicles (a lighter rim around a dark body) are domes by nature:
#: the rule is for light ones only.
DOME_FRACTION = 0.2
DOME_MIN_SNR = 3.0

# ---- overlap rules
#: overlaps are decided on a raster of about this many px across the two outlines' box
OVERLAP_RASTER_PX = 100.0
#: intersection over union above which two outlines are the same vesicle
DUPLICATE_IOU = 0.6
#: intersection over the smaller area above which the smaller is inside the larger
CONTAINED_FRACTION = 0.6
#: intersection over the smaller area above which two different outlines overlap
#: too much to both be vesicles
PARTIAL_OVERLAP_FRACTION = 0.15
#: a "good" inner outline: this round, and this good relative to the outer one (quality ratio: an
#: outline around touching vesicles crosses the stain between them on a weak edge, so their own
#: outlines are far better; the folds of a collapsed vesicle are not. Measured (issue 13, seed 1-2
#: quick fields of dense / confounders / lobed): every part of a true merged blob 3.2-5.4 x the
#: outer's quality; the fold outlines inside the ScanEV collapsed vesicle at (456, 1416) 0.85 and
#: 1.26 x; 0.8 before issue 13)
GOOD_PART_CIRCULARITY = 0.8
GOOD_PART_QUALITY = 2.0
#: ... unless the outer outline is pinched (solidity below PINCHED_SOLIDITY: a waist between two
#: rounded parts): then a part need only be PINCHED_PART_QUALITY x as good. An outline that takes in
#: a touching neighbour without crossing the stain between them (the outline module's lobe rule:
#: the neighbour's far edge is a fall that closes) is as strong as the two vesicles, but its waist
#: shows it is two; a collapsed vesicle with folds is convex. Measured (issue 13, wide_range
#: 1.2 nm/px seed 2): the outline around a touching pair, solidity 0.852, quality 8.0, the pair's
#: own outlines 10.6 and 12.3 (1.3 and 1.5 x)
PINCHED_SOLIDITY = 0.9
PINCHED_PART_QUALITY = 1.0
#: parts of a merged blob overlap each other by less than this share of the smaller
#: one's area (the intersection is counted in raster px of :func:`overlap`, the area in px)
PART_OVERLAP_FRACTION = 0.15
#: a merged blob: at least MERGED_MIN_PARTS good parts covering more than
#: MERGED_MIN_FILL of the outer outline's area
MERGED_MIN_PARTS = 2
MERGED_MIN_FILL = 0.55
#: a bridge outline (:func:`bridges_parts`): at least BRIDGE_MIN_PARTS smaller, mutually
#: non-overlapping outlines each cover more than BRIDGE_MIN_SHARE of its area, together more
#: than MERGED_MIN_FILL, and at least one of them has more than BRIDGE_MIN_OUTSIDE of its own
#: area outside it (the outline runs through that vesicle). Measured on the ScanEV collapsed pair
#: (issue 13): its 208 nm outline is covered 0.39 + 0.33 by the two vesicles' outlines, the right
#: one 0.60 outside it; its 236 nm outline 0.41 + 0.30, 0.35 outside (close to the limit); folds
#: of the simulator's lobed vesicles lie inside their outline. The quick dense / lobed /
#: confounders fields are the same with these values as without the rule.
BRIDGE_MIN_PARTS = 2
BRIDGE_MIN_SHARE = 0.2
BRIDGE_MIN_OUTSIDE = 0.3
#: a single inner outline replaces the outer one when its quality is more than
#: INNER_QUALITY_RATIO x the outer's and it covers more than INNER_MIN_FILL of it
INNER_QUALITY_RATIO = 1.5
INNER_MIN_FILL = 0.6


@dataclass
class OutlineScores:
    """Per-candidate measures of the polar outlines (arrays of one value per candidate).

    Attributes
    ----------
    diameter_nm : ndarray
        Equivalent-circle diameter of the polar outline.
    circularity : ndarray
        4 pi A / P^2 of the polar outline.
    n_inside : ndarray
        Angles whose outline sample lies inside the image.
    score : ndarray
        Median edge strength over the angles inside (noise SDs; NaN if none).
    quality : ndarray
        QUALITY_PERCENTILE-th percentile of that edge strength (NaN if none).
    coverage : ndarray
        Share of the angles inside whose edge exceeds COVERAGE_EDGE_FRACTION x min_contrast.
    at_limit : ndarray
        Share of the angles whose edge lies at an end of the radial search.
    """

    diameter_nm: np.ndarray
    circularity: np.ndarray
    n_inside: np.ndarray
    score: np.ndarray
    quality: np.ndarray
    coverage: np.ndarray
    at_limit: np.ndarray


def outline_scores(radii, strength, left, at_limit, px, min_contrast) -> OutlineScores:
    """:class:`OutlineScores` of polar outlines (radii and strengths (C, N_ANGLES), px in nm)."""
    dtheta = 2 * np.pi / N_ANGLES
    area = 0.5 * np.sin(dtheta) * np.sum(radii * np.roll(radii, -1, axis=1), axis=1)
    d_nm_all = 2 * np.sqrt(np.maximum(area, 0) / np.pi) * px
    valid = ~left
    strength_in = np.where(valid, strength, np.nan)
    with np.errstate(all="ignore"):
        score_all = nan_percentile_rows(strength_in, 50.0)
        qual_all = nan_percentile_rows(strength_in, QUALITY_PERCENTILE)
        coverage_all = np.nanmean(np.where(valid, strength > COVERAGE_EDGE_FRACTION * min_contrast, np.nan),
                                  axis=1)
    xy = np.stack([radii * np.cos(np.linspace(0, 2 * np.pi, N_ANGLES, endpoint=False)),
                   radii * np.sin(np.linspace(0, 2 * np.pi, N_ANGLES, endpoint=False))], axis=2)
    seg = np.roll(xy, -1, axis=1) - xy
    perim = np.hypot(seg[..., 0], seg[..., 1]).sum(axis=1)
    circ_all = 4 * np.pi * area / np.maximum(perim, 1e-9) ** 2
    return OutlineScores(diameter_nm=d_nm_all, circularity=circ_all, n_inside=valid.sum(axis=1),
                         score=score_all, quality=qual_all, coverage=coverage_all,
                         at_limit=at_limit.mean(axis=1))


# ---------------------------------------------------------------------------
# 1. outline rules: (OutlineScores, TemParams) -> bool per candidate


def in_size_range(s: OutlineScores, params) -> np.ndarray:
    """Diameter between ``min_diameter_nm`` (within MIN_DIAMETER_TOLERANCE) and ``max_diameter_nm``."""
    return (s.diameter_nm >= params.min_diameter_nm * MIN_DIAMETER_TOLERANCE) & \
        (s.diameter_nm <= params.max_diameter_nm)


def round_enough(s: OutlineScores, params) -> np.ndarray:
    """Circularity at least ``min_circularity`` x POLAR_CIRCULARITY_TOLERANCE."""
    return s.circularity >= params.min_circularity * POLAR_CIRCULARITY_TOLERANCE


def mostly_in_image(s: OutlineScores, params) -> np.ndarray:
    """At least MIN_INSIDE_FRACTION of the angles inside the image (a border-cut vesicle is kept, flagged)."""
    return s.n_inside >= N_ANGLES * MIN_INSIDE_FRACTION


def strong_edge(s: OutlineScores, params) -> np.ndarray:
    """Median edge strength at least ``min_contrast`` noise SDs."""
    return np.nan_to_num(s.score) >= params.min_contrast


def closed_edge(s: OutlineScores, params) -> np.ndarray:
    """The weakest fifth of the outline still at CLOSED_EDGE_FRACTION x ``min_contrast``."""
    return np.nan_to_num(s.quality) >= CLOSED_EDGE_FRACTION * params.min_contrast


def edge_all_round(s: OutlineScores, params) -> np.ndarray:
    """An edge at MIN_EDGE_COVERAGE or more of the angles inside the image."""
    return np.nan_to_num(s.coverage) >= MIN_EDGE_COVERAGE


def within_search_range(s: OutlineScores, params) -> np.ndarray:
    """At most MAX_AT_LIMIT_FRACTION of the angles with their edge at an end of the radial search
    (the candidate's scale was far off: the outline is not the vesicle's)."""
    return s.at_limit <= MAX_AT_LIMIT_FRACTION


#: the outline rules, in order; an outline must pass every one
OUTLINE_RULES = (in_size_range, round_enough, mostly_in_image, strong_edge, closed_edge, edge_all_round,
                 within_search_range)

#: the rules an outline must pass to be worth a second look on the band-passed image
#: (:func:`exoimage.tem.detect`): everything but the edge strength
SECOND_LOOK_RULES = (in_size_range, round_enough, mostly_in_image, within_search_range)


def passes_outline_rules(s: OutlineScores, params, rules=OUTLINE_RULES) -> np.ndarray:
    """Boolean per candidate: passes every rule of ``rules``."""
    keep = np.ones(len(s.diameter_nm), bool)
    for rule in rules:
        keep &= rule(s, params)
    return keep


# ---------------------------------------------------------------------------
# 2. shape rule


def smooth_convex_shape(stats: dict, params, border: bool) -> bool:
    """A vesicle not cut by the border has circularity >= ``min_circularity`` and solidity >=
    MIN_SOLIDITY (a border-cut outline is kept whatever its shape: it is flagged, not sized)."""
    return border or not (stats["circularity"] < params.min_circularity or stats["solidity"] < MIN_SOLIDITY)


def solid_speck(dome: float, step: float, ring: float, sign: float) -> bool:
    """A light outline brightest in its middle (no rim, no cup) and with no dark stain ring around
    it: its centre stands above the band just inside the outline by more than DOME_FRACTION of the
    edge step and DOME_MIN_SNR noise SDs, and the ring just outside is less than DOME_MIN_SNR SDs
    below the background beyond (solid debris is thickest in its middle and pools no stain; a
    vesicle's rim or collapsed cup is not, and a domed vesicle sits in a dark ring of stain)."""
    return sign > 0 and dome > DOME_FRACTION * max(step, 0.0) and dome > DOME_MIN_SNR and ring < DOME_MIN_SNR


# ---------------------------------------------------------------------------
# 3. overlap rules


def overlap(pa, pb):
    """(intersection, area a, area b) of two polygons in raster pixels of their common box."""
    y0 = min(pa[:, 0].min(), pb[:, 0].min())
    x0 = min(pa[:, 1].min(), pb[:, 1].min())
    y1 = max(pa[:, 0].max(), pb[:, 0].max())
    x1 = max(pa[:, 1].max(), pb[:, 1].max())
    s = max(y1 - y0, x1 - x0) / OVERLAP_RASTER_PX + 1e-9  # a ~100 px raster is plenty to decide overlaps
    shape = (int((y1 - y0) / s) + 2, int((x1 - x0) / s) + 2)
    ma = np.zeros(shape, np.uint8)
    mb = np.zeros(shape, np.uint8)
    cv2.fillPoly(ma, [np.round((pa[:, ::-1] - [x0, y0]) / s).astype(np.int32)], 1)
    cv2.fillPoly(mb, [np.round((pb[:, ::-1] - [x0, y0]) / s).astype(np.int32)], 1)
    return float(np.count_nonzero(ma & mb)), float(np.count_nonzero(ma)), float(np.count_nonzero(mb))


def same_vesicle(inter: float, area_a: float, area_b: float) -> bool:
    """Intersection over union above DUPLICATE_IOU: one vesicle found twice (the better stays)."""
    return inter / (area_a + area_b - inter) > DUPLICATE_IOU


def one_inside_other(inter: float, area_a: float, area_b: float) -> bool:
    """The smaller outline lies mostly (CONTAINED_FRACTION) inside the larger."""
    return inter / min(area_a, area_b) > CONTAINED_FRACTION


def partial_overlap(inter: float, area_a: float, area_b: float) -> bool:
    """Two different outlines overlapping by more than PARTIAL_OVERLAP_FRACTION: only the better stays."""
    return inter / min(area_a, area_b) > PARTIAL_OVERLAP_FRACTION


def good_part(inner: dict, outer: dict) -> bool:
    """An inner outline that could be one of several touching vesicles: round and far better than
    the outer outline (GOOD_PART_QUALITY), or at least as good where the outer one is pinched
    (PINCHED_SOLIDITY: a waist between touching vesicles)."""
    ratio = PINCHED_PART_QUALITY if outer["stats"]["solidity"] < PINCHED_SOLIDITY else GOOD_PART_QUALITY
    return inner["circularity"] > GOOD_PART_CIRCULARITY and inner["quality"] > ratio * outer["quality"]


def is_merged_blob(outer: dict, parts: list) -> bool:
    """Two or more good, non-overlapping inner outlines fill the outer one: it is touching vesicles
    outlined together (it goes, the parts stay). The fill of a border-cut outer outline is not
    judged (its polygon runs on outside the image: issue 13, small_evs 0.5 nm/px seed 1, a 218 px
    border outline around two complete vesicles of 103 and 83 px filled 0.37 of it)."""
    fill = sum(p["area"] for p in parts) > MERGED_MIN_FILL * outer["area"]
    return len(parts) >= MERGED_MIN_PARTS and (fill or bool(outer.get("border", False)))


def bridges_parts(cover: list, outside: list) -> bool:
    """Smaller, mutually non-overlapping outlines (``cover``: the share of the outer outline each
    covers; ``outside``: the share of each lying outside it) of which BRIDGE_MIN_PARTS each cover
    more than BRIDGE_MIN_SHARE of the outer one, together more than MERGED_MIN_FILL, one of them
    lying more than BRIDGE_MIN_OUTSIDE outside it: the outer outline runs from one vesicle into the
    next, through the middle of one (issue 13: the ScanEV collapsed pair). It goes, the parts stay.
    Folds of a collapsed vesicle lie inside its outline, and a vesicle merely touching it is not
    largely inside."""
    big = [(c, o) for c, o in zip(cover, outside) if c > BRIDGE_MIN_SHARE]
    return len(big) >= BRIDGE_MIN_PARTS and sum(c for c, _ in big) > MERGED_MIN_FILL and \
        any(o > BRIDGE_MIN_OUTSIDE for _, o in big)


def inner_replaces_outer(outer: dict, inner: list) -> bool:
    """The only inner outline is much better and covers most of the outer one: the outer is a poor
    outline of the same vesicle (it goes)."""
    return len(inner) == 1 and inner[0]["quality"] > INNER_QUALITY_RATIO * outer["quality"] and \
        inner[0]["area"] > INNER_MIN_FILL * outer["area"]


def folds_of_outer(outer: dict, inner: list) -> bool:
    """Otherwise the inner outlines are folds of a collapsed vesicle (they go, the outer stays)."""
    return True


def _non_overlapping_parts(objs, candidates):
    """The candidates (indices, best quality first) that do not overlap an already chosen part."""
    parts = []
    for j in sorted(candidates, key=lambda k: -objs[k]["quality"]):
        if all(overlap(objs[j]["poly"], objs[k]["poly"])[0] < PART_OVERLAP_FRACTION * min(objs[j]["area"],
                                                                                          objs[k]["area"])
               for k in parts):
            parts.append(j)
    return parts


def resolve_overlaps(objs):
    """Merge duplicates, split merged blobs, drop folds; returns the kept objects (best first)."""
    objs = sorted(objs, key=lambda o: (-o["quality"], -o["score"]))
    # boxes for quick rejection
    for o in objs:
        p = o["poly"]
        o["box"] = (p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max())

    def boxes_meet(a, b):
        return not (a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1])

    n = len(objs)
    ov = {}  # (i, j), i < j: (intersection, area i, area j) in raster px, for outlines that meet
    for i in range(n):
        for j in range(i + 1, n):
            if boxes_meet(objs[i]["box"], objs[j]["box"]):
                inter, aa, ab = overlap(objs[i]["poly"], objs[j]["poly"])
                if inter > 0:
                    ov[(i, j)] = (inter, aa, ab)

    def share(j, i):  # share of outline j inside outline i
        if (min(i, j), max(i, j)) not in ov:
            return 0.0
        inter, aa, ab = ov[(min(i, j), max(i, j))]
        return inter / (ab if j > i else aa)

    # bridges first (they would win the overlap rules against the vesicles they join), small
    # outlines first (a bridge is no part of a larger one)
    bridge = set()
    for i in sorted(range(n), key=lambda k: objs[k]["area"]):
        cands = [j for j in range(n) if j != i and j not in bridge and objs[j]["area"] < objs[i]["area"]
                 and share(i, j) > 0]
        parts = []
        for j in sorted(cands, key=lambda k: -share(i, k)):  # the largest shares of it first
            if all(max(share(j, k), share(k, j)) < PART_OVERLAP_FRACTION for k in parts):
                parts.append(j)
        if bridges_parts([share(i, j) for j in parts], [1 - share(j, i) for j in parts]):
            bridge.add(i)
    contains = [[] for _ in range(n)]  # j mostly inside i (and smaller)
    dup = set(bridge)
    for (i, j), (inter, aa, ab) in ov.items():
        if i in bridge or j in bridge:
            continue
        if same_vesicle(inter, aa, ab):
            dup.add(j)  # j scores lower: the same vesicle found twice
        elif one_inside_other(inter, aa, ab):
            big, small = (i, j) if aa >= ab else (j, i)
            contains[big].append(small)
        elif partial_overlap(inter, aa, ab):
            dup.add(j)  # j scores lower
    alive = [i not in dup for i in range(n)]
    # large outlines first: a big outline holding >=2 good, non-overlapping smaller
    # outlines that fill it is a merged blob; otherwise the smaller ones are folds.
    order = sorted(range(n), key=lambda k: -objs[k]["area"])
    for i in order:
        if not alive[i]:
            continue
        inner = [j for j in contains[i] if alive[j]]
        if not inner:
            continue
        parts = _non_overlapping_parts(objs, [j for j in inner if good_part(objs[j], objs[i])])
        if is_merged_blob(objs[i], [objs[j] for j in parts]):
            alive[i] = False
        elif inner_replaces_outer(objs[i], [objs[j] for j in inner]):
            alive[i] = False
        elif folds_of_outer(objs[i], [objs[j] for j in inner]):
            for j in inner:
                alive[j] = False
    return [o for o, a in zip(objs, alive) if a]


def stronger_polarity(light: list, dark: list) -> str:
    """'light' or 'dark': the polarity whose outlines have the larger summed edge strength
    (more and stronger vesicles); ties go to 'light', the classic negative-stain appearance."""
    return "light" if sum(o["score"] for o in light) >= sum(o["score"] for o in dark) else "dark"
