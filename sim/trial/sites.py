"""Site processes: each site opens, screens people as a Poisson process, and enrols the eligible.

Each site opens on its activation day (fixed, or drawn uniformly) and screens
people as a Poisson process whose rate is the site's ``screening_rate_per_month``
(optionally changed from given days by multipliers). Screened people are keyed by
site and by their order at that site (person ``1,000,000 x site + k``), so every
person's random streams are the same whatever the other sites do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.errors import DosesimError
from sim.population import (
    People,
    PeopleSource,
)
from sim.scenario import RecruitmentSettings, Scenario, Site
from sim.site_rates import SiteDraw, SiteRate
from sim.streams import stream
from sim.trial.cohort import Cohort

if TYPE_CHECKING:
    pass


PERSONS_PER_SITE = 1_000_000


#: More people screened in one replicate than this stop the run with a message: each
#: person drawn holds a row of random numbers, and no trial screens this many.
MAX_SCREENED_PER_REPLICATE = 200_000


def recruitment_settings(scenario: Scenario) -> RecruitmentSettings:
    """The scenario's ``[recruitment]`` table, or a clear error when it has none."""
    scenario.require("recruitment", purpose="recruitment")
    assert scenario.recruitment is not None
    return scenario.recruitment


def _next_arrival(t: float, e: float, rate: float, site: Site) -> float:
    """The time after ``t`` at which the site's cumulative intensity has grown by ``e``."""
    edges = [c.from_day for c in site.rate_changes if c.from_day > t]
    mults = [c.multiplier for c in site.rate_changes]
    days = [c.from_day for c in site.rate_changes]

    def factor(x: float) -> float:
        i = int(np.searchsorted(days, x, side="right"))
        return 1.0 if i == 0 else mults[i - 1]

    now = t
    for edge in [*edges, math.inf]:
        r = rate * factor(now)
        if r > 0 and now + e / r <= edge:
            return now + e / r
        if edge == math.inf:
            return math.inf
        e -= r * (edge - now)
        now = edge
    return math.inf  # pragma: no cover


