#!/usr/bin/env bash
# The test command of the README: installs what is missing, then runs the whole suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k frontier).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --tests
exec .venv/bin/python -m pytest "$@"
