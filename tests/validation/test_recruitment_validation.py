r"""The recruitment model against closed-form Poisson and Poisson-gamma results.

Sites screen people as Poisson processes (rate :math:`\lambda` per day) or, under
Poisson-gamma (Anisimov & Fedorov 2007; ../shared/reference/parameters.md section
6c), with each site's rate drawn from :math:`\mathrm{Gamma}(\alpha, \beta)` (shape
:math:`\alpha`, rate :math:`\beta = \alpha / m`, mean :math:`m` per day). Each screened
person is eligible with probability :math:`p` and enrolled if so. The tests compare
recruitment-only replicates (``simulate_patients=False``) with exact answers: gamma
and beta-prime times to the n-th enrolment, negative-binomial counts, the conjugate
Gamma posterior of a site's rate, and the invariants of stopping (target, caps,
activation). Tolerances are about 4 standard errors, KS and chi-square tests are at
alpha = 0.01, and every seed is fixed.

Scenario rates are per month; the model divides by ``DAYS_PER_MONTH`` = 365.25 / 12,
so a rate of :math:`\lambda` per day is ``screening_rate_per_month = lambda *
DAYS_PER_MONTH``.
"""

from __future__ import annotations

import csv
import math
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from sim import Scenario, load_scenario
from sim.forecast import Observed, forecast, read_observed, site_posteriors
from sim.population import eligibility_probability
from sim.scenario import DAYS_PER_MONTH, EXCLUSION_CONDITIONS
from sim.trial.sites import PERSONS_PER_SITE, draw_sites
from sim.trial.trial import TrialResult, simulate_trial
from tests.conftest import SCENARIOS

BASE = SCENARIOS / "nct05129410.toml"
FOUR_SITES = SCENARIOS / "nct05129410_four_sites.toml"
START = date(2020, 12, 1)  # the base scenario's recruitment.start_date
FAR_DEADLINE = START + timedelta(days=9_999)  # the longest trial a scenario may plan


def _population(screen_failure: float = 0.0) -> dict[str, Any]:
    """Overrides making a screened person eligible with probability 1 - screen_failure.

    Age and FVC are truncated to the protocol's ranges, so they never fail; the only
    exclusion is ``cancer``, with prevalence ``screen_failure``.
    """
    return {
        "population.fvc_min_percent": 50.0,
        "population.age_min_years": 18.0,
        "population.age_max_years": 70.0,
        "population.prevalence": {
            c: (screen_failure if c == "cancer" else 0.0) for c in EXCLUSION_CONDITIONS
        },
    }


def _scenario(
    rates_per_day: list[float],
    rate_model: str,
    target: int,
    *,
    shape: float | None = None,
    screen_failure: float = 0.0,
    enrolment_deadline: date | None = None,
) -> Scenario:
    """The base scenario with sites open from day 0 at the given (mean) rates per day."""
    overrides: dict[str, Any] = {
        **_population(screen_failure),
        "recruitment.sites": [
            {
                "name": f"site {i}",
                "activation_day": 0.0,
                "screening_rate_per_month": rate * DAYS_PER_MONTH,
            }
            for i, rate in enumerate(rates_per_day)
        ],
        "recruitment.rate_model": rate_model,
        "recruitment.target_enrolled": target,
        "recruitment.deadline": FAR_DEADLINE,
    }
    if shape is not None:
        overrides["recruitment.rate_shape"] = shape
    if enrolment_deadline is not None:
        overrides["recruitment.enrolment_deadline"] = enrolment_deadline
    return load_scenario(BASE, overrides)


def _trials(scenario: Scenario, seed: int, replicates: int) -> list[TrialResult]:
    return [
        simulate_trial(scenario, seed, replicate=r, simulate_patients=False)
        for r in range(replicates)
    ]


