"""The settings, read once at start-up: one table, checked, frozen, handed down.

Every setting this package reads is one :class:`Setting` row: its key, its default, the
reader that checks it (:mod:`flask_session.readers`) and a line of documentation. The
core's rows are :data:`CORE_SETTINGS`; each store class lists its own in
``Store.settings``, so a store and its settings are one module. Flask's own settings that
the session cookie is built from are :data:`FLASK_SETTINGS`: checked when present and
left to Flask otherwise.

:func:`read_settings` applies each row's default once, checks every value (a bad one
raises :class:`~flask_session.SessionConfigError` naming the key) and returns a frozen
:class:`SessionSettings`, which is all that the store and the interface receive.
:func:`publish` then writes the checked values back into ``app.config`` in their proper
types (``"False"`` from the environment becomes False, which is what Flask must see when
it reads its cookie settings per request), and the defaults for keys the app left unset.
Nothing downstream writes configuration.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from .codecs import CODECS
from .errors import SessionConfigError
from .metrics import SessionMetrics, metrics_setting
from .readers import (
    Reader,
    Setting,
    boolean,
    choice,
    config_bool,
    config_number,
    config_text,
    number,
    text,
)
from .stores import STORE_TYPES, store_class
from .stores.upgrade08 import SERVERS_08_AUTO

logger = logging.getLogger(__name__)

MIN_ID_BYTES = 16  # 128 bits; OWASP asks for at least 64 bits of entropy
MAX_ID_BYTES = 256

#: SESSION_LOCK_TIMEOUT's range, in seconds: a Redis lock lease is whole milliseconds, and
#: a request holding a session for over an hour is a stuck request.
MIN_LOCK_TIMEOUT = 0.01
MAX_LOCK_TIMEOUT = 3600

#: SESSION_MAX_SIZE's default, in bytes: 250 times what a cookie session holds (4 KB), so
#: no real session meets it, and small enough that a view storing unbounded input is
#: stopped before every request of that user moves megabytes to and from the store. Below
#: every store's own limit (memcached's, about 1 MiB, is the smallest), so it is valid
#: whichever store is chosen.
DEFAULT_MAX_SIZE = 1_000_000

#: SESSION_LOCKING's default: lock only requests that write (see flask_session.session)
LOCKING_AUTO = "auto"

#: SESSION_REGENERATE_GRACE's default and ceiling, in seconds. The default covers a
#: request still in flight with the old cookie (a second tab, a slow XHR, a retry); the
#: ceiling keeps the window in which the pre-login id still reaches the session short.
DEFAULT_REGENERATE_GRACE = 5
MAX_REGENERATE_GRACE = 60

DEFAULT_STORE_TYPE = "filesystem"
DEFAULT_KEY_PREFIX = "session:"


def _locking(config: Mapping[str, Any], key: str) -> bool | str:
    """SESSION_LOCKING (and SESSION_08_SERVERS): 'auto' (any case), or a boolean as
    :func:`config_bool` reads it."""
    value = config[key]
    if isinstance(value, str) and value.strip().lower() == LOCKING_AUTO:
        return LOCKING_AUTO
    try:
        return config_bool(config, key)
    except SessionConfigError:
        raise SessionConfigError(
            f"{key} is {value!r}; use 'auto', true or false (also accepted: 1/0, yes/no, on/off)"
        ) from None


#: The core's settings, in the order the docs list them.
CORE_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "SESSION_TYPE",
        DEFAULT_STORE_TYPE,
        choice(STORE_TYPES),
        "where sessions live: 'filesystem' (embedded, no server), 'redis' (many processes,"
        " many machines), 'sqlalchemy' (PostgreSQL or a SQLite file) or 'memcached'",
    ),
    Setting(
        "SESSION_PERMANENT",
        True,
        boolean,
        "default of session.permanent: permanent sessions get a cookie that expires with"
        " the session, others a browser-session cookie",
    ),
    Setting(
        "SESSION_KEY_PREFIX",
        DEFAULT_KEY_PREFIX,
        text(empty=True),
        "prefix of every stored key (Redis and memcached keys, the SQL session_id column;"
        " hashed into file names)",
    ),
    Setting(
        "SESSION_ID_LENGTH",
        32,
        number(
            minimum=MIN_ID_BYTES,
            maximum=MAX_ID_BYTES,
            integer=True,
            what="random bytes in an id",
            hint="default 32",
        ),
        "random bytes in a session id (16 to 256): 32 bytes are 43 URL-safe characters",
    ),
    Setting(
        "SESSION_SERIALIZATION_FORMAT",
        "json",
        choice(CODECS),
        "'json' or 'msgpack', never pickle; sessions in the other format are still read",
    ),
    Setting(
        "SESSION_LOCKING",
        LOCKING_AUTO,
        _locking,
        "'auto' (default): a request takes the session's lock only to write, so requests"
        " that only read never wait for each other (see docs/concurrency.md); true: every"
        " request that reads or writes the session takes it at its first access (0.8's"
        " convoy: one user's requests run one at a time); false: never (last writer of a"
        " key wins)",
    ),
    Setting(
        "SESSION_LOCK_TIMEOUT",
        10,
        number(
            minimum=MIN_LOCK_TIMEOUT, maximum=MAX_LOCK_TIMEOUT, what="seconds", hint="default 10"
        ),
        "seconds (0.01 to 3600) a request waits for another request's lock on the same"
        " session (then 503); also the lease of a lock on a network store",
    ),
    Setting(
        "SESSION_MAX_SIZE",
        DEFAULT_MAX_SIZE,
        number(minimum=1, integer=True, what="bytes", hint="default 1,000,000"),
        "the largest session, in bytes of its keys and encoded values (default 1,000,000;"
        " at most the store's own limit): a larger one is refused when the response is"
        " saved, naming the key (UnstorableValue, a 500), and the stored session is kept",
    ),
    Setting(
        "SESSION_08_SERVERS",
        SERVERS_08_AUTO,
        _locking,
        "'auto' (default): at start-up the store looks for Flask-Session 0.8's sessions"
        " (or the transition's marker) and, if it finds any, serves a rolling upgrade as"
        " with true; true: Flask-Session 0.8 servers may still serve the same store, so"
        " every session is kept readable and current in 0.8's layout too, and 0.8's writes"
        " are read back; false: no 0.8 server is left (set it on every server once the"
        " roll is over; see 'Upgrading from Flask-Session 0.8'). Every store; true is"
        " refused on a Redis Cluster, where 'auto' stays off",
    ),
    Setting(
        "SESSION_ABSOLUTE_LIFETIME",
        None,
        lambda config, key: _absolute_lifetime(config, key),  # defined with the Flask rows
        "the absolute timeout: a session older than this (a timedelta or seconds, 1 s to"
        " 3650 days) is gone however busy it is; unset (None, the default) for none."
        " PERMANENT_SESSION_LIFETIME stays the idle timeout",
    ),
    Setting(
        "SESSION_REGENERATE_GRACE",
        DEFAULT_REGENERATE_GRACE,
        number(
            minimum=0,
            maximum=MAX_REGENERATE_GRACE,
            what="seconds",
            hint=f"default {DEFAULT_REGENERATE_GRACE}; 0 ends the old id at once",
        ),
        "seconds (0 to 60) the old id keeps reaching the session after regenerate(), for"
        " requests already in flight with it; 0 ends it at once",
    ),
    Setting(
        "SESSION_USE_SIGNER",
        False,
        boolean,
        "also accept cookies Flask-Session 0.8 signed with SECRET_KEY (id.signature); new"
        " cookies carry the bare id",
    ),
    Setting(
        "SESSION_METRICS",
        None,
        metrics_setting,
        "None (off, the default: nothing measured, nothing wrapped), 'prometheus'"
        " (prometheus_client, the 'metrics' extra) or an object with the methods of"
        " flask_session.metrics.SessionMetrics: store verb latency, lock waits and"
        " timeouts, refusals by reason, sessions created, regenerated, cleaned up, sizes",
        # the app's own value stays in app.config ("prometheus", its object), not the
        # observer it was turned into
        publish=False,
    ),
)


# -- Flask's settings the session cookie is built from ------------------------------------

#: PERMANENT_SESSION_LIFETIME's range, in seconds. At least a second; at most ten years,
#: so that now + lifetime is a cookie date every client can hold (past 2038 some 32-bit
#: clients wrap) and a Redis expiry in milliseconds. Browsers keep a cookie for at most
#: 400 days whatever it says (RFC 6265bis); the server-side session lives the full time.
MIN_LIFETIME = 1
MAX_LIFETIME = 10 * 365 * 24 * 3600

#: SameSite values, by the lowercase spelling an operator may type.
SAMESITE_VALUES = {"lax": "Lax", "strict": "Strict", "none": "None"}

#: RFC 6265's cookie-name token: what a browser accepts as a cookie's name.
COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: A host name or IP address, optionally with the leading dot older specs used.
COOKIE_DOMAIN = re.compile(r"\.?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
#: An absolute path without the characters that would end or break the cookie header.
COOKIE_PATH = re.compile(r"/[^\x00-\x20\x7f;,]*")


def _lifetime(
    config: Mapping[str, Any],
    key: str,
    default: str = "default 2678400, 31 days",
) -> timedelta:
    value = config[key]
    # Flask takes a timedelta or a number of seconds; check both as seconds.
    as_seconds = {key: value.total_seconds()} if isinstance(value, timedelta) else config
    seconds = config_number(
        as_seconds,
        key,
        minimum=MIN_LIFETIME,
        maximum=MAX_LIFETIME,
        what="seconds",
        hint=f"1 s to {MAX_LIFETIME // 86400} days; {default}",
        shown=value,
    )
    return timedelta(seconds=seconds)


def _absolute_lifetime(config: Mapping[str, Any], key: str) -> float | None:
    """SESSION_ABSOLUTE_LIFETIME in seconds, or None (off). The same range as
    PERMANENT_SESSION_LIFETIME: a limit under a second would end sessions mid-request."""
    value = config[key]
    if value is None or value == "":
        return None
    seconds = _lifetime(config, key, "unset for none").total_seconds()
    return int(seconds) if seconds.is_integer() else seconds  # whole seconds stay ints


def _samesite(config: Mapping[str, Any], key: str) -> str | None:
    value = config[key]
    if value is None:
        return None
    word = value.strip().lower() if isinstance(value, str) else None
    if word not in SAMESITE_VALUES:
        raise SessionConfigError(
            f"{key} is {value!r}; use 'Lax' (the default here), 'Strict', or 'None'"
            " (which needs SESSION_COOKIE_SECURE = True)"
        )
    return SAMESITE_VALUES[word]


def _matching(pattern: re.Pattern[str], rule: str, *, none: bool = False) -> Reader:
    return lambda config, key: config_text(config, key, none=none, pattern=pattern, rule=rule)


#: Flask's defaults, for checking a bare mapping (an interface built without an app).
FLASK_DEFAULTS = {
    "SESSION_COOKIE_NAME": "session",
    "SESSION_COOKIE_DOMAIN": None,
    "SESSION_COOKIE_PATH": None,
    "SESSION_COOKIE_SECURE": False,
    "SESSION_COOKIE_SAMESITE": None,
}

#: Flask's settings the cookie is built from, read per request by Flask (an app may change
#: them at run time): checked and published when present, never frozen here.
FLASK_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "SESSION_COOKIE_NAME",
        None,
        _matching(
            COOKIE_NAME, "a cookie name: letters, digits and !#$%&'*+-.^_`|~, no spaces or ;,="
        ),
        "the cookie's name; __Host- and __Secure- names need SESSION_COOKIE_SECURE",
    ),
    Setting(
        "SESSION_COOKIE_DOMAIN",
        None,
        _matching(
            COOKIE_DOMAIN, "a host name such as example.org (unset: this host only)", none=True
        ),
        "the cookie's Domain (unset: this host only)",
    ),
    Setting(
        "SESSION_COOKIE_PATH",
        None,
        _matching(
            COOKIE_PATH, "a path starting with / without spaces, ';' or ',' (unset: '/')", none=True
        ),
        "the cookie's Path (unset: APPLICATION_ROOT)",
    ),
    Setting("SESSION_COOKIE_SECURE", None, boolean, "send the cookie over HTTPS only"),
    Setting("SESSION_COOKIE_HTTPONLY", None, boolean, "hide the cookie from JavaScript"),
    Setting(
        "SESSION_COOKIE_PARTITIONED",
        None,
        boolean,
        "a partitioned (CHIPS) cookie; needs SESSION_COOKIE_SECURE",
    ),
    Setting(
        "SESSION_COOKIE_SAMESITE",
        None,
        _samesite,
        "'Lax' (Flask's None means Lax here), 'Strict', or 'None' (needs SESSION_COOKIE_SECURE)",
    ),
    Setting(
        "SESSION_REFRESH_EACH_REQUEST",
        None,
        boolean,
        "a request that uses the session pushes its expiry out (store and cookie)",
    ),
    Setting(
        "PERMANENT_SESSION_LIFETIME",
        None,
        _lifetime,
        "the server-side idle timeout, and a permanent cookie's lifetime: 1 s to 3650 days",
    ),
    Setting(
        "APPLICATION_ROOT",
        None,
        _matching(
            COOKIE_PATH,
            "a path starting with / (the session cookie's Path when SESSION_COOKIE_PATH is unset)",
        ),
        "the cookie's Path when SESSION_COOKIE_PATH is unset",
    ),
)


def _check_cookie(checked: Mapping[str, Any]) -> None:
    """The rules that tie cookie settings together (browsers drop such cookies otherwise)."""
    values = {**FLASK_DEFAULTS, **checked}
    name, secure = values["SESSION_COOKIE_NAME"], values["SESSION_COOKIE_SECURE"]
    if values["SESSION_COOKIE_SAMESITE"] == "None" and not secure:
        raise SessionConfigError(
            "SESSION_COOKIE_SAMESITE = 'None' needs SESSION_COOKIE_SECURE = True;"
            " browsers drop such cookies otherwise"
        )
    if values.get("SESSION_COOKIE_PARTITIONED") and not secure:
        raise SessionConfigError(
            "SESSION_COOKIE_PARTITIONED = True needs SESSION_COOKIE_SECURE = True;"
            " a partitioned cookie is always Secure, so plain-HTTP clients would lose it"
        )
    if name.startswith(("__Host-", "__Secure-")) and not secure:
        raise SessionConfigError(f"SESSION_COOKIE_NAME {name!r} needs SESSION_COOKIE_SECURE = True")
    if name.startswith("__Host-") and (
        values["SESSION_COOKIE_DOMAIN"] or values["SESSION_COOKIE_PATH"] not in (None, "/")
    ):
        raise SessionConfigError(
            f"SESSION_COOKIE_NAME {name!r} needs SESSION_COOKIE_DOMAIN unset and"
            " SESSION_COOKIE_PATH '/' (browsers reject __Host- cookies otherwise)"
        )


# -- the frozen result --------------------------------------------------------------------


@dataclass(frozen=True)
class SessionSettings:
    """Every setting, checked; built by :func:`read_settings`, never changed afterwards.

    Flask's cookie settings, ``PERMANENT_SESSION_LIFETIME`` and
    ``SESSION_REFRESH_EACH_REQUEST`` are not here: Flask reads them per request through
    its own accessors (checked and published first).
    """

    store_type: str
    permanent: bool
    key_prefix: str
    id_bytes: int
    serialization_format: str
    locking: bool | str  # True, False or LOCKING_AUTO
    lock_timeout: float
    max_size: int
    #: SESSION_ABSOLUTE_LIFETIME in seconds, or None: no absolute timeout
    absolute_lifetime: float | None
    #: SESSION_REGENERATE_GRACE in seconds (0: the old id ends at once)
    regenerate_grace: float
    use_signer: bool
    #: SESSION_08_SERVERS: Flask-Session 0.8 servers may still serve the store (True),
    #: none is left (False), or the store tells at start-up (SERVERS_08_AUTO)
    fs08_servers: bool | str
    instance_path: str
    #: SESSION_METRICS as an observer, or None (off)
    metrics: SessionMetrics | None = None
    #: the store's own settings (its ``Store.settings`` rows), by key, checked
    store: Mapping[str, Any] = field(default_factory=dict)
    #: every setting read, by key (core, store, Flask's present ones): what publish writes
    checked: Mapping[str, Any] = field(default_factory=dict)
    #: the table rows behind ``checked``
    rows: tuple[Setting, ...] = ()


#: SessionSettings attribute of each core key
_CORE_FIELDS = {
    "SESSION_TYPE": "store_type",
    "SESSION_PERMANENT": "permanent",
    "SESSION_KEY_PREFIX": "key_prefix",
    "SESSION_ID_LENGTH": "id_bytes",
    "SESSION_SERIALIZATION_FORMAT": "serialization_format",
    "SESSION_LOCKING": "locking",
    "SESSION_LOCK_TIMEOUT": "lock_timeout",
    "SESSION_MAX_SIZE": "max_size",
    "SESSION_ABSOLUTE_LIFETIME": "absolute_lifetime",
    "SESSION_REGENERATE_GRACE": "regenerate_grace",
    "SESSION_USE_SIGNER": "use_signer",
    "SESSION_METRICS": "metrics",
    "SESSION_08_SERVERS": "fs08_servers",
}


def read_settings(config: Mapping[str, Any], instance_path: str) -> SessionSettings:
    """Check every setting in ``config`` (defaults for the unset ones) and freeze them.

    Reads the core rows, then the chosen store's rows (importing that store's module,
    and only that one), then Flask's cookie settings that are present. Raises
    SessionConfigError naming the first bad key: after it returns, nothing read per
    request can fail on a setting.
    """
    core = _read_rows(CORE_SETTINGS, config, instance_path)
    chosen = store_class(core["SESSION_TYPE"])
    _check_max_size(core["SESSION_MAX_SIZE"], chosen.max_session_size, core["SESSION_TYPE"])
    rows = chosen.settings
    own = _read_rows(rows, config, instance_path)
    flask = _read_rows(
        tuple(row for row in FLASK_SETTINGS if _is_cookie_setting(row.key, config)),
        config,
        instance_path,
    )
    _check_cookie(flask)
    return SessionSettings(
        **{_CORE_FIELDS[key]: value for key, value in core.items()},
        instance_path=instance_path,
        store=MappingProxyType(own),
        checked=MappingProxyType({**core, **own, **flask}),
        rows=(*CORE_SETTINGS, *rows, *FLASK_SETTINGS),
    )


def _check_max_size(max_size: int, store_limit: int | None, store_type: str) -> None:
    """Refuse a SESSION_MAX_SIZE the store could not hold: sessions between the two
    limits would pass the session's check and then fail in the store."""
    if store_limit is not None and max_size > store_limit:
        raise SessionConfigError(
            f"SESSION_MAX_SIZE is {max_size:,} bytes but the {store_type!r} store holds"
            f" sessions of at most {store_limit:,} bytes; set it to {store_limit:,} or less"
        )


def _is_cookie_setting(key: str, config: Mapping[str, Any]) -> bool:
    if key == "APPLICATION_ROOT":  # the cookie's Path only when SESSION_COOKIE_PATH is unset
        return key in config and config.get("SESSION_COOKIE_PATH") is None
    return key in config


def _read_rows(
    rows: tuple[Setting, ...], config: Mapping[str, Any], instance_path: str
) -> dict[str, Any]:
    values = {}
    for row in rows:
        given = {row.key: config[row.key] if row.key in config else row.default_for(instance_path)}
        values[row.key] = row.read(given, row.key)
    return values


def publish(
    settings: SessionSettings, config: MutableMapping[str, Any], *, leave: Collection[str] = ()
) -> None:
    """Write ``settings`` into ``config`` (an ``app.config``): the checked value of each
    key it holds, the default of each it lacks. Keys in ``leave`` (values that did not
    come from ``config``: a 0.8 class's arguments, a translation's choices) stay as
    they are, so that reading ``config`` again gives the same settings."""
    published = {row.key: row.publish for row in settings.rows}
    for key, value in settings.checked.items():
        if key in leave or not published[key] or config.get(key, _MISSING) is value:
            continue
        config[key] = value


_MISSING = object()
