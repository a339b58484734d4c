"""Diagnostic figures: held-out benchmark and training history."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from anndata import AnnData

from ..tl._utils import DEFAULT_KEY, get_fit
from ._utils import clean_spines, finish, make_axes, point_size, time_label

BASELINES = ("previous", "ot_interpolation", "ot_midpoint")
_BASELINE_LABELS = {"previous": "previous time point", "ot_interpolation": "OT interpolation",
                    "ot_midpoint": "OT midpoint"}
_BASELINE_COLORS = {"previous": "0.72", "ot_interpolation": "0.5", "ot_midpoint": "0.35"}
_METRIC_LABELS = {"w1": "W1 distance", "w2": "W2 distance", "mmd": "MMD² (RBF)"}
_COLUMNS = ("holdout_time", "method", "metric", "value", "seed")


def wasserstein(
    adata: AnnData,
    *,
    key: str = "holdout_eval",
    metric: str = "w1",
    methods=None,
    kind: str = "bar",
    values: bool = True,
    ax=None,
    show: bool | None = None,
    return_fig: bool = False,
    **kwargs,
):
    """Held-out prediction error of scam against the baselines, per held-out time point.

    Reads the table written by :func:`scam.tl.evaluate_holdout`. Each held-out time gets one bar
    (or point) per method at the mean over seeds; with several seeds the standard deviation is drawn
    as an error bar and every seed as a dot. Lower is better.

    Parameters
    ----------
    adata
        Annotated data matrix with ``adata.uns[key]['results']``.
    key
        ``key_added`` of :func:`scam.tl.evaluate_holdout`.
    metric
        Metric to plot (``'w1'``, ``'w2'``, ``'mmd'``: whichever was computed).
    methods
        Methods to show, in order (default: scam methods first, then the baselines).
    kind
        ``'bar'`` (grouped bars) or ``'points'`` (means with error bars).
    values
        Write the mean value above each bar (up to 16 bars).
    ax
        Axes to draw into (default: a new figure).
    show
        Show the figure (default: when matplotlib is in interactive mode and ``return_fig`` is False).
    return_fig
        Return the Figure.
    **kwargs
        Passed to :meth:`~matplotlib.axes.Axes.bar` (or :meth:`~matplotlib.axes.Axes.errorbar`).

    Returns
    -------
    The :class:`~matplotlib.figure.Figure` if ``return_fig``, else ``None``.
    """
    entry = adata.uns.get(key)
    if not isinstance(entry, Mapping) or "results" not in entry:
        raise KeyError(f"No held-out evaluation under `adata.uns[{key!r}]`. Run `scam.tl.evaluate_holdout` first.")
    res = entry["results"]
    df = res.copy() if isinstance(res, pd.DataFrame) else pd.DataFrame({k: np.asarray(v) for k, v in res.items()})
    missing = [c for c in _COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"`adata.uns[{key!r}]['results']` lacks column(s) {missing}. "
                         "Run `scam.tl.evaluate_holdout` first.")
    if kind not in ("bar", "points"):
        raise ValueError(f"`kind` must be 'bar' or 'points', got {kind!r}.")
    df["method"] = df["method"].astype(str)
    df["metric"] = df["metric"].astype(str)
    sub = df[df["metric"] == metric]
    if sub.empty:
        raise ValueError(f"No results for `metric={metric!r}`; available: {sorted(df['metric'].unique())}.")
    present = list(pd.unique(sub["method"]))
    if methods is None:
        methods = [m for m in present if m not in BASELINES] + [b for b in BASELINES if b in present]
    else:
        methods = [str(m) for m in np.atleast_1d(methods)]
        unknown = [m for m in methods if m not in present]
        if unknown:
            raise ValueError(f"No results for method(s) {unknown}; available: {present}.")
    hts = np.sort(pd.unique(sub["holdout_time"].astype(float)))
    colors, c_idx = {}, 0
    for m in methods:
        if m in _BASELINE_COLORS:
            colors[m] = _BASELINE_COLORS[m]
        else:
            colors[m] = f"C{c_idx}"
            c_idx += 1

    params = entry.get("params", {})
    tl = time_label(params.get("time_key") if isinstance(params, Mapping) else None)
    n_bars = len(hts) * len(methods)
    fig, (ax,) = make_axes(ax, 1, panel_size=(max(3.5, 1.0 + 0.45 * n_bars) + 2.4, 4.2))
    x = np.arange(len(hts))
    width = 0.8 / len(methods)
    several = sub.groupby(["holdout_time", "method"])["value"].size().max() > 1
    jitter = np.random.default_rng(0)
    for j, m in enumerate(methods):
        rows = sub[sub["method"] == m]
        vals = [rows.loc[np.isclose(rows["holdout_time"].astype(float), h), "value"].astype(float).to_numpy()
                for h in hts]
        mean = np.array([v.mean() if len(v) else np.nan for v in vals])
        sd = np.array([v.std(ddof=1) if len(v) > 1 else 0.0 for v in vals])
        pos = x - 0.4 + width * (j + 0.5)
        label = _BASELINE_LABELS.get(m, m) + (" (baseline)" if m in BASELINES else "")
        yerr = sd if any(len(v) > 1 for v in vals) else None
        if kind == "bar":
            kw = {"color": colors[m], "edgecolor": "0.2", "linewidth": 0.6, "label": label,
                  "error_kw": {"elinewidth": 1.0, "capsize": 3, "ecolor": "0.1"}}
            kw.update(kwargs)
            bars = ax.bar(pos, mean, width * 0.92, yerr=yerr, **kw)
            if values and n_bars <= 16:
                ax.bar_label(bars, labels=[f"{v:.3g}" if np.isfinite(v) else "" for v in mean],
                             padding=2, fontsize="x-small", color="0.25")
        else:
            kw = {"color": colors[m], "marker": "o", "ls": "", "capsize": 3, "label": label,
                  "ms": float(np.sqrt(point_size(len(hts), "summary")))}  # a line's marker size: sqrt of an area
            kw.update(kwargs)
            ax.errorbar(pos, mean, yerr=yerr, **kw)
        if several:
            for p, v in zip(pos, vals):
                if len(v) > 1:
                    ax.scatter(p + jitter.uniform(-0.18, 0.18, len(v)) * width, v, color="0.1", zorder=3,
                               s=point_size(len(v), "overlay"), linewidths=0)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{h:g}" for h in hts])
    ax.set_xlabel(f"held-out {tl}")
    ax.set_ylabel(_METRIC_LABELS.get(metric, metric) + " to held-out cells")
    ax.set_title(f"held-out prediction error ({metric}, lower is better)", fontsize="medium")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    clean_spines(ax)
    return finish(fig, show, return_fig)


def history(
    adata: AnnData,
    *,
    key: str = DEFAULT_KEY,
    log: bool | None = None,
    ax=None,
    show: bool | None = None,
    return_fig: bool = False,
    **kwargs,
):
    """Training and validation loss of a fit against the optimiser step, with the kept (best) step.

    Parameters
    ----------
    adata
        Annotated data matrix with a fit.
    key
        ``key_added`` of :func:`scam.tl.action_matching`.
    log
        Logarithmic y axis (default: when every loss is positive; the Action Matching loss can be negative).
    ax
        Axes to draw into (default: a new figure).
    show
        Show the figure (default: when matplotlib is in interactive mode and ``return_fig`` is False).
    return_fig
        Return the Figure.
    **kwargs
        Passed to :meth:`~matplotlib.axes.Axes.plot` of the training loss.

    Returns
    -------
    The :class:`~matplotlib.figure.Figure` if ``return_fig``, else ``None``.
    """
    hist = get_fit(adata, key).get("history", {})
    if not isinstance(hist, Mapping) or "step" not in hist or len(np.atleast_1d(hist["step"])) == 0:
        raise ValueError(f"The fit under `adata.uns[{key!r}]` has no training history.")
    step = np.asarray(hist["step"], dtype=float)
    loss = np.asarray(hist.get("loss", np.full(len(step), np.nan)), dtype=float)
    val = np.asarray(hist.get("val_loss", np.full(len(step), np.nan)), dtype=float)
    values = np.concatenate([loss, val])
    values = values[np.isfinite(values)]
    positive = values.size > 0 and bool(np.all(values > 0))
    if log is None:
        log = positive
    elif log and not positive:
        raise ValueError("`log=True` needs positive losses; the Action Matching loss here is <= 0 somewhere.")

    fig, (ax,) = make_axes(ax, 1, panel_size=(5.5, 3.8))
    ms = float(np.sqrt(point_size(len(step), "overlay")))  # a line's marker size is the square root of an area
    kw = {"color": "C0", "lw": 1.5, "marker": "o" if len(step) <= 30 else None, "ms": ms, "label": "training loss"}
    kw.update(kwargs)
    ax.plot(step, loss, **kw)
    if np.isfinite(val).any():
        ax.plot(step, val, color="C1", lw=1.5, marker="o" if len(step) <= 30 else None, ms=ms,
                label="validation loss")
        best = int(np.nanargmin(val))
        ax.axvline(step[best], color="0.35", ls="--", lw=0.9, zorder=0)
        ax.scatter([step[best]], [val[best]], s=point_size(1, "highlight"), facecolor="none", edgecolor="C3",
                   linewidths=1.5, zorder=3,
                   label=f"best (kept): step {step[best]:g}")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("Action Matching loss")
    ax.set_title("training history" + ("" if key == DEFAULT_KEY else f" ({key})"), fontsize="medium")
    ax.legend(fontsize="small", frameon=False, loc="best")
    clean_spines(ax)
    return finish(fig, show, return_fig)
