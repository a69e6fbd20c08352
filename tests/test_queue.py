"""The leased frontier queue and its Lua scripts, on a real redis-server."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
import time

import pytest
import redis
from scrapy import Request

from baike.frontier.queue import ENTRY_MAX_REQUESTS, LEASE_META_KEY, Answers, LeasedQueue, PayloadError, split_handle
from baike.keys import CrawlKeys
from tests.frontier_helpers import FrontierSpider, make_crawler

KEYS = CrawlKeys.for_spider("baike")


def entry(n: int) -> str:
    return f"https://baike.baidu.com/item/entry{n}/{n}"


@pytest.fixture()
def queue(redis_db, redis_server) -> LeasedQueue:
    crawler = make_crawler(redis_server.url)
    return LeasedQueue(redis_db, crawler.spider, KEYS.requests)


def field(url: str) -> bytes:
    return hashlib.sha1(url.encode()).digest()[:5]


def push(queue: LeasedQueue, *requests: Request, node: str = "n1", acks=()) -> tuple[int, int]:
    pushes = [(f"{KEYS.dupefilter}:00", field(r.url), r.priority, queue.encode(r)) for r in requests]
    return queue.push_and_ack(node, pushes, list(acks))[:2]


def test_push_filters_duplicates_in_the_same_round_trip(queue: LeasedQueue) -> None:
    assert push(queue, Request(entry(1)), Request(entry(2)), Request(entry(1))) == (2, 1)
    assert push(queue, Request(entry(2))) == (0, 1)
    assert len(queue) == 2


def test_push_names_the_requests_it_filtered_only_when_asked(queue: LeasedQueue) -> None:
    """For DUPEFILTER_DEBUG: the indices (in the pushes given) of the requests Redis filtered,
    across priority groups and within one call."""
    push(queue, Request(entry(1)))
    requests = [Request(entry(2), priority=1), Request(entry(1)), Request(entry(2), priority=1), Request(entry(3))]
    pushes = [(f"{KEYS.dupefilter}:00", field(r.url), r.priority, queue.encode(r)) for r in requests]
    assert queue.push_and_ack("n1", pushes[:2], []).duplicates == ()
    pushed = queue.push_and_ack("n1", pushes, [], list_filtered=True)
    assert sorted(pushed.duplicates) == [0, 1, 2] and pushed.added == 1


def test_priority_first_then_first_in_first_out(queue: LeasedQueue) -> None:
    push(queue, *(Request(entry(n)) for n in (5, 3, 9)), Request(entry(7), priority=2), Request(entry(1), priority=-1))
    taken = queue.take("n1", 10, 30)
    assert [r.url for _, r in taken.requests] == [entry(n) for n in (7, 5, 3, 9, 1)]


def test_take_leases_and_ack_settles(queue: LeasedQueue, redis_db) -> None:
    push(queue, Request(entry(1)), Request(entry(2)))
    taken = queue.take("n1", 1, 30)
    ((request_id, request),) = taken.requests
    assert request.meta[LEASE_META_KEY] == request_id
    assert redis_db.zcard(KEYS.leases) == 1 and len(queue) == 1
    child = Request(entry(3))
    assert push(queue, child, acks=[(request_id, True, "")]) == (1, 0)
    assert redis_db.zcard(KEYS.leases) == 0
    assert not redis_db.hexists(KEYS.request_data, split_handle(request_id)[0])
    assert redis_db.hgetall(KEYS.budget) == {b"reserved": b"1", b"pages": b"1", b"enqueued": b"3", b"settled": b"1"}


def test_ack_of_a_lease_owned_by_another_node_is_ignored(queue: LeasedQueue, redis_db) -> None:
    push(queue, Request(entry(1)))
    ((request_id, _),) = queue.take("n1", 1, 30).requests
    queue.push_and_ack("n2", [], [(request_id, False, "")])
    assert redis_db.zcard(KEYS.leases) == 1


def test_expired_leases_return_to_the_frontier_with_their_priority(queue: LeasedQueue, redis_db) -> None:
    push(queue, Request(entry(1), priority=5), Request(entry(2)))
    ((_request_id, _),) = queue.take("dead-node", 1, 0.05).requests
    time.sleep(0.1)
    taken = queue.take("n2", 1, 30)
    assert taken.reclaimed == 1
    assert [r.url for _, r in taken.requests] == [entry(1)]
    assert redis_db.hget(KEYS.budget, "reserved") == b"1"


def test_heartbeat_keeps_a_lease_alive(queue: LeasedQueue, redis_db) -> None:
    push(queue, Request(entry(1)))
    ((request_id, _),) = queue.take("n1", 1, 0.3).requests
    assert queue.heartbeat("n2", [request_id], 30) == [request_id], "not n2's lease"
    assert queue.heartbeat("n1", [request_id], 30) == []
    time.sleep(0.4)
    assert queue.take("n2", 1, 30).reclaimed == 0


def test_release_hands_back_untouched_requests_and_budget(queue: LeasedQueue, redis_db) -> None:
    push(queue, *(Request(entry(n)) for n in range(1, 4)))
    ids = [request_id for request_id, _ in queue.take("n1", 3, 30, budget=10).requests]
    assert queue.release("n2", ids) == 0
    assert queue.release("n1", ids) == 3
    assert len(queue) == 3 and redis_db.hget(KEYS.budget, "reserved") == b"0"
    assert [r.url for _, r in queue.take("n1", 3, 30).requests] == [entry(n) for n in range(1, 4)]


def test_budget_caps_what_is_leased_across_nodes(queue: LeasedQueue) -> None:
    push(queue, *(Request(entry(n)) for n in range(1, 11)))
    first = queue.take("n1", 4, 30, budget=5)
    second = queue.take("n2", 4, 30, budget=5)
    third = queue.take("n3", 4, 30, budget=5)
    assert (len(first.requests), len(second.requests), len(third.requests)) == (4, 1, 0)
    assert third.budget_left == 0
    # a lease settled without a page hands its unit back
    request_id = second.requests[0][0]
    queue.push_and_ack("n2", [], [(request_id, False, "")])
    assert len(queue.take("n3", 4, 30, budget=5).requests) == 1


def test_dead_letter_keeps_payload_and_reason(queue: LeasedQueue, redis_db) -> None:
    push(queue, Request(entry(1)))
    ((request_id, _),) = queue.take("n1", 1, 30).requests
    queue.push_and_ack("n1", [], [(request_id, True, "HTTP 503 after retries")])
    (record,) = [json.loads(raw) for raw in redis_db.lrange(KEYS.dead, 0, -1)]
    assert record["reason"] == "HTTP 503 after retries"
    assert record["payload"]["url"] == entry(1)
    assert redis_db.hget(KEYS.budget, "pages") == b"1"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x80\x04\x95garbage-pickle", "not a JSON payload"),
        (b"cos\nsystem\n(S'echo pwned'\ntR.", "not a JSON payload"),
        (b'["url"]', "not a request object"),
        (b'{"url": 5}', "not a request object"),
        (b'{"url": "https://evil.example/item/x/1"}', "not a canonical Baike entry URL"),
        (b'{"url": "https://baike.baidu.com/item/x/1", "callback": "close"}', "callback"),
        (b'{"url": "https://baike.baidu.com/item/x/1", "method": "POST"}', "only GET"),
        (b"x" * (10 * 1024 * 1024), "exceeds"),
    ],
)
def test_hostile_payloads_are_dead_lettered_never_executed(
    queue: LeasedQueue, redis_db, payload: bytes, reason: str
) -> None:
    redis_db.hset(KEYS.request_data, "666", payload)
    redis_db.zadd(KEYS.requests, {"666": 0})
    push(queue, Request(entry(1)))
    taken = queue.take("n1", 5, 30)
    assert len(taken.rejected) == 1
    assert [r.url for _, r in taken.requests] == [entry(1)]
    (record,) = [json.loads(raw) for raw in redis_db.lrange(KEYS.dead, 0, -1)]
    assert reason in record["reason"]
    assert not redis_db.hexists(KEYS.request_data, "666")
    assert redis_db.hget(KEYS.budget, "reserved") == b"1"


def test_encode_refuses_non_entries(queue: LeasedQueue) -> None:
    with pytest.raises(PayloadError):
        queue.encode(Request("https://baike.baidu.com/help"))


def test_encode_keeps_canonical_url_and_durable_meta(queue: LeasedQueue) -> None:
    request = Request(
        "https://baike.baidu.com/item/x/1?fr=aladdin", meta={LEASE_META_KEY: "9", "depth": 3, "_private": 1}
    )
    decoded = queue.decode(queue.encode(request).encode())
    assert decoded.url == "https://baike.baidu.com/item/x/1"
    assert decoded.meta == {"depth": 3}


# -- batched entries ----------------------------------------------------------------------


def test_one_flush_at_one_priority_is_one_entry(queue: LeasedQueue, redis_db) -> None:
    push(queue, *(Request(entry(n)) for n in range(1, 11)), Request(entry(11), priority=3))
    assert redis_db.zcard(KEYS.requests) == 2
    assert len(queue) == 11
    assert [r.url for _, r in queue.take("n1", 11, 30).requests] == [entry(n) for n in (11, *range(1, 11))]


def test_a_batch_is_split_and_its_rest_keeps_its_place(queue: LeasedQueue, redis_db) -> None:
    push(queue, *(Request(entry(n)) for n in range(1, 6)))
    push(queue, Request(entry(6)))
    first = queue.take("n1", 2, 30)
    assert [r.url for _, r in first.requests] == [entry(1), entry(2)]
    assert len({request_id for request_id, _ in first.requests}) == 2
    assert len(queue) == 4 and redis_db.zcard(KEYS.leases) == 2
    assert [r.url for _, r in queue.take("n2", 10, 30).requests] == [entry(n) for n in range(3, 7)]


def test_requests_split_from_a_batch_are_settled_reclaimed_and_released_one_by_one(
    queue: LeasedQueue, redis_db
) -> None:
    push(queue, *(Request(entry(n)) for n in range(1, 5)))
    push(queue, Request(entry(5)))
    (settled_id, _), (_lost_id, _), (kept_id, _) = queue.take("n1", 3, 0.05).requests
    assert push(queue, acks=[(settled_id, True, "")]) == (0, 0)
    assert queue.release("n1", [kept_id]) == 1
    time.sleep(0.1)
    taken = queue.take("n2", 10, 30)
    assert taken.reclaimed == 1
    # both back with their batch's score: ahead of the request pushed after the batch
    urls = [r.url for _, r in taken.requests]
    assert sorted(urls[:3]) == [entry(2), entry(3), entry(4)] and urls[3] == entry(5)
    assert not redis_db.hexists(KEYS.request_data, split_handle(settled_id)[0])


def test_the_budget_cuts_a_batch(queue: LeasedQueue) -> None:
    push(queue, *(Request(entry(n)) for n in range(1, 11)))
    assert len(queue.take("n1", 8, 30, budget=3).requests) == 3
    assert len(queue.take("n2", 8, 30, budget=3).requests) == 0
    assert len(queue) == 7


def test_a_hostile_batch_loses_only_its_bad_parts(queue: LeasedQueue, redis_db) -> None:
    good = queue.encode(Request(entry(1))).encode()
    redis_db.hset(KEYS.request_data, "666", b"\ncos\nsystem\n" + good)
    redis_db.zadd(KEYS.requests, {"666": 0})
    taken = queue.take("n1", 5, 30)
    assert len(taken.rejected) == 2
    assert [r.url for _, r in taken.requests] == [entry(1)]
    assert redis_db.llen(KEYS.dead) == 2 and redis_db.zcard(KEYS.requests) == 0


def test_payloads_never_hold_the_batch_separator(queue: LeasedQueue) -> None:
    request = Request(entry(1), meta={"redirect_urls": ["two\nlines", "\t"], "redirect_reasons": ["\r\n"]})
    assert "\n" not in queue.encode(request)


def test_only_the_new_requests_of_a_group_are_kept(queue: LeasedQueue, redis_db) -> None:
    push(queue, Request(entry(2)), Request(entry(4)))
    assert push(queue, *(Request(entry(n)) for n in range(1, 6))) == (3, 2)
    assert [r.url for _, r in queue.take("n1", 10, 30).requests] == [entry(n) for n in (2, 4, 1, 3, 5)]


def test_fingerprints_of_different_widths_are_refused(queue: LeasedQueue) -> None:
    pushes = [(f"{KEYS.dupefilter}:00", width * b"x", 0, queue.encode(Request(entry(width)))) for width in (5, 8)]
    with pytest.raises(ValueError, match="different widths"):
        queue.push_and_ack("n1", pushes, [])


def test_a_large_push_is_cut_into_bounded_entries(queue: LeasedQueue, redis_db) -> None:
    count = 2 * ENTRY_MAX_REQUESTS + 1
    assert push(queue, *(Request(entry(n)) for n in range(1, count + 1))) == (count, 0)
    assert redis_db.zcard(KEYS.requests) == 3
    assert [r.url for _, r in queue.take("n1", count, 30).requests] == [entry(n) for n in range(1, count + 1)]


# -- the request schema: nothing from Redis is executed -------------------------------------

WELL_FORMED = {"url": "https://baike.baidu.com/item/x/1"}


def with_fields(**fields) -> bytes:
    return json.dumps({**WELL_FORMED, **fields}).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (with_fields(_class="this.x"), "unknown fields _class"),
        (with_fields(_class="nosuchmodule.X"), "unknown fields _class"),
        (with_fields(_class="scrapy.http.request.form.FormRequest"), "unknown fields _class"),
        (with_fields(surprise=1), "unknown fields surprise"),
        (with_fields(meta={"proxy": "http://evil.example:8080"}), "meta key 'proxy' is not allowed"),
        (with_fields(meta={"depth": "deep"}), "meta key 'depth' has a value of the wrong type"),
        (with_fields(meta=[1, 2]), "meta must be an object"),
        (with_fields(priority="high"), "priority must be an integer"),
        (with_fields(priority=10**30), "priority must be an integer"),
        (with_fields(priority=True), "priority must be an integer"),
        (with_fields(dont_filter="yes"), "dont_filter must be true or false"),
        (with_fields(callback=["parse"]), "callback"),
        (with_fields(callback="start"), "callback"),
        (with_fields(errback="__init__"), "errback"),
        (with_fields(headers={"Cookie": ["x"]}), "header 'Cookie' is not allowed"),
        (with_fields(headers={"Referer": ["a", "b"]}), "header 'Referer' must hold one value"),
        (with_fields(cookies={"a": "b"}), "'cookies' must be empty"),
        (with_fields(cb_kwargs={"a": 1}), "'cb_kwargs' must be empty"),
        (with_fields(flags="abc"), "flags must be a list"),
        (with_fields(encoding="latin-1"), "encoding must be utf-8"),
        (b"[" * 50_000 + b"]" * 50_000, "exceeds"),
        (b"[" * 30_000 + b"]" * 30_000, "not a JSON payload"),
    ],
)
def test_payloads_outside_the_schema_are_refused(queue: LeasedQueue, payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=re.escape(reason)):
        queue.decode(payload)


def test_a_class_named_by_a_payload_is_never_imported(queue: LeasedQueue, redis_db) -> None:
    sys.modules.pop("this", None)
    sys.modules.pop("antigravity", None)
    for number, name in enumerate(("this.x", "antigravity.fly", "nosuchmodule.X")):
        redis_db.hset(KEYS.request_data, f"66{number}", with_fields(_class=name))
        redis_db.zadd(KEYS.requests, {f"66{number}": 0})
    taken = queue.take("n1", 5, 30)
    assert len(taken.rejected) == 3 and not taken.requests
    assert "this" not in sys.modules and "antigravity" not in sys.modules
    assert redis_db.llen(KEYS.dead) == 3 and redis_db.zcard(KEYS.leases) == 0


def test_one_bad_payload_costs_only_itself(queue: LeasedQueue, redis_db, monkeypatch) -> None:
    """Whatever a payload makes decoding raise, the rest of its batch is leased."""
    push(queue, *(Request(entry(n)) for n in range(1, 17)))
    real = queue.decode

    def flaky(payload: bytes):
        if b"entry7/" in payload:
            raise ModuleNotFoundError("No module named 'nosuchmodule'")
        return real(payload)

    monkeypatch.setattr(queue, "decode", flaky)
    taken = queue.take("n1", 16, 30)
    assert len(taken.requests) == 15
    assert taken.rejected == ["rejected payload: No module named 'nosuchmodule'"]
    assert redis_db.zcard(KEYS.leases) == 15 and redis_db.llen(KEYS.dead) == 1
    ledger = redis_db.hgetall(KEYS.budget)
    assert int(ledger[b"enqueued"]) == int(ledger[b"settled"]) + 15


def test_extra_meta_keys_travel_when_allowed(redis_db, redis_server) -> None:
    crawler = make_crawler(redis_server.url, SCHEDULER_EXTRA_META_KEYS=["proxy"])
    queue = LeasedQueue(redis_db, crawler.spider, KEYS.requests)
    request = Request(entry(1), meta={"proxy": "http://p:1", "depth": 2, "not_listed": 1})
    assert queue.decode(queue.encode(request).encode()).meta == {"proxy": "http://p:1", "depth": 2}


# -- seeds enter the frontier atomically ------------------------------------------------------


class SeedSpider(FrontierSpider):
    """Reads seeds the way the baike spider does: a URL, else refused."""

    def request_from_seed(self, data: bytes) -> Request:
        text = data.decode("utf-8")
        if not text.startswith("https://baike.baidu.com/item/"):
            raise ValueError(f"not a Baike entry URL: {text[:50]!r}")
        return Request(text, meta={"depth": 0})


@pytest.fixture()
def seed_queue(redis_db, redis_server) -> LeasedQueue:
    crawler = make_crawler(redis_server.url)
    spider = SeedSpider.from_crawler(crawler)
    return LeasedQueue(redis_db, spider, KEYS.requests)


def test_a_take_admits_seeds_into_the_frontier_in_the_same_step(seed_queue: LeasedQueue, redis_db) -> None:
    redis_db.rpush(KEYS.start_urls, entry(1), entry(2), "garbage\n\x00", b"\xff\xfe")
    taken = seed_queue.take("n1", 3, 30)
    assert taken.admitted == 4 and redis_db.llen(KEYS.start_urls) == 0
    assert [r.url for _, r in taken.seeds] == [entry(1), entry(2)]
    assert len(taken.bad_seeds) == 1 and taken.bad_seeds[0].startswith("bad seed: not a Baike entry URL")
    # the fourth seed was admitted but not leased: it waits in the frontier, ahead of requests
    assert redis_db.exists(KEYS.started) and len(seed_queue) == 1
    assert redis_db.hget(KEYS.budget, "seeds") == b"4" and redis_db.zcard(KEYS.leases) == 2
    second = seed_queue.take("n1", 3, 30)
    assert second.bad_seeds and not second.seeds
    raws = [json.loads(raw)["raw"] for raw in redis_db.lrange(KEYS.dead, 0, -1)]
    assert raws == ["garbage\n\x00", "\ufffd\ufffd"], "dead letters keep the seed as it was pushed"


def test_a_seed_of_a_killed_node_comes_back(seed_queue: LeasedQueue, redis_db) -> None:
    redis_db.rpush(KEYS.start_urls, entry(1))
    assert [r.url for _, r in seed_queue.take("dead", 1, 0.05).seeds] == [entry(1)]
    time.sleep(0.1)
    taken = seed_queue.take("alive", 1, 30)
    assert taken.reclaimed == 1 and [r.url for _, r in taken.seeds] == [entry(1)]


@pytest.mark.parametrize(("form", "push_seed"), [("set", "sadd"), ("zset", "zadd")])
def test_seeds_in_a_set_or_sorted_set(redis_db, redis_server, form: str, push_seed: str) -> None:
    crawler = make_crawler(redis_server.url, **{f"REDIS_START_URLS_AS_{form.upper()}": True})
    queue = LeasedQueue(redis_db, SeedSpider.from_crawler(crawler), KEYS.requests)
    if push_seed == "sadd":
        redis_db.sadd(KEYS.start_urls, entry(1), entry(2))
    else:
        redis_db.zadd(KEYS.start_urls, {entry(1): 1, entry(2): 5})
    taken = queue.take("n1", 5, 30)
    urls = [r.url for _, r in taken.seeds]
    assert sorted(urls) == [entry(1), entry(2)]
    if form == "zset":
        assert urls == [entry(2), entry(1)], "highest score first, as scrapy-redis reads a sorted set"


def test_a_take_admits_redis_start_urls_batch_size_seeds(redis_db, redis_server) -> None:
    """scrapy-redis's REDIS_START_URLS_BATCH_SIZE: how many seeds one take moves into the frontier."""
    crawler = make_crawler(redis_server.url, REDIS_START_URLS_BATCH_SIZE=5)
    queue = LeasedQueue(redis_db, SeedSpider.from_crawler(crawler), KEYS.requests)
    redis_db.rpush(KEYS.start_urls, *(entry(n) for n in range(12)))
    assert queue.take("n1", 1, 30).admitted == 5
    assert redis_db.llen(KEYS.start_urls) == 7


