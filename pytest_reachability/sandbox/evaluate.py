"""Scoring the diagnosis on the scenario corpus: does the top theory name each scenario's fault?

Each scenario with an ``expect:`` block runs the built-in suite exactly as a user would
(``python -m pytest --pyargs pytest_reachability.suites --sandbox NAME``) in a fresh process and an empty
folder; its results JSON gives the ranked theories and the sections' outcomes, which are compared with
the scenario's ``expect``: the top theory's rule (``null``: no theory above 50 %), and the failing sections
(every section in ``failing`` fails, no other section does except those in ``may_fail``). With
``cluster: false`` the sandbox is started here and the suite pointed at its target and resolvers without a
kubeconfig, as a user without cluster access runs it.

``python -m pytest_reachability.sandbox --evaluate`` prints the table and the top-1 rate; the corpus test
(``tests/test_scenario_corpus.py``) asserts every row.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .scenario import ExpectSpec, load_scenario, resolve_scenario_path, scenario_names

# Plugins of the machine the suite does not use are left out: hypothesis alone costs a second per process.
SUITE_ARGS = (
    "--pyargs",
    "pytest_reachability.suites",
    "-q",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:hypothesispytest",
    "-p",
    "no:benchmark",
    "-p",
    "no:randomly",
    "-p",
    "no:xdist",
)
RUN_TIMEOUT = 180.0  # one whole suite run; a hang fails the row instead of stalling
HEALTHY_CEILING = 0.5  # a healthy world shows no theory above this confidence


@dataclass
class Row:
    """One scenario's outcome against its ``expect``."""

    scenario: str
    expected: str | None
    top: str | None = None
    confidence: float = 0.0
    title: str = ""
    failing: list[str] = field(default_factory=list)
    expected_failing: list[str] = field(default_factory=list)
    may_fail: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None  # the run did not produce results (exit code, timeout, no JSON)
    ranking: list[tuple[str, float]] = field(default_factory=list)
    cluster: bool = True
    # Without cluster access: kubectl lines offered as confirm or fix that do not say they need it.
    unmarked_kubectl: list[str] = field(default_factory=list)

    @property
    def top_hit(self) -> bool:
        if self.error is not None:
            return False
        if self.expected is None:
            return self.top is None or self.confidence <= HEALTHY_CEILING
        return self.top == self.expected

    @property
    def sections_hit(self) -> bool:
        if self.error is not None:
            return False
        failing, expected = set(self.failing), set(self.expected_failing)
        return expected <= failing <= expected | set(self.may_fail)

    @property
    def hit(self) -> bool:
        return self.top_hit and self.sections_hit and not self.unmarked_kubectl

    def problem(self) -> str:
        """One line saying how the row misses its expectation ('' when it hits)."""
        if self.error is not None:
            return f"{self.scenario}: the run failed: {self.error}"
        parts = []
        if not self.top_hit:
            parts.append(
                f"top theory {self.top} ({self.confidence:.0%}), expected {self.expected}; ranking "
                f"{self.ranking}"
            )
        if not self.sections_hit:
            parts.append(
                f"failing sections {sorted(self.failing)}, expected {sorted(self.expected_failing)}"
                + (f" (may also fail: {sorted(self.may_fail)})" if self.may_fail else "")
            )
        if self.unmarked_kubectl:
            parts.append(
                f"kubectl offered without saying it needs cluster access: {self.unmarked_kubectl[0]}"
            )
        return f"{self.scenario}: " + "; ".join(parts) if parts else ""


def corpus() -> list[str]:
    """Shipped scenarios that carry an ``expect`` block, by name."""
    # A timed scenario's expect describes its world once every change landed: a run without --wait may see
    # either world, so the corpus leaves those out.
    return [
        name
        for name in scenario_names()
        if (scenario := load_scenario(name)).expect is not None and not scenario.changes
    ]


