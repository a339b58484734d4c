"""scam.datasets: registry, offline loading, verified downloads (local server only), demo, simulate."""

from __future__ import annotations

import copy
import functools
import http.server
import re
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import scam.datasets as ds
from scam.datasets import _api, _fetch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No test may reach the network or the user's cache: only loopback connections are allowed."""
    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in LOCAL_HOSTS:
            raise AssertionError(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setenv("SCAM_DATA_DIR", str(tmp_path / "scam_cache_from_env"))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests_served: list = []

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        type(self).requests_served.append(self.path)
        super().do_GET()


@pytest.fixture
def toy_files(tmp_path):
    """Two small day files (like the Cite arrays) in a folder, with their sha256 and sizes."""
    folder = tmp_path / "served"
    folder.mkdir()
    rng = np.random.default_rng(0)
    specs = []
    for day, n in ((0, 30), (1, 40)):
        name = f"toy_pcas_day_{day}.npy"
        np.save(folder / name, rng.standard_normal((n, 5)).astype(np.float32))
        specs.append({"filename": name, "sha256": ds.sha256_of(folder / name),
                      "size": (folder / name).stat().st_size, "day": day})
    return folder, specs


@pytest.fixture
def http_server(toy_files):
    """A local HTTP server on 127.0.0.1 (port 0) serving the toy files."""
    folder, _ = toy_files
    handler = type("Handler", (_QuietHandler,), {"requests_served": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _toy_entry(base_url: str, specs: list[dict], name: str = "toy") -> dict:
    files = []
    for spec in specs:
        spec = dict(spec)
        spec["url"] = f"{base_url}/{spec['filename']}"
        files.append(spec)
    return {
        "name": name, "title": "toy", "citation": "none", "doi": None, "licence": "CC0", "organism": "none",
        "files": files, "reader": "read_cite_pcas", "time_key": "day", "embedding": "X_pca", "notes": "test",
    }


def _closed_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


# ----------------------------------------------------------------------------------------------- registry


def test_registry_validates_against_schema():
    reg = ds.get_registry()
    ds.validate_registry(reg)  # includes reader and bundled-file checks
    names = [e["name"] for e in reg["datasets"]]
    assert len(names) == len(set(names))
    assert {"cite", "cite_100", "larry_2d", "schiebinger_small", "eb", "cite_demo", "larry_genes"} <= set(names)
    for entry in reg["datasets"]:
        for key in ("name", "title", "citation", "doi", "licence", "organism", "files", "reader", "time_key",
                    "embedding", "notes"):
            assert key in entry, (entry["name"], key)
        assert callable(getattr(ds, entry["reader"]))
        for spec in entry["files"]:
            assert isinstance(spec["sha256"], str) and re.fullmatch(r"[0-9a-f]{64}", spec["sha256"])
            if not entry.get("bundled", False):
                assert spec["url"].startswith("https://")
    assert ds.get_entry("cite_demo")["bundled"] is True
    assert "url" not in ds.get_entry("cite_demo")["files"][0]
    assert ds.registry_path().name == "data_registry.yaml"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda e: e["files"][0].update(sha256="abc"), "sha256"),
        (lambda e: e["files"][0].update(sha256=None), "sha256"),
        (lambda e: e.update(reader="no_such_reader"), "reader"),
        (lambda e: e.pop("time_key"), "time_key"),
        (lambda e: e["files"][0].update(url="ftp.example.org/x"), "url"),
        (lambda e: e["files"][0].update(size=-3), "size"),
    ],
)
def test_registry_schema_rejects_bad_entries(mutate, message):
    reg = ds.get_registry()
    entry = next(e for e in reg["datasets"] if e["name"] == "cite")
    mutate(entry)
    with pytest.raises(ds.RegistryError, match=message):
        ds.validate_registry(reg)


def test_registry_rejects_duplicate_names():
    reg = ds.get_registry()
    reg["datasets"].append(copy.deepcopy(reg["datasets"][0]))
    with pytest.raises(ds.RegistryError, match="duplicate"):
        ds.validate_registry(reg)


