"""The leased scheduler's buffering, on a real redis-server (no crawl, no engine)."""

from __future__ import annotations

import logging

import pytest
from scrapy import Request

from baike.frontier.scheduler import LeasedScheduler
from baike.keys import CrawlKeys
from tests.frontier_helpers import make_crawler

KEYS = CrawlKeys.for_spider("baike")


def entry(n: int) -> str:
    return f"https://baike.baidu.com/item/entry{n}/{n}"


@pytest.fixture()
def scheduler(redis_db, redis_server):
    crawler = make_crawler(redis_server.url)
    scheduler = LeasedScheduler.from_crawler(crawler)
    scheduler.open(crawler.spider)
    yield scheduler
    scheduler.close("finished")


def ledger(client) -> dict[str, int]:
    return {key.decode(): int(value) for key, value in client.hgetall(KEYS.budget).items()}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SCHEDULER_FLUSH_SIZE", 0),
        ("SCHEDULER_FLUSH_SIZE", 70_000),
        ("SCHEDULER_FLUSH_INTERVAL", 0),
        ("SCHEDULER_FLUSH_SHARD_SIZE", 0),
    ],
)
def test_flush_settings_out_of_range_are_refused(redis_db, redis_server, name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        LeasedScheduler.from_crawler(make_crawler(redis_server.url, **{name: value}))


def test_new_requests_wait_for_a_take_or_the_flush_interval(scheduler, redis_db) -> None:
    spider = scheduler.spider
    for n in (1, 2, 3):
        assert scheduler.enqueue_request(Request(entry(n), callback=spider.parse))
    assert scheduler.has_pending_requests() and not redis_db.exists(KEYS.requests)
    first = scheduler.next_request()  # nothing leased yet: flush, then take
    assert first.url == entry(1)
    assert ledger(redis_db)["enqueued"] == 3
    assert scheduler.enqueue_request(Request(entry(4), callback=spider.parse))
    assert scheduler.next_request().url == entry(2)  # served from the leased buffer
    assert ledger(redis_db)["enqueued"] == 3, "no flush while the buffer has work"
    scheduler.close("shutdown")
    assert ledger(redis_db)["enqueued"] == 4, "closing flushes"
    assert redis_db.zcard(KEYS.leases) == 0, "closing hands every lease back"


def test_a_shard_with_a_full_batch_flushes_at_once(redis_db, redis_server) -> None:
    crawler = make_crawler(redis_server.url, SCHEDULER_FLUSH_SHARD_SIZE=3)
    scheduler = LeasedScheduler.from_crawler(crawler)
    scheduler.open(crawler.spider)
    try:
        for n in (1, 2):
            assert scheduler.enqueue_request(Request(entry(n), callback=crawler.spider.parse))
        assert not redis_db.exists(KEYS.budget), "a batch short of SCHEDULER_FLUSH_SHARD_SIZE waits"
        assert scheduler.enqueue_request(Request(entry(3), callback=crawler.spider.parse))
        assert ledger(redis_db)["enqueued"] == 3, "the third request fills the batch: one call"
        assert not scheduler.has_pending_requests()
    finally:
        scheduler.close("finished")


def test_a_node_still_downloading_takes_without_flushing_first(scheduler, redis_db) -> None:
    spider = scheduler.spider
    for n in (1, 2):
        scheduler.enqueue_request(Request(entry(n), callback=spider.parse))
    scheduler._flush()
    while scheduler.next_request() is not None:
        pass  # both leased: the node downloads them
    scheduler.enqueue_request(Request(entry(3), callback=spider.parse))
    assert scheduler.next_request() is None
    assert ledger(redis_db)["enqueued"] == 2, "its new request waits for a full batch or the interval"
    scheduler._flush()
    assert ledger(redis_db)["enqueued"] == 3


def test_a_flush_settles_acks_with_the_children_of_the_page(scheduler, redis_db) -> None:
    spider = scheduler.spider
    scheduler.enqueue_request(Request(entry(1), callback=spider.parse))
    parent = scheduler.next_request()
    child = Request(entry(2), callback=spider.parse, meta=dict(parent.meta))
    scheduler.enqueue_request(child)
    assert redis_db.zcard(KEYS.leases) == 1, "the parent stays leased until its children are sent"
    scheduler._flush()
    assert redis_db.zcard(KEYS.leases) == 0
    assert ledger(redis_db)["enqueued"] == 2 and ledger(redis_db)["settled"] == 1


SUBVIEW = "https://baike.baidu.com/subview/7001/8001.htm"


def test_a_seen_only_request_is_marked_in_the_next_flush_never_queued(scheduler, redis_db) -> None:
    from baike.frontier.scheduler import SEEN_ONLY_META_KEY

    spider = scheduler.spider
    assert not scheduler.enqueue_request(Request(SUBVIEW, meta={SEEN_ONLY_META_KEY: True}, callback=spider.parse))
    assert scheduler.next_request() is None
    assert ledger(redis_db).get("enqueued", 0) == 0 and redis_db.zcard(KEYS.requests) == 0
    assert not scheduler.enqueue_request(Request(SUBVIEW, meta={SEEN_ONLY_META_KEY: True}, callback=spider.parse))
    assert scheduler.stats.get_value("baike/frontier/aliases_marked") == 1, "once flushed, it is known locally"
    # the mark is shared: another node's request for that form is filtered in Redis
    other = LeasedScheduler.from_crawler(make_crawler(scheduler.crawler.settings["REDIS_URL"]))
    other.open(scheduler.crawler.spider)
    try:
        assert other.enqueue_request(Request(SUBVIEW, callback=spider.parse))
        assert other.next_request() is None
        assert other.stats.get_value("baike/frontier/duplicates") == 1
    finally:
        other.close("finished")


def test_a_queued_form_of_a_stored_entry_is_dropped_undownloaded(scheduler, redis_db) -> None:
    spider = scheduler.spider
    for url in (entry(1), SUBVIEW, entry(2)):
        scheduler.enqueue_request(Request(url, callback=spider.parse))
    scheduler._flush()
    # the sense was stored under its /item/ URL meanwhile (RedisStorePipeline writes this)
    redis_db.hset(KEYS.aliases, SUBVIEW, "https://baike.baidu.com/item/x/2001")
    urls = []
    while (request := scheduler.next_request()) is not None:
        urls.append(request.url)
    assert urls == [entry(1), entry(2)]
    assert scheduler.stats.get_value("baike/frontier/aliases_dropped") == 1
    scheduler._flush()
    # its lease is settled and its budget unit handed back: nothing is lost, nothing spent
    assert ledger(redis_db)["settled"] == 1 and ledger(redis_db)["reserved"] == 2
    assert redis_db.zcard(KEYS.leases) == 2


def filtered_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.getMessage().startswith("Filtered duplicate")]


