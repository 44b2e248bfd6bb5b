"""constraints.txt, the lock every install goes through, pins everything pyproject.toml asks for,
at versions pyproject.toml allows: a dependency added without `make lock` fails here."""

import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support.deploy import ROOT


def pins() -> dict[str, list[Version]]:
    """Name to pinned versions (one per Python-version marker where the resolution differs)."""
    found: dict[str, list[Version]] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", line
            found.setdefault(canonicalize_name(requirement.name), []).append(
                Version(specifier.version)
            )
    return found


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [req for group in project["optional-dependencies"].values() for req in group]
    return [Requirement(req) for req in [*project["dependencies"], *extras]]


def test_every_declared_dependency_is_pinned_at_a_version_it_allows() -> None:
    locked = pins()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is not in constraints.txt: run `make lock`"
        for version in locked[name]:
            assert requirement.specifier.contains(version, prereleases=True), (requirement, version)
