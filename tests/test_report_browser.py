"""Issue 18: the sample experiment's report as a reader sees it, in headless Chromium (Playwright
driving the system's Chromium), and its PDF printed by the same engine.

Skips when Chromium or Playwright is absent (.ci/run installs both)."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from exoimage.experiment import load_experiment
from exoimage.experiment.report import CATEGORIES, find_browser, write_pdf
from exoimage.experiment.run import run_experiment

SAMPLES = Path(__file__).resolve().parents[1] / "sample_images"
EVIL_LABEL = "<script>alert(1)</script>"           # a sample's label (experiment.toml)
EVIL_LANE = "<b onmouseover=alert(3)>S3b</b>"       # a lane sheet's sample name (a sample of its own)
EVIL_NAME = "sample <img src=x onerror=alert(2)>"   # the experiment's name (the page title)
#: A4 width (210 mm) less the print stylesheet's 10 mm side margins, in CSS px (96 per inch)
A4_CONTENT_PX = round((210 - 2 * 10) / 25.4 * 96)
#: a unit in a figure's axis label: "diameter (nm)", "probability density (1/nm)", "(kDa)", "(ratio)"
UNIT = re.compile(r"\([^()]*\)")

#: what each figure / micrograph tells the page (see exoimage.experiment.report FigurePNG, _micrograph)
INFO_JS = """() => ({
  first_section: document.querySelector('body section').id,
  first_h2: document.querySelector('body h2').textContent,
  scroll_w: document.documentElement.scrollWidth, inner_w: innerWidth,
  too_wide: Array.from(document.querySelectorAll('img, table')).filter(
      e => e.getBoundingClientRect().right > innerWidth + 0.5).map(e => e.tagName + ' ' + (e.alt || '')),
  imgs: Array.from(document.images).map(i => ({alt: i.alt, src: i.src, axes: i.dataset.axes || null,
      bar_nm: i.dataset.scaleBarNm || null, nm_per_px: i.dataset.nmPerPx || null,
      in_gallery: i.closest('#tem .gallery') !== null, ok: i.complete && i.naturalWidth > 0})),
  n_scripts: document.scripts.length,
  text: document.body.innerText, title: document.title,
  bold_s3b: Array.from(document.querySelectorAll('b')).filter(b => b.textContent === 'S3b').length,
})"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    try:
        chromium = find_browser()
    except Exception as exc:  # noqa: BLE001 - the reason is the skip message
        pytest.skip(f"no Chromium to render the report ({exc}); .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e .[test])")
    tmp = tmp_path_factory.mktemp("report_browser")
    root = tmp / "exp"
    shutil.copytree(SAMPLES, root, ignore=shutil.ignore_patterns("*.py", "*.truth.csv", "nta_truth.csv",
                                                                 "blot_examples"))
    toml = (root / "experiment.toml").read_text()
    toml = re.sub(r'name = ".*"', f'name = "{EVIL_NAME}"', toml, count=1)
    toml = toml.replace('label = "S2 - medium EVs"', f'label = "{EVIL_LABEL}"')
    (root / "experiment.toml").write_text(toml)
    sheet = root / "blots" / "CD63.lanes.csv"
    sheet.write_text(sheet.read_text().replace("7,S3,rep2", f"7,{EVIL_LANE},rep2"))
    out = tmp / "out"
    res = run_experiment(load_experiment(root), out, workers=0, progress=False)
    pdf = write_pdf(out / "report.html")
    errors, dialogs = [], []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1024, "height": 800})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto((out / "report.html").as_uri())
        screen = page.evaluate(INFO_JS)
        # the print layout at the width of an A4 page's text
        printed = browser.new_page(viewport={"width": A4_CONTENT_PX, "height": 1000})
        printed.emulate_media(media="print")
        printed.goto((out / "report.html").as_uri())
        print_info = printed.evaluate(INFO_JS)
        browser.close()
    return {"res": res, "screen": screen, "print": print_info, "errors": errors, "dialogs": dialogs, "pdf": pdf}


def test_verdict_block_first(rendered):
    s = rendered["screen"]
    assert s["first_section"] == "verdict" and s["first_h2"] == "Verdict"
    verdict = s["text"][s["text"].index("Verdict"):s["text"].index("Summary")]
    assert "FAIL S3" in verdict and "MISEV: purity" in verdict  # calnexin ~10x S1 in S3
    s3 = rendered["res"]["tables"]["samples"].set_index("sample").loc["S3"]
    assert s3["qc_status"] == "FAIL" and "MISEV: purity (enrichment vs reference)" in s3["qc_reason"]
    assert "Measured: TEM vesicle size; Western blot (CD63, TSG101, calnexin); NTA" in verdict
    assert "Not measured" not in verdict


