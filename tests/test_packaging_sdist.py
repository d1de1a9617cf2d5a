"""The source distribution: its metadata (SPDX license, URLs, classifiers), the files its own tests read, and
those tests run from the unpacked sdist against the package installed from it.

Built with ``python -m build --sdist`` from a copy of the checkout (the shared working tree gets no
``dist/``); the installed package's dependencies come from this test's own environment.
"""

from __future__ import annotations

import email.parser
import shutil
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest
from test_suite_packaging import run

CHECKOUT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT = 300  # the isolated build fetches setuptools from the package index (or pip's cache)


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the sdist archive, the folder it unpacks to)."""
    pytest.importorskip("build", reason="build is in the test extras: pip install -e '.[test]'")
    base = tmp_path_factory.mktemp("sdist")
    source = base / "source"
    shutil.copytree(
        CHECKOUT,
        source,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "__pycache__",
            "*.egg-info",
            "build",
            "dist",
            ".pytest_cache",
            ".ruff_cache",
            ".tox",
        ),
    )
    run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(base / "dist")],
        cwd=source,
        timeout=BUILD_TIMEOUT,
    )
    (archive,) = (base / "dist").glob("pytest_reachability-*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(base / "unpacked", filter="data")
    (unpacked,) = (base / "unpacked").iterdir()
    return archive, unpacked


def test_sdist_metadata_has_spdx_license_urls_and_classifiers(sdist: tuple[Path, Path]) -> None:
    _, unpacked = sdist
    info = email.parser.Parser().parsestr((unpacked / "PKG-INFO").read_text())
    assert info["License-Expression"] == "MIT" and info.get_all("License-File") == ["LICENSE"]
    assert "License" not in info  # the deprecated free-text form is gone
    classifiers = set(info.get_all("Classifier"))
    assert {"Framework :: Pytest", "Typing :: Typed"} <= classifiers
    assert {f"Programming Language :: Python :: 3.{minor}" for minor in range(10, 14)} <= classifiers
    assert not any(c.startswith("License ::") for c in classifiers)
    urls = dict(value.split(", ", 1) for value in info.get_all("Project-URL"))
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(urls)
    assert (unpacked / "LICENSE").read_text().startswith("MIT License")


def test_sdist_carries_what_its_tests_read(sdist: tuple[Path, Path]) -> None:
    _, unpacked = sdist
    for name in (
        "conftest.py",
        "tests/servers.py",
        "tests/junit_schema.py",
        "tests/test_report_terminal.py",
        "action.yml",
        "action-constraints.txt",
        "deploy/rbac.yaml",
        "deploy/rbac-cluster.yaml",
        "examples/github-workflow.yml",
        "docs/results-schema.md",
        "benchmarks/README.md",
        "tox.ini",
        "pytest_reachability/py.typed",
        "pytest_reachability/schemas/results-1.1.schema.json",
        "pytest_reachability/schemas/results-1.2.schema.json",
        "suites/conftest.py",
    ):
        assert (unpacked / name).is_file(), name
    assert not list(unpacked.rglob("__pycache__")) and not list(unpacked.rglob("*.pyc"))


def test_sdist_installs_and_runs_its_own_tests(sdist: tuple[Path, Path], tmp_path: Path) -> None:
    archive, unpacked = sdist
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, timeout=120)
    python = venv / "bin" / "python"
    site = Path(
        run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=tmp_path,
            timeout=60,
        ).strip()
    )
    # The dependencies (and the test extras) of this environment, after the venv's own packages.
    (site / "dependencies-of-the-test-run.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(
        [str(python), "-m", "pip", "install", "--no-deps", "--quiet", str(archive)],
        cwd=tmp_path,
        timeout=BUILD_TIMEOUT,
    )
    where = run(
        [str(python), "-c", "from pytest_reachability.report.json import schema_path; print(schema_path())"],
        cwd=tmp_path,
        timeout=60,
    ).strip()
    assert Path(where).is_relative_to(venv) and Path(where).is_file(), (
        where
    )  # the JSON Schema is installed too
    output = run(
        [
            str(python),
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "tests/test_report_terminal.py",
            "tests/test_report_json.py::test_schema_refuses_what_the_reader_refuses",
            "tests/test_rbac.py::test_each_rule_says_which_section_needs_it",
            "tests/test_action.py::test_constraints_pin_every_runtime_dependency_at_an_accepted_version",
        ],
        cwd=unpacked,
        timeout=300,
    )
    assert " passed" in output and "failed" not in output and "error" not in output, output[-3000:]
