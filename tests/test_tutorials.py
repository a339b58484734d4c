"""Tutorials stay in step with the API and run: every notebook in tutorials/ is executed top to bottom.

Static checks (fast): valid notebooks, code that compiles, scam names that exist, committed with their
outputs, offline and self-contained (bundled data only, nothing from ``../shared``).

Execution (``slow``, ``tutorials``; about 1 minute per notebook on 2 CPU cores): each notebook runs in a
fresh kernel with the working directory ``tutorials/``, in the fast setting (``SCAM_TUTORIAL_FAST=1``),
with an empty download cache and a guard cell that refuses any network connection. Needs nbclient,
nbformat and ipykernel (the ``test`` extra); CellRank cells skip themselves when cellrank is missing.
"""

from __future__ import annotations

import ast
import json
import re
import time
from pathlib import Path

import pytest

import scam

TUTORIAL_DIR = Path(__file__).resolve().parent.parent / "tutorials"
TUTORIALS = sorted(TUTORIAL_DIR.glob("*.ipynb"))
EXPECTED = [
    "01_quick_start.ipynb",
    "02_larry_counts_to_dynamics.ipynb",
    "03_growth_and_death.ipynb",
    "04_heldout_evaluation.ipynb",
    "05_fates_and_cellrank.ipynb",
]

# Run first in the kernel: refuse every connection that is not to this machine (the kernel talks to the
# test over loopback), so a notebook that tries to download anything fails.
NETWORK_GUARD = '''
import socket as _socket
_real_connect = _socket.socket.connect
def _guarded_connect(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if self.family in (_socket.AF_INET, _socket.AF_INET6) and host not in ("127.0.0.1", "localhost", "::1"):
        raise AssertionError(f"tutorial tried to reach the network: {address!r}")
    return _real_connect(self, address)
_socket.socket.connect = _guarded_connect
'''


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


def _code_cells(path: Path) -> list[dict]:
    nb = json.loads(path.read_text())
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_there_are_tutorials():
    assert [p.name for p in TUTORIALS] == EXPECTED


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


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_notebook_is_committed_executed_in_order(path):
    """Committed with outputs, from one run top to bottom (execution counts 1, 2, 3, ...)."""
    cells = [c for c in _code_cells(path) if "".join(c["source"]).strip()]
    counts = [c.get("execution_count") for c in cells]
    assert all(isinstance(n, int) for n in counts), f"{path.name}: cells without outputs (not executed)"
    assert counts == list(range(1, len(cells) + 1)), f"{path.name}: not executed top to bottom in one run: {counts}"
    assert sum(bool(c.get("outputs")) for c in cells) >= len(cells) // 2
    figures = sum("image/png" in o.get("data", {}) for c in cells for o in c.get("outputs", []))
    assert figures >= 1, f"{path.name}: no figure in the committed outputs"


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_notebook_is_offline_and_self_contained(path):
    """Only data shipped with scam: no ../shared, no URLs, load() only of bundled datasets."""
    bundled = {e["name"] for e in scam.datasets.get_registry()["datasets"] if e.get("bundled")}
    src = "\n".join("".join(c["source"]) for c in _code_cells(path))
    assert "shared/" not in src and "../" not in src, f"{path.name} reads files outside tutorials/"
    assert not re.search(r"https?://", src), f"{path.name} names a URL in its code"
    assert "datasets.fetch" not in src
    for name in re.findall(r"datasets\.load\(\s*['\"]([^'\"]+)['\"]", src):
        assert name in bundled, f"{path.name} loads {name!r}, which is not shipped with scam (a download)"
    assert "SCAM_TUTORIAL_FAST" in src, f"{path.name} has no FAST switch"


@pytest.mark.slow
@pytest.mark.tutorials
@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_notebook_executes(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # inherited by the kernel process
    monkeypatch.setenv("SCAM_TUTORIAL_FAST", "1")
    monkeypatch.setenv("SCAM_DATA_DIR", str(tmp_path / "empty_cache"))
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(NETWORK_GUARD))
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(TUTORIAL_DIR)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the failing cell
    seconds = time.perf_counter() - start
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert not list(tmp_path.glob("empty_cache/**/*.*")), "a tutorial downloaded something"
    print(f"{path.name}: executed in {seconds:.0f} s")
