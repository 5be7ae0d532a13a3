r"""A site's opening day and screening rate: the prior, and the posterior given enrolment.

**Prior.** Site :math:`i` opens on its activation day :math:`A` (fixed, or
uniform on :math:`[a_{lo}, a_{hi}]`) and screens people as a Poisson process
of rate :math:`\lambda\,m(t)` per day, :math:`m(t)` the site's rate
multipliers (1 before the first change). Under ``poisson_gamma``
:math:`\lambda \sim \mathrm{Gamma}(\alpha, \beta)` with :math:`\beta = \alpha/\mu`,
:math:`\mu` the mean rate per day (Anisimov & Fedorov 2007); under ``poisson``
:math:`\lambda = \mu` is known.

**Posterior.** Observing the site until day :math:`T` (the as-of day, or the day
its cap was filled) gives :math:`k` counts (enrolments, each screened person
being eligible with probability :math:`f = p`; or screened people, :math:`f = 1`)
over the site's exposure :math:`E(A) = \int_A^T m(t)\,dt` (0 if :math:`A \ge T`).
The likelihood is :math:`(f\lambda)^k e^{-f\lambda E(A)}`, and the first count
bounds the opening, :math:`A \le t_1`. So

.. math::

    \lambda \mid A, \text{data} \sim \mathrm{Gamma}(\alpha + k,\ \beta + f E(A)),
    \qquad
    \pi(A \mid \text{data}) \propto \pi(A)\,\mathbf 1[A \le t_1]\,(\beta + f E(A))^{-(\alpha + k)}

(the second by integrating :math:`\lambda` out); under a known rate
:math:`\pi(A \mid \text{data}) \propto \pi(A)\,\mathbf 1[A \le t_1]\,e^{-f\mu E(A)}`.
A site open during the whole observed period with a fixed activation day gets
the textbook :math:`\mathrm{Gamma}(\alpha + k, \beta + f E)`, :math:`k = 0`
included: a site that has enrolled nobody is believed slower. A site not yet
open at :math:`T` (every :math:`A \ge T`) keeps its prior and its activation
rule. A site whose opening range straddles :math:`T` with no counts is
believed to have opened later. :math:`E(A)` is piecewise linear in :math:`A`,
so the opening's posterior CDF is piecewise closed-form and is inverted
exactly (:class:`OpeningPosterior`).

One replicate draws a site with one uniform (the opening day, by inversion)
and then one Gamma variate (the rate given the opening), from the site's own
stream, as the design stage does: with no data the draws are the design
stage's, bit for bit.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sim.scenario import DAYS_PER_MONTH, RecruitmentSettings, Site

__all__ = ["OpeningPosterior", "SiteDraw", "SiteRate", "exposure_days"]


@dataclass(frozen=True)
class SiteDraw:
    """One replicate's realisation of a site: when it opens and how fast it screens."""

    activation_day: float
    rate_per_day: float


def _multiplier_steps(site: Site) -> tuple[list[float], list[float]]:
    days = [c.from_day for c in site.rate_changes]
    return days, [c.multiplier for c in site.rate_changes]


def exposure_days(site: Site, opened: float, until: float) -> float:
    r"""The site's exposure :math:`\int_{opened}^{until} m(t)\,dt` in days (0 if not open).

    With no rate changes this is the time open, ``max(until - opened, 0)``.
    """
    if opened >= until:
        return 0.0
    days, mults = _multiplier_steps(site)
    edges = [opened, *[d for d in days if opened < d < until], until]
    total = 0.0
    for a, b in itertools.pairwise(edges):
        i = int(np.searchsorted(days, a, side="right"))
        total += (b - a) * (1.0 if i == 0 else mults[i - 1])
    return total


