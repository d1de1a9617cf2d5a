"""The GitHub Action: ``action.yml``'s shape, and its script (``python -m pytest_reachability.ci``) run
locally with a fake GitHub environment (``GITHUB_STEP_SUMMARY``, ``GITHUB_OUTPUT``), asserting what
it wrote, the annotations it printed and its exit status."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from junit_schema import junit_schema, schema_errors

from pytest_reachability import ci, history

ROOT = Path(__file__).resolve().parents[1]
ACTION = ROOT / "action.yml"


@dataclass
class ActionRun:
    exit_code: int
    stdout: str
    summary: str
    outputs: dict[str, str]
    reports: Path

    def annotations(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith("::error ")]


def run_action(tmp_path: Path, name: str, wait: float = 300, **inputs: str) -> ActionRun:
    """Run the action's script like the composite step does: inputs as INPUT_* variables."""
    workspace = tmp_path / name
    workspace.mkdir()
    summary, outputs = workspace / "step_summary.md", workspace / "github_output"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "REACHABILITY_", "GITHUB_"))}
    env.update(
        {
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_OUTPUT": str(outputs),
            "RUNNER_TEMP": str(workspace),
            "INPUT_REPORTS_DIR": str(workspace / "reports"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.update({f"INPUT_{key.upper()}": value for key, value in inputs.items()})
    done = subprocess.run(
        [sys.executable, "-m", "pytest_reachability.ci"],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=wait,
        check=False,
    )
    written = (
        dict(line.split("=", 1) for line in outputs.read_text().splitlines()) if outputs.exists() else {}
    )
    return ActionRun(
        done.returncode,
        done.stdout + done.stderr,
        summary.read_text() if summary.exists() else "",
        written,
        workspace / "reports",
    )


# --------------------------------------------------------------------------- action.yml


def test_action_yml_is_a_composite_that_passes_inputs_only_through_the_environment() -> None:
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    for step in steps:
        # ${{ }} inside a script is pasted as code: a crafted input would run as shell.
        assert "${{" not in step.get("run", ""), step["name"]
    inputs = set(action["inputs"])
    assert {"target", "namespace", "kubeconfig", "pytest-args", "workers"} <= inputs
    assert action["inputs"]["target"]["required"] is True and "default" not in action["inputs"]["target"]
    used = "\n".join(yaml.safe_dump(step) for step in steps)
    assert all(f"inputs.{name}" in used for name in inputs), "every input is used"
    verify = next(step for step in steps if step.get("id") == "verify")
    assert verify["run"].strip() == '"$VENV/bin/python" -m pytest_reachability.ci'
    assert {key for key in verify["env"]} >= {
        "INPUT_TARGET",
        "INPUT_KUBECONFIG",
        "INPUT_PYTEST_ARGS",
        "INPUT_WORKERS",
    }
    # Installed into a virtual environment of its own, with exact versions.
    install = next(step for step in steps if "pip install" in step.get("run", ""))
    assert install["env"]["ACTION_PATH"] == "${{ github.action_path }}"
    assert install["env"]["VENV"] == verify["env"]["VENV"] == "${{ runner.temp }}/pytest-reachability-venv"
    assert (
        'python -m venv "$VENV"' in install["run"] and '"$VENV/bin/python" -m pip install' in install["run"]
    )
    assert '--constraint "$ACTION_PATH/action-constraints.txt"' in install["run"]
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()" and upload["with"]["path"] == "${{ inputs.reports-dir }}"
    # Every action by full commit.
    for step in steps:
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    # The outputs the action declares are exactly the ones the script writes.
    declared = {
        re.search(r"steps\.verify\.outputs\.([\w-]+)", o["value"]).group(1)
        for o in action["outputs"].values()
    }
    assert set(action["outputs"]) == declared
    written = set(ci.build_outcome(ci.ActionInputs(), 1, None, None, [], Path("reports")).outputs)
    assert declared == written


def test_constraints_pin_every_runtime_dependency_at_an_accepted_version() -> None:
    """action-constraints.txt pins each dependency the action
    installs, at a version the project's requirements accept."""
    import importlib.metadata as metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (ROOT / "action-constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", line
            pins[canonicalize_name(requirement.name)] = specifier.version
    todo = [("pytest-reachability", frozenset({"postgres"}))]
    seen: set[str] = set()
    while todo:
        name, extras = todo.pop()
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            # Needed on a Linux runner with any supported Python (3.10 to 3.13)?
            if requirement.marker is not None and not any(
                requirement.marker.evaluate(
                    {"extra": extra, "python_version": version, "python_full_version": f"{version}.0"}
                )
                for extra in extras | {""}
                for version in ("3.10", "3.11", "3.12", "3.13")
            ):
                continue
            key = canonicalize_name(requirement.name)
            assert key in pins, f"{requirement.name} (needed by {name}) is not pinned"
            assert requirement.specifier.contains(pins[key], prereleases=True), (str(requirement), pins[key])
            installed = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": e}) for e in extras | {""}
            )
            if key not in seen and installed:
                seen.add(key)
                todo.append((requirement.name, frozenset(requirement.extras)))


def test_example_workflow_verifies_after_deploy_and_attaches_the_report_on_failure() -> None:
    workflow = yaml.safe_load((ROOT / "examples" / "github-workflow.yml").read_text())
    verify = workflow["jobs"]["verify"]
    assert verify["needs"] == "deploy"
    action_step = next(s for s in verify["steps"] if "pytest-reachability" in s.get("uses", ""))
    on_failure = next(s for s in verify["steps"] if "failure()" in str(s.get("if", "")))
    assert f"steps.{action_step['id']}.outputs.incident-report" in on_failure["env"]["REPORT"]
    assert "${{" not in on_failure["run"]


def test_annotation_escaping() -> None:
    line = ci.error_annotation("Gate api-health: failed, twice", "100% down\nsecond line\r")
    assert line == "::error title=Gate api-health%3A failed%2C twice::100%25 down%0Asecond line%0D"


# ---------------------------------------------------------------------------
# the script, with pytester-made files

GATE = """
import os
import pytest

pytestmark = pytest.mark.section("api-health")

@pytest.mark.gate("api-health")
def test_health(request):
    kubeconfig = request.config.getoption("reachability_kubeconfig")
    if kubeconfig:
        # The action wrote the secret to a private file for the run.
        assert os.stat(kubeconfig).st_mode & 0o777 == 0o600
        assert "s3cr3t-token-value" in open(kubeconfig).read()
    assert os.environ.get("FAKE_HEALTH") != "down", "empty reply from 127.0.10.57:80"
"""
DEPENDENT = """
import pytest

pytestmark = pytest.mark.section("database", requires=["api-health"])

def test_db():
    pass
"""
KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: s3cr3t-token-value}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


@pytest.fixture
def gate_suite(tmp_path: Path) -> Path:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_gate.py").write_text(GATE)
    (suite / "test_db.py").write_text(DEPENDENT)
    return suite


def test_passing_run_writes_summary_outputs_and_exits_zero(tmp_path: Path, gate_suite: Path) -> None:
    run = run_action(
        tmp_path, "pass", suite=str(gate_suite), target="http://97v.test:8080", kubeconfig=KUBECONFIG
    )
    assert run.exit_code == 0, run.stdout[-3000:]
    assert "::add-mask::s3cr3t-token-value" in run.stdout
    assert run.outputs["status"] == "passed" and run.outputs["exit-code"] == "0"
    assert not run.annotations()
    assert run.summary.startswith("## ✅ Reachability passed")
    assert "s3cr3t-token-value" not in run.summary
    assert not list(Path(tmp_path / "pass").glob("kubeconfig-*")), (
        "the kubeconfig file is removed after the run"
    )
    assert (run.reports / "junit.xml").is_file() and (run.reports / "report.html").is_file()
    assert schema_errors(junit_schema(), run.reports / "junit.xml") == []
    assert (
        run.outputs["results-json"] == str(run.reports / "results.json")
        and (run.reports / "results.json").is_file()
    )
    assert_mentions_only_written_reports(run)


def test_failing_gate_is_annotated_and_fails_the_step(
    tmp_path: Path, gate_suite: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_HEALTH", "down")
    run = run_action(tmp_path, "fail", suite=str(gate_suite), target="http://user:pa55word@97v.test:8080")
    assert run.exit_code == 1
    assert run.outputs["status"] == "failed" and run.outputs["exit-code"] == "1"
    assert "pa55word" not in run.stdout and "pa55word" not in run.summary
    if (run.reports / "results.json").is_file():  # the results JSON carries gates and sections
        assert (
            "::error title=Gate api-health failed::empty reply from 127.0.10.57:80%0A1 dependent test(s) "
            "BLOCKED" in run.annotations()
        )
        assert "| database | 1 | 0 | 0 | 1 | 0 | ⏸️ BLOCKED by api-health |" in run.summary
        assert run.outputs["health-score"] == "0"
    else:
        assert run.annotations() and "wrote no results" in run.summary


def test_no_tests_collected_fails_the_step(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    run = run_action(tmp_path, "empty-run", suite=str(empty), target="97v.test")
    assert run.exit_code == 5
    assert run.outputs["status"] == "no tests collected"
    assert any("no tests collected" in a for a in run.annotations())
    assert_mentions_only_written_reports(run)


def test_a_usage_error_mentions_no_report(tmp_path: Path, gate_suite: Path) -> None:
    run = run_action(tmp_path, "usage", suite=str(gate_suite), target="http://[not-an-address")
    assert run.exit_code == 4 and run.outputs["status"] == "usage error"
    assert run.outputs["incident-report"] == run.outputs["results-json"] == ""
    assert_mentions_only_written_reports(run)


def assert_mentions_only_written_reports(run: ActionRun) -> None:
    """Path outputs name files that exist (else they are empty); the summary lists only reports written."""
    for output, name in (("incident-report", "incident-report.md"), ("results-json", "results.json")):
        written = (run.reports / name).is_file()
        assert run.outputs[output] == (str(run.reports / name) if written else ""), (output, run.outputs)
    listed = {name for name, file in ci.REPORT_FILES if (run.reports / file).is_file()}
    last = run.summary.strip().splitlines()[-1]
    assert all(name in last for name in listed), last
    if not listed:
        assert last.startswith("No report was written"), last


def test_bad_input_is_one_annotation_and_exit_two(tmp_path: Path) -> None:
    run = run_action(tmp_path, "bad", workers="lots")
    assert run.exit_code == 2
    assert run.annotations() == [
        "::error title=pytest-reachability action::input workers: 'lots' is not a number or 'auto'"
    ]


def test_target_is_required(tmp_path: Path) -> None:
    """Without a target every section would be skipped and the step would pass having verified nothing."""
    run = run_action(tmp_path, "no-target", wait=60)
    assert run.exit_code == 2 and not run.reports.exists()
    assert run.annotations() == [
        ci.error_annotation(
            "pytest-reachability action",
            "input target: required (host, host:port or http(s):// URL of the service to verify)",
        )
    ]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"timeout": "-1"}, "input timeout: '-1' is not a positive, finite number of seconds"),
        ({"timeout": "0"}, "input timeout: '0' is not a positive, finite number of seconds"),
        ({"timeout": "nan"}, "input timeout: 'nan' is not a positive, finite number of seconds"),
        ({"timeout": "inf"}, "input timeout: 'inf' is not a positive, finite number of seconds"),
        ({"pytest_args": "-k 'dns"}, 'input pytest-args: "-k \'dns" cannot be split: No closing quotation'),
    ],
)
def test_bad_timeout_or_unbalanced_args_is_one_annotation_and_exit_two(
    tmp_path: Path, inputs: dict, message: str
) -> None:
    run = run_action(tmp_path, "bad", wait=60, **inputs)
    assert run.exit_code == 2, run.stdout
    assert "Traceback" not in run.stdout
    assert run.annotations() == [ci.error_annotation("pytest-reachability action", message)]


