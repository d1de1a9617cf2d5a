"""Benchmark: a fleet in one run -- wall time and peak memory against the number of targets.

Runs the built-in suite against the bundled ``fleet`` sandbox scenario (200 hosts) in a fresh process:

  one        the scenario's own target only (the single-target run every ratio is taken against)
  10, 50     ``--target`` given for the first N hosts (svc-000 ... svc-N-1)
  200        ``--discover``: every public host the sandbox's cluster serves

each ``python -m pytest suites --sandbox fleet -q -p no:cacheprovider --tb=no`` from the repository root,
timed from outside (interpreter start to exit); peak RSS is the process's own (``os.wait4``), the sandbox's
servers included (they are threads of the pytest process). Variants take turns within each round; the
median of ``--repeat`` rounds is printed, with the ratio to the single-target run of the same rounds.

    python benchmarks/bench_fleet.py [--repeat 3] [--sizes 10,50] [--concurrency 8] [--xdist 2]

``--xdist N`` adds a 200-host run under ``-n N`` (wall only: its workers are not this script's children).

``--bytecode`` says whether the runs may write and reuse compiled bytecode (pytest's rewritten test and
plugin modules included): ``warm`` (a user's second run on a machine: one run first to fill the cache),
``cold`` (every run compiles everything, as with ``PYTHONDONTWRITEBYTECODE=1`` or a fresh CI checkout),
``inherit`` (the default: as the environment says). The setting is printed with the figures.

``floor`` is pytest alone (the plugin not loaded) running as many empty tests as the 200-target run has,
in the same shape (34 functions over a session fixture of 200 parameters): what any pytest run of that many
tests costs before a check does anything. It is printed beside the others, not part of the goal.

Goal: 200 targets within 3x the wall time of one target, peak memory below 300 MiB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 3.0
GOAL_MIB = 300.0
RUN_TIMEOUT = 900


FLOOR_TESTS = """
import pytest

@pytest.fixture(scope="session", params=[f"svc-{number:03d}" for number in range(200)])
def host(request):
    return request.param

def _check(number):
    def check(host):
        assert host
    check.__name__ = f"test_{number:02d}"
    return check

for _number in range(34):
    globals()[f"test_{_number:02d}"] = _check(_number)
"""


BYTECODE = {"inherit": None, "warm": False, "cold": True}  # PYTHONDONTWRITEBYTECODE set or not


def run(args: list[str], bytecode: str = "inherit") -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit status) of one suite run in a fresh process."""
    command = [sys.executable, "-m", "pytest", "suites", "--sandbox", "fleet", "-q", "-p", "no:cacheprovider"]
    command += ["--tb=no", *args]
    if args and args[0] == "--floor":
        command = [sys.executable, "-m", "pytest", args[1], "-q", "-p", "no:cacheprovider", "-p"]
        command += ["no:reachability", "--tb=no"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REACHABILITY_", "PYTEST_"))}
    if BYTECODE[bytecode] is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if BYTECODE[bytecode]:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = started + RUN_TIMEOUT
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            pid, status, usage = os.wait4(process.pid, 0)
            break
        time.sleep(0.02)
    process.returncode = os.waitstatus_to_exitcode(status)
    return time.monotonic() - started, usage.ru_maxrss / 1024, process.returncode


def variants(sizes: list[int], concurrency: int, xdist: int) -> dict[str, list[str]]:
    found = {"one": [f"--concurrency={concurrency}"]}
    for size in sizes:
        hosts = [arg for number in range(size) for arg in ("--target", f"svc-{number:03d}.fleet.test")]
        found[str(size)] = [*hosts, f"--concurrency={concurrency}"]
    found["200"] = ["--discover", f"--concurrency={concurrency}"]
    if xdist:
        found[f"200 -n {xdist}"] = ["--discover", f"--concurrency={concurrency}", "-n", str(xdist)]
    floor = Path(tempfile.mkdtemp(prefix="reachability-bench-floor-")) / "test_floor.py"
    floor.write_text(FLOOR_TESTS)
    found["floor"] = ["--floor", str(floor)]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="10,50", help="target counts given with --target (comma list)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--xdist", type=int, default=0, help="also run the 200 hosts under -n N")
    parser.add_argument("--bytecode", choices=sorted(BYTECODE), default="inherit")
    options = parser.parse_args(argv)
    sizes = [int(size) for size in options.sizes.split(",") if size.strip()]
    runs = variants(sizes, options.concurrency, options.xdist)
    written = os.environ.get("PYTHONDONTWRITEBYTECODE") is None
    if options.bytecode != "inherit":
        written = not BYTECODE[options.bytecode]
    print(f"bytecode: {options.bytecode} ({'written and reused' if written else 'compiled in every run'})")
    if options.bytecode == "warm":
        run(runs["one"], "warm")  # fills the bytecode cache, not timed
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    figures: dict[str, list[tuple[float, float, int]]] = {name: [] for name in runs}
    for round_number in range(options.repeat):
        for name, args in runs.items():
            wall, rss, status = run(args, options.bytecode)
            figures[name].append((wall, rss, status))
            print(
                f"round {round_number + 1} {name:>10}: {wall:7.2f} s  {rss:7.1f} MiB  exit {status}",
                flush=True,
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    shutil.rmtree(Path(runs["floor"][1]).parent, ignore_errors=True)
    one = statistics.median(wall for wall, _, _ in figures["one"])
    print(f"\n{'targets':>10}  {'wall s':>8}  {'x one':>6}  {'peak MiB':>8}")
    verdict = 0
    for name, found in figures.items():
        wall = statistics.median(w for w, _, _ in found)
        rss = statistics.median(r for _, r, _ in found)
        # Within one round the variants ran next to each other: the ratio of medians of the same rounds.
        ratio = wall / one
        print(f"{name:>10}  {wall:8.2f}  {ratio:6.2f}  {rss:8.1f}")
        if name == "floor":
            print(f"{'':>10}  (pytest alone, {200 * 34:,} empty tests: not a goal)")
        if name == "200":
            verdict = int(ratio > GOAL_RATIO or rss > GOAL_MIB)
            print(
                f"goal: 200 targets <= {GOAL_RATIO:g}x one ({ratio:.2f}x), < {GOAL_MIB:g} MiB ({rss:.0f} MiB)"
            )
    return verdict


if __name__ == "__main__":
    sys.exit(main())
