"""Reading and checking the ``SESSION_*`` config once, at start-up.

Every check names the key to fix, so a typo fails ``Session(app)`` instead of the first
request.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class SessionSettings:
    """The structural settings, fixed at start-up.

    Cookie settings, ``PERMANENT_SESSION_LIFETIME`` and ``SESSION_REFRESH_EACH_REQUEST``
    are read per request through Flask's own accessors, as Flask does.
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
        store_type = config["SESSION_TYPE"]
        if store_type not in supported_stores:
            choices = ", ".join(repr(name) for name in supported_stores)
            raise SessionConfigError(
                f"SESSION_TYPE is {store_type!r}; supported session stores are {choices}"
            )
        fmt = config["SESSION_SERIALIZATION_FORMAT"]
        if fmt not in CODECS:
            raise SessionConfigError(
                f"SESSION_SERIALIZATION_FORMAT is {fmt!r}; use 'json' or 'msgpack'"
            )
        id_bytes = config["SESSION_ID_LENGTH"]
        if (
            not isinstance(id_bytes, int)
            or isinstance(id_bytes, bool)
            or not MIN_ID_BYTES <= id_bytes <= MAX_ID_BYTES
        ):
            raise SessionConfigError(
                f"SESSION_ID_LENGTH is {id_bytes!r}; it is the number of random bytes in an"
                f" id and must be an integer from {MIN_ID_BYTES} to {MAX_ID_BYTES} (default 32)"
            )
        prefix = config["SESSION_KEY_PREFIX"]
        if not isinstance(prefix, str):
            raise SessionConfigError(f"SESSION_KEY_PREFIX must be a string, not {prefix!r}")
        lock_timeout = _positive_number(config, "SESSION_LOCK_TIMEOUT")
        file_dir = config["SESSION_FILE_DIR"]
        if not file_dir:
            raise SessionConfigError("SESSION_FILE_DIR is empty; set it to a directory path")
        for key, why in IGNORED_SETTINGS.items():
            if key in config:
                logger.warning("%s is ignored: %s", key, why)
        return cls(
            store_type=store_type,
            permanent=bool(config["SESSION_PERMANENT"]),
            key_prefix=prefix,
            id_bytes=id_bytes,
            serialization_format=fmt,
            file_dir=os.fspath(file_dir),
            redis=config["SESSION_REDIS"],
            redis_url=config["SESSION_REDIS_URL"],
            locking=bool(config["SESSION_LOCKING"]),
            lock_timeout=lock_timeout,
        )


def _positive_number(config: Any, key: str) -> float:
    return config_number(config, key, minimum=0, minimum_inclusive=False, what="seconds")


# -- reading one setting ------------------------------------------------------------------
#
# Settings arrive from Python (config.py, test_config), or from the environment as text
# (Flask's from_prefixed_env parses JSON where it can, so "false" is False but "False" and
# "off" stay strings). Each reader accepts what a person would write and refuses the
# rest with a message that names the key. Stores read their own settings with these.

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
) -> float:
    """``config[key]`` as a finite number in range (an int if ``integer``); text such as
    "5" or "2.5" from the environment is parsed. ``what`` names the unit in the message."""
    value = config[key]
    number: float | None = None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = int(value.strip()) if integer else float(value.strip())
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
            bounds.append(f"{'at least' if minimum_inclusive else 'above'} {minimum:g}")
        if maximum is not None:
            bounds.append(f"at most {maximum:g}")
        rule = f"{kind} {' and '.join(bounds)}" if bounds else kind
        raise SessionConfigError(f"{key} is {value!r}; it must be {rule}")
    assert number is not None
    return int(number) if integer else float(number)


def config_choice(config: Any, key: str, choices: Iterable[str]) -> str:
    """``config[key]``, which must be one of ``choices`` (listed in the message)."""
    value = config[key]
    options = tuple(choices)
    if value not in options:
        listed = ", ".join(repr(choice) for choice in options)
        raise SessionConfigError(f"{key} is {value!r}; choose one of {listed}")
    return str(value)
