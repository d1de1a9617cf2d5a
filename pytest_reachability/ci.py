"""The GitHub Action's logic (``action.yml`` runs ``python -m pytest_reachability.ci``).

Inputs arrive as environment variables (the action maps each ``inputs.x`` to ``INPUT_X``; values are
never pasted into a shell script, so a target cannot inject commands):

    INPUT_TARGET, INPUT_NAMESPACE    --target (required unless pytest-args start a --sandbox) / --namespace
    INPUT_KUBECONFIG                 kubeconfig *content* (a secret): written to a 0600 file, removed after
    INPUT_PYTEST_ARGS                extra pytest arguments, shell-quoted (``--sandbox healthy -k dns``)
    INPUT_WORKERS                    xdist workers (``1``: none, ``auto`` or a number)
    INPUT_RESULTS_DB                 --results-db (SQLite path or postgresql:// URL; empty: no history)
    INPUT_REPORTS_DIR                where reports go (default ``reports``)
    INPUT_SUITE                      what to run (default the built-in suite ``pytest_reachability.suites``;
                                     an existing path runs that path instead)
    INPUT_TIMEOUT                    seconds before the run is stopped (default 1800)

It runs pytest with every output on (HTML, incident report, JSON, JUnit), then appends a markdown
summary to ``$GITHUB_STEP_SUMMARY`` (health, section table, history, top theories, failed gates),
prints ``::error`` annotations (one per failed gate and per top theory), writes ``health-score``,
``status``, ``exit-code``, ``incident-report`` and ``results-json`` to ``$GITHUB_OUTPUT``, and exits
with pytest's exit status. Every exit status but 0 fails the step, 5 (no tests collected) included:
a verification that verified nothing must not let a deploy through.
"""

from __future__ import annotations

import math
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .merge import MergeInputError, Shard, load_shard, section_table_markdown
from .redact import kubeconfig_secrets, redact

DEFAULT_SUITE = "pytest_reachability.suites"
EXIT_MEANING = {
    0: "passed",
    1: "failed",
    2: "interrupted",
    3: "internal error",
    4: "usage error",
    5: "no tests collected",
    124: "timed out",
}
TOP_THEORIES = 3
REPORT_FILES = (
    ("HTML", "report.html"),
    ("incident report", "incident-report.md"),
    ("JSON", "results.json"),
    ("JUnit", "junit.xml"),
)


def _existing(path: Path) -> str:
    return str(path) if path.is_file() else ""


@dataclass
class ActionInputs:
    target: str = ""
    namespace: str = ""
    kubeconfig: str = field(default="", repr=False)
    pytest_args: list[str] = field(default_factory=list)  # INPUT_PYTEST_ARGS split like a shell would
    workers: str = "1"
    results_db: str = ""
    reports_dir: str = "reports"
    suite: str = DEFAULT_SUITE
    timeout: float = 1800.0
    wait: str = ""  # --wait DURATION, as given

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> ActionInputs:
        def get(name: str, default: str = "") -> str:
            return environ.get(f"INPUT_{name}", "").strip() or default

        timeout_text = get("TIMEOUT", "1800")
        try:
            timeout = float(timeout_text)
        except ValueError:
            raise ValueError(f"input timeout: {timeout_text!r} is not a number of seconds") from None
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"input timeout: {timeout_text!r} is not a positive, finite number of seconds")
        args_text = get("PYTEST_ARGS")
        try:
            pytest_args = shlex.split(args_text)
        except ValueError as error:  # an unbalanced quote
            raise ValueError(f"input pytest-args: {redact(args_text)!r} cannot be split: {error}") from None
        wait = get("WAIT")
        if wait:
            from .wait import WaitError, parse_wait

            try:
                parse_wait(wait)
            except WaitError as error:
                raise ValueError(f"input wait: {error}") from None
        workers = get("WORKERS", "1")
        if workers != "auto" and not (workers.isdigit() and int(workers) >= 0):
            raise ValueError(f"input workers: {workers!r} is not a number or 'auto'")
        if not get("TARGET") and not any(
            arg == "--sandbox" or arg.startswith("--sandbox=") for arg in pytest_args
        ):
            # Without a target every section is skipped as not configured: a verification of nothing
            # must not pass.
            raise ValueError(
                "input target: required (host, host:port or http(s):// URL of the service to verify)"
            )
        return cls(
            target=get("TARGET"),
            namespace=get("NAMESPACE"),
            kubeconfig=environ.get("INPUT_KUBECONFIG", ""),
            pytest_args=pytest_args,
            workers=workers,
            results_db=get("RESULTS_DB"),
            reports_dir=get("REPORTS_DIR", "reports"),
            suite=get("SUITE", DEFAULT_SUITE),
            timeout=timeout,
            wait=wait,
        )


