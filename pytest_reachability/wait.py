"""``--wait DURATION``: retry the gates' probes until the target is healthy or the deadline is reached.

A post-deploy gate runs seconds after ``kubectl apply``: the LoadBalancer may still be provisioning, pods
starting, a DNS change sitting in resolver caches. Before the suite runs, :func:`wait_until_healthy`
repeats a check (by default :func:`health_check`: ``GET <health-path>`` on every address the resolvers
give, and, where the zone's authoritative servers can be found, every resolver agreeing with them) with
capped exponential backoff and jitter until it passes or the time is up, then the suite runs once,
normally. The outcome (:class:`WaitOutcome`) is plain data for the JSON results, the history, the step
summary and the incident report's timeline.

Example::

    outcome = wait_until_healthy(lambda: health_check(target, settings), budget=300, probe_timeout=5,
                                 progress=ProgressLine(sys.stderr.write, redraw=False))
    outcome.healthy, outcome.seconds_to_healthy, outcome.last_reason

No pytest here: the plugin's hooks (``wait_hooks``) call these functions.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .results import iso_utc

__all__ = [
    "BACKOFF_CAP",
    "CheckResult",
    "ProgressLine",
    "WaitError",
    "WaitOutcome",
    "backoff_delay",
    "describe_wait",
    "health_check",
    "parse_wait",
    "timeline_events",
    "wait_until_healthy",
]

BACKOFF_FIRST = 0.5  # seconds before the second attempt
BACKOFF_CAP = 5.0  # longest pause between attempts: a fix is seen at most this long after it lands
MIN_ATTEMPT_TIMEOUT = 0.25  # an attempt is not started with less time than this left
PROGRESS_INTERVAL = 5.0  # seconds between plain progress lines (CI logs); a terminal is redrawn every attempt
MAX_WAIT = 86400.0
CACHE_EXPIRY_MARGIN = 0.2  # seconds after a cached answer's TTL runs out before asking again
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
WAIT_EXPECTED = "a duration like 90, 90s, 5m or 1h30m (0 disables waiting, at most 24h)"


class WaitError(ValueError):
    """A wait value that cannot be used; ``str()`` is one line saying what is expected."""


def parse_wait(value: Any) -> float:
    """Seconds of ``value``.

    A number of seconds, or a duration text like ``90s``, ``5m``, ``1h30m``, ``1.5m``.

    >>> parse_wait("1m30s"), parse_wait(45), parse_wait("0")
    (90.0, 45.0, 0.0)
    """
    if isinstance(value, bool):
        raise WaitError(f"{value!r} is not a duration; expected {WAIT_EXPECTED}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION_PART.findall(text)
            if not text or "".join(number + unit for number, unit in parts) != text:
                raise WaitError(f"{str(value)!r} is not a duration; expected {WAIT_EXPECTED}") from None
            seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_WAIT:
        raise WaitError(f"{value!r} is out of range; expected {WAIT_EXPECTED}")
    return seconds


def backoff_delay(
    attempt: int,
    *,
    first: float = BACKOFF_FIRST,
    cap: float = BACKOFF_CAP,
    rng: Callable[[], float] = random.random,
) -> float:
    """The pause after failed attempt ``attempt`` (1-based): exponential, capped, with "equal jitter".

    Half of the pause is fixed and half random, so many gates started by one deploy do not probe in step
    while none of them waits much longer than the cap.
    """
    ceiling = min(cap, first * 2 ** min(attempt - 1, 32))
    return ceiling / 2 + rng() * ceiling / 2


def utc_text(timestamp: float | None) -> str | None:
    """``2025-12-08T10:00:12.345Z``: milliseconds, so that a time to healthy can be checked against these."""
    return iso_utc(timestamp, "milliseconds")


@dataclass
class WaitOutcome:
    """How the wait ended. Plain data: ``to_dict`` goes into the JSON results and the history."""

    budget: float
    started_at: float  # wall-clock time the wait began
    outcome: str = "deadline"  # healthy | deadline (Ctrl-C and SIGTERM end the run itself)
    attempts: int = 0
    waited: float = 0.0  # seconds spent waiting
    seconds_to_healthy: float | None = None
    healthy_at: float | None = None  # wall clock
    first_reason: str = ""
    last_reason: str = ""
    caches_agreed_at: float | None = None  # wall clock since which every resolver agreed with the source
    notes: list[str] = field(default_factory=list)  # e.g. when the last cache will expire

    @property
    def healthy(self) -> bool:
        return self.outcome == "healthy"

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "budget": round(self.budget, 3),
            "started": utc_text(self.started_at),
            "attempts": self.attempts,
            "waited": round(self.waited, 3),
            "seconds_to_healthy": None
            if self.seconds_to_healthy is None
            else round(self.seconds_to_healthy, 3),
            "healthy_at": utc_text(self.healthy_at),
            "caches_agreed_at": utc_text(self.caches_agreed_at),
            "first_reason": self.first_reason,
            "last_reason": self.last_reason,
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        """One line for the terminal and the step summary."""
        if self.outcome == "healthy":
            text = (
                f"healthy after {self.seconds_to_healthy:.1f} s ({self.attempts} attempt"
                f"{'s' if self.attempts != 1 else ''}, --wait {self.budget:g} s)"
            )
            if self.first_reason:
                text += f"; first failure seen: {self.first_reason}"
        else:
            text = (
                f"not healthy within {self.budget:g} s ({self.attempts} "
                f"attempt{'s' if self.attempts != 1 else ''}); "
                f"last reason: {self.last_reason}"
            )
        if self.caches_agreed_at is not None:
            text += (
                f"; every resolver agreed with the authoritative servers at {utc_text(self.caches_agreed_at)}"
            )
        return text


def describe_wait(wait: dict[str, Any]) -> str:
    """One line from a ``run.wait`` document.

    The terminal summary and the step summary say it the same way."""
    if wait.get("outcome") == "healthy":
        text = f"healthy after {wait['seconds_to_healthy']:.1f} s of --wait {wait['budget']:g} s"
    else:
        text = f"not healthy within --wait {wait['budget']:g} s; last reason: {wait.get('last_reason')}"
    if wait.get("caches_agreed_at"):
        text += f"; resolvers agreed with the authoritative servers at {wait['caches_agreed_at']}"
    return "; ".join([text, *(wait.get("notes") or [])])


def timeline_events(wait: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Rows for the incident report's timeline.

    When waiting began, when caches agreed, when it was healthy."""
    if not wait:
        return []

    def clock(text: str | None) -> str:
        return text.split(".")[0].replace("T", " ").removesuffix("Z") + " UTC" if text else "?"

    events = [
        (
            clock(wait.get("started")),
            f"waiting for healthy began (--wait {wait.get('budget', 0):g} s)"
            + (f"; first failure: {wait['first_reason']}" if wait.get("first_reason") else ""),
        )
    ]
    if wait.get("caches_agreed_at"):
        events.append(
            (clock(wait["caches_agreed_at"]), "every resolver agreed with the authoritative servers")
        )
    if wait.get("outcome") == "healthy":
        events.append(
            (
                clock(wait.get("healthy_at")),
                f"resolved at: healthy after {wait.get('seconds_to_healthy', 0):.1f} s "
                f"({wait.get('attempts')} attempts)",
            )
        )
    elif wait.get("outcome") == "deadline":
        events.append(
            (
                "after the deadline",
                f"still not healthy after {wait.get('budget', 0):g} s: {wait.get('last_reason')}",
            )
        )
    return events


