"""Regenerate the sample experiment in this folder (simulated, with ground truth).

    python sample_images/make_samples.py

Writes tem/<sample>/*.tif (+ tem/truth.csv), blots/<marker>.tif with
<marker>.lanes.csv (+ <marker>.truth.csv), nta/<sample>/ NTA exports
(NanoSight ExperimentSummary.csv for S1 and S2, ZetaView .txt for S3; truth in nta_truth.csv)
and experiment.toml. Deterministic: the same command always gives the same files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from exoimage.io import write_calibrated_tiff
from exoimage.simulate.blot import DEFAULT_LADDER_KDA, simulate_blot
from exoimage.simulate.nta import nanosight_summary, zetaview_txt
from exoimage.simulate.tem import SCENARIOS, TemScene, simulate_tem

HERE = Path(__file__).resolve().parent
# three EV preparations with different size distributions and marker contents
SAMPLES = {
    "S1": dict(median_diameter_nm=75.0, px=(1.0, 1.6), markers={"CD63": 1.0, "TSG101": 1.0, "calnexin": 0.05}),
    "S2": dict(median_diameter_nm=105.0, px=(1.2, 2.0), markers={"CD63": 1.8, "TSG101": 1.3, "calnexin": 0.05}),
    "S3": dict(median_diameter_nm=140.0, px=(1.5, 2.5), markers={"CD63": 0.6, "TSG101": 0.7, "calnexin": 0.6}),
}
MARKER_ROWS = {"CD63": ("cd63", 42.0, "smear", 1.0e6, 0.0),
               "TSG101": ("tsg101", 44.0, "sharp", 4.0e5, 3.0),
               "calnexin": ("calnexin", 90.0, "sharp", 4.0e5, 3.0)}


def make_tem(root: Path):
    truths = []
    for i, (s, cfg) in enumerate(SAMPLES.items()):
        d = root / "tem" / s
        d.mkdir(parents=True, exist_ok=True)
        for k, px in enumerate(cfg["px"]):
            scene = TemScene(shape=(512, 512), pixel_size_nm=px, **{**SCENARIOS["mixed"], "coverage": 0.2},
                             median_diameter_nm=cfg["median_diameter_nm"], diameter_spread=0.3)
            img, truth = simulate_tem(scene, seed=100 + 10 * i + k)
            name = f"field_{k + 1:02d}.tif"
            write_calibrated_tiff(d / name, img, px)
            truth.insert(0, "image", f"{s}/{name}")
            truth["pixel_size_nm"] = px
            truths.append(truth)
    pd.concat(truths, ignore_index=True).to_csv(root / "tem" / "truth.csv", index=False)


# NTA: hydrodynamic sizes somewhat larger than the TEM sizes of the same sample
NTA_REMARK = "simulated by exoimage.simulate.nta (sample_images/make_samples.py)"
NANOSIGHT = {
    "S1": dict(dilution=5000.0, conc_cell=(2.0e7, 2.15e7, 1.9e7), medians=(92.0, 95.0, 97.0), sigma=0.3),
    "S2": dict(dilution=2000.0, conc_cell=(1.6e7, 1.7e7, 1.5e7), medians=(122.0, 126.0, 124.0), sigma=0.3),
}
# S3 on a ZetaView: two measurements at 1:1000, one at 1:500 on a computer with a German locale
ZETAVIEW = {
    "S3_1000x_1": dict(dilution=1000.0, in_cell_per_ml=1.9e7, n_traces=1500, seed=31, comma=False),
    "S3_1000x_2": dict(dilution=1000.0, in_cell_per_ml=2.0e7, n_traces=1500, seed=32, comma=False),
    "S3_500x": dict(dilution=500.0, in_cell_per_ml=3.8e7, n_traces=1500, seed=33, comma=True),
}


def make_nta(root: Path):
    truths = []
    for s, cfg in NANOSIGHT.items():
        d = root / "nta" / s
        d.mkdir(parents=True, exist_ok=True)
        videos = [f"{s}_video_{k + 1:02d}" for k in range(len(cfg["medians"]))]
        data, truth = nanosight_summary(s, videos, sample_description=s, remarks=NTA_REMARK,
                                        conditions={"Particles per frame flag": ["OK"]}, **cfg)
        (d / f"{s}-ExperimentSummary.csv").write_bytes(data)
        truths.append(pd.DataFrame({"sample": s, "file": f"{s}/{s}-ExperimentSummary.csv", "video": truth.videos,
                                    "dilution": truth.dilution, "concentration_per_ml": truth.concentration_per_ml,
                                    "median_nm": truth.median_nm}))
    d = root / "nta" / "S3"
    d.mkdir(parents=True, exist_ok=True)
    for name, cfg in ZETAVIEW.items():
        data, truth = zetaview_txt(name, sample="S3", median_nm=170.0, sigma=0.4, **cfg)
        (d / f"{name}.txt").write_bytes(data)
        truths.append(pd.DataFrame({"sample": "S3", "file": f"S3/{name}.txt", "video": truth.videos,
                                    "dilution": truth.dilution, "concentration_per_ml": truth.concentration_per_ml,
                                    "median_nm": truth.median_nm}))
    pd.concat(truths, ignore_index=True).to_csv(root / "nta_truth.csv", index=False, float_format="%.6g")


def make_blots(root: Path):
    d = root / "blots"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    lanes = [("ladder", "")] + [(s, f"rep{r}") for s in SAMPLES for r in (1, 2)]
    for j, (marker, row) in enumerate(MARKER_ROWS.items()):
        loads = [SAMPLES[s]["markers"][marker] * rng.uniform(0.92, 1.08) for s, _ in lanes[1:]]
        sim = simulate_blot(n_lanes=len(lanes), height=420, seed=200 + j, rows=[row], loads=loads,
                            smile_px=3.0, noise=1.0, dust=2)
        tifffile.imwrite(d / f"{marker}.tif", sim.data, compression="zlib")
        sheet = pd.DataFrame({"lane": range(1, len(lanes) + 1), "sample": [s for s, _ in lanes],
                              "group": [g for _, g in lanes]})
        sheet.to_csv(d / f"{marker}.lanes.csv", index=False)
        sim.bands.assign(image=f"{marker}.tif").to_csv(d / f"{marker}.truth.csv", index=False)


CONFIG = """# Sample experiment (simulated): three EV preparations, TEM fields, three blots and NTA.
# Regenerate with: python sample_images/make_samples.py
[experiment]
name = "exoimage sample experiment (simulated)"
reference_sample = "S1"   # MISEV purity: markers against S1 (the simulated blots have no cell-lysate lane)

[samples.S1]
label = "S1 - small EVs"
protein_ug = 5.0      # ug protein per ml of the preparation (BCA), for particles per ug with NTA
[samples.S2]
label = "S2 - medium EVs"
protein_ug = 10.0
[samples.S3]
label = "S3 - large EVs, cell debris"
protein_ug = 40.0

[blots.CD63]
ladder_lane = 1
ladder_kda = [{ladder}]
[blots.TSG101]
ladder_lane = 1
ladder_kda = [{ladder}]
[blots.calnexin]
ladder_lane = 1
ladder_kda = [{ladder}]
"""


def main():
    make_tem(HERE)
    make_blots(HERE)
    make_nta(HERE)
    (HERE / "experiment.toml").write_text(CONFIG.format(ladder=", ".join(str(k) for k in DEFAULT_LADDER_KDA)))
    print(f"wrote the sample experiment to {HERE}")


if __name__ == "__main__":
    main()
