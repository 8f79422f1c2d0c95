"""Reading and checking the ``SESSION_*`` config once, at start-up.

Every check names the key to fix, so a typo fails ``Session(app)`` instead of the first
request.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .codecs import CODECS
from .errors import SessionConfigError

logger = logging.getLogger(__name__)

#: Flask-Session settings this package accepts but ignores, and why.
IGNORED_SETTINGS = {
    "SESSION_FILE_THRESHOLD": "the filesystem store never evicts live sessions",
    "SESSION_FILE_MODE": "session files are always created with mode 0600",
}

MIN_ID_BYTES = 16  # 128 bits; OWASP asks for at least 64 bits of entropy
MAX_ID_BYTES = 256


def apply_defaults(config: Any, instance_path: str) -> None:
    """Fill in every ``SESSION_*`` default the app did not set (like Flask-Session)."""
    config.setdefault("SESSION_TYPE", "filesystem")
    config.setdefault("SESSION_PERMANENT", True)
    config.setdefault("SESSION_KEY_PREFIX", "session:")
    config.setdefault("SESSION_ID_LENGTH", 32)
    config.setdefault("SESSION_SERIALIZATION_FORMAT", "json")
    config.setdefault("SESSION_REDIS", None)
    config.setdefault("SESSION_REDIS_URL", None)
    # Not Flask-Session's ./flask_session: inside a project that is often a package name.
    config.setdefault("SESSION_FILE_DIR", os.path.join(instance_path, "flask_session"))
    config.setdefault("SESSION_LOCKING", True)
    config.setdefault("SESSION_LOCK_TIMEOUT", 10)


#: PERMANENT_SESSION_LIFETIME's range, in seconds. At least a second; at most ten years,
#: so that now + lifetime is a cookie date every client can hold (past 2038 some 32-bit
#: clients wrap) and a Redis expiry in milliseconds. Browsers keep a cookie for at most
#: 400 days whatever it says (RFC 6265bis); the server-side session lives the full time.
MIN_LIFETIME = 1
MAX_LIFETIME = 10 * 365 * 24 * 3600

#: SESSION_LOCK_TIMEOUT's range, in seconds: a Redis lock lease is whole milliseconds, and
#: a request holding a session for over an hour is a stuck request.
MIN_LOCK_TIMEOUT = 0.01
MAX_LOCK_TIMEOUT = 3600

#: SameSite values, by the lowercase spelling an operator may type.
SAMESITE_VALUES = {"lax": "Lax", "strict": "Strict", "none": "None"}

#: RFC 6265's cookie-name token: what a browser accepts as a cookie's name.
COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: A host name or IP address, optionally with the leading dot older specs used.
COOKIE_DOMAIN = re.compile(r"\.?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
#: An absolute path without the characters that would end or break the cookie header.
COOKIE_PATH = re.compile(r"/[^\x00-\x20\x7f;,]*")


#: Flask's own settings the session cookie is built from. Flask's app.config always has
#: them; a bare mapping (an interface built without an app) may not, and then they are
#: Flask's business: each is checked when present.
FLASK_COOKIE_SETTINGS = (
    "SESSION_COOKIE_NAME",
    "SESSION_COOKIE_DOMAIN",
    "SESSION_COOKIE_PATH",
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE",
    "SESSION_COOKIE_PARTITIONED",
    "SESSION_REFRESH_EACH_REQUEST",
    "PERMANENT_SESSION_LIFETIME",
    "APPLICATION_ROOT",
)

#: Every key check_session_config may write back (normalised). Code that checks a copy
#: of app.config must copy these back, or Flask reads the unchecked text.
CHECKED_SETTINGS = (
    "SESSION_TYPE",
    "SESSION_SERIALIZATION_FORMAT",
    "SESSION_PERMANENT",
    "SESSION_LOCKING",
    "SESSION_ID_LENGTH",
    "SESSION_LOCK_TIMEOUT",
    "SESSION_KEY_PREFIX",
    "SESSION_FILE_DIR",
    "SESSION_REDIS_URL",
    *FLASK_COOKIE_SETTINGS,
)


#: Settings a Flask-Session 0.8 translation (config08.py) may replace in the checked
#: copy (cachelib becomes filesystem in another directory): write_back copies them only
#: when the check merely respelled the app's value.
_TRANSLATED = frozenset({"SESSION_TYPE", "SESSION_FILE_DIR", "SESSION_REDIS_URL"})


def write_back(
    checked: Mapping[str, Any], config: MutableMapping[str, Any], *, skip: Iterable[str] = ()
) -> None:
    """Copy the checked values of the settings ``config`` holds back into it.

    For code that checks a copy of ``app.config`` (as ``Session(app)`` does): Flask reads
    the cookie settings and the lifetime itself, per request, and must see the checked
    values (``False``, not the text ``"False"`` that browsers read as Secure). Covers
    :data:`CHECKED_SETTINGS` and whatever a store factory checked and wrote back in the
    copy (its own settings), so call it after the store is made. Keys in ``skip`` (values
    that did not come from ``config``) are left alone.
    """
    skipped = frozenset(skip)
    for key, value in checked.items():
        if key not in config or key in skipped or config[key] is value:
            continue
        if key in _TRANSLATED and _text(config[key]) != _text(checked[key]):
            continue
        config[key] = value


def _text(value: Any) -> str:
    return str(os.fspath(value) if isinstance(value, os.PathLike) else value).strip().lower()


def check_session_config(config: Any, supported_stores: Iterable[str]) -> None:
    """Check every setting sessions depend on and write it back in its proper type.

    Covers flask_session's ``SESSION_*`` settings (defaults applied first) and the Flask
    settings the session cookie is built from (:data:`FLASK_COOKIE_SETTINGS`, when
    present). Values typed as text (environment variables) are turned into what Flask
    and the stores expect: ``"False"`` becomes False, ``"2"`` seconds a timedelta.
    Raises SessionConfigError naming the first bad key; after it returns, nothing read
    per request can fail on a setting. Writes only keys in :data:`CHECKED_SETTINGS`.
    """
    config["SESSION_TYPE"] = config_choice(config, "SESSION_TYPE", supported_stores)
    config["SESSION_SERIALIZATION_FORMAT"] = config_choice(
        config, "SESSION_SERIALIZATION_FORMAT", CODECS
    )
    for key in (
        "SESSION_PERMANENT",
        "SESSION_LOCKING",
        "SESSION_REFRESH_EACH_REQUEST",
        "SESSION_COOKIE_SECURE",
        "SESSION_COOKIE_HTTPONLY",
        "SESSION_COOKIE_PARTITIONED",
    ):
        if key in config:
            config[key] = config_bool(config, key)
    config["SESSION_ID_LENGTH"] = config_number(
        config,
        "SESSION_ID_LENGTH",
        minimum=MIN_ID_BYTES,
        maximum=MAX_ID_BYTES,
        integer=True,
        what="random bytes in an id",
        hint="default 32",
    )
    config["SESSION_LOCK_TIMEOUT"] = config_number(
        config,
        "SESSION_LOCK_TIMEOUT",
        minimum=MIN_LOCK_TIMEOUT,
        maximum=MAX_LOCK_TIMEOUT,
        what="seconds",
        hint="default 10",
    )
    if "PERMANENT_SESSION_LIFETIME" in config:
        config["PERMANENT_SESSION_LIFETIME"] = _lifetime(config)
    config["SESSION_KEY_PREFIX"] = config_text(config, "SESSION_KEY_PREFIX", empty=True)
    config["SESSION_FILE_DIR"] = _directory(config, "SESSION_FILE_DIR")
    config["SESSION_REDIS_URL"] = config_text(config, "SESSION_REDIS_URL", none=True)
    _check_cookie(config)


def _lifetime(config: Any) -> timedelta:
    key = "PERMANENT_SESSION_LIFETIME"
    value = config[key]
    # Flask takes a timedelta or a number of seconds; check both as seconds.
    as_seconds = {key: value.total_seconds()} if isinstance(value, timedelta) else config
    seconds = config_number(
        as_seconds,
        key,
        minimum=MIN_LIFETIME,
        maximum=MAX_LIFETIME,
        what="seconds",
        hint=f"1 s to {MAX_LIFETIME // 86400} days; default 2678400, 31 days",
        shown=value,
    )
    return timedelta(seconds=seconds)


def _directory(config: Any, key: str) -> str:
    value = config[key]
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise SessionConfigError(f"{key} is {value!r}; set it to a directory path")
    return value


def _check_cookie(config: Any) -> None:
    if "SESSION_COOKIE_NAME" in config:
        config["SESSION_COOKIE_NAME"] = config_text(
            config,
            "SESSION_COOKIE_NAME",
            pattern=COOKIE_NAME,
            rule="a cookie name: letters, digits and !#$%&'*+-.^_`|~, no spaces or ;,=",
        )
    if "SESSION_COOKIE_DOMAIN" in config:
        config["SESSION_COOKIE_DOMAIN"] = config_text(
            config,
            "SESSION_COOKIE_DOMAIN",
            none=True,
            pattern=COOKIE_DOMAIN,
            rule="a host name such as example.org (unset: this host only)",
        )
    if "SESSION_COOKIE_PATH" in config:
        config["SESSION_COOKIE_PATH"] = config_text(
            config,
            "SESSION_COOKIE_PATH",
            none=True,
            pattern=COOKIE_PATH,
            rule="a path starting with / without spaces, ';' or ',' (unset: '/')",
        )
    if config.get("SESSION_COOKIE_PATH") is None and "APPLICATION_ROOT" in config:
        # Flask's fallback for the cookie's Path.
        config["APPLICATION_ROOT"] = config_text(
            config,
            "APPLICATION_ROOT",
            pattern=COOKIE_PATH,
            rule="a path starting with / (the session cookie's Path when SESSION_COOKIE_PATH"
            " is unset)",
        )
    samesite = config.get("SESSION_COOKIE_SAMESITE")
    if samesite is not None:
        word = samesite.strip().lower() if isinstance(samesite, str) else None
        if word not in SAMESITE_VALUES:
            raise SessionConfigError(
                f"SESSION_COOKIE_SAMESITE is {samesite!r}; use 'Lax' (the default here),"
                " 'Strict', or 'None' (which needs SESSION_COOKIE_SECURE = True)"
            )
        config["SESSION_COOKIE_SAMESITE"] = SAMESITE_VALUES[word]
    if config.get("SESSION_COOKIE_PARTITIONED") and not config.get("SESSION_COOKIE_SECURE"):
        raise SessionConfigError(
            "SESSION_COOKIE_PARTITIONED = True needs SESSION_COOKIE_SECURE = True;"
            " a partitioned cookie is always Secure, so plain-HTTP clients would lose it"
        )


@dataclass(frozen=True)
class SessionSettings:
    """The structural settings, fixed at start-up.

    Cookie settings, ``PERMANENT_SESSION_LIFETIME`` and ``SESSION_REFRESH_EACH_REQUEST``
    are read per request through Flask's own accessors, as Flask does (checked and
    normalised here first).
    """

    store_type: str
    permanent: bool
    key_prefix: str
    id_bytes: int
    serialization_format: str
    file_dir: str
    redis: Any
    redis_url: str | None
    locking: bool
    lock_timeout: float

    @classmethod
    def from_config(cls, config: Any, supported_stores: tuple[str, ...]) -> SessionSettings:
        """Check and normalise the settings in ``config`` (see check_session_config)."""
        check_session_config(config, supported_stores)
        for key, why in IGNORED_SETTINGS.items():
            if key in config:
                logger.warning("%s is ignored: %s", key, why)
        return cls(
            store_type=config["SESSION_TYPE"],
            permanent=config["SESSION_PERMANENT"],
            key_prefix=config["SESSION_KEY_PREFIX"],
            id_bytes=config["SESSION_ID_LENGTH"],
            serialization_format=config["SESSION_SERIALIZATION_FORMAT"],
            file_dir=config["SESSION_FILE_DIR"],
            redis=config["SESSION_REDIS"],
            redis_url=config["SESSION_REDIS_URL"],
            locking=config["SESSION_LOCKING"],
            lock_timeout=config["SESSION_LOCK_TIMEOUT"],
        )


# -- reading one setting ------------------------------------------------------------------
#
# Settings arrive from Python (config.py, test_config), or from the environment as text
# (Flask's from_prefixed_env parses JSON where it can, so "false" is False but "False" and
# "off" stay strings). Each reader accepts what a person would write and refuses the
# rest with a message that names the key. Stores read their own settings with these.

_UNSET: Any = object()

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def config_bool(config: Any, key: str) -> bool:
    """``config[key]`` as a boolean: True/False, 1/0, or (any case) true/false, yes/no,
    on/off, 1/0. Anything else is refused."""
    value = config[key]
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise SessionConfigError(
        f"{key} is {value!r}; use true or false (also accepted: 1/0, yes/no, on/off)"
    )


def config_number(
    config: Any,
    key: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    minimum_inclusive: bool = True,
    integer: bool = False,
    what: str = "",
    hint: str = "",
    shown: Any = _UNSET,
) -> Any:
    """``config[key]`` as a finite number in range (an int if ``integer``); text such as
    "5" or "2.5" from the environment is parsed. ``what`` names the unit and ``hint``
    (the range in words, the default) is added to the message; ``shown`` is the value to
    quote in it when ``config[key]`` was converted by the caller."""
    value = config[key]
    number: float | None = None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = value
    valid = (
        number is not None
        and math.isfinite(number)
        and (not integer or float(number).is_integer())
        and (minimum is None or number > minimum or (minimum_inclusive and number == minimum))
        and (maximum is None or number <= maximum)
    )
    if not valid:
        kind = "a whole number" if integer else "a number"
        if what:
            kind += f" of {what}"
        bounds = []
        if minimum is not None:
            bounds.append(f"{'at least' if minimum_inclusive else 'above'} {_number(minimum)}")
        if maximum is not None:
            bounds.append(f"at most {_number(maximum)}")
        rule = f"{kind} {' and '.join(bounds)}" if bounds else kind
        if hint:
            rule += f" ({hint})"
        quoted = value if shown is _UNSET else shown
        raise SessionConfigError(f"{key} is {quoted!r}; it must be {rule}")
    assert number is not None
    if integer:
        return int(number)
    # Whole numbers stay ints (a Redis lease or a cookie's Max-Age is printed as typed).
    return int(number) if isinstance(number, int) else float(number)


def _number(value: float) -> str:
    return f"{value:,}" if float(value).is_integer() else f"{value:g}"


def config_choice(config: Any, key: str, choices: Iterable[str]) -> str:
    """``config[key]`` as one of ``choices`` (listed in the message), in any case and
    with surrounding spaces ignored; returns the choice as spelled in ``choices``."""
    value = config[key]
    options = tuple(choices)
    if isinstance(value, str):
        by_word = {choice.lower(): choice for choice in options}
        chosen = by_word.get(value.strip().lower())
        if chosen is not None:
            return chosen
    listed = ", ".join(repr(choice) for choice in options)
    raise SessionConfigError(f"{key} is {value!r}; choose one of {listed}")


def config_text(
    config: Any,
    key: str,
    *,
    none: bool = False,
    empty: bool = False,
    pattern: re.Pattern[str] | None = None,
    rule: str = "",
) -> Any:
    """``config[key]`` as text. With ``none``, None (or "") means unset and gives None;
    with ``empty``, "" is a valid value; ``pattern`` must match the whole text (``rule``
    says what it allows, for the message)."""
    value = config[key]
    if value is None or value == "":
        if none:
            return None
        if value == "" and empty:
            return ""
    if isinstance(value, str) and value and (pattern is None or pattern.fullmatch(value)):
        return value
    if isinstance(value, str) or value is None:
        what = rule or "non-empty text"
        raise SessionConfigError(f"{key} is {value!r}; it must be {what}")
    # From the environment, Flask reads 123, true or null as JSON, not as text.
    raise SessionConfigError(
        f"{key} is {value!r} ({type(value).__name__}); it must be text"
        f"{': ' + rule if rule else ''}. In an environment variable, write text that"
        f" looks like a number or a boolean as a JSON string: FLASK_{key}='\"...\"'"
    )
