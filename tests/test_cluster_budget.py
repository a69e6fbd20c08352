"""Cluster-wide page budget, resume and end of crawl, with real nodes on one Redis."""

from __future__ import annotations

import json
import re
import time

import pytest

import baike.settings as project_settings
from baike.keys import CrawlKeys

pytestmark = pytest.mark.e2e
KEYS = CrawlKeys.for_spider("baike")


@pytest.fixture()
def big_replica(replica_factory):
    return replica_factory(5000, 3)


def run_nodes(node_factory, redis_server, replica, count: int, *settings: str, timeout: float = 240):
    nodes = [node_factory(redis_server.url, replica.url, *settings) for _ in range(count)]
    for node in nodes:
        assert node.wait(timeout=timeout) == 0, node.log[-3000:]
    return nodes


def responses(replica) -> int:
    """Answers the replica sent that a crawler receives as pages (redirects are followed, not received)."""
    return sum(count for status, count in replica.stats()["by_status"].items() if not status.startswith("3"))


def assert_stopped_together(nodes, reason: str) -> None:
    assert [node.finish_reason for node in nodes] == [reason] * len(nodes)
    finish_times = [node.finish_time for node in nodes]
    assert max(finish_times) - min(finish_times) < 1.0, finish_times


@pytest.mark.parametrize("budget", [2000, 25])
def test_three_nodes_download_exactly_the_budget(
    redis_db, redis_server, big_replica, node_factory, budget: int
) -> None:
    redis_db.lpush(KEYS.start_urls, big_replica.start_url())
    nodes = run_nodes(node_factory, redis_server, big_replica, 3, f"CLOSESPIDER_PAGECOUNT={budget}")

    assert_stopped_together(nodes, "closespider_pagecount")
    assert responses(big_replica) == budget
    assert max(big_replica.stats()["page_paths"].values()) == 1
    assert sum(node.stat("response_received_count") for node in nodes) == budget
    assert int(redis_db.hget(KEYS.budget, "pages")) == budget
    assert redis_db.zcard(KEYS.leases) == 0, "every lease was settled or handed back"
    assert redis_db.hlen(KEYS.items) == big_replica.stats()["pages"], "one record per entry page"
    assert redis_db.zcard(KEYS.requests) > 0, "the frontier persists for a resume"


def test_resume_with_a_larger_budget_downloads_only_the_difference(
    redis_db, redis_server, big_replica, node_factory
) -> None:
    redis_db.lpush(KEYS.start_urls, big_replica.start_url())
    run_nodes(node_factory, redis_server, big_replica, 2, "CLOSESPIDER_PAGECOUNT=300")
    first = big_replica.stats()["page_paths"]
    assert responses(big_replica) == 300

    big_replica.reset()
    nodes = run_nodes(node_factory, redis_server, big_replica, 2, "CLOSESPIDER_PAGECOUNT=400")
    assert_stopped_together(nodes, "closespider_pagecount")
    second = big_replica.stats()["page_paths"]
    assert responses(big_replica) == 100
    assert not set(first) & set(second), "no page of the first run is downloaded again"
    assert redis_db.hlen(KEYS.items) == len(set(first) | set(second))


def test_a_node_started_after_the_budget_is_spent_exits_at_once(
    redis_db, redis_server, big_replica, node_factory
) -> None:
    redis_db.lpush(KEYS.start_urls, big_replica.start_url())
    run_nodes(node_factory, redis_server, big_replica, 1, "CLOSESPIDER_PAGECOUNT=20")
    big_replica.reset()

    started = time.monotonic()
    (late,) = run_nodes(node_factory, redis_server, big_replica, 1, "CLOSESPIDER_PAGECOUNT=20", timeout=60)
    assert late.finish_reason == "closespider_pagecount"
    assert late.stat("response_received_count") == 0
    assert big_replica.stats()["total"] == 0
    assert time.monotonic() - started < 30


def test_three_nodes_finish_a_small_site_and_store_each_entry_once(
    redis_db, redis_server, replica_factory, node_factory
) -> None:
    replica = replica_factory(300, 11)
    answer = replica.answer_key(replica.start_url())
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    nodes = run_nodes(node_factory, redis_server, replica, 3, "CLOSESPIDER_PAGECOUNT=0")

    assert_stopped_together(nodes, "finished")
    assert {k.decode() for k in redis_db.hkeys(KEYS.items)} == set(answer)
    assert max(replica.stats()["page_paths"].values()) == 1
    assert json.loads(redis_db.hget(KEYS.items, next(iter(answer))))["title"]


def test_nodes_wait_for_the_first_seed(redis_db, redis_server, replica_factory, node_factory) -> None:
    replica = replica_factory(300, 11)
    nodes = [node_factory(redis_server.url, replica.url, "CLOSESPIDER_PAGECOUNT=50") for _ in range(2)]
    time.sleep(4)
    assert all(node.process.poll() is None for node in nodes), "nodes wait for seeds instead of finishing"
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    for node in nodes:
        assert node.wait(timeout=120) == 0
    assert_stopped_together(nodes, "closespider_pagecount")
    assert responses(replica) == 50


# A mirror nothing is downloaded from (the nodes below never lease a request)
NO_MIRROR = "http://127.0.0.1:9"


def test_max_idle_time_before_close_bounds_the_wait_for_seeds(redis_db, redis_server, node_factory) -> None:
    """scrapy-redis's MAX_IDLE_TIME_BEFORE_CLOSE: a node that waited that long with no seed closes,
    saying why (0, the default, waits forever: test_nodes_wait_for_the_first_seed)."""
    started = time.monotonic()
    node = node_factory(redis_server.url, NO_MIRROR, "MAX_IDLE_TIME_BEFORE_CLOSE=2")

    assert node.wait(timeout=60) == 0, node.log[-3000:]
    assert node.finish_reason == "max_idle_time_before_close"
    assert re.search(
        r"Waited 2\.\d s with nothing to crawl \(no seeds, nothing queued or leased on any node\): "
        r"closing this node \(MAX_IDLE_TIME_BEFORE_CLOSE=2\)",
        node.log,
    ), node.log[-3000:]
    assert time.monotonic() - started < 30


