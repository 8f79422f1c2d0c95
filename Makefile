# Build and test entry points. `make test` sets up everything on a fresh Debian machine.

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
SYSTEM_PACKAGES := redis-server chromium postgresql memcached

.DEFAULT_GOAL := help
.PHONY: help venv system-packages test test-bounds typecheck docs run run-gunicorn bench bench-stores lint clean

# help: list the targets
help:
	@echo "make venv             create .venv: the library and the service (editable) and the dev tools"
	@echo "make system-packages  install redis-server, chromium, postgresql, memcached (Debian) when missing"
	@echo "make test             set everything up, lint, type-check, build the docs, run the test suite (PYTEST_ARGS=... to narrow), then make test-bounds (skipped when narrowed)"
	@echo "make test-bounds      a fast core of the suite: lowest versions on Python 3.10, newest on 3.13 (BOUNDS_ARGS=--matrix: both on both)"
	@echo "make typecheck        mypy: --strict on flask_session, checked on sessionapp (pyproject.toml)"
	@echo "make docs             build the Sphinx docs into docs/_build/html, warnings as errors"
	@echo "make run              set up and start the service on granian (sessionapp/serve.py)"
	@echo "make run-gunicorn     the same service on gunicorn instead (gunicorn.conf.py)"
	@echo "make bench            benchmark against Flask-Session 0.8 and plain Flask (BENCH_ARGS=--quick)"
	@echo "make bench-stores     A, B, D on the SQL stores, memcached, Redis: issue 22's targets (~6 min)"
	@echo "make lint             ruff over the repository, and the import-layering check"
	@echo "make clean            remove .venv, caches and the built docs"

# venv: the virtual environment, reinstalled only when a pyproject.toml changes: both
# distributions editable (the library, ., and the service, service/), and the `dev`
# dependency group (PEP 735: pip >= 25.1 installs groups). Every interpreter start imports
# flask_session_guard (docs/packaging.md): its .pyc, written even where PYTHONDONTWRITEBYTECODE
# is set, spares each start compiling it (2-3 ms)
venv: $(STAMP)

$(STAMP): pyproject.toml service/pyproject.toml flask_session_guard.py
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q 'pip>=25.1'
	$(VPY) -m pip install -q -e . -e ./service --group dev
	$(VPY) -m py_compile flask_session_guard.py
	touch $@

# system-packages: Debian packages the tests need (installs as root, else says what to run)
system-packages:
	@scripts/ensure-system-packages $(SYSTEM_PACKAGES)

# test: lint, types, the docs, the whole suite against real redis-server, PostgreSQL,
# memcached, granian, gunicorn and chromium, then test-bounds (not when PYTEST_ARGS narrows
# the run)
test: venv system-packages lint typecheck docs
	$(VPY) -m pytest $(PYTEST_ARGS)
	$(if $(PYTEST_ARGS),,$(MAKE) test-bounds)

# test-bounds: the store contract (filesystem, Redis), the session contract, the drop-in API
# and the service's commands: the lowest versions the metadata allows on the oldest Python
# requires-python admits, and the newest on the newest (BOUNDS_ARGS=--matrix: both on both);
# each in its own venv under .venv-bounds/, installed by uv (scripts/test_bounds.py)
test-bounds: venv system-packages
	$(VPY) -m pip install -q --group bounds
	$(VPY) scripts/test_bounds.py $(BOUNDS_ARGS)

# typecheck: mypy (the `typecheck` dependency group) with the settings in pyproject.toml
typecheck: venv
	$(VPY) -m mypy

# docs: the Sphinx site (the `docs` dependency group; docs/conf.py): the guides in docs/*.md,
# the API reference from the docstrings, the settings table from the code's Setting rows,
# CHANGES.md; any warning (a broken link, bad docstring markup) fails the build
docs: venv
	$(VPY) -m sphinx -W --keep-going -b html docs docs/_build/html

# run: the service on granian (settings: SESSIONAPP_BIND/WORKERS/THREADS, see sessionapp/serve.py);
# needs neither redis nor chromium (filesystem store by default)
run: venv
	exec $(VPY) -m sessionapp.serve

# run-gunicorn: the same service on gunicorn, with the same SESSIONAPP_* variables
run-gunicorn: venv
	exec $(VENV)/bin/gunicorn -c gunicorn.conf.py app:app

# bench: interleaved wrk benchmark of A, B, C, D on granian and gunicorn (redis and filesystem
# by default, ~20-25 min; BENCH_ARGS="--stores all" for all five, "--quick" for a smoke test);
# prints the tables and the targets of bench/targets.toml, writes bench/results/ (bench/README.md)
bench: venv
	bench/run $(BENCH_ARGS)

# bench-stores: issue 22's measurement, ~6 min: A, B and D side by side on granian, POST /inc
# over 200 cookies and on one cookie, on the SQL stores, memcached and Redis; the Targets
# table judges each store against bench/targets.toml
bench-stores: venv
	bench/run --stores sqlite,postgresql,memcached,redis --servers granian --targets A,B,D \
		--scenarios inc,contention --rounds 3 --duration 4 $(BENCH_ARGS)

# lint: ruff (the `lint` dependency group) with the settings in pyproject.toml, and
# the layering check: no import cycle, no in-function import between flask_session modules
lint: venv
	$(VPY) -m ruff check .
	$(VPY) scripts/check_imports.py flask_session

# clean: remove the virtual environment, tool caches and the built docs
clean:
	rm -rf $(VENV) .venv-bounds .pytest_cache .ruff_cache .hypothesis *.egg-info build docs/_build
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
