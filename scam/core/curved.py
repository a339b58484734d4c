"""Curved paths through three or more snapshots: pairs bend the way the neighbouring snapshots turn.

A straight path moves every coupled pair of a gap along its chord; with three or more time points the
data also say which way a population turns. :class:`Curved` (registered as ``"curved"``) keeps each pair's
ends and adds a smooth *bend*: a cubic Hermite correction that vanishes at both ends of the gap and makes
the pair leave its source cell, and reach its target cell, along the tangent of the population's
trajectory there.

The tangents come from every plan of the path at once (:class:`CurveField`, built when the path binds
its families: :meth:`Curved.bind`):

1. **chained displacements**: for each cell ``i`` of snapshot ``k``, the conditional mean of its partners
   on snapshot ``k + 1`` (and ``k - 1``) under the plans, minus ``x_i`` (the ``"spline"`` method chains
   further: ``P_k P_{k+1} ... P_{m-1} X_m``);
2. **smoothing**: each displacement is averaged over the ``neighbours`` nearest cells of ``i`` in its own
   snapshot. Exact plans between equal-sized samples are permutations, so a conditional mean is one
   partner and carries all of its matching error; the average over neighbouring cells removes the part of
   it that is independent between cells, while a smooth flow is kept. The smoothed chords are ``F_i``
   (forward, over the gap's length) and ``G_i`` (backward);
3. **tangent** (``"arc"``, the default): at an inner snapshot the three-point derivative of the two chords
   (the parabola through predecessor, cell and successor), lengthened from chord to arc by
   ``phi / sin(phi)``, ``phi`` the angle between ``G_i`` and ``F_i`` (exact on a circle travelled at
   constant speed; 1 on a line). At the first and last snapshot the neighbouring snapshot's tangent,
   carried over by the plan's conditional mean, is reflected about the end gap's chord (the chord of a
   circular arc bisects its end tangents), with the speed of an arc whose speed changes linearly.
   Polynomial tangents (``"spline"``) fall short on arcs: a polynomial through points on a circle
   under-estimates the speed at the middle knots and misses the direction at the ends.

A pair ``(i, j)`` of gap ``k`` (length ``h``, fraction ``s`` of the gap) then moves along

    x(s) = x_lin(s) + h [h10(s) (T_i - F_i) + h11(s) (T_j - G_j)],

with ``x_lin`` the straight family's point (or its moment-corrected point, :mod:`scam.core.noise`),
``h10 = s^3 - 2 s^2 + s`` and ``h11 = s^3 - s^2`` the Hermite tangent basis; its velocity is the exact
derivative. At the source the pair moves at its chord plus ``T_i - F_i``, at the target at its chord
plus ``T_j - G_j``: the bend adds the *turning* of the population (the tangent's departure from the
smoothed chord) and leaves the pair's own matching error straight, as the straight path has it, so the
moment correction still applies to it. Where the population moves at constant velocity ``T = F = G`` and
the bend is zero: a straight truth stays straight up to the smoothing's noise. Averaged over the cells at
``t_k`` both gaps meeting there move at ``T``: the velocity the path asks of the field is continuous at the
observed days (the pair's chord differs between gaps, as on a straight path; the conditional mean does
not).

The tangent at inner snapshots is a central (symmetric) construction, which cancels the contraction of
conditional means towards the population's mean; the first and last snapshots are one-sided.
Destroyed or created cells (unbalanced plans) stay in place with no bend; cells without a transported
partner take their neighbours' displacements.

When to bend (the default ``path="support"`` and ``"auto"`` ask it): :func:`curved_choice` holds out each
inner training time point (at most :data:`MAX_VALIDATED`), builds the curves on the remaining ones and
predicts it from its two neighbours by the curved and the straight path (no training, same pairs), as
:func:`scam.core.path_choice.choose_path` does for one-gap candidates; every gap bends only if the curved
path's mean held-out W1 is below the straight path's by more than twice its standard error; a gap that the
support check routes through the data bends only where the curved path also beats the graph path there. Fewer than four
time points leave nothing to validate a curve on (a held-out middle point leaves two): the path stays
straight.

Units: the path's internal units (snapshots standardised, times in ``[0, 1]``); tangents and chords are
displacements per internal time unit.

About 420 lines in one module: the tangent field, the family and the rule that validates it share the
construction of the curves.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from .interpolants import Interpolant, Pairs, PathPoints, _as_tensor, on_segment, register_interpolant
from .path_choice import (
    _SAMPLES,
    MAX_VALIDATED,
    VALIDATION_CELLS,
    VALIDATION_REPEATS,
    PathChoice,
    _w1,
    held_out_ratios,
)

NEIGHBOURS = 16  # cells of the same snapshot each chained displacement is averaged over
REACH = 2  # method="spline" only: snapshots either side of a cell that its tangent's spline runs through


def _conditionals(plan, n0: int, n1: int):
    """Forward (``n0 x n1``) and backward (``n1 x n0``) conditional matrices of a plan's transported
    pairs (row-stochastic where a cell has a transported partner, zero rows elsewhere)."""
    import scipy.sparse as sp

    if plan.independent is not None:
        raise ValueError("Curved paths need explicit pairs; the independent coupling has none.")
    p = np.diff(plan.cdf, prepend=0.0)
    keep = p > 0
    if plan.kind is not None:
        keep &= plan.kind == 0
    src, tgt, p = plan.src[keep], plan.tgt[keep], p[keep]
    joint = sp.csr_matrix((p, (src, tgt)), shape=(n0, n1))
    row = np.asarray(joint.sum(axis=1)).ravel()
    col = np.asarray(joint.sum(axis=0)).ravel()
    fwd = sp.diags(np.where(row > 0, 1 / np.where(row > 0, row, 1), 0.0)) @ joint
    bwd = sp.diags(np.where(col > 0, 1 / np.where(col > 0, col, 1), 0.0)) @ joint.T.tocsr()
    return fwd.tocsr(), bwd.tocsr()


def _smooth(x: np.ndarray, values: np.ndarray, valid: np.ndarray, neighbours: int) -> np.ndarray:
    """Average of ``values`` over the ``neighbours`` nearest cells of each cell of ``x`` (valid ones only;
    a cell with no valid neighbour gets the mean of all valid cells)."""
    from scipy.spatial import cKDTree

    n = len(x)
    kk = min(neighbours, n)
    if kk <= 1:
        out = values.copy()
    else:
        _, nn = cKDTree(x).query(x, k=kk)
        w = valid[nn].astype(np.float64)  # (n, kk)
        vals = np.where(valid[:, None], values, 0.0)
        num = np.einsum("nk,nkd->nd", w, vals[nn])
        den = w.sum(axis=1)
        out = num / np.maximum(den, 1)[:, None]
        missing = den == 0
        if missing.any():
            out[missing] = vals[valid].mean(axis=0) if valid.any() else 0.0
    return out


def _chained(xs: list, cond: list, k: int, reach: int, neighbours: int) -> dict:
    """Smoothed chained displacements of the cells of snapshot ``k`` to the snapshots within ``reach``
    (``{m: (n_k, d)}``, ``m = k`` included as zeros)."""
    x = xs[k]
    n_snap = len(xs)
    disp = {k: np.zeros_like(x)}
    for direction, stop in ((1, min(n_snap - 1, k + reach)), (-1, max(0, k - reach))):
        op = None
        for m in range(k + direction, stop + direction, direction):
            step = cond[m - 1][0] if direction == 1 else cond[m][1]
            op = step if op is None else op @ step  # conditional of snapshot m given a cell of snapshot k
            y, valid = _carry(op, xs[m])
            disp[m] = _smooth(x, y - x, valid, neighbours)
    return disp


def _carry(op, values: np.ndarray):
    """Conditional means ``op @ values`` (rows renormalised) and which rows have any mass."""
    mass = np.asarray(op.sum(axis=1)).ravel()
    valid = mass > 1e-12
    return (op @ values) / np.where(valid, mass, 1.0)[:, None], valid


def _spline_tangent(disp: dict, times: np.ndarray, k: int) -> np.ndarray:
    from scipy.interpolate import CubicSpline

    knots = sorted(disp)
    t = times[knots]
    vals = np.stack([disp[m] for m in knots])
    if len(knots) == 2:
        return (vals[1] - vals[0]) / (t[1] - t[0])
    return CubicSpline(t, vals, axis=0, bc_type="not-a-knot")(times[k], 1)


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    cos = np.einsum("nd,nd->n", a, b) / np.maximum(na * nb, 1e-300)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def _sinc_inv(phi: np.ndarray) -> np.ndarray:
    """``phi / sin(phi)`` (1 at 0), capped at pi / 2 (a half turn)."""
    phi = np.minimum(phi, np.pi / 2)
    return np.where(phi > 1e-6, phi / np.maximum(np.sin(phi), 1e-300), 1.0)


def _arc_tangent(back: np.ndarray, fwd: np.ndarray, h_back: float, h_fwd: float) -> np.ndarray:
    """Tangent at an inner snapshot: the three-point derivative of the chords (a parabola through the
    predecessor, the cell and the successor), lengthened from chord to arc by ``phi / sin(phi)``, ``phi``
    the angle between the chords (the turning; exact on a circle at constant speed, 1 on a line)."""
    poly = (h_back * fwd + h_fwd * back) / (h_back + h_fwd)
    return poly * _sinc_inv(_angle(back, fwd))[:, None]


def _end_tangent(chord: np.ndarray, other: np.ndarray, h: float) -> np.ndarray:
    """Tangent at the far end of ``chord`` (a displacement over length ``h``) from the tangent ``other`` at
    its near end: ``other`` reflected about the chord (the chord of a circular arc bisects its end tangents),
    with speed ``2 L / h - |other|`` (a speed changing linearly along the arc of length ``L``, the chord
    lengthened by ``alpha / sin(alpha)``, ``alpha`` the angle between chord and ``other``), at least 0."""
    n_chord = np.linalg.norm(chord, axis=1, keepdims=True)
    unit = chord / np.maximum(n_chord, 1e-300)
    n_other = np.linalg.norm(other, axis=1, keepdims=True)
    along = np.einsum("nd,nd->n", other, unit)[:, None]
    reflected = 2 * along * unit - other
    alpha = _angle(chord, other)
    arc = n_chord[:, 0] * _sinc_inv(alpha)
    speed = np.maximum(2 * arc / h - n_other[:, 0], 0.0)
    return reflected / np.maximum(n_other, 1e-300) * speed[:, None]


@dataclass
class CurveField:
    """Per snapshot and cell: the trajectory's tangent and the smoothed chords (see module docstring).

    Attributes
    ----------
    tangent
        ``T``, one ``(n_k, d)`` array per snapshot (internal displacement per internal time).
    forward
        ``F``, smoothed chord to the next snapshot over the gap's length (None for the last snapshot).
    backward
        ``G``, smoothed chord from the previous snapshot (None for the first).
    neighbours, reach
        The settings it was built with.
    """

    tangent: list
    forward: list
    backward: list
    neighbours: int = NEIGHBOURS
    reach: int = REACH
    _tensors: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_plans(cls, xs: list, times, plans: list, *, neighbours: int = NEIGHBOURS,
                   method: str = "arc", reach: int = REACH) -> CurveField:
        """Build the field from a path's snapshots and its plans.

        Parameters
        ----------
        xs
            Snapshots (internal units), ``(n_k, d)`` arrays, sorted by time.
        times
            Their (internal) times.
        plans
            One :class:`~scam.core.couplings.SegmentPlan` per gap, with explicit pairs.
        neighbours
            Cells of the same snapshot each chained displacement is averaged over (1: none).
        method
            ``"arc"`` (local arcs, module docstring) or ``"spline"`` (a not-a-knot cubic spline through the
            chained displacements of ``reach`` snapshots either side, differentiated at the cell's time).
        reach
            ``"spline"`` only: snapshots either side the spline runs through (>= 1).

        Returns
        -------
        CurveField
        """
        if reach < 1 or neighbours < 1:
            raise ValueError(f"reach and neighbours must be >= 1, got {reach} and {neighbours}.")
        if method not in ("arc", "spline"):
            raise ValueError(f"Unknown tangent method {method!r}; choose 'arc' or 'spline'.")
        xs = [np.asarray(x, dtype=np.float64) for x in xs]
        times = np.asarray(times, dtype=np.float64)
        n_snap = len(xs)
        if len(plans) != n_snap - 1:
            raise ValueError(f"{len(plans)} plans for {n_snap} snapshots.")
        if n_snap < 2:
            raise ValueError("A curve needs two snapshots or more.")
        cond = [_conditionals(p, len(xs[k]), len(xs[k + 1])) for k, p in enumerate(plans)]
        reach = reach if method == "spline" else 1
        disp = [_chained(xs, cond, k, reach, neighbours) for k in range(n_snap)]
        forward = [disp[k][k + 1] / (times[k + 1] - times[k]) if k + 1 < n_snap else None for k in range(n_snap)]
        backward = [-disp[k][k - 1] / (times[k] - times[k - 1]) if k > 0 else None for k in range(n_snap)]
        if method == "spline" or n_snap == 2:
            tangent = [_spline_tangent(disp[k], times, k) for k in range(n_snap)]
        else:
            tangent = [None] * n_snap
            for k in range(1, n_snap - 1):
                tangent[k] = _arc_tangent(backward[k], forward[k], times[k] - times[k - 1], times[k + 1] - times[k])
            # ends: the neighbour's tangent, carried over by the plan's conditional mean and reflected about the
            # end gap's chord (a circular arc whose speed changes linearly along it)
            succ = _smooth(xs[0], *_carry(cond[0][0], tangent[1]), neighbours)
            tangent[0] = _end_tangent(forward[0] * (times[1] - times[0]), succ, times[1] - times[0])
            pred = _smooth(xs[-1], *_carry(cond[-1][1], tangent[-2]), neighbours)
            tangent[-1] = _end_tangent(backward[-1] * (times[-1] - times[-2]), pred, times[-1] - times[-2])
        return cls(tangent, forward, backward, neighbours, reach)

    def turning(self, k: int):
        """The departures of gap ``k``'s end tangents from its smoothed chords, as torch-ready arrays:
        ``T - F`` at its source cells and ``T - G`` at its target cells."""
        if k not in self._tensors:
            self._tensors[k] = ((self.tangent[k] - self.forward[k]).astype(np.float32),
                                (self.tangent[k + 1] - self.backward[k + 1]).astype(np.float32))
        return self._tensors[k]


def _hermite_bend(a0, a1, s: np.ndarray, speed: np.ndarray, du: float, moving: np.ndarray):
    """Bend ``du (h10 a0 + h11 a1)`` at fractions ``s`` and its derivative in internal time."""
    s_t = _as_tensor(s, a0)[:, None]
    h10, h11 = s_t**3 - 2 * s_t**2 + s_t, s_t**3 - s_t**2
    d10, d11 = 3 * s_t**2 - 4 * s_t + 1, 3 * s_t**2 - 2 * s_t
    on = _as_tensor(moving.astype(np.float32), a0)[:, None]
    bend = on * du * (h10 * a0 + h11 * a1)
    dbend = on * du * _as_tensor(speed, a0)[:, None] * (d10 * a0 + d11 * a1)
    return bend, dbend


@register_interpolant
class Curved(Interpolant):
    """Pairs on their chord plus a cubic Hermite bend towards the trajectory's tangents at both ends
    (module docstring); needs the whole path (:meth:`bind`) before it samples.

    Parameters
    ----------
    curves
        The path's :class:`CurveField` (None until bound).
    gap
        Which gap this interpolant serves.
    correction
        Optional :class:`~scam.core.noise.MomentCorrection` of the gap: the straight part of the point is
        then the corrected one, the bend is added to it.
    """

    name = "curved"

    def __init__(self, curves: CurveField | None = None, gap: int | None = None, correction=None):
        self.curves, self.gap, self.correction = curves, gap, correction

    def bind(self, xs: list, times, plans: list, gap: int, cache: dict | None = None) -> Curved:
        """This family for gap ``gap`` of a path with snapshots ``xs`` (internal units), internal
        ``times`` and ``plans``; the :class:`CurveField` is built once per path (kept in ``cache``)."""
        cache = {} if cache is None else cache
        if "curved" not in cache:
            cache["curved"] = CurveField.from_plans(xs, times, plans)
        out = copy.copy(self)
        out.curves, out.gap = cache["curved"], int(gap)
        return out

    def corrected(self, correction) -> Curved:
        """The same family whose straight part is moment-corrected (:mod:`scam.core.noise`)."""
        out = copy.copy(self)
        out.correction = correction
        return out

    def sample(self, pairs: Pairs, rng: np.random.Generator) -> PathPoints:
        import torch

        if self.curves is None:
            raise RuntimeError("A curved interpolant must be bound to its path (Curved.bind) before sampling.")
        start, end = pairs.ends()
        speed = pairs.dpos / pairs.du
        if self.correction is None:
            out = on_segment(start, end, pairs.pos, speed)
        else:
            x, vt = self.correction.apply(start, end, pairs.pos)
            out = PathPoints(x, _as_tensor(speed, x)[:, None] * vt, start, end, pairs.pos, speed)
        t0, t1 = self.curves.turning(self.gap)
        device = start.device
        a0 = torch.as_tensor(t0, device=device)[torch.as_tensor(pairs.src, device=device)]
        a1 = torch.as_tensor(t1, device=device)[torch.as_tensor(pairs.tgt, device=device)]
        bend, dbend = _hermite_bend(a0, a1, pairs.pos, speed, pairs.du, pairs.dpos > 0)
        out.x = out.x + bend
        out.v = out.v + dbend
        return out

    def __repr__(self) -> str:
        state = "unbound" if self.curves is None else f"gap {self.gap}"
        return f"Curved({state}{', corrected' if self.correction is not None else ''})"


def held_out_scores(xs: list, times, k: int, rng: np.random.Generator, *, cells: int | None = VALIDATION_CELLS,
                    samples: int = _SAMPLES, neighbours: int = NEIGHBOURS, reach: int = REACH,
                    method: str = "arc") -> tuple[float, float]:
    """W1 of the straight and the curved path (no training, same exact-OT pairs) against snapshot ``k``,
    predicted from the two snapshots beside it, the curves built on the snapshots within two of ``k``
    without it (``k`` an inner snapshot; subsamples of ``cells`` per snapshot, None: all).

    Returns
    -------
    (straight W1, curved W1)
    """
    from .paths import PathConfig, SnapshotPath

    times = np.asarray(times, dtype=np.float64)
    window = [m for m in range(max(0, k - 2), min(len(xs) - 1, k + 2) + 1)]  # all the arcs next to k use
    sub = {m: (np.asarray(xs[m], np.float64) if cells is None or len(xs[m]) <= cells
               else np.asarray(xs[m], np.float64)[rng.choice(len(xs[m]), cells, replace=False)]) for m in window}
    keep = [m for m in window if m != k]
    rest, rest_t = [sub[m] for m in keep], times[keep]
    config = PathConfig(coupling="ot", noise_correction=False)
    n_gaps = len(rest) - 1
    path = SnapshotPath(rest, rest_t, np.ones(len(rest)), config,
                        choice=PathChoice.every_gap("straight", n_gaps, "validation"), rng=rng)
    # the path's curves, built once with these settings: the curved families bind to them
    path._bind_cache["curved"] = CurveField.from_plans(rest, rest_t, path.plans, neighbours=neighbours, reach=reach,
                                                       method=method)
    u = np.full(samples, times[k])
    straight_state = rng.bit_generator.state
    xs_s, _, _, _ = path.sample_path(u, rng)
    curved = path.with_choice(PathChoice.every_gap("curved", n_gaps, "validation"))
    rng.bit_generator.state = straight_state  # the same pairs for both families
    xs_c, _, _, _ = curved.sample_path(u, rng)
    held = sub[k]
    return _w1(xs_s.cpu().numpy().astype(np.float64), held), _w1(xs_c.cpu().numpy().astype(np.float64), held)


def curved_choice(xs: list, times, rng: np.random.Generator, *, base: list | None = None):
    """Whether the gaps bend: validation on held-out inner training time points (module docstring).

    Parameters
    ----------
    xs
        Snapshots (internal units), sorted by time.
    times
        Their times.
    rng
        Random generator (subsamples, couplings).
    base
        The family each gap has otherwise (default straight everywhere). Straight gaps bend where the
        validation says so; a gap the support check routed through the data (``"graph"``) bends only if the
        curved path's held-out W1 is also below the graph path's on the same inner time points by twice the
        standard error of the difference (a chord that leaves the data may only be cutting across the turn).

    Returns
    -------
    PathChoice
        ``gaps``: ``"curved"`` where the path bends, the base family elsewhere; ``ratio`` the curved path's
        held-out W1 relative to the straight path's, one row per draw; ``reason`` says why.
    """
    times = np.asarray(times, dtype=np.float64)
    n_gaps = len(xs) - 1
    base = list(base) if base is not None else ["straight"] * n_gaps
    if len(xs) < 4:
        return PathChoice("straight" if "graph" not in base else "graph", 0.0,
                          f"{len(xs)} time points: holding out an inner one leaves too few to validate a curve on; "
                          "no bending", gaps=base)
    inner = np.arange(1, len(xs) - 1)
    if len(inner) > MAX_VALIDATED:
        inner = inner[np.round(np.linspace(0, len(inner) - 1, MAX_VALIDATED)).astype(int)]
    rows = []
    for k in inner:
        for _ in range(VALIDATION_REPEATS):
            s, c = held_out_scores(xs, times, int(k), rng)
            rows.append([1.0, c / s])
    ratio = np.asarray(rows)
    mean, se = ratio[:, 1].mean(), ratio[:, 1].std(ddof=1) / np.sqrt(len(ratio))
    evidence = f"held-out inner time points: curved W1 {mean:.3f}x the straight path's (+- {se:.3f})"
    bend = mean + 2 * se < 1.0
    reason = evidence + ("; straight gaps bend" if bend else "; not below 1 by 2 standard errors: no bending")
    routed = bend and "graph" in base
    if routed:  # the support check routed a chord that leaves the data; the turn may be why: the two compete
        graph = held_out_ratios(xs, times, inner, ["straight", "graph"], rng)[:, 1]
        g_mean, g_se = graph.mean(), graph.std(ddof=1) / np.sqrt(len(graph))
        routed = mean - g_mean + 2 * np.hypot(se, g_se) < 0
        reason += (f"; graph routes on the same held-out points {g_mean:.3f}x (+- {g_se:.3f}): routed gaps "
                   + ("bend instead" if routed else "keep their routes"))
    gaps = [("curved" if (bend and g == "straight") or (routed and g == "graph") else g) for g in base]
    path = "curved" if "curved" in gaps else ("graph" if "graph" in gaps else "straight")
    return PathChoice(path, 0.0, reason, held_out=[float(times[k]) for k in inner],
                      candidates=["straight", "curved"], ratio=ratio, gaps=gaps)