@dataclass
class Outcome:
    exit_code: int
    summary: str
    annotations: list[str]
    outputs: dict[str, str]


# --------------------------------------------------------------------------- workflow commands


def escape_data(text: str) -> str:
    """A workflow command's message: ``%``, CR and LF escaped (multi-line messages become %0A)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def error_annotation(title: str, message: str) -> str:
    return f"::error title={escape_property(redact(title))}::{escape_data(redact(message))}"


# --------------------------------------------------------------------------- running


def pytest_command(inputs: ActionInputs, reports: Path, kubeconfig_path: str | None) -> list[str]:
    command = [sys.executable, "-m", "pytest"]
    if Path(inputs.suite).exists():
        command.append(inputs.suite)
    else:
        command += ["--pyargs", inputs.suite]
    # Path options in the --option=PATH form: pytest takes a separate existing path for a test path.
    command += [
        "-ra",
        f"--results-json={reports / 'results.json'}",
        f"--incident-report={reports / 'incident-report.md'}",
        f"--html={reports / 'report.html'}",
        "--self-contained-html",
        f"--junitxml={reports / 'junit.xml'}",
    ]
    if inputs.target:
        command += ["--target", inputs.target]
    if inputs.namespace:
        command += ["--namespace", inputs.namespace]
    if kubeconfig_path:
        command += [f"--kubeconfig={kubeconfig_path}"]
    if inputs.results_db:
        command += [f"--results-db={inputs.results_db}"]
    if inputs.workers not in ("", "0", "1"):
        command += ["-n", inputs.workers]
    if inputs.wait:
        command += [f"--wait={inputs.wait}"]
    command += inputs.pytest_args
    return command


def run_streaming(
    command: Sequence[str], *, env: Mapping[str, str], timeout: float, out: TextIO
) -> tuple[int, list[str]]:
    """Run ``command`` echoing its output; returns (exit status, last lines).

    Stopped after ``timeout`` (exit status 124)."""
    tail: deque[str] = deque(maxlen=40)
    # A session of its own: on timeout the whole group goes, xdist workers included.
    process = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=dict(env),
        start_new_session=True,
    )
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        _kill_group(process)

    timer = threading.Timer(timeout, stop)
    timer.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            out.write(line)
            tail.append(line.rstrip("\n"))
        process.wait(timeout=30)
    finally:
        timer.cancel()
        if process.poll() is None:
            _kill_group(process)
            process.wait(timeout=10)
    out.flush()
    return (124 if timed_out.is_set() else process.returncode), list(tail)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()


def _history_summary(inputs: ActionInputs, shard: Shard | None, run_uuid: str) -> dict | None:
    if shard is not None and shard.history:
        return shard.history
    if not inputs.results_db:
        return None
    from . import history

    try:
        with history.open_history(inputs.results_db, migrate=False) as store:
            return store.summary_for(run_uuid)
    except Exception as error:  # noqa: BLE001 - the summary still gets written without history
        return {"error": " ".join(str(error).split())}


def failed_gates(shard: Shard) -> dict[str, str]:
    """Gate -> its failure in one line: from the gate's own tests, else from what its dependents say."""
    gates: dict[str, str] = {}
    for test in shard.tests:
        if test.get("gate") and test.get("outcome") in ("failed", "error"):
            gates.setdefault(
                str(test["gate"]), str(test.get("reason") or f"{test.get('nodeid')} {test.get('outcome')}")
            )
    for test in shard.tests:
        gate = test.get("blocked_by")
        if test.get("outcome") == "blocked" and gate and gate not in gates:
            reason = str(test.get("reason") or "")
            prefix = f"blocked by {gate}: "
            gates[str(gate)] = reason[len(prefix) :] if reason.startswith(prefix) else reason or "failed"
    return gates


