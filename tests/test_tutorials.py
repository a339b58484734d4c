"""Tutorials stay in step with the API: valid notebooks, code that compiles, scam names that exist."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import scam

TUTORIALS = sorted((Path(__file__).resolve().parent.parent / "tutorials").glob("*.ipynb"))


def _scam_attributes(tree: ast.AST):
    """Dotted names ``scam.a.b`` used in the code."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            parts = []
            cur = node
            while isinstance(cur, ast.Attribute):
                parts.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name) and cur.id == "scam":
                yield ["scam", *reversed(parts)]


def test_there_are_tutorials():
    assert len(TUTORIALS) >= 2


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_notebook_code_compiles_and_uses_existing_api(path):
    nb = json.loads(path.read_text())
    assert nb["nbformat"] == 4
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "a tutorial without code"
    names = set()
    for src in code:
        tree = ast.parse(src)  # raises on a syntax error
        names.update(tuple(n) for n in _scam_attributes(tree))
    assert names, "the tutorial never calls scam"
    for dotted in sorted(names):
        obj = scam
        for part in dotted[1:]:
            assert hasattr(obj, part), f"{path.name}: {'.'.join(dotted)} does not exist"
            obj = getattr(obj, part)
    # executed notebooks carry no error outputs
    for c in nb["cells"]:
        for out in c.get("outputs", []):
            assert out.get("output_type") != "error", f"{path.name} was saved with an error"