def test_list_datasets(tmp_path):
    df = ds.list_datasets(cache_dir=tmp_path)
    reg = ds.get_registry()["datasets"]
    assert isinstance(df, pd.DataFrame)
    assert len(df) == len(reg)
    assert list(df.columns) == ["name", "title", "organism", "n_files", "size_bytes", "time_key", "embedding",
                                "bundled", "cached"]
    row = df.set_index("name").loc["cite"]
    assert row.n_files == 4 and row.size_bytes == sum(f["size"] for f in ds.get_entry("cite")["files"])
    assert not row.cached
    assert df.set_index("name").loc["cite_demo", "cached"]
    assert pd.isna(df.set_index("name").loc["eb", "size_bytes"])  # published size unknown


# ----------------------------------------------------------------------------------------------- real data on disk


@pytest.mark.skipif(not (SHARED / "cite_lightsb").is_dir(), reason="../shared/data/cite_lightsb not available")
def test_load_cite_from_folder():
    adata = ds.load("cite", path=SHARED / "cite_lightsb")
    assert adata.obsm["X_pca"].shape == (29394, 50)
    counts = adata.obs["day"].value_counts().sort_index()
    assert counts.index.tolist() == [2.0, 3.0, 4.0, 7.0]
    assert counts.tolist() == [6071, 7643, 8485, 7195]
    assert adata.obs["day"].dtype == float
    assert adata.uns["dataset"]["name"] == "cite"
    assert set(adata.uns["dataset"]["files"]) == {f"full_cite_pcas_50_day_{d}.npy" for d in (2, 3, 4, 7)}


@pytest.mark.skipif(not (SHARED / "larry_2d").is_dir(), reason="../shared/data/larry_2d not available")
def test_load_larry_from_folder():
    adata = ds.load("larry_2d", path=SHARED / "larry_2d")
    assert adata.obsm["X_2d"].shape == (10998, 2)
    assert adata.obs["day"].value_counts().sort_index().tolist() == [1429, 3781, 5788]


@pytest.mark.skipif(not (SHARED / "schiebinger_small").is_dir(), reason="../shared/data/schiebinger_small missing")
def test_load_schiebinger_from_folder():
    adata = ds.load("schiebinger_small", path=SHARED / "schiebinger_small")
    assert adata.shape == (250, 1479)
    assert sorted(adata.obs["day"].unique()) == [10.0, 10.5, 11.0]
    assert adata.obs["day"].dtype == float


def test_path_folder_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="full_cite_pcas_50_day_2.npy"):
        ds.load("cite", path=tmp_path)


# ----------------------------------------------------------------------------------------------- downloads


def test_download_from_local_server_is_verified_and_cached(http_server, toy_files, tmp_path):
    url, handler = http_server
    _, specs = toy_files
    entry = _toy_entry(url, specs)
    cache = tmp_path / "cache"
    adata = _api._load_entry(entry, cache_dir=cache)
    assert adata.obsm["X_pca"].shape == (70, 5)
    assert adata.obs["day"].value_counts().sort_index().tolist() == [30, 40]
    for spec in specs:
        local = cache / "toy" / spec["filename"]
        assert local.is_file() and ds.sha256_of(local) == spec["sha256"]
    assert adata.uns["dataset"]["files"][specs[0]["filename"]]["url"] == entry["files"][0]["url"]
    assert len(handler.requests_served) == 2
    _api._load_entry(entry, cache_dir=cache)  # second time: from the cache, no request
    assert len(handler.requests_served) == 2
    assert not list((cache / "toy").glob(".download-*"))  # no temporary leftovers


def test_download_goes_to_env_cache_dir(http_server, toy_files, tmp_path, monkeypatch):
    url, _ = http_server
    _, specs = toy_files
    monkeypatch.setenv("SCAM_DATA_DIR", str(tmp_path / "env_cache"))
    assert ds.default_cache_dir() == tmp_path / "env_cache"
    _api._load_entry(_toy_entry(url, specs))
    assert (tmp_path / "env_cache" / "toy" / specs[1]["filename"]).is_file()