class ProgressLine:
    """One progress line.

    Redrawn in place on a terminal, plain lines every few seconds elsewhere (CI logs)."""

    def __init__(
        self,
        write: Callable[[str], Any],
        *,
        redraw: bool,
        interval: float = PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        width: int = 120,
    ) -> None:
        self.write = write
        self.redraw = redraw
        self.interval = interval
        self.clock = clock
        self.width = width
        self._last: float | None = None
        self._drawn = False
        self.lines: list[str] = []  # every line shown, for the record

    def update(self, text: str) -> None:
        now = self.clock()
        if self.redraw:
            shown = text if len(text) < self.width else text[: self.width - 2] + "…"
            self.write("\r\x1b[K" + shown)
            self._drawn = True
        elif self._last is None or now - self._last >= self.interval:
            self.write(text + "\n")
        else:
            return
        self._last = now
        self.lines.append(text)

    def finish(self, text: str) -> None:
        if self._drawn:
            self.write("\r\x1b[K")
        self.write(text + "\n")
        self.lines.append(text)


Check = Callable[[float], "CheckResult"]


@dataclass
class CheckResult:
    """What one attempt saw: the reasons it is not healthy yet (empty: healthy) and side facts."""

    reasons: list[str]
    caches_agree: bool | None = None  # None: propagation not checked
    notes: list[str] = field(default_factory=list)
    retry_at: float | None = None  # wall clock when the outcome may change (a stale cache expires), if known


def combine(results: list[CheckResult]) -> CheckResult:
    """One attempt over several targets: healthy when every one is; caches agree when every checked one
    does; the earliest moment any outcome may change."""
    agreed = [r.caches_agree for r in results if r.caches_agree is not None]
    retry = [r.retry_at for r in results if r.retry_at is not None]
    return CheckResult(
        reasons=[reason for r in results for reason in r.reasons],
        caches_agree=all(agreed) if agreed else None,
        notes=[note for r in results for note in r.notes],
        retry_at=min(retry) if retry else None,
    )