# ---------------------------------------------------------------------------
# 1. Poisson: the n-th enrolment is Gamma(n, lambda (1 - q))
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("screen_failure", [0.0, 0.4])
def test_poisson_time_to_target_is_gamma(screen_failure: float) -> None:
    r"""One site open from day 0 screens as a Poisson process of rate :math:`\lambda` per
    day; each person is eligible with probability :math:`1 - q`. Enrolments are then a
    thinned Poisson process of rate :math:`\lambda(1 - q)` (Ross, *Stochastic
    Processes*, thinning), so the day of the n-th enrolment is the sum of n exponential
    gaps:

    .. math:: T_n \sim \mathrm{Gamma}(n, \text{rate } \lambda (1 - q))

    (KS test, alpha = 0.01). The number screened is n plus the screen failures before
    the n-th success, :math:`n + \mathrm{NegBin}(n, 1 - q)`, with mean :math:`n / (1 - q)`
    and variance :math:`n q / (1 - q)^2` (checked within 4 SE).
    """
    n, lam, replicates = 20, 0.03, 2_000
    scenario = _scenario([lam], "poisson", n, screen_failure=screen_failure)
    assert scenario.population is not None
    p = eligibility_probability(scenario.population, scenario.eligibility)
    assert p == pytest.approx(1.0 - screen_failure, abs=1e-12)

    trials = _trials(scenario, 20240701, replicates)
    assert all(t.milestones["target_reached"] for t in trials)
    lpi = np.array([t.milestones["last_patient_in_day"] for t in trials])
    ks = stats.kstest(lpi, stats.gamma(a=n, scale=1.0 / (lam * p)).cdf)
    assert ks.pvalue > 0.01, ks

    screened = np.array([t.milestones["screened"] for t in trials])
    mean, var = n / p, n * (1 - p) / p**2
    if var == 0:
        assert (screened == n).all()
    else:
        se = math.sqrt(var / replicates)
        assert abs(screened.mean() - mean) < 4 * se, (screened.mean(), mean, se)


# ---------------------------------------------------------------------------
# 2. Poisson-gamma: the count by time t is negative binomial
# ---------------------------------------------------------------------------


def test_poisson_gamma_count_by_time_t_is_negative_binomial() -> None:
    r"""N sites open from day 0, rates i.i.d. :math:`\mathrm{Gamma}(\alpha, \beta)`,
    :math:`\beta = \alpha / m`, everyone eligible. A site's count by day t is
    :math:`\mathrm{NegBin}(\alpha, \beta / (\beta + t))` with mean :math:`m t` and variance
    :math:`m t + m^2 t^2 / \alpha` (parameters.md 6c, "Count in one centre"). The N
    site counts are i.i.d. with the same success probability, so the total is
    :math:`\mathrm{NegBin}(N\alpha, \beta / (\beta + t))`:

    .. math:: E = N m t, \qquad \mathrm{Var} = N m t + N m^2 t^2 / \alpha.

    The sample mean is checked within 4 SE, :math:`\sqrt{\mathrm{Var} / R}`; the sample
    variance :math:`s^2` within 4 SE using the exact
    :math:`\mathrm{Var}(s^2) = (\mu_4 - \sigma^4 (R - 3) / (R - 1)) / R`, with the
    fourth central moment :math:`\mu_4 = (\gamma_2 + 3) \sigma^4` of that negative
    binomial (:math:`\gamma_2` its excess kurtosis, from scipy). The whole distribution
    is checked by a chi-square test (alpha = 0.01) on bins of about 10 % probability.

    The target is out of reach, so recruitment is stopped by the enrolment deadline,
    set just after t.
    """
    n_sites, alpha, m, t, replicates = 4, 2.0, 0.05, 200.0, 2_000
    scenario = _scenario(
        [m] * n_sites,
        "poisson_gamma",
        10**6,
        shape=alpha,
        enrolment_deadline=START + timedelta(days=int(t) + 1),
    )
    trials = _trials(scenario, 20240702, replicates)
    counts = np.array([int((tr.enrolment["trial_day"] <= t).sum()) for tr in trials])
    assert all(not tr.milestones["target_reached"] for tr in trials)

    beta = alpha / m
    total = stats.nbinom(n_sites * alpha, beta / (beta + t))
    mean = n_sites * m * t
    var = n_sites * m * t + n_sites * m**2 * t**2 / alpha
    assert total.mean() == pytest.approx(mean) and total.var() == pytest.approx(var)

    se_mean = math.sqrt(var / replicates)
    assert abs(counts.mean() - mean) < 4 * se_mean, (counts.mean(), mean, se_mean)

    mu4 = (float(total.stats(moments="k")) + 3.0) * var**2
    se_var = math.sqrt((mu4 - var**2 * (replicates - 3) / (replicates - 1)) / replicates)
    s2 = counts.var(ddof=1)
    assert abs(s2 - var) < 4 * se_var, (s2, var, se_var)

    cuts = np.unique(total.ppf(np.linspace(0.1, 0.9, 9)))
    observed = np.bincount(np.searchsorted(cuts, counts, side="left"), minlength=len(cuts) + 1)
    probs = np.diff(np.concatenate([[0.0], total.cdf(cuts), [1.0]]))
    chi2 = stats.chisquare(observed, probs * replicates)
    assert chi2.pvalue > 0.01, (chi2, observed, probs * replicates)


