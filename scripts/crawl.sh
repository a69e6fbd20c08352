#!/usr/bin/env bash
# The main job of the README: installs what is missing, then runs a whole crawl with
# 2 nodes against the replica (or, given a seed URL, against the real site).
# Options go to scripts/crawl.py (e.g. --nodes 3 --pages 500).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/crawl.py "$@"
