"""Regenerate the README's screenshots of the QC report (docs/report/*.png).

    exoimage run sample_images --out /tmp/sample-report
    python docs/report/screenshots.py /tmp/sample-report/report.html

Needs Playwright and Chromium (the test extras; EXOIMAGE_BROWSER or chromium on PATH).
"""

import io
import sys
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from exoimage.experiment.report import find_browser

HERE = Path(__file__).resolve().parent
WIDTH = 1024  # CSS px: the width the report test checks
#: (file, CSS selector, device scale): the whole page small, the sections at full size
SHOTS = [("report_page.png", None, 0.5), ("verdict.png", "#verdict", 1),
         ("qc_table.png", "#qc", 1), ("tem_histograms.png", "#tem img[alt^='per-sample']", 1),
         ("tem_gallery.png", "#tem .gallery", 1), ("blot_overlay.png", "#blots .gallery figure", 1)]


def _save(png: bytes, path: Path) -> None:
    img = Image.open(io.BytesIO(png)).convert("RGB")
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main(report: str) -> None:
    uri = Path(report).resolve().as_uri()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_browser(), args=["--no-sandbox", "--disable-gpu"])
        for name, sel, scale in SHOTS:
            page = browser.new_page(viewport={"width": WIDTH, "height": 900}, device_scale_factor=scale)
            page.goto(uri)
            png = page.screenshot(full_page=True) if sel is None else page.locator(sel).first.screenshot()
            _save(png, HERE / name)
            page.close()
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1])
