"""The built-in suite's benchmark runs end to end once and prints its figures; its stack classifier sorts
frames.

Not a timed test: nothing here compares durations. It checks that ``benchmarks/bench_suite.py`` still
runs the suite against a sandbox scenario (so the recorded figures can be reproduced), that the sampled
run's plugin is loaded and accounts for the whole wall time, and that a stack is charged to the part of
the project its frames come from.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import FrameType, ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_suite.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_suite_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def frame_from(filename: str, body: str = "captured = sys._getframe()") -> FrameType:
    """A real frame whose code claims to come from ``filename`` (the classifier reads only file names)."""
    namespace: dict = {"sys": sys}
    exec(compile(f"def probe():\n    {body}\n    return captured\n", filename, "exec"), namespace)
    return namespace["probe"]()


@pytest.fixture(scope="module")
def tiny_run() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--repeat",
            "1",
            "--scenarios",
            "healthy",
            "--no-xdist",
            "--requests",
            "20",
            "--timeout",
            "120",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_script_prints_walls_sandbox_times_and_load(tiny_run: subprocess.CompletedProcess[str]) -> None:
    assert tiny_run.returncode == 0, tiny_run.stdout + tiny_run.stderr
    row = re.search(
        r"^healthy serial +(\d+\.\d+) s +\d+\.\d+ s +\d+\.\d+ s +(\d+\.\d+) s +(\d+\.\d+) s "
        r"+(\d+\.\d+) s +(.+)$",
        tiny_run.stdout,
        flags=re.MULTILINE,
    )
    assert row, tiny_run.stdout
    wall, _cpu, session, _tests, outcome = row.groups()
    assert float(session) < float(wall), "pytest's session time lies inside the process's wall time"
    assert "passed" in outcome and "failed" not in outcome and "error" not in outcome
    assert re.search(
        r"^healthy +\d+\.\d+ s +\d+\.\d+ s +\d+\.\d+ s +\d+\.\d+ s$", tiny_run.stdout, flags=re.MULTILINE
    )
    assert re.search(r"load average \(1 min\) before: \d+\.\d+, after: \d+\.\d+", tiny_run.stdout)
    assert re.search(
        r"^goal: whole suite under 5 s \(median wall\): (MET|NOT MET)", tiny_run.stdout, flags=re.MULTILINE
    )
    assert "-n " not in tiny_run.stdout.split("Slowest tests")[0], "--no-xdist ran an xdist variant"


def test_sampled_run_accounts_for_the_whole_wall(tiny_run: subprocess.CompletedProcess[str]) -> None:
    assert "wrote no samples" not in tiny_run.stdout
    row = re.search(
        r"^healthy serial +controller +(\d+\.\d+) s +((?:\d+ % +)+\d+ %)$",
        tiny_run.stdout,
        flags=re.MULTILINE,
    )
    assert row, tiny_run.stdout
    shares = [int(share) for share in re.findall(r"(\d+) %", row.group(2))]
    assert len(shares) == len(load_script().CATEGORIES)
    # Each share is rounded to a whole per cent: nine of them add up to 100 within their rounding.
    assert 95 <= sum(shares) <= 105, shares
    assert re.search(
        r"^healthy serial +controller +\d+\.\d+ s +\S+ \(from \S+\)$", tiny_run.stdout, flags=re.MULTILINE
    ), "no import was attributed to a module"


def test_bad_arguments_are_one_line() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--scenarios", "no-such-scenario", "--repeat", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "no-such-scenario" in result.stderr


def test_stacks_are_charged_to_the_part_of_the_project_they_run_in() -> None:
    bench = load_script()
    package = ROOT / "pytest_reachability"
    assert bench.classify_stack(frame_from(str(ROOT / "suites" / "test_10_api_health.py"))) == "checks"
    assert bench.classify_stack(frame_from(str(package / "probes" / "http.py"))) == "checks"
    assert bench.classify_stack(frame_from(str(package / "report" / "hooks.py"))) == "plugin"
    assert bench.classify_stack(frame_from(str(package / "gating.py"))) == "plugin"
    assert bench.classify_stack(frame_from(str(package / "sandbox" / "edges.py"))) == "sandbox"
    # This test's own frames and pytest's: neither the plugin nor a check.
    assert bench.classify_stack(sys._getframe()) == "pytest"
    assert bench.classify_stack(frame_from("<frozen importlib._bootstrap>")) == "import"
