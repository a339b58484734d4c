"""Tests for scam.pp.score_growth: birth-death growth prior from gene-set scores."""

from __future__ import annotations

import hashlib
import logging
import re
from importlib import resources
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from scam.pp import score_growth
from scam.pp._growth import _load_gene_set, _logistic_rate

SCHIEBINGER = Path(__file__).parents[2] / "shared" / "data" / "schiebinger_small" / "moscot_temporal_tests.h5ad"
SHARED_GENE_SETS = Path(__file__).parents[2] / "shared" / "data" / "gene_sets"
KEY = "growth_prior"
FIELDS = ["", "_growth", "_birth", "_death", "_proliferation", "_apoptosis"]


def _synthetic(organism: str = "mouse", n_cells: int = 80, *, dense: bool = False, seed: int = 0) -> ad.AnnData:
    """Cells x (30 proliferation + 30 apoptosis + 240 filler) genes; the first cells proliferate strongly."""
    rng = np.random.default_rng(seed)
    prolif = _load_gene_set("proliferation", organism)[:30]
    apop = [g for g in _load_gene_set("apoptosis", organism) if g not in prolif][:30]
    filler = [f"Filler{i}" if organism == "mouse" else f"FILLER{i}" for i in range(240)]
    genes = prolif + apop + filler
    x = rng.poisson(1.0, size=(n_cells, len(genes))).astype(np.float32)
    level = np.linspace(3.0, 0.0, n_cells)  # proliferation programme decreasing along the cells
    x[:, :30] += rng.poisson(level[:, None] * 2, size=(n_cells, 30))
    x = np.log1p(x)
    adata = ad.AnnData(
        X=x if dense else sparse.csr_matrix(x),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n_cells)]),
        var=pd.DataFrame(index=genes),
    )
    return adata


@pytest.fixture
def mouse():
    return _synthetic("mouse")


@pytest.fixture
def schiebinger():
    if not SCHIEBINGER.exists():
        pytest.skip(f"reference data not found at {SCHIEBINGER}")
    return ad.read_h5ad(SCHIEBINGER)


def _snapshot(adata):
    x = adata.X.toarray() if sparse.issparse(adata.X) else np.array(adata.X)
    return list(adata.obs.columns), sorted(adata.uns.keys()), x


# --------------------------------------------------------------------------- formula


def test_logistic_hand_computed():
    birth = {"rate_max": 1.7, "rate_min": 0.3, "center": 0.25, "width": 0.5}
    # At the centre: the midpoint.
    assert _logistic_rate(0.25, **birth) == pytest.approx(1.0, abs=1e-12)
    # One quarter width above / below the centre: exponent -4 * (+-w/4) / w = -+1.
    assert _logistic_rate(0.25 + 0.125, **birth) == pytest.approx(0.3 + 1.4 / (1 + np.exp(-1.0)), abs=1e-12)
    assert _logistic_rate(0.25 - 0.125, **birth) == pytest.approx(0.3 + 1.4 / (1 + np.exp(1.0)), abs=1e-12)
    assert _logistic_rate(0.25 + 0.125, **birth) == pytest.approx(1.3234820, abs=1e-6)
    # p = 0: 0.3 + 1.4 / (1 + e^2).
    assert _logistic_rate(0.0, **birth) == pytest.approx(0.3 + 1.4 / (1 + np.exp(2.0)), abs=1e-12)
    death = {"rate_max": 1.7, "rate_min": 0.3, "center": 0.1, "width": 0.2}
    assert _logistic_rate(0.1, **death) == pytest.approx(1.0, abs=1e-12)
    assert _logistic_rate(0.0, **death) == pytest.approx(0.3 + 1.4 / (1 + np.exp(2.0)), abs=1e-12)
    # Saturation, without overflow warnings.
    with np.errstate(all="raise"):
        out = _logistic_rate(np.array([-1e4, 1e4]), **death)
    np.testing.assert_allclose(out, [0.3, 1.7], atol=1e-12)


