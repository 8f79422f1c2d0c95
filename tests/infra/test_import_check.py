"""The layering check (scripts/check_imports.py, run by `make lint`) finds what it says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECK = REPO_ROOT / "scripts" / "check_imports.py"


def run_check(*packages: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK), *map(str, packages)], capture_output=True, text=True
    )


def write_package(root: Path, modules: dict[str, str]) -> Path:
    package = root / "pkg"
    for name, source in {"__init__": "", **modules}.items():
        path = package / f"{name.replace('.', '/')}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return package


def test_flask_session_has_no_cycle_and_no_in_function_import():
    result = run_check(REPO_ROOT / "flask_session")
    assert result.returncode == 0, result.stdout


def test_a_cycle_is_found_even_through_a_deferred_import(tmp_path):
    package = write_package(
        tmp_path,
        {
            "a": "from . import b\n",
            "b": "from .c import thing\n",
            "c": "def thing():\n    from .a import x\n",
        },
    )
    result = run_check(package)
    assert result.returncode == 1
    assert "import cycle among 3 modules (pkg.a, pkg.b, pkg.c)" in result.stdout
    assert "pkg.c imports pkg.a inside a function" in result.stdout


def test_type_checking_imports_and_other_packages_do_not_count(tmp_path):
    package = write_package(
        tmp_path,
        {
            "a": "from typing import TYPE_CHECKING\nfrom . import b\nif TYPE_CHECKING:\n"
            "    from .c import C\n",
            "b": "def f():\n    import json\n",
            "c": "from .a import thing\n",
        },
    )
    result = run_check(package)
    assert result.returncode == 0, result.stdout


#: Flask-Session 0.8's API, on top of the core
COMPATIBILITY = {
    "flask_session",  # the package's __init__ exports Session
    "flask_session.extension",
    "flask_session.config08",
    "flask_session.base",
    "flask_session.redis",
    "flask_session.filesystem",
    "flask_session.cachelib",
    "flask_session.sqlalchemy",
    "flask_session.memcached",
}


def test_the_core_imports_nothing_of_the_0_8_layer():
    sys.path.insert(0, str(CHECK.parent))
    try:
        from check_imports import import_graph
    finally:
        sys.path.remove(str(CHECK.parent))
    graph, _ = import_graph(REPO_ROOT / "flask_session")
    core = set(graph) - COMPATIBILITY
    reached, todo = set(), list(core)
    while todo:
        module = todo.pop()
        for target in graph[module] - reached:
            reached.add(target)
            todo.append(target)
    assert reached & COMPATIBILITY == set()
    assert "flask_session.wiring" in core and "flask_session.settings" in core