@dataclass
class SiteProcesses:
    """The site processes of one replicate, enrolling into a cohort (or only counting)."""

    cohort: Cohort
    sites: list[SiteDraw]
    site_specs: list[Site]
    start_day: float = 0.0
    enrolled_before: list[int] = field(default_factory=list)
    simulate_patients: bool = True
    arrival_days: list[list[np.ndarray]] = field(default_factory=list)
    """Per site, the day of each arrival whose person was drawn, in order."""
    enrolled: list[tuple[int, float, int]] = field(default_factory=list)
    stopped: bool = False
    stopped_day: float = math.inf
    sources: list[PeopleSource] = field(default_factory=list)
    first: dict[int, tuple[np.random.Generator, People]] = field(default_factory=dict)
    """Site i's people stream and first block, when drawn ahead (:func:`simulate_trials`)."""
    drawn: int = 0
    """People drawn so far by every site (screened, or drawn ahead to be screened)."""

    def __post_init__(self) -> None:
        rec = recruitment_settings(self.cohort.scenario)
        self.target = rec.target_enrolled
        self.last_day = rec.enrolment_deadline_day
        self.site_enrolled = list(self.enrolled_before) or [0] * len(self.sites)
        self.total = sum(self.site_enrolled)
        allocation = self.cohort.scenario.allocation
        #: with a target per arm, the arms' counts (allocation happens at enrolment)
        self.per_arm = allocation is not None and allocation.target == "per_arm"
        self.arm_enrolled = [0] * len(self.cohort.scenario.arms)
        if self.total >= self.target and not self.per_arm:
            self.stopped, self.stopped_day = True, -math.inf
        for i in range(len(self.sites)):
            self.cohort.env.process(self._site(i))

    def _site(self, i: int) -> Any:
        """Site i's process: it wakes for each eligible person, not for screen failures.

        A screen failure changes nothing but the counts, so the site draws arrivals
        and people ahead up to the next eligible person and sleeps until then. Who
        was screened is settled at the end: every arrival up to the deadline and up
        to the moment the target was reached (:meth:`screened_counts`).
        """
        env = self.cohort.env
        draw, spec = self.sites[i], self.site_specs[i]
        # this site's people, in turn (drawn in blocks; person k is row k of the stream)
        if i in self.first:
            rng, block = self.first[i]
            people = PeopleSource(self.cohort.scenario, rng, PERSONS_PER_SITE * i, block)
        else:
            rng = self.cohort.stream("site_population", i)
            people = PeopleSource(self.cohort.scenario, rng, PERSONS_PER_SITE * i)
        self.sources.append(people)
        days: list[np.ndarray] = []  # arrival days of the people drawn, a block at a time
        self.arrival_days.append(days)
        if spec.cap is not None and self.site_enrolled[i] >= spec.cap:
            return  # full before it starts (enrolments observed before a re-forecast)
        arrivals = self.cohort.stream("arrivals", i)
        t, rate = max(draw.activation_day, self.start_day), draw.rate_per_day
        while True:
            block = people.next_block()
            self.drawn += len(block)
            if self.drawn > MAX_SCREENED_PER_REPLICATE:
                raise DosesimError(
                    f"{self.cohort.scenario.source or self.cohort.scenario.name}: more than "
                    f"{MAX_SCREENED_PER_REPLICATE:,} people screened in one replicate trial; "
                    "the screening rates and eligibility are far outside any trial's (check "
                    "[recruitment.sites] and [eligibility])"
                )
            times = _arrival_times(t, arrivals.standard_exponential(len(block)), rate, spec)
            n = int(np.searchsorted(times, self.last_day, side="right"))  # up to the deadline
            days.append(times[:n])
            for row in np.flatnonzero(block.eligible[:n]):
                day = float(times[row])
                yield env.timeout(day - env.now)
                if self.stopped:
                    return
                self.site_enrolled[i] += 1
                self.total += 1
                self.enrolled.append((i, day, int(block.person[row])))
                if self.per_arm:  # allocated now, counted by arm (the same allocation
                    # the cohort then uses: simulating patients or not changes nobody's arm)
                    self.arm_enrolled[self.cohort.allocate(block, int(row), i)] += 1
                if self.simulate_patients:
                    self.cohort.enrol(block, int(row), day, site=i)
                if self.reached():
                    self.stopped, self.stopped_day = True, day
                if spec.cap is not None and self.site_enrolled[i] >= spec.cap:
                    days[-1] = times[: row + 1]  # nobody after the one who filled the cap
                    return
            if n < len(block):
                return
            t = float(times[-1])

    def reached(self) -> bool:
        """Whether the enrolment target is reached: in total, or in every arm."""
        if self.per_arm:
            return min(self.arm_enrolled) >= self.target
        return self.total >= self.target

    def screened_counts(self) -> list[int]:
        """How many people each site screened: its arrivals until the target was reached."""
        return [
            int(np.searchsorted(np.concatenate(days), self.stopped_day, side="right"))
            if days
            else 0
            for days in self.arrival_days
        ]

    def screened_people(self) -> list[tuple[People, int]]:
        """Everyone screened, as (block, row), in the order of their arrival."""
        everyone = []
        for days, source, n in zip(
            self.arrival_days, self.sources, self.screened_counts(), strict=True
        ):
            flat = np.concatenate(days)[:n] if days else np.empty(0)
            pairs = zip(flat.tolist(), source.screened(n), strict=True)
            everyone += [(day, block, row) for day, (block, row) in pairs]
        everyone.sort(key=lambda x: x[0])
        return [(block, row) for _, block, row in everyone]


def _arrival_times(t: float, gaps: np.ndarray, rate: float, site: Site) -> np.ndarray:
    """The next arrivals after ``t`` from their Exp(1) increments of cumulative intensity."""
    if site.rate_changes:
        out = np.empty(gaps.size)
        for k, e in enumerate(gaps.tolist()):
            t = out[k] = _next_arrival(t, e, rate, site)
        return out
    if rate <= 0:
        return np.full(gaps.size, math.inf)
    # one addition at a time, as a loop would: cumsum adds in order
    return np.cumsum(np.concatenate(([t], gaps / rate)))[1:]


def draw_sites(
    scenario: Scenario,
    seed: int,
    replicate: int,
    posteriors: Sequence[SiteRate] | None = None,
) -> list[SiteDraw]:
    """Each site's opening day and rate for one replicate (from the prior, or ``posteriors``)."""
    rec = recruitment_settings(scenario)
    draws = []
    for i, site in enumerate(rec.sites):
        belief = posteriors[i] if posteriors is not None else SiteRate.prior(site, rec)
        draws.append(belief.draw(stream(seed, "replicate", replicate, "site", i)))
    return draws


def extra_site(
    scenario: Scenario, seed: int, replicate: int, j: int, start_day: float
) -> tuple[Site, SiteDraw]:
    """A site added at a re-forecast: the scenario's average prior, opening after the delay."""
    rec = recruitment_settings(scenario)
    mean_per_month = float(np.mean([s.screening_rate_per_month for s in rec.sites]))
    opens = start_day + rec.new_site_delay_days
    spec = Site(
        name=f"added site {j + 1}", activation_day=opens, screening_rate_per_month=mean_per_month
    )
    rng = stream(seed, "replicate", replicate, "extra_site", j)
    return spec, SiteRate.prior(spec, rec).draw(rng)