def test_fields_follow_the_formula(mouse):
    score_growth(mouse, "mouse")
    obs = mouse.obs
    p, a = obs[f"{KEY}_proliferation"].to_numpy(), obs[f"{KEY}_apoptosis"].to_numpy()
    birth = 0.3 + 1.4 / (1 + np.exp(-4 * (p - 0.25) / 0.5))
    death = 0.3 + 1.4 / (1 + np.exp(-4 * (a - 0.1) / 0.2))
    np.testing.assert_allclose(obs[f"{KEY}_birth"], birth, rtol=1e-12)
    np.testing.assert_allclose(obs[f"{KEY}_death"], death, rtol=1e-12)
    np.testing.assert_allclose(obs[KEY], birth - death, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(obs[f"{KEY}_growth"], np.exp(birth - death), rtol=1e-12)


def test_custom_logistic_parameters(mouse):
    score_growth(mouse, "mouse", beta_max=3.0, beta_min=1.0, beta_center=0.0, beta_width=1.0, delta_max=0.5,
                 delta_min=0.5)
    p = mouse.obs[f"{KEY}_proliferation"].to_numpy()
    np.testing.assert_allclose(mouse.obs[f"{KEY}_birth"], 1.0 + 2.0 / (1 + np.exp(-4 * p)), rtol=1e-12)
    np.testing.assert_allclose(mouse.obs[f"{KEY}_death"], 0.5, rtol=1e-12)
    assert mouse.uns[KEY]["params"]["beta_max"] == 3.0


# --------------------------------------------------------------------------- synthetic data


@pytest.mark.parametrize("dense", [False, True])
def test_fields_bounds_and_monotonicity(dense):
    adata = _synthetic("mouse", dense=dense)
    x_before = _snapshot(adata)[2]
    assert score_growth(adata, "mouse") is None
    for suffix in FIELDS:
        col = f"{KEY}{suffix}"
        assert col in adata.obs
        assert adata.obs[col].dtype == np.float64
        assert np.all(np.isfinite(adata.obs[col]))
    birth, death = adata.obs[f"{KEY}_birth"].to_numpy(), adata.obs[f"{KEY}_death"].to_numpy()
    assert np.all((birth >= 0.3) & (birth <= 1.7))
    assert np.all((death >= 0.3) & (death <= 1.7))
    g = adata.obs[KEY].to_numpy()
    assert np.all((g >= -1.4) & (g <= 1.4))
    # Monotone: ordering cells by proliferation score orders their birth rates.
    p = adata.obs[f"{KEY}_proliferation"].to_numpy()
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(birth[order]) >= 0)
    # The designed gradient: the most proliferative cells (first ones) get a clearly higher birth rate.
    assert p[:10].mean() > p[-10:].mean()
    assert birth[:10].mean() > birth[-10:].mean() + 0.1
    # No scanpy leftovers, X untouched.
    assert "score" not in adata.obs and "_scam_score" not in adata.obs
    np.testing.assert_array_equal(_snapshot(adata)[2], x_before)


def test_uns_record(mouse, tmp_path):
    score_growth(mouse, "mouse")
    rec = mouse.uns[KEY]
    assert rec["organism"] == "mouse"
    assert rec["log_growth_key"] == KEY
    for kind in ("proliferation", "apoptosis"):
        info = rec["gene_sets"][kind]
        assert info["source"] == "mouse"
        # Every gene of the set present in var_names counts (the two sets share genes, so >= 30).
        expected = len(set(_load_gene_set(kind, "mouse")) & set(mouse.var_names))
        assert expected >= 30
        assert info["n_overlap"] == expected == len(info["genes_used"])
        assert info["fraction"] == pytest.approx(expected / info["n_genes"])
        assert set(info["genes_used"]) <= set(mouse.var_names)
    assert rec["gene_sets"]["proliferation"]["n_genes"] == 97
    assert rec["gene_sets"]["apoptosis"]["n_genes"] == 193
    # Writable to h5ad.
    mouse.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    np.testing.assert_allclose(back.obs[KEY], mouse.obs[KEY])
    assert back.uns[KEY]["gene_sets"]["apoptosis"]["n_overlap"] == rec["gene_sets"]["apoptosis"]["n_overlap"]


