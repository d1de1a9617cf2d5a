"""``python -m pytest_reachability.sandbox``: besides the export lines, ready-to-paste ``dig`` and
``curl --resolve`` lines for the target -- pasted into a shell while the sandbox runs, they show the
scenario's behaviour."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest


def require(tool: str) -> None:
    if shutil.which(tool) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is required in CI")
        pytest.skip(f"{tool} is not installed")


def wait_until_running(log: Path, process: subprocess.Popen, timeout: float = 60) -> list[str]:
    """The stderr lines (written to ``log``) once the sandbox says it runs; bounded in time."""
    deadline = time.monotonic() + timeout
    while " running: " not in log.read_text():
        assert process.poll() is None, f"sandbox exited early: {log.read_text()!r}"
        assert time.monotonic() < deadline, f"only {log.read_text()!r} after {timeout}s"
        time.sleep(0.1)
    return log.read_text().splitlines()


def pasted(line: str) -> subprocess.CompletedProcess:
    """A printed line run as a user would paste it, bounded in time."""
    argv = shlex.split(line)
    if argv[0] == "curl":
        argv[1:1] = ["--max-time", "5", "-s", "-o", os.devnull]
    else:
        argv += ["+time=2", "+tries=1"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize(
    "scenario, answer, curl_exit",
    [
        ("incident-2025-12-08", "127.0.10.57", 52),  # DNS points at the dead edge: empty reply
        ("healthy-https", "127.0.10.53", 0),  # TLS with the sandbox's CA, which the line names
    ],
    ids=["incident", "healthy-https"],
)
def test_export_block_prints_dig_and_curl_lines_that_work(
    tmp_path: Path, scenario: str, answer: str, curl_exit: int
) -> None:
    require("dig")
    require("curl")
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "pytest_reachability.sandbox", scenario],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        lines = wait_until_running(log, process)
        digs = [line for line in lines if line.startswith("dig ")]
        curls = [line for line in lines if line.startswith("curl ")]
        assert digs and curls, lines
        assert all(
            line.startswith("dig @127.0.0.1 -p ") and line.endswith(" 97v.test +short") for line in digs
        )
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
