"""The per-vesicle ``confidence``: a logistic map of a few outline features, fitted on simulator truth.

``confidence`` estimates the probability that a detection is a real vesicle
(not precipitate, a granular patch, a fold, a noise outline or a duplicate).
It is ``1 / (1 + exp(-(b0 + b . x)))`` of the features :data:`FEATURES` of the
detection's outline (:func:`outline_features`):

* ``log_contrast``: log of the median edge strength (noise SDs);
* ``log_quality``: log of the weakest-fifth edge strength (noise SDs);
* ``coverage``: share of the angles with an edge;
* ``circularity``: 4 pi A / P^2 of the outline;
* ``second_look``: 1 when the outline was found on the band-passed image
  (the second look of :mod:`exoimage.tem.detect`), else 0.

The coefficients (:data:`CONFIDENCE_COEF`, :data:`CONFIDENCE_INTERCEPT`) were
fitted by :func:`fit_confidence` (maximum-likelihood logistic regression,
scipy, L2 penalty :data:`FIT_L2`) on detections of simulated fields whose
truth is known: every :data:`exoimage.simulate.tem_fields.FIELD_SCENARIOS`
scenario at each of its pixel sizes, seeds :data:`FIT_SEEDS`, quick field
sizes, detected with the rules loosened to ``min_contrast`` =
:data:`FIT_MIN_CONTRAST` (at the default 3 the simulator gives almost no false
detections, too few to learn from; the loosened run spans the faint, doubtful
outlines); a detection is "real" when
:func:`exoimage.simulate.tem_fields.match_detections` pairs it with a truth
vesicle. The features are in absolute noise units, so the same map applies
at any ``min_contrast`` (``coverage`` is counted at half the ``min_contrast``
in use). ``tests/test_tem_confidence.py`` checks the calibration on
held-out seeds: of the detections at confidence >= 0.9, at least 90 % are real.
The simulator is not a real micrograph: on real images the numbers mean what
they mean on the simulator, no more.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FEATURES", "outline_features", "confidence_from_features", "fit_confidence"]

#: the features, in the order of :data:`CONFIDENCE_COEF`
FEATURES = ("log_contrast", "log_quality", "coverage", "circularity", "second_look")
#: ratios below this are clipped before the log (an edge at or below zero)
LOG_FLOOR = 0.05
#: seeds of the fields the coefficients were fitted on (the test holds out others)
FIT_SEEDS = (1,)
#: the loosened edge-contrast rule of the fitting run (noise SDs; the default is 3)
FIT_MIN_CONTRAST = 1.5
#: L2 penalty of the fit (on the coefficients, not the intercept)
FIT_L2 = 1.0
#: fitted by fit_confidence() (see the module docstring): 1385 detections, 1143 real; on them,
#: of the 1103 at confidence >= 0.9, 99.9 % real; of the 1144 at >= 0.3, 99.2 %
CONFIDENCE_COEF = (2.4796, 3.5579, 0.3616, 0.5316, -0.0278)
CONFIDENCE_INTERCEPT = -6.0695


def outline_features(score: float, quality: float, coverage: float, circularity: float, second_look: bool,
                     min_contrast: float) -> np.ndarray:
    """The :data:`FEATURES` vector of one outline (edge strengths in noise SDs; ``min_contrast``
    is not used: the features are absolute)."""
    return np.array([np.log(max(score, LOG_FLOOR)), np.log(max(quality, LOG_FLOOR)),
                     float(coverage), float(min(1.0, circularity)), float(bool(second_look))])


def confidence_from_features(x, coef=CONFIDENCE_COEF, intercept=CONFIDENCE_INTERCEPT) -> np.ndarray:
    """Logistic map of feature rows ``x`` ((n, len(FEATURES)) or one row) to (0, 1)."""
    z = intercept + np.asarray(x, float) @ np.asarray(coef, float)
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def _fit_logistic(X: np.ndarray, y: np.ndarray, l2: float = FIT_L2):
    from scipy.optimize import minimize

    Xa = np.hstack([np.ones((len(X), 1)), X])

    def nll(w):
        z = Xa @ w
        return float(np.sum(np.logaddexp(0, z) - y * z) + l2 * np.sum(w[1:] ** 2))

    def grad(w):
        p = 1 / (1 + np.exp(-(Xa @ w)))
        g = Xa.T @ (p - y)
        g[1:] += 2 * l2 * w[1:]
        return g

    w = minimize(nll, np.zeros(Xa.shape[1]), jac=grad, method="L-BFGS-B").x
    return tuple(float(v) for v in w[1:]), float(w[0])


def label_detections(table, truth):
    """Which detections are real, and which are scored, against simulator truth.

    Returns ``(real, keep)``: boolean arrays over the rows of ``table``; ``real`` marks
    the detections matched one-to-one to a truth vesicle (``match_detections``), ``keep``
    the ones scored (not border-cut, unless matched).
    """
    from ..simulate.tem_fields import match_detections

    m = match_detections(table, truth)
    real = np.zeros(len(table), bool)
    for i, _ in m["pairs"]:
        real[i] = True
    keep = ~table["touches_border"].to_numpy(bool) | real
    return real, keep


def labelled_detections(seeds, scenarios=None, quick: bool = True, min_contrast: float | None = None):
    """(features (n, k), real (n,) bool, scenario per row) of the detections on simulated fields.

    Runs :func:`exoimage.tem.analyze_tem_image` (as every front end does) on
    :func:`exoimage.simulate.tem_fields.simulate_field` fields; border-cut
    detections are left out (they are not counted either way by the matcher).
    """
    import pandas as pd

    from ..io import Image
    from ..simulate.tem_fields import FIELD_SCENARIOS, simulate_field
    from .detect import detect_vesicles
    from .pipeline import _annotation_mask

    X, y, where = [], [], []
    for sc, spec in FIELD_SCENARIOS.items():
        if scenarios is not None and sc not in scenarios:
            continue
        for px in spec.pixel_sizes:
            for seed in seeds:
                img, truth = simulate_field(sc, px, seed=seed, quick=quick)
                im = Image(data=img, pixel_size_nm=px)
                kw = {} if min_contrast is None else {"min_contrast": min_contrast}
                res = detect_vesicles(im, exclude_mask=_annotation_mask(im), **kw)
                real, keep = label_detections(res.table, truth)
                X.append(res.features[keep])
                y.append(real[keep])
                where += [f"{sc}@{px}"] * int(keep.sum())
    if not X:
        return np.zeros((0, len(FEATURES))), np.zeros(0, bool), pd.Series([], dtype=str)
    return np.vstack(X), np.concatenate(y), pd.Series(where)


def fit_confidence(seeds=FIT_SEEDS, scenarios=None):
    """(coef, intercept) of the logistic map fitted on the detections of simulated fields ``seeds``."""
    X, y, _ = labelled_detections(seeds, scenarios, min_contrast=FIT_MIN_CONTRAST)
    return _fit_logistic(X, y.astype(float))
