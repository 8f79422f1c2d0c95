"""setuptools hooks (everything else is in pyproject.toml): ship flask_session_guard.pth.

A ``.pth`` file must sit at the top of site-packages, where no package-data setting puts
it. For a wheel, build_py copies it next to the packages; for an editable install
(``pip install -e .``), the editable wheel gets it beside setuptools' own ``.pth``, so a
checkout is guarded like an installed wheel. See flask_session_guard.py for why.
"""

from __future__ import annotations

import os
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

GUARD_PTH = "flask_session_guard.pth"


class BuildPyWithGuard(build_py):
    def run(self) -> None:
        super().run()
        self.copy_file(GUARD_PTH, os.path.join(self.build_lib, GUARD_PTH))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, GUARD_PTH)]


class _StrategyWithGuard:
    """Wraps setuptools' editable strategy (what writes its .pth into the editable wheel)
    to write the guard's .pth too."""

    def __init__(self, strategy: Any) -> None:
        self.strategy = strategy

    def __enter__(self) -> _StrategyWithGuard:
        self.strategy.__enter__()
        return self

    def __exit__(self, *exc: object) -> Any:
        return self.strategy.__exit__(*exc)

    def __call__(self, wheel: Any, files: list[str], mapping: dict[str, str]) -> None:
        self.strategy(wheel, files, mapping)
        with open(GUARD_PTH, "rb") as pth:
            wheel.writestr(GUARD_PTH, pth.read())


class EditableWheelWithGuard(editable_wheel):
    # _select_strategy is setuptools' own (since 64). Should a release drop it, editable
    # installs would go unguarded: tests/infra/test_coinstall_guard.py checks that the
    # editable install `make venv` makes has the guard's .pth.
    def _select_strategy(self, *args: Any, **kwargs: Any) -> Any:
        return _StrategyWithGuard(super()._select_strategy(*args, **kwargs))


setup(cmdclass={"build_py": BuildPyWithGuard, "editable_wheel": EditableWheelWithGuard})
