"""`scrapy reset` and `scrapy deadletters`, run as real commands against the suite's Redis."""

from __future__ import annotations

import json
import subprocess
import sys

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
        cwd=ROOT, input="n\n", capture_output=True, text=True, timeout=60,
    )
    assert "Nothing deleted" in result.stdout
    assert redis_db.exists(KEYS.items)


def test_reset_on_unreachable_redis_is_one_line(redis_server) -> None:
    result = scrapy("redis://127.0.0.1:1/0", "reset", "--yes")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("reset failed:") and "Traceback" not in result.stderr


def test_deadletters_lists_and_requeues(redis_db, redis_server) -> None:
    payload = serializer.dumps(Request("https://baike.baidu.com/item/x/1", meta={"baike_captcha_attempts": 4}).to_dict())
    redis_db.rpush(KEYS.dead, json.dumps({"reason": "HTTP 503 after retries", "time": 1.0, "payload": json.loads(payload)}))
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
