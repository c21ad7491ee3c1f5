"""The project's metadata agrees with itself: one version, one licence, a typed package."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import selectivity

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the metadata checks need no more

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_one_version_everywhere():
    declared = _pyproject()["project"]["version"]
    assert selectivity.__version__ == declared
    citation = re.search(r"^version:\s*(\S+)", (ROOT / "CITATION.cff").read_text(), re.M)
    assert citation is not None and citation.group(1) == declared
    # The newest CHANGELOG entry is the version being released.
    newest = re.search(r"^## \[?(\d+\.\d+\.\d+)", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert newest is not None and newest.group(1) == declared


def test_license_matches_metadata():
    assert _pyproject()["project"]["license"] == {"text": "MIT"}
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_citation_names_both_papers():
    text = (ROOT / "CITATION.cff").read_text()
    assert "2003.01262" in text and "2010.07693" in text


def test_package_is_typed():
    assert (Path(selectivity.__file__).parent / "py.typed").is_file()
