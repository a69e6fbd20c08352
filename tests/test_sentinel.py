"""Sentinel: a master, a replica and 3 Sentinels on loopback; the master is killed with
SIGKILL while 2 real nodes crawl the replica site, and the crawl goes on with the new master.

The servers are started here, on free ports in temporary directories. What a failover may
lose and what the crawl does about it is in docs/redis.md ("Sentinel and failover").
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from scrapy.settings import Settings

from baike.connection import REDIS_ERRORS, get_redis, master_address, sentinel_target, tls_params
from baike.status import CrawlDataError, connect, describe_failover, read_failover
from tests.conftest import ROOT, node_env
from tests.support import SentinelSet
from tests.test_crash_safety import KEYS, assert_crawled_exactly, pages, stored_urls
from tests.test_redis_auth import TlsFiles, set_documented_user

pytestmark = pytest.mark.e2e
FAILOVER_LINE = "Redis failover: the master moved"
# the nodes' own Redis timeouts: short, so that a call to the dead master fails fast
FAST_REDIS = 'REDIS_PARAMS={"socket_timeout": 2, "socket_connect_timeout": 1, "retry_on_timeout": true}'
# documented bound (docs/redis.md) of the pages downloaded beyond the budget after a
# failover with REDIS_WAIT_REPLICAS=1: per node, its concurrency plus one batch
CONCURRENCY, BATCH = 8, 8
# leases that outlive the failover (about 2.3 s here): none expires while Redis is away
LEASES = ("SCHEDULER_LEASE_SECONDS=6", "SCHEDULER_HEARTBEAT_INTERVAL=0.5")


@contextmanager
def running(group: SentinelSet) -> Iterator[SentinelSet]:
    """``group`` started (the test skipped, saying why, where it cannot start), stopped after."""
    try:
        group.start()
    except (FileNotFoundError, RuntimeError) as exc:
        group.stop()
        pytest.skip(f"no Sentinel set on this machine: {exc}")
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture()
def sentinels(tmp_path):
    with running(SentinelSet(tmp_path / "sentinel")) as group:
        yield group


class FreezableLink:
    """A TCP relay on loopback to ``port``; while ``frozen`` is set, nothing goes from the
    server to its client (the bytes wait in the server's buffers). Put between a replica
    and its master, it makes the replica lag behind at will: what the master writes while
    frozen is exactly what a failover then loses."""

    def __init__(self, port: int):
        self.target = port
        self.frozen = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                # the master is gone (killed by the test): refuse the replica, as a dead host would
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, downstream: bool) -> None:
        try:
            while True:
                while downstream and self.frozen.is_set():
                    time.sleep(0.01)
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            end.close()

    def close(self) -> None:
        self.listener.close()


def scrapy(url: str, *args: str) -> str:
    """``scrapy <args>`` against ``url``; its output (it must succeed)."""
    result = subprocess.run(
        [sys.executable, "-m", "scrapy", *args, "-s", f"REDIS_URL={url}"],
        cwd=ROOT,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def run_status(url: str) -> tuple[dict, str]:
    """``scrapy status --json`` and ``scrapy status`` against ``url``."""
    return json.loads(scrapy(url, "status", "--json")), scrapy(url, "status")


def stop_master(group: SentinelSet) -> int:
    """SIGKILL the master, not waiting for the Sentinels; returns its port."""
    old = group.master_port()
    next(server for server in group.servers if server.port == old).stop(signal.SIGKILL)
    return old


def kill_master(group: SentinelSet) -> tuple[int, float]:
    """SIGKILL the master; returns its port and the seconds until the Sentinels promoted the replica."""
    old = stop_master(group)
    return old, group.wait_for_failover(old)


def assert_failover_logged_once(node) -> None:
    log = node.log
    assert log.count(FAILOVER_LINE) == 1, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.parametrize(
    ("url", "sentinels", "service", "db", "user", "password", "tls"),
    [
        ("redis+sentinel://h1:26379,h2:26380/svc/3", (("h1", 26379), ("h2", 26380)), "svc", 3, None, None, False),
        ("redis+sentinel://u:p%40w@h1/svc", (("h1", 26379),), "svc", 0, "u", "p@w", False),
        ("rediss+sentinel://:pw@[::1]:5000/svc/0", (("::1", 5000),), "svc", 0, None, "pw", True),
    ],
)
def test_a_sentinel_url_names_sentinels_service_and_database(url, sentinels, service, db, user, password, tls) -> None:
    target = sentinel_target(url)
    assert (target.sentinels, target.service, target.db) == (sentinels, service, db)
    assert (target.username, target.password, target.ssl) == (user, password, tls)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://h1/", "needs Sentinels and a service"),
        ("redis+sentinel:///svc/0", "needs Sentinels and a service"),
        ("redis+sentinel://h1:port/svc", "not a Sentinel address"),
        ("redis+sentinel://h1/svc/x", "is a number"),
    ],
)
def test_a_bad_sentinel_url_is_one_line(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sentinel_target(url)
    with pytest.raises(CrawlDataError, match=message):
        connect(Settings({"REDIS_URL": url}), "there")


def test_one_client_per_settings_and_tls_files_go_with_rediss_sentinel(tmp_path) -> None:
    settings = Settings({"REDIS_URL": "redis+sentinel://127.0.0.1:1/svc/0"})
    assert get_redis(settings) is get_redis(settings)
    ca = tmp_path / "ca.pem"
    ca.write_text("-")
    tls = Settings({"REDIS_SSL_CA_CERTS": str(ca)})
    assert tls_params(tls, "rediss+sentinel://127.0.0.1:1/svc/0", {}) == {"ssl_ca_certs": str(ca)}


def test_status_says_a_failover_happened() -> None:
    node = {"pages": 130}
    raw = {
        b"master": b"10.0.0.6:6379",
        b"count": b"2",
        b"last_time": b"1796199092.5",
        b"last_from": b"10.0.0.5:6379",
        b"last_to": b"10.0.0.6:6379",
    }
    failover = read_failover(raw, 120, [node])
    assert failover["count"] == 2 and failover["redone"] == 10
    assert describe_failover(failover) == (
        "master 10.0.0.6:6379; 2 failover(s), the last at 2026-12-02 08:11:32 UTC (10.0.0.5:6379 -> 10.0.0.6:6379);"
        " 10 pages downloaded again"
    )
    assert describe_failover(read_failover({b"master": b"h:1"}, 0, [])) == "master h:1, no failover"


def test_a_sentinel_url_is_read_and_the_client_follows_a_failover(sentinels) -> None:
    target = sentinel_target(sentinels.url)
    assert len(target.sentinels) == 3 and target.db == 0
    client = get_redis(Settings({"REDIS_URL": sentinels.url, "REDIS_PARAMS": {"socket_timeout": 2}}))
    client.set("probe", "1")
    # replication is asynchronous: without the WAIT a write just before the kill may be lost
    assert client.wait(1, 5000) == 1
    before = master_address(client)
    assert before == f"127.0.0.1:{sentinels.master.port}"
    _old, _took = kill_master(sentinels)
    deadline = time.monotonic() + 30
    while True:
        try:
            assert client.get("probe") == b"1", "the replica held the write"
            break
        except REDIS_ERRORS:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert master_address(client) != before


def test_every_command_works_with_a_sentinel_url(sentinels, tmp_path) -> None:
    master = sentinels.master.client()
    master.hset(KEYS.items, "https://baike.baidu.com/item/x/1", json.dumps({"url": "https://baike.baidu.com/item/x/1"}))
    master.rpush(KEYS.dead, json.dumps({"reason": "http 404", "time": 1.0, "payload": "{}"}))
    master.lpush(KEYS.start_urls, "https://baike.baidu.com/item/y/2")
    assert "waiting for seeds" in scrapy(sentinels.url, "status")
    assert "http 404" in scrapy(sentinels.url, "deadletters")
    out = tmp_path / "items.jsonl"
    scrapy(sentinels.url, "export", "-o", str(out))
    assert len(out.read_text().splitlines()) == 1
    scrapy(sentinels.url, "reset", "--yes")
    assert master.hlen(KEYS.items) == 0 and master.llen(KEYS.dead) == 0


def test_a_demoted_master_answering_readonly_is_transient(sentinels) -> None:
    """A master turned replica (a failover while it lives) answers READONLY: the Sentinel
    client reconnects to the new master; for a plain client it is a REDIS_ERRORS error."""
    replica = sentinels.servers[1].client()
    with pytest.raises(REDIS_ERRORS):
        replica.set("x", "1")
    client = get_redis(Settings({"REDIS_URL": sentinels.url, "REDIS_PARAMS": {"socket_timeout": 2}}))
    client.set("x", "1")
    sentinels.sentinel_client().execute_command("SENTINEL", "FAILOVER", "baike-master")
    sentinels.wait_for_failover(sentinels.servers[0].port)
    deadline = time.monotonic() + 30
    while sentinels.servers[0].client().execute_command("ROLE")[0] != b"slave":
        assert time.monotonic() < deadline, "the old master was never turned into a replica"
        time.sleep(0.05)
    while True:
        try:
            client.set("x", "2")
            break
        except REDIS_ERRORS:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert master_address(client) == f"127.0.0.1:{sentinels.servers[1].port}"


def crawl_until(
    sentinels, replica_factory, node_factory, settled: int, url: str = "", *settings: str
) -> tuple[dict, Any, list]:
    """Start 2 nodes on a whole 300-entry crawl behind the Sentinels (``url``, or the set's own,
    and ``settings``); return once the ledger holds ``settled`` pages: (the answer key, a client
    of the master, the nodes)."""
    replica = replica_factory(300, 5, "--latency-ms", "15")
    answer = replica.answer_key(replica.start_url())
    master = sentinels.master.client()
    master.lpush(KEYS.start_urls, replica.start_url())
    nodes = [
        node_factory(url or sentinels.url, replica.url, "CLOSESPIDER_PAGECOUNT=0", FAST_REDIS, *LEASES, *settings)
        for _ in range(2)
    ]
    deadline = time.monotonic() + 60
    while pages(master) < settled:
        assert time.monotonic() < deadline, nodes[0].log[-3000:]
        time.sleep(0.01)
    return answer, master, nodes


def test_the_crawl_survives_a_failover_and_stores_every_entry_once(sentinels, replica_factory, node_factory) -> None:
    answer, _master, nodes = crawl_until(sentinels, replica_factory, node_factory, 60)
    killed_at = time.monotonic()
    _, promoted_after = kill_master(sentinels)
    for node in nodes:
        assert node.wait(timeout=120) == 0, node.log[-3000:]
        assert node.finish_reason == "finished"
        assert_failover_logged_once(node)
    print(
        f"\nSentinels promoted the replica {promoted_after:.1f} s after the kill;"
        f" nodes finished {time.monotonic() - killed_at:.1f} s after it"
    )
    new_master = redis.Redis(host="127.0.0.1", port=sentinels.master_port())
    assert_crawled_exactly(new_master, answer)
    snap, text = run_status(sentinels.url)
    assert snap["failover"]["count"] == 1
    assert snap["failover"]["last_to"] == f"127.0.0.1:{sentinels.master_port()}"
    assert snap["failover"]["last_time"] and abs(snap["failover"]["last_time"] - snap["time"]) < 120
    assert "1 failover(s)" in text
    print(
        f"pages downloaded again: {snap['failover']['redone']};"
        f" stale acks: {sum(node.stat('baike/leases/stale_acks') for node in nodes)}"
    )


def test_a_failover_during_the_last_pages_of_the_budget_overshoots_within_the_bound(
    sentinels, replica_factory, node_factory
) -> None:
    budget = 200
    replica = replica_factory(2000, 5, "--latency-ms", "15")
    master = sentinels.master.client()
    master.lpush(KEYS.start_urls, replica.start_url())
    settings = (
        f"CLOSESPIDER_PAGECOUNT={budget}",
        FAST_REDIS,
        *LEASES,
        "REDIS_WAIT_REPLICAS=1",
        "REDIS_WAIT_TIMEOUT=50",
        f"CONCURRENT_REQUESTS={CONCURRENCY}",
        f"SCHEDULER_BATCH_SIZE={BATCH}",
    )
    nodes = [node_factory(sentinels.url, replica.url, *settings) for _ in range(2)]
    deadline = time.monotonic() + 60
    while pages(master) < budget - 20:
        assert time.monotonic() < deadline, nodes[0].log[-3000:]
        time.sleep(0.005)
    kill_master(sentinels)
    for node in nodes:
        assert node.wait(timeout=120) == 0, node.log[-3000:]
        assert node.finish_reason == "closespider_pagecount"
        assert_failover_logged_once(node)
    new_master = redis.Redis(host="127.0.0.1", port=sentinels.master_port())
    assert int(new_master.hget(KEYS.budget, "pages")) == budget, "the ledger is whole"
    urls = stored_urls(new_master)
    assert len(urls) == len(set(urls))
    received = sum(count for status, count in replica.stats()["by_status"].items() if not status.startswith("3"))
    snap, text = run_status(sentinels.url)
    assert snap["failover"]["count"] == 1 and "1 failover(s)" in text
    overshoot = received - budget
    print(
        f"\nbudget {budget}: {received} pages downloaded, overshoot {overshoot},"
        f" reported as downloaded again: {snap['failover']['redone']}"
    )
    assert 0 <= overshoot <= len(nodes) * (CONCURRENCY + BATCH)
    assert snap["failover"]["redone"] <= len(nodes) * (CONCURRENCY + BATCH)


def test_nodes_follow_a_failover_over_tls_as_the_documented_acl_user(tmp_path, replica_factory, node_factory) -> None:
    """Servers, replication and Sentinels speak TLS only (client certificates required), the
    servers and the Sentinels want passwords, the nodes are docs/redis.md's baike-node: the
    master is killed mid-crawl, and the crawl ends with every entry stored once, no command
    refused on the new master and no password in any log."""
    tls = TlsFiles(tmp_path)
    secrets = {"servers": "servers-s3cr3t", "sentinels": "sentinels-s3cr3t", "baike-node": "node-s3cr3t"}
    group = SentinelSet(
        tmp_path / "sentinel", tls=tmp_path, password=secrets["servers"], sentinel_password=secrets["sentinels"]
    )
    with running(group):
        for server in group.servers:  # ACL users are not replicated: every server gets its own
            set_documented_user(server.client(), "baike-node", secrets["baike-node"])
            server.client().acl_log_reset()
        url = group.url.replace("://", f"://baike-node:{secrets['baike-node']}@", 1)
        assert url.startswith("rediss+sentinel://")
        tls_files = dict(setting.split("=", 1) for setting in tls.client_settings())
        no_retry = {"socket_timeout": 2, "retry": Retry(NoBackoff(), 0)}
        with pytest.raises(REDIS_ERRORS):  # the Sentinels want their own password
            get_redis(Settings({"REDIS_URL": url, "REDIS_PARAMS": no_retry, **tls_files})).ping()
        found = get_redis(Settings({"REDIS_URL": url, "REDIS_SENTINEL_PASSWORD": secrets["sentinels"], **tls_files}))
        assert found.ping() and master_address(found) == f"127.0.0.1:{group.master.port}"
        answer, _, nodes = crawl_until(
            group,
            replica_factory,
            node_factory,
            40,
            url,
            *tls.client_settings(),
            f"REDIS_SENTINEL_PASSWORD={secrets['sentinels']}",
        )
        kill_master(group)
        for node in nodes:
            assert node.wait(timeout=120) == 0, node.log[-3000:]
            assert node.finish_reason == "finished"
            assert_failover_logged_once(node)
            assert not any(secret in node.log for secret in secrets.values())
        new_master = next(server for server in group.servers if server.port == group.master_port()).client()
        assert_crawled_exactly(new_master, answer)
        assert new_master.acl_log() == []


def test_writes_a_failover_loses_are_redone_and_every_entry_is_stored_once(
    sentinels, replica_factory, node_factory
) -> None:
    """The replica is cut off (its link frozen) for a second of crawling before the master is
    killed: the new master lacks that second of leases, settlements, fingerprints and records.
    The crawl redoes it and ends as if nothing happened; status counts what was downloaded again."""
    answer, master, nodes = crawl_until(sentinels, replica_factory, node_factory, 40)
    deadline = time.monotonic() + 60
    link = FreezableLink(sentinels.master.port)
    follower = sentinels.servers[1].client()
    try:
        follower.replicaof("127.0.0.1", link.port)
        while follower.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        link.frozen.set()
        time.sleep(1.0)
        # what the old master settled minus what its replica holds, read while the link is still
        # frozen: a chunk the relay was already passing on when it froze is not lost
        settled = pages(master)
        old = stop_master(sentinels)
        lost = settled - pages(follower)
        sentinels.wait_for_failover(old)
    finally:
        link.close()
    assert lost > 0, "the master settled pages the replica never received"
    for node in nodes:
        assert node.wait(timeout=120) == 0, node.log[-3000:]
        assert node.finish_reason == "finished"
        assert_failover_logged_once(node)
    new_master = redis.Redis(host="127.0.0.1", port=sentinels.master_port())
    assert_crawled_exactly(new_master, answer)
    snap, _ = run_status(sentinels.url)
    assert snap["failover"]["count"] == 1
    print(
        f"\n{lost} settled pages lost with the old master; status: {snap['failover']['redone']} pages downloaded again"
    )
    assert snap["failover"]["redone"] >= lost
