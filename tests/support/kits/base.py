"""What every store kit provides (see the package docstring)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from flask_session.stores.common import at_rest_name

from ..server_process import ServerProcess
from ..setting_rows import Setting


class StoreKit:
    """One store as the tests know it. Subclasses fill in every method and attribute."""

    #: the test id (``store_type``): "sqlite" and "postgresql" are one store on two databases
    store_type: str = ""
    #: SESSION_TYPE, and the store object's ``name``
    session_type: str = ""
    #: where the kit comes in the list of stores (test ids are collected in this order)
    rank: int = 0
    #: the session-scoped fixture of the server process behind the store (``stop()`` /
    #: ``start()`` make an outage), or None for stores kept in local files
    server_fixture: str | None = None

    #: whether a held session lock is something stored (a key, a row, an item) that
    #: ``lock_count`` sees; False for the filesystem store's flock
    locks_are_stored: bool = True
    #: whether expired sessions stay until ``flask session cleanup`` (cron) removes them,
    #: rather than expiring in the store itself
    expires_by_cleanup: bool = False
    #: what the store is proven on under the marker ``redis_topologies`` (tests/conftest.py);
    #: "standalone" is the store's own fixture, the others are Redis topologies
    topologies: tuple[str, ...] = ("standalone",)
    #: the rows of the store's own settings in the service's settings table
    #: (tests/sessionapp/test_settings_table.py)
    setting_rows: tuple[Setting, ...] = ()
    #: the store's settings no row covers (objects only Python can give), and why
    python_only_settings: dict[str, str] = {}

    def server(self) -> ServerProcess:
        """A new, not yet started server process for the fixture ``server_fixture``
        (tests/conftest.py starts it once per run); only for kits that name one."""
        raise NotImplementedError(f"{self.store_type} keeps its data in local files")

    def owns(self, store: Any) -> bool:
        """Whether ``store`` (a library store object) is one of this kit's."""
        return bool(store.name == self.session_type)

    def settings(self, request: pytest.FixtureRequest, session_dir: Path) -> dict[str, Any]:
        """SESSION_* settings of a fresh, empty store, started by its fixture; files (if
        the store keeps any) go in ``session_dir``."""
        raise NotImplementedError

    def session_names(self, store: Any, prefix: str = "session:") -> set[str]:
        """At-rest names (``at_rest_name(prefix, sid)``) of the sessions the store holds
        (expired ones included while they are still there), looked up directly, not
        through the store's verbs. The store holds no id: a name is all it knows."""
        raise NotImplementedError

    def holds(self, store: Any, sid: str, prefix: str = "session:") -> bool:
        """Whether the store holds a session ``sid``."""
        return at_rest_name(prefix, sid) in self.session_names(store, prefix)

    def session_count(self, store: Any, prefix: str = "session:") -> int:
        """How many sessions the store holds."""
        return len(self.session_names(store, prefix))

    def lock_count(self, store: Any, prefix: str = "session:") -> int:
        """Session locks (lock keys, lease rows, lock items) the store holds."""
        raise NotImplementedError

    def items(self, store: Any) -> list[str]:
        """Everything the store holds, sorted: file names, keys or rows (sessions, locks,
        counters), except what the store keeps only for the length of one request."""
        raise NotImplementedError

    def stored_document(self, store: Any, sid: str) -> bytes | None:
        """The bytes stored for session ``sid`` by a store that keeps each session as one
        JSON or msgpack document; None for a store that keeps values one by one (Redis)."""
        raise NotImplementedError

    def dump(self, store: Any) -> bytes:
        """Everything the store holds, names and contents (keys and values, every column
        of every row, file names and bytes), as one blob: what a stolen backup holds."""
        raise NotImplementedError

    def write_unhashed(
        self, store: Any, sid: str, values: dict[str, bytes], ttl: float, prefix: str = "session:"
    ) -> None:
        """Store session ``sid`` as this package wrote it before ids were hashed at rest
        (keyed by the raw id); not for the filesystem store, whose files always were."""
        raise NotImplementedError(f"{self.store_type} never kept raw ids")

    def holds_unhashed(self, store: Any, sid: str, prefix: str = "session:") -> bool:
        """Whether anything is still stored under the raw id ``sid``."""
        raise NotImplementedError(f"{self.store_type} never kept raw ids")

    def corrupt(self, store: Any, sid: str) -> None:
        """Overwrite session ``sid``'s stored data with bytes neither format can read,
        as something other than the store would (a torn write, a foreign writer)."""
        raise NotImplementedError

    @contextmanager
    def outage(self, request: pytest.FixtureRequest, store: Any) -> Iterator[None]:
        """Inside the block the store refuses service as it does in production trouble
        (by default: its server stopped); afterwards it serves again."""
        assert self.server_fixture is not None, f"{self.store_type}: say how it fails"
        server = request.getfixturevalue(self.server_fixture)
        server.stop()
        try:
            yield
        finally:
            server.start()