def test_file_url(toy_files, tmp_path):
    folder, specs = toy_files
    entry = _toy_entry(folder.as_uri(), specs)
    paths = _fetch.fetch_entry(entry, cache_dir=tmp_path / "cache")
    assert [p.name for p in paths] == [s["filename"] for s in specs]
    assert all(ds.sha256_of(p) == s["sha256"] for p, s in zip(paths, specs))


def test_tampered_download_is_refused(http_server, toy_files, tmp_path):
    url, _ = http_server
    folder, specs = toy_files
    _flip_one_byte(folder / specs[1]["filename"])  # the server now serves a corrupted file
    actual = ds.sha256_of(folder / specs[1]["filename"])
    cache = tmp_path / "cache"
    with pytest.raises(ds.ChecksumError) as err:
        _api._load_entry(_toy_entry(url, specs), cache_dir=cache)
    msg = str(err.value)
    assert specs[1]["filename"] in msg and specs[1]["sha256"] in msg and actual in msg
    assert not (cache / "toy" / specs[1]["filename"]).exists()  # nothing corrupted left in the cache
    assert not list((cache / "toy").glob(".download-*"))


def test_tampered_cached_file_is_refused(http_server, toy_files, tmp_path):
    url, _ = http_server
    _, specs = toy_files
    entry = _toy_entry(url, specs)
    cache = tmp_path / "cache"
    _fetch.fetch_entry(entry, cache_dir=cache)
    _flip_one_byte(cache / "toy" / specs[0]["filename"])
    with pytest.raises(ds.ChecksumError, match=specs[0]["sha256"]):
        _api._load_entry(entry, cache_dir=cache)


def test_tampered_file_in_path_folder_is_refused(toy_files, tmp_path):
    folder, specs = toy_files
    local = tmp_path / "local"
    shutil.copytree(folder, local)
    entry = _toy_entry("https://example.invalid", specs)
    assert _api._load_entry(entry, path=local).n_obs == 70  # good copies: fine, nothing downloaded
    _flip_one_byte(local / specs[0]["filename"])
    with pytest.raises(ds.ChecksumError, match=re.escape(specs[0]["filename"])):
        _api._load_entry(entry, path=local)


def test_offline_error_names_file_url_and_folder(toy_files, tmp_path):
    _, specs = toy_files
    base = f"http://127.0.0.1:{_closed_port()}"
    entry = _toy_entry(base, specs)
    cache = tmp_path / "cache"
    with pytest.raises(ds.DownloadError) as err:
        _api._load_entry(entry, cache_dir=cache)
    msg = str(err.value)
    assert specs[0]["filename"] in msg
    assert entry["files"][0]["url"] in msg
    assert str(cache / "toy") in msg


def test_bundled_file_is_verified(tmp_path, monkeypatch):
    bad = tmp_path / "_data"
    shutil.copytree(Path(ds.__file__).parent / "_data", bad)
    _flip_one_byte(bad / "cite_demo.npz")
    monkeypatch.setattr(_fetch, "BUNDLED_DIR", bad)
    with pytest.raises(ds.ChecksumError, match="cite_demo.npz"):
        ds.demo()


def test_eb_reader_never_unpickles(tmp_path):
    pcs = np.random.default_rng(0).standard_normal((20, 100))
    labels = np.repeat(np.arange(5), 4)
    good = tmp_path / "eb_good.npz"
    np.savez(good, pcs=pcs, sample_labels=labels, extra=np.array([{"a": 1}], dtype=object))
    entry = ds.get_entry("eb")
    adata = ds.read_eb_npz([good], entry)
    assert adata.obsm["X_pca"].shape == (20, 100)
    assert sorted(adata.obs["time_point"].unique()) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert adata.obs["day_range"].iloc[-1] == "24-27"
    bad = tmp_path / "eb_bad.npz"
    np.savez(bad, pcs=pcs, sample_labels=np.array(list(labels), dtype=object))
    with pytest.raises(ValueError, match="never unpickles"):
        ds.read_eb_npz([bad], entry)


