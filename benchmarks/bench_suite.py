"""Benchmark: the whole built-in suite against sandbox scenarios, serial and under xdist.

For each scenario (``healthy``, ``incident-2025-12-08``) the script writes an overlay scenario in a
temporary directory (``base: <scenario>``, the performance section set to ``--requests`` requests) and
runs ``python -m pytest --sandbox <overlay> -q -p no:cacheprovider --durations=0`` from the repository
root (the suite is ``suites/``, the testpaths), serial and with ``-n <workers>``. Variants take turns
within each round after one uncounted warm-up run each. Per variant it reports the median over
``--repeat`` runs of:

  wall        the pytest process timed from outside (interpreter start and shutdown included)
  cpu         user + system CPU of the process and its children (xdist workers included)
  session     pytest's own figure, "in N s" of the final line
  tests       the sum of the setup/call/teardown durations pytest lists (``--durations=0``; pytest
              leaves out phases under 5 ms)

``Sandbox(scenario).start()`` and ``.stop()`` are timed directly as well, in this process.

Where the time goes: one more run per variant, not counted in the medians, loads this file as a pytest
plugin (``-p bench_suite``) in the pytest process and in every xdist worker. A sampling thread wakes
every 2 ms and reads the main thread's CPU clock (``pthread_getcpuclockid``), the process's CPU time and
the main thread's Python stack. Each interval's wall time is split:

  import            the stack is inside an import (whoever asked for it)
  sandbox           the stack is inside ``pytest_reachability.sandbox`` (its start and stop), CPU or not
  plugin            main thread on CPU; the innermost project frame is the plugin's machinery (plugin.py,
                    report/, gating, results, redact, diagnosis, evidence, config, ...)
  checks            main thread on CPU in the checks: ``suites/``, probes, cluster and HTTP clients,
                    fixtures, and the client libraries they call
  pytest            main thread on CPU elsewhere (pytest's collection, terminal, xdist's channel)
  sandbox threads   main thread off CPU while the process's other threads ran: the sandbox's servers
                    live in the pytest process, so waiting for an answer is mostly this
  waiting           main thread off CPU, nothing else of the process running: sockets, timers, child
                    processes, xdist workers, or the machine's other load
  startup/exit      before the plugin was imported (interpreter and pytest start) and after the last
                    sample (shutdown), from the process's outside wall time

Off-CPU time includes time runnable but not scheduled, so a busy machine inflates "waiting": the load
average is printed before and after.

    python benchmarks/bench_suite.py [--repeat 5] [--scenarios healthy,incident-2025-12-08]
                                     [--workers 4] [--no-xdist] [--requests 200] [--no-profile]

Goal: the whole suite under 5 s on this machine.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
SAMPLES_ENV = "BENCH_SUITE_SAMPLES_DIR"
SAMPLE_INTERVAL_S = 0.002
MAX_SAMPLES = int(600 / SAMPLE_INTERVAL_S)  # a run longer than ten minutes stops being sampled
GOAL_S = 5.0
CATEGORIES = (
    "startup",
    "import",
    "sandbox",
    "plugin",
    "checks",
    "pytest",
    "sandbox threads",
    "waiting",
    "exit",
)

PACKAGE_DIR = str(ROOT / "pytest_reachability") + os.sep
SUITES_DIR = str(ROOT / "suites") + os.sep
# Project modules that belong to the checks themselves, not to the plugin's machinery.
CHECK_MODULES = ("probes" + os.sep, "cluster.py", "http_session.py", "fixtures.py", "appconfig.py")
CLIENT_LIBRARIES = (
    os.sep + "kubernetes" + os.sep,
    os.sep + "urllib3" + os.sep,
    os.sep + "requests" + os.sep,
    os.sep + "dns" + os.sep,
    os.sep + "psycopg" + os.sep,
    os.sep + "http" + os.sep + "client.py",
    os.sep + "ssl.py",
    os.sep + "socket.py",
)


# --------------------------------------------------------------------------- the sampler (plugin mode)


def package_of(filename: str) -> str:
    """A short name for the package a file belongs to: ``kubernetes``, ``pytest_reachability.cluster``."""
    if filename.startswith(str(ROOT) + os.sep):
        parts = Path(filename).relative_to(ROOT).with_suffix("").parts
        return ".".join(parts[:2]) if parts[0] == "pytest_reachability" else ".".join(parts)
    marker = "site-packages" + os.sep
    if marker in filename:
        return filename.split(marker, 1)[1].split(os.sep, 1)[0].removesuffix(".py")
    return Path(filename).stem


def imported_module(frame: FrameType | None) -> str:
    """For a stack inside an import: the package of the outermost module being imported, and its importer."""
    stack = []
    while frame is not None:
        stack.append(frame.f_code)
        frame = frame.f_back
    stack.reverse()  # outermost first
    for index, code in enumerate(stack):
        if code.co_filename.startswith("<frozen importlib"):
            outer = index - 1
            while outer > 0 and os.sep + "importlib" + os.sep in stack[outer].co_filename:
                outer -= 1  # importlib.import_module is the messenger, not the importer
            importer = package_of(stack[outer].co_filename) if outer >= 0 else "?"
            for inner in stack[index:]:
                if inner.co_name == "<module>" and not inner.co_filename.startswith("<frozen"):
                    return f"{package_of(inner.co_filename)} (from {importer})"
            return f"? (from {importer})"
    return "?"


def classify_stack(frame: FrameType | None) -> str:
    """Which part of the run a main-thread stack belongs to: import, sandbox, plugin, checks or pytest."""
    innermost_project: str | None = None
    client_library = False
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith("<frozen importlib"):
            return "import"
        if filename.startswith(PACKAGE_DIR):
            relative = filename[len(PACKAGE_DIR) :]
            if relative.startswith("sandbox" + os.sep):
                return "sandbox"
            if innermost_project is None:
                innermost_project = "checks" if relative.startswith(CHECK_MODULES) else "plugin"
        elif filename.startswith(SUITES_DIR):
            innermost_project = innermost_project or "checks"
        elif innermost_project is None and any(part in filename for part in CLIENT_LIBRARIES):
            client_library = True
        frame = frame.f_back
    if innermost_project is not None:
        # A client library under a plugin hook (diagnosis reading the cluster) is the plugin's cost.
        return innermost_project
    return "checks" if client_library else "pytest"


class StackSampler:
    """Splits the wall time of the main thread between stack categories and off-CPU waiting."""

    def __init__(self) -> None:
        self.main_ident = threading.main_thread().ident or 0
        self.main_clock = time.pthread_getcpuclockid(self.main_ident)
        self.seconds = dict.fromkeys(CATEGORIES, 0.0)
        self.imports: dict[str, float] = {}
        self.samples = 0
        self.started_at = time.time()
        self.stopped_at = self.started_at
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-suite-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        last_wall = time.perf_counter()
        last_main_cpu = time.clock_gettime(self.main_clock)
        last_process_cpu = time.process_time()
        last_own_cpu = time.thread_time()
        while not self._stop.wait(SAMPLE_INTERVAL_S) and self.samples < MAX_SAMPLES:
            wall, main_cpu = time.perf_counter(), time.clock_gettime(self.main_clock)
            process_cpu, own_cpu = time.process_time(), time.thread_time()
            frame = sys._current_frames().get(self.main_ident)
            category = classify_stack(frame)
            elapsed = wall - last_wall
            on_cpu = min(max(main_cpu - last_main_cpu, 0.0), elapsed)
            others = max(
                process_cpu - last_process_cpu - (main_cpu - last_main_cpu) - (own_cpu - last_own_cpu), 0.0
            )
            if category in ("import", "sandbox"):
                self.seconds[category] += elapsed
                if category == "import":
                    module = imported_module(frame)
                    self.imports[module] = self.imports.get(module, 0.0) + elapsed
            else:
                self.seconds[category] += on_cpu
                off_cpu = elapsed - on_cpu
                threads = min(others, off_cpu)
                self.seconds["sandbox threads"] += threads
                self.seconds["waiting"] += off_cpu - threads
            last_wall, last_main_cpu, last_process_cpu, last_own_cpu = wall, main_cpu, process_cpu, own_cpu
            self.samples += 1
            self.stopped_at = time.time()

    def finish(self, directory: Path, role: str) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        record = {
            "pid": os.getpid(),
            "role": role,
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
            "samples": self.samples,
            "seconds": self.seconds,
            "imports": self.imports,
        }
        (directory / f"samples-{os.getpid()}.json").write_text(json.dumps(record))


if __name__ != "__main__" and os.environ.get(SAMPLES_ENV):
    # Loaded with ``-p bench_suite`` by a profiled run: sample from here to the end of the session.
    import pytest

    _SAMPLER = StackSampler()
    _SAMPLER.start()

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(config: pytest.Config) -> None:
        role = "worker" if hasattr(config, "workerinput") else "controller"
        _SAMPLER.finish(Path(os.environ[SAMPLES_ENV]), role)


# --------------------------------------------------------------------------- the benchmark (script mode)


def overlay_scenario(directory: Path, scenario: str, requests: int) -> Path:
    """A scenario file over ``scenario`` whose performance section sends ``requests`` requests."""
    import yaml

    path = directory / f"bench-{scenario}.yaml"
    document = {
        "name": f"bench-{scenario}",
        "description": f"{scenario} with the performance section at {requests} requests",
        "base": scenario,
        "application": {"performance": {"requests": requests}},
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def run_env(bytecode_cache: Path, samples_dir: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    # This machine sets PYTHONDONTWRITEBYTECODE=1, under which an editable install recompiles the
    # plugin in every run; a prefix cache that the warm-up fills measures what an installed package costs.
    # Writing must be allowed too: with the prefix set and writing off, no run finds any bytecode (not
    # even site-packages' own __pycache__) and every run compiles the kubernetes client from source.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(bytecode_cache)
    env.pop(SAMPLES_ENV, None)
    if samples_dir is not None:
        env[SAMPLES_ENV] = str(samples_dir)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(Path(__file__).resolve().parent), env.get("PYTHONPATH", "")])
        )
    return env


def parse_run(stdout: str) -> dict:
    """Final line (outcomes and pytest's "in N s") and the durations pytest listed."""
    import re

    lines = [line for line in stdout.splitlines() if line.strip()]
    final = lines[-1] if lines else ""
    session = re.search(r" in (\d+(?:\.\d+)?)s", final)
    per_test: dict[str, float] = {}
    for match in re.finditer(r"^(\d+\.\d+)s (?:setup|call|teardown) +(\S+)", stdout, flags=re.MULTILINE):
        per_test[match.group(2)] = per_test.get(match.group(2), 0.0) + float(match.group(1))
    outcome = re.sub(r" in \d.*$", "", final).strip("= ")
    return {
        "final": final,
        "outcome": outcome,
        "session": float(session.group(1)) if session else float("nan"),
        "tests": sum(per_test.values()),
        "per_test": per_test,
    }


def run_suite(overlay: Path, workers: int, env: dict[str, str], plugin: bool, timeout: float) -> dict:
    import resource
    import signal
    import subprocess

    # "--sandbox=PATH" in one word: pytest takes a separate path argument as a rootdir candidate, and
    # /tmp/... would make it miss pyproject.toml's testpaths and collect the whole working directory.
    command = [
        sys.executable,
        "-m",
        "pytest",
        f"--sandbox={overlay}",
        "-q",
        "-p",
        "no:cacheprovider",
        "--durations=0",
    ]
    if workers:
        command += ["-n", str(workers)]
    if plugin:
        command += ["-p", "bench_suite"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    launched_at, started = time.time(), time.perf_counter()
    # Its own process group, so that a run past its timeout is stopped with its PostgreSQL and workers.
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
        raise RuntimeError(
            f"pytest ran past {timeout:.0f} s for {overlay.name} -n {workers}; stopped"
        ) from None
    completed = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    wall = time.perf_counter() - started
    ended_at = time.time()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode not in (0, 1):
        tail = "\n".join((completed.stdout + completed.stderr).splitlines()[-15:])
        raise RuntimeError(f"pytest exited {completed.returncode} for {overlay.name} -n {workers}:\n{tail}")
    result = parse_run(completed.stdout)
    result.update(
        wall=wall,
        cpu=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        launched_at=launched_at,
        ended_at=ended_at,
        returncode=completed.returncode,
    )
    return result


def time_sandbox(overlay: Path, repeat: int) -> tuple[list[float], list[float]]:
    """Wall times of ``Sandbox(overlay).start()`` and ``.stop()``, after one uncounted warm-up."""
    from pytest_reachability.sandbox import Sandbox

    starts, stops = [], []
    for index in range(repeat + 1):
        sandbox = Sandbox(overlay)
        began = time.perf_counter()
        try:
            sandbox.start()
            started = time.perf_counter()
        finally:
            stopping = time.perf_counter()
            sandbox.stop()
            stopped = time.perf_counter()
        if index:
            starts.append(started - began)
            stops.append(stopped - stopping)
    return starts, stops


def breakdown(samples_dir: Path, run: dict) -> dict[str, dict[str, float]]:
    """Seconds per category for the controller and, summed,
    the xdist workers; ``imports:<role>`` per module."""
    totals: dict[str, dict[str, float]] = {}
    for path in sorted(samples_dir.glob("samples-*.json")):
        record = json.loads(path.read_text())
        role_totals = totals.setdefault(record["role"], dict.fromkeys(CATEGORIES, 0.0))
        for name, value in record["seconds"].items():
            role_totals[name] += value
        import_totals = totals.setdefault("imports:" + record["role"], {})
        for name, value in record.get("imports", {}).items():
            import_totals[name] = import_totals.get(name, 0.0) + value
        if record["role"] == "controller":
            role_totals["startup"] += max(record["started_at"] - run["launched_at"], 0.0)
            role_totals["exit"] += max(run["ended_at"] - record["stopped_at"], 0.0)
    for path in samples_dir.glob("samples-*.json"):
        path.unlink()
    return totals


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import shutil
    import statistics
    import subprocess
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="counted runs per variant (median)")
    parser.add_argument(
        "--scenarios", default="healthy,incident-2025-12-08", help="comma-separated scenario names"
    )
    parser.add_argument("--workers", type=int, default=4, help="xdist workers of the parallel variants")
    parser.add_argument("--no-xdist", action="store_true", help="serial variants only")
    parser.add_argument("--requests", type=int, default=200, help="the performance section's requests")
    parser.add_argument("--no-profile", action="store_true", help="skip the sampled run per variant")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per pytest run")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.workers < 1 or args.requests < 1:
        parser.error("--repeat, --workers and --requests must be at least 1")
    scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    if not scenarios:
        parser.error("--scenarios: expected at least one scenario name")

    from pytest_reachability.sandbox import ScenarioError, load_scenario

    workdir = Path(tempfile.mkdtemp(prefix="bench-suite-"))
    try:
        overlays = {}
        for name in scenarios:
            overlays[name] = overlay_scenario(workdir, name, args.requests)
            try:
                load_scenario(overlays[name])
            except ScenarioError as error:
                print(f"bench_suite: {error}", file=sys.stderr)
                return 2
        samples_dir = workdir / "samples"
        samples_dir.mkdir()
        plain_env = run_env(workdir / "pycache", None)
        sampled_env = run_env(workdir / "pycache", samples_dir)
        variants = [
            (name, workers) for name in scenarios for workers in ([0] if args.no_xdist else [0, args.workers])
        ]
        label = {
            variant: f"{variant[0]} " + (f"-n {variant[1]}" if variant[1] else "serial")
            for variant in variants
        }

        cpus = os.cpu_count() or 1
        load_before = os.getloadavg()[0]
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
            ).stdout.strip()
            or "unknown"
        )
        print(
            f"commit {commit}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Python "
            f"{sys.version.split()[0]}, {cpus} CPUs, load average (1 min) before: {load_before:.2f}"
        )

        sandbox_times = {name: time_sandbox(overlays[name], args.repeat) for name in scenarios}
        for variant in variants:  # warm-up: bytecode caches, PostgreSQL binaries in the page cache
            run_suite(overlays[variant[0]], variant[1], plain_env, False, args.timeout)
        runs: dict[tuple[str, int], list[dict]] = {variant: [] for variant in variants}
        for _ in range(args.repeat):
            for variant in variants:
                runs[variant].append(
                    run_suite(overlays[variant[0]], variant[1], plain_env, False, args.timeout)
                )
        profiles = {}
        if not args.no_profile:
            for variant in variants:
                run = run_suite(overlays[variant[0]], variant[1], sampled_env, True, args.timeout)
                profiles[variant] = (run, breakdown(samples_dir, run))
        load_after = os.getloadavg()[0]

        def median(values: list[float]) -> float:
            return statistics.median(values)

        rows = []
        for variant in variants:
            results = runs[variant]
            walls = [run["wall"] for run in results]
            outcomes = sorted({run["outcome"] for run in results})
            rows.append(
                [
                    label[variant],
                    f"{median(walls):.2f} s",
                    f"{min(walls):.2f} s",
                    f"{max(walls):.2f} s",
                    f"{median([run['cpu'] for run in results]):.2f} s",
                    f"{median([run['session'] for run in results]):.2f} s",
                    f"{median([run['tests'] for run in results]):.2f} s",
                    " | ".join(outcomes),
                ]
            )
        print()
        print(f"Built-in suite, median of {args.repeat} (performance section: {args.requests} requests)")
        print(format_table(["variant", "wall", "min", "max", "cpu", "session", "tests", "outcome"], rows))

        print()
        sandbox_rows = [
            [
                name,
                f"{median(starts):.2f} s",
                f"{min(starts):.2f} s",
                f"{max(starts):.2f} s",
                f"{median(stops):.3f} s",
            ]
            for name, (starts, stops) in sandbox_times.items()
        ]
        print(f"Sandbox(scenario).start() / .stop() in this process, median of {args.repeat}")
        print(format_table(["scenario", "start", "min", "max", "stop"], sandbox_rows))

        print()
        print("Slowest tests (setup + call + teardown, median over the runs)")
        slow_rows = []
        for variant in variants:
            names = {name for run in runs[variant] for name in run["per_test"]}
            medians = {
                name: median([run["per_test"].get(name, 0.0) for run in runs[variant]]) for name in names
            }
            for name, seconds in sorted(medians.items(), key=lambda item: -item[1])[:4]:
                slow_rows.append([label[variant], f"{seconds:.2f} s", name])
        print(format_table(["variant", "time", "test"], slow_rows))

        if profiles:
            print()
            print(
                "Where the wall time goes (one sampled run per variant; share of its wall; workers: summed"
                " worker-seconds)"
            )
            header = ["variant", "process", "wall", *CATEGORIES]
            profile_rows = []
            for variant, (run, totals) in profiles.items():
                for role in ("controller", "worker"):
                    if role not in totals:
                        continue
                    seconds = totals[role]
                    whole = run["wall"] if role == "controller" else sum(seconds.values())
                    profile_rows.append(
                        [
                            label[variant],
                            role + ("s" if role == "worker" else ""),
                            f"{whole:.2f} s",
                            *(
                                f"{100 * seconds[name] / whole:.0f} %" if whole else "-"
                                for name in CATEGORIES
                            ),
                        ]
                    )
            print(format_table(header, profile_rows))
            print()
            print("Largest imports in the sampled runs (outermost module imported, and who imported it)")
            import_rows = []
            for variant, (_, totals) in profiles.items():
                for role in ("controller", "worker"):
                    ranked = sorted(totals.get("imports:" + role, {}).items(), key=lambda item: -item[1])
                    for module, seconds in ranked[:5]:
                        import_rows.append(
                            [
                                label[variant],
                                role + ("s" if role == "worker" else ""),
                                f"{seconds:.2f} s",
                                module,
                            ]
                        )
            print(format_table(["variant", "process", "time", "module"], import_rows))
            if any(not totals for _, totals in profiles.values()):
                print("warning: a sampled run wrote no samples (was -p bench_suite loaded?)")

        print()
        print(f"load average (1 min) before: {load_before:.2f}, after: {load_after:.2f}")
        if max(load_before, load_after) > 1 + cpus / 2:
            print(
                f"warning: load average above {1 + cpus / 2:.1f}: other work shares the CPUs, walls are "
                "inflated"
            )
        best = min(median([run["wall"] for run in runs[variant]]) for variant in variants)
        worst = max(median([run["wall"] for run in runs[variant]]) for variant in variants)
        verdict = "MET" if worst < GOAL_S else ("MET by some variants" if best < GOAL_S else "NOT MET")
        print(
            f"goal: whole suite under {GOAL_S:.0f} s (median wall): {verdict} "
            f"(fastest {best:.2f} s, slowest {worst:.2f} s)"
        )
        return 0
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        print(f"bench_suite: {str(error).splitlines()[0]}", file=sys.stderr)
        print("\n".join(str(error).splitlines()[1:]), file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
