"""Reading and checking the ``SESSION_*`` config once, at start-up.

Every check names the key to fix, so a typo fails ``Session(app)`` instead of the first
request.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from .codecs import CODECS
from .errors import SessionConfigError

logger = logging.getLogger(__name__)

#: Flask-Session settings this package accepts but ignores, and why.
IGNORED_SETTINGS = {
    "SESSION_USE_SIGNER": "ids have 256 bits from `secrets` and are checked against the store",
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
    value = config[key]
    if isinstance(value, str):  # environment overrides can arrive as strings
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise SessionConfigError(f"{key} is {value!r}; it must be a number of seconds above 0")
    return float(value)