def suite_environment(home: Path) -> dict[str, str]:
    """The caller's environment without anything that would point the run elsewhere than the sandbox."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("REACHABILITY_", "PYTEST_"))
        and key not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")
    }
    env["HOME"] = str(home)  # no ~/.kube/config of the machine's user leaks into a run
    env["COLUMNS"] = "200"
    return env


def run_scenario(
    name: str, *, probe_timeout: float = 3.0, timeout: float = RUN_TIMEOUT, workdir: str | Path | None = None
) -> Row:
    """Run the built-in suite against scenario ``name`` in a fresh process and judge it."""
    scenario = load_scenario(name)
    expect = scenario.expect or ExpectSpec(top=None)
    row = Row(
        scenario=scenario.name,
        expected=expect.top,
        expected_failing=list(expect.failing),
        may_fail=list(expect.may_fail),
        cluster=expect.cluster,
    )
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix=f"reachability-evaluate-{scenario.name}-", dir=workdir) as folder,
        contextlib.ExitStack() as stack,
    ):
        results = Path(folder) / "results.json"
        env = suite_environment(Path(folder))
        if expect.cluster:
            target = (
                str(resolve_scenario_path(name).resolve())
                if ("/" in name or name.endswith((".yaml", ".yml")))
                else name
            )
            pointing = [f"--sandbox={target}"]  # a path after a bare --sandbox reads as a test path
        else:
            from . import Sandbox

            info = stack.enter_context(Sandbox(scenario))
            pointing = [
                "--target",
                info.target,
                f"--ca-bundle={info.ca_bundle}",
                "--namespace",
                info.namespace,
            ]
            pointing += [f"--resolver={resolver}" for resolver in info.resolvers]
        command = [
            sys.executable,
            "-m",
            "pytest",
            *SUITE_ARGS,
            *pointing,
            "--probe-timeout",
            f"{probe_timeout:g}",
            "--results-json",
            str(results),
        ]
        process = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(
                process.pid, signal.SIGKILL
            )  # the run and anything it started: the group this call made
            process.communicate()
            row.error = f"did not finish within {timeout:g}s"
            row.seconds = time.monotonic() - started
            return row
        row.seconds = time.monotonic() - started
        if process.returncode not in (0, 1) or not results.is_file():
            tail = " | ".join(line for line in output.strip().splitlines()[-3:])
            row.error = f"exit code {process.returncode}: {tail[-300:]}"
            return row
        judge(row, json.loads(results.read_text(encoding="utf-8")))
    return row


def judge(row: Row, data: dict[str, Any]) -> Row:
    """Fill ``row`` from a results JSON document."""
    theories = data.get("theories") or []
    row.ranking = [(t.get("rule"), t.get("confidence")) for t in theories[:6]]
    if theories:
        row.top, row.confidence, row.title = (
            theories[0].get("rule"),
            float(theories[0].get("confidence") or 0),
            theories[0].get("title") or "",
        )
    row.failing = sorted(
        name for name, section in (data.get("sections") or {}).items() if section.get("status") == "FAIL"
    )
    if not row.cluster:
        row.unmarked_kubectl = [
            line
            for theory in theories
            for line in (theory.get("confirm") or []) + (theory.get("fix") or [])
            if str(line).lstrip().startswith("kubectl") and "needs cluster access" not in str(line)
        ]
    return row


def evaluate(
    names: Iterable[str] | None = None,
    *,
    jobs: int = 2,
    probe_timeout: float = 3.0,
    progress: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Every scenario of ``names`` (default: the corpus), ``jobs`` at a time.

    Rows come in the order of ``names``."""
    chosen = list(names) if names is not None else corpus()
    rows: dict[str, Row] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(run_scenario, name, probe_timeout=probe_timeout): name for name in chosen}
        for future in concurrent.futures.as_completed(futures):
            row = future.result()
            rows[futures[future]] = row
            if progress is not None:
                progress(row)
    return [rows[name] for name in chosen]


_TABLE_HEADER = ("scenario", "expected", "top theory", "conf", "top", "sections", "seconds")


def _table_cells(row: Row) -> tuple[str, ...]:
    """One scenario's cells under ``_TABLE_HEADER``."""
    return (
        row.scenario,
        row.expected or "(none above 50%)",
        row.top or "(none)",
        f"{row.confidence:.0%}" if row.top else "-",
        "hit" if row.top_hit else "MISS",
        "ok" if row.sections_hit else "MISS",
        f"{row.seconds:.1f}",
    )


def _rate_lines(rows: list[Row]) -> list[str]:
    """The top-1 rate, with and without the failing sections, then one line per scenario that missed."""
    hits = sum(row.top_hit for row in rows)
    both = sum(row.hit for row in rows)
    total = len(rows) or 1
    text = [
        "",
        f"top-1 rate: {hits}/{len(rows)} ({hits / total:.0%}); with the failing sections as expected too: "
        f"{both}/{len(rows)} ({both / total:.0%})",
    ]
    misses = [row.problem() for row in rows if not row.hit]
    return text + [f"  {line}" for line in misses]


def format_table(rows: list[Row], *, rankings: bool = False) -> str:
    """The table (scenario, expected, top theory, hit) and the top-1 rate, as plain text.

    ``rankings`` adds each scenario's other top-level theories under its row."""
    cells = [_TABLE_HEADER] + [_table_cells(row) for row in rows]
    widths = [max(len(str(line[i])) for line in cells) for i in range(len(_TABLE_HEADER))]
    text = [
        "  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(cells[0])).rstrip(),
        "  ".join("-" * width for width in widths),
    ]
    for row, line in zip(rows, cells[1:], strict=True):
        text.append("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if rankings and len(row.ranking) > 1:
            text.append("    then: " + ", ".join(f"{rule} {conf:.0%}" for rule, conf in row.ranking[1:]))
    text += _rate_lines(rows)
    return "\n".join(text)
