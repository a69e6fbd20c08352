"""At-least-once crawling: nodes killed with SIGKILL, Redis restarted, hostile payloads."""

from __future__ import annotations

import http.server
import json
import pickle
import socket
import threading
import time

import pytest

from baike.frontier.queue import SEED_MARK
from baike.keys import CrawlKeys
from baike.settings import ITEM_PIPELINES
from tests.conftest import RedisServer, free_port

pytestmark = pytest.mark.e2e
KEYS = CrawlKeys.for_spider("baike")
FAST_LEASES = ("SCHEDULER_LEASE_SECONDS=2", "SCHEDULER_HEARTBEAT_INTERVAL=0.5")


def fingerprints(client, keys: CrawlKeys = KEYS) -> int:
    return sum(client.hlen(key) for key in client.scan_iter(match=f"{keys.dupefilter}:*", count=1000))


def queued_requests(client, keys: CrawlKeys = KEYS) -> int:
    """Requests in the frontier, counted entry by entry (a batch holds "\\n" before each)."""
    entries = [client.hget(keys.request_data, member) for member in client.zrange(keys.requests, 0, -1)]
    return sum(entry.count(b"\n") if entry.startswith(b"\n") else 1 for entry in entries if entry is not None)


def assert_accounting_whole(client, keys: CrawlKeys = KEYS) -> None:
    """Every request ever enqueued is settled, queued or leased; each fingerprint was
    enqueued once (seeds enter the ledger as seed entries, then as their requests) or
    marked seen once (another URL form of a stored page)."""
    ledger = {key.decode(): int(value) for key, value in client.hgetall(keys.budget).items()}
    queued, leased = queued_requests(client, keys), client.zcard(keys.leases)
    assert ledger["enqueued"] == ledger["settled"] + queued + leased, (ledger, queued, leased)
    assert fingerprints(client, keys) == (
        ledger["enqueued"] - ledger.get("seeds", 0) - ledger.get("revisits", 0) + ledger.get("marked", 0)
    )


def stored_urls(client, keys: CrawlKeys = KEYS) -> list[str]:
    return [key.decode() for key in client.hkeys(keys.items)]


def held_leases(client, node, keys: CrawlKeys = KEYS) -> tuple[int, int]:
    """``(leases, seed leases)`` the node's process holds in Redis right now."""
    prefix = f"{socket.gethostname()}:{node.process.pid}:".encode()
    held = [lease for lease, owner in client.hgetall(keys.lease_owners).items() if owner.startswith(prefix)]
    entries = client.hmget(keys.request_data, held) if held else []
    return len(held), sum(1 for entry in entries if entry and entry.startswith(SEED_MARK))