# ----------------------------------------------------------------------------------------------- demo


def test_demo():
    adata = ds.demo()
    counts = adata.obs["day"].value_counts().sort_index()
    assert counts.index.tolist() == [2.0, 3.0, 4.0, 7.0]
    assert counts.tolist() == [1000] * 4
    x = adata.obsm["X_pca"]
    assert x.shape == (4000, 10) and x.dtype == np.float32 and np.isfinite(x).all()
    assert adata.obs["day"].dtype == float
    assert adata.uns["dataset"]["name"] == "cite_demo"
    assert adata.uns["dataset"]["files"]["cite_demo.npz"]["sha256"] == ds.get_entry("cite_demo")["files"][0]["sha256"]
    assert (Path(ds.__file__).parent / "_data" / "cite_demo.npz").stat().st_size < 1_000_000


def test_demo_has_x_for_scverse_tools():
    """X is the embedding itself (float32, var_names PC1..), so tools that read adata.X accept the demo."""
    adata = ds.demo()
    assert adata.X is not None and adata.X.dtype == np.float32
    assert adata.shape == (4000, 10)
    assert list(adata.var_names) == [f"PC{i}" for i in range(1, 11)]
    np.testing.assert_array_equal(adata.X, adata.obsm["X_pca"])
    assert not np.shares_memory(adata.X, adata.obsm["X_pca"])  # editing one leaves the other alone
    assert ds.load("cite_demo").X.dtype == np.float32  # the same through load()


# ----------------------------------------------------------------------------------------------- LARRY subset

LARRY_SHA256 = "3c9a5d728f402ff2b87cfecb3cd6639a7fa342fe3a7d44ad57ac526a5ef674af"


def test_larry_genes_is_bundled_with_provenance():
    entry = ds.get_entry("larry_genes")
    assert entry["bundled"] is True and entry["organism"] == "mouse"
    assert entry["doi"] == "10.1126/science.aaw3381"
    assert "aaabd04e4790a85357695c4f8ac3fbf3a26374f8" in entry["citation"]
    assert "AllonKleinLab/cospar" in entry["citation"] and entry["licence"].startswith("MIT")
    (spec,) = entry["files"]
    assert spec["sha256"] == LARRY_SHA256 and "url" not in spec
    local = Path(ds.__file__).parent / "_data" / spec["filename"]
    assert local.stat().st_size == spec["size"] == 1463810
    assert ds.sha256_of(local) == LARRY_SHA256
    readme = (Path(ds.__file__).parent / "_data" / "README.md").read_text()
    assert spec["filename"] in readme and LARRY_SHA256 in readme
    assert "aaabd04e4790a85357695c4f8ac3fbf3a26374f8" in readme
    assert ds.list_datasets().set_index("name").loc["larry_genes", "cached"]


def test_load_larry_genes_offline():
    adata = ds.load("larry_genes")  # bundled: no network (the autouse fixture refuses any connection)
    assert adata.shape == (781, 2481)
    assert adata.obs["day"].dtype == float
    assert adata.obs["day"].value_counts().sort_index().to_dict() == {2.0: 34, 4.0: 316, 6.0: 431}
    assert list(adata.obs["time_info"].cat.categories) == ["2", "4", "6"]  # kept as stored
    assert {"Neutrophil", "Monocyte", "undiff"} <= set(adata.obs["state_info"].cat.categories)
    assert adata.obsm["X_clone"].shape == (781, 339)
    assert adata.obsm["X_pca"].shape == (781, 40) and adata.obsm["X_umap"].shape == (781, 2)
    assert {"Top2a", "Cdk1", "Elane", "Irf8"} <= set(adata.var_names)  # mouse symbols (growth priors, markers)
    assert adata.X.dtype == np.float32 and adata.X.max() > 1000  # normalised counts, not log-transformed
    assert adata.uns["dataset"]["files"]["larry_cospar.h5ad"]["sha256"] == LARRY_SHA256
    assert adata.uns["dataset"]["bundled"]