def wait_until_healthy(
    check: Check,
    *,
    budget: float,
    probe_timeout: float,
    progress: ProgressLine | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Any] = time.sleep,
    rng: Callable[[], float] = random.random,
) -> WaitOutcome:
    """Repeat ``check(timeout)`` until it reports no reason or ``budget`` seconds have passed.

    ``check`` gets the probe timeout for this attempt: the configured one, shortened near the deadline so
    the wait never ends more than one probe timeout after it. KeyboardInterrupt (Ctrl-C, and SIGTERM as
    the plugin turns it into one) propagates at once: a pause is a plain sleep.
    """
    started = clock()
    outcome = WaitOutcome(budget=budget, started_at=wall_clock())
    deadline = started + budget
    while True:
        remaining = deadline - clock()
        # An attempt's DNS and HTTP phases each take at most the timeout: half the time left for each.
        timeout = min(probe_timeout, max(MIN_ATTEMPT_TIMEOUT, remaining / 2))
        outcome.attempts += 1
        result = check(timeout)
        now = clock()
        # Agreement counts from the attempt since which every resolver kept agreeing with the source.
        if result.caches_agree is False:
            outcome.caches_agreed_at = None
        elif result.caches_agree and outcome.caches_agreed_at is None:
            outcome.caches_agreed_at = wall_clock()
        outcome.notes = list(result.notes)
        if not result.reasons:
            outcome.outcome = "healthy"
            outcome.seconds_to_healthy = outcome.waited = now - started
            outcome.healthy_at = wall_clock()
            break
        outcome.last_reason = result.reasons[0] + (
            f" (+{len(result.reasons) - 1} more)" if len(result.reasons) > 1 else ""
        )
        outcome.first_reason = outcome.first_reason or outcome.last_reason
        outcome.waited = now - started
        if progress is not None:
            progress.update(
                f"waiting: {outcome.last_reason}, attempt {outcome.attempts}, "
                f"{outcome.waited:.0f} s of {budget:g} s"
            )
        if deadline - now < MIN_ATTEMPT_TIMEOUT:
            break
        pause = min(backoff_delay(outcome.attempts, rng=rng), deadline - now - MIN_ATTEMPT_TIMEOUT)
        if result.retry_at is not None:  # no need to wait longer than until the next cache expires
            pause = min(pause, max(0.05, result.retry_at - wall_clock()))
        if pause > 0:
            sleep(pause)
    if progress is not None:
        progress.finish(f"reachability: {outcome.summary()}")
    return outcome


# --------------------------------------------------------------------------- the default check


def describe_failed_probe(host: str, result: Any) -> str:
    """``97v.ru → 127.0.10.57 empty reply`` for one failed health probe."""
    if not result.address:
        return f"{host} does not resolve: {result.detail or result.failure.wording}"
    what = result.failure.value.replace("_", " ") if result.failure is not None else "failed"
    if result.failure is not None and result.failure.value == "http_status":
        what = f"HTTP {result.status}"
    return f"{host} → {result.address} {what}"


def health_check(
    target: Any,
    settings: Any,
    timeout: float | None = None,
    *,
    propagation: Callable[[float], Any] | None = None,
) -> CheckResult:
    """The api-health gate's probe as one attempt.

    Every resolved address must answer a healthy ``GET <health-path>``.

    ``propagation`` (a function of the timeout returning a propagation report) adds the condition that
    every resolver agrees with the zone's authoritative servers.
    """
    from .health_body import describe_problem, read_health
    from .probes import http as http_probe

    if timeout is not None:
        settings = dataclasses.replace(settings, probe_timeout=timeout)
    reasons: list[str] = []
    for result in http_probe.probe(target, settings):
        if not result.ok:
            reasons.append(f"api-health: {describe_failed_probe(target.host, result)}")
            continue
        problem = describe_problem(read_health(result.body or b""))
        if problem is not None:
            reasons.append(
                f"api-health: {target.host} → {result.address} answered {result.status} with {problem}"
            )
    result = CheckResult(reasons=reasons)
    if propagation is not None:
        report = propagation(settings.probe_timeout)
        if report is not None and report.authoritative_answers:
            result.caches_agree = report.agree
            result.reasons += [f"dns: {line}" for line in report.disagreements()]
            result.notes = report.notes()
            expiries = [t for t in (report.expires_at(answer) for answer in report.stale()) if t is not None]
            result.retry_at = min(expiries) + CACHE_EXPIRY_MARGIN if expiries else None
    return result
