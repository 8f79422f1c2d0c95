"""Session stores, one module each, picked by ``SESSION_TYPE`` from a small registry.

The registry names each store's class by module path and loads the module only when the
store is chosen, so ``import flask_session`` needs neither ``fcntl`` (the filesystem
store; not on Windows) nor ``redis``: an app pays for, and needs installed, only the
store it uses. Adding a store is its module (a :class:`~flask_session.stores.base.Store`
subclass with its settings) and one line here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .._version import install_hint
from ..errors import SessionConfigError
from .base import CleanupReport, IncrResult, Loaded, Store
from .upgrade08 import Upgrade08

if TYPE_CHECKING:
    from ..settings import SessionSettings

#: SESSION_TYPE -> (module, class, the extra that installs its client library)
STORE_CLASSES: dict[str, tuple[str, str, str | None]] = {
    "filesystem": ("flask_session.stores.filesystem", "FileSystemStore", None),
    "redis": ("flask_session.stores.redis", "RedisStore", "redis"),
    "sqlalchemy": ("flask_session.stores.sqlalchemy", "SQLAlchemyStore", "sqlalchemy"),
    "memcached": ("flask_session.stores.memcached", "MemcachedStore", "memcached"),
}
#: every SESSION_TYPE, in the order messages list them
STORE_TYPES = tuple(STORE_CLASSES)


def store_class(store_type: str) -> type[Store]:
    """The class of the store named ``store_type`` (one of STORE_TYPES), importing its
    module; SessionConfigError naming the package to install if its client is missing."""
    module_name, class_name, extra = STORE_CLASSES[store_type]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        if extra is None or not error.name or error.name.startswith("flask_session"):
            raise
        raise SessionConfigError(
            f"SESSION_TYPE is {store_type!r} but {error.name} is not installed:"
            f" {install_hint(extra)}"
        ) from error
    found: type[Store] = getattr(module, class_name)
    return found


def make_store(settings: SessionSettings) -> Store:
    """The store ``settings`` ask for (checked by read_settings)."""
    cls = store_class(settings.store_type)
    if settings.fs08_servers is True and not issubclass(cls, Upgrade08):
        raise SessionConfigError(
            f"SESSION_08_SERVERS is True but the {settings.store_type} store cannot keep"
            " Flask-Session 0.8 servers served during a rolling upgrade: switch with a"
            " cutover (stop every 0.8 server first; see the docs' 'Upgrading from"
            " Flask-Session 0.8'), or leave SESSION_08_SERVERS False"
        )
    return cls.from_settings(settings)


__all__ = [
    "STORE_CLASSES",
    "STORE_TYPES",
    "CleanupReport",
    "IncrResult",
    "Loaded",
    "Store",
    "make_store",
    "store_class",
]
