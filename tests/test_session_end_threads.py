"""The session's end waits (bounded) for background network work still in flight.

A cluster read the tests did not need (a run whose gate failed within a second) can still be reading its
response when pytest returns. If its daemon thread wakes in that socket read while the interpreter
finalizes, CPython 3.11 aborts the process: exit code -6 (SIGABRT) instead of the run's 1, so a CI gate
reads a crash, not a verdict."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from pytest_reachability import prefetch
from pytest_reachability.sandbox import Sandbox
from pytest_reachability.sandbox.evaluate import SUITE_ARGS


def test_a_refused_cluster_read_in_flight_at_the_end_does_not_abort_the_run(tmp_path: Path) -> None:
    """The sandbox in this process (as the control-plane tests run it), the suite in a child: the child's
    background reads of the refused namespace are still in flight when its session ends."""
    sandbox = Sandbox("cluster-forbidden")
    info = sandbox.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REACHABILITY_", "PYTEST_"))}
        env.update(info.environment())
        env["KUBECONFIG"] = info.kubeconfig or ""
        env["HOME"] = str(tmp_path)
        codes = [
            subprocess.run(
                [sys.executable, "-m", "pytest", *SUITE_ARGS, f"--results-json={tmp_path / 'results.json'}"],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                timeout=300,
            ).returncode
            for _ in range(2)
        ]
    finally:
        sandbox.stop()
    assert codes == [1, 1]  # the verdict: one check failed (cluster-access), not -6


def test_join_background_waits_for_a_read_in_flight_and_is_bounded() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname(), timeout=5)
        accepted, _ = server.accept()
        try:
            thread = prefetch.start_background(client.recv, "test-read", (16,))
            assert prefetch.join_background(0.2) == ["test-read"]  # still reading: named, not waited for
            threading.Timer(0.3, accepted.sendall, (b"answer",)).start()
            started = time.monotonic()
            assert prefetch.join_background(5.0) == []
            assert time.monotonic() - started < 4.0
            assert not thread.is_alive()
        finally:
            accepted.close()
            client.close()
