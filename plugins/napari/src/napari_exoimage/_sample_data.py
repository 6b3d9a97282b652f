"""Sample data from exoimage's simulators (generated locally, nothing downloaded)."""

from __future__ import annotations

from exoimage.io import Image
from exoimage.simulate.blot import scenario
from exoimage.simulate.tem import SCENARIOS, TemScene, simulate_tem

from ._common import image_layer_kwargs

TEM_SHAPE = (1024, 1024)
TEM_PIXEL_NM = 1.0
TEM_SEED = 7
BLOT_SEED = 1


def make_tem(shape=TEM_SHAPE, pixel_size_nm=TEM_PIXEL_NM, seed=TEM_SEED, scenario_name="mixed"):
    """(Image, truth table) of a simulated negative-stain field."""
    data, truth = simulate_tem(TemScene(shape=tuple(shape), pixel_size_nm=pixel_size_nm,
                                        **SCENARIOS[scenario_name]), seed=seed)
    img = Image(data=data, pixel_size_nm=pixel_size_nm, pixel_size_source="simulated",
                path=None, file_format="array")
    return img, truth


def make_blot(seed=BLOT_SEED, name="saturated"):
    """The simulator's blot (ladder in lane 1, two over-exposed lanes) and its truth."""
    return scenario(name, seed=seed)


def sample_tem():
    img, truth = make_tem()
    kw = image_layer_kwargs(img, name="simulated TEM", meta={"truth": truth})
    return [(img.data, kw, "image")]


def sample_blot():
    sim = make_blot()
    img = Image(data=sim.data, path=None, file_format="array")
    kw = image_layer_kwargs(img, name="simulated blot",
                            meta={"truth_bands": sim.bands, "truth_lanes": sim.lanes,
                                  "ladder_kda": sim.settings.get("ladder_kda")})
    # chemiluminescence counts: bands are bright in the raw values; show them dark on
    # white as imager software does (display only; the data stay the raw counts)
    kw["colormap"] = "gray_r"
    return [(sim.data, kw, "image")]
