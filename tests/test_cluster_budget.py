"""Cluster-wide page budget, resume and end of crawl, with real nodes on one Redis."""

from __future__ import annotations

import json
import time

import pytest

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
def test_three_nodes_download_exactly_the_budget(redis_db, redis_server, big_replica, node_factory, budget: int) -> None:
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
    assert set(k.decode() for k in redis_db.hkeys(KEYS.items)) == set(answer)
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
