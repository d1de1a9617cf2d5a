"""Section 14, integration: a configured end-to-end flow through the API, step by step, in order.

Configured by ``[[tool.reachability.integration.steps]]`` (see ``examples/reachability.toml``)::

    [[tool.reachability.integration.steps]]
    name = "open a session"
    method = "POST"
    path = "/api/v1/sessions"
    json = { user = "reachability-check" }
    expect-status = 201
    save = { token = "token" }                      # name -> JSON path of the answer

    [[tool.reachability.integration.steps]]
    path = "/api/v1/me"
    headers = { Authorization = "Bearer ${token}" }  # ${name}: a value saved by an earlier step
    expect = { user = "reachability-check" }         # JSON path -> expected value

The flow stops at the first step that fails and names it; every step's outcome is recorded as evidence.
Needs ``api-health`` and the ``database`` gate (section 12): a flow that writes needs its database.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from pytest_reachability import evidence as evidence_mod
from pytest_reachability import jsontext, prefetch
from pytest_reachability.appconfig import json_path_get, substitute

pytestmark = pytest.mark.section("integration", requires=["api-health", "database"])

BODY_EXCERPT = 160


@pytest.fixture(scope="module")
def integration_config(app_config):
    if app_config.integration is None:
        pytest.skip(app_config.not_configured("integration"))
    return app_config.integration


def excerpt(response: requests.Response) -> str:
    text = " ".join(response.text.split())
    return text if len(text) <= BODY_EXCERPT else text[: BODY_EXCERPT - 3] + "..."


class StepCheck:
    """Records one step's checks as evidence and fails the flow, in one line, at the first that is not met."""

    def __init__(self, evidence, label: str, request_line: str, url: str, ms: float) -> None:
        self.evidence, self.label, self.request_line, self.url, self.ms = (
            evidence,
            label,
            request_line,
            url,
            ms,
        )

    def __call__(self, ok: bool, observed: object, expected: object, problem: str) -> None:
        self.evidence.record(
            "app_check",
            {
                "section": "integration",
                "check": self.label,
                "ok": ok,
                "observed": observed,
                "expected": expected,
                "url": self.url,
                "ms": self.ms,
            },
        )
        assert ok, f"{self.label}: {self.request_line} {problem}"


# The flow starts as soon as its gates pass (see prefetch_for_target), not when its test's turn comes.
PREFETCH_AFTER_GATES = ("api-health", "database")


def flow_key(target: Any) -> str:
    return f"suite-integration:{target.base_url}"


def prefetch_for_target(work: Any) -> None:
    config = work.app_config.integration
    if config is not None:
        work.flow(flow_key(work.target), lambda http: run_flow(config, http, evidence_mod))


def test_integration_flow_completes_in_order(integration_config, http, target, shared_results):
    """The flow's steps in order; its evidence and its first unmet check are the test's (prefetch.flow)."""
    prefetch.flow(shared_results, flow_key(target), lambda: run_flow(integration_config, http, evidence_mod))


def run_flow(integration_config: Any, http: Any, evidence: Any) -> None:
    """Send the steps in order, recording each check through ``evidence``; AssertionError at the first check
    not met."""
    saved: dict[str, object] = {}
    steps = integration_config.steps
    for number, step in enumerate(steps, start=1):
        label = f"step {number}/{len(steps)} {step.name!r}"
        path = substitute(step.path, saved)
        url = http.base_url + path
        headers = substitute(step.headers, saved)
        kwargs = {"headers": headers}
        if step.json is not None:
            kwargs["json"] = substitute(step.json, saved)
        started = time.perf_counter()
        try:
            response = http.request(step.method, path, **kwargs)
        except requests.RequestException as error:
            message = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            evidence.record(
                "app_check",
                {
                    "section": "integration",
                    "check": label,
                    "ok": False,
                    "observed": message,
                    "expected": list(step.expect_status),
                    "url": url,
                    "ms": None,
                },
            )
            raise AssertionError(f"{label}: {step.method} {url} failed: {message}") from None
        check = StepCheck(
            evidence, label, f"{step.method} {url}", url, round((time.perf_counter() - started) * 1000, 1)
        )
        check(
            response.status_code in step.expect_status,
            response.status_code,
            list(step.expect_status),
            f"answered {response.status_code}, expected {' or '.join(map(str, step.expect_status))} "
            f"(body: {excerpt(response)})",
        )
        document = None
        if step.expect or step.save:
            try:
                document = jsontext.response_json(response)
            except ValueError:
                check(
                    False,
                    excerpt(response),
                    "a JSON body",
                    f"answered a body that is not JSON: {excerpt(response)}",
                )
        for field, wanted in step.expect.items():
            wanted = substitute(wanted, saved)
            found, value = json_path_get(document, field)
            check(
                found and value == wanted,
                value if found else None,
                wanted,
                f"answered {field} = {json.dumps(value)}, expected {json.dumps(wanted)}"
                if found
                else f"answered without {field}, expected {field} = {json.dumps(wanted)}",
            )
        for name, field in step.save.items():
            found, value = json_path_get(document, field)
            if not found:
                check(
                    False,
                    None,
                    f"{field} to save as {name}",
                    f"answered without {field} (to save as ${{{name}}})",
                )
            saved[name] = value
