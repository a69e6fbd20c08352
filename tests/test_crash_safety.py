"""At-least-once crawling: nodes killed with SIGKILL, Redis restarted, hostile payloads."""

from __future__ import annotations

import json
import pickle
import random
import time

import pytest

from baike.keys import CrawlKeys
from tests.conftest import RedisServer, free_port

pytestmark = pytest.mark.e2e
KEYS = CrawlKeys.for_spider("baike")
FAST_LEASES = ("SCHEDULER_LEASE_SECONDS=2", "SCHEDULER_HEARTBEAT_INTERVAL=0.5")


def fingerprints(client) -> int:
    return sum(client.hlen(key) for key in client.scan_iter(match=f"{KEYS.dupefilter}:*", count=1000))


def queued_requests(client) -> int:
    """Requests in the frontier, counted entry by entry (a batch holds "\\n" before each)."""
    entries = [client.hget(KEYS.request_data, member) for member in client.zrange(KEYS.requests, 0, -1)]
    return sum(entry.count(b"\n") if entry.startswith(b"\n") else 1 for entry in entries if entry is not None)


def assert_accounting_whole(client) -> None:
    """Every request ever enqueued is settled, queued or leased; each fingerprint was enqueued once."""
    ledger = {key.decode(): int(value) for key, value in client.hgetall(KEYS.budget).items()}
    queued, leased = queued_requests(client), client.zcard(KEYS.leases)
    assert ledger["enqueued"] == ledger["settled"] + queued + leased, (ledger, queued, leased)
    assert fingerprints(client) == ledger["enqueued"]


def stored_urls(client) -> list[str]:
    return [key.decode() for key in client.hkeys(KEYS.items)]


@pytest.mark.parametrize("moment", [0.3, 0.9, 1.6, 2.4, 3.3])
def test_a_node_killed_at_any_moment_loses_nothing(
    redis_db, redis_server, replica_factory, node_factory, moment: float
) -> None:
    replica = replica_factory(300, 5, "--latency-ms", "15")
    answer = replica.answer_key(replica.start_url())
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    nodes = [node_factory(redis_server.url, replica.url, "CLOSESPIDER_PAGECOUNT=0", *FAST_LEASES) for _ in range(3)]
    time.sleep(moment + random.uniform(0, 0.2))
    nodes[0].kill()
    for node in nodes[1:]:
        assert node.wait(timeout=180) == 0, node.log[-3000:]
        assert node.finish_reason == "finished"

    urls = stored_urls(redis_db)
    assert len(urls) == len(set(urls))
    assert set(urls) == set(answer), "every reachable entry is stored, exactly once"
    assert redis_db.zcard(KEYS.leases) == 0 and redis_db.zcard(KEYS.requests) == 0
    assert redis_db.llen(KEYS.dead) == 0
    assert_accounting_whole(redis_db)


def test_budget_stays_exact_when_a_node_dies(redis_db, redis_server, replica_factory, node_factory) -> None:
    replica = replica_factory(2000, 5, "--latency-ms", "15")
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    nodes = [node_factory(redis_server.url, replica.url, "CLOSESPIDER_PAGECOUNT=400", *FAST_LEASES) for _ in range(3)]
    time.sleep(2.0)
    nodes[0].kill()
    for node in nodes[1:]:
        assert node.wait(timeout=180) == 0, node.log[-3000:]
        assert node.finish_reason == "closespider_pagecount"

    assert int(redis_db.hget(KEYS.budget, "pages")) == 400
    survivors = sum(node.stat("response_received_count") for node in nodes[1:])
    received = sum(count for status, count in replica.stats()["by_status"].items() if not status.startswith("3"))
    # the dead node's settled pages count in the budget; its unsettled in-flight downloads
    # (at most its concurrency plus one batch) were made up by the survivors
    assert 400 <= received <= 400 + 16 + 8
    assert survivors <= 400
    urls = stored_urls(redis_db)
    assert len(urls) == len(set(urls))
    assert_accounting_whole(redis_db)


def test_redis_restart_mid_crawl(tmp_path, replica_factory, node_factory) -> None:
    server = RedisServer(port=free_port(), directory=tmp_path, extra=("--appendonly", "yes", "--appendfsync", "always"))
    server.start()
    try:
        client = server.client()
        replica = replica_factory(300, 9, "--latency-ms", "20")
        answer = replica.answer_key(replica.start_url())
        client.lpush(KEYS.start_urls, replica.start_url())
        nodes = [node_factory(server.url, replica.url, "CLOSESPIDER_PAGECOUNT=0", *FAST_LEASES) for _ in range(2)]
        time.sleep(2.0)
        server.stop()
        time.sleep(2.0)
        server.start()
        for node in nodes:
            assert node.wait(timeout=240) == 0, node.log[-3000:]
            assert node.finish_reason == "finished"
            assert "Lost Redis" in node.log and "Redis is back" in node.log
            assert node.log.count("Traceback") <= 2, "no traceback storm"
        urls = stored_urls(client)
        assert sorted(urls) == sorted(set(urls)) and set(urls) == set(answer)
    finally:
        server.stop()


HOSTILE = [
    b"\x00\xff\xfe garbage bytes",
    pickle.dumps({"url": "https://baike.baidu.com/item/x/1"}),
    json.dumps({"url": ["not", "a", "string"]}).encode(),
    json.dumps({"url": "https://evil.example/item/x/1"}).encode(),
    json.dumps({"url": "https://baike.baidu.com/item/x/1", "callback": "__init__"}).encode(),
    b"https://baike.baidu.com/item/" + b"x" * (10 * 1024 * 1024),
]


def test_hostile_payloads_are_rejected_while_nodes_crawl(redis_db, redis_server, replica_factory, node_factory) -> None:
    replica = replica_factory(300, 13, "--latency-ms", "10")
    answer = replica.answer_key(replica.start_url())
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    nodes = [node_factory(redis_server.url, replica.url, "CLOSESPIDER_PAGECOUNT=0") for _ in range(2)]
    time.sleep(1.5)
    for number, payload in enumerate(HOSTILE):
        redis_db.hset(KEYS.request_data, f"hostile{number}", payload)
        redis_db.zadd(KEYS.requests, {f"hostile{number}": -1e15})
        redis_db.rpush(KEYS.start_urls, payload)
    redis_db.rpush(KEYS.start_urls, b"{not json", b'{"url": 5}', b"https://example.com/item/x", b"not a url")
    for node in nodes:
        assert node.wait(timeout=180) == 0, node.log[-3000:]
        assert node.finish_reason == "finished"

    assert set(stored_urls(redis_db)) == set(answer)
    dead = [json.loads(raw) for raw in redis_db.lrange(KEYS.dead, 0, -1)]
    rejected_payloads = [record for record in dead if record["reason"].startswith("rejected payload")]
    bad_seeds = [record for record in dead if record["reason"].startswith("bad seed")]
    assert len(rejected_payloads) == len(HOSTILE)
    assert len(bad_seeds) == len(HOSTILE) + 4
    assert sum(node.stat("baike/frontier/rejected") for node in nodes) == len(HOSTILE)
    assert sum(node.stat("baike/seeds/rejected") for node in nodes) == len(HOSTILE) + 4
    assert all(len(json.dumps(record)) < 4096 for record in dead), "dead letters keep a bounded excerpt"
