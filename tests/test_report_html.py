"""pytest-html: section and "blocked by" columns, the probe waterfall extra, the summary block -- and the
self-contained report opened in headless Chromium (DevTools protocol) with no console errors."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest
from test_diagnosis_rules import http_probe, run_builtin_suite

from pytest_reachability.report import html as html_report
from pytest_reachability.results import RunResults, TestResult

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]


def test_waterfall_is_svg_with_phases_in_order():
    svg = html_report.waterfall_svg({"dns": 2.0, "connect": 1.0, "tls": 3.0, "ttfb": 4.0, "total": 10.0})
    root = ElementTree.fromstring(svg)
    rects = [r for r in root.iter("{http://www.w3.org/2000/svg}rect")]
    assert [r.find("{http://www.w3.org/2000/svg}title").text for r in rects] == [
        "dns 2.0 ms",
        "connect 1.0 ms",
        "tls 3.0 ms",
        "ttfb 4.0 ms",
    ]
    starts = [float(r.get("x")) for r in rects]
    widths = [float(r.get("width")) for r in rects]
    assert starts == sorted(starts)
    for index in range(1, len(rects)):  # each phase starts where the previous one ended
        assert starts[index] == pytest.approx(starts[index - 1] + widths[index - 1], abs=0.11)
    plain = ElementTree.fromstring(
        html_report.waterfall_svg({"dns": 1.0, "tls": 0.0, "ttfb": 1.0}, tls=False)
    )
    assert len(list(plain.iter("{http://www.w3.org/2000/svg}rect"))) == 2


def test_probe_extra_and_cells_are_escaped_plain_data():
    probe = {**http_probe("127.0.10.57", "empty_reply", source="dns"), "path": "/health?<x>"}
    extras = html_report.probe_extras([{"kind": "http_probe", "data": probe}, {"kind": "dns", "data": {}}])
    assert len(extras) == 1 and extras[0]["format_type"] == "html"
    json.dumps(extras)  # plain data: survives xdist
    assert (
        "&lt;x&gt;" in extras[0]["content"]
        and "curl -v --resolve 97v.test:80:127.0.10.57" in extras[0]["content"]
    )
    assert html_report.row_cells("dns", "api-<gate>") == [
        '<td class="col-section">dns</td>',
        '<td class="col-blocked_by">BLOCKED by api-&lt;gate&gt;</td>',
    ]


def test_summary_block_lists_sections_and_theories():
    results = RunResults()
    results.tests["a"] = TestResult("a", section="api-health", outcome="failed")
    results.tests["b"] = TestResult("b", section="database", outcome="blocked", blocked_by="api-health")
    from pytest_reachability.diagnosis import Theory

    block = html_report.summary_html(
        results, [Theory("r", "title <b>", 0.5, ["e"], ["c"], ["f"])], {"newly_failing": ["a"]}
    )
    assert "Health score: 0%" in block and "BLOCKED by api-health" in block
    assert "title &lt;b&gt;" in block and "newly failing" in block
    assert "2 tests: 0 passed, 1 failed, 1 blocked, 0 skipped" in block


def test_pytest_html_script_gets_the_blocked_result():
    """The installed pytest-html's page script has the result
    list the Blocked filter extends; the change is exact."""
    from importlib import resources

    assert html_report.blocked_result_supported()
    script = (resources.files("pytest_html") / "resources" / "app.js").read_text()
    page = f'<p class="run-count">27 tests took 00:00:03.</p><script>{script}</script>'
    patched = html_report.add_blocked_result(page, {"passed": 23, "failed": 4, "blocked": 10, "skipped": 8})
    assert (
        "    'skipped',\n    'blocked',\n" in patched
        and "'XPassed', 'Blocked', 'Skipped', 'Passed']" in patched
    )
    assert '<p class="run-count">45 tests (27 ran, 10 blocked, 8 skipped) took 00:00:03.</p>' in patched
    assert len(patched) - len(page) < 120  # nothing else changed
    outcomes = {
        "failed": {"label": "Failed", "value": 4},
        "skipped": {"label": "Skipped", "value": 18},
        "error": {},
    }
    html_report.add_blocked_outcome(outcomes)
    assert list(outcomes) == ["failed", "skipped", "blocked", "error"]
    html_report.move_blocked_count(outcomes, 10)
    assert outcomes["skipped"]["value"] == 8 and outcomes["blocked"]["value"] == 10


def test_probe_extras_draw_a_shared_probe_once():
    bare = http_probe("127.0.10.57", "empty_reply")
    sourced = {**bare, "source": "dns"}
    extras = html_report.probe_extras(
        [{"kind": "http_probe", "data": bare}, {"kind": "http_probe", "data": sourced}]
    )
    assert len(extras) == 1 and "via DNS answer" in extras[0]["content"]


# --------------------------------------------------------------------------- headless Chromium


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required in CI (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found


class DevTools:
    """Headless Chromium driven over the DevTools protocol:
    load a page, read the DOM, collect console errors."""

    def __init__(self, binary: str, timeout: float = 30.0) -> None:
        import websocket

        self.profile = tempfile.mkdtemp(prefix="reachability-chromium-")
        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.deadline = time.monotonic() + timeout
        port_file = Path(self.profile) / "DevToolsActivePort"
        while not (port_file.exists() and port_file.read_text().strip()):
            self._check_time("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages: list[dict[str, Any]] = []
        while not pages:
            self._check_time("Chromium offered no page target")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
                pages = [t for t in json.load(response) if t.get("type") == "page"]
            time.sleep(0.05)
        self.socket = websocket.create_connection(
            pages[0]["webSocketDebuggerUrl"], timeout=10, suppress_origin=True
        )
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _check_time(self, message: str) -> None:
        if time.monotonic() > self.deadline or self.process.poll() is not None:
            self.close()
            raise AssertionError(message)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            self._check_time(f"no answer to {method}")
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for_event(self, method: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self._check_time(f"no {method} event")
            self.events.append(json.loads(self.socket.recv()))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def console_errors(self) -> list[str]:
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", []))
                )
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                errors.append(
                    details.get("exception", {}).get("description") or details.get("text", "exception")
                )
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                errors.append(params["entry"].get("text", ""))
        return errors

    def close(self) -> None:
        socket = getattr(self, "socket", None)
        if socket is not None:
            socket.close()
            self.socket = None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)


def load_page(path: Path, height: int = 2400) -> DevTools:
    """Headless Chromium with ``path`` loaded and pytest-html's
    rows built (console and log events recorded)."""
    browser = DevTools(chromium_binary())
    try:
        browser.call("Runtime.enable")
        browser.call("Log.enable")
        browser.call("Page.enable")
        browser.call(
            "Emulation.setDeviceMetricsOverride", width=1280, height=height, deviceScaleFactor=1, mobile=False
        )
        browser.call("Page.navigate", url=path.resolve().as_uri())
        browser.wait_for_event("Page.loadEventFired")
        # pytest-html builds the rows with JavaScript after load: wait until they are in the DOM.
        for _ in range(100):
            if browser.evaluate("document.querySelectorAll('#results-table tbody').length") > 0:
                break
            time.sleep(0.05)
    except BaseException:
        browser.close()
        raise
    return browser


def open_in_chromium(path: Path, screenshot: Path) -> tuple[DevTools, str]:
    browser = load_page(path)
    try:
        shot = browser.call("Page.captureScreenshot", format="png")
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        dom = browser.evaluate("document.documentElement.outerHTML")
    except BaseException:
        browser.close()
        raise
    return browser, dom


def test_console_errors_are_seen_by_the_check(tmp_path):
    """The check itself can fail: a page with a console error and an exception is caught."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<html><body><table id='results-table'><tbody></tbody></table>"
        "<script>console.error('boom'); missingFunction();</script></body></html>"
    )
    browser, dom = open_in_chromium(page, tmp_path / "bad.png")
    try:
        errors = browser.console_errors()
    finally:
        browser.close()
    assert any("boom" in e for e in errors) and any("missingFunction" in e for e in errors), errors