@pytest.mark.parametrize("debug", [True, False])
def test_dupefilter_debug_logs_every_filtered_request(redis_db, redis_server, caplog, debug: bool) -> None:
    """DUPEFILTER_DEBUG: every duplicate is logged, whether Redis filtered it in a flush or this
    node knew it already; off, only the first one is, with Scrapy's hint."""
    crawler = make_crawler(redis_server.url, DUPEFILTER_DEBUG=debug)
    scheduler = LeasedScheduler.from_crawler(crawler)
    scheduler.open(crawler.spider)
    caplog.set_level(logging.DEBUG, logger="baike.frontier.dupefilter")
    for n in (1, 2, 1, 2):  # one flush: Redis keeps the first of each and filters the second
        scheduler.enqueue_request(Request(entry(n), callback=crawler.spider.parse))
    scheduler._flush()
    for n in (1, 3):  # entry 1 is known to this node now: dropped without a round trip
        scheduler.enqueue_request(Request(entry(n), callback=crawler.spider.parse))
    scheduler._flush()
    scheduler.close("finished")

    assert crawler.stats.get_value("baike/frontier/duplicates") == 3
    if debug:
        assert filtered_lines(caplog) == [f"Filtered duplicate request: <GET {entry(n)}>" for n in (1, 2, 1)]
    else:
        assert filtered_lines(caplog) == [
            f"Filtered duplicate request <GET {entry(1)}> - no more duplicates will be shown"
            " (see DUPEFILTER_DEBUG to show all duplicates)"
        ]


