"""Session ids: unguessable, and strictly checked before anything else looks at them."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

_URLSAFE = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)


def new_session_id(nbytes: int) -> str:
    """A fresh id with ``nbytes`` bytes of randomness from the OS, URL-safe base64."""
    return secrets.token_urlsafe(nbytes)


def session_id_length(nbytes: int) -> int:
    """Characters in an id made by ``new_session_id(nbytes)`` (base64 without padding)."""
    return (4 * nbytes + 2) // 3


def is_well_formed(value: str, nbytes: int) -> bool:
    """True if ``value`` has exactly the shape of an id we issue.

    This is the gate in front of every store: a cookie that fails it never reaches a
    store key or a file name. Passing it does not make an id valid; only the store
    knows whether we issued it.
    """
    return len(value) == session_id_length(nbytes) and _URLSAFE.fullmatch(value) is not None


def forward_id(sid: str, nbytes: int) -> str:
    """Where the forwarding record ``regenerate()`` leaves for ``sid`` is stored.

    Derived from ``sid`` by a one-way hash, so only whoever holds ``sid`` can name it, and
    shaped like an id of ``nbytes`` bytes, so every store keys it like a session. The
    record is not under ``sid`` itself: there, a request still holding the old id could
    merge into it or increment it as if it were the session.
    """
    digest = hashlib.shake_256(b"flask_session forward\0" + sid.encode()).digest(nbytes)
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _forward_pad(old_sid: str, length: int) -> bytes:
    return hashlib.shake_256(b"flask_session forward pad\0" + old_sid.encode()).digest(length)


def mask_forward(new_sid: str, old_sid: str) -> str:
    """``new_sid`` as the forwarding record of ``old_sid`` stores it: XORed with a pad
    derived from ``old_sid`` by a one-way hash (another than :func:`forward_id`'s), as
    URL-safe base64. Only whoever holds ``old_sid`` (the old cookie) can unmask it, so a
    dump of the store holding the record gives away neither id; the record lives for
    SESSION_REGENERATE_GRACE at most."""
    raw = new_sid.encode()
    masked = bytes(a ^ b for a, b in zip(raw, _forward_pad(old_sid, len(raw)), strict=True))
    return base64.urlsafe_b64encode(masked).rstrip(b"=").decode()


def unmask_forward(masked: str, old_sid: str, nbytes: int) -> str | None:
    """The new id a forwarding record masked with :func:`mask_forward`; None if it does
    not unmask to an id we issue (a record written by other code, damaged data)."""
    try:
        raw = base64.urlsafe_b64decode(masked + "=" * (-len(masked) % 4))
    except ValueError:
        return None
    new = bytes(a ^ b for a, b in zip(raw, _forward_pad(old_sid, len(raw)), strict=True))
    try:
        text = new.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if is_well_formed(text, nbytes) else None