def test_larry_genes_bundled_file_is_verified(tmp_path, monkeypatch):
    bad = tmp_path / "_data"
    shutil.copytree(Path(ds.__file__).parent / "_data", bad)
    _flip_one_byte(bad / "larry_cospar.h5ad")
    monkeypatch.setattr(_fetch, "BUNDLED_DIR", bad)
    with pytest.raises(ds.ChecksumError, match="larry_cospar.h5ad"):
        ds.load("larry_genes")


def test_h5ad_reader_time_source(tmp_path):
    import anndata as ad

    adata = ad.AnnData(obs=pd.DataFrame({"t": pd.Categorical(["2", "4.5", "2"])}, index=list("abc")))
    adata.write_h5ad(tmp_path / "x.h5ad")
    out = ds.read_h5ad([tmp_path / "x.h5ad"], {"time_key": "day", "time_source": "t"})
    assert out.obs["day"].tolist() == [2.0, 4.5, 2.0] and out.obs["t"].dtype == "category"
    adata.obs["t"] = pd.Categorical(["early", "late", "early"])
    adata.write_h5ad(tmp_path / "y.h5ad")
    with pytest.raises(ValueError, match="numeric time labels"):
        ds.read_h5ad([tmp_path / "y.h5ad"], {"time_key": "day", "time_source": "t"})


@pytest.mark.skipif(not (SHARED / "larry_cospar").is_dir(), reason="../shared/data/larry_cospar not available")
def test_larry_genes_is_a_byte_copy_of_the_reference():
    src = SHARED / "larry_cospar" / "test_adata_preprocessed.h5ad"
    local = Path(ds.__file__).parent / "_data" / "larry_cospar.h5ad"
    assert src.read_bytes() == local.read_bytes()


@pytest.mark.skipif(not (SHARED / "cite_lightsb").is_dir(), reason="../shared/data/cite_lightsb not available")
def test_demo_rows_match_source():
    adata = ds.demo()
    for day in (2, 7):
        src = np.load(SHARED / "cite_lightsb" / f"full_cite_pcas_50_day_{day}.npy", allow_pickle=False)
        sub = adata[adata.obs["day"] == day]
        np.testing.assert_array_equal(sub.obsm["X_pca"], src[sub.obs["source_row"].to_numpy(), :10])


# ----------------------------------------------------------------------------------------------- simulate


def test_simulate_branching_masses_agree_with_weights():
    rates = (0.8, -0.6)
    times = (0.0, 0.5, 1.0, 2.0)
    adata, tc = ds.simulate("branching", n_cells=4000, rng=1, times=times, rates=rates, return_truth=True)
    assert adata.obsm["X_pca"].shape == (4 * 4000, 2)
    sim = adata.uns["simulation"]
    np.testing.assert_allclose(sim["times"], times)
    # Monte Carlo: push a large start population forward with weights exp(rate * t).
    rng = np.random.default_rng(123)
    branch0 = rng.standard_normal(400_000) > 0  # start y > 0: branch 0
    r = np.where(branch0, rates[0], rates[1])
    for k, t in enumerate(times):
        w = np.exp(r * t)
        np.testing.assert_allclose(sim["masses"][k], w.mean() / 1.0, rtol=0.01)
        # snapshot composition: cells sampled proportionally to the weights
        expected0 = w[branch0].sum() / w.sum()
        obs0 = np.mean(adata.obs["branch"][adata.obs["time"] == t] == "proliferating")
        assert abs(obs0 - expected0) < 4 * np.sqrt(expected0 * (1 - expected0) / 4000) + 1e-9
    # the dying branch is under-represented later on
    late = adata.obs["branch"][adata.obs["time"] == 2.0]
    assert np.mean(late == "dying") < 0.1
    # the true growth rate and velocity are consistent with the branch of each cell
    x, lab = tc.xs[-1], tc.info["branch"][-1]
    np.testing.assert_allclose(tc.growth_rate(x, 2.0), np.asarray(rates)[lab])
    assert np.all(np.sign(tc.velocity(x, 2.0)[:, 1]) == np.where(lab == 0, 1, -1))


