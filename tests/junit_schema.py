"""pytest's own JUnit schema (``junit-10.xsd``, xunit2), taken from the source distribution of the installed
pytest.

The schema is not in pytest's wheel and is never committed here: it is downloaded once with pip
(``pip download --no-binary :all: --no-deps pytest==<version>``) and cached outside the repository, in
``$REACHABILITY_CACHE`` or ``~/.cache/pytest-reachability``. ``REACHABILITY_JUNIT_XSD`` names a file to use
instead. Run as a script it prints the schema's path (``.ci/run`` does so before the tests).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

SCHEMA_IN_SDIST = "testing/example_scripts/junit-10.xsd"


class SchemaUnavailable(RuntimeError):
    """The schema could not be fetched (one line saying why)."""


def cache_dir() -> Path:
    base = os.environ.get("REACHABILITY_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "pytest-reachability"
    )
    return Path(base)


def fetch_schema(version: str = pytest.__version__) -> Path:
    """The path of ``junit-10.xsd`` of pytest ``version``, downloading its sdist on first use."""
    given = os.environ.get("REACHABILITY_JUNIT_XSD")
    if given:
        if not Path(given).is_file():
            raise SchemaUnavailable(f"REACHABILITY_JUNIT_XSD={given} is not a file")
        return Path(given)
    cached = cache_dir() / f"pytest-{version}" / "junit-10.xsd"
    if cached.is_file():
        return cached
    with tempfile.TemporaryDirectory(prefix="reachability-pytest-sdist-") as folder:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-binary",
                ":all:",
                "--no-deps",
                f"pytest=={version}",
                "--dest",
                folder,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        archives = list(Path(folder).glob("pytest-*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise SchemaUnavailable(
                f"pip download of the pytest {version} sdist failed: {done.stderr.strip()[-300:]}"
            )
        with tarfile.open(archives[0]) as archive:
            member = next((m for m in archive.getmembers() if m.name.endswith("/" + SCHEMA_IN_SDIST)), None)
            if member is None:
                raise SchemaUnavailable(f"the pytest {version} sdist has no {SCHEMA_IN_SDIST}")
            data = archive.extractfile(member).read()
    cached.parent.mkdir(parents=True, exist_ok=True)
    temporary = cached.with_suffix(".tmp")
    temporary.write_bytes(data)
    temporary.replace(cached)
    return cached


def junit_schema():
    """The loaded schema for tests; CI fails without it, elsewhere the test is skipped saying why."""
    xmlschema = pytest.importorskip(
        "xmlschema", reason="xmlschema is in the test extras: pip install -e '.[test]'"
    )
    try:
        return xmlschema.XMLSchema(str(fetch_schema()))
    except SchemaUnavailable as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"pytest's JUnit schema is required in CI: {error}")
        pytest.skip(f"pytest's JUnit schema is unavailable: {error}")


def schema_errors(schema, path: str | os.PathLike[str]) -> list[str]:
    """Every schema error of a JUnit file, one line each (empty when valid)."""
    return [f"{error.path}: {error.reason}" for error in schema.iter_errors(str(path))]


if __name__ == "__main__":
    try:
        print(fetch_schema())
    except SchemaUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
