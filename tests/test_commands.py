"""`scrapy reset` and `scrapy deadletters`, run as real commands against the suite's Redis."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
from scrapy import Request

from baike.frontier import serializer
from baike.keys import CrawlKeys
from tests.conftest import ROOT

KEYS = CrawlKeys.for_spider("baike")


def scrapy(redis_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scrapy", *args, "-s", f"REDIS_URL={redis_url}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_reset_deletes_the_crawl_but_keeps_seeds_and_other_keys(redis_db, redis_server) -> None:
    for key in (KEYS.requests, KEYS.leases):
        redis_db.zadd(key, {"1": 1})
    redis_db.hset(f"{KEYS.dupefilter}:00ff", b"abc", b"")
    redis_db.hset("baike:bloom", "hashes", 10)
    redis_db.set("baike:bloom:0", b"\x01")
    redis_db.hset(KEYS.items, "u", "{}")
    redis_db.hset(KEYS.budget, "pages", 5)
    redis_db.lpush(KEYS.start_urls, "https://baike.baidu.com/item/x")
    redis_db.set("otherproject:key", "keep")

    kept_items = scrapy(redis_server.url, "reset", "--yes", "--keep-items")
    assert kept_items.returncode == 0, kept_items.stderr
    assert redis_db.exists(KEYS.items) and not redis_db.exists(KEYS.requests, KEYS.leases, KEYS.budget)
    assert not list(redis_db.scan_iter(match=f"{KEYS.dupefilter}:*"))
    assert not redis_db.exists("baike:bloom", "baike:bloom:0")

    assert scrapy(redis_server.url, "reset", "--yes").returncode == 0
    assert not redis_db.exists(KEYS.items)
    assert redis_db.llen(KEYS.start_urls) == 1 and redis_db.get("otherproject:key") == b"keep"


def test_reset_asks_before_deleting(redis_db, redis_server) -> None:
    redis_db.hset(KEYS.items, "u", "{}")
    result = subprocess.run(
        [sys.executable, "-m", "scrapy", "reset", "-s", f"REDIS_URL={redis_server.url}"],
        cwd=ROOT,
        input="n\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Nothing deleted" in result.stdout
    assert redis_db.exists(KEYS.items)


def test_reset_on_unreachable_redis_is_one_line(redis_server) -> None:
    result = scrapy("redis://127.0.0.1:1/0", "reset", "--yes")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("reset failed:") and "Traceback" not in result.stderr


def test_deadletters_lists_and_requeues(redis_db, redis_server) -> None:
    payload = serializer.dumps(
        Request("https://baike.baidu.com/item/x/1", meta={"baike_captcha_attempts": 4}).to_dict()
    )
    redis_db.rpush(
        KEYS.dead, json.dumps({"reason": "HTTP 503 after retries", "time": 1.0, "payload": json.loads(payload)})
    )
    redis_db.rpush(KEYS.dead, json.dumps({"reason": "bad seed: not UTF-8", "time": 2.0, "raw": "\ufffd"}))
    redis_db.rpush(KEYS.dead, b"\xff not json")

    listing = scrapy(redis_server.url, "deadletters")
    assert listing.returncode == 0, listing.stderr
    assert "HTTP 503 after retries  https://baike.baidu.com/item/x/1" in listing.stdout
    assert "3 dead letters" in listing.stdout

    requeue = scrapy(redis_server.url, "deadletters", "--requeue")
    assert "Requeued 1 requests" in requeue.stdout and "kept 2" in requeue.stdout
    assert redis_db.llen(KEYS.dead) == 2
    (request_id,) = redis_db.zrange(KEYS.requests, 0, -1)
    requeued = serializer.loads(redis_db.hget(KEYS.request_data, request_id))
    assert requeued["url"] == "https://baike.baidu.com/item/x/1"
    assert requeued["meta"] == {}, "a requeued request starts its retries afresh"


# -- reset refuses while nodes are alive ---------------------------------------------------


def add_node(client, node: str, seen: float, finished: float | None = None) -> None:
    record = {
        "node": node,
        "host": node.split(":")[0],
        "pid": 1,
        "started": seen - 10,
        "seen": seen,
        "pages": 1,
        "items": 1,
        "errors": 0,
        "pages_per_min": 6.0,
        "finished": finished,
        "reason": "finished" if finished else None,
        "interval": 2.0,
    }
    client.hset(KEYS.nodes, node, json.dumps(record))


def test_reset_refuses_while_a_node_is_alive_and_force_overrides(redis_db, redis_server) -> None:
    now = time.time()
    add_node(redis_db, "hosta:1:live", seen=now)
    add_node(redis_db, "hostb:2:lost", seen=now - 3600)
    add_node(redis_db, "hostc:3:done", seen=now - 5, finished=now - 5)
    redis_db.hset(KEYS.items, "u", "{}")

    refused = scrapy(redis_server.url, "reset", "--yes")
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("reset failed: ") and "hosta:1:live" in line and "--force" in line
    assert "hostb:2:lost" not in line and "hostc:3:done" not in line, "only live nodes block a reset"
    assert redis_db.exists(KEYS.items, KEYS.nodes) == 2, "nothing is deleted"

    forced = scrapy(redis_server.url, "reset", "--yes", "--force")
    assert forced.returncode == 0, forced.stderr
    assert not redis_db.exists(KEYS.items, KEYS.nodes)


def test_reset_goes_ahead_when_every_node_is_lost_or_stopped(redis_db, redis_server) -> None:
    now = time.time()
    add_node(redis_db, "hostb:2:lost", seen=now - 3600)
    add_node(redis_db, "hostc:3:done", seen=now - 5, finished=now - 5)
    redis_db.hset(KEYS.nodes, "garbage", b"\xff not json")
    result = scrapy(redis_server.url, "reset", "--yes")
    assert result.returncode == 0, result.stderr
    assert not redis_db.exists(KEYS.nodes)


# -- deadletters --requeue is one atomic step per letter -----------------------------------


def dead_letter(url: str, priority: int = 0) -> bytes:
    payload = json.loads(serializer.dumps(Request(url, priority=priority).to_dict()))
    return json.dumps({"reason": "HTTP 503 after retries", "time": 1.0, "payload": payload}).encode()


def test_requeue_script_enqueues_a_letter_once_and_keeps_the_ledger(redis_db) -> None:
    from baike.commands.deadletters import requeue_letter

    redis_db.set(KEYS.request_seq, 41)
    raw = dead_letter("https://baike.baidu.com/item/x/1", priority=3)
    other = dead_letter("https://baike.baidu.com/item/y/2")
    redis_db.rpush(KEYS.dead, raw, other)
    payload = serializer.dumps(json.loads(raw)["payload"])

    assert requeue_letter(redis_db, KEYS, raw, payload, 3) is True
    assert requeue_letter(redis_db, KEYS, raw, payload, 3) is False, "a letter already taken is not enqueued again"
    assert redis_db.lrange(KEYS.dead, 0, -1) == [other]
    assert redis_db.zrange(KEYS.requests, 0, -1, withscores=True) == [(b"42", -3 * 2**32 + 42)]
    assert redis_db.hgetall(KEYS.request_data) == {b"42": payload.encode()}
    assert redis_db.hget(KEYS.budget, "enqueued") == b"1"
    assert redis_db.get(KEYS.request_seq) == b"42"


@pytest.mark.parametrize("foreign", ["requests is a string", "request_seq is no integer", "enqueued is no integer"])
def test_requeue_keeps_the_letter_when_the_frontier_cannot_take_it(redis_db, redis_server, foreign: str) -> None:
    raw = dead_letter("https://baike.baidu.com/item/x/1")
    redis_db.rpush(KEYS.dead, raw)
    if foreign == "requests is a string":
        redis_db.set(KEYS.requests, "someone else's string")
    elif foreign == "request_seq is no integer":
        redis_db.set(KEYS.request_seq, "12abc")
    else:
        redis_db.hset(KEYS.budget, "enqueued", "1.5")
    result = scrapy(redis_server.url, "deadletters", "--requeue")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert redis_db.lrange(KEYS.dead, 0, -1) == [raw], "a failed requeue loses no letter"
    assert not redis_db.exists(KEYS.request_data), "nothing is enqueued either"
    assert redis_db.type(KEYS.requests) in (b"none", b"string")


def test_concurrent_requeues_enqueue_each_letter_once(redis_db, redis_server) -> None:
    count = 300
    letters = [dead_letter(f"https://baike.baidu.com/item/e{n}/{n + 1}") for n in range(count)]
    letters.append(json.dumps({"reason": "bad seed", "time": 2.0, "raw": "x"}).encode())
    redis_db.rpush(KEYS.dead, *letters)
    command = [sys.executable, "-m", "scrapy", "deadletters", "--requeue", "-s", f"REDIS_URL={redis_server.url}"]
    runs = [
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    requeued = [int(re.search(r"Requeued (\d+)", out).group(1)) for out, _ in outputs]
    assert sum(requeued) == count
    assert redis_db.lrange(KEYS.dead, 0, -1) == letters[-1:]
    urls = sorted(json.loads(payload)["url"] for payload in redis_db.hvals(KEYS.request_data))
    assert urls == sorted(f"https://baike.baidu.com/item/e{n}/{n + 1}" for n in range(count)), "each letter once"
    assert redis_db.zcard(KEYS.requests) == count and redis_db.hget(KEYS.budget, "enqueued") == str(count).encode()


def test_deadletters_lists_letters_of_any_shape(redis_db, redis_server) -> None:
    odd = [
        {"reason": "r", "time": "not a time", "payload": {"url": "https://baike.baidu.com/item/a/1"}},
        {"reason": ["a", "list"], "time": 1e300, "payload": "not an object"},
        {"time": -1e20, "payload": {"url": ["not", "a", "string"]}},
        {"reason": "\x1b[2Jclear", "time": None, "raw": 42},
    ]
    redis_db.rpush(KEYS.dead, *(json.dumps(record) for record in odd), b"NaN", b"[" * 100_000)
    listing = scrapy(redis_server.url, "deadletters")
    assert listing.returncode == 0, listing.stderr
    assert "6 dead letters" in listing.stdout and "\x1b" not in listing.stdout
    assert "https://baike.baidu.com/item/a/1" in listing.stdout
    as_json = scrapy(redis_server.url, "deadletters", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert len(as_json.stdout.splitlines()) == 6
