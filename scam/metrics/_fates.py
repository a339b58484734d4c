"""Fate probabilities against ground truth: a known fate probability, or the fates of clonal sisters."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import roc_auc_score


def _as_1d(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    if not np.isfinite(arr).all():
        raise ValueError(f"`{name}` holds NaN or infinite values.")
    return arr


def fate_calibration(predicted, truth, *, n_bins: int = 10) -> dict:
    """Predicted fate probabilities against the true probabilities of the same cells.

    Parameters
    ----------
    predicted
        ``(n,)`` predicted probability of one fate, in ``[0, 1]``.
    truth
        ``(n,)`` true probability of that fate (e.g. from simulated continuations), in ``[0, 1]``.
    n_bins
        Equal-width bins of ``predicted`` for the calibration error.

    Returns
    -------
    dict
        ``pearson``; ``ece`` (expected calibration error, ``sum_b n_b / n * abs(mean predicted_b - mean truth_b)``
        over the bins ``b``); ``brier`` (the expected Brier score ``mean((p - q)^2) + mean(q (1 - q))`` of the
        predictions against outcomes drawn with the true probabilities), ``bayes`` (``mean(q (1 - q))``: the
        Brier score of the truth itself, the best possible) and ``brier_ratio`` (``brier / bayes``);
        ``certain`` (share of predictions at exactly 0 or 1, within ``1e-9``).
    """
    p, q = _as_1d(predicted, "predicted"), _as_1d(truth, "truth")
    if p.shape != q.shape or len(p) < 2:
        raise ValueError(f"`predicted` and `truth` need the same length >= 2, got {len(p)} and {len(q)}.")
    if p.min() < -1e-9 or p.max() > 1 + 1e-9 or q.min() < -1e-9 or q.max() > 1 + 1e-9:
        raise ValueError("`predicted` and `truth` must be probabilities in [0, 1].")
    bins = np.minimum((np.clip(p, 0, 1) * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in np.unique(bins):
        sel = bins == b
        ece += sel.mean() * abs(p[sel].mean() - q[sel].mean())
    bayes = float(np.mean(q * (1 - q)))
    brier = float(np.mean((p - q) ** 2)) + bayes
    r = float(pearsonr(p, q)[0]) if p.std() > 0 and q.std() > 0 else float("nan")
    return {"pearson": r, "ece": float(ece), "brier": brier, "bayes": bayes,
            "brier_ratio": brier / bayes if bayes > 0 else float("inf"),
            "certain": float(np.mean((p < 1e-9) | (p > 1 - 1e-9)))}


def clonal_fate_bias(clones, early, labels, *, fate: str, others) -> tuple[np.ndarray, np.ndarray]:
    """Per early cell, the share of ``fate`` among its clonal sisters at later times in ``fate`` or ``others``.

    Parameters
    ----------
    clones
        ``(n_cells, n_clones)`` clone matrix (dense or sparse; nonzero: the cell carries the barcode), the
        LARRY / CoSpar ``obsm['X_clone']`` convention.
    early
        ``(n_cells,)`` boolean: the cells to score. All other cells are the candidate sisters.
    labels
        ``(n_cells,)`` group of each cell (only the later cells' labels are read).
    fate
        The group whose share is returned.
    others
        The competing group(s).

    Returns
    -------
    bias
        ``(n_early,)``: the share of ``fate`` among sisters in ``fate`` or ``others`` (NaN without any).
    n_sisters
        ``(n_early,)``: how many such sisters each early cell has.
    """
    c = sp.csr_matrix(clones).astype(bool).astype(np.float64)
    early = np.asarray(early, bool)
    labels = np.asarray(labels).astype(str)
    if c.shape[0] != len(early) or len(labels) != len(early):
        raise ValueError(f"`clones` ({c.shape[0]} rows), `early` ({len(early)}) and `labels` ({len(labels)}) "
                         "must describe the same cells.")
    others = [str(o) for o in np.atleast_1d(others)]
    late = ~early
    pos = (late & (labels == str(fate))).astype(np.float64)
    neg = (late & np.isin(labels, others)).astype(np.float64)
    ce = c[early]
    # sisters share at least one clone: (early x clones) @ (clones x cells) > 0
    share = (ce @ c.T).tocsr()
    share.data[:] = 1.0
    n_pos, n_neg = share @ pos, share @ neg
    n = n_pos + n_neg
    with np.errstate(invalid="ignore", divide="ignore"):
        bias = np.where(n > 0, n_pos / np.maximum(n, 1), np.nan)
    return bias, n.astype(int)


def lineage_agreement(predicted, clones, early, labels, *, fate: str, others, min_sisters: int = 2) -> dict:
    """Score predicted fate biases of early cells against the fates of their clonal sisters.

    Protocol of Weinreb et al. 2020 (Fig. 5): each early cell's clonal fate bias is the share of ``fate``
    among its later sisters in ``fate`` or ``others`` (:func:`clonal_fate_bias`); cells with fewer than
    ``min_sisters`` such sisters are excluded (and counted).

    Parameters
    ----------
    predicted
        ``(n_early,)`` predicted bias of the early cells towards ``fate`` (e.g. ``P(fate) / (P(fate) +
        P(others))``), in the order of ``early``'s true entries.
    clones, early, labels, fate, others
        As in :func:`clonal_fate_bias`.
    min_sisters
        Sisters (in ``fate`` or ``others``) an early cell needs to be scored.

    Returns
    -------
    dict with ``pearson``, ``spearman``, ``auroc`` (clonal bias above 0.5 as the positive class; cells at
    exactly 0.5 left out; NaN when only one class is present), ``n_scored``, ``n_excluded`` (early cells
    with too few sisters), ``clonal_bias`` and ``n_sisters`` (``(n_early,)`` each).
    """
    bias, n_sisters = clonal_fate_bias(clones, early, labels, fate=fate, others=others)
    p = _as_1d(predicted, "predicted")
    if len(p) != len(bias):
        raise ValueError(f"`predicted` has {len(p)} values for {len(bias)} early cells.")
    if int(min_sisters) < 1:
        raise ValueError(f"`min_sisters` must be >= 1, got {min_sisters}.")
    ok = n_sisters >= int(min_sisters)
    out = {"n_scored": int(ok.sum()), "n_excluded": int((~ok).sum()), "clonal_bias": bias, "n_sisters": n_sisters,
           "pearson": float("nan"), "spearman": float("nan"), "auroc": float("nan")}
    pp, bb = p[ok], bias[ok]
    if ok.sum() >= 2 and pp.std() > 0 and bb.std() > 0:
        out["pearson"] = float(pearsonr(pp, bb)[0])
        out["spearman"] = float(spearmanr(pp, bb)[0])
    decided = bb != 0.5
    y = bb[decided] > 0.5
    if y.any() and not y.all():
        out["auroc"] = float(roc_auc_score(y, pp[decided]))
    return out
