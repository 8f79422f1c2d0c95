"""The ``settings-table`` directive: the settings reference generated from the code.

Renders the rows the code reads (:data:`flask_session.settings.CORE_SETTINGS`, then each
store class's ``settings`` in the order :data:`flask_session.stores.STORE_CLASSES` names
the stores) as one table of key, default and description, so the reference cannot drift
from the ``Setting`` rows. Importing a store module needs its client (the docs group
installs all of them through the ``test`` group).
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.application import Sphinx

from flask_session.readers import Setting
from flask_session.settings import CORE_SETTINGS
from flask_session.stores import STORE_CLASSES, store_class

#: the table's columns and their relative widths
COLUMNS = (("Key", 30), ("Default", 15), ("Description", 55))


def default_text(setting: Setting) -> str:
    """The default as the config would spell it; a callable default is computed per app."""
    if callable(setting.default):
        return "computed per app (see description)"
    return repr(setting.default)


def settings_rows() -> list[tuple[str, Setting]]:
    """Every row: ``("core", setting)`` first, then ``(store type, setting)`` per store."""
    rows = [("core", setting) for setting in CORE_SETTINGS]
    for store_type in STORE_CLASSES:
        rows.extend((store_type, setting) for setting in store_class(store_type).settings)
    return rows


def literal_cell(text: str) -> nodes.entry:
    return nodes.entry("", nodes.paragraph("", "", nodes.literal(text, text)))


def text_cell(text: str) -> nodes.entry:
    return nodes.entry("", nodes.paragraph(text, text))


class SettingsTable(Directive):
    """``settings-table`` takes one argument: ``core`` or a store type (``redis``...)."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        group = self.arguments[0]
        known = ("core", *STORE_CLASSES)
        if group not in known:
            raise self.error(f"settings-table: {group!r} is not one of {', '.join(known)}")
        table = nodes.table()
        tgroup = nodes.tgroup(cols=len(COLUMNS))
        table += tgroup
        for _title, width in COLUMNS:
            tgroup += nodes.colspec(colwidth=width)
        head_row = nodes.row()
        for title, _width in COLUMNS:
            head_row += text_cell(title)
        tgroup += nodes.thead("", head_row)
        body = nodes.tbody()
        for row_group, setting in settings_rows():
            if row_group != group:
                continue
            row = nodes.row()
            row += literal_cell(setting.key)
            row += literal_cell(default_text(setting))
            row += text_cell(setting.doc)
            body += row
        tgroup += body
        return [table]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("settings-table", SettingsTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
