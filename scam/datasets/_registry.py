"""The dataset registry: ``data_registry.yaml`` (shipped in the wheel next to this module)."""

from __future__ import annotations

import copy
import functools
import importlib
import re
from pathlib import Path

import yaml

_HERE = Path(__file__).resolve().parent
REGISTRY_CANDIDATES = (
    _HERE / "data_registry.yaml",  # wheel: force-included by pyproject
    _HERE.parents[1] / "data_registry.yaml",  # editable install / source checkout: repository root
)
BUNDLED_DIR = _HERE / "_data"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
REQUIRED_KEYS = ("name", "title", "citation", "doi", "licence", "organism", "files", "reader", "time_key",
                 "embedding", "notes")
URL_SCHEMES = ("https://", "http://", "file://")


class RegistryError(ValueError):
    """The dataset registry is malformed."""


def registry_path() -> Path:
    """Path of the registry file in use.

    Returns
    -------
    pathlib.Path
        ``scam/datasets/data_registry.yaml`` (installed wheel) when present, else the repository's
        ``data_registry.yaml`` (editable install).
    """
    for candidate in REGISTRY_CANDIDATES:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "scam dataset registry not found; looked for " + ", ".join(str(c) for c in REGISTRY_CANDIDATES)
    )


@functools.lru_cache(maxsize=1)
def _read_registry(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def get_registry() -> dict:
    """The parsed and validated registry.

    Returns
    -------
    dict
        ``{"schema_version": ..., "datasets": [entry, ...]}``; a fresh copy, safe to modify.
    """
    reg = copy.deepcopy(_read_registry(str(registry_path())))
    validate_registry(reg, check_readers=False)
    return reg


def get_entry(name: str) -> dict:
    """The registry entry of one dataset.

    Parameters
    ----------
    name
        Dataset name (see :func:`scam.datasets.list_datasets`).

    Returns
    -------
    dict
        A copy of the entry: title, citation, doi, licence, organism, files, reader, time_key,
        embedding, notes.
    """
    entries = {e["name"]: e for e in get_registry()["datasets"]}
    if name not in entries:
        raise KeyError(f"Unknown dataset {name!r}; available: {', '.join(sorted(entries))}.")
    return entries[name]


def file_name(spec: dict) -> str:
    """Local file name of a registry file entry (``filename``, else the last part of the url)."""
    if spec.get("filename"):
        return str(spec["filename"])
    return str(spec["url"]).rstrip("/").rsplit("/", 1)[-1]


def validate_entry(entry: dict, *, check_readers: bool = True) -> None:
    """Check one registry entry; raises :class:`RegistryError` listing every problem found."""
    problems = []
    name = entry.get("name", "<unnamed>") if isinstance(entry, dict) else "<not a mapping>"
    if not isinstance(entry, dict):
        raise RegistryError(f"dataset entry {entry!r} is not a mapping")
    for key in REQUIRED_KEYS:
        if key not in entry:
            problems.append(f"missing key {key!r}")
    if not isinstance(entry.get("name"), str) or not _NAME.match(entry.get("name", "")):
        problems.append(f"name {entry.get('name')!r} must match {_NAME.pattern}")
    for key in ("title", "citation", "licence", "organism", "reader", "time_key", "notes"):
        if key in entry and not (isinstance(entry[key], str) and entry[key].strip()):
            problems.append(f"{key!r} must be a non-empty string")
    if entry.get("embedding") is not None and not isinstance(entry.get("embedding"), str):
        problems.append("'embedding' must be a string (an obsm key) or null")
    if entry.get("doi") is not None and not isinstance(entry.get("doi"), str):
        problems.append("'doi' must be a string or null")
    bundled = entry.get("bundled", False)
    if not isinstance(bundled, bool):
        problems.append("'bundled' must be true or false")
    files = entry.get("files")
    if not isinstance(files, list) or not files:
        problems.append("'files' must be a non-empty list")
        files = []
    seen = set()
    for i, spec in enumerate(files):
        where = f"files[{i}]"
        if not isinstance(spec, dict):
            problems.append(f"{where} is not a mapping")
            continue
        sha = spec.get("sha256")
        if not (isinstance(sha, str) and _SHA256.match(sha)):
            problems.append(f"{where}: sha256 must be 64 lowercase hex characters, got {sha!r}")
        size = spec.get("size")
        if size is not None and not (isinstance(size, int) and size > 0):
            problems.append(f"{where}: size must be a positive integer (bytes) or null")
        if bundled:
            if not spec.get("filename"):
                problems.append(f"{where}: a bundled file needs 'filename'")
            elif check_readers and not (BUNDLED_DIR / spec["filename"]).is_file():
                problems.append(f"{where}: bundled file {BUNDLED_DIR / spec['filename']} is missing")
        else:
            url = spec.get("url")
            if not (isinstance(url, str) and url.startswith(URL_SCHEMES)):
                problems.append(f"{where}: url must start with one of {URL_SCHEMES}, got {url!r}")
                continue
        fname = file_name(spec)
        if fname in seen:
            problems.append(f"{where}: duplicate file name {fname!r}")
        seen.add(fname)
    if check_readers and isinstance(entry.get("reader"), str):
        module = importlib.import_module("scam.datasets")
        if not callable(getattr(module, entry["reader"], None)):
            problems.append(f"reader {entry['reader']!r} is not a function of scam.datasets")
    if problems:
        raise RegistryError(f"registry entry {name!r}: " + "; ".join(problems))


def validate_registry(registry: dict, *, check_readers: bool = True) -> None:
    """Check the registry against its schema.

    Checks the layout, that dataset names are unique, and every entry: required keys, a 64-hex-digit
    sha256 for every file, an http(s)/file url for every file of a non-bundled dataset, positive
    integer (or null) sizes, and (``check_readers``) that the reader is a function of
    :mod:`scam.datasets` and bundled files exist.

    Parameters
    ----------
    registry
        The parsed registry (see :func:`get_registry`).
    check_readers
        Also check readers and bundled files.

    Raises
    ------
    RegistryError
        Listing every problem of the first bad entry.
    """
    if not isinstance(registry, dict) or not isinstance(registry.get("datasets"), list):
        raise RegistryError("the registry must be a mapping with a list under 'datasets'")
    names = [e.get("name") if isinstance(e, dict) else None for e in registry["datasets"]]
    dupes = sorted({n for n in names if names.count(n) > 1 and n is not None})
    if dupes:
        raise RegistryError(f"duplicate dataset names in the registry: {dupes}")
    for entry in registry["datasets"]:
        validate_entry(entry, check_readers=check_readers)
