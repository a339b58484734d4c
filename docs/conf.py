"""Sphinx configuration of scam's documentation (``make docs`` builds it offline into ``docs/_build/html``)."""

from __future__ import annotations

import sys
from datetime import date
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the source tree's scam, also when it is not installed (Read the Docs installs it)

# The tutorials live in tutorials/ (executed there by the tests); the docs render copies of the committed
# notebooks with their outputs. The copies are build products (ignored by git). A notebook shows a figure of the
# docs as `../docs/<name>.png` (the path from tutorials/); in the copies, one level down in docs/, that is
# `../<name>.png`.
_TUTORIALS = HERE / "tutorials"
_TUTORIALS.mkdir(exist_ok=True)
for _nb in sorted((ROOT / "tutorials").glob("*.ipynb")):
    _text = _nb.read_bytes().replace(b"](../docs/", b"](../")
    if not (_TUTORIALS / _nb.name).exists() or (_TUTORIALS / _nb.name).read_bytes() != _text:
        (_TUTORIALS / _nb.name).write_bytes(_text)

project = "scam"
author = "scam developers"
copyright = f"2026-{date.today().year}, {author}" if date.today().year > 2026 else f"2026, {author}"
try:
    release = metadata.version("scam")
except metadata.PackageNotFoundError:
    release = "0+unknown"
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # before sphinx_autodoc_typehints
    "sphinx_autodoc_typehints",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "readme_figure.py"]
templates_path = ["_templates"]

# Notebooks: render the committed outputs, never execute (no kernel, no network, no training at build time)
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["colon_fence", "dollarmath", "amsmath", "deflist"]
myst_heading_anchors = 3

# API reference: one page per public function and class, generated from the docstrings (numpydoc style)
autosummary_generate = True
autosummary_imported_members = True
autodoc_member_order = "groupwise"
autodoc_default_options = {"members": True, "inherited-members": False, "show-inheritance": False}
autodoc_typehints = "description"
autodoc_mock_imports: list[str] = []
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = True
napoleon_use_param = True
napoleon_custom_sections = [("Writes", "params_style"), ("Reads", "params_style")]
typehints_defaults = "braces"
always_document_param_types = False
typehints_use_signature = False

# No intersphinx: the build must not reach the network. Types of other packages show as plain names.
intersphinx_mapping: dict = {}

html_theme = "sphinx_book_theme"
html_title = f"scam {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_logo = None
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
html_show_sourcelink = False
nitpicky = False
