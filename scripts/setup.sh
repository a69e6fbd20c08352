#!/usr/bin/env bash
# Installs what baike needs on a fresh machine: a virtualenv with the pinned Python
# dependencies (.venv) and redis-server (Debian's package, when we are root).
# With --tests (scripts/test.sh) also what only some tests need: faketime (libfaketime,
# for nodes with skewed clocks), iproute2 (`ip`, for the virtual LAN of network
# namespaces) and prometheus (a real server scraping `scrapy metrics`); where they
# cannot be installed it says what to install and goes on, and
# those tests skip with the reason.
# With --venv only the virtualenv: what a crawler node needs (scripts/node.sh); no redis-server.
# Sourced by scripts/crawl.sh and scripts/test.sh; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

for_tests=${BAIKE_SETUP_TESTS:-0}
venv_only=0
for argument in "$@"; do
  case "$argument" in
    --tests) for_tests=1 ;;
    --venv) venv_only=1 ;;
    *) echo "setup.sh: unknown argument $argument (only --tests or --venv)" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
  echo "baike needs Python 3.11+ ($python not found)." >&2
  exit 1
fi

can_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1
}

apt_updated=0
apt_install() {
  # apt-get update once, and only when something must be installed
  # (quiet: apt's output is shown only when it fails)
  local output
  if [ "$apt_updated" = 0 ]; then
    output=$(apt-get update -qq 2>&1) || { echo "$output" >&2; return 1; }
    apt_updated=1
  fi
  output=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" 2>&1) || { echo "$output" >&2; return 1; }
}

if [ "$venv_only" = 0 ] && ! command -v redis-server >/dev/null 2>&1; then
  if can_install; then
    echo "Installing redis-server from Debian packages..."
    apt_install redis-server
  else
    echo "redis-server is missing. Install it (Debian/Ubuntu: sudo apt-get install redis-server," >&2
    echo "macOS: brew install redis) and run this command again." >&2
    exit 1
  fi
fi

if [ "$for_tests" = 1 ] && [ "$venv_only" = 0 ]; then
  optional=()
  command -v faketime >/dev/null 2>&1 || optional+=(faketime)
  command -v ip >/dev/null 2>&1 || optional+=(iproute2)
  command -v prometheus >/dev/null 2>&1 || optional+=(prometheus)
  if [ "${#optional[@]}" -gt 0 ]; then
    if can_install; then
      echo "Installing ${optional[*]} from Debian packages (for the multi-host and Prometheus tests)..."
      apt_install "${optional[@]}" || echo "Could not install ${optional[*]}; the tests that need them will skip." >&2
    else
      echo "Optional for the tests: ${optional[*]} (Debian/Ubuntu: sudo apt-get install ${optional[*]})." >&2
      echo "Without them the multi-host tests (tests/test_fleet.py) and the Prometheus test" >&2
      echo "(tests/test_metrics_prometheus.py) skip, saying why." >&2
    fi
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
