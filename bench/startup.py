"""What the co-installation guard costs each interpreter start, and its check at import.

    .venv/bin/python bench/startup.py [--runs 200]

Builds three bare virtual environments (no pip, nothing else installed) in a temporary
directory, from the interpreter that runs this script, so that the only difference
between them is one ``.pth`` file:

* **without**: nothing.
* **with the guard**: ``flask_session_guard.pth`` and ``flask_session_guard.py``, copied
  from this repository into site-packages, byte-compiled as pip does when it installs.
* **with the guard, no .pyc**: the same, never compiled, so that every start compiles the
  module: what happens where no ``.pyc`` can be written (``PYTHONDONTWRITEBYTECODE`` set
  and nothing compiled the file at install time).
* **for scale**: a ``.pth`` that imports ``importlib.metadata`` at start-up, which is what
  the previous guard did (its module imported it at the top).

Then runs ``python -c pass`` in each, interleaved, ``--runs`` times, and prints the median
and the 10th/90th percentiles of the wall time per start, and the difference of each
median from *without*. Wall time on a shared machine is noisy, so it also prints what
``python -X importtime`` attributes to the guard's module (the median over a quarter as
many starts), which is the guard's start-up cost without the noise. Last, the check itself,
which runs once per process on the first ``import flask_session``: the time
``flask_session_guard.mixed_installation_error()`` takes on this interpreter's own
``sys.path`` (run it from the project's .venv to see a real site-packages).
"""

from __future__ import annotations

import argparse
import py_compile
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import flask_session_guard  # noqa: E402

GUARD_FILES = ("flask_session_guard.py", "flask_session_guard.pth")
#: what the previous guard's module did at interpreter start-up
PREVIOUS_GUARD_PTH = "import importlib.metadata\n"


def make_venv(path: Path) -> Path:
    """A bare venv at ``path``; its site-packages directory."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    (site_packages,) = path.glob("lib/python*/site-packages")
    return site_packages


def one_start(python: Path) -> float:
    """Seconds for ``python -c pass``, from fork to exit."""
    started = time.perf_counter()
    subprocess.run([str(python), "-c", "pass"], check=True)
    return time.perf_counter() - started


def guard_import_us(python: Path) -> int:
    """Microseconds -X importtime attributes to flask_session_guard (self + imports)."""
    result = subprocess.run(
        [str(python), "-X", "importtime", "-c", "pass"],
        check=True,
        capture_output=True,
        text=True,
    )
    for line in result.stderr.splitlines():
        # "import time:       self [us] |  cumulative | imported package"
        fields = [field.strip() for field in line.removeprefix("import time:").split("|")]
        if len(fields) == 3 and fields[2] == "flask_session_guard":
            return int(fields[1])
    raise SystemExit(f"{python}: flask_session_guard was not imported at start-up")


def check_seconds(repeat: int) -> float:
    """Median seconds of one full check on this interpreter's sys.path."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        flask_session_guard.mixed_installation_error()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=200, help="starts per environment")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        root = Path(tmp)
        make_venv(root / "without")
        with_site = make_venv(root / "with")
        source_site = make_venv(root / "source")
        for site in (with_site, source_site):
            for name in GUARD_FILES:
                shutil.copy(REPO_ROOT / name, site / name)
        py_compile.compile(str(with_site / GUARD_FILES[0]), doraise=True)
        previous_site = make_venv(root / "previous")
        (previous_site / "previous_guard.pth").write_text(PREVIOUS_GUARD_PTH)
        envs = {
            "without": root / "without/bin/python",
            "with the guard": root / "with/bin/python",
            "with the guard, no .pyc": root / "source/bin/python",
            "for scale: importlib.metadata": root / "previous/bin/python",
        }
        for python in envs.values():  # warm the page cache and the .pyc files
            one_start(python)
        times: dict[str, list[float]] = {label: [] for label in envs}
        for _ in range(args.runs):
            for label, python in envs.items():
                times[label].append(one_start(python))
        importtime = {
            label: [guard_import_us(envs[label]) for _ in range(args.runs // 4 or 1)]
            for label in ("with the guard", "with the guard, no .pyc")
        }

    base = statistics.median(times["without"])
    print(f"python -c pass, {args.runs} starts each, interleaved ({sys.version.split()[0]})")
    print(f"| {'environment':<30} | median ms | p10 ms | p90 ms | median - without |")
    print(f"|{'-' * 32}|-----------|--------|--------|------------------|")
    for label, samples in times.items():
        deciles = statistics.quantiles(samples, n=10)
        median = statistics.median(samples)
        print(
            f"| {label:<30} | {median * 1e3:9.2f} | {deciles[0] * 1e3:6.2f} |"
            f" {deciles[-1] * 1e3:6.2f} | {(median - base) * 1e3:+16.2f} |"
        )
    print("\n-X importtime, flask_session_guard at start-up (cumulative, median):")
    for label, samples in importtime.items():
        print(f"  {label}: {statistics.median(samples)} us ({len(samples)} starts)")
    print(
        f"the check on the first `import flask_session`, on this interpreter's sys.path"
        f" ({len(sys.path)} entries): {check_seconds(50) * 1e3:.3f} ms"
    )


if __name__ == "__main__":
    main()