def test_a_seed_key_of_another_type_is_reported_not_fatal(seed_queue: LeasedQueue, redis_db) -> None:
    redis_db.sadd(KEYS.start_urls, entry(1))
    push(seed_queue, Request(entry(5)))
    taken = seed_queue.take("n1", 5, 30)
    assert taken.admitted == -1 and [r.url for _, r in taken.requests] == [entry(5)]
    assert redis_db.scard(KEYS.start_urls) == 1


# -- nodes on separate machines: Redis time, fencing, calls safe to run twice ----------------


def frontier_state(client) -> dict:
    """Everything the frontier scripts write, except the calls they remember."""
    keys = [KEYS.requests, KEYS.request_data, KEYS.request_seq, KEYS.leases, KEYS.lease_owners, KEYS.budget, KEYS.dead]
    state = {}
    for key in keys:
        kind = client.type(key).decode()
        if kind == "hash":
            state[key] = client.hgetall(key)
        elif kind == "zset":
            state[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            state[key] = client.lrange(key, 0, -1)
        elif kind == "string":
            state[key] = client.get(key)
    return state


def test_lease_deadlines_come_from_redis_time_not_the_node_clock(queue: LeasedQueue, redis_db, monkeypatch) -> None:
    push(queue, Request(entry(1)), Request(entry(2)))
    monkeypatch.setattr(time, "time", lambda: 4_000_000_000.0)  # this node's clock is decades off
    ((lease, _),) = queue.take("fast-clock", 1, 30).requests
    seconds, micros = redis_db.time()
    deadline = redis_db.zscore(KEYS.leases, split_handle(lease)[0])
    assert 29 <= deadline - (seconds + micros / 1e6) <= 30.5
    # a node whose clock runs ahead reclaims nothing that is not expired on Redis's clock
    assert queue.take("other", 1, 30).reclaimed == 0
    assert queue.heartbeat("fast-clock", [lease], 5) == []
    assert redis_db.zscore(KEYS.leases, split_handle(lease)[0]) - (seconds + micros / 1e6) < 6


def test_a_resent_take_replays_its_reply_and_leases_nothing_more(queue: LeasedQueue, redis_db) -> None:
    push(queue, *(Request(entry(n)) for n in range(1, 6)))
    first = queue.take("n1", 2, 30, call_id="call-7")
    state = frontier_state(redis_db)
    again = queue.take("n1", 2, 30, call_id="call-7")
    assert [lease for lease, _ in again.requests] == [lease for lease, _ in first.requests]
    assert frontier_state(redis_db) == state, "a resent LEASE changes nothing"
    assert len(queue.take("n1", 2, 30, call_id="call-8").requests) == 2


def test_a_resent_push_and_ack_is_applied_once(queue: LeasedQueue, redis_db) -> None:
    push(queue, Request(entry(1)))
    ((lease, _),) = queue.take("n1", 1, 30).requests
    pushes = [(None, None, 0, queue.encode(Request(entry(n), dont_filter=True))) for n in (2, 3)]
    first = queue.push_and_ack("n1", pushes, [(lease, True, "")], call_id="flush-1")
    state = frontier_state(redis_db)
    assert queue.push_and_ack("n1", pushes, [(lease, True, "")], call_id="flush-1") == first
    assert frontier_state(redis_db) == state, "unfiltered pushes and acks are not applied twice"
    assert redis_db.hget(KEYS.budget, "pages") == b"1" and len(queue) == 2


@pytest.mark.parametrize("script", ["release", "heartbeat", "reject"])
def test_fenced_scripts_change_nothing_when_run_twice(queue: LeasedQueue, redis_db, script: str) -> None:
    push(queue, Request(entry(1)), Request(entry(2)))
    leases = [lease for lease, _ in queue.take("n1", 2, 30).requests]

    def run() -> None:
        if script == "release":
            queue.release("n1", leases)
        elif script == "heartbeat":
            queue.heartbeat("n1", leases, 30)
        else:
            queue.reject("n1", leases[0], b"{}", "rejected payload: test")

    run()
    state = frontier_state(redis_db)
    if script == "heartbeat":
        # a second heartbeat moves the deadlines on, and only them
        state.pop(KEYS.leases)
    run()
    after = frontier_state(redis_db)
    if script == "heartbeat":
        after.pop(KEYS.leases)
    assert after == state


def test_a_stale_ack_is_refused_counted_and_never_spends_the_budget(queue: LeasedQueue, redis_db) -> None:
    push(queue, Request(entry(1)))
    ((stale, _),) = queue.take("n1", 1, 0.05, budget=10).requests
    time.sleep(0.1)
    ((fresh, _),) = queue.take("n2", 1, 30, budget=10).requests
    assert split_handle(fresh)[0] == split_handle(stale)[0] and fresh != stale, "same request, new token"
    assert queue.heartbeat("n1", [stale], 30) == [stale]
    assert queue.push_and_ack("n1", [], [(stale, True, "")]).stale == 1
    assert redis_db.hget(KEYS.budget, "pages") is None, "the stale page spent nothing"
    assert redis_db.zcard(KEYS.leases) == 1, "n2's lease stands"
    assert queue.push_and_ack("n2", [], [(fresh, True, "")]).stale == 0
    ledger = redis_db.hgetall(KEYS.budget)
    assert ledger[b"pages"] == b"1" and ledger[b"reserved"] == b"1" and ledger[b"stale_acks"] == b"1"


def test_the_same_node_retaking_a_lease_is_fenced_from_its_old_self(queue: LeasedQueue, redis_db) -> None:
    push(queue, Request(entry(1)))
    ((old, _),) = queue.take("n1", 1, 0.05).requests
    time.sleep(0.1)
    ((new, _),) = queue.take("n1", 1, 30).requests
    assert queue.release("n1", [old]) == 0 and queue.push_and_ack("n1", [], [(old, True, "")]).stale == 1
    assert queue.release("n1", [new]) == 1


# -- one shared crawl rate ---------------------------------------------------------------------


def test_the_cluster_rate_holds_whatever_the_number_of_nodes(redis_db, redis_server) -> None:
    """Three nodes taking as fast as they can never get more than rate * t + burst leases."""
    rate, burst, seconds = 40.0, 5, 2.0
    crawler = make_crawler(redis_server.url, BAIKE_CLUSTER_RATE=rate, BAIKE_CLUSTER_BURST=burst)
    writer = LeasedQueue(redis_db, crawler.spider, KEYS.requests)
    for start in range(0, 400, 16):
        push(writer, *(Request(entry(n)) for n in range(start, start + 16)))
    granted: list[float] = []

    def node(name: str) -> None:
        queue = LeasedQueue(redis.Redis.from_url(redis_server.url), crawler.spider, KEYS.requests)
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            taken = queue.take(name, 16, 30)
            granted.extend([time.monotonic()] * len(taken.requests))
            time.sleep(min(taken.wait, 0.01) if not taken.requests else 0)

    started = time.monotonic()
    threads = [threading.Thread(target=node, args=(f"n{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = max(granted) - started
    assert len(granted) <= rate * elapsed + burst + 1
    assert len(granted) >= 0.8 * rate * elapsed, "the limit is a rate, not a wall"
    assert 0 < redis_db.zcard(KEYS.leases) == len(granted)


def test_an_exhausted_rate_says_when_its_next_token_is_due(redis_db, redis_server) -> None:
    crawler = make_crawler(redis_server.url, BAIKE_CLUSTER_RATE=2.0, BAIKE_CLUSTER_BURST=3)
    queue = LeasedQueue(redis_db, crawler.spider, KEYS.requests)
    push(queue, *(Request(entry(n)) for n in range(10)))
    assert len(queue.take("n1", 16, 30).requests) == 3
    empty = queue.take("n2", 16, 30)
    assert not empty.requests and 0.3 < empty.wait <= 0.5, "when half a take's worth (of a burst of 3: 1) is there"
    time.sleep(empty.wait)
    assert len(queue.take("n2", 16, 30).requests) == 1


def test_seeds_cost_no_tokens_and_egress_has_its_own_bucket(redis_db, redis_server) -> None:
    settings = {"BAIKE_CLUSTER_RATE": 1.0, "BAIKE_CLUSTER_BURST": 1}
    queue = LeasedQueue(redis_db, SeedSpider.from_crawler(make_crawler(redis_server.url, **settings)), KEYS.requests)
    redis_db.rpush(KEYS.start_urls, entry(1), entry(2))
    push(queue, Request(entry(3)), Request(entry(4)))
    taken = queue.take("n1", 16, 30)
    assert len(taken.seeds) == 2 and len(taken.requests) == 1
    other = make_crawler(redis_server.url, BAIKE_EGRESS="proxy-2", **settings)
    behind_proxy = LeasedQueue(redis_db, SeedSpider.from_crawler(other), KEYS.requests)
    assert behind_proxy.rate_key != queue.rate_key
    assert len(behind_proxy.take("n2", 16, 30).requests) == 1, "another egress, another bucket"


def test_a_retry_of_a_fenced_lease_is_not_queued_again(queue: LeasedQueue, redis_db) -> None:
    """A retry or redirect replaces its leased request: it is kept only if that lease's
    ack is accepted, else the request is another node's now and would be crawled twice."""
    push(queue, Request(entry(1)), Request(entry(2)))
    (stale, _), _ = queue.take("n1", 2, 0.05).requests
    time.sleep(0.1)
    queue.take("n2", 1, 30)  # reclaims both, takes entry 1 again
    retry = queue.encode(Request(entry(1), dont_filter=True))
    pushes = [(None, None, 0, retry)]
    pushed = queue.push_and_ack("n1", pushes, [(stale, True, "")], replaces={0: stale})
    assert (pushed.added, pushed.stale) == (0, 1), "the fenced node's retry is dropped"
    ((taken_again, _),) = queue.take("n3", 1, 30).requests
    pushed = queue.push_and_ack("n3", pushes, [(taken_again, True, "")], replaces={0: taken_again})
    assert (pushed.added, pushed.stale) == (1, 0), "a live lease's retry is queued"


# -- backing off together ------------------------------------------------------------------------


@pytest.fixture()
def rated(redis_db, redis_server) -> LeasedQueue:
    crawler = make_crawler(
        redis_server.url, BAIKE_CLUSTER_RATE=100.0, BAIKE_CLUSTER_BURST=50, BAIKE_COOLDOWN=0.5, BAIKE_COOLDOWN_MAX=1.5
    )
    queue = LeasedQueue(redis_db, crawler.spider, KEYS.requests)
    for start in range(0, 64, 16):
        push(queue, *(Request(entry(n)) for n in range(start, start + 16)))
    return queue


def test_a_captcha_pauses_the_whole_cluster_and_a_lasting_storm_doubles_the_pause(rated: LeasedQueue, redis_db) -> None:
    reply = rated.push_and_ack("n1", [], [], answers=Answers(captchas=1))
    assert 0.4 < reply.cooling <= 0.5 and reply.rate == 50.0, "paused, and the rate halved"
    paused = rated.take("n2", 16, 30)
    assert not paused.requests and 0.3 < paused.wait <= 0.5, "no node leases during the cool-down"
    assert rated.push_and_ack("n2", [], [], answers=Answers(captchas=3)).cooling <= 0.5, "not extended by stragglers"
    time.sleep(paused.wait)
    assert rated.take("n2", 2, 30).requests, "leasing again after the cool-down"
    assert 0.9 < rated.push_and_ack("n1", [], [], answers=Answers(captchas=1)).cooling <= 1.0, (
        "the storm lasted: doubled"
    )
    assert redis_db.hget(rated.rate_key, "reason") == b"captcha"


def test_retry_after_sets_a_longer_cool_down(rated: LeasedQueue, redis_db) -> None:
    reply = rated.push_and_ack("n1", [], [], answers=Answers(failed=1, retry_after=5))
    assert 4.9 < reply.cooling <= 5.0 and redis_db.hget(rated.rate_key, "reason") == b"Retry-After"
    assert rated.take("n2", 16, 30).wait > 4.8


def test_failures_halve_the_rate_and_healthy_answers_raise_it_slowly(rated: LeasedQueue) -> None:
    assert rated.push_and_ack("n1", [], [], answers=Answers(healthy=20, failed=4)).rate == 100.0, "below the threshold"
    assert rated.push_and_ack("n1", [], [], answers=Answers(failed=2)).rate == 50.0
    assert rated.push_and_ack("n1", [], [], answers=Answers(healthy=50)).rate == 50.0, "not in a window with failures"


def test_answers_change_nothing_without_a_cluster_rate(queue: LeasedQueue, redis_db) -> None:
    reply = queue.push_and_ack("n1", [], [], answers=Answers(captchas=5, retry_after=9))
    assert (reply.cooling, reply.rate) == (0.0, 0.0)
    assert not redis_db.exists(queue.rate_key)


def test_the_rate_climbs_back_a_window_after_the_last_failure(redis_db, redis_server) -> None:
    crawler = make_crawler(redis_server.url, BAIKE_CLUSTER_RATE=100.0, BAIKE_BACKOFF_WINDOW=1.0)
    queue = LeasedQueue(redis_db, crawler.spider, KEYS.requests)
    assert queue.push_and_ack("n1", [], [], answers=Answers(failed=5)).rate == 50.0
    time.sleep(1.1)
    assert queue.push_and_ack("n1", [], [], answers=Answers(healthy=10)).rate == 55.0
    assert queue.push_and_ack("n1", [], [], answers=Answers(healthy=10)).rate == 55.0, "at most once a second"


def test_a_mark_records_the_fingerprint_and_queues_nothing(queue: LeasedQueue, redis_db) -> None:
    from baike.frontier.queue import MARK

    marks = [(f"{KEYS.dupefilter}:00", field(entry(n)), 0, MARK) for n in (1, 2)]
    assert queue.push_and_ack("n1", marks, [])[:2] == (0, 0), "a mark is neither added nor filtered"
    assert len(queue) == 0 and not redis_db.hexists(KEYS.budget, "enqueued")
    assert redis_db.hget(KEYS.budget, "marked") == b"2", "the ledger counts fingerprints without a request"
    # the marked URLs are seen: pushing them now filters them; a new one still goes in
    assert push(queue, Request(entry(1)), Request(entry(2)), Request(entry(3))) == (1, 2)
    assert [r.url for _, r in queue.take("n1", 10, 30).requests] == [entry(3)]


def test_filtered_pushes_are_named_rightly_after_marks(queue: LeasedQueue) -> None:
    from baike.frontier.queue import MARK

    push(queue, Request(entry(1)))
    pushes = [
        (f"{KEYS.dupefilter}:00", field(entry(7)), 0, MARK),
        (f"{KEYS.dupefilter}:00", field(entry(1)), 0, queue.encode(Request(entry(1)))),
        (f"{KEYS.dupefilter}:00", field(entry(2)), 0, queue.encode(Request(entry(2)))),
    ]
    assert queue.push_and_ack("n1", pushes, [], list_filtered=True).duplicates == (1,)
