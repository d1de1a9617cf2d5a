"""``--wait DURATION``: the gates' probe retried against a real loopback server that turns healthy (or never
does), through real pytest runs in fresh processes: healthy before the deadline, the deadline reached, xdist,
SIGTERM and SIGINT during the wait, bad values; and the backoff and deadline arithmetic on their own."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pytest_reachability.wait import (
    BACKOFF_CAP,
    CheckResult,
    ProgressLine,
    WaitError,
    backoff_delay,
    parse_wait,
    timeline_events,
    wait_until_healthy,
)
from tests.servers import LoopbackServer, empty_reply, healthy, interruptible

USER_TESTS = """
import pytest

@pytest.mark.gate("api-health")
def test_health(probe):
    results = probe.health()
    assert all(r.ok for r in results), [r.summary for r in results]

@pytest.mark.requires("api-health")
def test_after(tmp_path_factory):
    import os, time
    marker = os.environ.get("WAIT_TEST_RAN_AT")
    if marker:
        with open(marker, "a") as f:
            f.write(f"{time.time()}\\n")
"""


class TurnsHealthy:
    """A loopback HTTP server answering with an empty reply (curl 52) until ``after`` seconds after its
    first request, then 200. Counted from the first request, not from the server's start: a loaded machine
    can take longer than ``after`` to start the run that waits."""

    def __init__(self, after: float) -> None:
        self.after = after
        self.requests: list[float] = []
        self._lock = threading.Lock()
        self._first: float | None = None
        self.server = LoopbackServer(self._behaviour)

    def _behaviour(self, conn: socket.socket, server: LoopbackServer) -> None:
        with self._lock:
            self.requests.append(time.time())
            if self._first is None:
                self._first = time.monotonic()
            first = self._first
        if time.monotonic() - first < self.after:
            empty_reply(conn, server)
        else:
            healthy()(conn, server)

    def __enter__(self) -> TurnsHealthy:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    @property
    def target(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


def clean_environment(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("REACHABILITY_") and k not in ("CI", "GITHUB_ACTIONS")
    }
    env.update(extra)
    return env


def run_pytest(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            str(tmp_path / "test_user.py"),
            *args,
        ],
        cwd=tmp_path,
        env=env or clean_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_valid_results(document: dict) -> None:
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is in the test extras: pip install -e '.[test]'"
    )
    from pytest_reachability.report.json import schema_path

    errors = list(
        jsonschema.Draft202012Validator(json.loads(schema_path().read_text())).iter_errors(document)
    )
    assert not errors, [error.message for error in errors]


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5m", 90.0),
        ("500ms", 0.5),
        ("0", 0.0),
        (45, 45.0),
    ],
)
def test_durations_are_read_in_the_usual_spellings(text, seconds):
    assert parse_wait(text) == seconds


@pytest.mark.parametrize("text", ["abc", "-5", "5 minutes", "", "1x", "inf", "nan", "25h", True])
def test_bad_durations_are_refused_with_what_is_expected(text):
    with pytest.raises(WaitError, match="expected a duration like 90, 90s, 5m"):
        parse_wait(text)


@pytest.mark.parametrize("args", [["--wait", "abc"], ["--wait=-5"], ["--wait", "5 minutes"]])
def test_a_bad_wait_on_the_command_line_is_one_line_and_exit_4(tmp_path, args):
    result = run_pytest(tmp_path, "--target", "http://127.0.0.1:9", *args)
    assert result.returncode == 4, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "--wait" in errors[0] and "expected a duration" in errors[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_bad_wait_in_the_environment_or_the_file_is_a_usage_error(tmp_path):
    result = run_pytest(
        tmp_path, "--target", "http://127.0.0.1:9", env=clean_environment(REACHABILITY_WAIT="soon")
    )
    assert result.returncode == 4 and "REACHABILITY_WAIT" in result.stderr, result.stderr
    (tmp_path / "pyproject.toml").write_text("[tool.reachability]\nwait = -1\n")
    result = run_pytest(tmp_path, "--target", "http://127.0.0.1:9")
    assert result.returncode == 4 and "'wait'" in result.stderr and "out of range" in result.stderr, (
        result.stderr
    )


def test_wait_from_the_file_is_stated_in_the_header(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.reachability]\nwait = "2m"\n')
    result = run_pytest(tmp_path, "--target", "http://127.0.0.1:9", "--collect-only", "-v")
    assert "reachability: wait: up to 120 s for the gates to pass before the suite runs" in result.stdout, (
        result.stdout
    )


# --------------------------------------------------------------------------- the loop on its own


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_backoff_grows_to_its_cap_with_jitter():
    assert backoff_delay(1, rng=lambda: 0.0) == pytest.approx(0.25)
    assert backoff_delay(1, rng=lambda: 1.0) == pytest.approx(0.5)
    assert backoff_delay(3, rng=lambda: 1.0) == pytest.approx(2.0)
    assert backoff_delay(50, rng=lambda: 1.0) == pytest.approx(BACKOFF_CAP)
    assert backoff_delay(50, rng=lambda: 0.0) == pytest.approx(BACKOFF_CAP / 2)


def test_the_deadline_is_never_passed_by_more_than_one_probe_timeout():
    fake = FakeTime()
    timeouts = []

    def check(timeout: float) -> CheckResult:
        timeouts.append(timeout)
        fake.now += 2 * timeout  # DNS then HTTP, each using its whole timeout
        return CheckResult(reasons=["api-health: 97v.test → 127.0.10.57 empty reply"])

    outcome = wait_until_healthy(
        check,
        budget=30,
        probe_timeout=5,
        clock=fake.clock,
        wall_clock=fake.clock,
        sleep=fake.sleep,
        rng=lambda: 0.5,
    )
    assert outcome.outcome == "deadline"
    assert outcome.last_reason == "api-health: 97v.test → 127.0.10.57 empty reply"
    assert fake.now - 1000.0 <= 30 + 5
    assert max(fake.sleeps) <= BACKOFF_CAP
    assert timeouts[0] == 5 and min(timeouts) < 5  # shortened near the deadline


def test_agreement_counts_from_the_last_disagreement():
    fake = FakeTime()
    answers = iter(
        [
            CheckResult(["x"], caches_agree=True),
            CheckResult(["x"], caches_agree=False),
            CheckResult(["x"], caches_agree=True),
            CheckResult([], caches_agree=True),
        ]
    )

    def check(timeout: float) -> CheckResult:
        fake.now += 1
        return next(answers)

    outcome = wait_until_healthy(
        check,
        budget=60,
        probe_timeout=5,
        clock=fake.clock,
        wall_clock=fake.clock,
        sleep=fake.sleep,
        rng=lambda: 0.0,
    )
    assert outcome.healthy and outcome.attempts == 4
    assert outcome.caches_agreed_at == pytest.approx(1000.0 + 3 + sum(fake.sleeps[:2]))


def test_progress_is_redrawn_on_a_terminal_and_throttled_in_ci():
    written: list[str] = []
    now = [0.0]
    plain = ProgressLine(written.append, redraw=False, interval=5, clock=lambda: now[0])
    for second in range(12):
        now[0] = second
        plain.update(f"attempt {second}")
    assert written == ["attempt 0\n", "attempt 5\n", "attempt 10\n"]
    written.clear()
    tty = ProgressLine(written.append, redraw=True, clock=lambda: 0.0)
    tty.update("first")
    tty.update("second")
    tty.finish("done")
    assert written == ["\r\x1b[Kfirst", "\r\x1b[Ksecond", "\r\x1b[K", "done\n"]


def test_timeline_rows_fill_the_resolved_at_row():
    rows = timeline_events(
        {
            "outcome": "healthy",
            "budget": 60,
            "started": "2025-12-08T10:00:00Z",
            "attempts": 4,
            "seconds_to_healthy": 12.5,
            "healthy_at": "2025-12-08T10:00:12Z",
            "caches_agreed_at": "2025-12-08T10:00:11Z",
            "first_reason": "api-health: x",
        }
    )
    assert rows[-1] == ("2025-12-08 10:00:12 UTC", "resolved at: healthy after 12.5 s (4 attempts)")
    assert ("2025-12-08 10:00:11 UTC", "every resolver agreed with the authoritative servers") in rows


# --------------------------------------------------------------------------- real runs


def test_healthy_before_the_deadline_then_the_suite_runs_once(tmp_path):
    with TurnsHealthy(after=2.0) as server:
        result = run_pytest(
            tmp_path,
            "--target",
            server.target,
            "--wait",
            "30",
            "--probe-timeout",
            "2",
            f"--results-json={tmp_path / 'results.json'}",
            f"--incident-report={tmp_path / 'incident.md'}",
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "waiting: api-health: 127.0.0.1 → 127.0.0.1 empty reply, attempt 1, 0 s of 30 s" in output
    document = json.loads((tmp_path / "results.json").read_text())
    assert_valid_results(document)
    wait = document["run"]["wait"]
    assert wait["outcome"] == "healthy" and wait["attempts"] >= 2
    assert 1.5 <= wait["seconds_to_healthy"] < 30
    assert wait["first_reason"].startswith("api-health: 127.0.0.1 → 127.0.0.1 empty reply")
    assert f"healthy after {wait['seconds_to_healthy']:.1f} s of --wait 30 s" in output
    # The waiting is over before the suite starts: the gate's own request is one more than the attempts.
    assert len(server.requests) == wait["attempts"] + 1


def test_deadline_reached_runs_the_suite_and_exits_1_with_the_last_reason(tmp_path):
    with LoopbackServer(empty_reply) as server:
        started = time.monotonic()
        result = run_pytest(
            tmp_path,
            "--target",
            f"http://127.0.0.1:{server.port}",
            "--wait",
            "3",
            "--probe-timeout",
            "1",
            f"--results-json={tmp_path / 'results.json'}",
        )
        elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert (
        "not healthy within --wait 3 s; last reason: api-health: 127.0.0.1 → 127.0.0.1 empty reply" in output
    )
    assert "1 failed" in output and "1 blocked" in output  # the suite ran and reported the failure
    document = json.loads((tmp_path / "results.json").read_text())
    assert_valid_results(document)
    wait = document["run"]["wait"]
    assert wait["outcome"] == "deadline" and wait["seconds_to_healthy"] is None
    assert wait["waited"] <= 3 + 1  # never more than one probe timeout past the deadline
    assert elapsed < 60


def test_under_xdist_the_wait_happens_once_before_the_workers_start(tmp_path):
    pytest.importorskip("xdist")
    marker = tmp_path / "ran-at.txt"
    with TurnsHealthy(after=2.0) as server:
        result = run_pytest(
            tmp_path,
            "--target",
            server.target,
            "--wait",
            "30",
            "--probe-timeout",
            "2",
            "-n",
            "2",
            f"--results-json={tmp_path / 'results.json'}",
            env=clean_environment(WAIT_TEST_RAN_AT=str(marker)),
        )
    assert result.returncode == 0, result.stdout + result.stderr
    wait = json.loads((tmp_path / "results.json").read_text())["run"]["wait"]
    assert wait["outcome"] == "healthy"
    assert len(server.requests) == wait["attempts"] + 1  # workers did not wait again
    healthy_at = server.requests[wait["attempts"] - 1]
    ran_at = [float(line) for line in marker.read_text().split()]
    assert ran_at and min(ran_at) >= healthy_at


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
def test_the_wait_ends_promptly_and_cleanly_on_a_signal(tmp_path, how):
    with LoopbackServer(empty_reply) as server:
        (tmp_path / "test_user.py").write_text(USER_TESTS)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-q",
                str(tmp_path / "test_user.py"),
                "--target",
                f"http://127.0.0.1:{server.port}",
                "--wait",
                "300",
                "--probe-timeout",
                "1",
            ],
            cwd=tmp_path,
            env=clean_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=interruptible,
        )
        try:
            deadline = time.monotonic() + 60
            while server.connections < 2:
                assert time.monotonic() < deadline, "the wait never probed"
                time.sleep(0.1)
            sent = time.monotonic()
            process.send_signal(getattr(signal, how))
            output, _ = process.communicate(timeout=30)
            ended = time.monotonic() - sent
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert ended < 10, f"took {ended:.1f}s to stop"
    assert "Traceback" not in output


def test_the_step_summary_and_the_action_output_carry_the_time_to_healthy(tmp_path):
    from pytest_reachability import ci
    from pytest_reachability.merge import load_shard

    with TurnsHealthy(after=1.0) as server:
        result = run_pytest(
            tmp_path,
            "--target",
            server.target,
            "--wait",
            "30",
            "--probe-timeout",
            "2",
            f"--results-json={tmp_path / 'results.json'}",
        )
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads((tmp_path / "results.json").read_text())
    outcome = ci.build_outcome(
        ci.ActionInputs(target=server.target, wait="30"),
        0,
        load_shard(document, "results.json"),
        None,
        [],
        tmp_path,
    )
    seconds = document["run"]["wait"]["seconds_to_healthy"]
    assert f"**Waited:** healthy after {seconds:.1f} s of --wait 30 s" in outcome.summary
    assert outcome.outputs["seconds-to-healthy"] == str(seconds)
    assert "--wait=30" in ci.pytest_command(ci.ActionInputs(target="t", wait="30"), tmp_path, None)


def test_a_bad_wait_input_of_the_action_is_refused():
    from pytest_reachability import ci

    with pytest.raises(ValueError, match="input wait: 'later' is not a duration"):
        ci.ActionInputs.from_environment({"INPUT_TARGET": "97v.test", "INPUT_WAIT": "later"})


def test_the_progress_and_summary_lines_are_masked(tmp_path):
    with TurnsHealthy(after=1.0) as server:
        result = run_pytest(
            tmp_path, "--target", server.target, "--wait", "30", "--probe-timeout", "2", "--mask=127.0.0.1"
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    waiting = [line for line in output.splitlines() if line.startswith(("waiting:", "reachability: healthy"))]
    assert waiting and all("127.0.0.1" not in line for line in waiting), waiting
