"""One bounded cache of values remembered by the identity of objects.

The simulation remembers what it computed for an object (a schedule, a list of
hazards, a dose action) as long as that object is in use: results depend only
on the objects, never on what was cached before. Entries hold the objects
themselves, so an identity check guards against ids reused after an object is
freed; a full cache is emptied at once (a cold cache costs only time).
"""

from __future__ import annotations

from collections.abc import Hashable
from operator import is_
from typing import Any, Generic, TypeVar

__all__ = ["IdentityCache"]

V = TypeVar("V")


class IdentityCache(Generic[V]):
    """Values keyed by a few objects' identities (and optional plain values), bounded.

    Parameters
    ----------
    max_entries : int
        When full, the cache is emptied before the next entry is added.

    Examples
    --------
    >>> cache: IdentityCache[int] = IdentityCache(100)
    >>> schedule = object()
    >>> cache.get((schedule,)) is None
    True
    >>> cache.put((schedule,), 7)
    7
    >>> cache.get((schedule,))
    7
    """

    __slots__ = ("_entries", "max_entries")

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        # key -> (the objects held, or the one object, and the value)
        self._entries: dict[Hashable, tuple[Any, V]] = {}

    def get(self, objects: tuple[Any, ...], values: tuple[Hashable, ...] = ()) -> V | None:
        """The value stored for these very objects (and these values), or None."""
        return self.lookup((*map(id, objects), *values), objects)

    def lookup(self, key: Hashable, objects: tuple[Any, ...]) -> V | None:
        """:meth:`get` with the key built by the caller: the objects' ids, then the values
        (on a hot path, a tuple display is cheaper than the generic build)."""
        entry = self._entries.get(key)
        if entry is not None and all(map(is_, entry[0], objects)):
            return entry[1]
        return None  # not held, or an id reused by another object

    def put(self, objects: tuple[Any, ...], value: V, values: tuple[Hashable, ...] = ()) -> V:
        """Remember ``value`` for these objects (and values); returns it."""
        return self.store((*map(id, objects), *values), objects, value)

    def store(self, key: Hashable, objects: Any, value: V) -> V:
        """:meth:`put` with the key built by the caller, as for :meth:`lookup`."""
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (objects, value)
        return value

    def values(self) -> list[V]:
        """The values held, oldest first."""
        return [entry[1] for entry in self._entries.values()]

    def get_one(self, obj: Any) -> V | None:
        """The value stored by :meth:`put_one` for this very object, or None (faster than
        :meth:`get` with one object; the two keep separate entries)."""
        entry = self._entries.get(id(obj))
        if entry is not None and entry[0] is obj:
            return entry[1]
        return None

    def put_one(self, obj: Any, value: V) -> V:
        """:meth:`put` for one object and no values (for :meth:`get_one`)."""
        return self.store(id(obj), obj, value)

    def __len__(self) -> int:
        return len(self._entries)
