"""Benchmark (b): one name over 5 resolvers, one of them slow; wall time ÷ the slowest resolver's time.

Four real dnsmasq resolvers answer at once, a fifth answers after ``--delay`` seconds. Asked one after
another the wall time would be the sum; ``resolve_all`` asks them concurrently, so the goal is
wall ÷ slowest <= 1.2. Prints each run and the median of ``--runs`` (default 5).

    python benchmarks/bench_dns_resolvers.py [--delay 0.5] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import servers  # noqa: E402  (the loopback servers the tests use)

from pytest_reachability.probes.dns import resolve_all  # noqa: E402

GOAL = 1.2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--delay", type=float, default=0.5, help="seconds the slow resolver waits (default 0.5)"
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if servers.require_tool("dnsmasq") is None:
        print("dnsmasq not installed (apt-get install dnsmasq)", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        fast = [stack.enter_context(servers.Dnsmasq("--address=/api.test/127.0.10.57")) for _ in range(4)]
        slow = stack.enter_context(servers.SlowResolver("127.0.10.57", args.delay))
        resolvers = [server.resolver for server in fast] + [slow.resolver]
        resolve_all("api.test", resolvers, timeout=5)  # warm-up: imports, first sockets
        ratios, walls, slowest_list = [], [], []
        for run in range(1, args.runs + 1):
            started = time.perf_counter()
            report = resolve_all("api.test", resolvers, timeout=5)
            wall = time.perf_counter() - started
            slowest = max(answer.ms for answer in report.answers) / 1000
            total = sum(answer.ms for answer in report.answers) / 1000
            assert all(answer.ok for answer in report.answers), [a.error for a in report.answers]
            ratios.append(wall / slowest)
            walls.append(wall)
            slowest_list.append(slowest)
            print(
                f"run {run}: wall {wall * 1000:.1f} ms, slowest resolver {slowest * 1000:.1f} ms, "
                f"sum of resolvers {total * 1000:.1f} ms, wall/slowest {wall / slowest:.3f}"
            )
    ratio = statistics.median(ratios)
    print(
        f"median of {args.runs}: wall {statistics.median(walls) * 1000:.1f} ms, slowest "
        f"{statistics.median(slowest_list) * 1000:.1f} ms, "
        f"wall/slowest {ratio:.3f} (goal <= {GOAL}) {'MET' if ratio <= GOAL else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