def test_inputs_split_pytest_args_like_a_shell() -> None:
    inputs = ci.ActionInputs.from_environment(
        {"INPUT_PYTEST_ARGS": "--sandbox healthy -k 'dns and not tls'", "INPUT_TIMEOUT": "2.5"}
    )
    assert inputs.pytest_args == ["--sandbox", "healthy", "-k", "dns and not tls"] and inputs.timeout == 2.5
    assert ci.pytest_command(inputs, Path("r"), None)[-4:] == [
        "--sandbox",
        "healthy",
        "-k",
        "dns and not tls",
    ]


OIDC_KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users:
- name: oidc
  user:
    auth-provider:
      name: oidc
      config:
        {client-id: kubernetes, client-secret: oidc-client-secret-1, id-token: eyJid-token-2,
         refresh-token: refresh-token-3}
- name: exec
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: aws
      env: [{name: AWS_SECRET_ACCESS_KEY, value: aws-secret-key-4}]
- name: file
  user: {tokenFile: TOKEN_FILE}
contexts: [{name: x, context: {cluster: c, user: oidc}}]
current-context: x
"""


def test_every_kubeconfig_credential_is_masked_in_the_log(tmp_path: Path, gate_suite: Path) -> None:
    token_file = tmp_path / "sa-token"
    token_file.write_text("sa-file-token-4242\n")
    kubeconfig = OIDC_KUBECONFIG.replace("TOKEN_FILE", str(token_file))
    run = run_action(
        tmp_path, "oidc", suite=str(gate_suite), target="http://97v.test:8080", kubeconfig=kubeconfig
    )
    masks = {
        line.removeprefix("::add-mask::")
        for line in run.stdout.splitlines()
        if line.startswith("::add-mask::")
    }
    assert masks == {
        "oidc-client-secret-1",
        "eyJid-token-2",
        "refresh-token-3",
        "aws-secret-key-4",
        "sa-file-token-4242",
    }
    assert run.stdout.startswith("::add-mask::")  # before anything else is printed


def test_a_run_past_its_timeout_is_stopped_and_fails(tmp_path: Path) -> None:
    suite = tmp_path / "slow"
    suite.mkdir()
    (suite / "test_slow.py").write_text("import time\n\ndef test_slow():\n    time.sleep(120)\n")
    run = run_action(tmp_path, "slow-run", suite=str(suite), target="97v.test", wait=60, timeout="3")
    assert run.exit_code == 124 and run.outputs["status"] == "timed out"


# ---------------------------------------------------------------------------
# the built-in suite against the sandbox


def _require_results_json() -> None:
    pytest.importorskip(
        "pytest_reachability.report.json",
        reason="the summary's tables come from --results-json (report/json.py)",
    )


def test_sandbox_healthy_passes(tmp_path: Path) -> None:
    _require_results_json()
    run = run_action(tmp_path, "healthy", pytest_args="--sandbox healthy", workers="2")
    assert run.exit_code == 0, run.stdout[-3000:]
    assert run.outputs["status"] == "passed" and run.outputs["health-score"] == "100"
    assert "| api-health |" in run.summary and "✅ PASS" in run.summary
    assert not run.annotations()


def test_simulated_pipeline_says_healthy_since_and_failing_since(tmp_path: Path) -> None:
    """Done-when of the CI issue: healthy run, then the incident,
    one results DB -> 'healthy since ..., failing since ...'."""
    _require_results_json()
    database = str(tmp_path / "history.sqlite")
    first = run_action(tmp_path, "deploy-1", pytest_args="--sandbox healthy", results_db=database)
    assert first.exit_code == 0, first.stdout[-3000:]
    second = run_action(
        tmp_path, "deploy-2", pytest_args="--sandbox incident-2025-12-08", results_db=database
    )
    assert second.exit_code == 1

    with history.open_history(database) as store:
        runs = store.runs()
    assert [r["target_key"] for r in runs] == ["97v.test|production"] * 2  # different ports, one service
    assert runs[0]["top_theory"] is None and "127.0.10.57" in (runs[1]["top_theory"] or "")
    healthy_at, failing_at = (history.format_time(r["started_at"]) for r in runs)
    expected = f"failing since {failing_at} (healthy since {healthy_at} before that)"
    assert expected in second.summary, second.summary
    assert f"healthy since {healthy_at}" in first.summary
    assert any(a.startswith("::error title=Gate api-health failed::") for a in second.annotations())
    assert any(a.startswith("::error title=Theory 1") for a in second.annotations())
    incident = (second.reports / "incident-report.md").read_text()
    assert healthy_at in incident and failing_at in incident, (
        "the incident report's timeline shows the history"
    )
    print(second.summary)  # shown with -s: the step summary of the failing deploy


def test_timeout_stops_xdist_workers_too(tmp_path: Path) -> None:
    suite = tmp_path / "slow-xdist"
    suite.mkdir()
    marker = tmp_path / "pids"
    marker.mkdir()
    (suite / "test_slow.py").write_text(
        "import os, time\n\n"
        "def test_a():\n"
        f"    open(os.path.join({str(marker)!r}, str(os.getpid())), 'w').close()\n"
        "    time.sleep(120)\n\n"
        "def test_b():\n"
        f"    open(os.path.join({str(marker)!r}, str(os.getpid())), 'w').close()\n"
        "    time.sleep(120)\n"
    )
    run = run_action(
        tmp_path, "slow-xdist-run", suite=str(suite), target="97v.test", workers="2", wait=90, timeout="8"
    )
    assert run.exit_code == 124
    pids = [int(p.name) for p in marker.iterdir()]
    assert pids, "the workers started"

    def running(pid: int) -> bool:
        try:
            return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
        except OSError:
            return False

    deadline = time.monotonic() + 5  # SIGKILL lands at once; allow the kernel a moment to tear down
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if running(pid)], "xdist workers outlived the timeout"