@pytest.fixture(scope="module")
def html_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("html")
    run = run_builtin_suite(
        workdir,
        "--sandbox",
        "incident-2025-12-08",
        "--html",
        "report.html",
        "--self-contained-html",
        "--results-json",
        "r.json",
        "-q",
        "-n",
        "2",
    )
    return run, workdir


def test_html_report_opens_in_chromium_with_theories_and_blocked_rows(html_run):
    run, workdir = html_run
    assert run.returncode == 1, run.stdout[-3000:]
    data = json.loads((workdir / "r.json").read_text())
    browser, dom = open_in_chromium(workdir / "report.html", workdir / "report.png")
    try:
        errors = browser.console_errors()
        page = browser.evaluate("""(() => {
            const all = (css) => [...document.querySelectorAll(css)];
            return {
              title: document.title,
              heading: document.querySelector('#title').textContent,
              verdict: document.querySelector('.reachability-verdict').textContent,
              header: Object.fromEntries(all('.reachability-run tr')
                .map(tr => [tr.cells[0].textContent, tr.cells[1].textContent])),
              titles: all('.reachability-theory > summary > b').map(b => b.textContent),
              open: all('details.reachability-theory').map(d => d.open),
              blockedCells: all('td.col-blocked_by')
                .filter(td => td.textContent.startsWith('BLOCKED by')).length,
              blockedResults: all('tbody.blocked td.col-result').map(td => td.textContent),
              skippedRows: all('tbody.skipped').length,
              filters: all('.filters span').map(s => s.textContent.trim()),
              runCount: document.querySelector('p.run-count').textContent,
              headers: all('#results-table th').map(th => th.textContent.trim()),
              sections: all('td.col-section').map(td => td.textContent),
              waterfalls: all('svg.reachability-waterfall rect').length,
              curls: all('pre.reachability-curl').map(p => p.textContent),
              health: document.querySelector('.reachability-health').textContent,
            };
        })()""")
        # Each failed row opens with its one-line message, before the probes and the traceback.
        failed_rows = browser.evaluate("""[...document.querySelectorAll('tbody.failed')].map(body => {
            const extra = body.querySelector('td.extra');
            const first = extra.querySelector('.extraHTML > div > *');
            return {message: first ? first.className + '|' + first.textContent : '',
                    probes: [...extra.querySelectorAll('.reachability-probe p')].map(
                        p => p.textContent.replace(/ via (DNS answer|LoadBalancer \\S+|address) /, ' '))};
        })""")
        # The Blocked box hides BLOCKED rows only; Skipped ones stay.
        browser.evaluate("document.querySelector('input[data-test-result=blocked]').click()")
        after_click = browser.evaluate(
            "[document.querySelectorAll('tbody.blocked').length,"
            " document.querySelectorAll('tbody.skipped').length]"
        )
    finally:
        browser.close()
    assert errors == [], errors
    blocked = sum(1 for t in data["tests"] if t["outcome"] == "blocked")
    skipped = sum(1 for t in data["tests"] if t["outcome"] == "skipped")
    target = data["run"]["target"]
    assert page["title"] == page["heading"] == f"Reachability: {target}"
    assert page["verdict"].startswith(
        "UNREACHABLE from outside: DNS 97v.test → 127.0.10.57 → empty reply (curl 52)"
    )
    assert page["header"]["target"] == target and page["header"]["namespace"] == "production"
    assert page["header"]["context"] == "sandbox" and page["header"]["exit status"] == "1 (tests failed)"
    assert page["header"]["sandbox"].startswith(
        "incident-2025-12-08: its resolvers, ports and API closed with the run"
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page["header"]["started"])
    assert re.fullmatch(r"\d+\.\d s", page["header"]["duration"])
    assert page["titles"] == [t["title"] for t in data["theories"]]
    assert page["titles"][0].startswith("the DNS A record for 97v.test points at 127.0.10.57")
    assert page["open"] == [True] + [False] * (len(page["open"]) - 1)  # cause 1 open, the others folded
    assert page["blockedCells"] == blocked > 0
    assert page["blockedResults"] == ["Blocked"] * blocked and page["skippedRows"] == skipped
    assert f"{skipped} Skipped," in page["filters"] and f"{blocked} Blocked," in page["filters"]
    assert page["filters"].index(f"{blocked} Blocked,") == page["filters"].index(f"{skipped} Skipped,") + 1
    assert (
        page["runCount"].startswith(f"{len(data['tests'])} tests (")
        and f"{blocked} blocked, {skipped} skipped" in page["runCount"]
    )
    assert after_click == [0, skipped]
    assert "section" in page["headers"] and "blocked by" in page["headers"]
    assert "api-health" in page["sections"] and "database" in page["sections"]
    assert page["waterfalls"] > 0
    assert any("--resolve 97v.test:" in c and ":127.0.10.57 " in c for c in page["curls"]), page["curls"]
    assert f"Health score: {data['health_score']}%" in page["health"]
    reasons = {t["reason"] for t in data["tests"] if t["outcome"] == "failed"}
    assert len(failed_rows) == len(reasons) > 0
    for row in failed_rows:
        kind, _, message = row["message"].partition("|")
        assert kind == "reachability-message" and message in reasons, row
        assert len(row["probes"]) == len(set(row["probes"])), row["probes"]  # each probe drawn once
    assert "reachability-summary" in dom
    png = (workdir / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