def test_deterministic(mouse):
    first = score_growth(mouse, "mouse", copy=True)
    second = score_growth(mouse, "mouse", copy=True)
    np.testing.assert_array_equal(first.obs[KEY], second.obs[KEY])


def test_copy_semantics(mouse):
    cols, uns_keys, x = _snapshot(mouse)
    out = score_growth(mouse, "mouse", copy=True)
    assert isinstance(out, ad.AnnData) and out is not mouse
    assert KEY in out.obs and KEY in out.uns
    assert list(mouse.obs.columns) == cols and sorted(mouse.uns.keys()) == uns_keys
    np.testing.assert_array_equal(_snapshot(mouse)[2], x)
    assert score_growth(mouse, "mouse", copy=False) is None
    np.testing.assert_array_equal(mouse.obs[KEY], out.obs[KEY])


def test_key_added(mouse):
    score_growth(mouse, "mouse", key_added="g")
    assert {"g", "g_growth", "g_birth", "g_death", "g_proliferation", "g_apoptosis"} <= set(mouse.obs)
    assert "g" in mouse.uns and KEY not in mouse.obs


def test_human_organism(mouse):
    human = _synthetic("human")
    score_growth(human, "human")
    assert human.uns[KEY]["gene_sets"]["apoptosis"]["n_genes"] == 161
    # Mouse lists on human data: a clear error naming the fix.
    with pytest.raises(ValueError, match=r"organism='human'"):
        score_growth(human, "mouse")


def test_custom_gene_lists(mouse):
    prolif = list(mouse.var_names[:10])
    apop = list(mouse.var_names[30:40]) + ["NotAGene"]
    score_growth(mouse, None, proliferation_genes=prolif, apoptosis_genes=apop)
    rec = mouse.uns[KEY]
    assert rec["organism"] == "custom"
    assert rec["gene_sets"]["proliferation"]["source"] == "custom"
    assert rec["gene_sets"]["apoptosis"]["n_overlap"] == 10
    assert rec["gene_sets"]["apoptosis"]["n_genes"] == 11
    # A custom list replaces only its own kind.
    out = score_growth(mouse, "mouse", proliferation_genes=prolif, copy=True)
    assert out.uns[KEY]["gene_sets"]["proliferation"]["source"] == "custom"
    assert out.uns[KEY]["gene_sets"]["apoptosis"]["source"] == "mouse"


def test_gene_symbols_column():
    adata = _synthetic("mouse")
    symbols = list(adata.var_names)
    adata.var["symbol"] = symbols
    adata.var_names = [f"ENSMUSG{i:011d}" for i in range(adata.n_vars)]
    with pytest.raises(ValueError, match="Ensembl"):
        score_growth(adata, "mouse")
    score_growth(adata, "mouse", gene_symbols="symbol")
    ref = _synthetic("mouse")
    score_growth(ref, "mouse")
    np.testing.assert_allclose(adata.obs[KEY], ref.obs[KEY], rtol=1e-12)


def test_layer_and_raw(mouse):
    ref = score_growth(mouse, "mouse", copy=True)
    with_layer = mouse.copy()
    with_layer.layers["lognorm"] = with_layer.X.copy()
    with_layer.X = sparse.csr_matrix(with_layer.shape, dtype=np.float32)
    score_growth(with_layer, "mouse", layer="lognorm")
    np.testing.assert_allclose(with_layer.obs[KEY], ref.obs[KEY], rtol=1e-12)
    with_raw = mouse.copy()
    with_raw.raw = with_raw
    with_raw.X = sparse.csr_matrix(with_raw.shape, dtype=np.float32)
    score_growth(with_raw, "mouse")  # use_raw=None: raw is used when present, as in scanpy
    assert with_raw.uns[KEY]["params"]["use_raw"] is True
    np.testing.assert_allclose(with_raw.obs[KEY], ref.obs[KEY], rtol=1e-12)


