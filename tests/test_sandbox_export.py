"""``python -m pytest_reachability.sandbox``: besides the export lines, ready-to-paste ``dig`` and ``curl --resolve``
lines for the target -- pasted into a shell while the sandbox runs, they show the scenario's behaviour."""

from __future__ import annotations

import os
import select
import shlex
import shutil
import subprocess
import sys
import time

import pytest


def require(tool: str) -> None:
    if shutil.which(tool) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is required in CI")
        pytest.skip(f"{tool} is not installed")


def read_until_running(process: subprocess.Popen, timeout: float = 60) -> list[str]:
    """stderr lines up to the one saying the sandbox runs; raw reads so select() sees every byte."""
    buffer = b""
    deadline = time.monotonic() + timeout
    fd = process.stderr.fileno()
    while b" running: " not in buffer:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {buffer!r} after {timeout}s"
        readable, _, _ = select.select([fd], [], [], remaining)
        if readable:
            chunk = os.read(fd, 4096)
            assert chunk, f"sandbox exited early: {buffer!r}"
            buffer += chunk
    return buffer.decode().splitlines()


def pasted(line: str) -> subprocess.CompletedProcess:
    """A printed line run as a user would paste it, bounded in time."""
    argv = shlex.split(line)
    if argv[0] == "curl":
        argv[1:1] = ["--max-time", "5", "-s", "-o", os.devnull]
    else:
        argv += ["+time=2", "+tries=1"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize("scenario, answer, curl_exit", [
    ("incident-2025-12-08", "127.0.10.57", 52),  # DNS points at the dead edge: empty reply
    ("healthy-https", "127.0.10.53", 0),  # TLS with the sandbox's CA, which the line names
], ids=["incident", "healthy-https"])
def test_export_block_prints_dig_and_curl_lines_that_work(scenario: str, answer: str, curl_exit: int) -> None:
    require("dig")
    require("curl")
    process = subprocess.Popen([sys.executable, "-m", "pytest_reachability.sandbox", scenario],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = read_until_running(process)
        digs = [line for line in lines if line.startswith("dig ")]
        curls = [line for line in lines if line.startswith("curl ")]
        assert digs and curls, lines
        assert all(line.startswith("dig @127.0.0.1 -p ") and line.endswith(" 97v.test +short") for line in digs)
        for line in digs:
            done = pasted(line)
            assert done.returncode == 0 and done.stdout.split() == [answer], (line, done.stdout, done.stderr)
        assert [line.split("--resolve ")[1].split()[0].rsplit(":", 1)[1] for line in curls] == [answer]
        assert ("--cacert " in curls[0]) is scenario.startswith("healthy-https")
        done = pasted(curls[0])
        assert done.returncode == curl_exit, (curls[0], done.stderr[-500:])
        assert process.poll() is None
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()
