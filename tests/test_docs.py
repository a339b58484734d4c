"""The documentation covers the public API: every exported name has its page in the API reference."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import scam

API = Path(__file__).resolve().parents[1] / "docs" / "api.md"
SUBPACKAGES = ("pp", "tl", "pl", "metrics", "datasets", "core")


def _listed() -> set[str]:
    return set(re.findall(r"^\s{3}(\w+\.\w+)\s*$", API.read_text(), flags=re.MULTILINE))


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_every_public_name_has_an_api_page(name):
    module = getattr(scam, name)
    exported = {f"{name}.{n}" for n in module.__all__}
    missing = sorted(exported - _listed())
    assert not missing, f"add to docs/api.md: {missing}"


def test_api_page_lists_only_public_names():
    exported = {f"{name}.{n}" for name in SUBPACKAGES for n in getattr(scam, name).__all__}
    unknown = sorted(_listed() - exported)
    assert not unknown, f"docs/api.md lists names that are not exported: {unknown}"
