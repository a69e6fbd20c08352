"""`scrapy status`: the snapshot on synthetic data, bad input, and live 2-node crawls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

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

KEYS = CrawlKeys.for_spider("baike")
# synthetic heartbeats are this old for the command, which reads the real clock
NOW = time.time() - 1000


def scrapy(redis_url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    return subprocess.run(
        [sys.executable, "-m", "scrapy", *args, "-s", f"REDIS_URL={redis_url}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def status_json(redis_url: str, *settings: str) -> dict:
    args = ["status", "--json"]
    for setting in settings:
        args += ["-s", setting]
    result = scrapy(redis_url, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def add_node(client, node: str, *, seen: float, started: float = NOW - 100, pages: int = 0, finished=None,
             reason=None, interval: float = 2.0) -> None:
    record = {"node": node, "host": node.split(":")[0], "pid": int(node.split(":")[1]), "started": started,
              "seen": seen, "pages": pages, "items": pages, "errors": 0, "pages_per_min": 120.0,
              "finished": finished, "reason": reason, "interval": interval}
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
    add_node(redis_db, "a:1:0001", seen=NOW - 100, started=NOW - 500, finished=NOW - 100,
             reason="closespider_pagecount")
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
        args = [sys.executable, "-m", "scrapy", "status", "--watch", "--json", "--interval", "0.25",
                "-s", f"REDIS_URL={redis_url}"]
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
    replica = replica_factory(300, 6, "--latency-ms", "100")
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
