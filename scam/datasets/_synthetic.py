"""Synthetic time courses with closed-form ground truth (used by tests, benchmarks and tutorials).

Each generator returns a :class:`SyntheticTimeCourse`: snapshots, times, relative masses, and the true
velocity / growth fields and marginals, so a fitted model can be checked against the truth.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import sqrtm

from .._utils import make_rng


@dataclass
class SyntheticTimeCourse:
    """Snapshots with known dynamics.

    Attributes
    ----------
    xs
        One ``(n, d)`` array per time point.
    times
        Time of each snapshot.
    masses
        Relative population size at each time (1 at the first time).
    velocity
        ``velocity(x, t) -> (n, d)``: the true velocity field (drift).
    growth_rate
        ``growth_rate(x, t) -> (n,)``: the true growth rate (zeros when mass is conserved).
    marginal
        ``marginal(t) -> (mean, cov)`` for Gaussian marginals, else ``None``.
    sigma
        Diffusion coefficient of the true process.
    flow
        ``flow(x, t) -> (n, d)``: the velocity of the deterministic flow with the same marginals (the
        probability-flow ODE, ``drift - sigma^2/2 grad log p_t``): what a model without noise should
        learn. Default: ``velocity`` (noise-free processes).
    """

    xs: list[np.ndarray]
    times: np.ndarray
    masses: np.ndarray
    velocity: Callable
    growth_rate: Callable
    marginal: Callable | None = None
    sigma: float = 0.0
    info: dict = field(default_factory=dict)
    flow: Callable | None = None

    def __post_init__(self):
        if self.flow is None:
            if self.sigma > 0:
                raise ValueError("A noisy time course needs its probability-flow velocity (`flow`).")
            self.flow = self.velocity

    def proportional_counts(self, rng=0) -> SyntheticTimeCourse:
        """The same time course with cell numbers proportional to the population size.

        Snapshot ``k`` keeps ``n_k M_k / max(M)`` of its cells (drawn without replacement), as a real
        experiment that sequences a fixed share of a growing population would; per-snapshot arrays of
        ``info`` (``branch``, ``component``) are subsampled alike. ``growth='counts'`` is then valid.

        Parameters
        ----------
        rng
            Seed or Generator.

        Returns
        -------
        SyntheticTimeCourse
        """
        gen = make_rng(rng)
        share = np.asarray(self.masses, float) / np.max(self.masses)
        keep = [np.sort(gen.choice(len(x), int(round(m * len(x))), replace=False)) for x, m in zip(self.xs, share)]
        info = dict(self.info)
        for name, value in self.info.items():
            if isinstance(value, list) and len(value) == len(self.xs):
                info[name] = [np.asarray(v)[k] for v, k in zip(value, keep)]
        return dataclasses.replace(self, xs=[x[k] for x, k in zip(self.xs, keep)], info=info)

    def sample_marginal(self, t: float, n: int, rng=0) -> np.ndarray:
        """Draw ``n`` cells from the true (normalised) marginal at time ``t`` (Gaussian cases)."""
        if self.marginal is None:
            raise ValueError("This time course has no closed-form marginal.")
        mean, cov = self.marginal(t)
        return make_rng(rng).multivariate_normal(mean, cov, size=n)


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    return np.real(sqrtm(a))


def gaussian_geodesic(
    n_cells: int = 1000,
    *,
    times=(0.0, 1.0),
    mean0=(0.0, 0.0),
    cov0=((1.0, 0.3), (0.3, 0.5)),
    mean1=(3.0, 1.0),
    cov1=((0.4, -0.2), (-0.2, 1.5)),
    rng=0,
) -> SyntheticTimeCourse:
    """The W2 geodesic between two Gaussians, observed at ``times`` (first = 0, last = 1 of the geodesic).

    The velocity of the McCann interpolation is linear:
    ``v_t(y) = (A - I) ((1 - t) I + t A)^{-1} (y - m_t) + (m_1 - m_0)`` with the OT map ``A``.

    Parameters
    ----------
    n_cells
        Cells per snapshot.
    times
        Observation times in ``[0, 1]`` (0 and 1 are the endpoints of the geodesic).
    mean0, cov0, mean1, cov1
        The two Gaussians.
    rng
        Seed or Generator.

    Returns
    -------
    SyntheticTimeCourse
    """
    rng = make_rng(rng)
    m0, m1 = np.asarray(mean0, float), np.asarray(mean1, float)
    s0, s1 = np.asarray(cov0, float), np.asarray(cov1, float)
    r0 = _psd_sqrt(s0)
    r0i = np.linalg.inv(r0)
    a = r0i @ _psd_sqrt(r0 @ s1 @ r0) @ r0i  # OT map x -> m1 + A (x - m0)
    eye = np.eye(len(m0))

    def marginal(t):
        mt = (1 - t) * m0 + t * m1
        bt = (1 - t) * eye + t * a
        return mt, bt @ s0 @ bt.T

    def velocity(x, t):
        t = np.broadcast_to(np.asarray(t, float), (len(x),))
        out = np.empty_like(np.asarray(x, float))
        for tv in np.unique(t):
            sel = t == tv
            mt = (1 - tv) * m0 + tv * m1
            bt = (1 - tv) * eye + tv * a
            out[sel] = (x[sel] - mt) @ np.linalg.solve(bt, (a - eye)).T + (m1 - m0)
        return out

    times = np.asarray(times, float)
    xs = []
    for t in times:
        mean, cov = marginal(t)
        xs.append(rng.multivariate_normal(mean, cov, size=n_cells))
    return SyntheticTimeCourse(
        xs=xs, times=times, masses=np.ones(len(times)), velocity=velocity,
        growth_rate=lambda x, t: np.zeros(len(x)), marginal=marginal, info={"ot_map": a},
    )


def asynchronous_transition(
    n_cells: int = 1000,
    *,
    times=(0.0, 0.5, 1.0),
    shift=(3.0, 0.0),
    spread: float = 1.5,
    rng=0,
) -> SyntheticTimeCourse:
    """Cells making the same move, each at its own pace (the asynchronous path of :mod:`scam.core.pace`).

    Every cell starts at ``x_0 ~ N(0, I)`` and ends at ``x_0 + shift``; at time ``t`` in ``[0, 1]`` it
    is at ``x_0 + u shift`` with ``u = sigmoid(logit(t) + spread z)`` and ``z ~ N(0, 1)`` its own
    (truncated at +-3, as in :func:`scam.core.pace.pace_warp`). The snapshots at the ends are the
    two Gaussians, the ones in between are not the W2 geodesic's (``spread = 0``): at one place, cells
    move at different speeds, so there is no velocity *field* to compare with (``velocity`` raises);
    the truth is the marginals and ``info['pace_spread']``.

    Parameters
    ----------
    n_cells
        Cells per snapshot (each snapshot is a fresh sample: cells are measured once).
    times
        Observation times in ``[0, 1]``.
    shift
        The common displacement (its length sets the dimension with the start ``N(0, I)``).
    spread
        Standard deviation of the cells' log-odds pace.
    rng
        Seed or Generator.

    Returns
    -------
    SyntheticTimeCourse
    """
    rng = make_rng(rng)
    shift = np.asarray(shift, float)
    times = np.asarray(times, float)
    if np.any(times < 0) or np.any(times > 1):
        raise ValueError(f"`times` must lie in [0, 1] (the start and the end of the move), got {times.tolist()}.")
    xs = []
    for t in times:
        x0 = rng.standard_normal((n_cells, len(shift)))
        p = np.clip(t, 1e-9, 1 - 1e-9)
        z = np.clip(rng.standard_normal(n_cells), -3.0, 3.0)
        u = 1.0 / (1.0 + np.exp(-(np.log(p / (1 - p)) + spread * z)))
        xs.append(x0 + u[:, None] * shift)

    def velocity(x, t):
        raise NotImplementedError("Cells of the asynchronous transition move at different speeds at one place: "
                                  "there is no velocity field; compare marginals.")

    return SyntheticTimeCourse(
        xs=xs, times=times, masses=np.ones(len(times)), velocity=velocity,
        growth_rate=lambda x, t: np.zeros(len(x)), info={"pace_spread": float(spread), "shift": shift},
    )


def arc_transport(
    n_cells: int = 1000,
    *,
    times=(0.0, 0.5, 1.0),
    radius: float = 3.0,
    width: float = 0.1,
    turn: float = np.pi / 2,
    angle_sd: float = 0.3,
    rng=0,
) -> SyntheticTimeCourse:
    """Cells travelling along an arc of a ring: the straight line between the ends cuts the corner.

    At time ``t`` a cell sits at angle ``pi / 2 + turn (t - 1/2) + a`` (``a ~ N(0, angle_sd^2)``) on
    a ring of radius ``radius + r`` (``r ~ N(0, width^2)``): the population turns about the origin at
    angular speed ``turn`` over the top of the ring, from the right (``t = 0``) to the left
    (``t = 1``); the two ends overlap on the arc between them, and a straight line between coupled
    cells leaves the ring. ``velocity`` is the cells' own (the rotation ``turn (-y, x)``, not a
    gradient field: a potential flow reproduces the marginals with another field, so compare
    marginals, ``info['marginal_sample']``).

    Parameters
    ----------
    n_cells
        Cells per snapshot.
    times
        Observation times in ``[0, 1]``.
    radius, width, turn, angle_sd
        The ring's radius and thickness, the angle turned from ``t = 0`` to ``t = 1`` and the spread
        of the cells along the ring.
    rng
        Seed or Generator.

    Returns
    -------
    SyntheticTimeCourse
        ``info['marginal_sample'](t, n, rng)`` draws fresh cells at any time.
    """
    rng = make_rng(rng)
    times = np.asarray(times, float)

    def sample(t, n, gen):
        gen = make_rng(gen)
        angle = np.pi / 2 + turn * (t - 0.5) + angle_sd * gen.standard_normal(n)
        r = radius + width * gen.standard_normal(n)
        return np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)

    return _transport_course(
        sample, times, n_cells, rng,
        lambda x, t: turn * np.stack([-np.asarray(x)[:, 1], np.asarray(x)[:, 0]], axis=1),
    )


def rotating_blob(
    n_cells: int = 1000,
    *,
    times=(0.0, 1.0, 2.0, 3.0, 4.0),
    degrees: float = 45.0,
    radius: float = 2.0,
    blob: float = 0.5,
    dim: int = 2,
    noise: float = 0.5,
    rng=0,
) -> SyntheticTimeCourse:
    """A Gaussian blob whose centre travels round a circle: dynamics that turn, seen in several snapshots.

    The centre is at ``radius (cos(w t), sin(w t))``, ``w`` = ``degrees`` per time unit (in radians); the cells
    are the centre plus ``N(0, blob^2 I)`` in the first two dimensions and, in ``dim > 2`` dimensions,
    ``N(0, noise^2)`` in the others (stationary: nothing moves there). Cells turning rigidly about the origin
    and cells translating with the centre give the same marginals (an isotropic blob's spin about its own
    centre changes no marginal), so ``velocity`` is the gradient field that Action Matching can learn, the
    centre's velocity ``w radius (-sin(w t), cos(w t))`` (0 in the noise dimensions). Straight lines between
    consecutive snapshots cut the circle's chords.

    Parameters
    ----------
    n_cells
        Cells per snapshot.
    times
        Observation times (time units).
    degrees
        Angle the centre turns per time unit, in degrees.
    radius, blob
        The circle's radius and the blob's standard deviation.
    dim
        Dimensions (>= 2).
    noise
        Standard deviation of the stationary dimensions.
    rng
        Seed or Generator.

    Returns
    -------
    SyntheticTimeCourse
        Gaussian marginals (``marginal(t)``); ``info['marginal_sample'](t, n, rng)`` draws fresh cells.
    """
    if dim < 2:
        raise ValueError(f"`dim` must be >= 2 for a rotation, got {dim}.")
    rng = make_rng(rng)
    times = np.asarray(times, float)
    omega = np.deg2rad(degrees)

    def centre(t):
        return radius * np.array([np.cos(omega * t), np.sin(omega * t)])

    def marginal(t):
        mean = np.zeros(dim)
        mean[:2] = centre(t)
        return mean, np.diag([blob**2, blob**2] + [noise**2] * (dim - 2))

    def sample(t, n, gen):
        mean, cov = marginal(t)
        return mean + make_rng(gen).standard_normal((n, dim)) * np.sqrt(np.diag(cov))

    def velocity(x, t):
        v = np.zeros((len(x), dim))
        c = centre(t)
        v[:, 0], v[:, 1] = -omega * c[1], omega * c[0]
        return v

    return _transport_course(sample, times, n_cells, rng, velocity, marginal=marginal, degrees=float(degrees),
                             radius=float(radius))


def cycling_ring(
    n_cells: int = 1000,
    *,
    times=(0.0, 1.0, 2.0, 3.0, 4.0),
    degrees: float = 45.0,
    radius: float = 2.0,
    width: float = 0.2,
    kappa: float = 0.0,
    rng=0,
) -> SyntheticTimeCourse:
    """Cycling cells: a population spread round a ring, every cell turning about its centre.

    A cell's phase advances by ``degrees`` per time unit; phases are von Mises distributed about ``w t``
    with concentration ``kappa`` (``0``, the default: uniform, every phase equally occupied as in a
    steadily cycling population) and the cells lie at distance ``radius + N(0, width^2)`` from the origin.
    ``velocity`` is the cells' own motion, the rigid rotation ``w (-y, x)``.

    Snapshots alone do not show this motion. With ``kappa = 0`` every snapshot has the same distribution,
    and the dynamics of least action that reproduce them are no motion at all; for ``kappa > 0`` a bump of
    density turns, and the velocity field of least action (a gradient field, whose circulation round the
    ring is zero) moves a cell at phase ``theta`` with angular speed ``w (1 - exp(-kappa cos(theta - w t))
    / I0(kappa))``, which misses the rigid rotation by ``1 / I0(kappa)`` in root mean square over the
    density (relative L2; 1 for the uniform ring; ``I0`` the modified Bessel function). ``info['gradient_velocity']`` is
    that field (thin-ring approximation: angular speed times the cell's distance from the origin).

    Parameters
    ----------
    n_cells
        Cells per snapshot.
    times
        Observation times (time units).
    degrees
        Angle a cell turns per time unit, in degrees.
    radius, width
        The ring's radius and thickness.
    kappa
        Concentration of the phases about the turning bump (0: uniform).
    rng
        Seed or Generator.

    Returns
    -------
    SyntheticTimeCourse
        ``info['marginal_sample'](t, n, rng)`` draws fresh cells, ``info['gradient_velocity'](x, t)`` the
        field of least action.
    """
    if kappa < 0 or width < 0 or radius <= 0:
        raise ValueError(f"`kappa` and `width` must be >= 0 and `radius` > 0, got {kappa}, {width}, {radius}.")
    rng = make_rng(rng)
    times = np.asarray(times, float)
    omega = np.deg2rad(degrees)

    def sample(t, n, gen):
        gen = make_rng(gen)
        phase = omega * t + (gen.vonmises(0.0, kappa, n) if kappa > 0 else gen.uniform(-np.pi, np.pi, n))
        r = radius + width * gen.standard_normal(n)
        return np.stack([r * np.cos(phase), r * np.sin(phase)], axis=1)

    def velocity(x, t):
        x = np.asarray(x, float)
        return omega * np.stack([-x[:, 1], x[:, 0]], axis=1)

    def gradient_velocity(x, t):
        x = np.asarray(x, float)
        theta = np.arctan2(x[:, 1], x[:, 0])
        speed = omega * (1.0 - np.exp(-kappa * np.cos(theta - omega * t)) / np.i0(kappa))
        return speed[:, None] * np.stack([-x[:, 1], x[:, 0]], axis=1)

    return _transport_course(sample, times, n_cells, rng, velocity, gradient_velocity=gradient_velocity,
                             degrees=float(degrees), radius=float(radius), kappa=float(kappa))


def _transport_course(sample, times, n_cells: int, rng, velocity, *, marginal=None, **info) -> SyntheticTimeCourse:
    """A course in which nothing grows, its snapshots drawn in time order from ``sample(t, n, rng)`` (kept as
    ``info['marginal_sample']`` for fresh cells; ``info`` adds the generator's parameters)."""
    return SyntheticTimeCourse(
        xs=[sample(t, n_cells, rng) for t in times], times=times, masses=np.ones(len(times)), velocity=velocity,
        growth_rate=lambda x, t: np.zeros(len(x)), marginal=marginal, info={"marginal_sample": sample, **info},
    )


def ornstein_uhlenbeck(
    n_cells: int = 1000,
    *,
    times=(0.0, 1.0, 2.0),
    dim: int = 2,
    theta: float = 1.0,
    sigma: float = 1.0,
    mean0: float = 0.0,
    std0: float = 0.1,
    rng=0,
) -> SyntheticTimeCourse:
    """``dX = -theta X dt + sigma dW`` from ``N(mean0, std0^2 I)``; Gaussian marginals in closed form.

    Parameters
    ----------
    n_cells
        Cells per snapshot.
    times
        Observation times (>= 0).
    dim
        Dimension.
    theta, sigma
        Mean reversion and diffusion.
    mean0, std0
        Initial mean (every coordinate) and standard deviation.
    rng
        Seed or Generator.

    Returns
    -------
    SyntheticTimeCourse
        ``velocity`` is the drift ``-theta x``; ``flow`` the probability-flow velocity
        ``-theta x + sigma^2 / 2 (x - m_t) / v_t`` (same marginals, no noise).
    """
    rng = make_rng(rng)

    def marginal(t):
        mean = np.full(dim, mean0 * np.exp(-theta * t))
        var = std0**2 * np.exp(-2 * theta * t) + sigma**2 / (2 * theta) * (1 - np.exp(-2 * theta * t))
        return mean, var * np.eye(dim)

    def flow(x, t):  # drift - sigma^2/2 grad log p_t, p_t = N(m_t, var_t I)
        mean, cov = marginal(t)
        x = np.asarray(x, float)
        return -theta * x + 0.5 * sigma**2 * (x - mean) / cov[0, 0]

    times = np.asarray(times, float)
    xs = [rng.multivariate_normal(*marginal(t), size=n_cells) for t in times]
    return SyntheticTimeCourse(
        xs=xs, times=times, masses=np.ones(len(times)), velocity=lambda x, t: -theta * np.asarray(x),
        growth_rate=lambda x, t: np.zeros(len(x)), marginal=marginal, sigma=sigma,
        info={"theta": theta}, flow=flow,
    )


def branching_growth(
    n_cells: int = 1000,
    *,
    times=(0.0, 0.5, 1.0, 1.5, 2.0),
    rates=(0.8, -0.6),
    speed: float = 1.0,
    spread: float = 1.0,
    start=(0.0, 0.0),
    std0: float = 0.3,
    dim: int = 2,
    rng=0,
) -> SyntheticTimeCourse:
    """A population that splits into a proliferating and a dying branch, with known growth rates.

    At time 0 cells are drawn from ``N(start, std0^2 I)`` (in the first two coordinates; further
    coordinates, up to ``dim``, are static ``N(0, std0^2)`` padding). A cell whose second coordinate
    starts above ``start[1]`` belongs to branch 0 and moves with velocity ``(speed, +spread)``, the
    others to branch 1 with velocity ``(speed, -spread)``; the half-planes are invariant, so the
    velocity and the growth rate are well defined functions of position. Branch ``k`` has the
    constant growth rate ``rates[k]``: a cell of the start population carries the weight
    ``exp(rates[k] t)`` at time ``t``.

    Each snapshot is a sample of the *weighted* pushforward of the start population: the branch of a
    cell is drawn with probability proportional to ``0.5 exp(rates[k] t)``, then its start position
    from the half-Gaussian of that branch, then it is moved along the flow. This is the same
    distribution as resampling pushforward cells proportionally to their weights, so a dying branch
    is under-represented at later times, as in a real experiment.

    Parameters
    ----------
    n_cells
        Cells per snapshot.
    times
        Observation times (>= 0; time 0 is the unweighted start population).
    rates
        Growth rates ``(branch 0, branch 1)`` per time unit (positive: proliferation, negative: death).
    speed
        Velocity along the first coordinate (shared by both branches).
    spread
        Speed at which the branches move apart along the second coordinate.
    start
        Mean of the start population in the first two coordinates.
    std0
        Standard deviation of the start population.
    dim
        Dimension (>= 2); coordinates beyond the second are static noise.
    rng
        Seed or Generator.

    Returns
    -------
    SyntheticTimeCourse
        ``masses[k] = M(times[k]) / M(times[0])`` with ``M(t) = 0.5 exp(rates[0] t) + 0.5 exp(rates[1] t)``,
        the exact total weight. ``info`` holds ``rates``, ``branch`` (one integer array per snapshot:
        the branch of each cell), ``branch_fraction`` (expected fraction of branch 0 per snapshot),
        ``mass_from_start`` (``M(t)`` relative to time 0) and ``branch_names``.
    """
    if dim < 2:
        raise ValueError(f"`dim` must be >= 2, got {dim}.")
    times = np.asarray(times, float)
    if np.any(times < 0):
        raise ValueError("`times` must be >= 0 (time 0 is the start population).")
    rng = make_rng(rng)
    r = np.asarray(rates, float)
    if r.shape != (2,):
        raise ValueError(f"`rates` must hold two numbers (one per branch), got {rates!r}.")
    start = np.asarray(start, float)
    y_split = float(start[1])

    def total_mass(t):
        return 0.5 * np.exp(r[0] * t) + 0.5 * np.exp(r[1] * t)

    def branch_of(x):
        return np.where(np.asarray(x)[:, 1] > y_split, 0, 1)

    def velocity(x, t):
        x = np.asarray(x, float)
        v = np.zeros_like(x)
        v[:, 0] = speed
        v[:, 1] = spread * np.sign(x[:, 1] - y_split)
        return v

    def growth_rate(x, t):
        return r[branch_of(x)]

    xs, branches, fractions = [], [], []
    for t in times:
        frac0 = 0.5 * np.exp(r[0] * t) / total_mass(t)
        branch = np.where(rng.random(n_cells) < frac0, 0, 1)
        x = np.empty((n_cells, dim))
        x[:, 0] = start[0] + std0 * rng.standard_normal(n_cells) + speed * t
        side = np.where(branch == 0, 1.0, -1.0)
        x[:, 1] = y_split + side * (np.abs(std0 * rng.standard_normal(n_cells)) + spread * t)
        if dim > 2:
            x[:, 2:] = std0 * rng.standard_normal((n_cells, dim - 2))
        xs.append(x)
        branches.append(branch)
        fractions.append(frac0)
    mass_from_start = total_mass(times)
    return SyntheticTimeCourse(
        xs=xs, times=times, masses=mass_from_start / mass_from_start[0], velocity=velocity,
        growth_rate=growth_rate, marginal=None, sigma=0.0,
        info={
            "rates": r, "branch": branches, "branch_fraction": np.asarray(fractions),
            "mass_from_start": mass_from_start, "branch_names": ("proliferating", "dying"),
            "speed": speed, "spread": spread, "start": start, "std0": std0,
        },
    )


def gaussian_growth(
    n_cells: int = 1000,
    *,
    times=(0.0, 0.5, 1.0),
    drift=(1.0, 0.0),
    growth_slope=(0.0, 0.8),
    growth_offset: float = 0.0,
    mean0=(0.0, 0.0),
    cov0=((0.25, 0.0), (0.0, 0.25)),
    rng=0,
) -> SyntheticTimeCourse:
    """Constant drift with a linear growth rate ``g(x) = b + a^T x``; Gaussian marginals in closed form.

    Cells start from ``N(m0, S)`` and move with the constant velocity ``v``; a cell at ``x`` divides
    (``g > 0``) or dies (``g < 0``) at rate ``g(x)``. The weighted population stays Gaussian:
    ``N(m0 + v t + t S a, S)``, with total mass ``M(t) = exp(b t + t a.m0 + t^2 a.v / 2 + t^2 a.S a / 2)``.
    Its mean moves at ``v + S a``, not ``v``: growth alone shifts the population, which a model
    without growth mistakes for motion.

    Parameters
    ----------
    n_cells
        Cells per snapshot.
    times
        Observation times (>= 0; time 0 is the start population).
    drift
        The constant velocity ``v``.
    growth_slope, growth_offset
        ``a`` and ``b`` of the growth rate ``g(x) = b + a^T x``.
    mean0, cov0
        The start population ``N(m0, S)``.
    rng
        Seed or Generator.

    Returns
    -------
    SyntheticTimeCourse
        ``masses[k] = M(times[k]) / M(times[0])``; ``marginal(t)`` is the normalised Gaussian.
    """
    rng = make_rng(rng)
    v = np.asarray(drift, float)
    a = np.asarray(growth_slope, float)
    m0 = np.asarray(mean0, float)
    s0 = np.asarray(cov0, float)
    if not (v.shape == a.shape == m0.shape and s0.shape == (len(m0), len(m0))):
        raise ValueError("`drift`, `growth_slope`, `mean0` and `cov0` must have matching dimensions.")
    b = float(growth_offset)

    def marginal(t):
        return m0 + v * t + t * (s0 @ a), s0

    def total_mass(t):
        t = np.asarray(t, float)
        return np.exp(b * t + t * (a @ m0) + t**2 * (a @ v) / 2 + t**2 * (a @ s0 @ a) / 2)

    times = np.asarray(times, float)
    if np.any(times < 0):
        raise ValueError("`times` must be >= 0 (time 0 is the start population).")
    xs = [rng.multivariate_normal(*marginal(t), size=n_cells) for t in times]
    mass = total_mass(times)
    return SyntheticTimeCourse(
        xs=xs, times=times, masses=mass / mass[0],
        velocity=lambda x, t: np.broadcast_to(v, np.shape(x)).copy(),
        growth_rate=lambda x, t: b + np.asarray(x, float) @ a,
        marginal=marginal, sigma=0.0,
        info={"drift": v, "growth_slope": a, "growth_offset": b, "mass_from_start": mass},
    )


def mixture_growth(
    n_cells: int = 1000,
    *,
    times=(0.0, 0.5, 1.0),
    means0=((-2.0, 0.0), (2.0, 0.0)),
    cov0=((0.25, 0.0), (0.0, 0.25)),
    drift=(0.0, 1.0),
    growth_slope=(0.3, 0.0),
    growth_offset: float = 0.0,
    rng=0,
) -> SyntheticTimeCourse:
    """A smooth growth field ``g(x) = b + a^T x`` on a population of several cell states.

    The start population is an equal mixture of Gaussians ``N(m_c, S)``; every cell moves with the
    constant velocity ``v`` and divides or dies at rate ``g(x)``. Each component stays Gaussian,
    ``N(m_c + v t + t S a, S)``, with weight ``exp(b t + t a.m_c + t^2 a.v / 2 + t^2 a.S a / 2) / C``
    (as in :func:`gaussian_growth`), so the states' shares change with time. Unlike a single
    Gaussian, whose reweighting by a linear field is indistinguishable from a shift (transport), the
    change of the states' shares cannot be produced by moving cells without moving them between
    distant states: the growth field is identifiable from snapshots and total masses.

    Parameters
    ----------
    n_cells
        Cells per snapshot.
    times
        Observation times (>= 0; time 0 is the start population).
    means0, cov0
        Component means at time 0 and their common covariance.
    drift
        The constant velocity ``v``.
    growth_slope, growth_offset
        ``a`` and ``b`` of the growth rate.
    rng
        Seed or Generator.

    Returns
    -------
    SyntheticTimeCourse
        ``masses`` relative to time 0; ``marginal`` is None (a mixture); ``info['component']`` holds
        the component of every cell per snapshot.
    """
    rng = make_rng(rng)
    v = np.asarray(drift, float)
    a = np.asarray(growth_slope, float)
    means = np.atleast_2d(np.asarray(means0, float))
    s0 = np.asarray(cov0, float)
    if not (v.shape == a.shape == means.shape[1:] and s0.shape == (len(v), len(v))):
        raise ValueError("`drift`, `growth_slope`, the rows of `means0` and `cov0` must have matching dimensions.")
    b = float(growth_offset)
    times = np.asarray(times, float)
    if np.any(times < 0):
        raise ValueError("`times` must be >= 0 (time 0 is the start population).")

    def weights(t):
        return np.exp(b * t + t * (means @ a) + t**2 * (a @ v) / 2 + t**2 * (a @ s0 @ a) / 2) / len(means)

    xs, comps = [], []
    for t in times:
        w = weights(t)
        comp = rng.choice(len(means), size=n_cells, p=w / w.sum())
        centre = means[comp] + v * t + t * (s0 @ a)
        xs.append(centre + rng.multivariate_normal(np.zeros(len(v)), s0, size=n_cells))
        comps.append(comp)
    mass = np.array([weights(t).sum() for t in times])
    return SyntheticTimeCourse(
        xs=xs, times=times, masses=mass / mass[0],
        velocity=lambda x, t: np.broadcast_to(v, np.shape(x)).copy(),
        growth_rate=lambda x, t: b + np.asarray(x, float) @ a,
        marginal=None, sigma=0.0,
        info={"drift": v, "growth_slope": a, "growth_offset": b, "component": comps},
    )


def _double_well_drift(x: np.ndarray, barrier: float) -> np.ndarray:
    """``-grad U`` for ``U = barrier (x_0^2 - 1)^2 + |x_rest|^2 / 2``."""
    v = -x.copy()
    v[:, 0] = -4.0 * barrier * x[:, 0] * (x[:, 0] ** 2 - 1.0)
    return v


def _euler_maruyama(x: np.ndarray, t0: float, t1: float, diffusion: float, barrier: float, dt: float,
                    rng: np.random.Generator) -> np.ndarray:
    n_steps = max(int(np.ceil((t1 - t0) / dt - 1e-9)), 0)
    if n_steps == 0:
        return x
    h = (t1 - t0) / n_steps
    scale = np.sqrt(2.0 * diffusion * h)
    for _ in range(n_steps):
        x = x + _double_well_drift(x, barrier) * h + scale * rng.standard_normal(x.shape)
    return x


def double_well(
    n_cells: int = 1000,
    *,
    times=(0.0, 0.5, 1.0, 2.0),
    diffusion: float = 0.3,
    barrier: float = 1.0,
    std0: float = 0.3,
    dim: int = 2,
    n_continuations: int = 1000,
    dt: float = 0.01,
    rng=0,
) -> SyntheticTimeCourse:
    """Cells leaving a saddle into two wells, with the fate of every early cell known.

    The process is ``dX = -grad U dt + sqrt(2 D) dW`` with ``U = barrier (x_0^2 - 1)^2 + |x_rest|^2 / 2``
    (wells at ``x_0 = -1`` and ``+1``, saddle at the origin), started from ``N(0, std0^2 I)``. Each
    snapshot is an independent sample of the process at its time (Euler-Maruyama with step ``dt``), so
    no cell is followed across snapshots, as in a real experiment. A cell's group is its side,
    ``"right"`` (``x_0 > 0``) or ``"left"``.

    The fate of each cell of the first snapshot is the probability that the process started there is
    on the right at the last time, estimated from ``n_continuations`` simulated continuations with the
    true generator (Monte-Carlo error at most ``0.5 / sqrt(n_continuations)``). Noise makes fates
    graded: cells near the saddle can go either way.

    Parameters
    ----------
    n_cells
        Cells per snapshot.
    times
        Observation times (the first is the start, ``>= 0``, increasing).
    diffusion
        ``D`` (the noise is ``sqrt(2 D) dW``; a model's ``sigma`` is ``sqrt(2 D)``).
    barrier
        Height of the barrier between the wells.
    std0
        Standard deviation of the start population about the saddle.
    dim
        Dimension (>= 1); coordinates beyond the first are an Ornstein-Uhlenbeck process about 0.
    n_continuations
        Simulated continuations per first-snapshot cell for its fate.
    dt
        Euler-Maruyama step.
    rng
        Seed or Generator.

    Returns
    -------
    SyntheticTimeCourse
        Balanced (masses 1); ``info`` holds ``branch`` (one integer array per snapshot: 0 right, 1 left),
        ``branch_names`` ``("right", "left")``, ``fate`` (``(n_cells,)``: probability that each
        first-snapshot cell is on the right at the last time), ``diffusion``, ``barrier`` and ``std0``.
        The probability-flow velocity has no closed form (``flow`` raises).
    """
    if dim < 1:
        raise ValueError(f"`dim` must be >= 1, got {dim}.")
    times = np.asarray(times, float)
    if np.any(times < 0) or np.any(np.diff(times) <= 0):
        raise ValueError("`times` must be increasing and >= 0.")
    if diffusion <= 0:
        raise ValueError(f"`diffusion` must be > 0 (fates are certain without noise), got {diffusion}.")
    rng = make_rng(rng)
    xs, branches = [], []
    for t in times:
        x = _euler_maruyama(std0 * rng.standard_normal((n_cells, dim)), times[0], t, diffusion, barrier, dt, rng)
        xs.append(x)
        branches.append(np.where(x[:, 0] > 0, 0, 1))
    fate = np.empty(n_cells)
    chunk = max(1, 200_000 // max(n_continuations, 1))
    for s in range(0, n_cells, chunk):
        start = np.repeat(xs[0][s : s + chunk], n_continuations, axis=0)
        end = _euler_maruyama(start, times[0], times[-1], diffusion, barrier, dt, rng)
        fate[s : s + chunk] = (end[:, 0] > 0).reshape(-1, n_continuations).mean(axis=1)

    def velocity(x, t):
        return _double_well_drift(np.asarray(x, float), barrier)

    def growth_rate(x, t):
        return np.zeros(len(x))

    def flow(x, t):
        raise NotImplementedError("The double well's probability-flow velocity has no closed form.")

    return SyntheticTimeCourse(
        xs=xs, times=times, masses=np.ones(len(times)), velocity=velocity, growth_rate=growth_rate,
        marginal=None, sigma=float(np.sqrt(2.0 * diffusion)), flow=flow,
        info={"branch": branches, "branch_names": ("right", "left"), "fate": fate, "diffusion": diffusion,
              "barrier": barrier, "std0": std0},
    )
