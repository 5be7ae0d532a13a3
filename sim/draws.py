"""The per-person random-number layout: which of a person's uniform draws is which.

Every screened person ("person") takes one fixed-length row of uniform draws,
``DRAWS_PER_PERSON`` of them, always all of them and always in the same order
(the start dose too, even when the protocol fixes it; their PK and event draws
too, even when screened out). A change to one part of a scenario therefore
leaves every other draw as it was (common random numbers), and a site's people
can be drawn one at a time or in blocks of any size with the same result:
person ``k`` of a site always has row ``k`` of the site's stream.

A row holds, in order:

* ``COVARIATE_DRAWS``: sex, age, weight, FVC, one per exclusion condition
  (``EXCLUSION_CONDITIONS`` order), start dose;
* ``PK_NORMALS``: standard normals (by the inverse CDF) for the random effects
  on (CL, V) of MPA, then of prednisolone;
* ``THRESHOLD_SLOTS``: Exp(1) draws (by the inverse CDF), the first threshold
  of each hazard in hazard order;
* ``EVENT_DRAWS``: for each hazard slot and each of its first
  ``EVENT_OCCURRENCES`` occurrences, ``DRAWS_PER_OCCURRENCE`` uniforms: the
  next threshold, then one per action of the event (later occurrences and
  events with more actions draw from streams of their own, see
  :mod:`sim.trial.cohort`).
"""

from __future__ import annotations

from sim.scenario import EXCLUSION_CONDITIONS

__all__ = [
    "COVARIATE_DRAWS",
    "DRAWS_PER_OCCURRENCE",
    "DRAWS_PER_PERSON",
    "EVENTS_AT",
    "EVENT_OCCURRENCES",
    "PK_AT",
    "PK_NORMALS",
    "THRESHOLDS_AT",
    "THRESHOLD_SLOTS",
    "event_draws_at",
]

COVARIATE_DRAWS = 5 + len(EXCLUSION_CONDITIONS)
"""Uniforms per person for covariates: sex, age, weight, FVC, each exclusion condition, start."""
PK_NORMALS = 4
"""Standard normals per person for PK random effects: (CL, V) of MPA, then prednisolone."""
THRESHOLD_SLOTS = 16
"""Exp(1) draws per person: the first threshold of each hazard (in hazard order)."""
EVENT_OCCURRENCES = 2
"""Occurrences of each hazard whose draws are in the person's row."""
DRAWS_PER_OCCURRENCE = 4
"""Uniforms per reserved occurrence: the next threshold, then up to three actions."""
PK_AT = COVARIATE_DRAWS
"""Where a row's PK normals start."""
THRESHOLDS_AT = PK_AT + PK_NORMALS
"""Where a row's first thresholds start."""
EVENTS_AT = THRESHOLDS_AT + THRESHOLD_SLOTS
"""Where a row's reserved event draws start."""
DRAWS_PER_PERSON = EVENTS_AT + THRESHOLD_SLOTS * EVENT_OCCURRENCES * DRAWS_PER_OCCURRENCE
"""The length of each person's row of uniforms."""


def event_draws_at(hazard: int, occurrence: int) -> int | None:
    """Offset in ``People.event_draws`` of a hazard's k-th occurrence (1-based), or None."""
    if hazard >= THRESHOLD_SLOTS or not 1 <= occurrence <= EVENT_OCCURRENCES:
        return None
    return (hazard * EVENT_OCCURRENCES + occurrence - 1) * DRAWS_PER_OCCURRENCE