def test_branching_growth_padding_and_masses():
    tc = ds.branching_growth(200, times=(0.5, 1.0), dim=5, rng=0)
    assert tc.xs[0].shape == (200, 5)
    assert tc.masses[0] == 1.0
    m = 0.5 * np.exp(0.8 * np.array([0.5, 1.0])) + 0.5 * np.exp(-0.6 * np.array([0.5, 1.0]))
    np.testing.assert_allclose(tc.masses, m / m[0])


def test_simulate_growth_mass_and_marginal_by_monte_carlo():
    drift, slope, offset = np.array([1.0, 0.0]), np.array([0.3, 0.8]), 0.2
    m0, s0 = np.zeros(2), 0.25 * np.eye(2)
    t = 1.0
    adata, tc = ds.simulate("growth", n_cells=500, times=(0.0, t), drift=drift, growth_slope=slope,
                            growth_offset=offset, return_truth=True)
    rng = np.random.default_rng(0)
    x0 = rng.multivariate_normal(m0, s0, size=400_000)
    w = np.exp(offset * t + x0 @ slope * t + slope @ drift * t**2 / 2)  # exp(int_0^t g(x0 + v s) ds)
    np.testing.assert_allclose(tc.masses[1], w.mean(), rtol=0.01)
    xt = x0 + drift * t
    np.testing.assert_allclose(tc.marginal(t)[0], (w[:, None] * xt).sum(0) / w.sum(), atol=0.01)
    assert adata.uns["simulation"]["kind"] == "growth"


@pytest.mark.parametrize("kind", ["gaussian", "ou", "branching", "growth", "ring"])
def test_simulate_kinds(kind, tmp_path):
    adata = ds.simulate(kind, n_cells=50, rng=0)
    assert "time" in adata.obs and "X_pca" in adata.obsm
    assert np.isfinite(adata.obsm["X_pca"]).all()
    sim = adata.uns["simulation"]
    assert len(sim["masses"]) == len(sim["times"]) == adata.obs["time"].nunique()
    assert sim["masses"][0] == 1.0
    adata.write_h5ad(tmp_path / f"{kind}.h5ad")  # uns is serialisable


def test_simulate_unknown_kind():
    with pytest.raises(ValueError, match="branching"):
        ds.simulate("nope")


def test_cycling_ring_truth():
    """The uniform ring's snapshots are alike (W1 between two of them at the floor of two fresh samples); every
    cell turns at the given angular speed; the field of least action misses the rotation by 1 / I0(kappa) in
    root mean square and keeps the turning bump's density (continuity equation, by finite differences)."""
    from scam.metrics import wasserstein

    tc = ds.cycling_ring(800, degrees=45.0, rng=0)
    x = tc.xs[2]
    v = tc.velocity(x, 2.0)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1) / np.linalg.norm(x, axis=1), np.deg2rad(45.0), rtol=1e-12)
    apart = wasserstein(tc.xs[0], tc.xs[2], p=1)
    floor = wasserstein(tc.info["marginal_sample"](0.0, 800, 5), tc.info["marginal_sample"](0.0, 800, 6), p=1)
    assert apart < 1.5 * floor, (apart, floor)
    kappa, omega = 2.0, np.deg2rad(45.0)
    bump = ds.cycling_ring(10, degrees=45.0, kappa=kappa, width=0.0, rng=0)
    x = bump.info["marginal_sample"](1.0, 400_000, 1)
    rot, grad = bump.velocity(x, 1.0), bump.info["gradient_velocity"](x, 1.0)
    miss = np.sqrt(np.sum((rot - grad) ** 2) / np.sum(rot**2))
    np.testing.assert_allclose(miss, 1 / np.i0(kappa), rtol=0.03)
    # continuity on the circle: d rho / dt + d(rho u) / d theta = 0 for rho the von Mises density about w t
    theta, t, h = np.linspace(-np.pi, np.pi, 721), 1.0, 1e-4

    def rho(t):
        return np.exp(kappa * np.cos(theta - omega * t)) / (2 * np.pi * np.i0(kappa))

    pts = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    u = np.einsum("nd,nd->n", bump.info["gradient_velocity"](pts, t), np.stack([-pts[:, 1], pts[:, 0]], axis=1))
    flux = rho(t) * u
    residual = (rho(t + h) - rho(t - h)) / (2 * h) + np.gradient(flux, theta)
    assert np.max(np.abs(residual[5:-5])) < 1e-3 * np.max(np.abs(flux))


