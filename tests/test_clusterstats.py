"""Cluster stats: per-node records and shared counters in Redis, and the node's log line."""

from __future__ import annotations

import json
import logging
import re
import time
from types import SimpleNamespace

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from scrapy.exceptions import NotConfigured

from baike.extensions import clusterstats as clusterstats_module
from baike.extensions.clusterstats import CLUSTER_STAT, ClusterStats, node_field
from baike.extensions.logstats import ClusterLogStats
from baike.frontier.scheduler import LeasedScheduler
from baike.keys import CrawlKeys
from tests.conftest import free_port
from tests.frontier_helpers import make_crawler

KEYS = CrawlKeys.for_spider("baike")


class StoppedLoop:
    """Stands in for the looping call: the tests drive every write themselves."""

    running = False

    def start(self, interval: float, now: bool = True) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False


def make_extension(redis_url: str, node: str | None = None, **settings) -> ClusterStats:
    crawler = make_crawler(redis_url, **settings)
    scheduler = None
    if node is not None:
        scheduler = LeasedScheduler.__new__(LeasedScheduler)
        scheduler.node_id = node
    crawler.engine = SimpleNamespace(scheduler=scheduler)
    extension = ClusterStats.from_crawler(crawler)
    extension._loop = StoppedLoop()
    return extension


def crawled(extension: ClusterStats, pages: int = 0, items: int = 0, errors: int = 0) -> None:
    stats = extension.crawler.stats
    stats.inc_value("response_received_count", pages)
    stats.inc_value("item_scraped_count", items)
    stats.inc_value("log_count/ERROR", errors)


def node_record(client: redis.Redis, node: str) -> dict:
    return json.loads(client.hget(KEYS.nodes, node))


def stats_hash(client: redis.Redis) -> dict[str, str]:
    return {key.decode(): value.decode() for key, value in client.hgetall(KEYS.stats).items()}


def test_disabled_extension_is_not_configured(redis_server) -> None:
    crawler = make_crawler(redis_server.url, CLUSTERSTATS_ENABLED=False)
    with pytest.raises(NotConfigured):
        ClusterStats.from_crawler(crawler)


def test_node_id_is_the_schedulers_or_host_and_pid(redis_db, redis_server) -> None:
    leased = make_extension(redis_server.url, node="host-a:11:beef")
    leased.spider_opened()
    assert leased.node_id == "host-a:11:beef"
    other = make_extension(redis_server.url)
    other.spider_opened()
    assert re.fullmatch(r"[^:]+:\d+", other.node_id)
    assert set(redis_db.hkeys(KEYS.nodes)) == {b"host-a:11:beef", other.node_id.encode()}


def test_nodes_add_deltas_and_never_overwrite_each_other(redis_db, redis_server) -> None:
    a = make_extension(redis_server.url, node="a:1:0001")
    b = make_extension(redis_server.url, node="b:2:0002")
    a.spider_opened()
    b.spider_opened()
    crawled(a, pages=10, items=8, errors=1)
    a._write()
    crawled(b, pages=5, items=5)
    b._write()
    crawled(a, pages=3, items=2)
    a._write()
    a._write()  # nothing new: adds nothing

    stats = stats_hash(redis_db)
    assert (stats["pages"], stats["items"], stats["errors"]) == ("18", "15", "1")
    assert stats[node_field("a:1:0001", "pages")] == "13"
    assert stats[node_field("b:2:0002", "pages")] == "5"
    assert node_record(redis_db, "a:1:0001")["pages"] == 13
    assert node_record(redis_db, "b:2:0002")["items"] == 5
    # the cluster totals come back with every write, for the log line
    assert a.crawler.stats.get_value(CLUSTER_STAT % "pages") == 18


def test_start_time_is_the_first_nodes_and_each_node_keeps_its_own(redis_db, redis_server) -> None:
    a = make_extension(redis_server.url, node="a:1:0001")
    b = make_extension(redis_server.url, node="b:2:0002")
    a.spider_opened()
    b.spider_opened()
    stats = stats_hash(redis_db)
    assert float(stats["start_time"]) == pytest.approx(a.started)
    assert float(stats[node_field("a:1:0001", "start_time")]) == pytest.approx(a.started)
    assert float(stats[node_field("b:2:0002", "start_time")]) == pytest.approx(b.started)
    a.spider_opened()  # a restart of the write loop does not move the cluster's start
    assert stats_hash(redis_db)["start_time"] == stats["start_time"]