# ---------------------------------------------------------------------------
# 3. Poisson-gamma: the time to n enrolments is beta-prime
# ---------------------------------------------------------------------------


def test_poisson_gamma_mean_time_to_n_enrolments() -> None:
    r"""N sites open from day 0, rates i.i.d. :math:`\mathrm{Gamma}(\alpha, \beta)`, everyone
    eligible. The total rate is :math:`\Lambda \sim \mathrm{Gamma}(N\alpha, \beta)` and
    :math:`T_n = G_n / \Lambda`, :math:`G_n \sim \mathrm{Gamma}(n, 1)`, so
    :math:`T_n / \beta = G_n / (\beta\Lambda) \sim \mathrm{BetaPrime}(n, N\alpha)`, a ratio
    of independent unit-rate gammas (Anisimov & Fedorov 2007; parameters.md 6c, "Time
    to reach n patients", writes :math:`\beta T_n`, but :math:`\beta` there is a rate of
    :math:`\lambda`, in days, and its mean :math:`\beta n / (N\alpha - 1)` is that of
    :math:`\beta X`):

    .. math:: E[T_n] = \frac{\beta n}{N\alpha - 1} = \frac{n}{m (N - 1/\alpha)},
              \qquad \mathrm{Var}[T_n] = \frac{\beta^2 n (n + N\alpha - 1)}
              {(N\alpha - 1)^2 (N\alpha - 2)}

    (finite for :math:`N\alpha > 2`). The sample mean is checked within 4 SE,
    :math:`\sqrt{\mathrm{Var}[T_n] / R}`, and the distribution by a KS test (alpha = 0.01).
    """
    n_sites, alpha, m, n, replicates = 4, 3.0, 0.05, 20, 2_000
    scenario = _scenario([m] * n_sites, "poisson_gamma", n, shape=alpha)
    trials = _trials(scenario, 20240703, replicates)
    assert all(t.milestones["target_reached"] for t in trials)
    lpi = np.array([t.milestones["last_patient_in_day"] for t in trials])

    beta = alpha / m
    a, b = float(n), n_sites * alpha
    mean = beta * n / (b - 1)
    assert mean == pytest.approx(n / (m * (n_sites - 1 / alpha)))
    var = beta**2 * n * (n + b - 1) / ((b - 1) ** 2 * (b - 2))
    se = math.sqrt(var / replicates)
    assert abs(lpi.mean() - mean) < 4 * se, (lpi.mean(), mean, se)

    ks = stats.kstest(lpi, stats.betaprime(a, b, scale=beta).cdf)
    assert ks.pvalue > 0.01, ks


def test_the_reported_time_to_target_is_beta_prime_censored_at_the_deadline() -> None:
    r"""What ``sim.run`` reports, against the closed form (issue 13).

    The base scenario's one site opens on day :math:`a = 30` and screens at a rate
    :math:`\lambda \sim \mathrm{Gamma}(\alpha, \beta)`; each person is eligible with
    the closed-form probability :math:`p`, so enrolment is Poisson with rate
    :math:`p\lambda \sim \mathrm{Gamma}(\alpha, \beta / p)`, and the day the
    :math:`n`-th patient enrols is :math:`T_n = a + (\beta/p)\,\mathrm{BetaPrime}(n, \alpha)`.
    Enrolment stops at the deadline :math:`D`, so:

    * :math:`P(\text{target reached}) = F((D - a) p / \beta)`, :math:`F` the beta-prime
      CDF: within 4 MCSE;
    * among the replicates that reach it, the day is :math:`T_n` given :math:`T_n \le D`
      (KS against the truncated CDF, alpha = 0.01);
    * the reported median over all replicates (a miss counts as later) is the
      beta-prime median, within 4 SE of a sample median,
      :math:`\sqrt{q(1-q)/R} / f(x_q)`.

    2,000 replicates of the whole trial (every patient simulated), per-patient tables
    not kept.
    """
    from sim import run

    a_day, replicates = 30.0, 2_000
    scenario = load_scenario(BASE, {"recruitment.sites[0].activation_day": a_day})
    rec = scenario.recruitment
    assert rec is not None and rec.rate_shape is not None and scenario.population is not None
    n, alpha = rec.target_enrolled, rec.rate_shape
    p = eligibility_probability(scenario.population, scenario.eligibility)
    beta = alpha / (rec.sites[0].screening_rate_per_month / DAYS_PER_MONTH)
    t_n = stats.betaprime(n, alpha, loc=a_day, scale=beta / p)
    deadline = rec.enrolment_deadline_day

    result = run(scenario, replicates, seed=20261128, keep_patients=0, workers=2)
    m = result.summary["milestones"]
    p_reached = float(t_n.cdf(deadline))
    mcse = math.sqrt(p_reached * (1 - p_reached) / replicates)
    assert abs(m["target_reached"]["p"] - p_reached) < 4 * mcse, (m["target_reached"], p_reached)

    table = result.replicates
    days = table.loc[table["target_reached"] == 1, "last_patient_in_day"].to_numpy(dtype=float)
    ks = stats.kstest(days, lambda x: t_n.cdf(x) / p_reached)
    assert ks.pvalue > 0.01, ks

    median = float(t_n.median())
    assert median < deadline  # the median exists as a day
    se = math.sqrt(0.25 / replicates) / float(t_n.pdf(median))
    assert abs(m["time_to_target"]["median"]["day"] - median) < 4 * se
    high = m["time_to_target"]["high"]  # the 95th percentile: later than the deadline
    assert high["later"] == (t_n.ppf(0.95) > deadline)


