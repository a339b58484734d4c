"""Growth prior from proliferation and apoptosis gene scores (birth-death model of Waddington-OT)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from importlib import resources

import numpy as np
import pandas as pd
import scanpy as sc
from anndata import AnnData

from .._utils import logger

ORGANISMS = ("human", "mouse")
KINDS = ("proliferation", "apoptosis")

#: Default logistic parameters (Schiebinger et al. 2019; moscot ``beta``/``delta``), rates per day.
BIRTH_DEFAULTS = {"max": 1.7, "min": 0.3, "center": 0.25, "width": 0.5}
DEATH_DEFAULTS = {"max": 1.7, "min": 0.3, "center": 0.1, "width": 0.2}

#: Below this many genes of a set found in the data, :func:`score_growth` raises.
MIN_OVERLAP_GENES = 3
#: Below this fraction of a set found in the data, :func:`score_growth` logs a warning.
WARN_OVERLAP_FRACTION = 0.1

_HUMAN_LIKE = re.compile(r"^[A-Z][A-Z0-9-]*$")  # e.g. MKI67, HLA-A
_MOUSE_LIKE = re.compile(r"^[A-Z][a-z0-9-]*[a-z][a-z0-9-]*$")  # e.g. Mki67, Sox2
_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{6,}")


def _load_gene_set(kind: str, organism: str) -> list[str]:
    """Built-in gene set ``kind`` (proliferation, apoptosis) for ``organism`` (human, mouse)."""
    path = resources.files("scam.pp").joinpath("_data", "gene_sets", f"{organism}_{kind}.txt")
    genes = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return list(dict.fromkeys(g for g in genes if g))


def growth_gene_sets(organism: str = "human") -> dict[str, list[str]]:
    """The proliferation and apoptosis gene sets shipped with scam (the defaults of :func:`score_growth`).

    Copied from moscot (BSD-3-Clause; provenance in ``scam/pp/_data/gene_sets/README.md``): the sets
    Waddington-OT and moscot use for their birth-death growth prior.

    Parameters
    ----------
    organism
        ``"human"`` (upper-case symbols, e.g. ``MKI67``) or ``"mouse"`` (e.g. ``Mki67``).

    Returns
    -------
    ``{"proliferation": [...], "apoptosis": [...]}``: gene symbols in file order, without duplicates.
    A new dictionary of new lists on every call (changing it changes nothing in scam).

    Examples
    --------
    >>> sets = scam.pp.growth_gene_sets("mouse")  # doctest: +SKIP
    >>> found = [g for g in sets["proliferation"] if g in adata.var_names]  # doctest: +SKIP
    """
    if organism not in ORGANISMS:
        raise ValueError(f"Unknown organism {organism!r}; choose one of {ORGANISMS}, or pass your own gene "
                         "lists to `scam.pp.score_growth(proliferation_genes=..., apoptosis_genes=...)`.")
    return {kind: _load_gene_set(kind, organism) for kind in KINDS}


def _logistic_rate(score, *, rate_max: float, rate_min: float, center: float, width: float) -> np.ndarray:
    """``rate_min + (rate_max - rate_min) / (1 + exp(-4 (score - center) / width))``.

    The shifted logistic of Schiebinger et al. 2019 (moscot ``_gen_logistic``): it equals the midpoint
    ``(rate_max + rate_min) / 2`` at ``score = center`` and its slope there is ``(rate_max - rate_min) / width``.
    """
    z = -4.0 / width * (np.asarray(score, dtype=np.float64) - center)
    # exp overflows to inf for very low scores, which correctly gives rate_min (underflow gives rate_max).
    with np.errstate(over="ignore", under="ignore"):
        return rate_min + (rate_max - rate_min) / (1.0 + np.exp(z))


def _check_rate_params(name: str, params: dict[str, float]) -> None:
    for key, val in params.items():
        if isinstance(val, bool) or not isinstance(val, (int, float, np.integer, np.floating)) or not np.isfinite(val):
            raise ValueError(f"`{name}_{key}` must be a finite number, got {val!r}.")
    if params["width"] <= 0:
        raise ValueError(f"`{name}_width` must be positive, got {params['width']!r}.")
    if params["min"] > params["max"]:
        raise ValueError(f"`{name}_min` ({params['min']}) must not exceed `{name}_max` ({params['max']}).")


def _check_gene_list(genes, name: str) -> list[str]:
    if isinstance(genes, str):
        raise TypeError(f"`{name}` must be a sequence of gene symbols, not a single string ({genes!r}).")
    try:
        out = list(genes)
    except TypeError:
        raise TypeError(f"`{name}` must be a sequence of gene symbols, got {type(genes).__name__}.") from None
    bad = [g for g in out if not isinstance(g, str)]
    if bad:
        raise TypeError(f"`{name}` must contain only strings, found {bad[:3]!r}.")
    out = list(dict.fromkeys(g.strip() for g in out if g.strip()))
    if not out:
        raise ValueError(f"`{name}` is empty.")
    return out


def _describe_symbols(symbols: pd.Index) -> str:
    """A short description of the naming pattern of the data's gene identifiers."""
    sample = [s for s in symbols[:5000] if isinstance(s, str)]
    if not sample:
        return "no string gene identifiers"
    n = len(sample)
    ens = sum(bool(_ENSEMBL.match(s)) for s in sample) / n
    up = sum(bool(_HUMAN_LIKE.match(s)) for s in sample) / n
    cap = sum(bool(_MOUSE_LIKE.match(s)) for s in sample) / n
    examples = ", ".join(repr(s) for s in sample[:3])
    if ens > 0.5:
        return f"mostly Ensembl IDs (e.g. {examples}); pass `gene_symbols` naming the var column with symbols"
    if up > 0.5 and up > cap:
        return f"mostly upper-case symbols, as for human genes (e.g. {examples})"
    if cap > 0.5:
        return f"mostly capitalised symbols, as for mouse genes (e.g. {examples})"
    return f"no clear naming pattern (e.g. {examples})"


