"""One kit per store: everything the tests know about a store, in one module each.

A kit (:class:`~tests.support.kits.base.StoreKit`) says how to get a fresh, empty store of
its kind (``settings``), which server fixture backs it (``server_fixture``: a test stops
and starts it for an outage), how its data is laid out (``session_count``, ``lock_count``,
``items``, ``corrupt``) and how to make it refuse service (``outage``).

Every module in this package that defines ``KIT`` is a store the tests run on: adding a
store to the tests is adding one file here. ``KITS`` lists them by ``store_type`` (the
test id), in their ``rank`` order.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import StoreKit


def _discover() -> dict[str, StoreKit]:
    found = []
    for module in pkgutil.iter_modules(__path__):
        kit = getattr(importlib.import_module(f"{__name__}.{module.name}"), "KIT", None)
        if kit is not None:
            found.append(kit)
    return {kit.store_type: kit for kit in sorted(found, key=lambda kit: kit.rank)}


#: store_type -> its kit; tests asking for ``store_type`` run on each, in this order
KITS: dict[str, StoreKit] = _discover()


def kit_for(store_type: str) -> StoreKit:
    return KITS[store_type]


def kit_of(store: object) -> StoreKit:
    """The kit of a store object (by its ``name`` and, for sqlalchemy, its database)."""
    for kit in KITS.values():
        if kit.owns(store):
            return kit
    raise LookupError(f"no kit knows the store {store!r}")


__all__ = ["KITS", "StoreKit", "kit_for", "kit_of"]