# ---------------------------------------------------------------------------
# 4. Re-forecast: the conjugate posterior of a site's rate
# ---------------------------------------------------------------------------


def _prior(scenario: Scenario) -> list[tuple[float, float]]:
    """Each site's Gamma prior (shape, rate per day), written from the scenario's values."""
    rec = scenario.recruitment
    assert rec is not None and rec.rate_shape is not None
    return [
        (rec.rate_shape, rec.rate_shape / (s.screening_rate_per_month / DAYS_PER_MONTH))
        for s in rec.sites
    ]


def _gammas(beliefs: list[Any]) -> list[tuple[float, float]]:
    """(shape, rate per day) of each site's rate, for sites whose opening day is known."""
    return [(b.shape, b.rate_parameter_days) for b in beliefs]


@pytest.mark.parametrize("path", [BASE, FOUR_SITES], ids=["base", "four_sites"])
def test_posterior_without_observations_is_the_prior(path: Path) -> None:
    r"""With no data every site keeps its prior :math:`\mathrm{Gamma}(\alpha, \alpha / m)`,
    whatever the as-of date; at the start date nothing can have been observed either."""
    scenario = load_scenario(path)
    prior = _prior(scenario)
    beliefs = site_posteriors(scenario, Observed(0.0, [], {}))
    assert [(b.shape, b.prior_rate) for b in beliefs] == prior
    assert not any(b.updated for b in beliefs)
    for as_of in (START, START + timedelta(days=500)):
        beliefs = site_posteriors(scenario, read_observed(None, scenario, as_of))
        assert [(b.shape, b.prior_rate) for b in beliefs] == prior
        assert not any(b.updated for b in beliefs)


def _poisson_days(rng: np.random.Generator, rate_per_day: float, days: float) -> np.ndarray:
    """Event times of a Poisson process on [0, days) (a test-side draw, its own stream)."""
    k = rng.poisson(rate_per_day * days)
    return np.sort(rng.uniform(0.0, days, size=k))


