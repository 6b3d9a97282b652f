"""The ``confidence`` column is calibrated on held-out simulated fields (truth known)."""

import numpy as np
import pytest

from exoimage.io import Image
from exoimage.simulate.tem_fields import simulate_field
from exoimage.tem import TemParams, analyze_tem_image, detect_vesicles
from exoimage.tem.confidence import (FEATURES, FIT_MIN_CONTRAST, FIT_SEEDS, confidence_from_features,
                                     label_detections)

#: held-out cells (scenario, nm/px) with doubtful objects: lobed particles with a speckled
#: background, precipitate / crystal / text, and a wide size range with ghosts and precipitate
CELLS = [("lobed", 1.0), ("confounders", 1.0), ("wide_range", 2.4)]
HELD_OUT_SEED = max(FIT_SEEDS) + 1


def _labelled(min_contrast):
    conf, real = [], []
    for sc, px in CELLS:
        img, truth = simulate_field(sc, px, seed=HELD_OUT_SEED, quick=True)
        res = analyze_tem_image(Image.from_array(img, px), params=TemParams(min_contrast=min_contrast))
        t = res.vesicles
        ok, keep = label_detections(t, truth)
        conf.append(t["confidence"].to_numpy(float)[keep])
        real.append(ok[keep])
    return np.concatenate(conf), np.concatenate(real)


@pytest.fixture(scope="module")
def loose():
    """Detections with the edge rule loosened as in the fit (false ones among them)."""
    return _labelled(FIT_MIN_CONTRAST)


def test_high_confidence_is_mostly_real(loose):
    conf, real = loose
    hi = conf >= 0.9
    assert hi.sum() >= 20
    assert real[hi].mean() >= 0.9, (int(hi.sum()), float(real[hi].mean()))


def test_confidence_separates_false_detections(loose):
    conf, real = loose
    assert (~real).sum() >= 10  # the held-out cells do hold false detections to separate
    lo = conf < 0.5
    assert lo.sum() >= 5
    # low confidence is mostly false, and most false detections have low confidence
    assert real[lo].mean() < 0.5, float(real[lo].mean())
    assert (conf[~real] < 0.5).mean() >= 0.6, float((conf[~real] < 0.5).mean())


def test_confidence_column_is_the_logistic_map_of_the_features():
    img, _ = simulate_field("small_evs", 2.0, seed=HELD_OUT_SEED, quick=True)
    res = detect_vesicles(img, 2.0)
    assert res.features.shape == (len(res.table), len(FEATURES))
    np.testing.assert_allclose(res.table["confidence"], confidence_from_features(res.features), atol=1e-4)
    assert ((res.table.confidence > 0) & (res.table.confidence < 1)).all()
