"""Section 15, performance: latency percentiles and error rate of the target under a bounded load.

Configured by ``[tool.reachability.performance]`` (see ``examples/reachability.toml``)::

    [tool.reachability.performance]
    path = "/health"
    requests = 200          # N requests in all (at most 100000)
    concurrency = 8         # C at a time (at most 256, at most N)
    p95-ms = 250
    p99-ms = 500
    max-error-rate = 0.01   # a fraction: 1% of the requests may fail
    deadline-s = 30         # the whole load stops here, finished or not

The load runs once per session and connects like the ``http`` fixture: to the address the configured
resolvers give (curl ``--resolve``), with the target's Host and SNI. An error is a request that failed
or answered outside ``expect-status`` (default 200). While it runs a progress line is written to the
terminal (not from xdist workers, whose output no terminal shows). p50/p95/p99 and the error rate are
recorded as ``performance`` evidence.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from pytest_reachability.http_session import PinnedAddressAdapter, read_environment_once
from pytest_reachability.prefetch import pinned_address

pytestmark = pytest.mark.section("performance", requires=["api-health"])

PROGRESS_INTERVAL = 0.25


@pytest.fixture(scope="module")
def performance_config(app_config):
    if app_config.performance is None:
        pytest.skip(app_config.not_configured("performance"))
    return app_config.performance


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class LoadResult:
    url: str
    requests: int  # planned
    concurrency: int
    completed: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list, repr=False)  # of requests that got an answer
    error_kinds: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    deadline_reached: bool = False
    thresholds: dict[str, Any] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.completed if self.completed else 1.0

    def percentiles(self) -> dict[str, float | None]:
        ordered = sorted(self.latencies_ms)
        return {
            name: None if value is None else round(value, 2)
            for name, value in (
                ("p50_ms", percentile(ordered, 0.50)),
                ("p95_ms", percentile(ordered, 0.95)),
                ("p99_ms", percentile(ordered, 0.99)),
            )
        }

    def to_evidence(self) -> dict[str, Any]:
        return {
            "requests": self.completed,
            "planned": self.requests,
            "concurrency": self.concurrency,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 4),
            **self.percentiles(),
            "error_kinds": dict(self.error_kinds),
            "seconds": round(self.seconds, 3),
            "deadline_reached": self.deadline_reached,
            "url": self.url,
            "thresholds": self.thresholds,
        }

    def progress_line(self) -> str:
        return (
            f"performance: {self.completed}/{self.requests} requests to {self.url} at concurrency "
            f"{self.concurrency}, {self.errors} errors, {self.seconds:.1f}s"
        )


class ProgressLine:
    """A line on the terminal that follows the load; silent where no terminal shows it."""

    def __init__(self, config: pytest.Config) -> None:
        self.reporter = None
        self.capture = config.pluginmanager.get_plugin("capturemanager")
        if not hasattr(config, "workerinput"):
            self.reporter = config.pluginmanager.get_plugin("terminalreporter")
        self.isatty = bool(self.reporter is not None and self.reporter.isatty)
        self.last_quarter = -1
        self.last_line = ""
        self.started = False

    def _paused_capture(self) -> Any:
        if self.capture is None:
            return contextlib.nullcontext()
        return self.capture.global_and_fixture_disabled()

    def update(self, result: LoadResult, *, final: bool = False) -> None:
        if self.reporter is None:
            return
        quarter = result.completed * 4 // max(1, result.requests)
        if not final and not self.isatty and quarter == self.last_quarter:
            return  # in a log, a line per quarter of the load is enough
        self.last_quarter = quarter
        line = result.progress_line()
        if final and line == self.last_line and not self.isatty:
            return
        self.last_line = line
        with self._paused_capture():
            if not self.started:
                # Start on a line of our own: after the test's name (-v) or the progress dots (-q).
                writer = getattr(self.reporter, "_tw", None)
                if getattr(writer, "width_of_current_line", 0):
                    self.reporter.write("\n")
                self.reporter.currentfspath = None
                self.started = True
            if self.isatty:
                self.reporter.rewrite(line)
                if final:
                    self.reporter.write("\n")
            else:
                self.reporter.write_line(line)


def run_load(config, target, settings, address: str | None, progress: ProgressLine) -> LoadResult:
    """``config.requests`` GETs of ``config.path``,
    ``config.concurrency`` at a time, bounded by the deadline."""
    url = target.base_url + config.path
    result = LoadResult(
        url=url, requests=config.requests, concurrency=config.concurrency, thresholds=config.thresholds()
    )
    lock = threading.Lock()
    issued = 0
    started = time.monotonic()
    deadline = started + config.deadline_s

    def next_ticket() -> bool:
        nonlocal issued
        with lock:
            if issued >= config.requests or time.monotonic() >= deadline:
                return False
            issued += 1
            return True

    def worker() -> None:
        with requests.Session() as session:
            # The target's credentials, as every other check sends
            # them: without them a protected target is 401s.
            if target.auth is not None:
                session.auth = target.auth
            read_environment_once(session, url)
            if settings.ca_bundle:
                session.verify = settings.ca_bundle
            if address:
                adapter = PinnedAddressAdapter(target.host, address, max_retries=0, pool_maxsize=1)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
            while next_ticket():
                timeout = max(0.05, min(settings.probe_timeout, deadline - time.monotonic()))
                began = time.perf_counter()
                kind = None
                try:
                    response = session.get(url, timeout=timeout, allow_redirects=False)
                    response.content  # noqa: B018 - the whole body is part of the latency
                    ms = (time.perf_counter() - began) * 1000
                    if response.status_code not in config.expect_status:
                        kind = f"HTTP {response.status_code}"
                except requests.RequestException as error:
                    ms, kind = None, type(error).__name__
                with lock:
                    result.completed += 1
                    if ms is not None:
                        result.latencies_ms.append(ms)
                    if kind is not None:
                        result.errors += 1
                        result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1

    threads = [
        threading.Thread(target=worker, name=f"load {i}", daemon=True) for i in range(config.concurrency)
    ]
    for thread in threads:
        thread.start()
    # Every request is bounded by the deadline, so the workers end shortly after it.
    join_by = deadline + settings.probe_timeout + 1
    while time.monotonic() < join_by:
        alive = [thread for thread in threads if thread.is_alive()]
        if not alive:
            break
        alive[0].join(PROGRESS_INTERVAL)
        result.seconds = time.monotonic() - started
        progress.update(result)
    result.seconds = time.monotonic() - started
    result.deadline_reached = result.completed < config.requests
    progress.update(result, final=True)
    return result


@pytest.fixture(scope="module")
def load_result(performance_config, target, reachability_settings, request) -> LoadResult:
    address = pinned_address(target, reachability_settings, lambda: request.getfixturevalue("dns"))
    return run_load(performance_config, target, reachability_settings, address, ProgressLine(request.config))


def require_finished(result: LoadResult, config) -> None:
    finished = not result.deadline_reached
    assert finished, (
        f"GET {result.url}: only {result.completed} of {result.requests} requests finished within the "
        f"{config.deadline_s:g}s deadline (deadline-s)"
    )


def test_latency_percentiles_within_thresholds(load_result, performance_config, evidence):
    evidence.record("performance", load_result)
    config = performance_config
    require_finished(load_result, config)
    figures = load_result.percentiles()
    answered = figures["p95_ms"] is not None
    assert answered, (
        f"GET {load_result.url}: none of {load_result.completed} requests was answered "
        f"({load_result.error_kinds})"
    )
    over = [
        f"{name[:3]} {figures[name]:g} ms > {limit:g} ms"
        for name, limit in (("p95_ms", config.p95_ms), ("p99_ms", config.p99_ms))
        if limit is not None and figures[name] > limit
    ]
    assert not over, (
        f"GET {load_result.url} x{load_result.completed} at concurrency {load_result.concurrency}: "
        f"{', '.join(over)} (p50 {figures['p50_ms']:g} ms)"
    )


def test_error_rate_within_limit(load_result, performance_config, evidence):
    evidence.record("performance", load_result)
    config = performance_config
    require_finished(load_result, config)
    kinds = ", ".join(f"{kind} x{count}" for kind, count in sorted(load_result.error_kinds.items()))
    within = load_result.error_rate <= config.max_error_rate
    assert within, (
        f"GET {load_result.url}: {load_result.errors} of {load_result.completed} requests failed "
        f"({load_result.error_rate:.1%}: {kinds}), expected at most {config.max_error_rate:.1%}"
    )