def test_max_idle_time_before_close_waits_while_another_node_holds_work(redis_db, redis_server, node_factory) -> None:
    """The crawl is not idle while another node holds a lease: the requests its page adds may
    come to this node. Only once the whole crawl has nothing does the node's wait count."""
    redis_db.set(KEYS.started, 1)
    redis_db.zadd(KEYS.leases, {"1": time.time() + 3600})
    node = node_factory(redis_server.url, NO_MIRROR, "MAX_IDLE_TIME_BEFORE_CLOSE=1", "CLOSESPIDER_FINISHED_GRACE=30")
    time.sleep(6.5)  # past Scrapy's 5-second idle check
    assert node.process.poll() is None, f"closed while the crawl had work: {node.finish_reason}"

    redis_db.delete(KEYS.leases)  # the other node's page is settled and added nothing
    assert node.wait(timeout=30) == 0, node.log[-3000:]
    assert node.finish_reason == "max_idle_time_before_close"


# A single node on Scrapy's own scheduler: a user debugging the spider, without the shared frontier.
STOCK_SCHEDULER = "SCHEDULER=scrapy.core.scheduler.Scheduler"


def run_lone_node(node_factory, redis_db, redis_server, replica, *settings: str):
    """Run one node, failing at once when it leaves its seed in Redis (instead of idling until the timeout)."""
    node = node_factory(redis_server.url, replica.url, *settings)
    deadline = time.monotonic() + 30
    while redis_db.llen(KEYS.start_urls) and node.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not redis_db.llen(KEYS.start_urls), (
        f"the node did not read its seed from {KEYS.start_urls} (finish reason: {node.finish_reason})"
    )
    assert node.wait(timeout=120) == 0, node.log[-3000:]
    return node


@pytest.mark.parametrize(
    "dupefilter",
    [
        # what docs/settings.md advises for such a run: fingerprints in the node's memory
        "scrapy.dupefilters.RFPDupeFilter",
        # the project's DUPEFILTER_CLASS, which Scrapy's scheduler uses too
        "baike.frontier.dupefilter.BucketDupeFilter",
    ],
)
def test_without_the_leased_scheduler_the_budget_is_per_node(
    redis_db, redis_server, replica_factory, node_factory, dupefilter: str
) -> None:
    replica = replica_factory(2000, 5)
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    # the ledger of a cluster crawl that spent 50 pages here: no business of this node's budget
    redis_db.hset(KEYS.budget, "pages", 50)

    node = run_lone_node(
        node_factory,
        redis_db,
        redis_server,
        replica,
        STOCK_SCHEDULER,
        f"DUPEFILTER_CLASS={dupefilter}",
        "CLOSESPIDER_PAGECOUNT=50",
    )

    assert node.finish_reason == "closespider_pagecount"
    # Scrapy's CloseSpider: closes at the 50th page; requests already in flight still arrive,
    # and until the engine has stopped its downloader another slot's worth may start (a
    # redirect's follow-up among them): Scrapy's bound, not the cluster's exact one
    overshoot = 2 * project_settings.CONCURRENT_REQUESTS
    assert 50 <= node.stat("response_received_count") <= 50 + overshoot
    assert responses(replica) <= 50 + overshoot
    assert "Page budget: 50 pages for this node alone" in node.log
    assert redis_db.hget(KEYS.state, "reason") is None, "one node's own budget does not end the cluster's crawl"


def test_without_the_leased_scheduler_a_node_finishes_its_own_work(
    redis_db, redis_server, replica_factory, node_factory
) -> None:
    replica = replica_factory(300, 11)
    answer = replica.answer_key(replica.start_url())
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    # another crawl's frontier and leases in the same Redis: not this node's work
    redis_db.zadd(KEYS.requests, {"1": 0})
    redis_db.zadd(KEYS.leases, {"2": time.time() + 3600})

    node = run_lone_node(
        node_factory,
        redis_db,
        redis_server,
        replica,
        STOCK_SCHEDULER,
        "DUPEFILTER_CLASS=scrapy.dupefilters.RFPDupeFilter",
        "CLOSESPIDER_PAGECOUNT=0",
    )

    assert node.finish_reason == "finished"
    assert {k.decode() for k in redis_db.hkeys(KEYS.items)} == set(answer)


@pytest.mark.parametrize(("form", "push"), [("SET", "sadd"), ("ZSET", "zadd")])
def test_seeds_in_a_set_or_sorted_set_stop_at_the_budget(
    redis_db, redis_server, replica_factory, node_factory, form: str, push: str
) -> None:
    """scrapy-redis's other seed forms: the nodes read them, and stop at the budget."""
    replica = replica_factory(500, 3)
    if push == "sadd":
        redis_db.sadd(KEYS.start_urls, replica.start_url())
    else:
        redis_db.zadd(KEYS.start_urls, {replica.start_url(): 1})
    nodes = [
        node_factory(redis_server.url, replica.url, "CLOSESPIDER_PAGECOUNT=50", f"REDIS_START_URLS_AS_{form}=True")
        for _ in range(2)
    ]
    for node in nodes:
        assert node.wait(timeout=120) == 0, node.log[-3000:]
        assert node.finish_reason == "closespider_pagecount"
        assert "Traceback" not in node.log
    assert int(redis_db.hget(KEYS.budget, "pages")) == 50