def _overlap_error(kind: str, genes: list[str], source: str, symbols: pd.Index, n_found: int, min_genes: int) -> str:
    where = "the selected gene identifiers"
    msg = [
        f"score_growth: only {n_found} of the {len(genes)} {kind} genes ({source} list) are in {where}; "
        f"at least {min_genes} are required.",
        f"The data's gene identifiers are {_describe_symbols(symbols)}.",
    ]
    present = set(symbols)
    folded = {s.upper() for s in present if isinstance(s, str)}
    if source in ORGANISMS:
        other = "mouse" if source == "human" else "human"
        other_found = len(present.intersection(_load_gene_set(kind, other)))
        if other_found > n_found:
            msg.append(
                f"With organism={other!r} the exact overlap would be {other_found} genes: "
                f"is this {other} data? Pass organism={other!r}."
            )
    n_folded = len(folded.intersection(g.upper() for g in genes))
    if n_folded > n_found:
        msg.append(
            f"Ignoring case, {n_folded} genes would match; matching is exact (case-sensitive) on purpose, "
            "since human symbols are upper-case and mouse symbols capitalised."
        )
    msg.append(
        "Check `organism`, `gene_symbols` (a var column with symbols, if var_names are IDs), or pass "
        "`proliferation_genes` / `apoptosis_genes`."
    )
    return " ".join(msg)


def _check_expression(mat, where: str) -> None:
    """Refuse NaN; warn when the values do not look log-normalised (negative, or counts-sized)."""
    values = mat.data if hasattr(mat, "data") and hasattr(mat, "indptr") else np.asarray(mat)
    if values.size == 0:
        return
    if not np.all(np.isfinite(values)):
        raise ValueError(
            f"`{where}` contains NaN or infinite expression values; score_growth needs log-normalised counts "
            "(`sc.pp.normalize_total` then `sc.pp.log1p`)."
        )
    lo, hi = float(np.min(values)), float(np.max(values))
    if lo < 0:
        warnings.warn(
            f"`{where}` has negative values (min {lo:.3g}): score_growth expects log-normalised counts, not scaled "
            "data; score before `sc.pp.scale` (or pass `layer=` / `use_raw=`) for calibrated growth rates.",
            UserWarning, stacklevel=3,
        )
    elif hi > 50:
        warnings.warn(
            f"`{where}` has values up to {hi:.3g}: it does not look log-transformed; run `sc.pp.log1p` first for "
            "calibrated growth rates.",
            UserWarning, stacklevel=3,
        )


