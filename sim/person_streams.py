"""Draws keyed by person, from counter-based streams of their own.

A person's row of draws (:mod:`sim.draws`) has a fixed layout; a covariate added
later (height, a condition a scenario declares) cannot take a slot of it without
moving every draw after. Instead each gets a stream of its own: Philox, keyed by the
people stream's seed with one more spawn key (the covariate's tag), where person
``k`` takes the first value of counter ``k``. So a person's value depends on nothing
but the seed, the tag and who they are, and adding one changes no other draw.
"""

from __future__ import annotations

import zlib

import numpy as np
import numpy.typing as npt

__all__ = ["HEIGHT_TAG", "condition_tag", "person_uniforms"]

HEIGHT_TAG = 0x4845
"""The height stream's tag ("HE")."""


def condition_tag(name: str) -> int:
    """The tag of a declared condition's stream: the CRC-32 of its name, above the
    built-in tags (so that two names never share a stream by a rename elsewhere)."""
    return 0x1_0000_0000 + zlib.crc32(name.encode())


def person_uniforms(
    rng: np.random.Generator, persons: npt.NDArray[np.int64], tag: int
) -> npt.NDArray[np.float64]:
    """One uniform per person, from the stream ``tag`` below ``rng``'s seed.

    Parameters
    ----------
    rng : numpy.random.Generator
        The people stream (its ``SeedSequence`` keys the new stream; its state is
        not used or changed).
    persons : array of int
        The people's indices.
    tag : int
        The stream's tag (:data:`HEIGHT_TAG`, :func:`condition_tag`).
    """
    seq = rng.bit_generator.seed_seq
    assert isinstance(seq, np.random.SeedSequence)
    key = np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, tag))
    philox_key = key.generate_state(2, np.uint64)
    out = np.empty(persons.size)
    start = 0
    while start < persons.size:  # runs of consecutive people: one jump each
        stop = start + 1
        while stop < persons.size and persons[stop] == persons[stop - 1] + 1:
            stop += 1
        bits = np.random.Philox(key=philox_key)
        bits.advance(int(persons[start]))
        out[start:stop] = np.random.Generator(bits).random(4 * (stop - start))[::4]
        start = stop
    return out