def test_overlap_is_logged(mouse, caplog):
    with caplog.at_level(logging.INFO, logger="scam"):
        score_growth(mouse, "mouse")
    text = caplog.text
    assert "proliferation: 30 of 97 genes" in text
    n_apop = len(set(_load_gene_set("apoptosis", "mouse")) & set(mouse.var_names))
    assert f"apoptosis: {n_apop} of 193 genes" in text


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "match"),
    [
        (("rat",), {}, ValueError, "`organism` must be"),
        ((None,), {}, ValueError, "both `proliferation_genes` and `apoptosis_genes`"),
        ((None,), {"proliferation_genes": ["A"]}, ValueError, "apoptosis_genes"),
        (("mouse",), {"proliferation_genes": []}, ValueError, "`proliferation_genes` is empty"),
        (("mouse",), {"apoptosis_genes": ["", "  "]}, ValueError, "`apoptosis_genes` is empty"),
        (("mouse",), {"proliferation_genes": "Mki67"}, TypeError, "not a single string"),
        (("mouse",), {"apoptosis_genes": [1, 2]}, TypeError, "only strings"),
        (("mouse",), {"gene_symbols": "symbol"}, KeyError, "not a column of adata.var"),
        (("mouse",), {"layer": "nope"}, KeyError, "not found in adata.layers"),
        (("mouse",), {"use_raw": True}, ValueError, "adata.raw"),
        (("mouse",), {"beta_width": 0.0}, ValueError, "`beta_width` must be positive"),
        (("mouse",), {"delta_min": 2.0}, ValueError, "must not exceed"),
        (("mouse",), {"beta_center": np.nan}, ValueError, "finite"),
        (("mouse",), {"min_genes": 0}, ValueError, "min_genes"),
        (("mouse",), {"key_added": ""}, ValueError, "key_added"),
        (("human",), {}, ValueError, "organism='mouse'"),
        (("mouse",), {"min_genes": 31}, ValueError, "at least 31 are required"),
    ],
)
def test_bad_input_leaves_adata_untouched(mouse, args, kwargs, exc, match):
    cols, uns_keys, x = _snapshot(mouse)
    with pytest.raises(exc, match=match):
        score_growth(mouse, *args, **kwargs)
    assert list(mouse.obs.columns) == cols
    assert sorted(mouse.uns.keys()) == uns_keys
    np.testing.assert_array_equal(_snapshot(mouse)[2], x)


def test_not_anndata():
    with pytest.raises(TypeError, match="AnnData"):
        score_growth(np.zeros((3, 3)), "mouse")


# --------------------------------------------------------------------------- Schiebinger subsample (mouse)


def test_schiebinger_mouse(schiebinger, caplog):
    x_before = schiebinger.X.copy()
    with caplog.at_level(logging.INFO, logger="scam"):
        score_growth(schiebinger, "mouse")
    rec = schiebinger.uns[KEY]["gene_sets"]
    # This 1479-gene subsample holds few cell-cycle genes: 4 of 97 (a warning is logged), 36 of 193 P53 genes.
    assert rec["proliferation"]["n_overlap"] == 4
    assert rec["apoptosis"]["n_overlap"] == 36
    assert "rests on few genes" in caplog.text
    birth = schiebinger.obs[f"{KEY}_birth"].to_numpy()
    death = schiebinger.obs[f"{KEY}_death"].to_numpy()
    assert np.all((birth >= 0.3) & (birth <= 1.7)) and np.all((death >= 0.3) & (death <= 1.7))
    p = schiebinger.obs[f"{KEY}_proliferation"].to_numpy()
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(birth[order]) >= 0)
    i_hi, i_lo = np.argmax(p), np.argmin(p)
    assert birth[i_hi] > birth[i_lo]
    np.testing.assert_allclose(schiebinger.obs[KEY], birth - death, rtol=1e-12, atol=1e-15)
    assert (schiebinger.X != x_before).nnz == 0
    for suffix in FIELDS:
        assert f"{KEY}{suffix}" in schiebinger.obs


