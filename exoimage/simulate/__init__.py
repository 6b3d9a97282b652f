"""Simulators with known ground truth, for tests, benchmarks and sample data.

- :func:`exoimage.simulate.tem.simulate_tem`: negative-stain TEM fields of vesicles.
- :mod:`exoimage.simulate.blot`: Western blots with known band volumes.
"""