def test_close_records_end_time_and_reason(redis_db, redis_server) -> None:
    ext = make_extension(redis_server.url, node="a:1:0001")
    ext.spider_opened()
    crawled(ext, pages=4, items=4)
    ext.spider_closed(reason="closespider_pagecount")
    record = node_record(redis_db, "a:1:0001")
    assert record["reason"] == "closespider_pagecount"
    assert record["finished"] >= record["started"]
    assert set(record) >= {
        "node",
        "host",
        "pid",
        "started",
        "seen",
        "pages",
        "items",
        "errors",
        "pages_per_min",
        "finished",
        "reason",
    }
    stats = stats_hash(redis_db)
    assert float(stats[node_field("a:1:0001", "finish_time")]) == record["finished"]
    assert stats["pages"] == "4"


def test_pages_per_minute_is_over_the_last_minute(redis_server, monkeypatch) -> None:
    ext = make_extension(redis_server.url, node="a:1:0001")
    assert ext.pages_per_min(1000.0, 0) == 0.0
    assert ext.pages_per_min(1010.0, 100) == 600.0
    assert ext.pages_per_min(1070.0, 160) == pytest.approx(60.0 * 60 / 60)
    # a stall: the rate falls to what the last minute really saw
    assert ext.pages_per_min(1200.0, 160) == pytest.approx(0.0)


def test_timeline_is_capped(redis_db, redis_server) -> None:
    ext = make_extension(redis_server.url, node="a:1:0001", CLUSTERSTATS_TIMELINE_LENGTH=5)
    ext.spider_opened()
    for _ in range(12):
        crawled(ext, pages=1)
        ext._write()
    ext._write()  # no new page: no new sample
    samples = [json.loads(raw) for raw in redis_db.lrange(KEYS.timeline, 0, -1)]
    assert len(samples) == 5
    assert [sample["pages"] for sample in samples] == [8, 9, 10, 11, 12]
    assert {sample["node"] for sample in samples} == {"a:1:0001"}


def test_a_redis_outage_is_logged_once_and_the_counts_catch_up(redis_db, redis_server, caplog) -> None:
    ext = make_extension(redis_server.url, node="a:1:0001")
    ext.spider_opened()
    working = ext.server
    ext.server = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    crawled(ext, pages=7, items=6)
    with caplog.at_level(logging.WARNING, logger=clusterstats_module.__name__):
        ext._write()
        ext._retry_at = 0.0  # past the back-off
        ext._write()
    assert len([r for r in caplog.records if "not written" in r.getMessage()]) == 1
    ext.server = working
    crawled(ext, pages=1)
    ext._write()
    assert "pages" not in stats_hash(redis_db) or stats_hash(redis_db)["pages"] == "0", "backing off"
    ext._retry_at = 0.0
    ext._write()
    assert stats_hash(redis_db)["pages"] == "8", "the deltas of the failed writes are not lost"
    ext.spider_closed(reason="finished")
    assert stats_hash(redis_db)["pages"] == "8", "nor counted twice"


def test_a_foreign_key_of_the_wrong_type_does_not_crash_the_node(redis_db, redis_server, caplog) -> None:
    redis_db.rpush(KEYS.stats, "not a hash")
    ext = make_extension(redis_server.url, node="a:1:0001")
    with caplog.at_level(logging.WARNING, logger=clusterstats_module.__name__):
        ext.spider_opened()
        ext.spider_closed(reason="finished")
    assert any("not written" in record.getMessage() for record in caplog.records)


def test_log_line_reports_the_node_and_the_cluster(redis_server, caplog) -> None:
    crawler = make_crawler(redis_server.url, LOGSTATS_INTERVAL=60.0)
    logstats = ClusterLogStats.from_crawler(crawler)
    stats = crawler.stats
    stats.set_value("response_received_count", 30)
    stats.set_value("item_scraped_count", 20)
    stats.set_value(CLUSTER_STAT % "pages", 100)
    with caplog.at_level(logging.INFO, logger="baike.extensions.logstats"):
        logstats.log(crawler.spider)
        stats.set_value("response_received_count", 40)
        stats.set_value(CLUSTER_STAT % "pages", 150)
        logstats.log(crawler.spider)
    first, second = (record.getMessage() for record in caplog.records)
    assert first == (
        "Crawled 30 pages (at 30 pages/min), scraped 20 items (at 20 items/min); cluster: 100 pages (at 0 pages/min)"
    )
    assert second == (
        "Crawled 40 pages (at 10 pages/min), scraped 20 items (at 0 items/min); cluster: 150 pages (at 50 pages/min)"
    )