def test_schiebinger_human_raises(schiebinger):
    cols = list(schiebinger.obs.columns)
    with pytest.raises(ValueError, match=r"only 0 of the 97 proliferation genes") as info:
        score_growth(schiebinger, "human")
    msg = str(info.value)
    assert "capitalised symbols, as for mouse genes" in msg
    assert "organism='mouse'" in msg
    assert re.search(r"Ignoring case, 4 genes would match", msg)
    assert list(schiebinger.obs.columns) == cols


# --------------------------------------------------------------------------- shipped gene sets


def _readme_hashes() -> dict[str, str]:
    text = resources.files("scam.pp").joinpath("_data", "gene_sets", "README.md").read_text(encoding="utf-8")
    return {name: digest for digest, name in re.findall(r"^([0-9a-f]{64})\s+(\S+\.txt)$", text, flags=re.M)}


def test_shipped_gene_sets_match_readme():
    hashes = _readme_hashes()
    assert len(hashes) == 4
    folder = resources.files("scam.pp").joinpath("_data", "gene_sets")
    for name, digest in hashes.items():
        assert hashlib.sha256(folder.joinpath(name).read_bytes()).hexdigest() == digest, name
    sizes = {(k, o): len(_load_gene_set(k, o)) for k in ("proliferation", "apoptosis") for o in ("human", "mouse")}
    assert sizes == {
        ("proliferation", "human"): 97,
        ("proliferation", "mouse"): 97,
        ("apoptosis", "human"): 161,
        ("apoptosis", "mouse"): 193,
    }


def test_shipped_gene_sets_equal_shared_copies():
    if not SHARED_GENE_SETS.exists():
        pytest.skip("shared gene_sets folder not found")
    folder = resources.files("scam.pp").joinpath("_data", "gene_sets")
    for path in sorted(SHARED_GENE_SETS.glob("*.txt")):
        assert folder.joinpath(path.name).read_bytes() == path.read_bytes(), path.name


def test_expression_that_is_not_log_normalised(mouse):
    """NaN expression is refused before any work; negative (scaled) or counts-sized values
    are scored with a warning naming the fix."""
    bad = mouse.copy()
    bad.X = bad.X.toarray()
    bad.X[0, 0] = np.nan
    cols = list(bad.obs.columns)
    with pytest.raises(ValueError, match="NaN .*log1p"):
        score_growth(bad, "mouse")
    assert list(bad.obs.columns) == cols
    scaled = mouse.copy()
    scaled.X = scaled.X.toarray() - 1.0
    with pytest.warns(UserWarning, match="negative values.*sc.pp.scale"):
        score_growth(scaled, "mouse")
    counts = mouse.copy()
    counts.X = np.expm1(counts.X.toarray()) * 100
    with pytest.warns(UserWarning, match="log1p"):
        score_growth(counts, "mouse")


def test_growth_gene_sets_are_the_default_sets_score_growth_uses():
    """The public accessor returns the shipped sets: the genes score_growth found are exactly its genes
    present in the data; human and mouse symbols; fresh lists; unknown organism named in the error."""
    from scam.pp import growth_gene_sets

    mouse, human = growth_gene_sets("mouse"), growth_gene_sets("human")
    assert set(mouse) == set(human) == {"proliferation", "apoptosis"}
    assert "Mki67" in mouse["proliferation"] and "MKI67" in human["proliferation"]
    for sets in (mouse, human):
        for genes in sets.values():
            assert len(genes) >= 50 and len(set(genes)) == len(genes)
    adata = _synthetic("mouse")
    score_growth(adata, organism="mouse")
    for kind, genes in mouse.items():
        used = list(adata.uns[KEY]["gene_sets"][kind]["genes_used"])
        assert used == [g for g in genes if g in adata.var_names], kind
        assert adata.uns[KEY]["gene_sets"][kind]["n_genes"] == len(genes)
    mouse["proliferation"].clear()
    assert growth_gene_sets("mouse")["proliferation"], "the caller's copy must not be the package's"
    with pytest.raises(ValueError, match=r"Unknown organism 'zebrafish'.*proliferation_genes"):
        growth_gene_sets("zebrafish")