@dataclass(frozen=True)
class _Weight:
    r"""The opening's relative posterior weight as a function of exposure :math:`u`.

    Gamma: :math:`w(u) = x^{-M}`, :math:`x = (\beta + f u)/s`, :math:`s = \beta + f
    u_{min}`; known rate: :math:`w(u) = e^{-g (u - u_{min})}`, :math:`g = f\mu`. Both
    are 1 at :math:`u_{min}`, the smallest exposure over the range. :meth:`integral`
    and :meth:`solve` are written so that nothing overflows or cancels: with
    :math:`d = 1 - M`, :math:`\int_{u_0}^{u_1} w = (s/f)\,x_0^{d}\,
    \mathrm{expm1}(d \ln(x_1/x_0))/d` (:math:`(s/f)\ln(x_1/x_0)` at :math:`d = 0`),
    which stays accurate as :math:`M \to 1`.
    """

    shape: float  # M = alpha + k; inf for a known rate
    beta: float
    factor: float  # f
    g: float  # f * mu for a known rate
    u_min: float

    @property
    def flat(self) -> bool:
        return self.factor == 0.0 or (math.isinf(self.shape) and self.g == 0.0)

    @property
    def _s(self) -> float:
        return self.beta + self.factor * self.u_min

    def _x(self, u: float) -> float:
        return (self.beta + self.factor * u) / self._s

    def w(self, u: float) -> float:
        """The weight at exposure ``u`` (1 at the smallest exposure)."""
        if self.flat:
            return 1.0
        if math.isinf(self.shape):
            return math.exp(-self.g * (u - self.u_min))
        return math.exp(-self.shape * math.log(self._x(u)))

    def integral(self, lo: float, hi: float) -> float:
        r""":math:`\int_{lo}^{hi} w(u)\,du` for exposures ``lo <= hi``."""
        if hi <= lo:
            return 0.0
        if self.flat:
            return hi - lo
        if math.isinf(self.shape):
            return math.exp(-self.g * (lo - self.u_min)) * -math.expm1(-self.g * (hi - lo)) / self.g
        x0, x1 = self._x(lo), self._x(hi)
        d = 1.0 - self.shape
        span = math.log(x1 / x0)
        ratio = span if d == 0.0 else math.expm1(d * span) / d
        return self._s / self.factor * math.exp(d * math.log(x0)) * ratio

    def solve(self, hi: float, r: float) -> float:
        r"""The exposure ``u <= hi`` with :math:`\int_u^{hi} w = r` (``r`` >= 0)."""
        if r <= 0.0:
            return hi
        if self.flat:
            return hi - r
        if math.isinf(self.shape):
            top = -self.g * (hi - self.u_min)
            return self.u_min - float(np.logaddexp(top, math.log(r * self.g))) / self.g
        s, f = self._s, self.factor
        x1 = self._x(hi)
        d = 1.0 - self.shape
        if d == 0.0:
            x = x1 * math.exp(-r * f / s)
        elif d > 0.0:  # x^d = x1^d - r f d / s, with z in (-1, 0]
            z = -r * f * d / (s * math.exp(d * math.log(x1)))
            x = x1 * math.exp(math.log1p(max(z, -1.0 + 1e-16)) / d)
        else:  # z = r f |d| / (s x1^d) > 0 may be huge: log1p(z) = logaddexp(0, log z)
            log_z = math.log(r) + math.log(f) + math.log(-d) - math.log(s) - d * math.log(x1)
            x = x1 * math.exp(float(np.logaddexp(0.0, log_z)) / d)
        return (x * s - self.beta) / f


