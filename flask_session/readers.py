"""Readers of one setting each: what a person would write, or a refusal naming the key.

Settings arrive from Python (a config file, ``app.config.update``) or from the
environment as text (Flask's ``from_prefixed_env`` parses JSON where it can, so "false"
is False but "False" and "off" stay strings). Each reader accepts what a person would
write and refuses the rest with a :class:`~flask_session.SessionConfigError` whose message
names the key. The settings tables (:mod:`flask_session.settings`) are built from these.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import SessionConfigError

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


# -- settings tables ----------------------------------------------------------------------

#: a reader: ``read(config, key)`` returns the checked value of ``config[key]``
Reader = Callable[[Mapping[str, Any], str], Any]


@dataclass(frozen=True)
class Setting:
    """One row of a settings table.

    ``default`` is the value used when the key is unset; a callable default is called
    with the app's instance path (a directory under the instance folder, say).
    ``publish``: write the checked value back into ``app.config`` (off for settings
    that belong to another extension, such as Flask-SQLAlchemy's URI).
    """

    key: str
    default: Any
    read: Reader
    doc: str
    publish: bool = True

    def default_for(self, instance_path: str) -> Any:
        return self.default(instance_path) if callable(self.default) else self.default


def as_is(config: Mapping[str, Any], key: str) -> Any:
    """Reader for an object the app hands over (a client, a db): checked by its store."""
    return config[key]


def boolean(config: Mapping[str, Any], key: str) -> bool:
    return config_bool(config, key)


def text(*, none: bool = False, empty: bool = False) -> Reader:
    return lambda config, key: config_text(config, key, none=none, empty=empty)


def number(**limits: Any) -> Reader:
    return lambda config, key: config_number(config, key, **limits)


def choice(choices: Collection[str]) -> Reader:
    return lambda config, key: config_choice(config, key, choices)


def sql_name(config: Mapping[str, Any], key: str) -> str | None:
    """A plain SQL identifier, or None (unset)."""
    value = config[key]
    if value is not None and (not isinstance(value, str) or not value.isidentifier()):
        raise SessionConfigError(
            f"{key} is {value!r}; use a plain SQL name (letters, digits, underscores)"
        )
    return value


def directory(config: Mapping[str, Any], key: str) -> str:
    value = config[key]
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise SessionConfigError(f"{key} is {value!r}; set it to a directory path")
    return value
