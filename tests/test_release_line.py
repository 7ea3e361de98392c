"""The release line agrees with itself: floors file and pyproject floors, changelog and version."""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).parent.parent


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_every_pin_in_the_floors_file_is_the_floor_pyproject_declares():
    declared: dict[str, Version] = {}
    project = _project()
    for line in [
        *project["dependencies"],
        *(d for extra in project["optional-dependencies"].values() for d in extra),
    ]:
        requirement = Requirement(line)
        for spec in requirement.specifier:
            if spec.operator == ">=":
                declared[requirement.name.lower()] = Version(spec.version)
    pins = [
        Requirement(line)
        for line in (ROOT / "constraints" / "floors.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for pin in pins:
        (spec,) = pin.specifier
        assert spec.operator == "=="
        assert declared.get(pin.name.lower()) == Version(spec.version), pin
    runtime = {Requirement(line).name.lower() for line in project["dependencies"]}
    assert runtime <= {pin.name.lower() for pin in pins}  # every runtime dependency has its floor tested


def test_the_changelog_has_a_section_for_the_version():
    version = _project()["version"]
    assert f"## {version} " in (ROOT / "CHANGELOG.md").read_text()
