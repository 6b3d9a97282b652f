"""Simulators with known ground truth, for tests, benchmarks and sample data.

- :func:`exoimage.simulate.tem.simulate_tem`: negative-stain TEM fields of vesicles.
- :func:`exoimage.simulate.tem_fields.simulate_field`: the harder TEM preparations of issue 13
  (small, dense, wide-range, dark-on-grain, granular caps, stain pools, lobed, confounders),
  scored by :func:`~exoimage.simulate.tem_fields.match_detections`; the textbook recipe to
  compare with is :func:`exoimage.simulate.baselines.textbook_tem`.
- :mod:`exoimage.simulate.blot`: Western blots with known band volumes.
"""
