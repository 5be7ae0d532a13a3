"""Named random streams: one reproducible generator per address under a seed.

There is no global random state in dosesim. Every random number comes from a
stream addressed by a path of keys under one integer seed. The cohort model uses,
in replicate r:

* ``("replicate", r, "site_population", i)``: site i's people in turn, each
  taking a fixed row of uniforms (covariates, PK normals, one Exp(1) per hazard,
  and draws reserved for the first two occurrences of each hazard; see
  :mod:`sim.population`);
* ``("replicate", r, "arrivals", i)`` and ``("replicate", r, "site", i)``:
  site i's screening times, activation and rate;
* ``("replicate", r, "hazard", name, person, k)`` and
  ``("replicate", r, "actions", name, person, k)``: the k-th occurrence of an
  event for a person, and its actions, once the reserved draws are used up.

A stream depends only on its address, so results do not depend on the order in
which patients are processed or on how many workers there are, and two scenarios
run with the same seed share their random numbers wherever they share structure
(common random numbers).

The address becomes a :class:`numpy.random.SeedSequence` ``spawn_key``; string
keys are mapped to integers by CRC-32, which is stable across platforms and
Python versions.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["stream", "stream_key"]


def stream_key(*path: int | str) -> tuple[int, ...]:
    """The integer spawn key for a stream path (strings by CRC-32; ints must be >= 0)."""
    key: list[int] = []
    for part in path:
        if isinstance(part, str):
            key.append(zlib.crc32(part.encode("utf-8")))
        elif isinstance(part, int | np.integer) and part >= 0:
            key.append(int(part))
        else:
            raise ValueError(f"stream keys are names or integers >= 0, got {part!r}")
    return tuple(key)


def stream(seed: int, *path: int | str) -> np.random.Generator:
    """The generator for one named stream under ``seed``.

    Parameters
    ----------
    seed : int
        The run's seed (>= 0).
    *path : int or str
        The stream's address, e.g. ``("pk", patient_slot)``.

    Examples
    --------
    >>> a = stream(1, "pk", 0).standard_normal()
    >>> b = stream(1, "pk", 0).standard_normal()
    >>> a == b
    True
    """
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=stream_key(*path)))
