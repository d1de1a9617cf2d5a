"""``python -m pytest_reachability.sandbox SCENARIO``: run a sandbox in the foreground.

It prints ``export NAME=value`` lines first (so ``eval`` points kubectl, dig, curl and pytest at it) on
stdout, and ready-to-paste ``dig`` and ``curl --resolve`` lines for the target on stderr (its ports change
with every start), then runs until SIGINT or SIGTERM and stops cleanly (exit 0). ``--list`` names the
scenarios.

``--evaluate [SCENARIO ...]`` runs the built-in suite against every scenario with an ``expect:`` block (or
the ones named) and prints, per scenario, the expected and the actual top theory and whether it hit, then
the top-1 rate; it exits 1 when any scenario misses, so a user adding a rule sees what it changes.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
import time
from urllib.parse import urlsplit

from ..diagnosis.theory import dig
from . import Sandbox, SandboxInfo, ScenarioError, list_scenarios

HEALTH_PATH = "/health"  # the plugin's default --health-path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_reachability.sandbox",
        description="Run a local deployment (DNS, Kubernetes API, edges) from a scenario until interrupted.",
    )
    parser.add_argument("scenario", nargs="*", help="a shipped scenario name or a scenario YAML file")
    parser.add_argument("--list", action="store_true", help="list the shipped scenarios and exit")
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="run the suite against the scenarios (default: every one with an expect block) and "
        "print how often the top theory names the expected fault",
    )
    parser.add_argument(
        "--rankings",
        action="store_true",
        help="with --evaluate: list each scenario's other top-level theories under its row",
    )
    parser.add_argument(
        "-j", "--jobs", type=int, default=2, help="scenarios run at a time by --evaluate (default 2)"
    )
    parser.add_argument(
        "--probe-timeout",
        type=float,
        default=3.0,
        help="--probe-timeout of each suite run of --evaluate (default 3 s)",
    )
    return parser


def _evaluate(names: list[str], jobs: int, probe_timeout: float, rankings: bool = False) -> int:
    from .evaluate import evaluate, format_table

    if jobs < 1 or probe_timeout <= 0:
        print("error: --jobs must be at least 1 and --probe-timeout above 0", file=sys.stderr)
        return 2
    started = time.monotonic()

    def progress(row) -> None:
        print(
            f"# {row.scenario}: {'hit' if row.hit else 'MISS'} ({row.seconds:.1f}s)",
            file=sys.stderr,
            flush=True,
        )

    try:
        rows = evaluate(names or None, jobs=jobs, probe_timeout=probe_timeout, progress=progress)
    except ScenarioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(rows, rankings=rankings))
    print(f"wall time: {time.monotonic() - started:.0f}s for {len(rows)} scenarios, {jobs} at a time")
    return 0 if all(row.hit for row in rows) else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.evaluate:
        return _evaluate(args.scenario, args.jobs, args.probe_timeout, args.rankings)
    if args.list:
        try:
            scenarios = list_scenarios()
        except ScenarioError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        width = max(len(name) for name, _ in scenarios)
        for name, description in scenarios:
            print(f"{name.ljust(width)}  {description}")
        return 0
    if len(args.scenario) != 1:
        print("error: name one scenario (see --list)", file=sys.stderr)
        return 2
    try:
        sandbox = Sandbox(args.scenario[0])
    except ScenarioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    stop_requested = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop_requested.set()

    # Handlers first, so a signal arriving during start-up still leads to a clean stop.
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            info = sandbox.start()
        except OSError as error:
            print(f"error: cannot start sandbox {sandbox.scenario.name}: {error}", file=sys.stderr)
            return 1
        for name, value in info.environment().items():
            print(f"export {name}={shlex.quote(value)}")
        sys.stdout.flush()
        print("\n".join(try_it_lines(info)), file=sys.stderr, flush=True)
        print(
            f"# sandbox {info.scenario} running: {info.target}, API {info.api_url or 'not available'}; "
            "SIGINT or SIGTERM stops it",
            file=sys.stderr,
            flush=True,
        )
        while not stop_requested.wait(0.5):
            pass
        return 0
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def target_addresses(info: SandboxInfo, *, timeout: float = 2.0) -> dict[str, list[str]]:
    """Resolver -> the addresses it answers for the target's host (empty when it answers none)."""
    import dns.exception
    import dns.resolver

    host = urlsplit(info.target).hostname or ""
    answers: dict[str, list[str]] = {}
    for resolver_text in info.resolvers:
        address, _, port = resolver_text.rpartition(":")
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [address.strip("[]")]
        resolver.port = int(port)
        found: list[str] = []
        for record_type in ("A", "AAAA"):
            try:
                found += [rdata.address for rdata in resolver.resolve(host, record_type, lifetime=timeout)]
            except dns.exception.DNSException:
                continue
        answers[resolver_text] = found
    return answers


def try_it_lines(info: SandboxInfo) -> list[str]:
    """Ready-to-paste lines: ``dig`` on each sandbox resolver, ``curl --resolve`` on each address they
    answer."""
    parts = urlsplit(info.target)
    host, scheme = parts.hostname or "", parts.scheme or "http"
    port = parts.port or (443 if scheme == "https" else 80)
    answers = target_addresses(info)
    lines = [f"# try it by hand ({host} as the sandbox serves it; the ports change with every start):"]
    lines += [dig(host, resolver) for resolver in info.resolvers]
    # The zone's own servers, asked directly: what the caching resolvers will serve once their TTLs run out.
    lines += [dig(host, server).replace("+short", "+norec +short") for server in info.authoritative_servers]
    cacert = f"--cacert {shlex.quote(info.ca_bundle)} " if scheme == "https" else ""
    url = shlex.quote(f"{scheme}://{parts.netloc}{HEALTH_PATH}")
    for address in dict.fromkeys(a for found in answers.values() for a in found):
        bracketed = f"[{address}]" if ":" in address else address
        lines.append(f"curl -v {cacert}--resolve {host}:{port}:{bracketed} {url}")
    if not any(answers.values()):
        lines.append(f"# no sandbox resolver answers an address for {host}: nothing to curl")
    return lines


if __name__ == "__main__":
    sys.exit(main())
