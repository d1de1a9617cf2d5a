"""Regenerate the screenshots of docs/reports.md: the built-in suite against two sandbox scenarios, the
pytest-html report opened in headless Chromium (the same DevTools driver the HTML tests use).

    python docs/screenshots.py          # writes docs/images/report-*.png
"""

from __future__ import annotations

import base64
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_diagnosis_rules import run_builtin_suite  # noqa: E402
from test_report_html import DevTools, load_page  # noqa: E402

IMAGES = ROOT / "docs" / "images"
WIDTH = 1280


def run_suite(folder: Path, scenario: str) -> Path:
    """The built-in suite (a copy, run from ``folder``) against a sandbox scenario; the HTML report's path."""
    folder.mkdir()
    run_builtin_suite(folder, f"--sandbox={scenario}", "--html=report.html", "--self-contained-html", "-q")
    return folder / "report.html"


def capture(browser: DevTools, path: Path, top: str, bottom: str) -> None:
    """A clip of the page from the top of one element to the bottom of another (JavaScript expressions)."""
    box = browser.evaluate(f"""(() => {{
        const y = (element, edge) => element.getBoundingClientRect()[edge] + window.scrollY;
        return [y({top}, 'top'), y({bottom}, 'bottom')];
    }})()""")
    start, end = max(0, box[0] - 8), box[1] + 8
    shot = browser.call(
        "Page.captureScreenshot",
        format="png",
        captureBeyondViewport=True,
        clip={"x": 0, "y": start, "width": WIDTH, "height": end - start, "scale": 1},
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"{path.relative_to(ROOT)}: {WIDTH}x{int(end - start)}")


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reachability-screenshots-") as folder:
        incident = run_suite(Path(folder) / "incident", "incident-2025-12-08")
        healthy = run_suite(Path(folder) / "healthy", "healthy-https")
        first = "document.querySelector"
        nth = "document.querySelectorAll"
        browser = load_page(incident)
        try:
            capture(
                browser,
                IMAGES / "report-incident-summary.png",
                f"{first}('#title')",
                f"[...{nth}('details.reachability-theory')].pop()",
            )
            # The filters and the failed rows: each opens with
            # its message, then its probes, then the traceback.
            capture(
                browser,
                IMAGES / "report-incident-rows.png",
                f"{first}('.controls')",
                f"{nth}('tbody.failed')[3]",
            )
            capture(
                browser,
                IMAGES / "report-incident-blocked.png",
                f"{first}('tbody.blocked')",
                f"{nth}('tbody.blocked')[2]",
            )
        finally:
            browser.close()
        browser = load_page(healthy)
        try:
            capture(browser, IMAGES / "report-healthy.png", f"{first}('#title')", f"{first}('.controls')")
        finally:
            browser.close()


if __name__ == "__main__":
    main()
