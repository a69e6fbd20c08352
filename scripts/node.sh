#!/usr/bin/env bash
# A crawler node on this machine, in one command:
#
#   bash scripts/node.sh REDIS_URL [-s NAME=value ...]
#
# Installs the virtualenv .venv when it is missing (scripts/setup.sh --venv: the Python
# dependencies only; a node needs no redis-server), then runs `scrapy crawl baike` on the
# crawl at REDIS_URL, passing every other argument to it. REDIS_URL reaches the node through
# the environment, so a password in it is not on the command line other users can list.
# The exit code is the crawl's: 0 it ran, 2 the node was refused, 1 another failure;
# 2 also for a missing or malformed REDIS_URL.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() {
  cat >&2 <<'USAGE'
usage: bash scripts/node.sh REDIS_URL [-s NAME=value ...]
  Runs one crawler node (`scrapy crawl baike`) on the crawl at REDIS_URL: redis://, rediss://
  (TLS), unix:// or redis+sentinel://host1:26379,host2:26379/service/0 (the master of a Sentinel
  service), e.g. redis://user:password@redis-host:6379/0. Every other argument goes
  to `scrapy crawl baike`, e.g. -s CLOSESPIDER_PAGECOUNT=10000. See docs/redis.md.
USAGE
}

if [ $# -lt 1 ]; then
  usage
  exit 2
fi
case "$1" in
  -h | --help)
    usage
    exit 0
    ;;
  redis://?* | rediss://?* | unix://?* | redis+sentinel://?* | rediss+sentinel://?*) ;;
  *)
    # not echoed: it may hold a password
    echo "node.sh: the first argument must be the crawl's Redis URL (redis://, rediss://, unix://, redis+sentinel:// or rediss+sentinel://...)" >&2
    usage
    exit 2
    ;;
esac
url=$1
shift

if [ ! -x .venv/bin/python ]; then
  bash scripts/setup.sh --venv
fi
REDIS_URL=$url exec .venv/bin/python -m scrapy crawl baike "$@"
