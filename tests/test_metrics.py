"""`scrapy metrics` and the per-node metrics: exposition, names, labels, outages, ports."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from scrapy.settings import Settings
from scrapy.statscollectors import MemoryStatsCollector

from baike.keys import CrawlKeys
from baike.metrics.deadletters import PENDING, DeadLetterTally, reason_label
from baike.metrics.fleet import METRICS, FleetCollector
from baike.metrics.nodestats import NodeStatsCollector, stat_series
from baike.metrics.serve import MetricsPortError, serve, stop
from tests.conftest import ROOT, free_port

KEYS = CrawlKeys.for_spider("baike")
DOCS = ROOT / "docs" / "monitoring.md"
RULES = ROOT / "docs" / "monitoring" / "alerts.yml"
DASHBOARD = ROOT / "docs" / "monitoring" / "grafana-dashboard.json"
REASONS = [
    "HTTP 503 after retries",
    "HTTP 429 after retries",
    "parser failed: ValueError('no title')",
    "captcha answered 3 times for https://baike.baidu.com/item/x/1",
    "twisted.internet.error.TimeoutError: User timeout caused connection failure.",
    "DNSLookupError: DNS lookup failed: no results for hostname lookup: baike.baidu.com.",
    "rejected payload: not JSON",
]


def exposition(collector) -> dict:
    """The families of one scrape, parsed by prometheus_client's own text parser."""
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    """The metric table of docs/monitoring.md: name -> (type, labels)."""
    rows = re.findall(r"^\| `(baike_[a-z_]+)` \| (counter|gauge) \| ([^|]+) \|", DOCS.read_text(), re.MULTILINE)
    return {name: (kind, tuple(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


def add_node(client, node: str, *, seen: float, pages: int, finished: float | None = None) -> None:
    record = {
        "node": node,
        "host": node.split(":")[0],
        "pid": int(node.split(":")[1]),
        "started": seen - 100,
        "seen": seen,
        "pages": pages,
        "items": pages - 1,
        "errors": 1,
        "pages_per_min": 60.0,
        "finished": finished,
        "reason": "finished" if finished else None,
        "interval": 2.0,
        "rate_key": f"{KEYS.rate_prefix}baike.baidu.com",
    }
    client.hset(KEYS.nodes, node, json.dumps(record))


@pytest.fixture()
def crawl(redis_db):
    """A running crawl at Redis's clock: 3 nodes (alive, lost, stopped), dead letters, a shared rate."""
    now = time.time()
    redis_db.hset(KEYS.state, mapping={"budget": 1000})
    redis_db.set(KEYS.started, now - 100)
    redis_db.hset(
        KEYS.budget, mapping={"pages": 40, "reserved": 46, "enqueued": 110, "settled": 78, "seeds": 1, "marked": 4}
    )
    redis_db.zadd(KEYS.leases, {"a": now + 60, "b": now + 60})
    redis_db.hset(KEYS.items, mapping={f"https://baike.baidu.com/item/e{n}/{n}": "{}" for n in range(38)})
    redis_db.hset(KEYS.stats, mapping={"pages": 40, "items": 38, "errors": 3})
    for n in range(60):
        reason = REASONS[n % len(REASONS)]
        redis_db.rpush(KEYS.dead, json.dumps({"reason": reason, "time": now, "payload": {"url": f"https://x/{n}"}}))
    redis_db.hset(
        f"{KEYS.rate_prefix}baike.baidu.com",
        mapping={"rate": 8, "current": 4, "burst": 16, "cooldown_until": now + 30, "reason": "captcha"},
    )
    add_node(redis_db, "hosta:101:aaaa", seen=now - 1, pages=25)
    add_node(redis_db, "hostb:202:bbbb", seen=now - 60, pages=10)
    add_node(redis_db, "hostc:303:cccc", seen=now - 30, pages=5, finished=now - 30)
    return redis_db


def test_the_exposition_parses_and_has_every_documented_metric_with_its_type(crawl) -> None:
    families = exposition(FleetCollector(crawl, KEYS, lost_after=10.0))
    table = documented()
    assert set(table) == set(METRICS), "docs/monitoring.md's table lists exactly the exporter's metrics"
    # the parser names a counter without its _total
    exposed = {(name + "_total" if family.type == "counter" else name): family for name, family in families.items()}
    assert set(exposed) == set(table), set(exposed) ^ set(table)
    for name, family in exposed.items():
        kind, labels = table[name]
        assert family.type == kind, name
        for sample in family.samples:
            assert set(sample.labels) <= set(labels), (name, sample.labels)
            assert sample.name in (name, name.removesuffix("_total") + "_created") or family.type == "counter"


def test_the_values_are_the_crawls(crawl) -> None:
    families = exposition(FleetCollector(crawl, KEYS, lost_after=10.0))

    def value(name: str, **labels: str) -> float:
        family = families[name.removesuffix("_total")]
        return next(s.value for s in family.samples if s.labels == labels and not s.name.endswith("_created"))

    assert value("baike_redis_up") == 1 and value("baike_exporter_read_ok") == 1
    assert value("baike_pages_total") == 40 and value("baike_items_total") == 38 and value("baike_errors_total") == 3
    assert value("baike_crawl_state", status="running") == 1 and value("baike_crawl_state", status="finished") == 0
    assert (value("baike_nodes_alive"), value("baike_nodes_lost"), value("baike_nodes_stopped")) == (1, 1, 1)
    assert value("baike_node_pages_total", node="hosta:101:aaaa") == 25
    assert value("baike_node_status", node="hostb:202:bbbb", status="lost") == 1
    assert 59 <= value("baike_node_last_seen_age_seconds", node="hostb:202:bbbb") <= 62
    assert (value("baike_budget_limit_pages"), value("baike_budget_spent_pages")) == (1000, 40)
    assert value("baike_budget_in_flight_pages") == 6
    assert value("baike_frontier_queued_requests") == 30 and value("baike_leases_held") == 2
    assert value("baike_items_stored") == 38 and value("baike_fingerprints") == 110 - 1 + 4
    assert value("baike_dead_letters", reason="http", status="503") > 0
    assert sum(s.value for s in families["baike_dead_letters"].samples) == 60
    assert value("baike_rate_limit_requests_per_second") == 8 and value("baike_rate_current_requests_per_second") == 4
    assert 28 <= value("baike_rate_cooldown_seconds") <= 30 and value("baike_rate_cooldowns", reason="captcha") == 1


def test_no_label_takes_more_values_than_there_are_nodes_reasons_and_states(crawl) -> None:
    for n in range(200):  # many letters with URLs and messages: the reasons stay their kinds
        crawl.rpush(KEYS.dead, json.dumps({"reason": f"HTTP 503 after retries https://x/{n}", "payload": {}}))
        crawl.rpush(KEYS.dead, json.dumps({"reason": f"parser failed: KeyError('k{n}')", "payload": {}}))
    families = exposition(FleetCollector(crawl, KEYS, lost_after=10.0))
    values: dict[str, set[str]] = {}
    for family in families.values():
        for sample in family.samples:
            for label, label_value in sample.labels.items():
                values.setdefault(label, set()).add(label_value)
                assert "://" not in label_value and len(label_value) <= 64
    assert set(values) <= {"node", "reason", "status"}
    assert values["node"] == {"hosta:101:aaaa", "hostb:202:bbbb", "hostc:303:cccc"}
    assert values["reason"] == {
        "http",
        "parser",
        "captcha",
        "TimeoutError",
        "DNSLookupError",
        "rejected_payload",
        "retry_after",
        "http_errors",
    }
    assert values["status"] <= {"", "503", "429", "waiting", "running", "stopped", "finished", "alive", "lost"}


def test_a_scrape_takes_a_bounded_number_of_round_trips_and_no_scan(crawl, redis_server) -> None:
    for bucket in range(3000):  # a big dupefilter: SCAN would take many round trips
        crawl.hset(f"{KEYS.dupefilter}:{bucket:04x}", "f", "")
    collector = FleetCollector(crawl, KEYS)
    exposition(collector)  # the dead letters are counted once
    before = crawl.info("commandstats")
    exposition(collector)
    after = crawl.info("commandstats")
    calls = {name: after[name]["calls"] - before.get(name, {"calls": 0})["calls"] for name in after}
    assert calls.get("cmdstat_scan", 0) == 0 and calls.get("cmdstat_keys", 0) == 0
    assert sum(calls.values()) < 30, calls


def test_redis_down_is_redis_up_0_and_http_200(redis_db) -> None:
    dead = redis.Redis(port=free_port(), socket_connect_timeout=1)
    registry = CollectorRegistry()
    registry.register(FleetCollector(dead, KEYS))
    server, _ = serve(registry, 0, "127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10) as answer:
            assert answer.status == 200
            text = answer.read().decode()
    finally:
        stop(server)
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert families["baike_redis_up"].samples[0].value == 0
    assert "baike_pages" not in families


def test_a_crawl_that_cannot_be_read_is_read_ok_0(redis_db) -> None:
    redis_db.set(KEYS.nodes, "not a hash")
    families = exposition(FleetCollector(redis_db, KEYS))
    assert families["baike_redis_up"].samples[0].value == 1
    assert families["baike_exporter_read_ok"].samples[0].value == 0


def test_the_command_refuses_a_port_in_use_in_one_line(redis_server) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "scrapy", "metrics", "--port", str(port), "-s", f"REDIS_URL={redis_server.url}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"metrics: port {port} on 127.0.0.1 is in use (another exporter or node?); choose another port"
    ]


def test_serve_refuses_what_is_no_port() -> None:
    with pytest.raises(MetricsPortError, match="not a TCP port"):
        serve(CollectorRegistry(), 70000, "127.0.0.1")


# -- dead letters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "labels"),
    [
        ("HTTP 503 after retries", ("http", "503")),
        ("parser failed: ValueError('x')", ("parser", "")),
        ("captcha answered 3 times for https://baike.baidu.com/item/a/1", ("captcha", "")),
        ("twisted.internet.error.TimeoutError: took too long", ("TimeoutError", "")),
        ("bad seed: not a Baike entry URL", ("bad_seed", "")),
        ("something https://x/y", ("other", "")),
        (None, ("other", "")),
    ],
)
def test_a_reason_is_labelled_by_its_kind(reason, labels) -> None:
    assert reason_label(reason) == labels


def test_the_tally_reads_a_bounded_slice_per_read_and_starts_again_when_the_list_changes(redis_db) -> None:
    for n in range(25):
        redis_db.rpush(KEYS.dead, json.dumps({"reason": "HTTP 503 after retries" if n % 5 else "parser failed: x"}))
    tally = DeadLetterTally(KEYS.dead, chunk=4, chunks=2)
    first = tally.read(redis_db, 25)
    assert tally.counted == 8 and first[(PENDING, "")] == 17 and sum(first.values()) == 25
    while tally.counted < 25:
        counts = tally.read(redis_db, 25)
    assert counts == {("http", "503"): 20, ("parser", ""): 5}
    redis_db.lrem(KEYS.dead, 1, redis_db.lindex(KEYS.dead, 3))  # a requeue took one from the middle
    redis_db.rpush(KEYS.dead, json.dumps({"reason": "captcha x"}))
    for _ in range(10):
        counts = tally.read(redis_db, 25)
    assert counts == {("http", "503"): 19, ("parser", ""): 5, ("captcha", ""): 1}


# -- the per-node metrics -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stat", "series"),
    [
        ("downloader/response_status_count/200", ("baike_scrapy_downloader_response_status_count", {"status": "200"})),
        (
            "retry/reason_count/twisted.internet.error.TimeoutError",
            ("baike_scrapy_retry_reason_count", {"reason": "TimeoutError"}),
        ),
        ("log_count/ERROR", ("baike_scrapy_log_count_error", {})),
        ("baike/frontier/settled", ("baike_scrapy_baike_frontier_settled", {})),
    ],
)
def test_a_scrapy_stat_becomes_one_series(stat, series) -> None:
    assert stat_series(stat) == series


def test_the_node_stats_parse_with_bounded_labels() -> None:
    stats = MemoryStatsCollector(SimpleNamespace(settings=Settings({"STATS_DUMP": False})))
    stats.set_value("start_time", datetime(2026, 1, 1, tzinfo=UTC))
    stats.set_value("response_received_count", 12)
    stats.set_value("elapsed_time_seconds", 3.5)
    stats.set_value("downloader/response_status_count/200", 10)
    stats.set_value("downloader/response_status_count/503", 2)
    stats.set_value("downloader/exception_type_count/twisted.internet.error.TimeoutError", 1)
    stats.set_value("memusage/max", "not a number")
    families = exposition(NodeStatsCollector(stats, lambda: "hosta:1:aaaa"))
    assert families["baike_scrapy_response_received_count"].type == "counter"
    assert families["baike_scrapy_elapsed_time_seconds"].type == "gauge"
    assert families["baike_scrapy_start_time_seconds"].samples[0].value == datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    statuses = {
        s.labels["status"]: s.value
        for s in families["baike_scrapy_downloader_response_status_count"].samples
        if s.name.endswith("_total")
    }
    assert statuses == {"200": 10, "503": 2}
    for family in families.values():
        for sample in family.samples:
            assert set(sample.labels) <= {"node", "reason", "status"} and sample.labels["node"] == "hosta:1:aaaa"


# -- the documents --------------------------------------------------------------------------


def test_the_documented_rules_are_the_rules_file_and_promtool_accepts_them() -> None:
    docs = DOCS.read_text()
    block = docs.split("<!-- rules: docs/monitoring/alerts.yml -->\n```yaml\n", 1)[1].split("```", 1)[0]
    assert block == RULES.read_text()
    names = re.findall(r"- alert: (\w+)", block)
    assert 3 <= len(names) <= 5 and "BaikeNodeLost" in names and "BaikeRedisUnreachable" in names
    if not shutil.which("promtool"):
        pytest.skip("promtool (Debian's prometheus package) is not installed; scripts/setup.sh --tests installs it")
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_uses_documented_metrics_only() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\bbaike_[a-z_]+", expr)}
    assert used and used <= set(documented())
