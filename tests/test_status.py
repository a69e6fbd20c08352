"""`scrapy status`: the snapshot on synthetic data, bad input, and live 2-node crawls."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from baike.extensions.closespider import ClusterCloseSpider
from baike.extensions.clusterstats import ClusterStats
from baike.fresh import live_nodes
from baike.frontier.scheduler import LeasedScheduler
from baike.frontier.shards import ShardSplit, record_shards
from baike.keys import CrawlKeys
from baike.status import (
    FINISHED,
    RUNNING,
    STOPPED,
    WAITING,
    ForeignDataError,
    NoCrawlError,
    progress_line,
    render,
    require_crawl,
    snapshot,
)
from tests.conftest import ROOT, free_port
from tests.frontier_helpers import make_crawler

KEYS = CrawlKeys.for_spider("baike")
# synthetic heartbeats are this old for the command, which reads Redis's clock (this machine's here)
NOW = time.time() - 1000


def scrapy(redis_url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    return subprocess.run(
        [sys.executable, "-m", "scrapy", *args, "-s", f"REDIS_URL={redis_url}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def status_json(redis_url: str, *settings: str) -> dict:
    args = ["status", "--json"]
    for setting in settings:
        args += ["-s", setting]
    result = scrapy(redis_url, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def add_node(
    client,
    node: str,
    *,
    seen: float,
    started: float = NOW - 100,
    pages: int = 0,
    finished=None,
    reason=None,
    interval: float = 2.0,
) -> None:
    record = {
        "node": node,
        "host": node.split(":")[0],
        "pid": int(node.split(":")[1]),
        "started": started,
        "seen": seen,
        "pages": pages,
        "items": pages,
        "errors": 0,
        "pages_per_min": 120.0,
        "finished": finished,
        "reason": reason,
        "interval": interval,
    }
    client.hset(KEYS.nodes, node, json.dumps(record))


@pytest.fixture()
def crawl(redis_db):
    """A running crawl: 2 nodes, a budget of 100, 40 pages, a frontier, items, fingerprints."""
    redis_db.hset(KEYS.state, mapping={"budget": 100})
    redis_db.set(KEYS.started, NOW - 100)
    # the ledger says 30 requests are queued: 110 enqueued, 78 settled, 2 leased
    redis_db.hset(KEYS.budget, mapping={"pages": 40, "reserved": 46, "enqueued": 110, "settled": 78})
    redis_db.zadd(KEYS.requests, {str(n): n for n in range(3)})
    redis_db.zadd(KEYS.leases, {"a": NOW + 60, "b": NOW + 60})
    redis_db.hset(f"{KEYS.dupefilter}:00ab", mapping={b"x1": b"", b"x2": b""})
    redis_db.hset(f"{KEYS.dupefilter}:ff01", mapping={b"y1": b""})
    redis_db.rpush(KEYS.dead, json.dumps({"reason": "HTTP 503 after retries"}))
    redis_db.hset(KEYS.items, mapping={f"https://baike.baidu.com/item/e{n}/{n}": "{}" for n in range(38)})
    redis_db.hset(KEYS.stats, mapping={"pages": 40, "items": 38, "errors": 1, "start_time": NOW - 100})
    add_node(redis_db, "hosta:101:aaaa", seen=NOW - 1, pages=25)
    add_node(redis_db, "hostb:202:bbbb", seen=NOW - 1.5, pages=15, started=NOW - 90)
    return redis_db


# -- the snapshot -----------------------------------------------------------------------


def test_snapshot_of_a_running_crawl(crawl) -> None:
    snap = snapshot(crawl, KEYS, NOW)
    assert snap["state"] == RUNNING
    assert snap["budget"] == {"limit": 100, "pages": 40, "reserved": 46, "in_flight": 6, "fraction": 0.4}
    counts = (snap["frontier"], snap["leased"], snap["fingerprints"], snap["dead_letters"], snap["items"])
    assert counts == (30, 2, 3, 1, 38)
    assert snap["cluster"]["pages"] == 40 and snap["cluster"]["errors"] == 1
    assert [node["node"] for node in snap["nodes"]] == ["hosta:101:aaaa", "hostb:202:bbbb"]
    assert {node["status"] for node in snap["nodes"]} == {"alive"}
    assert snap["nodes"][0]["pages_per_sec"] == 2.0
    json.dumps(snap)  # what --json prints


def test_state_transitions(redis_db) -> None:
    assert snapshot(redis_db, KEYS, NOW)["state"] == WAITING
    redis_db.hset(KEYS.state, "budget", 50)
    redis_db.set(KEYS.started, NOW)
    assert snapshot(redis_db, KEYS, NOW)["state"] == RUNNING
    redis_db.hset(KEYS.budget, "pages", 50)
    assert snapshot(redis_db, KEYS, NOW)["state"] == STOPPED, "the budget is spent, even before a node says so"
    redis_db.hset(KEYS.budget, "pages", 10)
    redis_db.hset(KEYS.state, mapping={"reason": "closespider_pagecount", "ended_at": NOW})
    assert snapshot(redis_db, KEYS, NOW)["state"] == STOPPED
    redis_db.hset(KEYS.state, "reason", "finished")
    assert snapshot(redis_db, KEYS, NOW)["state"] == FINISHED


def test_a_crawl_resumed_after_it_stopped_is_running_again(redis_db) -> None:
    redis_db.set(KEYS.started, NOW - 500)
    redis_db.hset(KEYS.budget, "pages", 300)
    redis_db.hset(KEYS.state, mapping={"budget": 300, "reason": "closespider_pagecount", "ended_at": NOW - 100})
    add_node(
        redis_db, "a:1:0001", seen=NOW - 100, started=NOW - 500, finished=NOW - 100, reason="closespider_pagecount"
    )
    assert snapshot(redis_db, KEYS, NOW)["state"] == STOPPED
    redis_db.hset(KEYS.state, "budget", 400)  # what a node started with a larger budget records
    add_node(redis_db, "b:2:0002", seen=NOW - 1, started=NOW - 10)
    snap = snapshot(redis_db, KEYS, NOW)
    assert snap["state"] == RUNNING and snap["ended_at"] is None


def test_budget_falls_back_to_the_setting_when_no_node_recorded_one(redis_db) -> None:
    redis_db.set(KEYS.started, NOW)
    redis_db.hset(KEYS.budget, "pages", 20)
    assert snapshot(redis_db, KEYS, NOW, budget=20)["state"] == STOPPED
    assert snapshot(redis_db, KEYS, NOW, budget=0)["budget"]["fraction"] is None


def test_silent_nodes_are_lost_and_closed_nodes_stopped(redis_db) -> None:
    add_node(redis_db, "a:1:0001", seen=NOW - 1)
    add_node(redis_db, "b:2:0002", seen=NOW - 30)
    add_node(redis_db, "c:3:0003", seen=NOW - 30, finished=NOW - 30, reason="finished")
    add_node(redis_db, "d:4:0004", seen=NOW - 20, interval=10.0)  # slow writer: 3 intervals of patience
    redis_db.hset(KEYS.nodes, "garbage", b"\xff not json")
    snap = snapshot(redis_db, KEYS, NOW, lost_after=10.0)
    statuses = {node["node"]: node["status"] for node in snap["nodes"]}
    assert statuses == {"a:1:0001": "alive", "b:2:0002": "lost", "c:3:0003": "stopped", "d:4:0004": "alive"}
    assert (snap["nodes_alive"], snap["nodes_lost"]) == (2, 1)
    text = render(snap)
    assert "b:2:0002" in text and "lost" in text and "stopped (finished)" in text


def test_status_shows_each_shards_part_of_the_fingerprints(redis_db) -> None:
    redis_db.set(KEYS.started, NOW)
    snap = snapshot(redis_db, KEYS, NOW)
    assert (snap["shards"], snap["shard_parts"]) == (1, [1.0]) and "shards  " not in render(snap)
    record_shards(redis_db, KEYS, ShardSplit.weighted(3, 0.4))
    snap = snapshot(redis_db, KEYS, NOW)
    assert snap["shards"] == 3 and snap["shard_parts"] == pytest.approx([0.1333, 0.4333, 0.4333], abs=1e-4)
    assert "shards       3, fingerprints 13.3% / 43.3% / 43.3%" in render(snap)
    redis_db.hdel(KEYS.shards, "bounds")  # a crawl split before the split was recorded: % 3
    assert snapshot(redis_db, KEYS, NOW)["shard_parts"] == pytest.approx([0.3333] * 3, abs=1e-4)
    redis_db.hset(KEYS.shards, "bounds", "9 not bounds")
    snap = snapshot(redis_db, KEYS, NOW)
    assert snap["shard_parts"] is None and "the split recorded in Redis is not one" in render(snap)
    json.dumps(snap, allow_nan=False)


def test_render_and_progress_line(crawl) -> None:
    snap = snapshot(crawl, KEYS, NOW)
    snap["redis"] = "redis://127.0.0.1:6379/0"
    text = render(snap, width=20)
    assert text.splitlines()[0] == "baike crawl at redis://127.0.0.1:6379/0: running (for 1m40s)"
    assert "########............ 40/100 pages (40%)" in text
    assert "30 queued" in text and "3 fingerprints seen" in text and "2 leased, 6 downloading" in text
    assert "38 items, 1 dead letters" in text
    assert "hosta:101:aaaa" in text and "hostb:202:bbbb" in text
    line = progress_line(snap, width=10)
    assert line.startswith("[####......] 40/100 pages  38 items  30 queued  2 leased  2 nodes  4.0 pages/s  running")


def test_empty_foreign_and_other_projects_databases(redis_db) -> None:
    with pytest.raises(NoCrawlError, match="the database is empty"):
        require_crawl(redis_db, KEYS, "here")
    redis_db.set("sessions:42", "x")
    with pytest.raises(NoCrawlError, match="1 other keys"):
        require_crawl(redis_db, KEYS, "here")
    redis_db.rpush(KEYS.items, "a list")
    with pytest.raises(ForeignDataError, match="baike:items is a Redis list"):
        require_crawl(redis_db, KEYS, "here")


# -- the command --------------------------------------------------------------------------


def test_command_prints_text_and_json(crawl, redis_server) -> None:
    result = scrapy(redis_server.url, "status")
    assert result.returncode == 0, result.stderr
    assert f"baike crawl at {redis_server.url}: running" in result.stdout
    assert "nodes: 0 alive, 2 lost" in result.stdout, "the synthetic nodes' heartbeats are long past"
    snap = status_json(redis_server.url)
    assert snap["state"] == RUNNING and snap["redis"] == redis_server.url
    assert snap["budget"]["limit"] == 100 and len(snap["nodes"]) == 2


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("unreachable", "status: cannot reach Redis at redis://127.0.0.1:"),
        ("empty", "status: no baike crawl at "),
        ("other", "other keys do (another project's database? check REDIS_URL)"),
        ("foreign", "status: baike:nodes is a Redis string, not the hash baike writes"),
    ],
)
def test_bad_redis_gives_one_line(redis_db, redis_server, setup: str, expected: str) -> None:
    url = redis_server.url
    if setup == "unreachable":
        url = f"redis://127.0.0.1:{free_port()}/0"
    elif setup == "other":
        redis_db.hset("celery:tasks", "1", "x")
    elif setup == "foreign":
        redis_db.set(KEYS.nodes, "someone else's")
    result = scrapy(url, "status")
    assert result.returncode == 1
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


# -- live crawls ------------------------------------------------------------------------------


class Watcher:
    """`scrapy status --watch --json` in the background, its snapshots collected."""

    def __init__(self, redis_url: str, *settings: str):
        args = [
            sys.executable,
            "-m",
            "scrapy",
            "status",
            "--watch",
            "--json",
            "--interval",
            "0.25",
            "-s",
            f"REDIS_URL={redis_url}",
        ]
        for setting in settings:
            args += ["-s", setting]
        self.process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.snapshots: list[dict] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.snapshots.append(json.loads(line))

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout=timeout)
        self.thread.join(timeout=5)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self.thread.join(timeout=5)
        self.process.stdout.close()
        self.process.stderr.close()

    def states(self) -> list[str]:
        seen: list[str] = []
        for snap in self.snapshots:
            if not seen or seen[-1] != snap["state"]:
                seen.append(snap["state"])
        return seen


def wait_for(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.1)


@pytest.mark.e2e
def test_watch_follows_a_two_node_crawl_until_it_stops_at_the_budget(
    redis_db, redis_server, replica_factory, node_factory
) -> None:
    replica = replica_factory(300, 2, "--latency-ms", "40")
    watcher = Watcher(redis_server.url)
    try:
        settings = ("CLOSESPIDER_PAGECOUNT=150", "CLUSTERSTATS_INTERVAL=0.3")
        nodes = [node_factory(redis_server.url, replica.url, *settings) for _ in range(2)]
        wait_for(lambda: redis_db.hlen(KEYS.nodes) == 2, 30, "both nodes register")
        time.sleep(0.6)
        redis_db.lpush(KEYS.start_urls, replica.start_url())
        assert watcher.wait(timeout=60) == 0, watcher.process.stderr.read()
    finally:
        watcher.close()
    for node in nodes:
        assert node.wait(timeout=30) == 0, node.log[-3000:]

    assert watcher.states()[-3:] == [WAITING, RUNNING, STOPPED]
    running = [snap for snap in watcher.snapshots if snap["state"] == RUNNING]
    assert any(snap["nodes_alive"] == 2 and snap["budget"]["pages"] > 0 for snap in running)
    snap = running[-1]
    assert set(snap) >= {"budget", "frontier", "fingerprints", "leased", "dead_letters", "items", "nodes", "cluster"}
    for node in snap["nodes"]:
        assert set(node) >= {"node", "host", "pid", "pages", "pages_per_sec", "seen", "status"}
    final = watcher.snapshots[-1]
    assert final["budget"]["pages"] == 150 and final["reason"] == "closespider_pagecount"
    assert [node["status"] for node in final["nodes"]] == ["stopped", "stopped"]
    assert {node["reason"] for node in final["nodes"]} == {"closespider_pagecount"}
    assert final["items"] == redis_db.hlen(KEYS.items) > 0
    assert final["fingerprints"] > 150


@pytest.mark.e2e
def test_status_after_a_crawl_that_finished(redis_db, redis_server, replica_factory, node_factory) -> None:
    replica = replica_factory(300, 4)
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    nodes = [node_factory(redis_server.url, replica.url, "CLOSESPIDER_PAGECOUNT=0") for _ in range(2)]
    for node in nodes:
        assert node.wait(timeout=60) == 0, node.log[-3000:]
    snap = status_json(redis_server.url)
    assert snap["state"] == FINISHED
    assert snap["budget"]["limit"] == 0 and snap["frontier"] == 0 and snap["leased"] == 0
    assert snap["cluster"]["pages"] == snap["budget"]["pages"] == sum(n.stat("response_received_count") for n in nodes)
    assert [node["reason"] for node in snap["nodes"]] == ["finished", "finished"]
    text = scrapy(redis_server.url, "status").stdout
    assert "finished (ran for" in text and "budget       none set" in text


@pytest.mark.e2e
def test_a_node_killed_with_sigkill_shows_as_lost(redis_db, redis_server, replica_factory, node_factory) -> None:
    replica = replica_factory(150, 6, "--latency-ms", "100")
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    settings = ("CLOSESPIDER_PAGECOUNT=0", "CLUSTERSTATS_INTERVAL=0.3", "SCHEDULER_LEASE_SECONDS=3")
    victim, survivor = (node_factory(redis_server.url, replica.url, *settings) for _ in range(2))

    def victim_record() -> dict | None:
        snap = status_json(redis_server.url)
        return next((node for node in snap["nodes"] if node["pid"] == victim.process.pid), None)

    wait_for(lambda: (victim_record() or {}).get("pages", 0) > 0, 30, "the victim crawls")
    victim.kill()
    victim.wait(timeout=10)
    time.sleep(1.5)

    snap = status_json(redis_server.url, "CLUSTERSTATS_LOST_AFTER=1")
    statuses = {node["pid"]: node["status"] for node in snap["nodes"]}
    assert statuses == {victim.process.pid: "lost", survivor.process.pid: "alive"}, snap["nodes"]
    assert snap["nodes_lost"] == 1 and snap["state"] == RUNNING
    text = scrapy(redis_server.url, "status", "-s", "CLUSTERSTATS_LOST_AFTER=1").stdout
    assert "1 alive, 1 lost" in text

    assert survivor.wait(timeout=60) == 0, survivor.log[-3000:]
    final = status_json(redis_server.url, "CLUSTERSTATS_LOST_AFTER=1")
    assert final["state"] == FINISHED
    assert {node["pid"]: node["status"] for node in final["nodes"]} == {
        victim.process.pid: "lost",
        survivor.process.pid: "stopped",
    }


# -- redaction ----------------------------------------------------------------------------

SECRET = "s3cr3t"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:s3cr3t@h", "redis://:***@h"),
        ("redis://:s3cr3t@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:s3cr3t@h:6379/0", "redis://user:***@h:6379/0"),
        ("rediss://user:s3cr3t@h:6380/1", "rediss://user:***@h:6380/1"),
        ("rediss://:s3cr3t@[::1]:6380/1", "rediss://:***@[::1]:6380/1"),
        ("unix://:s3cr3t@/tmp/redis.sock?db=0", "unix://:***@/tmp/redis.sock?db=0"),
        ("unix://user:s3cr3t@/tmp/redis.sock", "unix://user:***@/tmp/redis.sock"),
        ("redis://h:6379/0?password=s3cr3t", "redis://h:6379/0?password=***"),
        ("redis://h/0?db=1&password=s3cr3t&socket_timeout=5", "redis://h/0?db=1&password=***&socket_timeout=5"),
        ("redis://h/0?PassWord=s3cr3t", "redis://h/0?PassWord=***"),
        ("redis://h/0?PASSWORD=s3cr3t&db=2", "redis://h/0?PASSWORD=***&db=2"),
        ("redis://h/0?pass%77ord=s3cr3t", "redis://h/0?pass%77ord=***"),
        ("redis://h/0?%50ASSWORD=s3cr3t", "redis://h/0?%50ASSWORD=***"),
        ("redis://h/0?password=s3cr3t%26more%3D", "redis://h/0?password=***"),
        ("redis://h/0?ssl_password=s3cr3t", "redis://h/0?ssl_password=***"),
        ("unix:///tmp/redis.sock?password=s3cr3t&db=0", "unix:///tmp/redis.sock?password=***&db=0"),
        ("redis://u:s3cr3t@h/0?password=s3cr3t", "redis://u:***@h/0?password=***"),
        ("redis://s3cr3t@h:6379/0", "redis://***@h:6379/0"),
        ("redis://:s3%40cr3t@h", "redis://:***@h"),
        ("redis://:s3@cr3t@h/0", "redis://:***@h/0"),
        ("redis://:s3/cr3t@h/0", "redis://***@h/0"),
        ("redis://:s3?cr3t@h/0", "redis://***@h/0"),
        ("REDIS://:s3cr3t@h", "REDIS://:***@h"),
        ("user:s3cr3t@h:6379", "user:***@h:6379"),
        ("s3cr3t@h:6379", "***@h:6379"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("unix:///run/redis.sock?db=0", "unix:///run/redis.sock?db=0"),
        ("redis://h/0?client_name=crawler", "redis://h/0?client_name=crawler"),
    ],
)
def test_redacted_hides_every_password(url: str, expected: str) -> None:
    from baike.status import redacted

    assert redacted(url) == expected
    assert "s3cr3t" not in redacted(url) and "cr3t" not in redacted(url)


def test_redacted_hides_what_redis_py_reads_as_the_password() -> None:
    from redis.connection import parse_url

    from baike.status import redacted

    for url in (
        "redis://:s3cr3t@h",
        "redis://h/0?password=s3cr3t",
        "unix://:s3cr3t@/x.sock",
        "redis://h/0?pass%77ord=s3cr3t",
    ):
        password = parse_url(url)["password"]
        assert password == SECRET and password not in redacted(url)


# -- any value in Redis -------------------------------------------------------------------

# JSON text of odd values a node record may hold where a number or a string belongs
ODD_JSON = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "-5",
    "-1e308",
    "1e308",
    "1e20",
    "-1e20",
    "1.5",
    "0",
    str(2**70),
    str(-(2**70)),
    "9" * 5000,
    '"12"',
    '"abc"',
    '""',
    '"nan"',
    '"1e999"',
    '"-inf"',
    "null",
    "true",
    "false",
    "[]",
    "[1, 2]",
    "{}",
    '{"a": 1}',
    json.dumps("x" * 100_000),
    '"\\ud800"',
    '"\\u001b[2J\\r\\n\\u0007"',
    "[" * 50 + "]" * 50,
]
NODE_FIELDS = (
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
    "interval",
)
# whole node records that are not one
ODD_RECORDS = [
    b"\xff\xfe\x00bad",
    b"NaN",
    b"1e999",
    b"[1, 2]",
    b'"a string"',
    b"null",
    b"[" * 100_000,
    b"{" * 10,
    b"x" * 1_000_000,
    b'{"seen": NaN, "pages": Infinity}',
    b"",
]
# odd values of hash fields that hold integers or timestamps (budget, stats, state, started)
ODD_TEXT = [
    b"nan",
    b"NaN",
    b"inf",
    b"-inf",
    b"1e999",
    b"-1e999",
    b"abc",
    b"",
    b"9" * 5000,
    b"-5",
    b"1.5",
    b"\xff\xfe",
    b"1e300",
    b"-1e300",
    b" 7 ",
    b"0x10",
    str(2**70).encode(),
]


def odd_node_records() -> dict[bytes, bytes]:
    records = {}
    for field in NODE_FIELDS:
        for n, value in enumerate(ODD_JSON):
            node = f"h:{n}:{field}"
            parts = {
                "node": json.dumps(node),
                "host": '"h"',
                "pid": str(n),
                "started": str(NOW - 50),
                "seen": str(NOW - 1),
                "pages": "3",
                "items": "3",
                "errors": "0",
                "pages_per_min": "6.0",
                "finished": "null",
                "reason": "null",
                "interval": "2.0",
            }
            parts[field] = value
            records[node.encode()] = ("{" + ", ".join(f'"{k}": {v}' for k, v in parts.items()) + "}").encode()
    for n, raw in enumerate(ODD_RECORDS):
        records[f"odd:{n}".encode()] = raw
    records[b"\xff\xfe non-utf-8 id"] = b'{"seen": 1}'
    return records


def assert_strict_and_printable(snap: dict) -> None:
    from baike.report import HtmlReport

    text = json.dumps(snap, ensure_ascii=False, allow_nan=False)
    text.encode("utf-8")  # no lone surrogates
    rendered = render(snap)
    rendered.encode("utf-8")
    assert not any(ord(char) < 32 and char != "\n" for char in rendered), "no control characters reach a terminal"
    assert max(len(line) for line in rendered.splitlines()) < 2000
    progress_line(snap).encode("utf-8")
    out = io.BytesIO()
    report = HtmlReport(out, snap, [])
    report.start_exporting()
    report.finish_exporting()


def test_status_survives_any_value_in_redis(redis_db) -> None:
    redis_db.set(KEYS.started, NOW - 100)
    redis_db.hset(KEYS.nodes, mapping=odd_node_records())
    snap = snapshot(redis_db, KEYS, NOW)
    assert_strict_and_printable(snap)
    assert len(snap["nodes"]) > len(NODE_FIELDS) * len(ODD_JSON) - 20
    for node in snap["nodes"]:
        assert isinstance(node["node"], str) and isinstance(node["host"], str) and isinstance(node["pages"], int)
        assert node["pid"] is None or isinstance(node["pid"], int)

    for key, fields in (
        (KEYS.budget, ("pages", "reserved", "enqueued", "settled")),
        (KEYS.stats, ("pages", "items", "errors", "start_time", "finish_time")),
        (KEYS.state, ("budget", "reason", "ended_at")),
    ):
        for value in ODD_TEXT:
            redis_db.hset(key, mapping=dict.fromkeys(fields, value))
            redis_db.set(KEYS.started, value)
            redis_db.hset(KEYS.state, b"\xff\xfe", value)
            assert_strict_and_printable(snapshot(redis_db, KEYS, NOW))


def test_status_command_survives_any_value_in_redis(redis_db, redis_server, tmp_path) -> None:
    redis_db.set(KEYS.started, b"nan")
    redis_db.hset(KEYS.nodes, mapping=odd_node_records())
    redis_db.hset(KEYS.budget, mapping={"pages": "1e999", "reserved": "NaN", "enqueued": b"\xff", "settled": "-inf"})
    redis_db.hset(KEYS.stats, mapping={"pages": "inf", "items": "x", "start_time": "1e300", "finish_time": "nan"})
    redis_db.hset(KEYS.state, mapping={"budget": "-1e999", "reason": "\x1b[2J" + "r" * 10_000, "ended_at": "inf"})
    redis_db.hset(f"{KEYS.dupefilter}:0001", "f", "")
    redis_db.set(f"{KEYS.dupefilter}:0002", "not a bucket")
    for sample in (
        '{"node": "a", "t": NaN, "pages": 1}',
        '{"node": "a", "t": 1e999, "pages": 1}',
        '{"node": "a", "t": 1e300, "pages": 1e999}',
        '{"node": "b", "t": -1e300, "pages": -7}',
        '{"node": "b", "t": 5, "pages": 2}',
        '{"node": "b", "t": 6, "pages": 3}',
        "[" * 100_000,
    ):
        redis_db.rpush(KEYS.timeline, sample)

    text = scrapy(redis_server.url, "status")
    assert text.returncode == 0, text.stderr
    assert "\x1b" not in text.stdout and "baike crawl at" in text.stdout

    as_json = scrapy(redis_server.url, "status", "--json")
    assert as_json.returncode == 0, as_json.stderr

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    snap = json.loads(as_json.stdout, parse_constant=refuse)
    assert len(snap["nodes"]) > 300 and snap["fingerprints"] == 1

    report = tmp_path / "report.html"
    exported = scrapy(redis_server.url, "export", "-o", str(report))
    assert exported.returncode == 0, exported.stderr
    assert "\x1b" not in report.read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", ["list", "set", "zset"])
def test_seeds_may_be_a_list_a_set_or_a_sorted_set(redis_db, kind: str) -> None:
    seeds = ["https://baike.baidu.com/item/a", "https://baike.baidu.com/item/b"]
    if kind == "list":
        redis_db.rpush(KEYS.start_urls, *seeds)
    elif kind == "set":
        redis_db.sadd(KEYS.start_urls, *seeds)
    else:
        redis_db.zadd(KEYS.start_urls, dict.fromkeys(seeds, 0))
    require_crawl(redis_db, KEYS, "here")
    assert snapshot(redis_db, KEYS, NOW)["seeds"] == 2


# -- clocks: every machine's clock may be off; Redis's is the crawl's ------------------------


REAL_TIME = time.time


def skew_clock(monkeypatch, seconds: float) -> None:
    """This process's clock (the machine of a node, or of the reader) runs ``seconds`` off."""
    monkeypatch.setattr(time, "time", lambda: REAL_TIME() + seconds)