@pytest.mark.parametrize("layout", ["screen", "print"])
def test_nothing_wider_than_the_page(rendered, layout):
    s = rendered[layout]
    assert s["scroll_w"] <= s["inner_w"], f"the page scrolls sideways ({s['scroll_w']} > {s['inner_w']} px)"
    assert s["too_wide"] == []


def test_every_figure_has_axis_labels_with_units(rendered):
    imgs = rendered["screen"]["imgs"]
    assert all(i["ok"] for i in imgs)
    plots = [i for i in imgs if not i["bar_nm"]]
    # per-sample histograms, all-sample KDEs, NTA vs TEM, three blot overlays, marker signal
    assert len(plots) >= 7, [i["alt"] for i in plots]
    for img in plots:
        assert img["axes"], f"figure without axes labels: {img['alt']}"
        for panel in img["axes"].split(" ; "):
            x, y = panel.split(" | ")
            for label in (x, y):
                name = label.removeprefix(CATEGORIES)
                assert name.strip(), f"{img['alt']}: an axis without a label ({panel})"
                if not label.startswith(CATEGORIES):  # a numeric axis states its unit
                    assert UNIT.search(name), f"{img['alt']}: axis '{name}' has no unit"
    blots = [i for i in plots if "lanes and bands" in i["alt"]]
    assert len(blots) == 3
    assert all("molecular weight (kDa)" in i["axes"] and "lane: sample" in i["axes"] for i in blots)


def _white_run(png_b64: str) -> int:
    """The longest horizontal run of white (scale-bar) pixels in the picture's lower left quarter."""
    import cv2

    img = cv2.imdecode(np.frombuffer(base64.b64decode(png_b64), np.uint8), cv2.IMREAD_COLOR)
    h, w = img.shape[:2]
    white = (img[h * 3 // 4:, : w // 2] >= 235).all(axis=2)
    best = 0
    for row in white:
        edges = np.flatnonzero(np.diff(np.r_[0, row.astype(np.int8), 0]))
        if len(edges):
            best = max(best, int((edges[1::2] - edges[::2]).max()))
    return best


def test_scale_bars_on_micrographs(rendered):
    micro = [i for i in rendered["screen"]["imgs"] if i["in_gallery"]]
    assert len(micro) == 12  # 6 fields, each wide field + close-up
    for img in micro:
        assert img["bar_nm"], f"micrograph without a scale bar: {img['alt']}"
        assert f"scale bar {img['bar_nm']} nm" in img["alt"]
        expect = float(img["bar_nm"]) / float(img["nm_per_px"])   # the bar's length in picture pixels
        got = _white_run(img["src"].split(",", 1)[1])
        assert abs(got - expect) <= max(2.0, 0.1 * expect), f"{img['alt']}: bar {got} px, expected {expect:.1f}"


def test_user_text_is_escaped_and_never_runs(rendered):
    s = rendered["screen"]
    assert rendered["dialogs"] == []
    assert s["n_scripts"] == 0
    assert EVIL_LABEL in s["text"] and EVIL_LANE in s["text"]   # shown as text
    assert s["title"] == f"exoimage QC report: {EVIL_NAME}"
    assert s["bold_s3b"] == 0                                   # the lane's <b> is not an element
    assert all(i["src"].startswith("data:image/png;base64,") for i in s["imgs"])  # no injected <img src=x>


def test_no_console_errors(rendered):
    assert rendered["errors"] == []


def test_pdf_pages(rendered):
    pypdf = pytest.importorskip("pypdf", reason="pypdf not installed (pip install -e .[test])")
    reader = pypdf.PdfReader(rendered["pdf"])
    assert len(reader.pages) > 1
    w, h = (float(v) for v in reader.pages[0].mediabox.upper_right)
    assert abs(w - 595.3) < 2 and abs(h - 841.9) < 2  # A4 in points
    first = reader.pages[0].extract_text()
    assert "Verdict" in first and "S3" in first and "FAIL" in first
    assert "Provenance" not in first
    text = [p.extract_text() for p in reader.pages]
    # every section starts a page of its own (print stylesheet), in page order
    starts = [next(i for i, t in enumerate(text) if t.lstrip().startswith(h2) or f"\n{h2}\n" in t)
              for h2 in ("QC checks", "TEM: vesicle size", "NTA: particle concentration", "Western blots",
                         "Provenance")]
    assert starts == sorted(starts) and starts[0] >= 1 and len(set(starts)) == 5