def test_an_ack_whose_stored_record_redis_lacks_puts_the_page_back(scheduler, redis_db) -> None:
    """After a failover the new master may lack a record the old one stored: the page's
    acknowledgement, sent to the new master afterwards, must not settle it (the entry
    would never be stored), but hand it back to the frontier to be done again."""
    spider = scheduler.spider
    scheduler.enqueue_request(Request(entry(1), callback=spider.parse))
    page = scheduler.next_request()
    lease = scheduler.lease_of(page)
    scheduler.response_received(None, page, spider)
    # its record was stored on the old master, which a failover then lost: not in this Redis
    assert scheduler.settle(lease, records=(entry(1),))
    scheduler._flush()
    assert redis_db.zcard(KEYS.leases) == 0 and redis_db.zcard(KEYS.requests) == 1, "the page is queued again"
    assert ledger(redis_db).get("settled", 0) == 0 and ledger(redis_db).get("pages", 0) == 0
    assert scheduler.stats.get_value("baike/leases/unstored") == 1
    # done again, its record stored this time: settled as usual
    again = scheduler.next_request()
    assert again.url == entry(1)
    scheduler.response_received(None, again, spider)
    redis_db.hset(KEYS.items, entry(1), "{}")
    assert scheduler.settle(scheduler.lease_of(again), records=(entry(1),))
    scheduler._flush()
    assert redis_db.zcard(KEYS.leases) == 0 and redis_db.zcard(KEYS.requests) == 0
    assert ledger(redis_db)["settled"] == 1 and ledger(redis_db)["pages"] == 1


def snapshot(client) -> dict[bytes, bytes]:
    """Every key of ``client``'s database, dumped: a replica's state at this moment."""
    return {key: client.dump(key) for key in client.keys("*")}


def fail_over_to(client, held: dict[bytes, bytes]) -> None:
    """``client``'s database becomes ``held``: a new master that lacks every write since."""
    client.flushdb()
    for key, value in held.items():
        client.restore(key, 0, value)


def test_a_page_whose_links_a_failover_lost_is_done_again(scheduler, redis_db) -> None:
    """A page's links went in a flush the old master confirmed and a failover lost; the page
    has no record (a list, or its item dropped), and its acknowledgement reaches the new
    master in a later flush: it must not be settled, or its links are never crawled."""
    spider = scheduler.spider
    scheduler.enqueue_request(Request(entry(1), callback=spider.parse))
    page = scheduler.next_request()
    lease = scheduler.lease_of(page)
    scheduler.response_received(None, page, spider)
    replica = snapshot(redis_db)
    scheduler.enqueue_request(Request(entry(2), callback=spider.parse))
    scheduler._flush()
    assert redis_db.zcard(KEYS.requests) == 1, "the link is in the old master"
    fail_over_to(redis_db, replica)
    assert scheduler.settle(lease)
    scheduler._flush()
    assert ledger(redis_db).get("settled", 0) == 0, "not settled without its links"
    again = scheduler.next_request()
    assert again is not None and again.url == entry(1), "the page is done again"
    scheduler.response_received(None, again, spider)
    scheduler.enqueue_request(Request(entry(2), callback=spider.parse))
    assert scheduler.settle(scheduler.lease_of(again))
    scheduler._flush()
    assert ledger(redis_db)["settled"] == 1
    assert redis_db.zcard(KEYS.requests) == 1 and ledger(redis_db)["enqueued"] == 2, "its link is queued"


def test_behind_a_lost_flush_the_pages_in_flight_go_back_unsettled(scheduler, redis_db) -> None:
    """Found behind, the node cannot tell which pages in flight sent links in the lost flush:
    it hands them all back, and their acknowledgements are never sent."""
    spider = scheduler.spider
    for n in (1, 3):
        scheduler.enqueue_request(Request(entry(n), callback=spider.parse))
    first, second = scheduler.next_request(), scheduler.next_request()
    replica = snapshot(redis_db)
    scheduler.enqueue_request(Request(entry(2), callback=spider.parse))
    scheduler._flush()
    fail_over_to(redis_db, replica)
    assert scheduler.settle(scheduler.lease_of(first))
    in_flight = scheduler.lease_of(second)
    scheduler._flush()
    assert redis_db.zcard(KEYS.leases) == 0 and redis_db.zcard(KEYS.requests) == 2, "both pages are queued again"
    assert not scheduler.settle(in_flight), "the page in flight is no longer this node's"
    assert scheduler.stats.get_value("baike/leases/redone") == 1
    scheduler._flush()
    assert ledger(redis_db).get("settled", 0) == 0