def test_log_line_without_cluster_stats_is_scrapys(redis_server, caplog) -> None:
    crawler = make_crawler(redis_server.url)
    logstats = ClusterLogStats.from_crawler(crawler)
    with caplog.at_level(logging.INFO, logger="baike.extensions.logstats"):
        logstats.log(crawler.spider)
    assert caplog.records[0].getMessage() == "Crawled 0 pages (at 0 pages/min), scraped 0 items (at 0 items/min)"


@pytest.mark.e2e
def test_two_nodes_publish_their_records_counters_and_log_lines(
    redis_db, redis_server, replica_factory, node_factory
) -> None:
    replica = replica_factory(300, 5, "--latency-ms", "20")
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    settings = ("CLOSESPIDER_PAGECOUNT=120", "LOGSTATS_INTERVAL=0.5", "CLUSTERSTATS_INTERVAL=0.5")
    nodes = [node_factory(redis_server.url, replica.url, *settings) for _ in range(2)]
    for node in nodes:
        assert node.wait(timeout=60) == 0, node.log[-3000:]

    records = {key.decode(): json.loads(value) for key, value in redis_db.hgetall(KEYS.nodes).items()}
    joined = {re.search(r"Node (\S+) joined the crawl", node.log).group(1) for node in nodes}
    assert set(records) == joined, "nodes are known by their scheduler's node id"
    stats = stats_hash(redis_db)
    per_node_pages = {node.stat("response_received_count") for node in nodes}
    assert {record["pages"] for record in records.values()} == per_node_pages
    assert int(stats["pages"]) == sum(record["pages"] for record in records.values()) == 120
    assert int(stats["items"]) == sum(node.stat("item_scraped_count") for node in nodes)
    for node_id, record in records.items():
        assert record["reason"] == "closespider_pagecount"
        assert int(stats[node_field(node_id, "pages")]) == record["pages"]
        assert float(stats[node_field(node_id, "start_time")]) == record["started"]
        assert float(stats[node_field(node_id, "finish_time")]) == record["finished"]
    assert float(stats["start_time"]) == min(record["started"] for record in records.values())
    for node in nodes:
        lines = re.findall(
            r"Crawled \d+ pages \(at \d+ pages/min\), scraped \d+ items \(at \d+ items/min\); "
            r"cluster: (\d+) pages \(at \d+ pages/min\)",
            node.log,
        )
        assert lines, node.log[-2000:]
        assert "Traceback" not in node.log
    timeline = [json.loads(raw) for raw in redis_db.lrange(KEYS.timeline, 0, -1)]
    assert {sample["node"] for sample in timeline} == joined


# -- Redis's clock --------------------------------------------------------------------------


def redis_now(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1_000_000


@pytest.mark.parametrize("skew", [-90.0, 90.0])
def test_every_timestamp_a_node_writes_is_redis_time(redis_db, redis_server, monkeypatch, skew: float) -> None:
    # the node's machine runs 90 s slow or fast; what it writes for others must not
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + skew)
    ext = make_extension(redis_server.url, node="a:1:0001", CLUSTERSTATS_INTERVAL=0.2)
    ext.spider_opened()
    crawled(ext, pages=3)
    ext._write()
    record = node_record(redis_db, "a:1:0001")
    assert record["started"] == pytest.approx(redis_now(redis_db), abs=1.0)
    assert record["seen"] == pytest.approx(redis_now(redis_db), abs=1.0)
    ext.spider_closed(reason="finished")
    record = node_record(redis_db, "a:1:0001")
    assert record["finished"] == pytest.approx(redis_now(redis_db), abs=1.0)
    stats = stats_hash(redis_db)
    for field in ("start_time", "finish_time", node_field("a:1:0001", "start_time")):
        assert float(stats[field]) == pytest.approx(redis_now(redis_db), abs=1.0), field
    samples = [json.loads(raw) for raw in redis_db.lrange(KEYS.timeline, 0, -1)]
    assert samples and all(sample["t"] == pytest.approx(redis_now(redis_db), abs=1.0) for sample in samples)
