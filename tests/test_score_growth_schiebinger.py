"""scam.pp.score_growth on real mouse data: the Schiebinger et al. 2019 reprogramming subsample.

``../shared/data/schiebinger_small`` (250 cells x 1479 mouse genes, days 10 / 10.5 / 11, annotated
cell types) is loaded through the dataset registry offline (sha256-checked). Skipped when the shared
data folder is absent.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse, stats

import scam
from scam.pp._growth import BIRTH_DEFAULTS, DEATH_DEFAULTS, _load_gene_set

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "schiebinger_small"
KEY = "growth_prior"


@pytest.fixture(scope="module")
def raw():
    if not (DATA / "moscot_temporal_tests.h5ad").is_file():
        pytest.skip(f"shared reference data absent ({DATA}); these tests need ../shared/data")
    return scam.datasets.load("schiebinger_small", path=DATA)


@pytest.fixture(scope="module")
def scored(raw):
    adata = raw.copy()
    scam.pp.score_growth(adata, organism="mouse")
    return adata


def test_loads_with_annotations(raw):
    assert raw.shape == (250, 1479)
    assert sorted(np.unique(raw.obs["day"]).tolist()) == [10.0, 10.5, 11.0]
    assert {"Stromal", "Epithelial", "Trophoblast"} <= set(raw.obs["cell_type"].astype(str))


def test_overlap_is_reported(raw, caplog):
    adata = raw.copy()
    with caplog.at_level(logging.INFO, logger="scam"):
        scam.pp.score_growth(adata, organism="mouse")
    rec = adata.uns[KEY]
    assert rec["organism"] == "mouse"
    sets = rec["gene_sets"]
    for kind, n_set in (("proliferation", 97), ("apoptosis", 193)):
        info = sets[kind]
        assert info["source"] == "mouse" and info["n_genes"] == n_set
        used = list(info["genes_used"])
        assert info["n_overlap"] == len(used) >= 3
        assert info["fraction"] == pytest.approx(len(used) / n_set)
        # the genes reported as used are exactly the set's genes present in the data
        expected = [g for g in _load_gene_set(kind, "mouse") if g in set(adata.var_names)]
        assert used == expected
        assert f"{kind}: {len(used)} of {n_set} genes" in caplog.text
    # this subsample holds only a few cell-cycle genes: the low-overlap warning is logged
    assert sets["proliferation"]["fraction"] < 0.1
    assert "rests on few genes" in caplog.text


def test_rates_in_logistic_ranges(scored):
    obs = scored.obs
    birth, death, g = (obs[f"{KEY}{s}"].to_numpy() for s in ("_birth", "_death", ""))
    assert np.all(np.isfinite(g))
    assert np.all((birth >= BIRTH_DEFAULTS["min"]) & (birth <= BIRTH_DEFAULTS["max"]))
    assert np.all((death >= DEATH_DEFAULTS["min"]) & (death <= DEATH_DEFAULTS["max"]))
    lo = BIRTH_DEFAULTS["min"] - DEATH_DEFAULTS["max"]
    hi = BIRTH_DEFAULTS["max"] - DEATH_DEFAULTS["min"]
    assert np.all((g >= lo) & (g <= hi))
    np.testing.assert_allclose(g, birth - death, atol=1e-12)
    np.testing.assert_allclose(obs[f"{KEY}_growth"], np.exp(g), rtol=1e-12)
    # the rates are not all saturated at one bound: the prior carries information
    assert np.ptp(birth) > 0.5


def test_proliferative_populations_score_higher(scored):
    """Epithelial and trophoblast cells (reprogramming, dividing) vs stromal cells (non-dividing)."""
    obs = scored.obs
    ctype = obs["cell_type"].astype(str).to_numpy()
    genes = list(scored.uns[KEY]["gene_sets"]["proliferation"]["genes_used"])
    x = scored[:, genes].X
    detected = np.asarray((x.toarray() if sparse.issparse(x) else np.asarray(x)) > 0).sum(axis=1)
    stromal = ctype == "Stromal"
    for group in ("Epithelial", "Trophoblast"):
        sel = ctype == group
        # independent of the scoring: more cell-cycle genes are detected in these cells
        assert detected[sel].mean() > 3 * detected[stromal].mean(), group
        for field in ("_proliferation", "_birth", ""):
            v = obs[f"{KEY}{field}"].to_numpy()
            assert v[sel].mean() > v[stromal].mean(), (group, field)
    # the difference is not noise (one-sided rank test, epithelial vs stromal birth rates)
    birth = obs[f"{KEY}_birth"].to_numpy()
    p = stats.mannwhitneyu(birth[ctype == "Epithelial"], birth[stromal], alternative="greater").pvalue
    assert p < 1e-3, p


def test_human_gene_sets_raise_low_overlap(raw):
    adata = raw.copy()
    cols = list(adata.obs.columns)
    with pytest.raises(ValueError, match=r"only 0 of the 97 proliferation genes") as info:
        scam.pp.score_growth(adata, organism="human")
    msg = str(info.value)
    assert "organism='mouse'" in msg
    assert "capitalised symbols, as for mouse genes" in msg
    assert list(adata.obs.columns) == cols and KEY not in adata.uns  # nothing written
    # human lists passed explicitly fail the same way
    with pytest.raises(ValueError, match=r"only \d of the \d+ apoptosis genes"):
        scam.pp.score_growth(adata, organism="mouse", apoptosis_genes=_load_gene_set("apoptosis", "human"))
