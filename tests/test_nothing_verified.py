"""A run that verified nothing is never green: no target is a usage error, all-skipped exits 5.

The built-in suite runs here exactly as a user types it (``--pyargs pytest_reachability.suites``) from a
fresh folder, with no ``REACHABILITY_*`` variable, kubeconfig or ``~/.kube/config`` of the machine.
"""

from __future__ import annotations

import os

import pytest

SUITE = ("--pyargs", "pytest_reachability.suites")
CLUSTER_SECTION = ("--pyargs", "pytest_reachability.suites.test_01_cluster")
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")


@pytest.fixture(autouse=True)
def clean_environment(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("REACHABILITY_") or name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(pytester.path))  # no ~/.kube/config of the machine


def error_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines + result.errlines if line.startswith("ERROR:")]


@pytest.mark.parametrize("extra", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_builtin_suite_without_target_is_a_usage_error(
    pytester: pytest.Pytester, extra: tuple[str, ...]
) -> None:
    result = pytester.runpytest_subprocess(*SUITE, *QUIET, *extra, timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()[-2000:]
    errors = error_lines(result)
    assert len(errors) == 1, result.outlines + result.errlines
    assert errors[0].startswith("ERROR: no target: ") and "--target" in errors[0] and "--sandbox" in errors[0]
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text
    assert " passed" not in text and " skipped" not in text  # nothing ran


def test_listing_the_suite_needs_no_target(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(*CLUSTER_SECTION, *QUIET, "--collect-only", "-q", timeout=120)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-2000:]
    assert any("test_nodes_ready" in line or "::test_" in line for line in result.outlines)


def test_own_tests_without_target_run_as_usual(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine="def test_ok():\n    pass\n")
    result = pytester.runpytest_subprocess(*QUIET, timeout=120)
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("extra", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_run_where_every_builtin_check_was_skipped_exits_5(
    pytester: pytest.Pytester, extra: tuple[str, ...]
) -> None:
    # A user's own passing test does not make up for a built-in suite that verified nothing.
    pytester.makepyfile(test_mine="def test_ok():\n    pass\n")
    result = pytester.runpytest_subprocess(
        *CLUSTER_SECTION, "test_mine.py", *QUIET, *extra, "--target", "http://127.0.0.1:1", timeout=120
    )
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED, result.stdout.str()[-2000:]
    result.assert_outcomes(passed=1, skipped=7)
    result.stdout.fnmatch_lines(
        [
            "reachability: nothing verified: all 7 built-in checks were skipped (first: cluster not "
            "configured: *); "
            "exit status 5 (pass --allow-all-skipped to accept such a run)",
        ]
    )


@pytest.mark.parametrize("how", ["option", "environment", "file"])
def test_an_all_skipped_run_can_be_accepted_explicitly(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    args = [*CLUSTER_SECTION, *QUIET, "--target", "http://127.0.0.1:1"]
    if how == "option":
        args.append("--allow-all-skipped")
    elif how == "environment":
        monkeypatch.setenv("REACHABILITY_ALLOW_ALL_SKIPPED", "true")
    else:
        pytester.makepyprojecttoml("[tool.reachability]\nallow-all-skipped = true\n")
    result = pytester.runpytest_subprocess(*args, timeout=120)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-2000:]
    result.stdout.fnmatch_lines(
        [
            "reachability: nothing verified: all 7 built-in checks were skipped *; accepted "
            "(--allow-all-skipped)"
        ]
    )


@pytest.mark.parametrize(
    "how, message",
    [
        (
            "environment",
            "ERROR: REACHABILITY_ALLOW_ALL_SKIPPED: 'maybe' is not a yes/no value; expected one of 1, true, "
            "yes, on, 0, false, no, off",
        ),
        (
            "file",
            "ERROR: 'allow-all-skipped' in *pyproject.toml' [[]tool.reachability]: expected a boolean (true "
            "or false), got string 'yes'",
        ),
    ],
)
def test_a_bad_opt_in_value_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: str, message: str
) -> None:
    if how == "environment":
        monkeypatch.setenv("REACHABILITY_ALLOW_ALL_SKIPPED", "maybe")
    else:
        pytester.makepyprojecttoml('[tool.reachability]\nallow-all-skipped = "yes"\n')
    result = pytester.runpytest_subprocess(
        *CLUSTER_SECTION, *QUIET, "--target", "http://127.0.0.1:1", timeout=120
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert len(error_lines(result)) == 1
    result.stderr.fnmatch_lines([message])


def test_a_run_that_verified_something_keeps_its_status(pytester: pytest.Pytester) -> None:
    # A refused target: the DNS section has nothing to resolve (IP), tcp and api-health fail -> exit 1, not 5.
    result = pytester.runpytest_subprocess(
        "--pyargs",
        "pytest_reachability.suites.test_08_tcp",
        *QUIET,
        "--target",
        "http://127.0.0.1:1",
        "--probe-timeout",
        "2",
        timeout=120,
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "nothing verified" not in result.stdout.str()
