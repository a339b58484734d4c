"""Release hygiene: one version, read from the installed metadata; the shipped data is package data."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

import scam

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]


def test_version_matches_metadata():
    assert scam.__version__ == metadata.version("scam")


def test_version_is_set_once_in_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == scam.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", scam.__version__)
    for name in ("description", "readme", "license", "license-files", "requires-python", "classifiers", "urls"):
        assert project.get(name), name


def test_changelog_names_the_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{scam.__version__}]" in text
