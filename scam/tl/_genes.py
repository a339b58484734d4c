"""Gene-level views of a fitted model: expression along simulated paths, fate drivers, velocities in gene space."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from scipy import special, stats
from sklearn.neighbors import NearestNeighbors

from .._utils import logger
from ._utils import DEFAULT_KEY, check_key, fit_embedding, get_fit, get_model, plain, select_cells

_CHUNK_ELEMENTS = 2**24  # ~128 MB of float64 per densified block
_MAX_PATH_ELEMENTS = 2**25  # per-path expression kept in uns up to ~128 MB of float32


# ============================================================================ shared helpers
def _expression(adata: AnnData, layer: str | None):
    """``adata.X`` or ``adata.layers[layer]`` (not copied, not densified)."""
    if layer is None:
        if adata.X is None:
            raise ValueError("`adata.X` is empty; pass `layer=` naming a layer with expression values.")
        return adata.X
    if layer not in adata.layers:
        raise KeyError(f"`layer={layer!r}` is not in `adata.layers` (layers: {list(adata.layers.keys())}).")
    return adata.layers[layer]


def _resolve_genes(adata: AnnData, genes, *, default_hvg: bool) -> tuple[np.ndarray, np.ndarray]:
    """Names and column positions of ``genes`` (names, one name, or a boolean mask over ``var``)."""
    if not adata.var_names.is_unique:
        raise ValueError("`adata.var_names` are not unique; run `adata.var_names_make_unique()` first.")
    if genes is None:
        if not default_hvg:
            idx = np.arange(adata.n_vars)
        elif "highly_variable" in adata.var:
            idx = np.nonzero(np.asarray(adata.var["highly_variable"], dtype=bool))[0]
            if len(idx) == 0:
                raise ValueError("`adata.var['highly_variable']` marks no gene; pass `genes=` explicitly.")
        else:
            raise ValueError(
                "No `genes` given and `adata.var['highly_variable']` is missing; pass `genes=` (gene names) "
                "or run `scanpy.pp.highly_variable_genes` first."
            )
        return np.asarray(adata.var_names[idx], dtype=str), idx
    if isinstance(genes, str):
        genes = [genes]
    arr = np.asarray(genes)
    if arr.dtype == bool:
        if arr.shape != (adata.n_vars,):
            raise ValueError(f"A boolean `genes` mask must have length n_vars={adata.n_vars}, got {arr.shape}.")
        idx = np.nonzero(arr)[0]
    else:
        names = arr.astype(str).ravel()
        idx = adata.var_names.get_indexer(names)
        missing = names[idx < 0]
        if len(missing):
            raise KeyError(
                f"{len(missing)} gene(s) not in `adata.var_names`: {[str(g) for g in missing[:20]]}"
                f"{' ...' if len(missing) > 20 else ''}."
            )
        if len(set(names)) != len(names):
            raise ValueError("`genes` lists a gene more than once.")
    if len(idx) == 0:
        raise ValueError("`genes` selects no gene.")
    return np.asarray(adata.var_names[idx], dtype=str), idx


def _columns(matrix, idx: np.ndarray):
    """The columns ``idx`` of an expression matrix: CSR/CSC stays sparse, anything else becomes float."""
    if sp.issparse(matrix):
        return sp.csr_matrix(matrix[:, idx], dtype=np.float64)
    if hasattr(matrix, "to_memory"):  # anndata's backed sparse dataset
        return sp.csr_matrix(matrix[:, idx], dtype=np.float64)
    return np.asarray(matrix[:, idx], dtype=np.float64)


def _dense(block) -> np.ndarray:
    return block.toarray() if sp.issparse(block) else np.asarray(block)


# ============================================================================ gene trends
def _pools(fitted: np.ndarray, times: np.ndarray) -> list[tuple[float, ...]]:
    """Observed (fitted) time points whose cells serve as neighbours of path points at each time."""
    span = max(float(fitted[-1] - fitted[0]), 1e-12)
    out = []
    for t in times:
        close = np.isclose(fitted, t, rtol=0, atol=1e-9 * span)
        if close.any():
            out.append((float(fitted[close][0]),))
        elif t < fitted[0] or t > fitted[-1]:
            out.append((float(fitted[np.argmin(np.abs(fitted - t))]),))
        else:
            out.append((float(fitted[fitted < t].max()), float(fitted[fitted > t].min())))
    return out


def _normalise(logw: np.ndarray) -> np.ndarray:
    """Per-row ``exp(logw)`` normalised to sum to 1 (stable for large log-weights)."""
    w = np.exp(logw - logw.max(axis=-1, keepdims=True))
    return w / w.sum(axis=-1, keepdims=True)


def gene_trends(
    adata: AnnData,
    *,
    genes=None,
    key: str = DEFAULT_KEY,
    simulation_key: str | None = None,
    layer: str | None = None,
    groups: str | None = None,
    n_neighbors: int = 30,
    bandwidth: float | None = None,
    key_added: str | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Gene expression along simulated trajectories.

    The paths of :func:`scam.tl.simulate` live in the fit's embedding; expression is read off the
    observed cells around them. At each recorded time ``t`` every path point gets the Gaussian-kernel
    weighted average (weights ``exp(-d^2 / (2 h^2))``, normalised) of the expression of its
    ``n_neighbors`` nearest observed cells in the fitted embedding (``use_rep[:, :n_dims]``).

    Neighbours are searched only among cells observed at the time points that bracket ``t``: the
    cells of that time point when ``t`` is an observed (fitted) time, else the cells of the fitted
    time points just before and just after ``t``. A path point is thus never explained by cells
    from distant times that happen to lie nearby in the embedding (e.g. when a trajectory loops
    back). Held-out time points are not used.

    The mean trend at ``t`` weights each path by its trajectory weight ``exp(log_weights)``
    normalised at ``t`` (descendant mass for unbalanced models; uniform for balanced ones): it is
    the expression of the simulated population, not of the average starting cell.

    Parameters
    ----------
    adata
        Annotated data matrix with a fit and a simulation.
    genes
        Gene names (or one name, or a boolean mask over ``var``). Default: the genes flagged in
        ``adata.var['highly_variable']``.
    key
        ``key_added`` of :func:`scam.tl.action_matching`.
    simulation_key
        ``adata.uns`` key of the simulation (default ``f'{key}_simulation'``).
    layer
        Expression from ``adata.layers[layer]`` instead of ``adata.X``. Sparse matrices stay sparse:
        only the requested genes' columns are read.
    groups
        Categorical ``obs`` column labelling the *starting* cells of the paths (e.g. a fate label or
        the most likely fate); adds a mean trend per group (paths with a missing label are left out
        of the group means, not of the overall mean).
    n_neighbors
        Observed cells averaged per path point (fewer if a time point has fewer cells).
    bandwidth
        Kernel width ``h`` in ``use_rep`` units. Default: at each recorded time, the median distance
        from the path points to their ``n_neighbors`` nearest cells.
    key_added
        Default ``f'{key}_gene_trends'``.
    copy
        Return a copy instead of writing to ``adata``.

    Returns
    -------
    ``None`` (or a copy with ``copy=True``); writes ``adata.uns[key_added]`` with

    ``'times'``
        ``(T,)``: the recorded times of the simulation.
    ``'genes'``
        ``(G,)`` gene names.
    ``'mean'``
        ``(T, G)``: weighted mean expression of the simulated population.
    ``'weights'``
        ``(T, n_paths)``: path weights ``exp(log_weights)`` normalised per time.
    ``'neighbors'``, ``'kernel'``
        ``(T, n_paths, k)`` obs positions (int32) of each path point's neighbours and their kernel
        weights (float32, summing to 1): the exact, gene-independent form of the per-path
        expression, ``expression[t, p] = kernel[t, p] @ X[neighbors[t, p]]`` for any gene.
    ``'expression'``
        ``(T, n_paths, G)`` float32 per-path expression; written only when it has at most
        ``2**25`` entries (use ``'neighbors'``/``'kernel'`` otherwise).
    ``'bandwidth'``
        ``(T,)``: the kernel width used at each time.
    ``'group_names'``, ``'group_means'``
        With ``groups``: the groups present among the starting cells and their ``(n_groups, T, G)``
        mean trends (path weights normalised within each group and time).
    ``'params'``
        ``key``, ``simulation_key``, ``layer``, ``groups``, ``n_neighbors`` (the ``k`` used),
        ``bandwidth`` (the given value, or ``'median'``), ``time_key``, ``neighbor_times``
        (``'bracketing'``).
    """
    # ------------------------------------------------------------ validation, before any work
    x_all, t_all, params = fit_embedding(adata, key)
    skey = simulation_key or f"{key}_simulation"
    out_key = check_key(key_added or f"{key}_gene_trends")
    sim = adata.uns.get(skey)
    if not isinstance(sim, Mapping) or "positions" not in sim:
        raise KeyError(f"No simulated trajectories under `adata.uns[{skey!r}]`. Run `scam.tl.simulate` first.")
    times = np.asarray(sim["times"], dtype=float)
    pos = np.asarray(sim["positions"], dtype=float)
    n_t, n_paths, dim = pos.shape
    logw = np.asarray(sim.get("log_weights", np.zeros((n_t, n_paths))), dtype=float)
    if dim != x_all.shape[1] or logw.shape != (n_t, n_paths) or len(times) != n_t:
        raise ValueError(
            f"The simulation under `{skey}` does not match the fit `{key}` ({dim} vs {x_all.shape[1]} dimensions); "
            "run `scam.tl.simulate` again with this fit."
        )
    if not np.all(np.isfinite(pos)) or np.any(np.isnan(logw)):
        raise ValueError(f"The simulation under `{skey}` has non-finite positions or log-weights.")
    names, gidx = _resolve_genes(adata, genes, default_hvg=True)
    matrix = _expression(adata, layer)
    labels = None
    if groups is not None:
        if not isinstance(groups, str) or groups not in adata.obs:
            raise KeyError(f"`groups={groups!r}` is not a column of `adata.obs`.")
        cells = np.asarray(sim.get("cells", []), dtype=int)
        if cells.shape != (n_paths,) or (n_paths and (cells.min() < 0 or cells.max() >= adata.n_obs)):
            raise ValueError(
                f"`adata.uns[{skey!r}]['cells']` does not index the starting cells of this AnnData "
                "(was it subset after simulating?); run `scam.tl.simulate` again."
            )
        labels = adata.obs[groups].astype("category").iloc[cells]
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, (int, np.integer)) or n_neighbors < 1:
        raise ValueError(f"`n_neighbors` must be a whole number >= 1, got {n_neighbors!r}.")
    if bandwidth is not None and not (np.isscalar(bandwidth) and np.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"`bandwidth` must be a positive number (in `use_rep` units) or None, got {bandwidth!r}.")

    # ------------------------------------------------------------ neighbours and kernels, per time
    fitted = np.sort(np.asarray(get_fit(adata, key)["times"], dtype=float))
    finite = np.all(np.isfinite(x_all), axis=1)
    pool_times = _pools(fitted, times)
    pool_cells = {p: np.nonzero(finite & np.any([np.isclose(t_all, v) for v in p], axis=0))[0]
                  for p in set(pool_times)}
    k = int(min(n_neighbors, *(len(c) for c in pool_cells.values())))
    searchers = {p: NearestNeighbors(n_neighbors=k).fit(x_all[c]) for p, c in pool_cells.items()}
    nbrs = np.empty((n_t, n_paths, k), dtype=np.int32)
    kern = np.empty((n_t, n_paths, k), dtype=np.float64)
    widths = np.empty(n_t)
    for i, p in enumerate(pool_times):
        dist, nb = searchers[p].kneighbors(pos[i])
        h = float(bandwidth) if bandwidth is not None else float(np.median(dist))
        h = max(h, 1e-12 * max(1.0, float(np.max(dist))))
        sq = (dist**2 - dist[:, :1] ** 2) / (2 * h * h)  # relative to the nearest: no underflow
        w = np.exp(-sq)
        kern[i] = w / w.sum(axis=1, keepdims=True)
        nbrs[i] = pool_cells[p][nb]
        widths[i] = h

    # ------------------------------------------------------------ expression (requested columns only)
    xg = _columns(matrix, gidx)
    weights = _normalise(logw)
    rows = np.repeat(np.arange(n_t), n_paths * k)

    def trend(wt: np.ndarray) -> np.ndarray:
        """``(T, G)``: sum over paths of ``wt[t, p] * kernel[t, p] @ X[neighbors[t, p]]``."""
        vals = (wt[:, :, None] * kern).ravel()
        agg = sp.csr_matrix((vals, (rows, nbrs.ravel())), shape=(n_t, adata.n_obs))
        return _dense(agg @ xg)

    entry = {
        "times": times,
        "genes": names,
        "mean": trend(weights),
        "weights": weights,
        "neighbors": nbrs,
        "kernel": kern.astype(np.float32),
        "bandwidth": widths,
    }
    if n_t * n_paths * len(names) <= _MAX_PATH_ELEMENTS:
        expr = np.empty((n_t, n_paths, len(names)), dtype=np.float32)
        prow = np.repeat(np.arange(n_paths), k)
        for i in range(n_t):
            op = sp.csr_matrix((kern[i].ravel(), (prow, nbrs[i].ravel())), shape=(n_paths, adata.n_obs))
            expr[i] = _dense(op @ xg)
        entry["expression"] = expr
    else:
        logger.warning(
            "scam: per-path expression (%d x %d x %d values) not stored; rebuild it from 'neighbors' and 'kernel'.",
            n_t, n_paths, len(names),
        )
    if labels is not None:
        present = [g for g in labels.cat.categories if (labels == g).any()]
        gmeans = np.empty((len(present), n_t, len(names)))
        for j, g in enumerate(present):
            sel = np.asarray(labels == g)
            wg = np.zeros_like(weights)
            wg[:, sel] = _normalise(logw[:, sel])
            gmeans[j] = trend(wg)
        entry["group_names"] = np.asarray(present, dtype=str)
        entry["group_means"] = gmeans
    entry["params"] = plain({
        "key": key, "simulation_key": skey, "layer": layer, "groups": groups, "n_neighbors": k,
        "bandwidth": "median" if bandwidth is None else float(bandwidth), "time_key": params["time_key"],
        "neighbor_times": "bracketing",
    })
    if copy:
        adata = adata.copy()
    adata.uns[out_key] = entry
    return adata if copy else None


