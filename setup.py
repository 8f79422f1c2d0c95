"""setuptools hook (everything else is in pyproject.toml): ship flask_session_guard.pth.

A ``.pth`` file must sit at the top of site-packages, where no package-data setting puts
it; build_py copies it next to the packages. See flask_session_guard.py for why.
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

GUARD_PTH = "flask_session_guard.pth"


class BuildPyWithGuard(build_py):
    def run(self) -> None:
        super().run()
        self.copy_file(GUARD_PTH, os.path.join(self.build_lib, GUARD_PTH))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, GUARD_PTH)]


setup(cmdclass={"build_py": BuildPyWithGuard})
