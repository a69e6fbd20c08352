"""A fresh crawl: scrapy-redis's SCHEDULER_FLUSH_ON_START as `scrapy reset --keep-items` run by
the first node of a crawl only, on the suite's Redis and with real nodes."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
from scrapy import Request

from baike.errors import NodeRefused
from baike.fresh import FlushAtStart, flush_at_start, release_flush_guard
from baike.frontier.scheduler import LeasedScheduler
from baike.keys import CrawlKeys
from tests.frontier_helpers import make_crawler

KEYS = CrawlKeys.for_spider("baike")
BLOOM = "baike:bloom"
SEED = "https://baike.baidu.com/item/x/1"


def an_old_crawl(client) -> None:
    """What a crawl leaves behind: frontier, leases, fingerprints, ledger, records, seeds, items."""
    client.zadd(KEYS.requests, {"1": 1})
    client.hset(KEYS.request_data, "1", "{}")
    client.zadd(KEYS.leases, {"2": time.time() + 3600})
    client.hset(KEYS.dupefilter, mapping={"buckets": 100, "field_bytes": 5})
    client.hset(f"{KEYS.dupefilter}:0a", b"abcde", b"")
    client.hset(BLOOM, "hashes", 10)
    client.set(f"{BLOOM}:0", b"\x01")
    client.hset(KEYS.budget, mapping={"pages": 50, "reserved": 50})
    client.hset(f"{KEYS.rate_prefix}127.0.0.1", "tat", 1)
    client.rpush(KEYS.dead, "{}")
    client.hset(KEYS.state, "reason", "closespider_pagecount")
    client.hset(KEYS.items, "https://baike.baidu.com/item/old/1", "{}")
    client.rpush(KEYS.start_urls, SEED)


def alive_record(client, node: str) -> None:
    seconds, _ = client.time()
    client.hset(KEYS.nodes, node, json.dumps({"node": node, "started": seconds - 5, "seen": seconds}))


def flush(client, node: str, lost_after: float = 10.0) -> FlushAtStart:
    return flush_at_start(client, KEYS, BLOOM, node, lost_after)


def test_the_first_node_flushes_all_but_seeds_and_items(redis_db) -> None:
    an_old_crawl(redis_db)
    done = flush(redis_db, "a:1:0001")

    assert done.flushed and done.deleted == 11
    assert sorted(key.decode() for key in redis_db.keys("*")) == sorted([KEYS.start_urls, KEYS.items, KEYS.flush])
    assert redis_db.get(KEYS.flush) == b"a:1:0001" and 0 < redis_db.pttl(KEYS.flush) <= 10_000


def test_a_node_joining_a_running_crawl_never_flushes_it(redis_db) -> None:
    an_old_crawl(redis_db)
    alive_record(redis_db, "a:1:0001")
    before = {key: redis_db.type(key) for key in redis_db.keys("*")}

    done = flush(redis_db, "b:2:0002")

    assert done == FlushAtStart(False, alive=("a:1:0001",))
    assert {key: redis_db.type(key) for key in redis_db.keys("*") if key != KEYS.flush.encode()} == before


def test_of_nodes_starting_together_exactly_one_flushes(redis_db, redis_server) -> None:
    an_old_crawl(redis_db)
    results: list[FlushAtStart] = []
    start = threading.Barrier(8)

    def start_node(number: int) -> None:
        client = redis_server.client()
        start.wait()
        results.append(flush(client, f"n:{number}:0000"))
        client.close()

    threads = [threading.Thread(target=start_node, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    flushed = [result for result in results if result.flushed]
    assert len(results) == 8 and len(flushed) == 1
    winner = redis_db.get(KEYS.flush).decode()
    assert {result.guarded_by for result in results if not result.flushed} == {winner}


def test_the_guard_goes_back_only_from_its_node_and_safely_twice(redis_db) -> None:
    assert flush(redis_db, "a:1:0001").flushed
    assert release_flush_guard(redis_db, KEYS, "b:2:0002") is False
    assert redis_db.exists(KEYS.flush)
    assert release_flush_guard(redis_db, KEYS, "a:1:0001") is True
    assert release_flush_guard(redis_db, KEYS, "a:1:0001") is False
    assert flush(redis_db, "c:3:0003").flushed, "the next crawl's first node flushes again"


# -- the leased scheduler -------------------------------------------------------------------


def test_the_scheduler_flushes_before_its_dupefilter_records_the_layout(redis_db, redis_server, caplog) -> None:
    """A layout no node could read refuses every node; flushed at start, the crawl is fresh."""
    an_old_crawl(redis_db)
    redis_db.hset(KEYS.dupefilter, mapping={"buckets": "garbage", "field_bytes": 5})
    caplog.set_level(logging.INFO, logger="baike.fresh")
    crawler = make_crawler(redis_server.url, SCHEDULER_FLUSH_ON_START=True)

    scheduler = LeasedScheduler.from_crawler(crawler)
    scheduler.open(crawler.spider)

    lines = [record.getMessage() for record in caplog.records if "SCHEDULER_FLUSH_ON_START" in record.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"SCHEDULER_FLUSH_ON_START: flushed the crawl at {redis_server.url}")
    assert "deleted 11 keys" in lines[0]
    assert redis_db.hget(KEYS.dupefilter, "buckets") == str(scheduler.df.layout.buckets).encode()
    assert not redis_db.exists(KEYS.budget, KEYS.leases, KEYS.requests)
    assert scheduler.enqueue_request(Request("https://baike.baidu.com/item/old/1", callback=crawler.spider.parse))
    scheduler.close("finished")
    assert not redis_db.exists(KEYS.flush), "given back at close"


def test_a_scheduler_joining_a_running_crawl_says_so(redis_db, redis_server, caplog) -> None:
    an_old_crawl(redis_db)
    alive_record(redis_db, "a:1:0001")
    caplog.set_level(logging.INFO, logger="baike.fresh")
    crawler = make_crawler(redis_server.url, SCHEDULER_FLUSH_ON_START=True)
    scheduler = LeasedScheduler.from_crawler(crawler)
    scheduler.open(crawler.spider)
    assert "SCHEDULER_FLUSH_ON_START: not flushed: the crawl is running on 1 live node (a:1:0001)" in caplog.text
    assert redis_db.hget(KEYS.budget, "pages") == b"50"
    scheduler.close("finished")


def test_a_node_that_cannot_flush_is_refused(redis_db) -> None:
    refusal = r"^SCHEDULER_FLUSH_ON_START: could not flush the crawl at redis://127\.0\.0\.1:1/0 \("
    with pytest.raises(NodeRefused, match=refusal):
        LeasedScheduler.from_crawler(make_crawler("redis://127.0.0.1:1/0", SCHEDULER_FLUSH_ON_START=True))


# -- real nodes ----------------------------------------------------------------------------------


def responses(replica) -> int:
    return sum(count for status, count in replica.stats()["by_status"].items() if not status.startswith("3"))


@pytest.mark.e2e
def test_the_first_node_flushes_an_ended_crawl_and_a_later_node_joins_it(
    redis_db, redis_server, replica_factory, node_factory
) -> None:
    replica = replica_factory(2000, 5)
    # an old crawl that spent its budget: without a flush a node would stop at once
    redis_db.hset(KEYS.budget, "pages", 120)
    redis_db.hset(KEYS.items, "https://baike.baidu.com/item/old/1", "{}")
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    settings = ("SCHEDULER_FLUSH_ON_START=True", "CLOSESPIDER_PAGECOUNT=120", "BAIKE_CLUSTER_RATE=30")

    first = node_factory(redis_server.url, replica.url, *settings)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        "flushed the crawl at" in first.log and redis_db.hget(KEYS.budget, "pages")
    ):
        time.sleep(0.1)  # flushed, and the fresh crawl under way: pages are counted again
    later = node_factory(redis_server.url, replica.url, *settings)
    for node in (first, later):
        assert node.wait(timeout=120) == 0, node.log[-3000:]

    assert "SCHEDULER_FLUSH_ON_START: flushed the crawl at" in first.log
    assert "SCHEDULER_FLUSH_ON_START: not flushed" in later.log and "flushed the crawl at" not in later.log
    assert [first.finish_reason, later.finish_reason] == ["closespider_pagecount"] * 2
    assert int(redis_db.hget(KEYS.budget, "pages")) == 120 == responses(replica), "one budget: nothing was wiped"
    assert redis_db.hexists(KEYS.items, "https://baike.baidu.com/item/old/1"), "items are kept"
