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

from sim.endpoints import stop_day
from sim.exposure import OralOneCompartment
from sim.population import (
    Candidate,
    People,
)
from sim.schedule import (
    Schedule,
)
from sim.trial.batching import PreparedBlock

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


@dataclass(eq=False, slots=True)
class Patient:
    """An enrolled patient: their plan as it stands, their draws, counts and exit."""

    patient_id: int
    people: People
    row: int
    enrol_day: float
    schedules: dict[str, Schedule]
    """By drug, as planned from now on (and as given before): replaced, never changed."""
    block_mpa: OralOneCompartment
    """The MPA models of the patient's block (arrays): theirs is row ``row``."""
    prepared: PreparedBlock
    start_mg: float
    ae_counts: dict[str, int]
    targets: np.ndarray
    first_times: np.ndarray
    grid_row: int
    """The patient's row of their block's prepared batch (:meth:`PreparedBlock.first_grid`)."""
    death_windows: tuple[tuple[float, float], ...] = ()
    exit_day: float = math.nan
    status: str = ""
    exit_reason: str = ""
    _mpa: OralOneCompartment | None = None
    arm: int = 0
    """The patient's arm: an index into the scenario's ``[[arms]]`` (0 without arms)."""
    disease_events: tuple[tuple[str, float], ...] = ()
    """(event, day) of the adverse events the disease model reads (flares, rescues)."""

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
    def prednisone(self) -> Schedule:
        """The prednisone schedule."""
        return self.schedules["prednisone"]

    @property
    def weight_kg(self) -> float:
        return float(self.people.weight_kg[self.row])

    def prednisone_given_mg(self, duration: int) -> float:
        """Total prednisone taken on study (mg): up to the day of exit, inclusive."""
        prednisone = self.schedules["prednisone"]
        if self.status in ("", "completed"):  # as sim.endpoints.stop_day, inline
            return prednisone.total_mg
        return float(prednisone.cumulative(min(math.floor(self.exit_day) + 1, duration)))

    def given(self, duration: int) -> dict[str, Schedule]:
        """The schedules by drug as given: as planned up to the day of exit (inclusive)."""
        stop = stop_day(self.status, self.exit_day, duration)
        if stop is None:
            return dict(self.schedules)
        return {drug: schedule.truncated(stop) for drug, schedule in self.schedules.items()}
