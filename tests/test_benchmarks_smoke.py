"""The gating benchmark runs end to end at a tiny size: it prints its figures and its suites behave.

Not a timed test: nothing here compares durations. It checks that ``benchmarks/bench_gating.py`` still
works (so the recorded figures can be reproduced) and that the suites it generates express the graph
it claims: the plugin BLOCKS sections 12-16 when api-health fails, pytest-dependency skips them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_gating.py"
TESTS = 40
VARIANTS = ("plugin", "baseline", "dependency", "dependency-baseline", "plugin-failing", "dependency-failing")
DESIGN_SECTIONS = (
    "cluster",
    "workloads",
    "k8s-services",
    "endpoints",
    "ingress",
    "network-policy",
    "dns",
    "tcp",
    "tls",
    "api-health",
    "api-internal",
    "database",
    "services",
    "integration",
    "performance",
    "results-storage",
)
# Sections 12-16 require api-health (integration and results-storage through database as well).
STOPPED_BY_API_HEALTH = DESIGN_SECTIONS[11:]


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    suites = tmp_path_factory.mktemp("bench-gating")
    return run_script("--tests", str(TESTS), "--repeat", "1", "--keep", str(suites)), suites


def count_tests(path: Path) -> int:
    return len(re.findall(r"^def test_", path.read_text(), flags=re.MULTILINE))


def section_files(directory: Path) -> dict[str, Path]:
    """Generated file per section, by the section name its ``section`` mark declares."""
    files = {}
    for path in sorted(directory.glob("test_*.py")):
        found = re.search(r"pytest\.mark\.section\('([^']+)'", path.read_text())
        assert found, f"{path.name} declares no section"
        files[found.group(1)] = path
    return files


def table_row(stdout: str, variant: str) -> str:
    rows = [line for line in stdout.splitlines() if re.match(rf"{re.escape(variant)} +\d", line)]
    assert len(rows) == 1, f"no single table row for {variant!r} in:\n{stdout}"
    return rows[0]


def test_prints_every_variant_and_the_ratios(tiny_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    completed, _ = tiny_run
    assert completed.returncode == 0, completed.stderr + completed.stdout
    for variant in VARIANTS:
        # median wall, min, max, CPU, pytest's own time: five figures in seconds, then pytest's final line
        assert re.match(
            rf"{re.escape(variant)} +(\d+\.\d\d s +){{5}}\d", table_row(completed.stdout, variant)
        )
    for label in (
        "plugin overhead:",
        "pytest-dependency overhead:",
        "plugin, api-health failing vs passing:",
    ):
        assert re.search(
            rf"^{re.escape(label)} .*wall +[+-]\d+\.\d%, CPU +[+-]\d+\.\d%$", completed.stdout, re.MULTILINE
        ), label
    assert re.search(r"^goal \(.*\): (MET|MISSED)$", completed.stdout, re.MULTILINE)
    assert re.search(r"^machine: \d+ CPUs, 1-minute load average", completed.stdout, re.MULTILINE)


def test_suites_follow_design_sections(tiny_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, suites = tiny_run
    files = section_files(suites / "reachability")
    assert tuple(files) == DESIGN_SECTIONS  # file order on disk is the suite's order
    assert sum(count_tests(path) for path in files.values()) == TESTS
    gates = {
        section: re.findall(r"pytest\.mark\.gate\('([^']+)'\)", path.read_text())
        for section, path in files.items()
    }
    assert {s: g for s, g in gates.items() if g} == {
        "cluster": ["cluster-access"],
        "api-health": ["api-health"],
        "database": ["database"],
    }
    dependency_files = sorted((suites / "dependency").glob("test_*.py"))
    assert [p.name for p in dependency_files] == [p.name for p in files.values()]
    assert sum(count_tests(path) for path in dependency_files) == TESTS


def final_line(stdout: str, variant: str) -> str:
    return re.split(r"\d\.\d\d s +", table_row(stdout, variant))[-1]


def test_outcomes_of_each_variant(tiny_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    completed, suites = tiny_run
    assert completed.returncode == 0, completed.stderr + completed.stdout
    files = section_files(suites / "reachability")
    stopped = sum(count_tests(files[section]) for section in STOPPED_BY_API_HEALTH)
    assert stopped > 0
    for variant in ("plugin", "baseline", "dependency", "dependency-baseline"):
        assert re.fullmatch(rf"{TESTS} passed in [\d.]+s", final_line(completed.stdout, variant)), variant
    passed = TESTS - 1 - stopped
    assert re.fullmatch(
        rf"1 failed, {passed} passed, {stopped} blocked in [\d.]+s",
        final_line(completed.stdout, "plugin-failing"),
    )
    assert re.fullmatch(
        rf"1 failed, {passed} passed, {stopped} skipped in [\d.]+s",
        final_line(completed.stdout, "dependency-failing"),
    )


def test_failing_suite_blocks_sections_12_to_16_by_api_health(
    tiny_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, suites = tiny_run
    directory = suites / "reachability-failing"
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "pytest_reachability.plugin",
            "--rootdir",
            str(directory),
            str(directory),
        ],
        cwd=directory,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    files = section_files(directory)
    for section in STOPPED_BY_API_HEALTH:
        count = count_tests(files[section])
        assert re.search(
            rf"^{re.escape(section)} +{count} +0 +0 +{count} +0 +BLOCKED by api-health$",
            completed.stdout,
            re.MULTILINE,
        ), section
    # One BLOCKED line per section; the gate's reason once for all of them.
    blocked_lines = [line for line in completed.stdout.splitlines() if line.startswith("BLOCKED ")]
    assert [line.split()[1] for line in blocked_lines] == list(STOPPED_BY_API_HEALTH)
    assert all(line.endswith(" by api-health") for line in blocked_lines)
    assert completed.stdout.count("blocked by api-health: api-health: 503") == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (("--tests", "15"), "--tests must be at least 16"),
        (("--repeat", "0"), "--repeat must be at least 1"),
        (("--tests", "many"), "invalid int value"),
    ],
)
def test_bad_sizes_are_one_line_usage_errors(args: tuple[str, ...], message: str) -> None:
    completed = run_script(*args)
    assert completed.returncode == 2
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