def kill_while_holding(client, node, ready, timeout: float = 60.0, keys: CrawlKeys = KEYS) -> tuple[int, int]:
    """SIGKILL ``node`` at the first moment Redis shows it holding what ``ready(leases,
    seed leases)`` asks for; returns what it still held after death, read from Redis:
    the proof that the kill hit work in flight."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held, seeds = held_leases(client, node, keys)
        if ready(held, seeds):
            node.kill()
            node.process.wait(timeout=10)
            return held_leases(client, node, keys)
        time.sleep(0.002)
    raise AssertionError("the victim never held the leases this test kills it with")


def pages(client, keys: CrawlKeys = KEYS) -> int:
    return int(client.hget(keys.budget, "pages") or 0)


def assert_crawled_exactly(client, answer: dict, keys: CrawlKeys = KEYS) -> None:
    urls = stored_urls(client, keys)
    assert len(urls) == len(set(urls))
    assert set(urls) == set(answer), "every reachable entry is stored, exactly once"
    assert client.zcard(keys.leases) == 0 and client.zcard(keys.requests) == 0
    assert client.llen(keys.dead) == 0
    assert_accounting_whole(client, keys)


@pytest.mark.parametrize("after_pages", [0, 40, 120, 200])
def test_a_node_killed_holding_leases_loses_nothing(
    redis_db, redis_server, replica_factory, node_factory, after_pages: int
) -> None:
    replica = replica_factory(300, 5, "--latency-ms", "15")
    answer = replica.answer_key(replica.start_url())
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    nodes = [node_factory(redis_server.url, replica.url, "CLOSESPIDER_PAGECOUNT=0", *FAST_LEASES) for _ in range(3)]
    held, _ = kill_while_holding(redis_db, nodes[0], lambda held, _: held and pages(redis_db) >= after_pages)
    assert held > 0, "the victim died holding leases"
    for node in nodes[1:]:
        assert node.wait(timeout=180) == 0, node.log[-3000:]
        assert node.finish_reason == "finished"
    assert_crawled_exactly(redis_db, answer)


def test_a_node_killed_holding_seeds_loses_none(redis_db, redis_server, replica_factory, node_factory) -> None:
    """Seeds live in the frontier from the moment they leave the seed list: a node that
    dies holding them leaves them leased, and they come back."""
    replica = replica_factory(300, 5, "--latency-ms", "15")
    answer = replica.answer_key(replica.start_url())
    redis_db.rpush(KEYS.start_urls, *sorted(answer))
    victim = node_factory(redis_server.url, replica.url, "CLOSESPIDER_PAGECOUNT=0", *FAST_LEASES)
    _, seeds = kill_while_holding(redis_db, victim, lambda held, seeds: seeds > 0)
    assert seeds > 0, "the victim died holding seeds it had taken"
    nodes = [node_factory(redis_server.url, replica.url, "CLOSESPIDER_PAGECOUNT=0", *FAST_LEASES) for _ in range(2)]
    for node in nodes:
        assert node.wait(timeout=180) == 0, node.log[-3000:]
        assert node.finish_reason == "finished"
    assert_crawled_exactly(redis_db, answer)


def test_budget_stays_exact_when_a_node_dies(redis_db, redis_server, replica_factory, node_factory) -> None:
    replica = replica_factory(2000, 5, "--latency-ms", "15")
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    nodes = [node_factory(redis_server.url, replica.url, "CLOSESPIDER_PAGECOUNT=400", *FAST_LEASES) for _ in range(3)]
    time.sleep(2.0)
    nodes[0].kill()
    for node in nodes[1:]:
        assert node.wait(timeout=180) == 0, node.log[-3000:]
        assert node.finish_reason == "closespider_pagecount"

    assert int(redis_db.hget(KEYS.budget, "pages")) == 400
    survivors = sum(node.stat("response_received_count") for node in nodes[1:])
    received = sum(count for status, count in replica.stats()["by_status"].items() if not status.startswith("3"))
    # the dead node's settled pages count in the budget; its unsettled in-flight downloads
    # (at most its concurrency plus one batch) were made up by the survivors
    assert 400 <= received <= 400 + 16 + 8
    assert survivors <= 400
    urls = stored_urls(redis_db)
    assert len(urls) == len(set(urls))
    assert_accounting_whole(redis_db)


def test_redis_restart_mid_crawl(tmp_path, replica_factory, node_factory) -> None:
    server = RedisServer(port=free_port(), directory=tmp_path, extra=("--appendonly", "yes", "--appendfsync", "always"))
    server.start()
    try:
        client = server.client()
        replica = replica_factory(300, 9, "--latency-ms", "20")
        answer = replica.answer_key(replica.start_url())
        client.lpush(KEYS.start_urls, replica.start_url())
        nodes = [node_factory(server.url, replica.url, "CLOSESPIDER_PAGECOUNT=0", *FAST_LEASES) for _ in range(2)]
        # Redis goes away mid-crawl: once both nodes have joined and pages are settled, however
        # long the nodes took to start (not after a fixed time, which a loaded machine outlasts)
        deadline = time.monotonic() + 60
        while client.hlen(KEYS.nodes) < 2 or pages(client) < 20:
            assert time.monotonic() < deadline, nodes[0].log[-3000:]
            time.sleep(0.05)
        server.stop()
        time.sleep(2.0)
        server.start()
        for node in nodes:
            assert node.wait(timeout=240) == 0, node.log[-3000:]
            assert node.finish_reason == "finished"
            assert "Lost Redis" in node.log and "Redis is back" in node.log
            assert node.log.count("Traceback") <= 2, "no traceback storm"
        urls = stored_urls(client)
        assert sorted(urls) == sorted(set(urls)) and set(urls) == set(answer)
    finally:
        server.stop()


ENTRY = "https://baike.baidu.com/item/x/1"
# Each kind of payload someone with write access to Redis could plant, with the reason
# it is dead-lettered for (a JSON object is refused as a seed too: seeds take no such fields).
HOSTILE = [
    (json.dumps({"url": ENTRY, "_class": "this.x"}).encode(), "unknown fields _class"),
    (json.dumps({"url": ENTRY, "_class": "nosuchmodule.X"}).encode(), "unknown fields _class"),
    (json.dumps({"url": ENTRY, "surprise": 1}).encode(), "unknown fields surprise"),
    (json.dumps({"url": ENTRY, "meta": {"proxy": "http://evil.example"}}).encode(), "meta key 'proxy' is not allowed"),
    (json.dumps({"url": ENTRY, "priority": "high"}).encode(), "priority"),
    (json.dumps({"url": ["not", "a", "string"]}).encode(), "url"),
    (json.dumps({"url": "https://evil.example/item/x/1"}).encode(), "not a"),
    (json.dumps({"url": ENTRY, "callback": "__init__"}).encode(), "__init__"),
    (b"https://baike.baidu.com/item/" + b"x" * (10 * 1024 * 1024), ""),
    (b"\x00\xff\xfe garbage bytes", ""),
    (pickle.dumps({"url": ENTRY}), ""),
]
# what `import this` prints: no node may ever import a module a payload names
ZEN = "Beautiful is better than ugly"


def test_hostile_payloads_are_dead_lettered_while_nodes_crawl(
    redis_db, redis_server, replica_factory, node_factory
) -> None:
    replica = replica_factory(300, 13, "--latency-ms", "10")
    answer = replica.answer_key(replica.start_url())
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    nodes = [node_factory(redis_server.url, replica.url, "CLOSESPIDER_PAGECOUNT=0") for _ in range(2)]
    time.sleep(1.5)
    # planted ahead of everything, in the middle of good requests' batches
    for number, (payload, _) in enumerate(HOSTILE):
        redis_db.hset(KEYS.request_data, f"hostile{number}", payload)
        redis_db.zadd(KEYS.requests, {f"hostile{number}": -1e13})
        redis_db.rpush(KEYS.start_urls, payload)
    redis_db.rpush(KEYS.start_urls, b"{not json", b'{"url": 5}', b"https://example.com/item/x", b"not a url")
    for node in nodes:
        assert node.wait(timeout=180) == 0, node.log[-3000:]
        assert node.finish_reason == "finished", "a poisoned frontier never stops the end of the crawl"

    assert set(stored_urls(redis_db)) == set(answer), "every other entry is stored"
    for node in nodes:
        output = node.log + node.log_path.with_suffix(".err").read_text(errors="replace")
        assert ZEN not in output, "a node imported a module named by a payload"
        assert "Traceback" not in output
    dead = [json.loads(raw) for raw in redis_db.lrange(KEYS.dead, 0, -1)]
    rejected = [record["reason"] for record in dead if record["reason"].startswith("rejected payload")]
    bad_seeds = [record["reason"] for record in dead if record["reason"].startswith("bad seed")]
    assert len(rejected) == len(HOSTILE) and len(bad_seeds) == len(HOSTILE) + 4
    for _, reason in HOSTILE:
        assert any(reason in text for text in rejected), (reason, rejected)
    assert sum(node.stat("baike/frontier/rejected") for node in nodes) == len(HOSTILE)
    assert sum(node.stat("baike/seeds/rejected") for node in nodes) == len(HOSTILE) + 4
    assert all(len(json.dumps(record)) < 4096 for record in dead), "dead letters keep a bounded excerpt"
    assert redis_db.zcard(KEYS.leases) == 0 and redis_db.zcard(KEYS.requests) == 0


WIDE_LINKS = 500
PAGE_HTML = """<html><head><title>{title}_百度百科</title></head><body>
<dd class="lemmaWgt-lemmaTitle-title"><h1>{title}</h1></dd>
<div class="lemma-summary"><div class="para">{title} is a page.</div></div>
{links}<script>lemmaId:"{lemma}"</script></body></html>"""


class WideSite(http.server.BaseHTTPRequestHandler):
    """One hub entry linking 500 leaf entries; leaves answer slowly, so they are still in
    flight when the hub's lease is settled."""

    def do_GET(self) -> None:
        if self.path == "/item/hub/1":
            links = "".join(f'<a href="/item/leaf{n}/{n}">leaf {n}</a>' for n in range(2, WIDE_LINKS + 2))
            body = PAGE_HTML.format(title="hub", links=links, lemma=1)
        elif self.path.startswith("/item/leaf"):
            time.sleep(0.2)
            lemma = self.path.rsplit("/", 1)[1]
            body = PAGE_HTML.format(title=f"leaf {lemma}", links="", lemma=lemma)
        else:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def wide_site():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), WideSite)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_node_killed_right_after_a_wide_page_is_settled_loses_no_link(
    redis_db, redis_server, wide_site, node_factory
) -> None:
    """The hub's item is dropped at once and its 500 links queue up in Scrapy behind it:
    its lease settles only once every link is in the scheduler, and the same flush stores them."""
    pipelines = json.dumps({"tests.frontier_helpers.DropHubPipeline": 50, **ITEM_PIPELINES})
    redis_db.lpush(KEYS.start_urls, "https://baike.baidu.com/item/hub/1")
    victim = node_factory(
        redis_server.url, wide_site, "CLOSESPIDER_PAGECOUNT=0", f"ITEM_PIPELINES={pipelines}", *FAST_LEASES
    )
    deadline = time.monotonic() + 60
    while int(redis_db.hget(KEYS.budget, "settled") or 0) < 2:  # the seed, then the hub
        assert time.monotonic() < deadline, victim.log[-3000:]
        time.sleep(0.001)
    victim.kill()
    victim.process.wait(timeout=10)
    links = {f"https://baike.baidu.com/item/leaf{n}/{n}" for n in range(2, WIDE_LINKS + 2)}
    assert fingerprints(redis_db) == WIDE_LINKS + 1, "the hub settled with every link stored"
    assert queued_requests(redis_db) + redis_db.zcard(KEYS.leases) == WIDE_LINKS
    survivor = node_factory(redis_server.url, wide_site, "CLOSESPIDER_PAGECOUNT=0", *FAST_LEASES)
    assert survivor.wait(timeout=180) == 0, survivor.log[-3000:]
    assert set(stored_urls(redis_db)) == links, "every link was crawled; the hub's item was dropped"
    assert_accounting_whole(redis_db)
