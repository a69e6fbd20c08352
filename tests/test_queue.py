"""The leased frontier queue and its Lua scripts, on a real redis-server."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from scrapy import Request

from baike.frontier.queue import ENTRY_MAX_REQUESTS, LEASE_META_KEY, LeasedQueue, PayloadError
from baike.keys import CrawlKeys
from tests.frontier_helpers import make_crawler

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
    return queue.push_and_ack(node, pushes, list(acks))


def test_push_filters_duplicates_in_the_same_round_trip(queue: LeasedQueue) -> None:
    assert push(queue, Request(entry(1)), Request(entry(2)), Request(entry(1))) == (2, 1)
    assert push(queue, Request(entry(2))) == (0, 1)
    assert len(queue) == 2


def test_priority_first_then_first_in_first_out(queue: LeasedQueue) -> None:
    push(queue, *(Request(entry(n)) for n in (5, 3, 9)), Request(entry(7), priority=2), Request(entry(1), priority=-1))
    taken = queue.take("n1", 10, 30)
    assert [r.url for _, r in taken.requests] == [entry(n) for n in (7, 5, 3, 9, 1)]


def test_take_leases_and_ack_settles(queue: LeasedQueue, redis_db) -> None:
    push(queue, Request(entry(1)), Request(entry(2)))
    taken = queue.take("n1", 1, 30)
    (request_id, request), = taken.requests
    assert request.meta[LEASE_META_KEY] == request_id
    assert redis_db.zcard(KEYS.leases) == 1 and len(queue) == 1
    child = Request(entry(3))
    assert push(queue, child, acks=[(request_id, True, "")]) == (1, 0)
    assert redis_db.zcard(KEYS.leases) == 0
    assert not redis_db.hexists(KEYS.request_data, request_id)
    assert redis_db.hgetall(KEYS.budget) == {b"reserved": b"1", b"pages": b"1", b"enqueued": b"3", b"settled": b"1"}


def test_ack_of_a_lease_owned_by_another_node_is_ignored(queue: LeasedQueue, redis_db) -> None:
    push(queue, Request(entry(1)))
    (request_id, _), = queue.take("n1", 1, 30).requests
    queue.push_and_ack("n2", [], [(request_id, False, "")])
    assert redis_db.zcard(KEYS.leases) == 1


def test_expired_leases_return_to_the_frontier_with_their_priority(queue: LeasedQueue, redis_db) -> None:
    push(queue, Request(entry(1), priority=5), Request(entry(2)))
    (request_id, _), = queue.take("dead-node", 1, 0.05).requests
    time.sleep(0.1)
    taken = queue.take("n2", 1, 30)
    assert taken.reclaimed == 1
    assert [r.url for _, r in taken.requests] == [entry(1)]
    assert redis_db.hget(KEYS.budget, "reserved") == b"1"


def test_heartbeat_keeps_a_lease_alive(queue: LeasedQueue, redis_db) -> None:
    push(queue, Request(entry(1)))
    (request_id, _), = queue.take("n1", 1, 0.3).requests
    assert queue.heartbeat("n2", [request_id], 30) == 0
    assert queue.heartbeat("n1", [request_id], 30) == 1
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
    (request_id, _), = queue.take("n1", 1, 30).requests
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
def test_hostile_payloads_are_dead_lettered_never_executed(queue: LeasedQueue, redis_db, payload: bytes, reason: str) -> None:
    redis_db.hset(KEYS.request_data, "666", payload)
    redis_db.zadd(KEYS.requests, {"666": 0})
    push(queue, Request(entry(1)))
    taken = queue.take("n1", 5, 30)
    assert taken.rejected == 1
    assert [r.url for _, r in taken.requests] == [entry(1)]
    (record,) = [json.loads(raw) for raw in redis_db.lrange(KEYS.dead, 0, -1)]
    assert reason in record["reason"]
    assert not redis_db.hexists(KEYS.request_data, "666")
    assert redis_db.hget(KEYS.budget, "reserved") == b"1"


def test_encode_refuses_non_entries(queue: LeasedQueue) -> None:
    with pytest.raises(PayloadError):
        queue.encode(Request("https://baike.baidu.com/help"))


def test_encode_keeps_canonical_url_and_durable_meta(queue: LeasedQueue) -> None:
    request = Request("https://baike.baidu.com/item/x/1?fr=aladdin", meta={LEASE_META_KEY: "9", "depth": 3, "_private": 1})
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
    (settled_id, _), (lost_id, _), (kept_id, _) = queue.take("n1", 3, 0.05).requests
    assert push(queue, acks=[(settled_id, True, "")]) == (0, 0)
    assert queue.release("n1", [kept_id]) == 1
    time.sleep(0.1)
    taken = queue.take("n2", 10, 30)
    assert taken.reclaimed == 1
    # both back with their batch's score: ahead of the request pushed after the batch
    urls = [r.url for _, r in taken.requests]
    assert sorted(urls[:3]) == [entry(2), entry(3), entry(4)] and urls[3] == entry(5)
    assert not redis_db.hexists(KEYS.request_data, settled_id)


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
    assert taken.rejected == 2
    assert [r.url for _, r in taken.requests] == [entry(1)]
    assert redis_db.llen(KEYS.dead) == 2 and redis_db.zcard(KEYS.requests) == 0


def test_payloads_never_hold_the_batch_separator(queue: LeasedQueue) -> None:
    request = Request(entry(1), meta={"note": "two\nlines", "tab": "\t"}, cb_kwargs={"x": "\r\n"})
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
