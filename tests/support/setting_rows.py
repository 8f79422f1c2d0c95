"""The rows of the service's settings table (tests/sessionapp/test_settings_table.py): one
setting each, the values it must refuse and the good ones with what ``app.config`` then
holds. The core's rows are in that test module; each store's own rows are in its kit
(``StoreKit.setting_rows``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BOOL_BAD = ("maybe", "2", "-1", "tru", "", "null", "[]", "0.5")
BOOL_GOOD = (
    ("false", False),
    ("False", False),
    ("OFF", False),
    ("0", False),
    ("no", False),
    ("true", True),
    ("TRUE", True),
    ("on", True),
    ("1", True),
    ("Yes", True),
)


@dataclass(frozen=True)
class Setting:
    """One setting as typed into ``FLASK_<KEY>`` (see the test module's docstring)."""

    key: str
    bad: tuple[str, ...]
    good: tuple[tuple[str, Any], ...] = ()
    #: values only Python (config.py, test_config) can give
    bad_python: tuple[Any, ...] = ()
    #: other settings the row needs (e.g. Secure for a Partitioned cookie)
    extra: dict[str, Any] = field(default_factory=dict)
    #: the store (a kit's ``store_type``) the row runs on, set up by its kit (None: any)
    store: str | None = None
    #: False if the good values keep the test client's cookie from coming back
    #: (a Domain or Path the test client's requests do not match)
    cookie_returns: bool = True


