"""Getting dataset files: from a folder, the bundled data, or a download into the cache; always sha256-checked."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import pooch

from .._utils import logger
from ._registry import BUNDLED_DIR, file_name

ENV_DATA_DIR = "SCAM_DATA_DIR"


class ChecksumError(ValueError):
    """A dataset file does not have the sha256 recorded in the registry (corrupted or tampered)."""


class DownloadError(OSError):
    """A dataset file could not be downloaded (offline, moved, server error)."""


def sha256_of(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """sha256 hex digest of a file.

    Parameters
    ----------
    path
        The file.
    chunk_size
        Bytes read at a time.

    Returns
    -------
    str
        64 lowercase hex characters.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """The download cache: ``$SCAM_DATA_DIR`` when set, else ``pooch.os_cache("scam")``.

    Returns
    -------
    pathlib.Path
        The cache folder (not created here). Each dataset gets a sub-folder named after it.
    """
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    return Path(pooch.os_cache("scam"))


def dataset_cache_dir(name: str, cache_dir: str | Path | None = None) -> Path:
    """Folder where the files of dataset ``name`` are cached: ``<cache_dir>/<name>``."""
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return base / name


def verify_file(path: Path, spec: dict, *, dataset: str, source: str | None = None) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the sha256 of registry file entry ``spec``."""
    expected = spec["sha256"].lower()
    actual = sha256_of(path)
    if actual != expected:
        size = path.stat().st_size
        size_note = ""
        if spec.get("size") is not None and spec["size"] != size:
            size_note = f" Its size is {size} bytes, the registry says {spec['size']}."
        origin = f" (obtained from {source})" if source else ""
        raise ChecksumError(
            f"File {file_name(spec)!r} of dataset {dataset!r} at {path}{origin} is corrupted or not the "
            f"expected file: sha256 expected {expected}, actual {actual}.{size_note} "
            "It was not loaded. Delete it and fetch it again, or replace it with a good copy."
        )


def _file_downloader(url: str, output_file, pooch_obj=None) -> None:
    """A pooch downloader for ``file://`` URLs (pooch itself handles http, https, ftp, sftp, doi)."""
    parsed = urllib.parse.urlparse(url)
    source = Path(urllib.request.url2pathname(parsed.path))
    if parsed.netloc not in ("", "localhost"):
        raise OSError(f"file:// URL with a remote host is not supported: {url}")
    if not source.is_file():
        raise FileNotFoundError(f"no such file: {source}")
    if hasattr(output_file, "write"):
        with open(source, "rb") as fh:
            shutil.copyfileobj(fh, output_file)
    else:
        shutil.copyfile(source, output_file)


@contextlib.contextmanager
def _quiet_pooch(quiet: bool):
    plog = pooch.get_logger()
    level = plog.level
    if quiet:
        plog.setLevel(logging.WARNING)
    try:
        yield
    finally:
        plog.setLevel(level)


def _download(url: str, target: Path, spec: dict, *, dataset: str, progress: bool) -> Path:
    fname = target.name
    folder = target.parent
    hint = (
        f"To use this dataset offline, download {url} on a machine with network access and copy it to "
        f"{target} (folder {folder}), or pass path=<a folder holding {fname}>. Set the environment "
        f"variable {ENV_DATA_DIR} or cache_dir= to use another cache folder."
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"Cannot create the cache folder {folder} for {fname!r}: {exc}. {hint}") from exc
    if url.startswith("file://"):
        downloader = _file_downloader
    else:
        downloader = pooch.HTTPDownloader(progressbar=progress, timeout=60)
    logger.info("scam: downloading %s (dataset %r) from %s to %s", fname, dataset, url, folder)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=folder) as tmp:
        try:
            with _quiet_pooch(not progress):
                got = Path(pooch.retrieve(url, known_hash=None, fname=fname, path=tmp, downloader=downloader,
                                          progressbar=False))
        except Exception as exc:  # requests / ftp / file errors all end here
            raise DownloadError(
                f"Could not download file {fname!r} of dataset {dataset!r} from {url} "
                f"({type(exc).__name__}: {exc}). {hint}"
            ) from exc
        verify_file(got, spec, dataset=dataset, source=url)
        os.replace(got, target)
    return target


def fetch_entry(entry: dict, *, path: str | Path | None = None, cache_dir: str | Path | None = None,
                progress: bool = False) -> list[Path]:
    """Local, sha256-verified paths of the files of a registry ``entry``, downloading what is missing.

    Parameters
    ----------
    entry
        A registry entry (see ``data_registry.yaml``).
    path
        A folder already holding the files; nothing is downloaded then.
    cache_dir
        Download cache (default :func:`default_cache_dir`); files go to ``<cache_dir>/<name>/``.
    progress
        Show a download progress bar.

    Returns
    -------
    list of pathlib.Path
        One path per file, in registry order.
    """
    name = entry["name"]
    out = []
    for spec in entry["files"]:
        fname = file_name(spec)
        if entry.get("bundled", False):
            local = BUNDLED_DIR / fname
            if not local.is_file():
                raise FileNotFoundError(f"Bundled file {fname!r} of dataset {name!r} is missing from {BUNDLED_DIR}; "
                                        "the scam installation is incomplete.")
            verify_file(local, spec, dataset=name)
        elif path is not None:
            folder = Path(path).expanduser()
            local = folder / fname
            if not local.is_file():
                raise FileNotFoundError(
                    f"File {fname!r} of dataset {name!r} not found in {folder} (expected at {local}). "
                    f"Download it from {spec['url']} into that folder, or call without path= to download it "
                    f"into the cache {dataset_cache_dir(name, cache_dir)}."
                )
            verify_file(local, spec, dataset=name)
        else:
            local = dataset_cache_dir(name, cache_dir) / fname
            if local.is_file():
                verify_file(local, spec, dataset=name)
                logger.debug("scam: using cached %s", local)
            else:
                _download(spec["url"], local, spec, dataset=name, progress=progress)
        out.append(local)
    return out


def is_cached(entry: dict, cache_dir: str | Path | None = None) -> bool:
    """Whether every file of ``entry`` is present in the cache (bundled: always; not hash-checked here)."""
    if entry.get("bundled", False):
        return all((BUNDLED_DIR / file_name(s)).is_file() for s in entry["files"])
    folder = dataset_cache_dir(entry["name"], cache_dir)
    return all((folder / file_name(s)).is_file() for s in entry["files"])
