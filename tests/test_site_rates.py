r"""A site's opening day and screening rate given its enrolment: exact against quadrature.

The posterior of the opening day :math:`A` is
:math:`\pi(A) \propto \mathbf 1[lo \le A \le \min(hi, t_1)]\,(\beta + f E(A))^{-(\alpha + k)}`
(Gamma rate) or :math:`\propto e^{-f \mu E(A)}` (known rate), with :math:`E(A)` the
exposure from :math:`A` to the end of observation (:mod:`sim.site_rates`). Its
closed-form CDF and inverse are checked against ``scipy.integrate.quad`` of that
density, and draws against the CDF (KS, alpha = 0.01) and the rate's mixture mean
(4 SE).
"""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from sim.scenario import DAYS_PER_MONTH, RecruitmentSettings, Site
from sim.site_rates import OpeningPosterior, SiteRate, exposure_days


def _rec(model: str = "poisson_gamma", shape: float = 3.0) -> RecruitmentSettings:
    return RecruitmentSettings.model_validate(
        {
            "start_date": date(2020, 1, 1),
            "deadline": date(2024, 1, 1),
            "target_enrolled": 20,
            "rate_model": model,
            "rate_shape": shape if model == "poisson_gamma" else None,
            "sites": [{"name": "s", "activation_day": 0.0, "screening_rate_per_month": 2.0}],
        }
    )


def _site(**kw: object) -> Site:
    return Site.model_validate({"name": "s", "screening_rate_per_month": 2.0, **kw})


RANGE = {"activation_day_min": 60.0, "activation_day_max": 240.0}
CHANGES = {
    "rate_changes": [{"from_day": 120.0, "multiplier": 0.5}, {"from_day": 200.0, "multiplier": 0.0}]
}


def test_exposure_with_rate_changes_by_hand() -> None:
    site = _site(**RANGE, **CHANGES)
    # from day 100 to 300: 20 days at 1, 80 at 0.5, 100 at 0
    assert exposure_days(site, 100.0, 300.0) == pytest.approx(20 + 40)
    assert exposure_days(site, 130.0, 150.0) == pytest.approx(10)
    assert exposure_days(site, 300.0, 100.0) == 0.0
    assert exposure_days(_site(**RANGE), 100.0, 300.0) == 200.0


def _density(site: Site, until: float, shape: float, beta: float, f: float, mu: float):  # type: ignore[no-untyped-def]
    def dens(a: float) -> float:
        e = exposure_days(site, a, until)
        return math.exp(-f * mu * e) if math.isinf(shape) else (beta + f * e) ** (-shape)

    return dens


CASES = [
    # site, until, count, first_seen, model
    (_site(**RANGE), 150.0, 0, None, "poisson_gamma"),  # open part of the range, nobody seen
    (_site(**RANGE), 400.0, 0, None, "poisson_gamma"),  # surely open for a while, nobody seen
    (_site(**RANGE), 400.0, 5, 200.0, "poisson_gamma"),  # five seen, the first on day 200
    (_site(**RANGE, **CHANGES), 400.0, 2, 180.0, "poisson_gamma"),
    (_site(**RANGE), 400.0, 0, None, "poisson"),
    (_site(**RANGE, **CHANGES), 300.0, 3, 230.0, "poisson"),
]


@pytest.mark.parametrize(("site", "until", "count", "first", "model"), CASES)
def test_opening_cdf_is_the_integral_of_its_density(
    site: Site, until: float, count: int, first: float | None, model: str
) -> None:
    rec = _rec(model)
    p = 0.4
    belief = SiteRate.posterior(site, rec, count, p, until, first)
    assert belief.updated
    lo, hi = 60.0, min(240.0, first if first is not None else math.inf)
    dens = _density(site, until, belief.shape, belief.prior_rate, p, belief.mean_per_day)
    points = [x for x in (120.0, 200.0, until) if lo < x < hi]
    total = integrate.quad(dens, lo, hi, points=points or None, epsabs=0, epsrel=1e-12)[0]
    for day in np.linspace(lo, hi, 13):
        inner = [x for x in points if x < day]
        expected = integrate.quad(dens, lo, day, points=inner or None, epsabs=0, epsrel=1e-12)[0]
        assert belief.opening.cdf(float(day)) == pytest.approx(expected / total, abs=1e-10)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(CASES),
    st.floats(0.0, 1.0, exclude_max=True),
)
def test_the_opening_quantile_inverts_its_cdf(case: tuple, u: float) -> None:  # type: ignore[type-arg]
    site, until, count, first, model = case
    opening = SiteRate.posterior(site, _rec(model), count, 0.4, until, first).opening
    day = opening.quantile(u)
    assert opening.lo <= day <= opening.hi
    assert opening.cdf(day) == pytest.approx(u, abs=1e-9)


