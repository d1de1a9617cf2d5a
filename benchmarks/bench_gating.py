"""Benchmark: what gating costs on 2,000 trivial tests in the built-in suite's 16 sections.

Generates, in a temporary directory, one file per section (``test_01_cluster.py`` ...
``test_16_results_storage.py``), ``--tests`` passing tests in all, with the gates ``cluster-access``
(in cluster), ``api-health`` (in api-health) and ``database`` (in database). Sections 1-6 require
``cluster-access``, 12-16 ``api-health``, integration and results-storage also ``database``. Variants,
each a fresh ``python -m pytest -q`` subprocess timed from outside (interpreter start included):

  plugin              section/gate marks, this plugin loaded
  baseline            the same files with the plugin off (``-p no:reachability``), marks registered
                      in pytest.ini
  dependency          the same graph in pytest-dependency's marks, pytest-dependency loaded
  dependency-baseline those files with pytest-dependency off
  plugin-failing      api-health's gate test fails: sections 12-16 are BLOCKED
  dependency-failing  the same with pytest-dependency: its dependents are skipped

Plugin autoloading is off in every run (``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``) and the plugin under test
is named with ``-p``, so a figure is pytest's plus that plugin's and not that of whatever else is
installed; ``-p no:cacheprovider`` everywhere. The variants take turns within each round so that a
slow moment of a shared machine hits them alike; one uncounted warm-up run each writes the bytecode
caches first. Every run's outcome counts are checked against the generated graph.

    python benchmarks/bench_gating.py [--tests 2000] [--repeat 5] [--keep DIR]

Goal: the plugin's overhead over the baseline <= 10 % and below pytest-dependency's.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_OVERHEAD = 0.10
RUN_TIMEOUT = 300  # seconds; one run of 2,000 trivial tests takes a few

# (section, the gate its first test carries, gates the section requires), in the built-in suite's order.
SECTIONS: tuple[tuple[str, str | None, tuple[str, ...]], ...] = (
    ("cluster", "cluster-access", ("cluster-access",)),
    ("workloads", None, ("cluster-access",)),
    ("k8s-services", None, ("cluster-access",)),
    ("endpoints", None, ("cluster-access",)),
    ("ingress", None, ("cluster-access",)),
    ("network-policy", None, ("cluster-access",)),
    ("dns", None, ()),
    ("tcp", None, ()),
    ("tls", None, ()),
    ("api-health", "api-health", ()),
    ("api-internal", None, ()),
    ("database", "database", ("api-health",)),
    ("services", None, ("api-health",)),
    ("integration", None, ("api-health", "database")),
    ("performance", None, ("api-health",)),
    ("results-storage", None, ("api-health", "database")),
)
FAILING_GATE = "api-health"

PLUGIN_MARKERS = (
    "section(name, requires=()): report section of a test and the gates all of it requires",
    "gate(name): the test is part of gate NAME",
    "requires(*gates): the test runs only if every named gate passed",
)
DEPENDENCY_MARKERS = ("dependency(name=None, depends=[]): pytest-dependency",)


@dataclass(frozen=True)
class Variant:
    name: str
    suite: str  # which generated directory: "reachability" | "dependency", "-failing" for the failing gate
    plugin_args: tuple[str, ...]
    description: str


VARIANTS: tuple[Variant, ...] = (
    Variant(
        "plugin", "reachability", ("-p", "pytest_reachability.plugin"), "section/gate marks, plugin loaded"
    ),
    Variant("baseline", "reachability", ("-p", "no:reachability"), "same files, plugin off"),
    Variant(
        "dependency",
        "dependency",
        ("-p", "pytest_dependency", "-p", "no:reachability"),
        "same graph in pytest-dependency marks",
    ),
    Variant(
        "dependency-baseline",
        "dependency",
        ("-p", "no:dependency", "-p", "no:reachability"),
        "those files, pytest-dependency off",
    ),
    Variant(
        "plugin-failing",
        "reachability-failing",
        ("-p", "pytest_reachability.plugin"),
        f"{FAILING_GATE} gate fails, plugin loaded",
    ),
    Variant(
        "dependency-failing",
        "dependency-failing",
        ("-p", "pytest_dependency", "-p", "no:reachability"),
        f"{FAILING_GATE} gate fails, pytest-dependency loaded",
    ),
)


# --------------------------------------------------------------------------- the generated suites


def tests_per_section(total: int) -> list[int]:
    """``total`` tests spread over the sections as evenly as possible, the first ones taking the remainder."""
    base, extra = divmod(total, len(SECTIONS))
    return [base + (1 if index < extra else 0) for index in range(len(SECTIONS))]


def file_name(index: int, section: str) -> str:
    # The number keeps the suite's order on disk: pytest-dependency
    # does not reorder, so gates must come first.
    return f"test_{index + 1:02d}_{section.replace('-', '_')}.py"


def test_name(section: str, number: int) -> str:
    return f"test_{section.replace('-', '_')}_{number:04d}"


def gate_body(section: str, gate: str | None, failing: bool) -> str:
    if failing and gate == FAILING_GATE:
        return f'    assert False, "{gate}: 503 Service Unavailable from every address"\n'
    return "    pass\n"


def reachability_file(
    section: str, gate: str | None, requires: tuple[str, ...], count: int, failing: bool
) -> str:
    lines = [f'"""Generated by benchmarks/bench_gating.py: section {section}."""\n', "import pytest\n"]
    if requires:
        lines.append(f"pytestmark = pytest.mark.section({section!r}, requires={list(requires)!r})\n")
    else:
        lines.append(f"pytestmark = pytest.mark.section({section!r})\n")
    for number in range(count):
        decorator = f"@pytest.mark.gate({gate!r})\n" if gate and number == 0 else ""
        body = gate_body(section, gate, failing) if number == 0 else "    pass\n"
        lines.append(f"\n{decorator}def {test_name(section, number)}():\n{body}")
    return "\n".join(lines)


def dependency_file(
    section: str, gate: str | None, requires: tuple[str, ...], count: int, failing: bool
) -> str:
    """The same graph for pytest-dependency: the gate test is named, the module's tests depend on the gates.

    The module-level mark declares the section's requirements once, as ``section(requires=)`` does; the
    gate test's own mark is closer, so it replaces the module's (and still depends where the section does).
    """
    lines = [
        f'"""Generated by benchmarks/bench_gating.py: section {section}, pytest-dependency marks."""\n',
        "import pytest\n",
    ]
    own = [g for g in requires if g != gate]
    if requires:
        lines.append(f"pytestmark = pytest.mark.dependency(depends={list(requires)!r}, scope='session')\n")
    for number in range(count):
        decorator = ""
        if gate and number == 0:
            depends = f", depends={own!r}, scope='session'" if own else ""
            decorator = f"@pytest.mark.dependency(name={gate!r}{depends})\n"
        body = gate_body(section, gate, failing) if number == 0 else "    pass\n"
        lines.append(f"\n{decorator}def {test_name(section, number)}():\n{body}")
    return "\n".join(lines)


def write_suite(directory: Path, total: int, style: str, failing: bool) -> Path:
    """Write the 16 files and a pytest.ini registering the
    marks (so no run pays for unknown-mark warnings)."""
    directory.mkdir(parents=True, exist_ok=True)
    render = reachability_file if style == "reachability" else dependency_file
    markers = PLUGIN_MARKERS if style == "reachability" else DEPENDENCY_MARKERS
    (directory / "pytest.ini").write_text("[pytest]\nmarkers =\n" + "".join(f"    {m}\n" for m in markers))
    for index, ((section, gate, requires), count) in enumerate(
        zip(SECTIONS, tests_per_section(total), strict=True)
    ):
        (directory / file_name(index, section)).write_text(render(section, gate, requires, count, failing))
    return directory


def expected_outcomes(total: int, variant: Variant) -> dict[str, int]:
    """The counts the final line must show, derived from the graph: who depends on the failing gate."""
    if not variant.suite.endswith("-failing"):
        return {"passed": total}
    failed_gates = {FAILING_GATE}
    stopped = 0
    for (_, gate, requires), count in zip(SECTIONS, tests_per_section(total), strict=True):
        if failed_gates.intersection(requires):
            stopped += count
            if gate:
                failed_gates.add(gate)  # a gate whose test is blocked stops its own dependents as well
    word = "blocked" if variant.name.startswith("plugin") else "skipped"
    return {"failed": 1, "passed": total - 1 - stopped, word: stopped}


# --------------------------------------------------------------------------- running


@dataclass
class Timing:
    walls: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # user + system seconds of the pytest process
    session: list[float] = field(default_factory=list)  # pytest's own "in N s", without interpreter start
    summary: str = ""


def parse_summary(stdout: str) -> tuple[dict[str, int], float | None, str]:
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    last = lines[-1].strip("= ") if lines else ""
    counts = {
        word.rstrip("s") if word in ("errors", "warnings") else word: int(n)
        for n, word in re.findall(r"(\d+) (passed|failed|blocked|skipped|errors?|warnings?|deselected)", last)
    }
    seconds = re.search(r" in ([\d.]+)s", last)
    return counts, float(seconds.group(1)) if seconds else None, last


def run_environment(bytecode_cache: Path | None) -> dict[str, str]:
    """The runs' environment: autoloading off and, unless measuring without one, a bytecode cache.

    An installed package has its ``.pyc`` files; an editable install under ``PYTHONDONTWRITEBYTECODE``
    would recompile the plugin's source in every run, a cost no installation pays. So the runs write
    and read bytecode under ``bytecode_cache`` (a temporary directory: nothing lands in the source tree);
    the warm-up run fills it. ``None`` keeps the calling environment's setting.
    """
    # PYTHONPATH: run from a checkout even where the package is not installed.
    env = {
        **os.environ,
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    if bytecode_cache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(bytecode_cache)
    return env


def run_pytest(directory: Path, variant: Variant, env: dict[str, str]) -> tuple[float, float, str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *variant.plugin_args,
        "--rootdir",
        str(directory),
        str(directory),
    ]
    # Runs are sequential, so the children's usage grows by this run's alone; CPU time is the figure a
    # busy shared machine disturbs least.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(
        command, cwd=directory, capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT, check=False
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, completed.stdout + (completed.stderr if completed.returncode not in (0, 1) else "")


def measure(
    directories: dict[str, Path], total: int, repeat: int, variants: Sequence[Variant], env: dict[str, str]
) -> dict[str, Timing]:
    timings = {v.name: Timing() for v in variants}
    for variant in variants:  # warm-up: bytecode cache, page cache
        run_pytest(directories[variant.suite], variant, env)
    for round_number in range(1, repeat + 1):
        for variant in variants:
            wall, cpu, output = run_pytest(directories[variant.suite], variant, env)
            counts, session, last = parse_summary(output)
            expected = expected_outcomes(total, variant)
            if counts != expected:
                raise SystemExit(
                    f"{variant.name}: expected {expected}, pytest reported {last!r}\n{output[-2000:]}"
                )
            timing = timings[variant.name]
            timing.walls.append(wall)
            timing.cpu.append(cpu)
            if session is not None:
                timing.session.append(session)
            timing.summary = last
        print(
            f"round {round_number}: "
            + ", ".join(f"{v.name} {timings[v.name].walls[-1]:.2f} s" for v in variants),
            flush=True,
        )
    return timings


def median_of(timings: dict[str, Timing], name: str, what: str) -> float:
    return statistics.median(getattr(timings[name], what))


def overhead(timings: dict[str, Timing], name: str, baseline: str, what: str = "walls") -> float:
    return median_of(timings, name, what) / median_of(timings, baseline, what) - 1


def report(timings: dict[str, Timing], total: int, repeat: int) -> bool:
    """Print the table and the ratios; True when the goal is met on wall time."""
    print(
        f"\n{total} tests in {len(SECTIONS)} sections; median of {repeat} run(s) each; "
        "wall and CPU (user+sys) of the whole pytest process; 'pytest in' = pytest's own session time"
    )
    print(
        f"{'variant':<21} {'median wall':>11} {'min':>7} {'max':>7} {'CPU':>7} {'pytest in':>9}  final line"
    )
    for variant in VARIANTS:
        t = timings[variant.name]
        session = f"{statistics.median(t.session):.2f} s" if t.session else "-"
        print(
            f"{variant.name:<21} {statistics.median(t.walls):>9.2f} s {min(t.walls):>5.2f} s "
            f"{max(t.walls):>5.2f} s "
            f"{statistics.median(t.cpu):>5.2f} s {session:>9}  {t.summary}"
        )
    print()
    rows = (
        ("plugin overhead", "plugin", "baseline"),
        ("pytest-dependency overhead", "dependency", "dependency-baseline"),
        ("pytest-dependency over the plugin's baseline", "dependency", "baseline"),
        (f"plugin, {FAILING_GATE} failing vs passing", "plugin-failing", "plugin"),
        ("plugin vs pytest-dependency", "plugin", "dependency"),
    )
    for label, name, baseline in rows:
        print(
            f"{label + ':':<46} {name} / {baseline} - 1 = wall {overhead(timings, name, baseline):+6.1%}, "
            f"CPU {overhead(timings, name, baseline, 'cpu'):+6.1%}"
        )
    plugin = overhead(timings, "plugin", "baseline")
    dependency = overhead(timings, "dependency", "dependency-baseline")
    met = plugin <= GOAL_OVERHEAD and plugin < dependency
    print(
        f"goal (wall overhead <= {GOAL_OVERHEAD:.0%} and below pytest-dependency's): "
        f"{'MET' if met else 'MISSED'}"
    )
    return met


def installed_versions() -> str:
    found = []
    for name in ("pytest", "pytest-dependency", "pytest-reachability"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def source_revision() -> str:
    """The checkout's commit, so recorded figures can be tied to the code they measured."""
    try:
        completed = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return completed.stdout.strip() or "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=2000, help="tests in all (at least one per section)")
    parser.add_argument(
        "--repeat", type=int, default=5, help="timed runs of each variant; the median is reported"
    )
    parser.add_argument(
        "--keep", type=Path, help="write the suites here and keep them (default: a temporary dir)"
    )
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="keep the environment's PYTHONDONTWRITEBYTECODE: every run compiles what has no .pyc",
    )
    args = parser.parse_args(argv)
    if args.tests < len(SECTIONS):
        parser.error(f"--tests must be at least {len(SECTIONS)} (one per section), got {args.tests}")
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")

    if importlib.util.find_spec("pytest_dependency") is None:
        print(
            "pytest-dependency is not installed (pip install pytest-dependency): it is one of the variants",
            file=sys.stderr,
        )
        return 2
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="rch-bench-gating-"))
    try:
        directories = {
            f"{style}{'-failing' if failing else ''}": write_suite(
                workdir / f"{style}{'-failing' if failing else ''}", args.tests, style, failing
            )
            for style in ("reachability", "dependency")
            for failing in (False, True)
        }
        env = run_environment(None if args.no_bytecode_cache else workdir / "pycache")
        # Other work on a shared machine moves the figures; the load average says how much there was.
        load_before = os.getloadavg()[0]
        timings = measure(directories, args.tests, args.repeat, VARIANTS, env)
        report(timings, args.tests, args.repeat)
        load_after = os.getloadavg()[0]
        print(
            f"machine: {os.cpu_count()} CPUs, 1-minute load average {load_before:.2f} before, "
            f"{load_after:.2f} after; Python {sys.version.split()[0]}, {installed_versions()}; "
            f"commit {source_revision()}"
        )
        if max(load_before, load_after) > 1 + (os.cpu_count() or 1) / 2:
            print(
                "warning: other work shared the CPUs during the run; wall ratios are unreliable, "
                "compare CPU ratios or run again when the machine is idle"
            )
        if args.no_bytecode_cache:
            print(
                "bytecode: the environment's setting (PYTHONDONTWRITEBYTECODE="
                f"{os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}); modules without a .pyc compile in "
                "every run"
            )
        else:
            print("bytecode: cached under the run's temporary directory, as an installed package has it")
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    # The figures are the product; a missed goal is reported, not an error (CI does not time anything).
    return 0


if __name__ == "__main__":
    sys.exit(main())
