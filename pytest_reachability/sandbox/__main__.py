"""``python -m pytest_reachability.sandbox SCENARIO``: run a sandbox in the foreground.

It prints ``export NAME=value`` lines first (so ``eval`` points kubectl, dig, curl and pytest at it),
then runs until SIGINT or SIGTERM and stops cleanly (exit 0). ``--list`` names the scenarios.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading

from . import Sandbox, ScenarioError, list_scenarios


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_reachability.sandbox",
        description="Run a local deployment (DNS, Kubernetes API, edges) from a scenario until interrupted.",
    )
    parser.add_argument("scenario", nargs="?", help="a shipped scenario name or a scenario YAML file")
    parser.add_argument("--list", action="store_true", help="list the shipped scenarios and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
    if not args.scenario:
        print("error: name a scenario (see --list)", file=sys.stderr)
        return 2
    try:
        sandbox = Sandbox(args.scenario)
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


if __name__ == "__main__":
    sys.exit(main())
