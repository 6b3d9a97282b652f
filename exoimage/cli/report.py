"""``exoimage report RESULTS_DIR --pdf``: print the QC report of a finished run to ``report.pdf``.

Exit status: 0 when the PDF was written; 1 when it could not be (no browser, the print
failed); 2 when RESULTS_DIR holds no report.html.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .run import add_pdf_options, print_pdf


def add_parser(sub):
    p = sub.add_parser(
        "report", help="print the QC report of a finished run to PDF",
        description="Write RESULTS_DIR/report.pdf from RESULTS_DIR/report.html (the output folder of "
                    "`exoimage run`), printed by headless Chromium with the report's print layout (A4). "
                    "The HTML is not re-rendered: rerun `exoimage run` (finished images are reused) for that.")
    p.add_argument("results", type=Path, metavar="RESULTS_DIR", help="output folder of exoimage run")
    add_pdf_options(p, required=True)
    return p


def run(args) -> int:
    html = args.results / "report.html"
    if not html.is_file():
        print(f"exoimage report: {html}: no report here (write one with exoimage run)", file=sys.stderr)
        return 2
    return print_pdf("report", html, args.browser)
