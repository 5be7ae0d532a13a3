"""A patient on study: their plan, their block's draws and PK, and what the log records.

A :class:`Patient` holds its schedules as planned (and, once changed, as
modified), a handle to its block of people (covariates and random draws) and to
its block's prepared first grid (:mod:`sim.trial.batching`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim.exposure import OralOneCompartment
from sim.hazards import (
    HazardGrid,
)
from sim.population import (
    Candidate,
    People,
)
from sim.schedule import (
    Schedule,
)
from sim.trial.batching import PreparedBlock

LANDMARK_WEEKS = (4, 12, 24, 52)
#: More occurrences of one adverse event than this for one patient stop the run with a
#: message: a valid but absurd scenario (a baseline of 1,000 a year times multipliers up
#: to 1,000) would otherwise simulate millions of events, which looks like a hang.
MAX_EVENTS_PER_PATIENT = 10_000


@dataclass(frozen=True)
class EventRecord:
    """One line of the event log.

    Attributes
    ----------
    trial_day : float
        Days from the trial start.
    patient_id : int
    day : float
        Days from the patient's first dose.
    event : str
        ``enrolled``, an adverse event's name, an action (``mmf_reduced``,
        ``mmf_held``, ``mmf_stopped``, ``prednisone_reescalated``), or an exit
        (``completed``, ``withdrawn``, ``died``, ``discontinued``).
    detail : str
    """

    trial_day: float
    patient_id: int
    day: float
    event: str
    detail: str


@dataclass(frozen=True)
class Adjustment:
    """A dose modification: the new dosing runs from ``day`` (the reason becomes EXADJ)."""

    patient_id: int
    drug: str
    day: int
    reason: str


@dataclass(eq=False, slots=True)
class Patient:
    patient_id: int
    people: People
    row: int
    enrol_day: float
    prednisone: Schedule
    mmf: Schedule
    block_mpa: OralOneCompartment
    """The MPA models of the patient's block (arrays): theirs is row ``row``."""
    prepared: PreparedBlock
    start_mg: float
    ae_counts: dict[str, int]
    targets: np.ndarray
    first_times: np.ndarray
    grid_row: int
    """The patient's row in ``prepared.batch`` (the first grid) and ``prepared.pk_levels``."""
    death_windows: tuple[tuple[float, float], ...] = ()
    exit_day: float = math.nan
    status: str = ""
    exit_reason: str = ""
    _mpa: OralOneCompartment | None = None

    @property
    def mpa(self) -> OralOneCompartment:
        """The patient's MPA model (built on first use: most patients never need it alone)."""
        if self._mpa is None:
            self._mpa = self.block_mpa.row(self.row)
        return self._mpa

    @property
    def candidate(self) -> Candidate:
        return self.people.candidate(self.row)

    def covariates(self, names: Sequence[str]) -> dict[str, float]:
        """The patient's covariates of these names (:data:`sim.hazards.plan.COVARIATES`)."""
        return {name: self.people.covariate(name).item(self.row) for name in names}

    @property
    def weight_kg(self) -> float:
        return float(self.people.weight_kg[self.row])

    def _stop_day(self, duration: int) -> int | None:
        """The first day without dosing for a patient who left early; None otherwise."""
        if self.status in ("", "completed"):
            return None
        return min(math.floor(self.exit_day) + 1, duration)

    def prednisone_given_mg(self, duration: int) -> float:
        """Total prednisone taken on study (mg): up to the day of exit, inclusive."""
        stop = self._stop_day(duration)
        if stop is None:
            return self.prednisone.total_mg
        return float(self.prednisone.cumulative(stop))

    def given(self, duration: int) -> tuple[Schedule, Schedule]:
        """The schedules as given: as planned up to the day of exit (inclusive)."""
        stop = self._stop_day(duration)
        if stop is None:
            return self.prednisone, self.mmf
        return self.prednisone.truncated(stop), self.mmf.truncated(stop)


def first_grid(p: Patient) -> HazardGrid:
    """The patient's grid of their first plan, from their block's batch."""
    starts, ends, rates, cum = p.prepared.batch
    j = p.grid_row
    return HazardGrid._of(starts[j], ends[j], rates[j], cum[j])
