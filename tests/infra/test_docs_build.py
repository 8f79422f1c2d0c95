"""The Sphinx docs build with warnings as errors, and hold what they promise.

One build of ``docs/`` (as ``make docs`` runs it, into a temporary folder): it must succeed
under ``-W``; the API page must document the public classes; the settings page must list
every row the code reads (``CORE_SETTINGS`` and each store's ``settings``), since it is
generated from them; the pages standing in for files outside docs/ must be linked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flask_session.settings import CORE_SETTINGS
from flask_session.stores import STORE_CLASSES, store_class

REPO_ROOT = Path(__file__).resolve().parents[2]
#: a build takes ~5 s on one core; far more means it hangs
BUILD_TIMEOUT = 300


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs-html")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "docs", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False,
    )
    assert result.returncode == 0, f"sphinx failed:\n{result.stdout}\n{result.stderr}"
    assert "WARNING" not in result.stderr, result.stderr
    return out


def test_api_page_documents_the_public_classes(html: Path) -> None:
    api = (html / "api.html").read_text()
    for name in ("Session", "ServerSideSession", "ServerSideSessionInterface",
                 "read_only_session", "StoreUnavailable", "SessionConfigError"):
        assert f'id="flask_session.{name}"' in api, name
    for name in ("stores.base.Store", "stores.counters.Counters", "stores.users.UserIndex",
                 "stores.upgrade08.Upgrade08", "metrics.SessionMetrics"):
        assert f'id="flask_session.{name}"' in api, name
    # autodoc read the docstrings, not just the names
    assert "incr" in api


def test_settings_page_lists_every_setting_row(html: Path) -> None:
    page = (html / "settings.html").read_text()
    assert "SESSION_TYPE" in page and "SESSION_MAX_SIZE" in page
    rows = list(CORE_SETTINGS)
    for store_type in STORE_CLASSES:
        rows.extend(store_class(store_type).settings)
    for setting in rows:
        assert f">{setting.key}<" in page, setting.key
    # a default as the config spells it, next to its key
    max_size = next(s for s in CORE_SETTINGS if s.key == "SESSION_MAX_SIZE")
    assert f">{max_size.default!r}<" in page


def test_links_outside_docs_land_on_pages(html: Path) -> None:
    # docs/service.md links ../README.md, docs/benchmarks.md ../bench/README.md (right on
    # GitHub); in the built site they go to the pages that include those files
    assert 'href="readme.html#the-two-commands"' in (html / "service.html").read_text()
    assert 'href="bench.html"' in (html / "benchmarks.html").read_text()
    readme = (html / "readme.html").read_text()
    assert 'href="changes.html"' in readme and 'href="flask_session.html' in readme
    assert 'href="packaging.html' in (html / "changes.html").read_text()
