"""Store-wide counters: an optional capability of a store.

A counter is one integer shared by every client of the store (the counter service's
shared counter). It is not part of the session contract: a store offers counters by
implementing :class:`Counters`, and code that needs them asks for it (``isinstance(store,
Counters)``) and refuses to start, naming the store, when it is missing.

Counters live in a namespace of their own under ``key_prefix``: they never collide with a
session, and two apps with different prefixes on one store never share one. A store
refuses (with ValueError) a name :func:`check_counter_name` refuses, so a name that works
on one store works on all.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

#: What a counter's name may be: safe in a file name, a Redis key and a SQL value alike.
COUNTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", re.ASCII)


def check_counter_name(name: str) -> str:
    """``name`` if it is a valid counter name; ValueError otherwise."""
    if not isinstance(name, str) or COUNTER_NAME.fullmatch(name) is None:
        raise ValueError(
            f"counter name {name!r}: use 1 to 64 letters, digits, '_' or '-',"
            " starting with a letter or digit"
        )
    return name


@runtime_checkable
class Counters(Protocol):
    """What a store offering counters implements. Every verb may raise StoreUnavailable."""

    def counter_incr(self, name: str) -> int:
        """Add one to counter ``name`` (missing counts as 0) and return the new value.

        Atomic across threads, processes and machines: no two calls return the same
        number until ``counter_reset``. Never applied twice for one call.
        """

    def counter_value(self, name: str) -> int:
        """The counter's current value (0 if never incremented). Creates nothing."""

    def counter_reset(self, name: str) -> None:
        """Start counter ``name`` again: the next ``counter_incr`` returns 1."""
