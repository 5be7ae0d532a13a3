"""The SimPy trial: the per-scenario context, patients, the cohort, sites, the whole trial.

- :mod:`sim.trial.context`: what every replicate of a scenario shares;
- :mod:`sim.trial.batching`: people prepared in blocks (start doses, PK, first events);
- :mod:`sim.trial.patient` and :mod:`sim.trial.cohort`: the patient process and a cohort;
- :mod:`sim.trial.sites` and :mod:`sim.trial.trial`: site processes and one replicate trial;
- :mod:`sim.trial.milestones`: recruitment milestones with censored quantiles.
"""

from sim.lazy import submodules

__getattr__ = submodules(
    __name__, ("batching", "cohort", "context", "milestones", "patient", "sites", "trial")
)
