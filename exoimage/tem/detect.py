"""The detector: candidates -> outlines -> selection -> measurements, for one 2-D image.

:func:`detect_vesicles` is the whole method of :mod:`exoimage.tem` on an
array (or an :class:`~exoimage.io.Image`) with a pixel size; the steps live
in :mod:`.candidates`, :mod:`.outline`, :mod:`.select` and :mod:`.measure`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..io import Image, ImageReadError, validate_image
from ..stats import robust_sd
from .candidates import (detrended_hough_candidates, downsample, downsample_mask, log_candidates, mask_candidates,
                         suppress_same_scale, working_factor)
from .confidence import FEATURES, confidence_from_features, outline_features
from .measure import VESICLE_COLUMNS, shape_stats, star_mask, to_outer_edge, vesicle_row
from .outline import (N_ANGLES, body_minus_surround, closure, interior_dome, outline_levels, polar_area, polygon,
                      smoothing_level)
from .params import NO_PIXEL_SIZE, TemParams
from .select import (SECOND_LOOK_RULES, good_part, outline_scores, passes_outline_rules, resolve_overlaps,
                     smooth_convex_shape, solid_speck, stronger_polarity)

__all__ = ["VesicleResult", "detect_vesicles", "measure_vesicles"]

#: largest vesicle searched: this share of the image's longer side (bigger "vesicles" are
#: the field itself)
MAX_DIAMETER_IMAGE_FRAC = 0.6
#: the LoG's smallest radius, in smallest-vesicle radii (a little below, so that
#: min-size vesicles peak inside the range)
LOG_MIN_RADIUS_FRAC = 0.9
#: outline smoothing at full resolution: sigma = max(OUTLINE_SMOOTH_MIN_PX,
#: OUTLINE_SMOOTH_PER_FACTOR x working factor), doubled per octave of candidate size
#: (commit 2867a90)
OUTLINE_SMOOTH_MIN_PX = 0.8
OUTLINE_SMOOTH_PER_FACTOR = 1.2
#: a re-centred outline's radius is at least this share of the smallest radius
RECENTRE_MIN_RADIUS_FRAC = 0.5
#: re-centring passes at most (each only for the outlines the previous one improved): the
#: centre and inscribed radius of an irregular or lobed vesicle give a part of it first
#: (issue 13, lobed fields at 1 nm/px: F1 0.77 with one pass, 0.83 with three)
RECENTRE_PASSES = 3
#: a further pass re-outlines a candidate only when its centre or radius moves more than this (px)
RECENTRE_MIN_SHIFT_PX = 1.0
#: an outline within this many working px of annotation pixels (scale bar, its label, a databar)
#: is dropped: its edge may be the annotation's (the ScanEV micrograph: a 33 nm "vesicle" on the
#: stain just above the "500 nm" label)
ANNOTATION_MARGIN_WORK_PX = 2.0
#: an outline reaching within this many px of the image's outer pixel edge is cut by
#: the border (pixel centres run from 0 to side - 1)
BORDER_MARGIN_PX = 0.5
#: ring test (:func:`_ring_outline`): rays from a dark outline, from RING_OFFSETS_FRAC[0] to
#: RING_OFFSETS_FRAC[1] of its mean radius, sampled every RING_STEP_PX; the inner edge is sought
#: within +- RING_INNER_FRAC, the rim's outer edge up to RING_RIM_FRAC beyond it, the halo's rise up
#: to RING_HALO_FRAC beyond that; "far" (halo and inner-edge tests) is from RING_FAR_FRAC on
RING_OFFSETS_FRAC = (-0.4, 2.0)
RING_STEP_PX = 0.5
RING_INNER_FRAC = 0.3
RING_RIM_FRAC = 0.4
RING_HALO_FRAC = 0.5
RING_FAR_FRAC = 1.5
#: ... the profile's slope is smoothed by this share of the radius (at least 1 px)
RING_SLOPE_SMOOTH_FRAC = 0.03
#: ... averaged in this many sectors round the body; each step of the test is this many standard
#: errors (across sectors) above zero
RING_SECTORS = 8
RING_MIN_T = 4.0
#: halo test (:func:`_halo_outline`): a dark body without a lighter rim is a vesicle where a broad
#: concentric halo surrounds it: from HALO_NEAR_FRAC to HALO_MID_FRAC of its mean radius outside its
#: outline the profile is still darker than at RING_FAR_FRAC and still rising (the halo fades out
#: over about a radius), each RING_MIN_T standard errors across sectors above zero. Stain precipitate
#: and other solid dark discs step to the background at their edge (issue 13, dark_grain: dark EVs
#: whose rim is lost in the grain were dropped in light-polarity images)
HALO_NEAR_FRAC = 0.15
#: ... and at least this many outline-smoothing sigmas out (nearer, a solid disc's own blurred edge
#: looks like a halo: small stain precipitate in wide_range fields passed)
HALO_NEAR_SIGMAS = 4.0
HALO_MID_FRAC = 0.6
#: inner-edge test (:func:`_inner_rim_outline`): the body's edge is sought from INNER_EDGE_FRAC[0] to
#: INNER_EDGE_FRAC[1] of the mean radius inside a dark outline; the body's centre is sampled from
#: INNER_EDGE_CENTRE_FRAC of it inside
INNER_EDGE_FRAC = (0.05, RING_INNER_FRAC)
INNER_EDGE_CENTRE_FRAC = 0.7


@dataclass
class VesicleResult:
    """What :func:`detect_vesicles` found in one image.

    Attributes
    ----------
    table : DataFrame
        One row per vesicle (see ``VESICLE_COLUMNS``; ``image`` is empty).
    labels : ndarray of int32
        Label image at the input's resolution; label ``k`` is ``vesicle_id`` ``k``.
    outlines : list of ndarray
        Sub-pixel outline of each vesicle, ``(n, 2)`` arrays of (row, col).
    pixel_size_nm : float
    polarity : str
        Polarity that was used ('light' or 'dark').
    features : ndarray, optional
        ``(n, len(FEATURES))`` outline features of each row of ``table``, the inputs of its
        ``confidence`` (:mod:`exoimage.tem.confidence`).
    """

    table: pd.DataFrame
    labels: np.ndarray
    outlines: list = field(default_factory=list)
    pixel_size_nm: float = 1.0
    polarity: str = "light"
    features: np.ndarray | None = None


def _prepare(image, pixel_size_nm):
    if isinstance(image, Image):
        data = image.displayed(np.float32)
        px = pixel_size_nm if pixel_size_nm is not None else image.pixel_size_nm
        path = image.path
    else:
        data = np.asarray(image, dtype=np.float32)
        px = pixel_size_nm
        path = None
        if data.ndim != 2:
            raise ImageReadError(path, f"expected a 2-D image, got shape {data.shape}")
        validate_image(Image(data=data))
    if px is None:
        raise ImageReadError(path, NO_PIXEL_SIZE)
    if not np.isfinite(px) or px <= 0:
        raise ImageReadError(path, f"pixel size must be positive, got {px}")
    return data.astype(np.float32, copy=False), float(px)


def _candidates(work_n, r_min, r_max, sign, exclude_w, quick):
    """Every candidate (row, col, radius, strength) in working px: mask, then LoG, then Hough."""
    mask_cands, fg, dt = mask_candidates(work_n, r_min, r_max, sign, exclude_w)
    # The LoG adds what the foreground mask missed: faint vesicles outside it,
    # and inside it blobs much larger than the mask's inscribed circle there
    # (a large collapsed vesicle whose mask is only its brighter folds); other
    # LoG responses inside the mask are rim fragments of vesicles already proposed.
    log_cands = log_candidates(work_n, r_min * LOG_MIN_RADIUS_FRAC, r_max, sign, exclude_w, background=~fg)
    hf, wf = fg.shape

    def _new(c):
        iy, ix = min(hf - 1, int(round(c[0]))), min(wf - 1, int(round(c[1])))
        return not fg[iy, ix]

    log_cands = [c for c in log_cands if _new(c)]
    cands = mask_cands + suppress_same_scale(log_cands)
    if not quick:
        # (the overlapping Hough spans find many circles twice: one outline each is enough)
        cands += suppress_same_scale(detrended_hough_candidates(work_n, r_min, r_max, sign, exclude_w))
    return cands


def _detect_one_polarity(data, px, params, sign, exclude, quick: bool = False, cache: dict | None = None,
                         near_misses: list | None = None):
    """Outlines of one polarity; ``quick`` (for the polarity decision) skips the
    Hough candidates and the re-centring pass; ``cache`` (a dict) keeps the smoothed images
    between calls on the same image (they do not depend on the polarity). ``near_misses`` (a
    list), when given, receives the objects of the first pass's outlines that failed on their
    edge alone (:data:`~exoimage.tem.select.SECOND_LOOK_RULES`), outside the accepted ones."""
    f = working_factor(px, params.min_diameter_nm)
    work = downsample(data, f)
    wpx = px * f
    noise = robust_sd((work[1:, :] - work[:-1, :])[::2, ::2]) / np.sqrt(2)
    if noise <= 0:
        noise = float(work.std()) or 1.0
    work_n = ((work - np.median(work)) / noise).astype(np.float32)
    exclude_w = None
    if exclude is not None:
        exclude_w = downsample_mask(exclude, f)
    r_min = 0.5 * params.min_diameter_nm / wpx
    r_max = 0.5 * min(params.max_diameter_nm, MAX_DIAMETER_IMAGE_FRAC * max(data.shape) * px) / wpx
    cands = _candidates(work_n, r_min, r_max, sign, exclude_w, quick)
    if not cands:
        return []
    # Outlines on the full-resolution image, smoothed in proportion to the
    # candidate's size (large collapsed vesicles have broad, soft edges: a
    # wider smoothing keeps their edge and removes more noise), in a few
    # octave-spaced levels; edge strength is in noise units of each level.
    full_cands = [((y + 0.5) * f - 0.5, (x + 0.5) * f - 0.5, r * f) for y, x, r, _ in cands]
    s_full = _outline_smoothing(px, params)
    data32 = data.astype(np.float32, copy=False)
    cache = {} if cache is None else cache
    radii, strength, left, at_limit = outline_levels(data32, full_cands, sign, s_full, cache)
    theta = np.linspace(0, 2 * np.pi, N_ANGLES, endpoint=False)
    todo = np.arange(0 if quick else len(full_cands))
    # (dark bodies: one pass; their outlines, re-centred again, drift onto the dark halos they share)
    for _pass in range(RECENTRE_PASSES if sign > 0 else 1):
        # refinement: re-centre each outline on its centroid at its own size, again while it
        # improves (Hough, LoG and mask centres of irregular vesicles can be well off-centre and
        # their first outline a part of the vesicle)
        if not todo.size:
            break
        refined = []
        for i in todo:
            (cy, cx, _), r = full_cands[i], radii[i]
            ry, rx = cy + np.mean(r * np.sin(theta)), cx + np.mean(r * np.cos(theta))
            area = polar_area(r)
            refined.append((ry, rx, max(np.sqrt(max(area, 1e-9) / np.pi), RECENTRE_MIN_RADIUS_FRAC * r_min * f)))
        if _pass:
            # again only for outlines that still fail the outline rules (a part of an irregular
            # vesicle; a good outline re-centred again can only drift onto its neighbours), and
            # only where the centre or the size moves (elsewhere the outline would not change)
            sc_t = outline_scores(radii[todo], strength[todo], left[todo], at_limit[todo], px, params.min_contrast)
            moved = ~passes_outline_rules(sc_t, params) & np.array(
                [max(np.hypot(c[0] - full_cands[i][0], c[1] - full_cands[i][1]), abs(c[2] - full_cands[i][2]))
                 > RECENTRE_MIN_SHIFT_PX for c, i in zip(refined, todo)], bool)
            todo, refined = todo[moved], [c for c, m in zip(refined, moved) if m]
            if not todo.size:
                break
        r2, s2, l2, a2 = outline_levels(data32, refined, sign, s_full, cache)
        # keep whichever outline of the two has the better closed edge
        better = closure(s2, l2) > closure(strength[todo], left[todo])
        idx = todo[better]
        radii[idx], strength[idx], left[idx], at_limit[idx] = r2[better], s2[better], l2[better], a2[better]
        for i, c in zip(idx, [c for c, b in zip(refined, better) if b]):
            full_cands[i] = c
        todo = idx
    objs = _accepted(data, px, params, sign, full_cands, radii, strength, left, at_limit)
    if near_misses is not None:
        sc0 = outline_scores(radii, strength, left, at_limit, px, params.min_contrast)
        miss = np.flatnonzero(passes_outline_rules(sc0, params, SECOND_LOOK_RULES) & ~passes_outline_rules(sc0, params))
        cands_m = _outside_outlines([full_cands[i] for i in miss], objs, data.shape)
        keep = [i for i in miss if full_cands[i] in cands_m]
        if keep:
            near_misses += _accepted(data, px, params, sign, [full_cands[i] for i in keep], radii[keep], strength[keep],
                                     left[keep], at_limit[keep], rules=SECOND_LOOK_RULES)
    if not quick:
        # second look: what the first pass left, outlined on the band-passed image (a vesicle in a
        # dark stain pool or broad halo: the pool's ramp swamps the body / stain step), with
        # circle candidates from the band-passed image too
        # (only outlines that failed on their edge alone: the right size, round, inside the search range)
        sc1 = outline_scores(radii, strength, left, at_limit, px, params.min_contrast)
        retry = passes_outline_rules(sc1, params, SECOND_LOOK_RULES) & ~passes_outline_rules(sc1, params)
        rest = _outside_outlines([c for c, ok in zip(full_cands, retry) if ok], objs, data.shape)
        if rest:
            r2, s2, l2, a2 = outline_levels(data32, rest, sign, s_full, cache, detrend=True)
            for o in _accepted(data, px, params, sign, rest, r2, s2, l2, a2, second=True):
                # polarity evidence of the outline itself: on the band-passed image its body is not
                # darker than its surround (for sign +1); the band-pass's ring around a dark
                # precipitate is the one outline of the right sign whose body is the wrong one
                band = cache[(smoothing_level(o["cand_r"], s_full), True)][0]
                if sign * body_minus_surround(band, o["centre"], o["radii"]) >= 0:
                    objs.append(o)
    if sign < 0:
        objs = [o for o in objs if not _holds_vesicles(o, objs)]
    else:
        # light outlines: only where what they hold are good parts (round, far better edges than
        # the outer outline's: the folds of a collapsed vesicle are not)
        objs = [o for o in objs if not _holds_vesicles(o, objs, part=good_part)]
    return resolve_overlaps(objs)


def _near_mask(poly, mask, margin):
    """Whether the polygon, grown by ``margin`` px, covers a pixel of ``mask``."""
    H, W = mask.shape
    y0 = max(0, int(np.floor(poly[:, 0].min() - margin)))
    x0 = max(0, int(np.floor(poly[:, 1].min() - margin)))
    y1 = min(H, int(np.ceil(poly[:, 0].max() + margin)) + 1)
    x1 = min(W, int(np.ceil(poly[:, 1].max() + margin)) + 1)
    if y1 <= y0 or x1 <= x0 or not mask[y0:y1, x0:x1].any():
        return False
    m = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(m, [np.round(poly[:, ::-1] - [x0, y0]).astype(np.int32)], 1)
    k = 2 * int(np.ceil(margin)) + 1
    m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return bool((m.astype(bool) & mask[y0:y1, x0:x1]).any())


def _outside_outlines(cands, objs, shape):
    """The candidates (row, col, radius) whose centre is not inside any of the outlines ``objs``."""
    if not objs or not cands:
        return cands
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(o["poly"][:, ::-1]).astype(np.int32) for o in objs], 1)
    H, W = shape
    return [c for c in cands
            if not mask[min(H - 1, max(0, int(round(c[0])))), min(W - 1, max(0, int(round(c[1]))))]]


def _accepted(data, px, params, sign, full_cands, radii, strength, left, at_limit, second=False, rules=None):
    """The objects (dicts) of the outlines that pass the outline (``rules``, default all) and
    shape rules."""
    H, W = data.shape
    # cheap, vectorised first cut: the outline rules
    scores = outline_scores(radii, strength, left, at_limit, px, params.min_contrast)
    keep = passes_outline_rules(scores, params) if rules is None else passes_outline_rules(scores, params, rules)
    objs = []
    noise = None
    for k in np.flatnonzero(keep):
        cy, cx, cr = full_cands[k]
        poly = polygon(cy, cx, radii[k])
        st = shape_stats(poly)
        border = bool(left[k].any() or (poly[:, 0] < BORDER_MARGIN_PX).any() or (poly[:, 1] < BORDER_MARGIN_PX).any()
                      or (poly[:, 0] > H - 1 - BORDER_MARGIN_PX).any() or (poly[:, 1] > W - 1 - BORDER_MARGIN_PX).any())
        if not smooth_convex_shape(st, params, border):
            continue
        if sign > 0:
            if noise is None:  # per-pixel noise of the full-resolution image
                noise = robust_sd((data[1:, :] - data[:-1, :])[::2, ::2]) / np.sqrt(2)
            if solid_speck(*interior_dome(data, (cy, cx), radii[k], sign, noise), sign):
                continue
        objs.append(dict(poly=poly, centre=(cy, cx), radii=radii[k], score=float(scores.score[k]),
                         quality=float(scores.quality[k]), coverage=float(scores.coverage[k]), border=border,
                         area=st["area"], circularity=st["circularity"], stats=st, second=second,
                         cand_r=float(cr)))
    return objs


def _choose_polarity(data, px, params, exclude_mask):
    """('light' or 'dark', outlines): the image's polarity (whose outlines are more and stronger)
    and the outlines, decided per object where both polarities occur.

    The light polarity is run in full (with the second look: a light body
    inside a dark pool or halo is an object of the light polarity even when the
    image is mostly darker than its background; the shrunk quick decision used
    before issue 13 did not see those and picked 'dark' for the dark-EV crop),
    and so is the dark one (with its Hough circles: in a light image a dark EV's dark mask takes
    in its halo and its neighbours', and its distance-transform peaks and LoG blobs lie off the
    body's centre, the band-passed image's circles on it; issue 13, dark_grain at 1 nm/px: a
    candidate within a quarter radius of the centre for 14 of 15 EVs with them, 7 without; the
    quick dark pass used before, without them, was run in full only where it beat the light
    outlines). The polarity is the stronger (:func:`~exoimage.tem.select.stronger_polarity`); the
    quick dark pass still gives the near misses. The light outlines are returned with the dark
    ones that do not duplicate them: every dark object ringed by a lighter rim (:func:`_rim_outlines`, outlined
    at the rim), and where the image is dark, the others as they are (issue 13: dark EVs on
    grainy stain, some lighter than their halo and found by the light polarity, others not).
    """
    cache = {}
    light = _detect_one_polarity(data, px, params, +1.0, exclude_mask, cache=cache)
    dark_misses = []
    _detect_one_polarity(data, px, params, -1.0, exclude_mask, quick=True, cache=cache, near_misses=dark_misses)
    dark = _detect_one_polarity(data, px, params, -1.0, exclude_mask, cache=cache)
    pol = stronger_polarity(light, dark)
    # per object: a dark body ringed by a lighter rim whose outer edge closes (a dark vesicle in a
    # pool of stain) is a vesicle of either image polarity, outlined at that rim's outer edge; a
    # dark body without one (stain precipitate) counts only where the image is dark
    rims = _rim_outlines(data, px, params, dark, cache)
    # where no rim edge closes on its own: the ring as a whole, averaged round the body
    rims = [r if r is not None else _ring_outline(data, px, params, o, cache) for o, r in zip(dark, rims)]
    dark_objs = [r if r is not None else o for o, r in zip(dark, rims) if r is not None or pol == "dark"]
    # a dark body whose own edge was too weak to pass is kept where the whole ring round it is there
    dark_objs += [r for r in (_ring_outline(data, px, params, o, cache) for o in dark_misses) if r is not None]
    # without a rim: a dark body inside a broad halo of its own (a dark EV whose rim is lost in grain),
    # where it is not inside a light outline (there it is a cup's collapsed centre and its halo the
    # cup's: the ScanEV cups and collapsed pair were swallowed by such outlines); only outlines that
    # passed on their own edge, not the near misses (one on a dark mottle of uneven stain passed the
    # halo test: tests/test_tem.py cups at 1.5 nm/px, F1 0.857 < 0.9, the reason 3cc2843 was reverted)
    if pol != "dark":
        halo = [_halo_outline(data, px, params, o, cache) or _inner_rim_outline(data, px, params, o, cache)
                for o, r in zip(dark, rims) if r is None]
        halo = [h for h in halo if h is not None]
        # (the inner-edge test also for near misses: its halo gate and traced edge reject the stain
        # mottle that the halo test passed; tests/test_tem.py cups@1.5 passes)
        halo += [h for h in (_inner_rim_outline(data, px, params, o, cache) for o in dark_misses) if h is not None]
        keep = _outside_outlines([h["centre"] for h in halo], light, data.shape)
        dark_objs += [h for h in halo if h["centre"] in keep]
    if not dark_objs:
        return pol, light
    return pol, resolve_overlaps(light + dark_objs)


#: a dark outline that holds the centres of this many distinct smaller outlines of its pass is a
#: halo or a dark region round them (:func:`_holds_vesicles`)
HOLDS_MIN_COUNT = 2


def _holds_vesicles(obj, others, part=None):
    """Whether the dark outline ``obj`` holds the centres of HOLDS_MIN_COUNT distinct smaller
    outlines of ``others`` (itself excluded; distinct: centres further apart than the larger one's
    radius, the same body is often outlined from two or three candidates): it is then the dark halo
    that touching vesicles share, or a dark region of uneven stain round several of them, not a
    vesicle. Applied to the dark pass's outlines before the overlap rules, which keep such an outer
    outline over parts that fill little of it (:func:`~exoimage.tem.select.folds_of_outer`).

    Issue 13, dark_grain at 1 nm/px (dark polarity): an outline of radius 181 px along a dark stripe
    at the field's edge held four EVs and one round the halo of a touching pair held both; they
    replaced the EVs' own outlines (F1 0.822 -> 0.853).

    ``part`` (a predicate ``part(inner, outer)``), when given, counts only the smaller outlines it
    accepts: the light pass asks for :func:`~exoimage.tem.select.good_part` (round, edge quality more
    than twice the outer's), so a collapsed vesicle keeps its folds' outer outline. Issue 13,
    stain_pools at 1.4 nm/px: a weak light outline (quality 1.7) round two vesicles (7.1, 7.8) that
    filled only 0.52 of it (the merged-blob rule asks for 0.55) kept them out (F1 0.957 -> 0.989).
    """
    cy, cx = obj["centre"]
    reach = float(np.max(obj["radii"]))
    near = [o for o in others if o is not obj and o["area"] < obj["area"]
            and abs(o["centre"][0] - cy) < reach and abs(o["centre"][1] - cx) < reach
            and (part is None or part(o, obj))]
    if len(near) < HOLDS_MIN_COUNT:
        return False
    contour = np.asarray(obj["poly"])[:, ::-1].astype(np.float32).reshape(-1, 1, 2)
    inside = [o for o in near if cv2.pointPolygonTest(contour, (float(o["centre"][1]), float(o["centre"][0])), False) > 0]
    # distinct vesicles: centres further apart than the larger one's radius (the same body is
    # often outlined from two or three candidates)
    distinct = []
    for o in sorted(inside, key=lambda o: -o["area"]):
        r = np.sqrt(o["area"] / np.pi)
        if all(np.hypot(o["centre"][0] - d["centre"][0], o["centre"][1] - d["centre"][1])
               > max(r, np.sqrt(d["area"] / np.pi)) for d in distinct):
            distinct.append(o)
    return len(distinct) >= HOLDS_MIN_COUNT


def _rim_outlines(data, px, params, objs, cache):
    """For each dark-body object, the object outlined at the outer edge of a lighter rim around it
    (a light-to-dark edge going outwards, as a light vesicle's), or None where no such edge closes
    around it (a solid dark disc: stain precipitate, or a plain dark body).

    The rim is traced from the object's centre at its median radius (the radial search spans
    0.35-1.75 of it) on the plain and the band-passed image (the second look's: a broad halo's
    ramp removed), the better closed of the two kept; it must pass every outline and shape rule
    and enclose the dark outline (the body's edge, inside the rim; mean radius not smaller).
    A stain ring with a sharp outer edge, which the dark outline would follow, is not handled.
    """
    if not objs:
        return []
    s_full = _outline_smoothing(px, params)
    data32 = data.astype(np.float32, copy=False)
    cands = [(o["centre"][0], o["centre"][1], float(np.median(o["radii"]))) for o in objs]
    r1, s1, l1, a1 = outline_levels(data32, cands, +1.0, s_full, cache)
    r2, s2, l2, a2 = outline_levels(data32, cands, +1.0, s_full, cache, detrend=True)
    better = closure(s2, l2) > closure(s1, l1)
    r1[better], s1[better], l1[better], a1[better] = r2[better], s2[better], l2[better], a2[better]
    out = []
    for k, o in enumerate(objs):
        if np.mean(r1[k]) < np.mean(o["radii"]):
            out.append(None)  # inside the dark outline: not a rim around the body (the band-pass's
            continue  # overshoot inside a solid dark disc is a light-to-dark ring too)
        acc = _accepted(data, px, params, +1.0, [cands[k]], r1[k:k + 1], s1[k:k + 1], l1[k:k + 1], a1[k:k + 1],
                        second=bool(better[k]))
        out.append(acc[0] if acc else None)
    return out


def _ring_profile(img, centre, radii, offsets):
    """Samples (len(radii), len(offsets)) of ``img`` at ``radii + offsets`` (px) from ``centre``
    along each outline angle (NaN outside the image)."""
    theta = np.linspace(0, 2 * np.pi, radii.size, endpoint=False)
    rho = np.maximum(radii[:, None] + offsets[None, :], 0.0)
    map_x = (centre[1] + rho * np.cos(theta)[:, None]).astype(np.float32)
    map_y = (centre[0] + rho * np.sin(theta)[:, None]).astype(np.float32)
    return cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=float("nan"))


def _t_stat(v):
    """Mean over standard error of the values ``v`` (NaN for fewer than 2 or no spread)."""
    sd = np.std(v, ddof=1)
    return float(np.mean(v) / (sd / np.sqrt(v.size))) if v.size > 1 and sd > 0 else np.nan


def _ring_image(data, s_full, cache):
    """The image smoothed by the finest outline sigma ``s_full`` (float32), cached in ``cache``."""
    key = ("ring", s_full)
    if key not in cache:
        cache[key] = cv2.GaussianBlur(data.astype(np.float32, copy=False), (0, 0), s_full)
    return cache[key]


def _sector_slopes(sec, rm):
    """Radial slopes (per px) of sector profiles ``sec`` sampled every RING_STEP_PX, smoothed over
    RING_SLOPE_SMOOTH_FRAC of the mean radius ``rm``."""
    return ndi.gaussian_filter1d(np.gradient(sec, axis=1), max(1.0, RING_SLOPE_SMOOTH_FRAC * rm) / RING_STEP_PX,
                                 axis=1) / RING_STEP_PX


def _ring_outline(data, px, params, obj, cache):
    """The dark-body object ``obj`` outlined at the outer edge of a lighter rim between its body
    and a dark halo, or None where the ring is not there.

    The two edges of the rim are tested together, on the image (finest outline smoothing) sampled
    along rays from the dark outline and averaged round it (per angle the rim is a few noise SDs at
    best): going outwards, the profile rises steeply at the dark outline (the body's edge, the
    rim's inner edge), its slope then drops to a minimum (the rim's outer edge: a light-to-dark
    fall, on a dark halo's rising ramp it may only flatten the profile) and rises again (the halo
    fading out), and the rim's outer edge is still darker than the lightest level beyond the halo's
    rise (in a halo). Each step is
    tested in RING_SECTORS sectors: the slope drop, the slope rise after it and the halo depth must
    each be RING_MIN_T standard errors across sectors above zero (so the ring closes round the
    body, concentric). A dark disc without a rim (stain precipitate, a crystal) rises to the
    background and stays there; one whose outline is on its halo has no second rise. The outline
    is the dark one moved out to the slope minimum; it must pass the shape rules.
    """
    radii = np.asarray(obj["radii"], float)
    rm = float(np.mean(radii))
    s_full = _outline_smoothing(px, params)
    ring_img = _ring_image(data, s_full, cache)
    offs = np.arange(RING_OFFSETS_FRAC[0] * rm, RING_OFFSETS_FRAC[1] * rm + RING_STEP_PX, RING_STEP_PX)
    prof = _ring_profile(ring_img, obj["centre"], radii, offs)
    sec = np.array([np.nanmean(prof[ix], axis=0) if np.isfinite(prof[ix]).any(axis=0).all() else
                    np.full(offs.size, np.nan) for ix in np.array_split(np.arange(radii.size), RING_SECTORS)])
    if not np.isfinite(sec).all():
        return None  # a sector's rays leave the image
    slope = _sector_slopes(sec, rm)
    mean_slope = slope.mean(axis=0)

    def extreme(lo, hi, fn):
        ix = np.flatnonzero((offs > lo) & (offs <= hi))
        return (ix[fn(mean_slope[ix])], ix) if ix.size else (None, ix)

    i_in, _ = extreme(-RING_INNER_FRAC * rm, RING_INNER_FRAC * rm, np.argmax)
    i_out, w_out = extreme(offs[i_in], offs[i_in] + RING_RIM_FRAC * rm, np.argmin)
    if i_out is None or i_out == w_out[-1]:
        return None  # the slope falls all the way: no rim's outer edge
    i_h, _ = extreme(offs[i_out], offs[i_out] + RING_HALO_FRAC * rm, np.argmax)
    # "far away": the lightest level the profile reaches beyond the halo's rise, per sector (the mean
    # from RING_FAR_FRAC on, used before, is dark in a sector where a neighbour's body or halo lies
    # in the far band, and the halo-depth test failed on that one sector: issue 13, dark_grain at
    # 1 nm/px, t 2.5 with the first two tests at 8.2 and 5.1)
    far = sec[:, offs >= offs[i_h]].max(axis=1)
    tests = (_t_stat(slope[:, i_in] - slope[:, i_out]), _t_stat(slope[:, i_h] - slope[:, i_out]),
             _t_stat(far - sec[:, i_out]))
    if not all(t >= RING_MIN_T for t in tests):  # (NaN fails)
        return None
    return _moved_outline(data, params, obj, radii + offs[i_out])


def _halo_outline(data, px, params, obj, cache):
    """The dark-body object ``obj`` where a broad halo surrounds it (see HALO_NEAR_FRAC), moved out
    to its rim's outer edge (the least slope within RING_RIM_FRAC beyond the body's edge, as in
    :func:`_ring_outline`, here without asking the rim to be significant: the dark outline of a
    dark EV sits at the body's edge, inside its lighter rim), or None. Going outwards from that
    outline, the profile (averaged in RING_SECTORS sectors) between HALO_NEAR_FRAC and HALO_MID_FRAC
    of its mean radius must be darker than far away and still rising, in every direction alike
    (RING_MIN_T standard errors across sectors)."""
    radii = np.asarray(obj["radii"], float)
    rm = float(np.mean(radii))
    s_full = _outline_smoothing(px, params)
    ring_img = _ring_image(data, s_full, cache)
    top = RING_OFFSETS_FRAC[1] * rm + RING_RIM_FRAC * rm
    offs = np.arange(RING_OFFSETS_FRAC[0] * rm, top + RING_STEP_PX, RING_STEP_PX)
    prof = _ring_profile(ring_img, obj["centre"], radii, offs)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            sec = np.array([np.nanmean(prof[ix], axis=0) for ix in np.array_split(np.arange(radii.size), RING_SECTORS)])
    ok = np.isfinite(sec).all(axis=1)
    if ok.sum() < RING_SECTORS // 2:
        return None  # (most of it outside the image)
    slope = _sector_slopes(sec[ok], rm)
    ms = np.nanmean(slope, axis=0)
    w_in = np.flatnonzero(np.abs(offs) <= RING_INNER_FRAC * rm)
    i_in = w_in[np.argmax(ms[w_in])]
    w_out = np.flatnonzero((offs > offs[i_in]) & (offs <= offs[i_in] + RING_RIM_FRAC * rm))
    i_out = w_out[np.argmin(ms[w_out])] if w_out.size else i_in
    if w_out.size and i_out == w_out[-1]:
        i_out = i_in  # no flattening: no rim, the outline stays at the body's edge
    shift = offs[i_out]
    rm2 = rm + shift
    d0 = max(HALO_NEAR_FRAC * rm2, HALO_NEAR_SIGMAS * s_full)
    near = (offs >= shift + d0) & (offs <= shift + max(HALO_MID_FRAC * rm2, 2 * d0))
    far = offs >= shift + RING_FAR_FRAC * rm2
    good = ok.copy()
    good[ok] = np.isfinite(sec[ok][:, near]).all(axis=1) & np.isfinite(sec[ok][:, far]).all(axis=1) & far.any()
    if near.sum() < 2 or good.sum() < RING_SECTORS // 2:
        return None
    x = offs[near]
    sl = np.array([np.polyfit(x, v[near], 1)[0] for v in sec[good]])
    depth = sec[good][:, far].mean(axis=1) - sec[good][:, near].mean(axis=1)
    if not (_t_stat(sl) >= RING_MIN_T and _t_stat(depth) >= RING_MIN_T):  # (NaN fails)
        return None
    return _moved_outline(data, params, obj, radii + shift)


def _sector_profile(data, px, params, obj, cache, lo_frac, hi_frac):
    """(offsets, sector profiles, sector slopes) along rays from ``obj``'s outline, from
    ``lo_frac`` to ``hi_frac`` of its mean radius (finest outline smoothing, RING_SECTORS
    sectors); None where a sector's rays leave the image."""
    radii = np.asarray(obj["radii"], float)
    rm = float(np.mean(radii))
    s_full = _outline_smoothing(px, params)
    ring_img = _ring_image(data, s_full, cache)
    offs = np.arange(lo_frac * rm, hi_frac * rm + RING_STEP_PX, RING_STEP_PX)
    prof = _ring_profile(ring_img, obj["centre"], radii, offs)
    if not np.isfinite(prof).all():
        return None
    sec = np.array([prof[ix].mean(axis=0) for ix in np.array_split(np.arange(radii.size), RING_SECTORS)])
    slope = _sector_slopes(sec, rm)
    return offs, sec, slope


def _inner_rim_outline(data, px, params, obj, cache):
    """The dark-body object ``obj`` whose dark outline took in the dark ring and part of the halo
    outside its body (the outline on the halo's fading ramp, 1.2-1.3 times the EV's radius),
    outlined at the body's outer edge inside it, or None.

    The edge is looked for in the profile averaged in RING_SECTORS sectors, from INNER_EDGE_FRAC[0]
    to INNER_EDGE_FRAC[1] of the mean radius inside the outline (the least slope going outwards:
    the lighter rim's outer edge onto the dark ring); outside it the profile must rise steeply to a
    background lighter than the ring and the body's centre (RING_MIN_T standard errors across
    sectors each). The outline is then traced afresh from the centre at that radius as a light
    vesicle's (a light-to-dark edge going outwards) and must pass every outline and shape rule,
    with a mean radius inside the dark outline; its per-angle strength need only pass
    SECOND_LOOK_RULES (a 0.06 rim in 0.03 grain). First of all the dark outline must itself lie on
    a halo (darker from HALO_NEAR_FRAC to HALO_MID_FRAC out than from RING_FAR_FRAC on): a square
    stain crystal's dark outline is at its own edge and passed the rest (wide_range at 1.7 nm/px).
    Used on full-pass dark outlines and on near misses (issue 13, dark_grain)."""
    radii = np.asarray(obj["radii"], float)
    rm = float(np.mean(radii))
    got = _sector_profile(data, px, params, obj, cache, -INNER_EDGE_CENTRE_FRAC, RING_OFFSETS_FRAC[1])
    if got is None:
        return None
    offs, sec, slope = got
    # the dark outline itself lies on a halo: from HALO_NEAR_FRAC to HALO_MID_FRAC of its radius out,
    # the profile is darker than from RING_FAR_FRAC on (a crystal's or a precipitate's dark outline is
    # at its own edge, with the background right outside)
    halo = (offs >= HALO_NEAR_FRAC * rm) & (offs <= HALO_MID_FRAC * rm)
    if not _t_stat(sec[:, offs >= RING_FAR_FRAC * rm].mean(axis=1) - sec[:, halo].mean(axis=1)) >= RING_MIN_T:
        return None
    ms = slope.mean(axis=0)
    w = np.flatnonzero((offs >= -INNER_EDGE_FRAC[1] * rm) & (offs <= -INNER_EDGE_FRAC[0] * rm))
    if w.size < 3:
        return None
    i_e = w[np.argmin(ms[w])]
    if i_e in (w[0], w[-1]):
        return None  # no minimum of the slope inside the window: no edge there
    rm2 = rm + offs[i_e]
    ring = (offs > offs[i_e]) & (offs <= offs[i_e] + RING_RIM_FRAC * rm)
    w_out = np.flatnonzero((offs > offs[i_e]) & (offs <= offs[i_e] + RING_HALO_FRAC * rm))
    far = (offs >= offs[i_e] + RING_FAR_FRAC * rm2) & (offs <= RING_FAR_FRAC * rm)
    centre = offs <= -INNER_EDGE_CENTRE_FRAC * rm + 0.2 * rm
    if not far.any() or not ring.any() or not w_out.size:
        return None
    i_h = w_out[np.argmax(ms[w_out])]
    far_v = sec[:, far].mean(axis=1)
    tests = (_t_stat(slope[:, i_h] - slope[:, i_e]), _t_stat(far_v - sec[:, ring].min(axis=1)),
             _t_stat(far_v - sec[:, centre].mean(axis=1)))
    if not all(t >= RING_MIN_T for t in tests):  # (NaN fails)
        return None
    s_full = _outline_smoothing(px, params)
    data32 = data.astype(np.float32, copy=False)
    cand = [(obj["centre"][0], obj["centre"][1], float(np.median(radii + offs[i_e])))]
    r1, s1, l1, a1 = outline_levels(data32, cand, +1.0, s_full, cache)
    r2, s2, l2, a2 = outline_levels(data32, cand, +1.0, s_full, cache, detrend=True)
    second = bool(closure(s2, l2)[0] > closure(s1, l1)[0])
    if second:
        r1, s1, l1, a1 = r2, s2, l2, a2
    if not (rm2 - RING_INNER_FRAC * rm <= np.mean(r1[0]) < rm):
        return None  # not the edge found inside the dark outline
    # (the edge's own per-angle strength may be short of the outline rules: a 0.06 rim in 0.03 grain;
    # the sector tests above are the evidence that it closes round the body)
    acc = _accepted(data, px, params, +1.0, cand, r1, s1, l1, a1, second=second, rules=SECOND_LOOK_RULES)
    return acc[0] if acc else None


def _moved_outline(data, params, obj, new_r):
    """``obj`` with its outline at radii ``new_r`` (border flag and shape test redone), or None
    where the moved outline fails the smooth-convex shape test."""
    poly = polygon(obj["centre"][0], obj["centre"][1], new_r)
    H, W = data.shape
    st = shape_stats(poly)
    border = bool(obj["border"] or (poly[:, 0] < BORDER_MARGIN_PX).any() or (poly[:, 1] < BORDER_MARGIN_PX).any()
                  or (poly[:, 0] > H - 1 - BORDER_MARGIN_PX).any() or (poly[:, 1] > W - 1 - BORDER_MARGIN_PX).any())
    if not smooth_convex_shape(st, params, border):
        return None
    return {**obj, "poly": poly, "radii": new_r, "stats": st, "area": st["area"], "circularity": st["circularity"],
            "border": border}


def _outline_smoothing(px, params):
    """The base outline smoothing sigma (full-resolution px) at this pixel size."""
    return max(OUTLINE_SMOOTH_MIN_PX, OUTLINE_SMOOTH_PER_FACTOR * working_factor(px, params.min_diameter_nm))


def detect_vesicles(image, pixel_size_nm: float | None = None, params: TemParams | None = None,
                    *, exclude_mask: np.ndarray | None = None, **kwargs) -> VesicleResult:
    """Find vesicles and measure them.

    Parameters
    ----------
    image : ndarray or Image
        2-D micrograph (any dtype). An :class:`~exoimage.io.Image` is used as a
        viewer shows it (WhiteIsZero inverted).
    pixel_size_nm : float, optional
        Pixel size in nm; required unless ``image`` is an Image that has one.
    params : TemParams, optional
        Detector parameters; keyword arguments override single fields
        (``min_diameter_nm=40``).
    exclude_mask : ndarray of bool, optional
        Pixels that are not specimen (scale bar, labels, databar strip).
        Candidates centred there are ignored.

    Returns
    -------
    VesicleResult
    """
    params = TemParams(**{**(params.as_dict() if params else {}), **kwargs})
    params.check()
    data, px = _prepare(image, pixel_size_nm)
    objs = None
    if params.polarity == "auto":
        polarity, objs = _choose_polarity(data, px, params, exclude_mask)
    else:
        polarity = params.polarity
    if objs is None:
        objs = _detect_one_polarity(data, px, params, 1.0 if polarity == "light" else -1.0, exclude_mask)
    if exclude_mask is not None and np.any(exclude_mask):
        margin = ANNOTATION_MARGIN_WORK_PX * working_factor(px, params.min_diameter_nm)
        objs = [o for o in objs if not _near_mask(o["poly"], exclude_mask, margin)]
    # the outlines at the outer edge of their edge ramp (issue 13's edge rule, measure.to_outer_edge)
    objs = to_outer_edge(data, objs, exclude_mask)
    # order: top-to-bottom, left-to-right, for stable ids
    objs.sort(key=lambda o: (round(o["stats"]["centroid"][0]), o["stats"]["centroid"][1]))
    labels = np.zeros(data.shape, np.int32)
    rows = []
    outlines = []
    feats = []
    for vid, o in enumerate(objs, start=1):
        poly = o["poly"]
        y0 = max(0, int(np.floor(poly[:, 0].min())))
        x0 = max(0, int(np.floor(poly[:, 1].min())))
        y1 = min(data.shape[0], int(np.ceil(poly[:, 0].max())) + 1)
        x1 = min(data.shape[1], int(np.ceil(poly[:, 1].max())) + 1)
        m = star_mask(o["centre"], o["radii"], y0, y1, x0, x1)
        sub = labels[y0:y1, x0:x1]
        sub[m & (sub == 0)] = vid
        st = o["stats"]
        x = outline_features(o["score"], o["quality"], o["coverage"], st["circularity"], o.get("second", False),
                             params.min_contrast)
        feats.append(x)
        rows.append(vesicle_row(vid, st, px, o["border"], o["score"], params.min_contrast,
                                confidence=float(confidence_from_features(x))))
        outlines.append(poly)
    table = pd.DataFrame(rows, columns=VESICLE_COLUMNS)
    return VesicleResult(table=table, labels=labels, outlines=outlines, pixel_size_nm=px,
                         polarity=polarity, features=np.array(feats).reshape(len(rows), len(FEATURES)))


def measure_vesicles(image, pixel_size_nm: float | None = None, **kwargs) -> pd.DataFrame:
    """One row per vesicle (see :data:`VESICLE_COLUMNS`): ``detect_vesicles(...).table``."""
    return detect_vesicles(image, pixel_size_nm, **kwargs).table