def test_draws_follow_the_posterior() -> None:
    """Openings by inversion (KS against the CDF) and rates whose mean is the mixture's."""
    site, until, count, first, model = CASES[3]
    belief = SiteRate.posterior(site, _rec(model), count, 0.4, until, first)
    rng = np.random.default_rng(20261128)
    draws = [belief.draw(rng) for _ in range(20_000)]
    openings = np.array([d.activation_day for d in draws])
    ks = stats.kstest(openings, np.vectorize(belief.opening.cdf))
    assert ks.pvalue > 0.01, ks
    rates = np.array([d.rate_per_day for d in draws]) * DAYS_PER_MONTH
    se = rates.std(ddof=1) / math.sqrt(rates.size)
    assert abs(rates.mean() - belief.mean_per_month()) < 4 * se
    lo, hi = belief.quantiles_per_month([0.05, 0.95])
    for q, value in ((0.05, lo), (0.95, hi)):
        share = float(np.mean(rates <= value))
        assert abs(share - q) < 4 * math.sqrt(q * (1 - q) / rates.size), (q, share)


def test_a_fixed_site_open_t_days_with_no_enrolment_gets_the_textbook_posterior() -> None:
    r""":math:`\mathrm{Gamma}(\alpha, \beta + p t)`, exactly, and a slower mean than the prior."""
    rec = _rec()
    site = _site(activation_day=30.0)
    p, t = 0.408, 200.0
    belief = SiteRate.posterior(site, rec, 0, p, 30.0 + t)
    alpha, beta = 3.0, 3.0 / (2.0 / DAYS_PER_MONTH)
    assert (belief.shape, belief.rate_parameter_days) == (alpha, beta + p * t)
    assert belief.mean_per_month() == pytest.approx(alpha / (beta + p * t) * DAYS_PER_MONTH)
    assert belief.mean_per_month() < belief.mean_per_month(prior=True) == pytest.approx(2.0)
    lo, hi = belief.quantiles_per_month([0.05, 0.95])
    g = stats.gamma(alpha, scale=1 / (beta + p * t))
    assert (lo, hi) == pytest.approx(tuple(g.ppf([0.05, 0.95]) * DAYS_PER_MONTH), rel=1e-12)


def test_a_site_not_yet_open_keeps_its_prior_and_draws_as_the_design_stage() -> None:
    rec = _rec()
    for site in (_site(activation_day=500.0), _site(**RANGE)):
        belief = SiteRate.posterior(site, rec, 0, 0.4, 50.0)
        prior = SiteRate.prior(site, rec)
        assert not belief.updated and belief.opening == prior.opening
        a, b = np.random.default_rng(3), np.random.default_rng(3)
        assert [belief.draw(a) for _ in range(50)] == [prior.draw(b) for _ in range(50)]


def test_nobody_seen_while_the_range_straddles_the_as_of_day_means_a_later_opening() -> None:
    rec = _rec()
    belief = SiteRate.posterior(_site(**RANGE), rec, 0, 0.4, 200.0)
    prior_median = 150.0
    assert belief.opening.quantile(0.5) > prior_median
    assert belief.mean_per_month() < 2.0


def test_known_opening_is_not_drawn() -> None:
    opening = OpeningPosterior(12.0, 12.0)
    assert opening.known and opening.quantile(0.3) == 12.0 and opening.cdf(11.9) == 0.0


@pytest.mark.parametrize("alpha", [0.5, 1.0, 1 + 2e-12, 1 + 1e-10, 1 - 1e-9, 3.0])
def test_the_opening_cdf_stays_exact_as_the_shape_nears_one(alpha: float) -> None:
    """At alpha + k = 1 the antiderivative changes form (a logarithm); near it the
    closed form must not cancel (expm1): checked against quadrature to 1e-10."""
    site = _site(**RANGE)
    belief = SiteRate.posterior(site, _rec(shape=alpha), 0, 0.4, 400.0)
    dens = _density(site, 400.0, belief.shape, belief.prior_rate, 0.4, belief.mean_per_day)
    total = integrate.quad(dens, 60.0, 240.0, epsabs=0, epsrel=1e-13)[0]
    for day in (61.0, 100.0, 150.0, 239.0):
        expected = integrate.quad(dens, 60.0, day, epsabs=0, epsrel=1e-13)[0] / total
        assert belief.opening.cdf(day) == pytest.approx(expected, abs=1e-10)
        assert belief.opening.cdf(belief.opening.quantile(expected)) == pytest.approx(
            expected, abs=1e-10
        )


@pytest.mark.parametrize(
    ("model", "count", "rate"),
    [("poisson_gamma", 1000, 2.0), ("poisson", 0, 500.0), ("poisson", 40, 2.0)],
)
def test_extreme_posteriors_draw_without_error(model: str, count: int, rate: float) -> None:
    """A thousand enrolments, or a known rate times a long exposure: weights far below
    the smallest float must neither divide by zero nor take a log of zero, at u = 0 too."""
    site = Site.model_validate({"name": "s", "screening_rate_per_month": rate, **RANGE})
    belief = SiteRate.posterior(site, _rec(model), count, 0.4, 2000.0, 239.0 if count else None)
    for u in (0.0, 5e-324, 1e-300, 0.5, 1 - 1e-16):
        day = belief.opening.quantile(u)
        assert 60.0 <= day <= 240.0 and math.isfinite(day)
    assert belief.opening.quantile(0.0) == 60.0  # the first day the opening can be