def test_posterior_converges_to_the_observed_rate(tmp_path: Path) -> None:
    r"""One site (the base scenario: open from day 0, prior
    :math:`\mathrm{Gamma}(\alpha, \beta)`) enrols as a Poisson process of known rate
    :math:`r_e` per day, i.e. screens at :math:`\lambda = r_e / p` with :math:`p` the
    closed-form eligibility probability. After :math:`k` enrolments in :math:`\tau`
    days the conjugate posterior is (parameters.md 6c, "Interim update", with the
    enrolment likelihood :math:`\mathrm{Poisson}(p \lambda \tau)`)

    .. math:: \lambda \mid k \sim \mathrm{Gamma}(\alpha + k, \beta + p\tau),

    whose mean :math:`(\alpha + k)/(\beta + p\tau) \to \lambda` and whose SD
    :math:`\sqrt{\alpha + k}/(\beta + p\tau) \approx \sqrt{\lambda / (p\tau)}` shrinks
    like :math:`\tau^{-1/2}`. Checked: the posterior is that Gamma; its mean is within
    4 posterior SDs of :math:`\lambda` for histories of 300, 1,000 and 3,000 days; its
    SD decreases; and a 3,000-day CSV history read by ``read_observed`` gives the same
    posterior as the ``Observed`` built directly.
    """
    scenario = load_scenario(BASE, {"recruitment.deadline": FAR_DEADLINE})  # a long history
    assert scenario.population is not None
    p = eligibility_probability(scenario.population, scenario.eligibility)
    (alpha, beta) = _prior(scenario)[0]
    enrol_rate = 0.05  # per day
    lam = enrol_rate / p
    rng = np.random.default_rng(20240704)

    sds = []
    for tau in (300, 1_000, 3_000):
        days = [float(d) for d in np.floor(_poisson_days(rng, enrol_rate, tau))]
        observed = Observed(float(tau), [(0, d) for d in days], {})
        [(shape, rate)] = _gammas(site_posteriors(scenario, observed))
        assert shape == pytest.approx(alpha + len(days))
        assert rate == pytest.approx(beta + p * tau)
        mean, sd = shape / rate, math.sqrt(shape) / rate
        assert abs(mean - lam) < 4 * sd, (tau, mean, lam, sd)
        sds.append(sd)
    assert sds[0] > sds[1] > sds[2], sds

    csv_path = tmp_path / "observed.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["site", "enrolled_date"])
        for d in days:
            writer.writerow(["Xi'an", (START + timedelta(days=int(d))).isoformat()])
    from_csv = read_observed(csv_path, scenario, START + timedelta(days=3_000))
    assert from_csv.as_of_day == 3_000.0
    np.testing.assert_allclose(
        _gammas(site_posteriors(scenario, from_csv)),
        _gammas(site_posteriors(scenario, observed)),
        rtol=1e-12,
    )


def test_posterior_from_screening_counts(tmp_path: Path) -> None:
    r"""With a ``screened_date`` column the posterior uses the screening count s:
    :math:`\lambda \mid s \sim \mathrm{Gamma}(\alpha + s, \beta + \tau)` (parameters.md
    6c; the screening process is observed directly, so p drops out). A 3,000-day
    history screened at :math:`\lambda` per day, each person enrolled with probability p
    (screen failures are rows with no enrolled date), gives that Gamma, with mean
    within 4 posterior SDs of :math:`\lambda`.
    """
    scenario = load_scenario(BASE, {"recruitment.deadline": FAR_DEADLINE})  # a long history
    assert scenario.population is not None
    p = eligibility_probability(scenario.population, scenario.eligibility)
    (alpha, beta) = _prior(scenario)[0]
    lam, tau = 0.12, 3_000
    rng = np.random.default_rng(20240705)
    screened = np.floor(_poisson_days(rng, lam, tau)).astype(int)
    enrolled = rng.random(screened.size) < p

    csv_path = tmp_path / "observed.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["site", "enrolled_date", "screened_date"])
        for d, e in zip(screened, enrolled, strict=True):
            day = (START + timedelta(days=int(d))).isoformat()
            writer.writerow(["Xi'an", day if e else "", day])
    observed = read_observed(csv_path, scenario, START + timedelta(days=tau))
    assert observed.screened == {0: screened.size}
    assert len(observed.enrolments) == int(enrolled.sum())

    [(shape, rate)] = _gammas(site_posteriors(scenario, observed))
    assert shape == pytest.approx(alpha + screened.size)
    assert rate == pytest.approx(beta + tau)
    mean, sd = shape / rate, math.sqrt(shape) / rate
    assert abs(mean - lam) < 4 * sd, (mean, lam, sd)