@dataclass(frozen=True)
class OpeningPosterior:
    r"""The posterior of a site's opening day on :math:`[lo, hi]`, exact and invertible.

    Between the breakpoints (the range's ends, the rate changes and :math:`T`)
    the exposure is linear, :math:`E(A) = e_0 - c (A - a_0)`, so each piece's
    mass :math:`\int w(E(A))\,dA = \int_{e_1}^{e_0} w(u)\,du / c` and its inverse
    are closed-form. With a flat weight (no update) the quantile is
    ``lo + u * (hi - lo)``, the prior's, exactly.

    Attributes
    ----------
    lo, hi : float
        Trial days; ``lo == hi`` for a known opening day.
    pieces : tuple of (a0, a1, e0, e1)
        The pieces and the exposure at their ends.
    masses : tuple of float
        Each piece's probability.
    """

    lo: float
    hi: float
    pieces: tuple[tuple[float, float, float, float], ...] = ()
    masses: tuple[float, ...] = ()
    weight: _Weight | None = None

    @property
    def known(self) -> bool:
        """Whether the opening day is known (a single day)."""
        return self.lo == self.hi

    @classmethod
    def build(
        cls,
        site: Site,
        lo: float,
        hi: float,
        until: float,
        shape: float,
        beta: float,
        factor: float,
        mean_per_day: float,
    ) -> OpeningPosterior:
        """The opening day's posterior on ``[lo, hi]`` given observation up to ``until``.

        ``shape`` is :math:`\\alpha + k` (inf for a known rate ``mean_per_day``).
        """
        if lo >= hi:
            return cls(lo, lo)
        days, _ = _multiplier_steps(site)
        cuts = sorted({lo, hi, *[d for d in (*days, until) if lo < d < hi]})
        ends = [exposure_days(site, a, until) for a in cuts]
        g = factor * mean_per_day if math.isinf(shape) else 0.0
        weight = _Weight(shape, beta, factor, g, min(ends))
        pieces, masses = [], []
        for a0, a1, e0, e1 in zip(cuts[:-1], cuts[1:], ends[:-1], ends[1:], strict=True):
            pieces.append((a0, a1, e0, e1))
            c = (e0 - e1) / (a1 - a0)
            if weight.flat or c <= 0.0:
                masses.append(weight.w(e0) * (a1 - a0))
            else:
                masses.append(weight.integral(e1, e0) / c)
        total = math.fsum(masses)
        if weight.flat:
            return cls(lo, hi)
        return cls(lo, hi, tuple(pieces), tuple(m / total for m in masses), weight)

    def quantile(self, u: float) -> float:
        """The opening day whose posterior CDF is ``u`` (inverse transform sampling)."""
        if self.known:
            return self.lo
        if self.weight is None:  # the prior, uniform: exactly as the design stage draws it
            return self.lo + u * (self.hi - self.lo)
        w = self.weight
        rest = u
        last = len(self.pieces) - 1
        for i, ((a0, a1, e0, e1), mass) in enumerate(zip(self.pieces, self.masses, strict=True)):
            if rest > mass and i < last:
                rest -= mass
                continue
            share = min(rest / mass, 1.0) if mass > 0 else 0.0
            c = (e0 - e1) / (a1 - a0)
            if w.flat or c <= 0.0:
                return a0 + share * (a1 - a0)
            # the exposure e at which the piece's integral from e to e0 is the share wanted
            e = w.solve(e0, share * w.integral(e1, e0))
            return min(max(a0 + (e0 - e) / c, a0), a1)
        return self.hi  # pragma: no cover - u within [0, 1]

    def cdf(self, day: float) -> float:
        """The posterior probability that the site opened on or before ``day``."""
        if self.known:
            return 1.0 if day >= self.lo else 0.0
        if day <= self.lo:
            return 0.0
        if day >= self.hi:
            return 1.0
        if self.weight is None:
            return (day - self.lo) / (self.hi - self.lo)
        w = self.weight
        total = 0.0
        for (a0, a1, e0, e1), mass in zip(self.pieces, self.masses, strict=True):
            if day >= a1:
                total += mass
                continue
            c = (e0 - e1) / (a1 - a0)
            if w.flat or c <= 0.0:
                part = (day - a0) / (a1 - a0)
            else:
                e = e0 - c * (day - a0)
                whole = w.integral(e1, e0)
                part = w.integral(e, e0) / whole if whole > 0 else 0.0
            return total + mass * part
        return 1.0  # pragma: no cover

    def nodes(self, per_piece: int = 48) -> tuple[np.ndarray, np.ndarray]:
        """Quadrature nodes (days) and probability weights of the opening's posterior."""
        if self.known:
            return np.array([self.lo]), np.array([1.0])
        x, wx = np.polynomial.legendre.leggauss(per_piece)
        pieces = self.pieces or ((self.lo, self.hi, 0.0, 0.0),)
        masses = self.masses or (1.0,)
        days, weights = [], []
        for (a0, a1, _e0, _e1), mass in zip(pieces, masses, strict=True):
            a = a0 + (x + 1.0) / 2.0 * (a1 - a0)
            if self.weight is None:
                dens = np.ones_like(a)
            else:
                dens = np.array([self.weight.w(self._exposure_at(v)) for v in a])
            share = wx * dens
            days.append(a)
            weights.append(mass * share / share.sum())
        return np.concatenate(days), np.concatenate(weights)

    def _exposure_at(self, day: float) -> float:
        for a0, a1, e0, e1 in self.pieces:
            if day <= a1:
                return e0 + (e1 - e0) * (day - a0) / (a1 - a0)
        return self.pieces[-1][3]  # pragma: no cover


