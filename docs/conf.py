"""Sphinx configuration: `make docs` builds docs/_build/html with warnings as errors.

The guides stay GitHub-readable Markdown (myst-parser); the API reference comes from the
docstrings (autodoc); the settings table from the code's Setting rows (_ext/settings_table.py).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from pygments.lexers.special import TextLexer
from sphinx.application import Sphinx

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

from flask_session import __version__  # noqa: E402

project = "Flask-Session-Atomic"
author = "Flask-Session-Atomic contributors"
copyright = "the Flask-Session-Atomic contributors"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "myst_parser",
    "settings_table",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_heading_anchors = 4  # GitHub-style #section links between the guides

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = f"Flask-Session-Atomic {release}"

#: Links in the Markdown that point outside docs/ (right on GitHub), and the page that
#: carries the same text in the built docs (readme.md, bench.md include those files).
#: Applied to the text Sphinx reads, never to the files.
PAGE_LINKS = {"../README.md": "readme.md", "../bench/README.md": "bench.md"}
#: the same for a file outside docs/ that a page includes, by its path from docs/
INCLUDED_LINKS = {"../README.md": {"CHANGES.md": "changes.md", "bench/README.md": "bench.md"}}


def rewrite_links(text: str, links: dict[str, str]) -> str:
    """``](old)`` and ``](old#anchor)`` to ``](new...)``, for each ``old: new`` in links."""
    for old, new in links.items():
        text = re.sub(rf"\]\({re.escape(old)}(?=[)#])", f"]({new}", text)
    return text


def on_source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    source[0] = rewrite_links(source[0], PAGE_LINKS)


def on_include_read(
    app: Sphinx, relative_path: Path, parent_docname: str, content: list[str]
) -> None:
    content[0] = rewrite_links(content[0], INCLUDED_LINKS.get(relative_path.as_posix(), {}))


def setup(app: Sphinx) -> None:
    # crontab lines in the guides: no Pygments lexer, shown as plain text
    app.add_lexer("cron", TextLexer)
    app.connect("source-read", on_source_read)
    app.connect("include-read", on_include_read)