def started_node(redis_url: str, node: str) -> ClusterStats:
    """A node's ClusterStats extension, opened: its record is written (the tests drive every write)."""
    crawler = make_crawler(redis_url, CLUSTERSTATS_INTERVAL=0.2)
    scheduler = LeasedScheduler.__new__(LeasedScheduler)
    scheduler.node_id = node
    crawler.engine = SimpleNamespace(scheduler=scheduler)
    extension = ClusterStats.from_crawler(crawler)
    extension._loop = SimpleNamespace(running=False, start=lambda interval, now=True: None)
    extension.spider_opened()
    return extension


@pytest.mark.parametrize("skew", [-90.0, 90.0])
def test_a_node_whose_clock_is_off_is_alive_then_lost_by_redis_time(
    redis_db, redis_server, monkeypatch, skew: float
) -> None:
    redis_db.set(KEYS.started, 1)
    skew_clock(monkeypatch, skew)  # the node's machine
    started_node(redis_server.url, "a:1:0001")
    skew_clock(monkeypatch, -skew)  # the reader's machine is off the other way
    statuses = {node["node"]: node["status"] for node in snapshot(redis_db, KEYS, lost_after=1.0)["nodes"]}
    assert statuses == {"a:1:0001": "alive"}
    assert live_nodes(redis_db, KEYS, lost_after=1.0) == ["a:1:0001"], "reset judges it as status does"
    time.sleep(1.3)  # CLUSTERSTATS_LOST_AFTER of Redis's time, without a write
    statuses = {node["node"]: node["status"] for node in snapshot(redis_db, KEYS, lost_after=1.0)["nodes"]}
    assert statuses == {"a:1:0001": "lost"}
    assert live_nodes(redis_db, KEYS, lost_after=1.0) == []


