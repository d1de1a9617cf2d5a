"""The built-in suite from an installed wheel, run in a folder that is not the checkout.

The documented form is ``pytest --pyargs pytest_reachability.suites`` (plus ``--target`` or ``--sandbox``):
the wheel installs ``suites/`` as the package ``pytest_reachability.suites``. This test builds the wheel
from a copy of the checkout (so the shared working tree gets no ``build/`` folder), installs it without
dependencies into a fresh venv, and runs the suite against the healthy sandbox from an empty folder.

The fresh venv finds the dependencies where the interpreter running these tests has them (its own
venv's site-packages, through a ``.pth`` line), not in the base interpreter's: a venv made with
``--system-site-packages`` from inside ``.venv`` sees only the base interpreter's packages.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT = 300  # pip may fetch the build backend from the package index
RUN_TIMEOUT = 150


def run(command: list[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    try:
        completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(command[:4])} did not finish within {timeout}s")
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"{' '.join(command)} exited {completed.returncode}:\n{output[-4000:]}"
    return output


@pytest.fixture(scope="module")
def installed_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the wheel built from this checkout installed
    (dependencies from this interpreter's site)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    shutil.copytree(
        CHECKOUT,
        source,
        ignore=shutil.ignore_patterns(
            ".git",
            "__pycache__",
            "*.egg-info",
            "build",
            "dist",
            "reports",
            ".pytest_cache",
            "tests",
            "benchmarks",
            ".ruff_cache",
            ".tox",
        ),
    )
    dist = base / "dist"
    run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-w", str(dist), "-q"],
        cwd=source,
        timeout=BUILD_TIMEOUT,
    )
    wheels = list(dist.glob("pytest_reachability-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {dist}, found {[w.name for w in wheels]}"
    venv = base / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=base, timeout=120)
    python = venv / "bin" / "python"
    site = run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=base, timeout=60
    ).strip()
    # The dependencies of this interpreter (after the venv's own site-packages, so the wheel comes first).
    ours = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (Path(site) / "reachability-test-dependencies.pth").write_text("".join(f"{path}\n" for path in ours))
    run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheels[0])],
        cwd=base,
        timeout=120,
    )
    return venv


def test_wheel_installs_the_suite_as_a_package(installed_venv: Path, tmp_path: Path) -> None:
    python = installed_venv / "bin" / "python"
    where = run(
        [str(python), "-c", "import pytest_reachability.suites as s; print(s.__file__)"],
        cwd=tmp_path,
        timeout=60,
    ).strip()
    assert Path(where).is_relative_to(installed_venv), f"suite imported from {where}, not from the venv"
    installed = Path(where).parent
    names = sorted(p.name for p in installed.glob("test_*.py"))
    assert [n[:8] for n in names[:11]] == [f"test_{i:02d}_" for i in range(1, 12)], names
    assert (installed / "conftest.py").is_file()


def test_installed_suite_runs_against_the_sandbox_from_another_folder(
    installed_venv: Path, tmp_path: Path
) -> None:
    python = installed_venv / "bin" / "python"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("REACHABILITY_", "PYTEST_")) and key != "KUBECONFIG"
    }
    env["COLUMNS"] = "1000"
    output = run(
        [
            str(python),
            "-m",
            "pytest",
            "--pyargs",
            "pytest_reachability.suites",
            "--sandbox",
            "healthy",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
            "-p",
            "no:benchmark",
            "-rs",
        ],
        cwd=tmp_path,
        timeout=RUN_TIMEOUT,
        env=env,
    )
    assert "site-packages/pytest_reachability/suites/test_09_tls.py" in output, output[-3000:]
    assert str(CHECKOUT / "suites") not in output, "the run used the checkout's suite, not the installed one"
    for section in (
        "cluster",
        "workloads",
        "k8s-services",
        "endpoints",
        "ingress",
        "network-policy",
        "dns",
        "tcp",
        "api-health",
        "api-internal",
    ):
        assert re.search(rf"^{re.escape(section)}\s+\d+\s+\d+\s+0\s+0\s+\d+\s+PASS$", output, re.M), (
            f"section {section} did not pass:\n{output[-3000:]}"
        )
    assert re.search(r"^tls\s+4\s+0\s+0\s+0\s+4\s+SKIPPED$", output, re.M), output[-3000:]
    assert not re.search(r"\d+ failed", output), output[-3000:]
