"""One version across every distribution of the workspace, and exact pins between siblings."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import rustqueue_core

ROOT = Path(__file__).resolve().parents[1]
ROOT_PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
VERSION = ROOT_PROJECT["version"]
PLUGIN_PYPROJECTS = sorted(ROOT.glob("plugins/*/pyproject.toml"))
EXAMPLE_PYPROJECTS = sorted(ROOT.glob("examples/*/pyproject.toml"))


def project(path: Path) -> dict:  # type: ignore[type-arg]
    return tomllib.loads(path.read_text())["project"]


def test_package_version_matches_the_distribution() -> None:
    assert rustqueue_core.__version__ == VERSION


def test_workspace_has_plugins() -> None:
    assert len(PLUGIN_PYPROJECTS) >= 10


@pytest.mark.parametrize("path", PLUGIN_PYPROJECTS + EXAMPLE_PYPROJECTS, ids=lambda p: p.parent.name)
def test_every_distribution_has_the_same_version(path: Path) -> None:
    assert project(path)["version"] == VERSION


@pytest.mark.parametrize("path", PLUGIN_PYPROJECTS, ids=lambda p: p.parent.name)
def test_first_party_plugin_pins_the_core_exactly(path: Path) -> None:
    data = project(path)
    name = path.parent.name
    assert data["name"] == f"rustqueue-{name}"
    assert f"rustqueue=={VERSION}" in data["dependencies"]
    entry_points = tomllib.loads(path.read_text())["project"]["entry-points"]["rustqueue"]
    assert entry_points == {name: f"rustqueue_{name}.plugin"}


def test_extras_pin_siblings_exactly() -> None:
    for extra, requirements in ROOT_PROJECT["optional-dependencies"].items():
        for requirement in requirements:
            match = re.fullmatch(r"(rustqueue-[a-z]+)(.*)", requirement)
            if match:
                assert match.group(2) == f"=={VERSION}", f"extra {extra!r}: {requirement}"
    plugin_names = {p.parent.name for p in PLUGIN_PYPROJECTS}
    assert plugin_names <= set(ROOT_PROJECT["optional-dependencies"])