def test_a_crawl_resumed_by_a_node_whose_clock_is_behind_is_running(redis_db, redis_server, monkeypatch) -> None:
    redis_db.set(KEYS.started, 1)
    redis_db.hset(KEYS.budget, "pages", 100)
    # the node that spent the budget runs 90 s fast; only the state it records matters here
    crawler = make_crawler(redis_server.url, CLOSESPIDER_PAGECOUNT=100)
    crawler.engine = SimpleNamespace(close_spider_async=lambda reason: None)
    skew_clock(monkeypatch, 90.0)
    ender = ClusterCloseSpider(crawler)
    ender.close_spider("closespider_pagecount")
    assert snapshot(redis_db, KEYS)["state"] == STOPPED
    # a second later a node with a right clock resumes the crawl with a larger budget
    time.sleep(1.0)
    skew_clock(monkeypatch, 0.0)
    redis_db.hset(KEYS.state, "budget", 200)
    started_node(redis_server.url, "b:2:0002")
    snap = snapshot(redis_db, KEYS)
    assert snap["state"] == RUNNING and snap["ended_at"] is None


def test_status_shows_the_shared_rate_and_a_cool_down(redis_db, redis_server) -> None:
    keys = CrawlKeys.for_spider("baike")
    seconds, micros = redis_db.time()
    now = seconds + micros / 1e6
    redis_db.hset(
        f"{keys.rate_prefix}baike.baidu.com",
        mapping={"rate": 2, "current": 1, "burst": 5, "cooldown_until": now + 30, "reason": "captcha"},
    )
    redis_db.hset(f"{keys.rate_prefix}baike.baidu.com@proxy-2", mapping={"rate": 2, "current": "nan"})
    redis_db.rpush(keys.start_urls, "https://baike.baidu.com/item/x/1")
    snap = snapshot(redis_db, keys)
    assert [rate["target"] for rate in snap["rates"]] == ["baike.baidu.com", "baike.baidu.com@proxy-2"]
    first, second = snap["rates"]
    assert first["current"] == 1 and 29 < first["cooling_for"] <= 30 and first["reason"] == "captcha"
    assert second["current"] is None and second["cooling_until"] is None
    text = render(snap)
    assert "rate         baike.baidu.com: 2/s configured, 1/s now; cooling down for" in text and "(captcha)" in text
    json.dumps(snap, allow_nan=False)