def test_a_site_that_enrolled_nobody_learns_from_it_and_the_forecast_follows() -> None:
    r"""A site open for :math:`t` days with no enrolment (issue 13).

    Its rate's posterior is :math:`\mathrm{Gamma}(\alpha, \beta + p t)`, exactly; the
    number enrolled over the :math:`R` days left is then negative binomial,
    :math:`\mathrm{NB}(\alpha, (\beta + pt)/(\beta + pt + pR))` (a Poisson count
    :math:`p\lambda R` mixed over the posterior), so the forecast's
    :math:`P(\text{target reached}) = P(N \ge n)` is checked within 4 MCSE. Before
    the fix the site kept its prior, and the forecast was optimistic exactly when a
    site was failing.
    """
    scenario = load_scenario(BASE)
    rec = scenario.recruitment
    assert rec is not None and rec.rate_shape is not None and scenario.population is not None
    p = eligibility_probability(scenario.population, scenario.eligibility)
    alpha = rec.rate_shape
    beta = alpha / (rec.sites[0].screening_rate_per_month / DAYS_PER_MONTH)
    t = 120.0
    as_of = START + timedelta(days=int(t))
    empty = pd.DataFrame({"site": [], "enrolled_date": []})
    observed = read_observed(empty, scenario, as_of)
    [belief] = site_posteriors(scenario, observed)
    assert (belief.shape, belief.rate_parameter_days) == (alpha, beta + p * t)

    replicates = 2_000
    result = forecast(scenario, observed, as_of, replicates, seed=11, max_extra_sites=0, workers=2)
    rest = rec.enrolment_deadline_day - t
    rate = beta + p * t
    n_left = stats.nbinom(alpha, rate / (rate + p * rest))
    p_reached = float(n_left.sf(rec.target_enrolled - 1))
    got = result.summary["milestones"]["target_reached"]["p"]
    mcse = math.sqrt(p_reached * (1 - p_reached) / replicates)
    assert abs(got - p_reached) < 4 * mcse, (got, p_reached, mcse)
    prior = stats.nbinom(alpha, beta / (beta + p * rest)).sf(rec.target_enrolled - 1)
    assert prior - p_reached > 8 * mcse  # keeping the prior would have been visibly optimistic


# ---------------------------------------------------------------------------
# 5. A forecast from the start with no data is the design-stage simulation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [BASE, FOUR_SITES], ids=["base", "four_sites"])
def test_forecast_from_the_start_without_data_is_the_design_stage(path: Path) -> None:
    """With no observations and as-of = the start date, the posterior is the prior and
    the simulation starts at day 0, so each forecast replicate is the design-stage
    replicate ``simulate_trial(scenario, seed, replicate=r)`` with the same seed: the
    milestones agree exactly (common random numbers), replicate by replicate.

    ``max_extra_sites=0`` skips the search for added sites, which this test does not use.
    """
    scenario = load_scenario(path)
    seed, replicates = 20240706, 30
    result = forecast(scenario, None, START, replicates, seed, max_extra_sites=0)
    assert [(b.shape, b.prior_rate) for b in result.posteriors] == _prior(scenario)
    assert not any(b.updated for b in result.posteriors)
    table = result.replicates.sort_values("replicate", ignore_index=True)
    assert list(table["replicate"]) == list(range(replicates))

    design = pd.DataFrame(
        [simulate_trial(scenario, seed, replicate=r).milestones for r in range(replicates)]
    )
    for column in (
        "enrolled",
        "last_patient_in_day",
        "last_patient_last_visit_day",
        "target_reached",
        "completed_by_deadline",
    ):
        np.testing.assert_array_equal(
            table[column].to_numpy(), design[column].to_numpy(), err_msg=column
        )


# ---------------------------------------------------------------------------
# 6. Stopping: target, caps, activation
# ---------------------------------------------------------------------------