def _run_failed_annotation(exit_code: int, meaning: str) -> str:
    return error_annotation("Reachability run failed", f"pytest exited with status {exit_code} ({meaning})")


def _without_results(exit_code: int, meaning: str, tail: Sequence[str]) -> tuple[list[str], list[str]]:
    """The summary's body and annotations when pytest wrote no results: its status and last lines."""
    lines = [f"pytest exited with status {exit_code} ({meaning}) and wrote no results."]
    if tail:
        lines += [
            "",
            "<details><summary>Last lines of the output</summary>",
            "",
            "```",
            *(redact(t) for t in tail[-20:]),
            "```",
            "</details>",
        ]
    annotations = [] if exit_code == 0 else [_run_failed_annotation(exit_code, meaning)]
    return lines, annotations


def _wait_lines(shard: Shard, outputs: dict[str, str]) -> list[str]:
    """How long the run waited for health (and the seconds-to-healthy output when it got there)."""
    wait = (shard.document.get("run") or {}).get("wait")
    if not wait:
        return []
    from .wait import describe_wait

    if wait.get("seconds_to_healthy") is not None:
        outputs["seconds-to-healthy"] = str(wait["seconds_to_healthy"])
    return ["", f"**Waited:** {redact(describe_wait(wait))}"]


def _gate_lines(shard: Shard, gates: dict[str, str], annotations: list[str]) -> list[str]:
    """One line (and one annotation) per failed gate, with how many tests it blocked."""
    if not gates:
        return []
    lines = ["", "### Failed gates", ""]
    for gate, reason in gates.items():
        blocked = sum(1 for t in shard.tests if t.get("blocked_by") == gate and t.get("outcome") == "blocked")
        lines.append(f"- **{gate}**: {redact(reason)} ({blocked} test(s) blocked)")
        annotations.append(
            error_annotation(f"Gate {gate} failed", f"{reason}\n{blocked} dependent test(s) BLOCKED")
        )
    return lines


def _theory_lines(shard: Shard, ok: bool, annotations: list[str]) -> list[str]:
    """The top theories with their evidence; on a failed run each also becomes an annotation."""
    if not shard.theories:
        return []
    lines = ["", "### Top theories", ""]
    for rank, theory in enumerate(shard.theories[:TOP_THEORIES], start=1):
        confidence = theory.get("confidence")
        shown = f" ({round(float(confidence) * 100)}%)" if isinstance(confidence, int | float) else ""
        title = str(theory.get("title", ""))
        lines.append(f"{rank}. **{redact(title)}**{shown}")
        evidence = [str(e) for e in (theory.get("evidence") or [])[:3]]
        lines += [f"   - {redact(e)}" for e in evidence]
        if not ok:
            fix = [str(f) for f in (theory.get("fix") or [])[:2]]
            message = "\n".join([title + shown, *evidence, *(f"fix: {f}" for f in fix)])
            annotations.append(error_annotation(f"Theory {rank}{shown}", message))
    return lines


def _with_results(
    shard: Shard,
    exit_code: int,
    meaning: str,
    history_summary: dict | None,
    outputs: dict[str, str],
) -> tuple[list[str], list[str]]:
    """The summary's body and annotations from a run's results: health, sections, gates, theories."""
    from .history import describe_summary

    ok = exit_code == 0
    score = "n/a" if shard.health_score is None else f"{shard.health_score}%"
    outputs["health-score"] = "" if shard.health_score is None else str(shard.health_score)
    passed, counted = shard.counts()
    lines = [
        f"**Health score:** {score} ({passed} of {counted} checks passed) · pytest exit status "
        f"{exit_code} ({meaning})"
    ]
    lines += _wait_lines(shard, outputs)
    if history_summary:
        lines += ["", f"**{redact(describe_summary(history_summary))}**"]
    lines += ["", *section_table_markdown(shard.sections)]
    annotations: list[str] = []
    gates = failed_gates(shard)
    lines += _gate_lines(shard, gates, annotations)
    lines += _theory_lines(shard, ok, annotations)
    if not ok and not gates and not shard.theories:
        annotations.append(_run_failed_annotation(exit_code, meaning))
    return lines, annotations


