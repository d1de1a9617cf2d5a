"""Path options in the space form never make pytest collect the wrong folder.

pytest chooses its root folder before plugin options exist, so ``--ca-bundle /elsewhere/ca.pem`` once
rooted the run at ``/elsewhere`` and collected whatever lay under the current folder without the
project's configuration. Each option is tried with a file outside the project: the space form is
refused before collection with one line naming the ``=`` form; the ``=`` form works; the space form
with a file inside the project, where it moves nothing, works too.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")

# option -> (file name, content); every file exists before the run, as a report from an earlier run would.
OPTION_FILES: dict[str, tuple[str, str]] = {
    "--ca-bundle": ("ca.pem", "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
    "--sandbox": ("mine.yaml", "name: mine\nbase: healthy\npostgres: false\n"),
    "--results-json": ("results.json", "{}\n"),
    "--kubeconfig": ("kubeconfig", "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"),
    "--reachability-config": ("reachability.toml", "[tool.reachability]\nprobe-timeout = 2\n"),
    "--incident-report": ("incident.md", "# earlier run\n"),
    "--html": ("report.html", "<html></html>\n"),
    "--results-db": ("history.sqlite", ""),
}

PROJECT_TEST = "def test_project():\n    pass\n"
# Beside the outside file: collected only if pytest roots the run there and walks the wrong folder.
STRAY_TEST = "def test_stray():\n    raise AssertionError('collected the wrong folder')\n"


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("REACHABILITY_") or name == "KUBECONFIG":
            monkeypatch.delenv(name)
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\ntestpaths = ["checks"]\n')
    (pytester.path / "checks").mkdir()
    (pytester.path / "checks" / "test_project.py").write_text(PROJECT_TEST)
    (pytester.path / "test_stray_in_invocation_dir.py").write_text(STRAY_TEST)
    return pytester.path


def outside_file(tmp_path_factory: pytest.TempPathFactory, option: str) -> Path:
    folder = tmp_path_factory.mktemp("elsewhere")
    (folder / "test_stray.py").write_text(STRAY_TEST)
    name, content = OPTION_FILES[option]
    path = folder / name
    path.write_text(content)
    return path


@pytest.mark.parametrize("option", list(OPTION_FILES))
def test_space_form_outside_the_project_is_refused_before_collection(
    pytester: pytest.Pytester, project: Path, tmp_path_factory: pytest.TempPathFactory, option: str
) -> None:
    path = outside_file(tmp_path_factory, option)
    result = pytester.runpytest_subprocess(option, str(path), *QUIET, timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()[-2000:]
    errors = [line for line in result.errlines + result.outlines if line.startswith("ERROR:")]
    assert errors == [
        f"ERROR: {option} {path}: pytest took {str(path)!r} for a test path and chose its root folder "
        f"from it before this option was known; write {option}={path}"
    ], result.errlines
    text = result.stdout.str() + result.stderr.str()
    assert "test_stray" not in text and "collected" not in text and "Traceback" not in text


@pytest.mark.parametrize("option", list(OPTION_FILES))
def test_equals_form_outside_the_project_works(
    pytester: pytest.Pytester, project: Path, tmp_path_factory: pytest.TempPathFactory, option: str
) -> None:
    path = outside_file(tmp_path_factory, option)
    if option == "--results-db":
        path.unlink()  # a fresh history database
    result = pytester.runpytest_subprocess(f"{option}={path}", *QUIET, "-v", timeout=120)
    text = result.stdout.str()
    assert f"rootdir: {project}" in text, text[-2000:]
    assert result.ret == pytest.ExitCode.OK, text[-2000:]
    result.stdout.fnmatch_lines(["checks/test_project.py::test_project PASSED*"])
    assert "test_stray" not in text


@pytest.mark.parametrize("option", ["--ca-bundle", "--results-json", "--html", "--reachability-config"])
def test_space_form_inside_the_project_works(pytester: pytest.Pytester, project: Path, option: str) -> None:
    name, content = OPTION_FILES[option]
    (project / "config").mkdir()
    (project / "config" / name).write_text(content)
    result = pytester.runpytest_subprocess(option, f"config/{name}", *QUIET, "-v", timeout=120)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-2000:]
    result.stdout.fnmatch_lines(["checks/test_project.py::test_project PASSED*"])


def test_output_that_does_not_exist_yet_works_in_the_space_form(
    pytester: pytest.Pytester, project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    target = tmp_path_factory.mktemp("out") / "results.json"
    result = pytester.runpytest_subprocess("--results-json", str(target), *QUIET, timeout=120)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-2000:]
    assert target.is_file()