def score_growth(
    adata: AnnData,
    organism: str | None = "human",
    *,
    proliferation_genes: Sequence[str] | None = None,
    apoptosis_genes: Sequence[str] | None = None,
    gene_symbols: str | None = None,
    key_added: str = "growth_prior",
    beta_max: float = 1.7,
    beta_min: float = 0.3,
    beta_center: float = 0.25,
    beta_width: float = 0.5,
    delta_max: float = 1.7,
    delta_min: float = 0.3,
    delta_center: float = 0.1,
    delta_width: float = 0.2,
    min_genes: int = MIN_OVERLAP_GENES,
    ctrl_size: int = 50,
    n_bins: int = 25,
    random_state: int = 0,
    use_raw: bool | None = None,
    layer: str | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Per-cell prior growth rate from proliferation and apoptosis gene scores.

    The birth-death model of Waddington-OT (Schiebinger et al. 2019), as implemented in moscot:

    1. score a proliferation and an apoptosis gene set per cell with :func:`scanpy.tl.score_genes`
       (scores ``p`` and ``a``);
    2. map them to a birth rate ``beta(p)`` and a death rate ``delta(a)`` with shifted logistic functions

       .. math::

           \\beta(p) = \\beta_{min}
           + \\frac{\\beta_{max} - \\beta_{min}}{1 + \\exp(-4 (p - \\beta_{center}) / \\beta_{width})},

           \\delta(a) = \\delta_{min}
           + \\frac{\\delta_{max} - \\delta_{min}}{1 + \\exp(-4 (a - \\delta_{center}) / \\delta_{width})};

    3. the log growth rate per unit time is ``g = beta - delta``; a cell is expected to have
       ``exp(g * dt)`` descendants after a time ``dt``.

    The default constants are those of Waddington-OT / moscot, calibrated for time in days and
    log-normalised expression; with another time unit, rescale the rates (or your time axis).

    Parameters
    ----------
    adata
        Annotated data matrix (cells x genes), log-normalised expression in ``X`` (or ``layer`` / ``raw``).
    organism
        ``"human"`` or ``"mouse"``: use the gene sets shipped with scam (see Notes). ``None``: both
        ``proliferation_genes`` and ``apoptosis_genes`` must be given.
    proliferation_genes, apoptosis_genes
        Custom gene sets (sequences of symbols); each one given replaces the built-in set of that kind.
    gene_symbols
        Column of ``adata.var`` (of ``adata.raw.var`` when the raw matrix is used) holding the gene symbols,
        when ``var_names`` are other identifiers (e.g. Ensembl IDs). ``None`` matches against ``var_names``.
        Matching is exact and case-sensitive.
    key_added
        Prefix of the fields written (see Returns).
    beta_max, beta_min, beta_center, beta_width
        Birth logistic: upper and lower bound (rates per unit time), score at the midpoint, and width
        (slope at the midpoint is ``(beta_max - beta_min) / beta_width``). Defaults 1.7, 0.3, 0.25, 0.5.
    delta_max, delta_min, delta_center, delta_width
        Death logistic, likewise. Defaults 1.7, 0.3, 0.1, 0.2.
    min_genes
        Minimum number of genes of each set that must be found in the data; below it a
        :class:`ValueError` explains the likely mistake (wrong organism, IDs instead of symbols). Below
        10% of a set, a warning is logged.
    ctrl_size, n_bins, random_state
        Passed to :func:`scanpy.tl.score_genes` (the control genes are drawn with ``random_state``, so the
        result is deterministic).
    use_raw
        Score on ``adata.raw`` (``None``: when ``adata.raw`` is present, as in scanpy; not allowed with ``layer``).
    layer
        Score on this layer instead of ``X``.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    AnnData or None
        ``None`` if ``copy=False`` (``adata`` is updated in place), else an updated copy. Fields written:

        ``adata.obs[key_added]``
            **The per-cell log growth rate per unit time,** ``g = birth - death`` (float). This is the field
            downstream code (e.g. scam's unbalanced models) should use as a growth prior.
        ``adata.obs[f"{key_added}_growth"]``
            ``exp(g)``: expected number of descendants after one time unit.
        ``adata.obs[f"{key_added}_birth"]``, ``adata.obs[f"{key_added}_death"]``
            Birth rate ``beta(p)`` and death rate ``delta(a)``.
        ``adata.obs[f"{key_added}_proliferation"]``, ``adata.obs[f"{key_added}_apoptosis"]``
            Gene-set scores ``p`` and ``a`` from :func:`scanpy.tl.score_genes` (scanpy's own ``score``
            column is not left behind).
        ``adata.uns[key_added]``
            ``{"organism", "params", "gene_sets"}``: parameters and, per gene set, its source, size,
            overlap with the data (``n_overlap``, ``fraction``) and the genes used (``genes_used``).

    Raises
    ------
    ValueError, TypeError, KeyError
        On invalid arguments or too small an overlap, before anything is computed or written.

    Notes
    -----
    The logistic constants fix the *scale* of the rates (between ``min - max`` and ``max - min``, i.e.
    ``[-1.4, 1.4]`` per day with the defaults), but where cells fall on the logistic depends on the
    expression scale of the data: gene scores are differences of mean expression, so data normalised
    differently from Waddington-OT's can saturate one logistic (e.g. most cells at the maximal death rate).
    moscot uses the prior only through normalised masses ``exp(g dt) / sum(exp(g dt))``, i.e. up to a
    constant shift of ``g``; check ``adata.obs[f"{key_added}_birth"]`` / ``_death`` before trusting the
    absolute level of ``g``.

    Built-in gene sets (``scam/pp/_data/gene_sets``, copied from moscot, BSD-3-Clause): proliferation
    is the cell-cycle genes of Tirosh et al. 2016 (97 genes); apoptosis is MSigDB HALLMARK_APOPTOSIS for
    human (161) and HALLMARK_P53_PATHWAY for mouse (193).

    References
    ----------
    Schiebinger G. et al. (2019), Optimal-transport analysis of single-cell gene expression identifies
    developmental trajectories in reprogramming, *Cell* 176:928-943.

    Examples
    --------
    >>> import scam
    >>> scam.pp.score_growth(adata, "mouse")  # doctest: +SKIP
    >>> g = adata.obs["growth_prior"]  # log growth rate per day  # doctest: +SKIP
    """
    # ---- validation: nothing below touches adata until every check has passed
    if not isinstance(adata, AnnData):
        raise TypeError(f"`adata` must be an AnnData, got {type(adata).__name__}.")
    if organism is not None and organism not in ORGANISMS:
        raise ValueError(
            f"`organism` must be 'human', 'mouse' or None (with custom gene lists), got {organism!r}."
        )
    custom = {
        kind: None if genes is None else _check_gene_list(genes, f"{kind}_genes")
        for kind, genes in (("proliferation", proliferation_genes), ("apoptosis", apoptosis_genes))
    }
    if organism is None and any(v is None for v in custom.values()):
        missing = [f"{k}_genes" for k, v in custom.items() if v is None]
        raise ValueError(
            f"With organism=None, both `proliferation_genes` and `apoptosis_genes` are required; missing {missing}. "
            "Or pass organism='human' / 'mouse' for the built-in sets."
        )
    if not isinstance(key_added, str) or not key_added:
        raise ValueError(f"`key_added` must be a non-empty string, got {key_added!r}.")
    birth = {"max": beta_max, "min": beta_min, "center": beta_center, "width": beta_width}
    death = {"max": delta_max, "min": delta_min, "center": delta_center, "width": delta_width}
    _check_rate_params("beta", birth)
    _check_rate_params("delta", death)
    for name, val, low in (("min_genes", min_genes, 1), ("ctrl_size", ctrl_size, 1), ("n_bins", n_bins, 1),
                           ("random_state", random_state, 0)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < low:
            raise ValueError(f"`{name}` must be an integer >= {low}, got {val!r}.")
    if use_raw is None:
        use_raw = adata.raw is not None and layer is None
    if use_raw and layer is not None:
        raise ValueError("Pass either `use_raw=True` or `layer`, not both.")
    if use_raw and adata.raw is None:
        raise ValueError("`use_raw=True` but `adata.raw` is None.")
    if layer is not None and layer not in adata.layers:
        raise KeyError(f"`layer={layer!r}` not found in adata.layers (available: {list(adata.layers)}).")
    var = adata.raw.var if use_raw else adata.var
    var_where = "adata.raw.var" if use_raw else "adata.var"
    if gene_symbols is not None:
        if gene_symbols not in var.columns:
            raise KeyError(
                f"`gene_symbols={gene_symbols!r}` is not a column of {var_where} (columns: {list(var.columns)})."
            )
        symbols = pd.Index(var[gene_symbols].astype(object).where(var[gene_symbols].notna(), None))
    else:
        symbols = pd.Index(var.index.astype(object))

    # ---- gene sets and their overlap with the data
    sets: dict[str, dict] = {}
    for kind in KINDS:
        source = "custom" if custom[kind] is not None else organism
        genes = custom[kind] if custom[kind] is not None else _load_gene_set(kind, organism)
        in_data = symbols.isin(genes)
        present = set(symbols[in_data])
        found = [g for g in genes if g in present]
        if len(found) < min_genes:
            raise ValueError(_overlap_error(kind, genes, source, symbols, len(found), min_genes))
        sets[kind] = {
            "source": source,
            "genes": genes,
            "found": found,
            "positions": np.flatnonzero(in_data),
        }
        frac = len(found) / len(genes)
        logger.info(
            "score_growth: %s: %d of %d genes (%.0f%%, %s list) found in the data.",
            kind, len(found), len(genes), 100 * frac, source,
        )
        if frac < WARN_OVERLAP_FRACTION:
            logger.warning(
                "score_growth: only %d of %d %s genes (%.0f%%) are in the data; the %s score rests on few genes "
                "and the growth prior will be noisy.",
                len(found), len(genes), kind, 100 * frac, kind,
            )

    # ---- scoring on a light AnnData that shares the expression matrix (nothing is written into adata)
    if use_raw:
        mat = adata.raw.X
    elif layer is not None:
        mat = adata.layers[layer]
    else:
        mat = adata.X
    where = "adata.raw.X" if use_raw else (f"adata.layers[{layer!r}]" if layer is not None else "adata.X")
    _check_expression(mat, where)
    ids = pd.Index([f"g{i}" for i in range(mat.shape[1])])  # unique names, whatever var_names look like
    scratch = AnnData(X=mat, obs=pd.DataFrame(index=adata.obs_names.copy()), var=pd.DataFrame(index=ids))
    scores: dict[str, np.ndarray] = {}
    for kind in KINDS:
        sc.tl.score_genes(
            scratch,
            list(ids[sets[kind]["positions"]]),
            ctrl_size=ctrl_size,
            n_bins=n_bins,
            random_state=random_state,
            score_name="_scam_score",
            use_raw=False,
        )
        scores[kind] = scratch.obs["_scam_score"].to_numpy(dtype=np.float64).copy()
    del scratch

    birth_rate = _logistic_rate(
        scores["proliferation"], rate_max=beta_max, rate_min=beta_min, center=beta_center, width=beta_width
    )
    death_rate = _logistic_rate(
        scores["apoptosis"], rate_max=delta_max, rate_min=delta_min, center=delta_center, width=delta_width
    )
    log_growth = birth_rate - death_rate

    # ---- write
    target = adata.copy() if copy else adata
    target.obs[f"{key_added}_proliferation"] = scores["proliferation"]
    target.obs[f"{key_added}_apoptosis"] = scores["apoptosis"]
    target.obs[f"{key_added}_birth"] = birth_rate
    target.obs[f"{key_added}_death"] = death_rate
    target.obs[key_added] = log_growth
    target.obs[f"{key_added}_growth"] = np.exp(log_growth)
    params = {
        **{f"beta_{k}": float(v) for k, v in birth.items()},
        **{f"delta_{k}": float(v) for k, v in death.items()},
        "min_genes": int(min_genes),
        "ctrl_size": int(ctrl_size),
        "n_bins": int(n_bins),
        "random_state": int(random_state),
        "use_raw": bool(use_raw),
    }
    if layer is not None:
        params["layer"] = layer
    if gene_symbols is not None:
        params["gene_symbols"] = gene_symbols
    target.uns[key_added] = {
        "organism": organism if organism is not None else "custom",
        "log_growth_key": key_added,
        "params": params,
        "gene_sets": {
            kind: {
                "source": info["source"],
                "n_genes": len(info["genes"]),
                "n_overlap": len(info["found"]),
                "fraction": len(info["found"]) / len(info["genes"]),
                "genes_used": np.asarray(info["found"], dtype=object),
            }
            for kind, info in sets.items()
        },
    }
    logger.info(
        "score_growth: wrote obs[%r] (log growth rate per unit time, birth - death), median %.3f.",
        key_added, float(np.median(log_growth)),
    )
    return target if copy else None