# ============================================================================ driver genes
def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of the finite entries of ``p`` (NaN stays NaN)."""
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    order = np.argsort(p[ok], kind="stable")
    ranked = p[ok][order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    q[ok] = out
    return q


def _fate_table(adata: AnnData, key: str) -> pd.DataFrame:
    if key not in adata.obsm:
        raise KeyError(
            f"No fate probabilities under `adata.obsm[{key!r}]`. Run `scam.tl.fate_probabilities` first."
        )
    table = adata.obsm[key]
    if isinstance(table, pd.DataFrame):
        return table.astype(float)
    arr = np.asarray(table.toarray() if sp.issparse(table) else table, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"`adata.obsm[{key!r}]` must be 2-D (cells x lineages), got shape {arr.shape}.")
    entry = adata.uns.get(key)
    names = None
    if isinstance(entry, Mapping) and "groups" in entry and len(entry["groups"]) == arr.shape[1]:
        names = [str(g) for g in entry["groups"]]
    return pd.DataFrame(arr, index=adata.obs_names, columns=names or [str(i) for i in range(arr.shape[1])])


def driver_genes(
    adata: AnnData,
    *,
    key: str = "action_matching_fates",
    genes=None,
    layer: str | None = None,
    cells=None,
    method: str = "pearson",
) -> pd.DataFrame:
    """Genes whose expression correlates with each fate probability (lineage drivers).

    For every lineage (column of the table written by :func:`scam.tl.fate_probabilities`) and
    gene, the correlation ``r`` between the gene's expression and the fate probability across the
    source cells, as CellRank's ``compute_lineage_drivers`` reports it.

    Statistics, with ``n`` source cells:

    - p-value: two-sided t-test of ``r = 0`` with ``n - 2`` degrees of freedom,
      ``t = r sqrt((n - 2) / (1 - r^2))``, computed as ``p = 2 I_{(1-|r|)/2}(n/2 - 1, n/2 - 1)``
      (the regularised incomplete beta function; identical to the t-test and to
      :func:`scipy.stats.pearsonr` / :func:`scipy.stats.spearmanr`). CellRank uses the normal
      approximation of the Fisher transform instead, which gives slightly smaller p-values for small ``n``.
    - q-value: Benjamini-Hochberg over the genes with a defined correlation, per lineage.
    - 95% confidence interval: Fisher transform, ``tanh(arctanh(r) -/+ 1.959964 se)`` with
      ``se = 1 / sqrt(n - 3)`` (Pearson) or ``sqrt(1.06 / (n - 3))`` (Spearman, Fieller et al. 1957).

    Genes that are constant across the source cells have no correlation: all their statistics are
    NaN and they are left out of the q-value computation (they do not count as tests).

    Parameters
    ----------
    adata
        Annotated data matrix with fate probabilities.
    key
        ``key_added`` of :func:`scam.tl.fate_probabilities` (the table is ``adata.obsm[key]``; default: the
        fates of the default fit).
    genes
        Gene names (or a boolean mask over ``var``); default: all genes. Sparse expression is read
        in blocks of genes, never densified as a whole.
    layer
        Expression from ``adata.layers[layer]`` instead of ``adata.X``.
    cells
        Source cells to use (boolean mask, obs names or positions); default: every cell with fate
        probabilities (the cells at ``source_time``).
    method
        ``'pearson'`` or ``'spearman'`` (Pearson correlation of ranks, ties averaged).

    Returns
    -------
    pandas.DataFrame indexed by gene with, for each lineage ``L``, columns ``L_corr``, ``L_pval``,
    ``L_qval``, ``L_ci_low``, ``L_ci_high``; sorted by the first lineage's correlation (descending,
    NaN last). Nothing is written to ``adata``.
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"`method` must be 'pearson' or 'spearman', got {method!r}.")
    table = _fate_table(adata, key)
    if table.shape[1] == 0:
        raise ValueError(f"`adata.obsm[{key!r}]` has no lineage columns.")
    fates = table.to_numpy(dtype=float)
    have = np.all(np.isfinite(fates), axis=1)
    idx = select_cells(adata, cells, have)
    if not have[idx].all():
        raise ValueError(
            f"{int((~have[idx]).sum())} of the given `cells` have no fate probabilities in `adata.obsm[{key!r}]` "
            "(they are not source cells)."
        )
    n = len(idx)
    if n < 4:
        raise ValueError(f"Correlations with confidence intervals need at least 4 source cells, got {n}.")
    names, gidx = _resolve_genes(adata, genes, default_hvg=False)
    matrix = _expression(adata, layer)

    f = fates[idx]
    if method == "spearman":
        f = stats.rankdata(f, axis=0)
    fc = f - f.mean(axis=0)
    f_norm = np.sqrt((fc**2).sum(axis=0))
    f_const = np.ptp(f, axis=0) == 0
    for lin in table.columns[f_const]:
        warnings.warn(f"Fate probability {lin!r} is constant across the source cells; its correlations are NaN.",
                      stacklevel=2)
    rows = matrix[idx] if not sp.issparse(matrix) else sp.csr_matrix(matrix)[idx]
    corr = np.empty((len(gidx), fates.shape[1]))
    step = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for s in range(0, len(gidx), step):
        block = _dense(_columns(rows, gidx[s : s + step]))
        if method == "spearman":
            block = stats.rankdata(block, axis=0)
        bc = block - block.mean(axis=0)
        b_norm = np.sqrt((bc**2).sum(axis=0))
        const = np.ptp(block, axis=0) == 0
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (bc.T @ fc) / np.outer(b_norm, f_norm)
        r[const] = np.nan
        r[:, f_const] = np.nan
        corr[s : s + step] = np.clip(r, -1.0, 1.0)

    a = n / 2.0 - 1.0
    pval = 2.0 * special.betainc(a, a, np.clip(0.5 * (1.0 - np.abs(corr)), 0.0, 0.5))
    pval = np.minimum(pval, 1.0)
    se = (np.sqrt(1.06) if method == "spearman" else 1.0) / np.sqrt(n - 3)
    zcrit = stats.norm.ppf(0.975)
    with np.errstate(divide="ignore"):
        z = np.arctanh(corr)
    cols = {}
    for j, lin in enumerate(table.columns):
        cols[f"{lin}_corr"] = corr[:, j]
        cols[f"{lin}_pval"] = pval[:, j]
        cols[f"{lin}_qval"] = _bh(pval[:, j])
        cols[f"{lin}_ci_low"] = np.tanh(z[:, j] - zcrit * se)
        cols[f"{lin}_ci_high"] = np.tanh(z[:, j] + zcrit * se)
    out = pd.DataFrame(cols, index=pd.Index(names, name="gene"))
    return out.sort_values(f"{table.columns[0]}_corr", ascending=False, na_position="last", kind="stable")


