"""Benchmark: what distance costs the built-in suite, at 0 and at 50 ms one-way latency.

For each latency the script writes a scenario in a temporary directory that is the bundled scenario plus
``latency: <ms>`` (``base: healthy``; the sandbox adds the delay in user space to every DNS server, edge and
API server: each exchange costs a round trip, twice the one-way delay) and runs
``python -m pytest --sandbox=<file> -p no:cacheprovider -q`` from the repository root (the built-in suite),
timed from outside as ``bench_suite.py`` times it. After one uncounted warm-up run per latency, the
latencies take turns for ``--runs`` rounds. It prints every run's wall time and outcome, the medians, their
difference, and the difference in round trips of the higher latency; then the median of each round's own
difference (the latencies of a round run back to back), in wall time and in pytest's own time. The goal is
judged on the larger of those two.

    python benchmarks/bench_latency.py [--runs 3] [--scenario healthy] [--latency-ms 50]
                                       [--requests N] [--per-part] [--timeout 600]

``--per-part`` adds three runs per round with the latency on one part only (``{dns: 50ms}``, ``{edges:
50ms}``, ``{apiserver: 50ms}``): their differences say how many sequential round trips each part costs.

``--requests`` sets the performance section's request count (default: the scenario's own): that section
sends its requests ``concurrency`` at a time, so it costs requests / concurrency round trips by design.

Goal: the difference at 50 ms is at most 8 round trips (0.8 s): the suite's independent network work
started together, not one round trip per check.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_suite import ROOT, run_env, run_suite

GOAL_ROUND_TRIPS = 8


def latency_scenario(
    directory: Path, scenario: str, label: str, latency: str | dict[str, str], requests: int | None
) -> Path:
    """A scenario file: ``scenario`` with ``latency: <latency>`` (and the performance requests)."""
    import yaml

    document: dict = {
        "name": "bench-latency-" + re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-"),
        "description": f"{scenario} at {label} one-way latency",
        "base": scenario,
        "latency": latency,
    }
    if requests is not None:
        document["application"] = {"performance": {"requests": requests}}
    path = directory / f"{document['name']}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="counted runs per latency (median)")
    parser.add_argument("--scenario", default="healthy", help="the bundled scenario (or a file) to run")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="one-way latency of the far runs")
    parser.add_argument("--requests", type=int, default=None, help="the performance section's requests")
    parser.add_argument("--per-part", action="store_true", help="also the latency on each part alone")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per pytest run")
    args = parser.parse_args(argv)
    if args.runs < 1 or not 0 < args.latency_ms <= 2000 or (args.requests is not None and args.requests < 1):
        parser.error("--runs and --requests must be at least 1, --latency-ms above 0 and at most 2000")

    from pytest_reachability.sandbox import ScenarioError, load_scenario

    workdir = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    try:
        far = f"{args.latency_ms:g}ms"
        variants: dict[str, str | dict[str, str]] = {"0 ms": "0ms", f"{far} all": far}
        if args.per_part:
            variants.update({f"{far} {part}": {part: far} for part in ("dns", "edges", "apiserver")})
        files = {}
        for label, latency in variants.items():
            files[label] = latency_scenario(workdir, args.scenario, label, latency, args.requests)
            try:
                load_scenario(files[label])
            except ScenarioError as error:
                print(f"bench_latency: {error}", file=sys.stderr)
                return 2
        env = run_env(workdir / "pycache", None)
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
        print(
            f"commit {commit or 'unknown'}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Python "
            f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, load average (1 min) "
            f"{os.getloadavg()[0]:.2f}; scenario {args.scenario}, {args.runs} runs per latency"
        )
        for label in variants:  # warm-up: bytecode cache, PostgreSQL's binaries in the page cache
            run_suite(files[label], 0, env, False, args.timeout)
        walls: dict[str, list[float]] = {label: [] for label in variants}
        sessions: dict[str, list[float]] = {label: [] for label in variants}
        for round_number in range(1, args.runs + 1):
            for label in variants:
                run = run_suite(files[label], 0, env, False, args.timeout)
                walls[label].append(run["wall"])
                sessions[label].append(run["session"])
                print(
                    f"  run {round_number} latency {label:<16} wall {run['wall']:6.2f} s, "
                    f"pytest {run['session']:6.2f} s, {run['outcome']}"
                )
        medians = {label: statistics.median(times) for label, times in walls.items()}
        session_medians = {label: statistics.median(times) for label, times in sessions.items()}
        near = medians["0 ms"]
        round_trip = 2 * args.latency_ms / 1000
        for label, median in medians.items():
            difference = median - near
            session_difference = session_medians[label] - session_medians["0 ms"]
            print(
                f"median wall at {label:<16} {median:6.2f} s, difference {difference:+6.2f} s = "
                f"{difference / round_trip:5.1f} round trips of {round_trip * 1000:g} ms; pytest's own time "
                f"{session_medians[label]:6.2f} s, {session_difference / round_trip:+5.1f} round trips"
            )

        # Each round ran every latency back to back: the difference within a round leaves out what the
        # machine's other work did to a whole round (the wall time's start-up varies by +-0.5 s here).
        def within_rounds(times: dict[str, list[float]], label: str) -> float:
            pairs = zip(times[label], times["0 ms"], strict=True)
            differences = [far_time - near_time for far_time, near_time in pairs]
            return statistics.median(differences) / round_trip

        paired = {
            label: (within_rounds(walls, label), within_rounds(sessions, label))
            for label in variants
            if label != "0 ms"
        }
        for label, (wall_trips, session_trips) in paired.items():
            print(
                f"median of the rounds' differences at {label:<16} wall {wall_trips:5.1f} round trips, "
                f"pytest's own time {session_trips:5.1f}"
            )
        trips = max(paired[f"{far} all"])
        verdict = "met" if trips <= GOAL_ROUND_TRIPS else "not met"
        print(
            f"goal: at most {GOAL_ROUND_TRIPS} round trips at {far} (the rounds' median difference, wall and "
            f"pytest's own time): {verdict}"
        )
        print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        print(f"bench_latency: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
