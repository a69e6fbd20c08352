#!/usr/bin/env bash
# Installs what baike needs on a fresh machine: a virtualenv with the pinned Python
# dependencies (.venv) and redis-server (Debian's package, when we are root).
# Sourced by scripts/crawl.sh and scripts/test.sh; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
  echo "baike needs Python 3.11+ ($python not found)." >&2
  exit 1
fi

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing redis-server from Debian packages..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is missing. Install it (Debian/Ubuntu: sudo apt-get install redis-server," >&2
    echo "macOS: brew install redis) and run this command again." >&2
    exit 1
  fi
fi

stamp=.venv/.requirements.sha
wanted=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "Installing Python dependencies into .venv..."
  "$python" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
  echo "$wanted" > "$stamp"
fi