# ============================================================================ velocity in gene space
def velocity_genes(
    adata: AnnData,
    *,
    key: str = DEFAULT_KEY,
    layer_added: str = "velocity_genes",
    copy: bool = False,
) -> AnnData | None:
    """The fitted velocity decoded to gene space through scanpy's PCA loadings.

    For each cell in the fitted time range, the model's velocity ``v`` (``n_dims`` PCs per time
    unit) at the cell's own position and time is mapped to genes with the loadings,
    ``v_genes = PCs[:, :n_dims] @ v`` (``PCs = adata.varm['PCs']``). This is exact for the linear
    part of the data captured by the first ``n_dims`` components; the velocity of the discarded
    components is unknown and taken as 0.

    Only possible when the fit used ``use_rep='X_pca'`` computed by :func:`scanpy.pp.pca` (so that
    ``adata.varm['PCs']`` maps the embedding back to genes). Units are those of the matrix PCA was
    computed on, per time unit: when the data were z-scored (:func:`scanpy.pp.scale`; recognisable
    by ``adata.var['std']``), velocities are in standard deviations of each gene; multiply by
    ``adata.var['std']`` to get expression units. Genes excluded from the PCA
    (``adata.uns['pca']['params']['mask_var']``, e.g. non-highly-variable genes) get NaN.

    Parameters
    ----------
    adata
        Annotated data matrix with a fit on ``'X_pca'`` and ``adata.varm['PCs']``.
    key
        ``key_added`` of :func:`scam.tl.action_matching`.
    layer_added
        Layer to write.
    copy
        Return a copy instead of writing to ``adata``.

    Returns
    -------
    ``None`` (or a copy with ``copy=True``); writes ``adata.layers[layer_added]``: ``(n_obs, n_vars)``
    float32 velocities in gene space, NaN for cells outside the fitted time range (or with a
    non-finite embedding) and for genes excluded from the PCA. A dense matrix:
    ``4 n_obs n_vars`` bytes.
    """
    check_key(layer_added)
    x_all, t_all, params = fit_embedding(adata, key)
    use_rep, n_dims = params["use_rep"], int(params["n_dims"])
    if use_rep != "X_pca":
        raise ValueError(
            f"Gene-level velocities can only be recovered from scanpy's PCA: the fit `{key}` used "
            f"`use_rep={use_rep!r}`, which has no linear map back to genes. Run `scanpy.pp.pca` and fit "
            "`scam.tl.action_matching(..., use_rep='X_pca')`, or project the velocity yourself."
        )
    pcs = adata.varm["PCs"] if "PCs" in adata.varm else None
    if pcs is None:
        raise ValueError(
            "Gene-level velocities can only be recovered from scanpy's PCA: `adata.varm['PCs']` is missing "
            "(was `X_pca` computed by another tool, or the AnnData subset by genes?). Run `scanpy.pp.pca` again "
            "and refit."
        )
    pcs = np.asarray(pcs, dtype=np.float64)
    if pcs.ndim != 2 or pcs.shape[0] != adata.n_vars or pcs.shape[1] < n_dims:
        raise ValueError(
            f"`adata.varm['PCs']` has shape {pcs.shape} but the fit needs ({adata.n_vars}, >= {n_dims}) loadings; "
            "recompute the PCA with `scanpy.pp.pca` on these genes and refit."
        )
    loadings = pcs[:, :n_dims]
    gene_ok = np.ones(adata.n_vars, dtype=bool)
    pca_params = adata.uns.get("pca", {}).get("params", {}) if isinstance(adata.uns.get("pca"), Mapping) else {}
    mask_var = pca_params.get("mask_var")
    if isinstance(mask_var, str) and mask_var in adata.var:
        gene_ok = np.asarray(adata.var[mask_var], dtype=bool)
    elif mask_var is None and pca_params.get("use_highly_variable") and "highly_variable" in adata.var:
        gene_ok = np.asarray(adata.var["highly_variable"], dtype=bool)
    if "std" in adata.var and "mean" in adata.var:
        logger.info("scam: `adata.var['std']` found: if PCA ran on scaled data, gene velocities are in SD units.")

    fitted = np.asarray(get_fit(adata, key)["times"], dtype=float)
    cells = np.nonzero((t_all >= fitted.min()) & (t_all <= fitted.max()) & np.all(np.isfinite(x_all), axis=1))[0]
    model = get_model(adata, key=key)
    out = np.full((adata.n_obs, adata.n_vars), np.nan, dtype=np.float32)
    step = max(1, min(16384, _CHUNK_ELEMENTS // max(adata.n_vars, 1)))
    for s in range(0, len(cells), step):
        sel = cells[s : s + step]
        v = model.velocity(x_all[sel], t_all[sel])
        out[sel] = v @ loadings.T
    out[:, ~gene_ok] = np.nan
    if copy:
        adata = adata.copy()
    adata.layers[layer_added] = out
    return adata if copy else None