def build_outcome(
    inputs: ActionInputs,
    exit_code: int,
    shard: Shard | None,
    history_summary: dict | None,
    tail: Sequence[str],
    reports: Path,
) -> Outcome:
    meaning = EXIT_MEANING.get(exit_code, f"exit status {exit_code}")
    ok = exit_code == 0
    status = "passed" if ok else ("failed" if exit_code == 1 else meaning)
    where = shard.label if shard is not None else (inputs.target or "(target from the configuration)")
    lines = [f"## {'✅' if ok else '❌'} Reachability {'passed' if ok else 'FAILED'}: {redact(where)}", ""]
    # A path output names a file that exists, else it is empty (a step can test it with != '').
    outputs = {
        "status": status,
        "exit-code": str(exit_code),
        "health-score": "",
        "seconds-to-healthy": "",
        "incident-report": _existing(reports / "incident-report.md"),
        "results-json": _existing(reports / "results.json"),
    }
    if shard is None:
        body, annotations = _without_results(exit_code, meaning, tail)
    else:
        body, annotations = _with_results(shard, exit_code, meaning, history_summary, outputs)
    lines += body
    written = [name for name, file in REPORT_FILES if (reports / file).is_file()]
    lines += [
        "",
        f"Reports ({', '.join(written)}) are in `{reports}` and the run's artifact."
        if written
        else f"No report was written to `{reports}`.",
    ]
    return Outcome(
        exit_code=exit_code, summary="\n".join(lines) + "\n", annotations=annotations, outputs=outputs
    )


def _append(path: str | None, text: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(text)


def run_action(environ: Mapping[str, str], out: TextIO = sys.stdout) -> int:
    """Everything the action does after installing the plugin; returns the step's exit status."""
    try:
        inputs = ActionInputs.from_environment(environ)
    except ValueError as error:
        out.write(error_annotation("pytest-reachability action", str(error)) + "\n")
        return 2
    reports = Path(inputs.reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    kubeconfig_path = None
    env = dict(environ)
    run_uuid = uuid.uuid4().hex
    env["REACHABILITY_RUN_ID"] = run_uuid
    try:
        if inputs.kubeconfig.strip():
            for secret in kubeconfig_secrets(content=inputs.kubeconfig):
                out.write(f"::add-mask::{escape_data(secret)}\n")
            # mkstemp creates the file 0600; RUNNER_TEMP is the runner's per-job scratch space.
            handle, kubeconfig_path = tempfile.mkstemp(
                prefix="kubeconfig-", dir=environ.get("RUNNER_TEMP") or None
            )
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(inputs.kubeconfig)
        for stale in ("results.json", "incident-report.md"):
            (reports / stale).unlink(missing_ok=True)
        command = pytest_command(inputs, reports, kubeconfig_path)
        out.write(f"::group::pytest {redact(shlex.join(command[3:]))}\n")
        exit_code, tail = run_streaming(command, env=env, timeout=inputs.timeout, out=out)
        out.write("::endgroup::\n")
    finally:
        if kubeconfig_path:
            Path(kubeconfig_path).unlink(missing_ok=True)

    shard = None
    results_path = reports / "results.json"
    if results_path.is_file():
        try:
            from .merge import read_document

            shard = load_shard(read_document(results_path), str(results_path))
        except MergeInputError as error:
            out.write(error_annotation("Results unreadable", str(error)) + "\n")
    outcome = build_outcome(
        inputs, exit_code, shard, _history_summary(inputs, shard, run_uuid), tail, reports
    )
    _append(environ.get("GITHUB_STEP_SUMMARY"), outcome.summary)
    _append(
        environ.get("GITHUB_OUTPUT"), "".join(f"{key}={value}\n" for key, value in outcome.outputs.items())
    )
    for annotation in outcome.annotations:
        out.write(annotation + "\n")
    out.flush()
    return outcome.exit_code


def main() -> int:
    try:
        return run_action(os.environ)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
