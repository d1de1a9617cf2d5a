"""The sandbox's main job -- the README's first command -- with this interpreter, checked as documented.

It runs the whole built-in suite against the sandbox reproducing the incident, writing every report, and
fails unless pytest exits 1 (the sandbox's service is broken), every report is written and the results
name the incident: DNS and api-health fail, the application sections are BLOCKED by api-health.
Usage: ``python .ci/main_job.py`` (from the checkout; prints the seconds it took).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="reachability-main-job-") as folder:
        out = Path(folder)
        reports = {
            "html": out / "report.html",
            "incident": out / "incident.md",
            "json": out / "results.json",
            "junit": out / "junit.xml",
        }
        command = [
            sys.executable,
            "-m",
            "pytest",
            "--sandbox",
            "incident-2025-12-08",
            f"--html={reports['html']}",
            "--self-contained-html",
            f"--incident-report={reports['incident']}",
            f"--results-json={reports['json']}",
            f"--junitxml={reports['junit']}",
            "-p",
            "no:cacheprovider",
        ]
        started = time.monotonic()
        completed = subprocess.run(command, cwd=CHECKOUT, capture_output=True, text=True, timeout=600)
        seconds = time.monotonic() - started
        output = completed.stdout + completed.stderr
        problems = []
        if completed.returncode != 1:
            problems.append(
                f"pytest exited {completed.returncode}, expected 1 (the incident's service is broken)"
            )
        for name, path in reports.items():
            if not path.is_file() or path.stat().st_size == 0:
                problems.append(f"the {name} report {path.name} was not written")
        if not problems:
            sections = json.loads(reports["json"].read_text())["sections"]
            for name, status in (
                ("dns", "FAIL"),
                ("api-health", "FAIL"),
                ("database", "BLOCKED"),
                ("cluster", "PASS"),
            ):
                if sections.get(name, {}).get("status") != status:
                    problems.append(
                        f"section {name}: {sections.get(name, {}).get('status')}, expected {status}"
                    )
            if not list(ET.parse(reports["junit"]).iter("testcase")):
                problems.append("the JUnit XML has no test case")
            if "INC-" not in reports["incident"].read_text():
                problems.append("the incident report has no incident id")
        if problems:
            print(output[-4000:], file=sys.stderr)
            for problem in problems:
                print(f"main job: {problem}", file=sys.stderr)
            return 1
        print(f"main job: exit 1 as expected, four reports written, incident named ({seconds:.1f}s)")
        return 0


if __name__ == "__main__":
    sys.exit(main())
