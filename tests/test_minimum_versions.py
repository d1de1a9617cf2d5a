"""The minimums job tests what pyproject.toml declares: its constraints pin every floor, exactly."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / ".ci" / "minimum-versions.txt"


def floors() -> dict[str, Version]:
    """Runtime dependencies and the postgres extra -> the lowest version their specifier allows."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found: dict[str, Version] = {}
    for text in [*project["dependencies"], *project["optional-dependencies"]["postgres"]]:
        requirement = Requirement(text)
        lower = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
        assert len(lower) == 1, f"{text}: expected one >= floor"
        found[canonicalize_name(requirement.name)] = lower[0]
    return found


def pins() -> dict[str, Version]:
    found: dict[str, Version] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9][0-9A-Za-z.]*)", line)
            assert match, f"{CONSTRAINTS.name}: {line!r} is not NAME==VERSION"
            found[canonicalize_name(match[1])] = Version(match[2])
    return found


def test_constraints_pin_every_floor_of_pyproject() -> None:
    assert pins() == floors()


def test_every_floor_is_allowed_by_its_own_specifier() -> None:
    # An exclusion like kubernetes !=36.0.0 must not exclude the floor the job installs.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for text in [*project["dependencies"], *project["optional-dependencies"]["postgres"]]:
        requirement = Requirement(text)
        assert requirement.specifier.contains(floors()[canonicalize_name(requirement.name)]), text
