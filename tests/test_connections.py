"""One Redis connection pool per node process, shared by every component that talks to Redis."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from baike.keys import CrawlKeys
from tests.conftest import ROOT, Node, node_command, node_env

pytestmark = pytest.mark.e2e
KEYS = CrawlKeys.for_spider("baike")
# a node whose process records its Redis pools (tests/redispools.py) before Scrapy starts:
# ``python -c RECORDING <record file> crawl baike ...`` runs ``scrapy crawl baike ...``
RECORDING = (
    "import sys; from tests.redispools import record_pools; record_pools(sys.argv.pop(1)); "
    "from scrapy.cmdline import execute; execute()"
)


def start_recorded_node(redis_url: str, mirror: str, log_path: Path, record: Path, *settings: str) -> Node:
    command = node_command(redis_url, mirror, log_path, *settings)
    scrapy_at = command.index("-m")
    command[scrapy_at : scrapy_at + 2] = ["-c", RECORDING, str(record)]
    with log_path.with_suffix(".err").open("w") as errors:
        process = subprocess.Popen(command, cwd=ROOT, env=node_env(), stdout=subprocess.DEVNULL, stderr=errors)
    return Node(process=process, log_path=log_path)


def test_a_node_talks_to_redis_through_one_connection_pool(redis_db, redis_server, small_replica, tmp_path) -> None:
    small_replica.reset()
    redis_db.lpush(KEYS.start_urls, small_replica.start_url())
    record = tmp_path / "pools.json"
    opened_before = redis_db.info("stats")["total_connections_received"]
    # the budget's pages are stored: the scheduler, the dupefilter, the store pipeline (and
    # its writer thread), the seed reader and the extensions all work on this Redis
    node = start_recorded_node(
        redis_server.url, small_replica.url, tmp_path / "node.log", record, "CLOSESPIDER_PAGECOUNT=20"
    )
    try:
        assert node.wait(timeout=120) == 0, node.log[-3000:]
    finally:
        node.kill()
    opened = redis_db.info("stats")["total_connections_received"] - opened_before
    assert redis_db.hlen(KEYS.items) > 0 and node.stat("item_scraped_count") > 0
    recorded = json.loads(record.read_text())
    pools = recorded["pools"]
    assert len(pools) == 1, f"the node talked to Redis through {len(pools)} connection pools, not one"
    assert recorded["created"] == 1, f"the node made {recorded['created']} connection pools, not one"
    assert opened == len(pools[0]), (
        f"Redis received {opened} connections from the node, its pool opened {len(pools[0])}:"
        " something connects outside the shared pool"
    )
