"""Exceptions raised by flask_session, and the once-per-outage log."""

from __future__ import annotations

import logging
import threading


class SessionConfigError(ValueError):
    """A ``SESSION_*`` setting is missing or invalid. Raised by ``Session.init_app``.

    The message always names the config key to fix.
    """


class UnstorableValue(TypeError):
    """A session value the session cannot store: a type neither format holds, a value
    nested too deeply to encode, or a session larger than ``SESSION_MAX_SIZE`` or than
    its store holds.

    Raised when the response is saved (the session is encoded and measured then, before
    the store is written), with a message naming the session key: ``session['k'] cannot
    be stored: ...``. It is the app's error, not an outage: the stored session is left
    as it was and Flask answers 500 as for any other exception from the app (never
    :class:`StoreUnavailable`, 503 or ``Retry-After``: retrying cannot help). A subclass
    of ``TypeError``, which is what such values raised before this class existed.
    """


class StoreUnavailable(Exception):
    """The session store cannot be reached or cannot write (Redis down, disk full, ...).

    This is the one exception type an app needs to handle to answer 503. ``Session(app)``
    registers a plain 503 handler for it unless the app registered its own. An increment
    that failed with it was counted at most once (stores never apply a verb twice, even
    when their client repeats a command); if the failure struck after the store applied
    it, it was counted once but not acknowledged.
    """

    #: seconds a client should wait before retrying (sent as ``Retry-After``)
    retry_after = 1
    #: what went wrong, fit to show a client ("the session store's disk is full"); the
    #: message (``str(error)``) has the details for the log (paths, addresses)
    reason = "the session store is unavailable"

    def __init__(
        self, message: str, *, reason: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        if retry_after is not None:
            self.retry_after = retry_after


class SessionLockTimeout(StoreUnavailable):
    """Another request held this session's lock for longer than ``SESSION_LOCK_TIMEOUT``.

    A subclass of :class:`StoreUnavailable`, so the same 503 handler covers it.
    """

    reason = "the session is busy with another request"


class SessionConflict(StoreUnavailable):
    """With SESSION_LOCKING='auto', a request that read the session without its lock
    came to write and found that a key it had read was changed meanwhile by another
    request of the same session.

    Writing would lose that other request's update, so nothing is written: the request
    fails and is answered like :class:`SessionLockTimeout`, 503 with ``Retry-After``
    (the same handler covers it). Retrying the same request is the fix, and it succeeds:
    the endpoint has since been switched to take the lock at its first access, so its
    next requests wait their turn instead of racing. (Not 409: nothing is wrong with the
    request itself, and 503 + Retry-After is what clients and proxies already retry.)
    Logged at WARNING and counted (``interface.endpoint_locking.conflicts``).
    """

    reason = "the session was changed by another request at the same time"


class SessionReleased(RuntimeError):
    """A write to the session after ``session.save_and_release()`` in the same request.

    The early release saved the session and gave up its lock so that the user's other
    requests need not wait for the rest of this one; a later change could only be saved
    by taking the lock again, so it is refused (raised by the write itself, a 500 if the
    view does not catch it). Reads keep working on what was saved.
    """


class OutageLog:
    """Logs a store failure once when it starts and once when it ends, not per request.

    Every request that hits a dead store fails the same way; one line per failed
    request would bury the log. ``failed`` logs the first failure of a run of
    failures at ERROR, the rest at DEBUG; ``succeeded`` logs the recovery once.
    """

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._logger = logger
        self._what = what
        self._down = False
        self._guard = threading.Lock()

    def failed(self, error: BaseException) -> None:
        with self._guard:
            first, self._down = not self._down, True
        if first:
            self._logger.error("%s is unavailable: %s", self._what, error)
        else:
            self._logger.debug("%s still unavailable: %s", self._what, error)

    def succeeded(self) -> None:
        if not self._down:  # the common path: one attribute read, no lock
            return
        with self._guard:
            was_down, self._down = self._down, False
        if was_down:
            self._logger.warning("%s is available again", self._what)