@dataclass(frozen=True)
class SiteRate:
    r"""What is believed of one site's opening day and screening rate, and how to draw them.

    Build with :meth:`prior` (the design stage) or :meth:`posterior` (given the
    enrolment seen up to an as-of day).

    Attributes
    ----------
    name : str
        The site's name.
    mean_per_day : float
        The prior mean rate :math:`\mu`, people screened per day.
    prior_shape : float
        :math:`\alpha`; ``inf`` for a known rate (``poisson``).
    prior_rate : float
        :math:`\beta = \alpha/\mu`, the Gamma rate parameter, in days (``inf``
        for a known rate); not a screening rate.
    count : int
        Observed enrolments (or screened people, see ``screened``).
    screened : bool
        ``count`` counts screened people (then :math:`f = 1`).
    factor : float
        :math:`f`: the eligibility probability for enrolment counts, 1 for screened counts.
    exposure_until_day : float
        :math:`T`, the trial day observation ends (as-of day, or the day the cap was filled).
    opening : OpeningPosterior
        The opening day's distribution.
    updated : bool
        Whether observation changed anything (False: drawn exactly as the prior).
    """

    name: str
    mean_per_day: float
    prior_shape: float
    prior_rate: float
    site: Site
    count: int = 0
    screened: bool = False
    factor: float = 1.0
    exposure_until_day: float = 0.0
    opening: OpeningPosterior = field(default_factory=lambda: OpeningPosterior(0.0, 0.0))
    updated: bool = False

    # -- building ---------------------------------------------------------------
    @staticmethod
    def _prior_parameters(site: Site, rec: RecruitmentSettings) -> tuple[float, float, float]:
        alpha = rec.rate_shape if rec.rate_model == "poisson_gamma" else math.inf
        assert alpha is not None
        mean = site.screening_rate_per_month / DAYS_PER_MONTH
        return alpha, alpha / mean, mean

    @staticmethod
    def _range(site: Site) -> tuple[float, float]:
        if site.activation_day is not None:
            return site.activation_day, site.activation_day
        assert site.activation_day_min is not None and site.activation_day_max is not None
        return site.activation_day_min, site.activation_day_max

    @classmethod
    def prior(cls, site: Site, rec: RecruitmentSettings) -> SiteRate:
        """The design stage: opening by the activation rule, rate from the Gamma prior."""
        alpha, beta, mean = cls._prior_parameters(site, rec)
        lo, hi = cls._range(site)
        return cls(site.name, mean, alpha, beta, site, opening=OpeningPosterior(lo, hi))

    @classmethod
    def posterior(
        cls,
        site: Site,
        rec: RecruitmentSettings,
        count: int,
        factor: float,
        until: float,
        first_seen: float | None = None,
        screened: bool = False,
    ) -> SiteRate:
        """The site given ``count`` enrolments (or screened people) seen up to day ``until``.

        Parameters
        ----------
        site, rec
            The site and the recruitment settings it belongs to.
        count : int
            Enrolments (or, with ``screened``, screened people) seen by ``until``.
        factor : float
            The eligibility probability (enrolment counts) or 1 (screened counts).
        until : float
            The trial day observation ends.
        first_seen : float, optional
            The day of the first observation: the site opened on or before it.
        screened : bool
            ``count`` counts screened people.
        """
        alpha, beta, mean = cls._prior_parameters(site, rec)
        lo, hi = cls._range(site)
        if first_seen is not None:
            hi = max(lo, min(hi, first_seen))
        shape = alpha + count
        opening = OpeningPosterior.build(site, lo, hi, until, shape, beta, factor, mean)
        updated = count > 0 or exposure_days(site, lo, until) > 0 or hi < cls._range(site)[1]
        if not updated:
            opening = OpeningPosterior(lo, hi)
        return cls(
            site.name,
            mean,
            alpha,
            beta,
            site,
            count,
            screened,
            factor,
            until,
            opening,
            updated,
        )

    # -- the rate ---------------------------------------------------------------
    @property
    def known_rate(self) -> bool:
        """Whether the rate is known (``poisson``): only the opening is uncertain."""
        return math.isinf(self.prior_shape)

    @property
    def shape(self) -> float:
        r"""The Gamma shape :math:`\alpha + k` of the rate (``inf`` for a known rate)."""
        return self.prior_shape + (self.count if self.updated else 0)

    def rate_given_opening(self, opened: float) -> float:
        r"""The Gamma rate parameter :math:`\beta + f E(A)`, in days, given the opening day."""
        if not self.updated:
            return self.prior_rate
        return self.prior_rate + self.factor * exposure_days(
            self.site, opened, self.exposure_until_day
        )

    @property
    def rate_parameter_days(self) -> float:
        """The Gamma rate parameter (days) when the opening day is known; NaN otherwise."""
        if not self.opening.known and self.updated:
            return math.nan
        return self.rate_given_opening(self.opening.lo)

    def draw(self, rng: np.random.Generator) -> SiteDraw:
        """One replicate's opening day and rate: one uniform, then one Gamma variate."""
        u = rng.random()
        activation = self.opening.quantile(u)
        if self.known_rate:
            return SiteDraw(activation, self.mean_per_day)
        rate = self.rate_given_opening(activation)
        return SiteDraw(activation, float(rng.gamma(self.shape, 1.0 / rate)))

    # -- summaries in people screened per month -----------------------------------
    def _mixture(self, prior: bool) -> tuple[float, np.ndarray, np.ndarray]:
        if prior or not self.updated:
            return self.prior_shape, np.array([self.prior_rate]), np.array([1.0])
        days, weights = self.opening.nodes()
        rates = np.array([self.rate_given_opening(float(a)) for a in days])
        return self.shape, rates, weights

    def mean_per_month(self, prior: bool = False) -> float:
        """The mean screening rate, people per month (of the prior with ``prior=True``)."""
        if self.known_rate:
            return self.mean_per_day * DAYS_PER_MONTH
        shape, rates, weights = self._mixture(prior)
        return float(np.sum(weights * shape / rates)) * DAYS_PER_MONTH

    def quantiles_per_month(self, qs: Sequence[float], prior: bool = False) -> list[float]:
        """Quantiles of the screening rate, people per month (a Gamma mixture over openings)."""
        from scipy import optimize, stats  # scipy.stats costs 0.3 s to import: only when asked

        if self.known_rate:
            return [self.mean_per_day * DAYS_PER_MONTH for _ in qs]
        shape, rates, weights = self._mixture(prior)
        if rates.size == 1:
            return [
                float(stats.gamma.ppf(q, shape, scale=1.0 / rates[0])) * DAYS_PER_MONTH for q in qs
            ]

        def cdf(x: float) -> float:
            return float(np.sum(weights * stats.gamma.cdf(x, shape, scale=1.0 / rates)))

        out = []
        for q in qs:
            lo = float(stats.gamma.ppf(q, shape, scale=1.0 / rates.max()))
            hi = float(stats.gamma.ppf(q, shape, scale=1.0 / rates.min()))
            if hi - lo <= 1e-15 * max(hi, 1e-300):
                out.append(lo * DAYS_PER_MONTH)
                continue
            root = optimize.brentq(lambda x, q=q: cdf(x) - q, lo, hi, xtol=1e-14, rtol=1e-12)
            out.append(float(root) * DAYS_PER_MONTH)
        return out
