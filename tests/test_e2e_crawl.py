"""End to end: real `scrapy crawl baike` nodes crawl the replica together through one Redis."""

from __future__ import annotations

import json

import pytest

from baike.keys import CrawlKeys

pytestmark = pytest.mark.e2e
KEYS = CrawlKeys.for_spider("baike")


def stored_records(client) -> dict[str, dict]:
    return {key.decode(): json.loads(value) for key, value in client.hgetall(KEYS.items).items()}


def test_two_nodes_crawl_the_whole_replica_once(redis_db, redis_server, replica_factory, node_factory) -> None:
    replica = replica_factory(300, 7)
    start = replica.start_url()
    answer = replica.answer_key(start)
    assert len(answer) > 100, "the replica's default start should reach most of a 300-entry site"
    redis_db.lpush(KEYS.start_urls, start)

    nodes = [node_factory(redis_server.url, replica.url, "CLOSESPIDER_PAGECOUNT=0") for _ in range(2)]
    for node in nodes:
        assert node.wait(timeout=180) == 0, node.log[-3000:]

    assert [node.finish_reason for node in nodes] == ["finished", "finished"]
    assert all(node.stat("response_received_count") > 0 for node in nodes), "both nodes must crawl"
    stats = replica.stats()
    assert stats["page_paths"] and max(stats["page_paths"].values()) == 1, "no entry page is downloaded twice"
    records = stored_records(redis_db)
    assert set(records) == set(answer)
    for url, record in records.items():
        expected = answer[url]
        assert record["url"] == url
        for field in ("title", "subtitle", "summary", "infobox", "lemma_id"):
            if expected.get(field) is not None:
                assert record[field] == expected[field], (url, field)
        assert record["crawled_at"].endswith("+00:00")
    assert sum(node.stat("item_scraped_count") for node in nodes) == len(records)
    # the shared state outlives the nodes: nothing is wiped when they close
    assert redis_db.exists(KEYS.request_seq)
    assert list(redis_db.scan_iter(match=f"{KEYS.dupefilter}:*", count=1000))
    assert redis_db.zcard(KEYS.leases) == 0
    assert redis_db.llen(KEYS.dead) == 0


def test_scrapy_feed_exports_keep_working(redis_db, redis_server, small_replica, node_factory, tmp_path) -> None:
    feed = tmp_path / "items.jsonl"
    redis_db.lpush(KEYS.start_urls, small_replica.start_url())
    node = node_factory(
        redis_server.url,
        small_replica.url,
        "CLOSESPIDER_PAGECOUNT=15",
        f'FEEDS={{"{feed}": {{"format": "jsonlines"}}}}',
    )
    assert node.wait(timeout=120) == 0, node.log[-3000:]
    exported = [json.loads(line) for line in feed.read_text(encoding="utf-8").splitlines()]
    assert exported and {record["url"] for record in exported} == {key.decode() for key in redis_db.hkeys(KEYS.items)}


def test_bloom_dupefilter_works_with_the_leased_scheduler(
    redis_db, redis_server, replica_factory, node_factory
) -> None:
    replica = replica_factory(300, 21)
    answer = replica.answer_key(replica.start_url())
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    settings = (
        "CLOSESPIDER_PAGECOUNT=0",
        "DUPEFILTER_CLASS=baike.frontier.bloom.BloomDupeFilter",
        "BLOOM_CAPACITY=100000",
    )
    nodes = [node_factory(redis_server.url, replica.url, *settings) for _ in range(2)]
    for node in nodes:
        assert node.wait(timeout=180) == 0, node.log[-3000:]
        assert node.finish_reason == "finished"
    assert max(replica.stats()["page_paths"].values()) == 1
    # a Bloom filter may take a new URL for a seen one (0.1% at capacity): nearly all are stored
    stored = {key.decode() for key in redis_db.hkeys(KEYS.items)}
    assert stored <= set(answer) and len(stored) >= len(answer) - 2


RECORD_FIELDS = ("title", "subtitle", "summary", "infobox", "lemma_id", "old_lemma_id", "sub_lemma_id")


def test_real_baike_cases_are_stored_exactly_and_each_sense_downloaded_once(
    redis_db, redis_server, replica_factory, node_factory
) -> None:
    """Disambiguation lists, star pages, empty summaries, GBK pages, /subview/ links and help
    pages all appear on this site; 2 nodes store exactly the answer key (issue 14)."""
    replica = replica_factory(300, 7)
    start = replica.start_url()
    answer = replica.answer_key(start)
    redis_db.lpush(KEYS.start_urls, start)

    nodes = [node_factory(redis_server.url, replica.url, "CLOSESPIDER_PAGECOUNT=0") for _ in range(2)]
    for node in nodes:
        assert node.wait(timeout=180) == 0, node.log[-3000:]
    assert [node.finish_reason for node in nodes] == ["finished", "finished"]

    records = stored_records(redis_db)
    assert set(records) == set(answer), "no list page, help page or missing sense among the records"
    for url, record in records.items():
        assert {name: record[name] for name in RECORD_FIELDS} == {name: answer[url][name] for name in RECORD_FIELDS}, (
            url
        )

    def total(stat: str) -> int:
        return sum(node.stat(stat) for node in nodes)

    stats = replica.stats()
    assert max(stats["page_paths"].values()) == 1, "no sense is downloaded twice"
    assert stats["by_kind"].get("help", 0) == 0, "no help or special page is downloaded"
    assert 0 < total("baike/pages/list") == stats["by_kind"]["list"], "every list page is parsed as one"
    # a name with no default sense shows its list at /item/<name> and at ?force=1: fetched
    # bare first, the ?force=1 form is marked seen; the other way round it is fetched twice
    assert max(stats["list_pages"].values()) <= 2
    assert total("baike/pages/summary_from_lead") > 0
    assert total("baike/frontier/aliases_marked") > 0
    # the /subview/ forms marked or dropped are downloads saved; those downloaded were
    # taken before their sense was stored, and their redirect was filtered as seen
    assert stats["subviews"] + total("baike/frontier/aliases_dropped") > 0
