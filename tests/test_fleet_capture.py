"""Output capture in fleet runs: ``sys`` level unless the command line names a method.

Descriptor capture costs two ``dup2`` and an ``fstat`` per phase of every test; a fleet of 200 targets
runs 7,000 tests. A test writing to descriptor 1 shows whether the run captured at the descriptor."""

from __future__ import annotations

import pytest

from pytest_reachability.plugin import _capture_chosen

TEST = """
import os

def test_writes_to_the_descriptor_and_to_sys_stdout(request):
    os.write(1, b"DESCRIPTOR-WRITE\\n")
    print("SYS-WRITE")
    print("CAPTURE-IS", request.config.option.capture)
    assert False
"""


@pytest.mark.parametrize(
    ("args", "method"),
    [
        ((), "fd"),
        (("--target", "a.test"), "fd"),
        (("--target", "a.test", "--target", "b.test"), "sys"),
        (("--target", "a.test", "--target", "b.test", "--capture=fd"), "fd"),
        (("--target", "a.test", "--target", "b.test", "--capture", "fd"), "fd"),
        (("--target", "a.test", "--target", "b.test", "--capture=tee-sys"), "tee-sys"),
        (("--target", "a.test", "--target", "b.test", "-vs"), "no"),
    ],
)
def test_a_fleet_run_captures_at_sys_level_unless_a_method_is_named(
    pytester: pytest.Pytester, args: tuple[str, ...], method: str
) -> None:
    pytester.makepyfile(test_capture=TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    out = result.stdout.str()
    result.assert_outcomes(failed=1)
    descriptor_captured = method in ("fd",)
    # Captured output is shown in the failure's "Captured stdout call" section, not where it was written.
    assert ("Captured stdout call" in out) == (method != "no"), out[-3000:]
    if method != "no":
        assert f"CAPTURE-IS {method}" in out, out[-3000:]
    captured_section = out.split("Captured stdout call", 1)[1] if "Captured stdout call" in out else ""
    assert ("DESCRIPTOR-WRITE" in captured_section) == descriptor_captured, out[-3000:]
    assert "DESCRIPTOR-WRITE" in out


def test_addopts_naming_a_method_keeps_it(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_capture=TEST)
    monkeypatch.setenv("PYTEST_ADDOPTS", "--capture=fd")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--target", "a.test", "--target", "b.test"
    )
    assert "CAPTURE-IS fd" in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "chosen"),
    [
        (["-q", "--target", "a"], False),
        (["-s"], True),
        (["-qs"], True),
        (["--capture=no"], True),
        (["--capture", "sys"], True),
        (["-p", "no:cacheprovider"], False),
        (["--", "-s"], False),  # after "--" nothing is an option
    ],
)
def test_which_command_lines_name_a_capture_method(args: list[str], chosen: bool) -> None:
    assert _capture_chosen(args) is chosen