def test_synthetic_generators_kept():
    tc = ds.gaussian_geodesic(100, rng=0)
    assert len(tc.xs) == 2 and tc.marginal is not None
    tc = ds.ornstein_uhlenbeck(100, rng=0)
    assert len(tc.xs) == 3


# ----------------------------------------------------------------------------------------------- LARRY 2-D subset

LARRY_2D_DEMO_SHA256 = "e80aece315d0a661099645d29b8e2f3a77202711ee00c08c4d1961a351ed7301"


def test_larry_2d_demo_is_bundled_with_provenance():
    entry = ds.get_entry("larry_2d_demo")
    assert entry["bundled"] is True and entry["organism"] == "mouse" and entry["licence"].startswith("MIT")
    assert "2289c81032010922aadd9f848db9ffb1a10efb48" in entry["citation"]  # the larry_2d source commit
    (spec,) = entry["files"]
    assert spec["sha256"] == LARRY_2D_DEMO_SHA256 and "url" not in spec
    local = Path(ds.__file__).parent / "_data" / spec["filename"]
    assert local.stat().st_size == spec["size"] < 1_000_000
    assert ds.sha256_of(local) == LARRY_2D_DEMO_SHA256
    readme = (Path(ds.__file__).parent / "_data" / "README.md").read_text()
    assert spec["filename"] in readme and LARRY_2D_DEMO_SHA256 in readme
    assert ds.get_entry("larry_2d")["files"][0]["sha256"] in readme  # the source file's hash


def test_load_larry_2d_demo_offline():
    adata = ds.load("larry_2d_demo")  # bundled: no network
    assert adata.obsm["X_2d"].shape == (4000, 2)
    assert adata.obs["day"].value_counts().sort_index().to_dict() == {2.0: 520, 4.0: 1375, 6.0: 2105}
    assert adata.obs["source_row"].is_unique
    assert list(adata.obs_names[:2]) == [f"cell{r}" for r in adata.obs["source_row"][:2]]
    assert adata.uns["dataset"]["files"]["larry_2d_demo.csv"]["sha256"] == LARRY_2D_DEMO_SHA256


@pytest.mark.skipif(not (SHARED / "larry_2d").is_dir(), reason="../shared/data/larry_2d not available")
def test_larry_2d_demo_is_rebuilt_byte_for_byte(tmp_path):
    from scam.datasets._make_demo import make_larry_demo

    out = make_larry_demo(SHARED / "larry_2d", tmp_path / "larry_2d_demo.csv")
    assert out.read_bytes() == (Path(ds.__file__).parent / "_data" / "larry_2d_demo.csv").read_bytes()
    full = ds.read_larry_csv([SHARED / "larry_2d" / "mouse_hematopoiesis.csv"])
    sub = ds.load("larry_2d_demo")
    np.testing.assert_array_equal(sub.obsm["X_2d"], full[sub.obs_names].obsm["X_2d"])  # same names, same cells
