#!/usr/bin/env bash
# The test command of the README: installs what is missing, checks the code's format, lint
# and types (ruff and mypy, set up in pyproject.toml; any finding fails the run), then runs
# the whole suite, one worker per core (pytest-xdist; a test file stays on one worker, so its
# module fixtures are made once). Extra arguments go to pytest (e.g. scripts/test.sh -k
# frontier; -n 0 runs in one process).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --tests
.venv/bin/ruff format --check
.venv/bin/ruff check
.venv/bin/mypy
exec .venv/bin/python -m pytest -n auto --dist loadfile "$@"
