"""Every report file is written the same way: atomically, with the mode the umask gives a new file.

The incident report and the JSON results are the plugin's; the HTML report is pytest-html's and the JUnit
XML pytest's own, routed through the same temporary-file-and-rename. A rename is what makes a write
atomic, and it shows: each output path starts as a hard link to a witness file, and after the run the
witness still holds the old text (the path was replaced, never written through, so a reader never saw
half a file), the new file has the umask's mode, and no temporary file is left beside it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pytest_reachability.atomic import current_umask, file_mode, write_atomically

TESTS = """
import pytest

pytestmark = pytest.mark.section("dns")

@pytest.mark.gate("api-health")
def test_health():
    assert False, "empty reply from 127.0.10.57:80"

@pytest.mark.requires("api-health")
def test_database():
    pass
"""

OUTPUTS = {
    "--html": "report.html",
    "--junitxml": "junit.xml",
    "--results-json": "results.json",
    "--incident-report": "incident.md",
}


@pytest.fixture(params=[0o022, 0o027, 0o002], ids=["umask-022", "umask-027", "umask-002"])
def umask(request: pytest.FixtureRequest) -> int:
    previous = os.umask(request.param)  # inherited by the pytest run started below
    yield request.param
    os.umask(previous)


def test_every_report_is_replaced_atomically_with_the_umasks_mode(
    pytester: pytest.Pytester, umask: int
) -> None:
    pytester.makepyfile(test_checks=TESTS)
    out = pytester.path / "reports"
    out.mkdir()
    witnesses = {}
    for name in OUTPUTS.values():
        witness = pytester.path / f"witness-{name}"
        witness.write_text("report of an earlier run\n")
        os.link(witness, out / name)
        witnesses[name] = witness
    args = [f"{option}={out / name}" for option, name in OUTPUTS.items()]
    result = pytester.runpytest_subprocess(
        *args, "--self-contained-html", "-p", "no:cacheprovider", timeout=120
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()[-2000:]
    expected = 0o666 & ~umask
    modes = {name: stat.S_IMODE((out / name).stat().st_mode) for name in OUTPUTS.values()}
    assert modes == dict.fromkeys(OUTPUTS.values(), expected), {k: oct(v) for k, v in modes.items()}
    for name, witness in witnesses.items():
        assert witness.read_text() == "report of an earlier run\n", (
            f"{name} was written through, not replaced"
        )
        assert not os.path.samefile(witness, out / name)
        assert (out / name).stat().st_size > 100
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS.values()), "temporary files left behind"
    result.stdout.fnmatch_lines([f"*generated xml file: {out / 'junit.xml'}*"])


def test_umask_is_read_without_changing_it() -> None:
    previous = os.umask(0o037)
    try:
        assert current_umask() == 0o037 and file_mode() == 0o640
        assert os.umask(0o037) == 0o037  # unchanged by the read
    finally:
        os.umask(previous)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    target.write_text("old\n")

    class Unwritable:
        def __len__(self) -> int:
            raise OSError("disk full")

    with pytest.raises(TypeError):
        write_atomically(target, Unwritable())  # type: ignore[arg-type]
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