def _check_stopping(trial: TrialResult, scenario: Scenario, opens: dict[str, float]) -> None:
    """The invariants of one replicate's recruitment.

    ``cohort.screened`` lists screened people in the order they were screened (the
    model appends each screening as it happens, across sites in time order), and a
    person's id is ``PERSONS_PER_SITE * site index + order at that site``.
    """
    rec = scenario.recruitment
    assert rec is not None
    m, enrolment, screened = trial.milestones, trial.enrolment, trial.cohort.screened
    names = [s.name for s in rec.sites]

    # Never beyond the target; target_reached means exactly the target.
    assert m["enrolled"] == len(enrolment) <= rec.target_enrolled
    assert m["target_reached"] == (m["enrolled"] == rec.target_enrolled)

    # Per-site counts agree with the table and respect the caps.
    per_site = enrolment["site"].value_counts().to_dict()
    assert m["enrolled_per_site"] == {name: per_site.get(name, 0) for name in names}
    for site in rec.sites:
        if site.cap is not None:
            assert m["enrolled_per_site"][site.name] <= site.cap

    # Nobody enrolled before their site opens or after the enrolment deadline.
    if len(enrolment):
        assert (enrolment["trial_day"] >= enrolment["site"].map(opens)).all()
        assert (enrolment["trial_day"] <= rec.enrolment_deadline_day).all()
        assert enrolment["trial_day"].is_monotonic_increasing

    # Screening: each site screens its people in order, with no gaps.
    assert m["screened"] == len(screened)
    site_of = screened["person"].to_numpy() // PERSONS_PER_SITE
    order = screened["person"].to_numpy() % PERSONS_PER_SITE
    for i in range(len(names)):
        assert list(order[site_of == i]) == list(range(int((site_of == i).sum())))

    # Every eligible person screened was enrolled, in the same order: nobody eligible
    # was screened after the target or their site's cap and then turned away.
    eligible = screened.loc[screened["eligible"], "person"].tolist()
    assert eligible == enrolment["person"].tolist()

    # Screening stops at the target: the last person screened is the last enrolled,
    # so the number screened is the number of screenings up to the last enrolment.
    if m["target_reached"]:
        last = int(enrolment["person"].iloc[-1])
        assert int(screened["person"].iloc[-1]) == last
        assert m["screened"] == int(np.flatnonzero(screened["person"] == last)[0]) + 1
    # A site stops screening at its cap: its last person screened is its last enrolled.
    for i, site in enumerate(rec.sites):
        if site.cap is not None and m["enrolled_per_site"][site.name] == site.cap:
            at_site = screened["person"].to_numpy()[site_of == i]
            mine = enrolment.loc[enrolment["site"] == site.name, "person"]
            assert int(at_site[-1]) == int(mine.iloc[-1])


def test_stopping_at_target_and_caps_four_sites() -> None:
    """The four-site scenario with a cap of 3 on its fastest site, 300 recruitment-only
    replicates: no replicate enrols beyond the target or a cap, or before a site opens
    (its activation day as drawn in that replicate), and screening stops at the target
    and at a site's cap (see ``_check_stopping``). The cap and the target must both be
    reached in some replicates, so the checks bite.
    """
    scenario = load_scenario(FOUR_SITES, {"recruitment.sites[0].cap": 3})
    rec = scenario.recruitment
    assert rec is not None and rec.sites[0].cap == 3
    seed, replicates = 20240707, 300
    capped = reached = 0
    for r in range(replicates):
        trial = simulate_trial(scenario, seed, replicate=r, simulate_patients=False)
        draws = draw_sites(scenario, seed, r)
        opens = {s.name: d.activation_day for s, d in zip(rec.sites, draws, strict=True)}
        for s in rec.sites[1:]:
            assert s.activation_day_min is not None and s.activation_day_max is not None
            assert s.activation_day_min <= opens[s.name] <= s.activation_day_max
        _check_stopping(trial, scenario, opens)
        capped += trial.milestones["enrolled_per_site"][rec.sites[0].name] == 3
        reached += trial.milestones["target_reached"]
    assert capped > replicates / 2 and reached > replicates / 2, (capped, reached)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    sites=st.lists(
        st.tuples(
            st.floats(0.5, 30.0),  # screening rate per month
            st.one_of(st.none(), st.integers(1, 8)),  # cap
            st.floats(0.0, 600.0),  # activation day
        ),
        min_size=1,
        max_size=4,
    ),
    target=st.integers(1, 40),
    rate_model=st.sampled_from(["poisson", "poisson_gamma"]),
    replicate=st.integers(0, 10_000),
)
def test_stopping_invariants_hold_for_any_sites(
    sites: list[tuple[float, int | None, float]],
    target: int,
    rate_model: str,
    replicate: int,
) -> None:
    """Random site sets (rates, caps, fixed activation days), targets and rate models
    on the base population (about 60 % screen failure) and calendar: the stopping
    invariants of ``_check_stopping`` hold in every replicate."""
    spec: list[dict[str, Any]] = [
        {
            "name": f"site {i}",
            "activation_day": day,
            "screening_rate_per_month": rate,
            **({"cap": cap} if cap is not None else {}),
        }
        for i, (rate, cap, day) in enumerate(sites)
    ]
    scenario = load_scenario(
        BASE,
        {
            "recruitment.sites": spec,
            "recruitment.target_enrolled": target,
            "recruitment.rate_model": rate_model,
        },
    )
    trial = simulate_trial(scenario, 20240708, replicate=replicate, simulate_patients=False)
    opens = {f"site {i}": day for i, (_, _, day) in enumerate(sites)}
    _check_stopping(trial, scenario, opens)
