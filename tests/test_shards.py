"""Frontier shards (BAIKE_SHARDS): their keys, and the page budget's crash-safe transfers
between shard 0's ledger and the shards' allowances, on a real redis-server."""

from __future__ import annotations

import hashlib

import pytest
from redis.crc import key_slot
from scrapy import Request

from baike.errors import NodeRefused
from baike.frontier import scripts
from baike.frontier.bloom import BloomDupeFilter
from baike.frontier.dupefilter import BucketDupeFilter
from baike.frontier.queue import LeasedQueue, handle_shard, lease_handle, split_handle
from baike.frontier.scheduler import LeasedScheduler
from baike.frontier.shards import (
    DEFAULT_SHARD0_SHARE,
    SPACE,
    ShardSplit,
    Transfers,
    crawl_shards,
    read_shards,
    record_shards,
    shard_of,
)
from baike.keys import CrawlKeys, shard_keys
from tests.frontier_helpers import make_crawler
from tests.test_crash_safety import assert_accounting_whole

BUDGET = 20


class Settings(dict):
    def getint(self, name: str, default: int = 0) -> int:
        return int(self.get(name, default))


def keys_of(shards: int = 3, url: str = "redis://127.0.0.1:1/0") -> list[CrawlKeys]:
    return shard_keys("baike", Settings(REDIS_URL=url, BAIKE_SHARDS=shards))


@pytest.fixture()
def keys() -> list[CrawlKeys]:
    return keys_of()


@pytest.fixture()
def transfers(redis_db, keys) -> Transfers:
    return Transfers(redis_db, keys)


def now(redis_db) -> float:
    seconds, micros = redis_db.time()
    return seconds + micros / 1e6


def units_everywhere(redis_db, keys: list[CrawlKeys]) -> int:
    return units_everywhere_at(redis_db, keys, BUDGET)


def units_everywhere_at(redis_db, keys: list[CrawlKeys], budget: int) -> int:
    """Budget units not granted + grants not credited yet + every allowance + give-backs not
    added back yet: always the budget."""
    ledger = keys[0]
    granted = int(redis_db.hget(ledger.shards, "granted") or 0)
    pending = 0
    for grant_id, record in redis_db.hgetall(ledger.grants).items():
        shard, units, _ = record.split()
        if redis_db.zscore(keys[int(shard)].credited, grant_id) is None:
            pending += int(units)
    allowances = sum(int(redis_db.hget(shard.budget, "allowance") or 0) for shard in keys)
    backs = sum(
        int(record.split()[0])
        for shard in keys
        for back_id, record in redis_db.hgetall(shard.returns).items()
        if redis_db.zscore(ledger.transfers, back_id) is None
    )
    return (budget - granted) + pending + allowances + backs


def allowance(redis_db, shard: CrawlKeys) -> int:
    return int(redis_db.hget(shard.budget, "allowance") or 0)


def test_shard_zero_keeps_the_keys_of_a_crawl_without_shards_and_each_shard_has_its_slot() -> None:
    single = CrawlKeys.for_spider("baike", Settings(REDIS_URL="redis://x"))
    assert keys_of(3)[0] == single == keys_of(1)[0]
    assert [k.requests for k in keys_of(3)] == ["baike:requests", "baike:1:requests", "baike:2:requests"]
    cluster = keys_of(3, "redis+cluster://127.0.0.1:1")
    assert [k.dupefilter for k in cluster] == ["{baike}:dupefilter", "{baike:1}:dupefilter", "{baike:2}:dupefilter"]
    assert len({key_slot(k.requests.encode()) for k in cluster}) == 3
    for shard in cluster:
        assert len({key_slot(key.encode()) for key in shard.all()}) == 1
        assert cluster[0].in_shard(cluster.index(shard)) == shard


def test_lease_handles_name_their_shard() -> None:
    assert lease_handle("12", "7") == "12:7" and handle_shard("12:7") == 0
    assert split_handle(lease_handle("12", "7", 2)) == ("12", "7") and handle_shard("12:7/2") == 2


def test_requests_spread_over_the_shards_by_fingerprint() -> None:
    counts = [0, 0, 0]
    for n in range(3000):
        counts[shard_of(hashlib.sha1(str(n).encode()).digest(), ShardSplit.weighted(3, 1.0))] += 1
    assert all(900 < count < 1100 for count in counts), counts
    assert shard_of(b"\x00" * 20, ShardSplit.weighted(1, DEFAULT_SHARD0_SHARE)) == 0


def fractions_of(split: ShardSplit, samples: int = 30_000) -> list[float]:
    counts = [0] * split.count
    for n in range(samples):
        counts[shard_of(hashlib.sha1(str(n).encode()).digest(), split)] += 1
    return [count / samples for count in counts]


@pytest.mark.parametrize(("share", "expected"), [(0.75, [0.25, 0.375, 0.375]), (0.5, [0.166667, 0.416667, 0.416667])])
def test_shard_zero_takes_its_share_of_the_fingerprints(share: float, expected: list[float]) -> None:
    split = ShardSplit.weighted(3, share)
    assert [round(split.fraction(shard), 6) for shard in range(3)] == expected
    assert all(abs(got - want) < 0.012 for got, want in zip(fractions_of(split), expected, strict=True))
    assert split.shard0_share == pytest.approx(share, abs=1e-6)


def test_a_share_of_one_is_an_even_split_by_bounds() -> None:
    even = ShardSplit.weighted(3, 1.0)
    assert even.bounds == (SPACE // 3, 2 * SPACE // 3)
    assert all(abs(got - 1 / 3) < 0.012 for got in fractions_of(even))
    edges = [b"\x00" * 16 + value.to_bytes(4, "big") for value in (0, SPACE // 3 - 1, SPACE // 3, SPACE - 1)]
    assert [shard_of(fingerprint, even) for fingerprint in edges] == [0, 0, 1, 2]
    assert ShardSplit.parse(3, even.record) == even


def test_an_old_split_is_by_fingerprint_modulo_the_count() -> None:
    old = ShardSplit.parse(3, "")
    assert old.bounds is None and old.fraction(2) == pytest.approx(1 / 3)
    for n in range(300):
        fingerprint = hashlib.sha1(str(n).encode()).digest()
        assert shard_of(fingerprint, old) == int.from_bytes(fingerprint[-4:], "big") % 3


@pytest.mark.parametrize("record", ["5", "3 2", f"1 {SPACE}", "a b", "0 7"])
def test_a_recorded_split_that_is_not_one_is_refused(redis_db, record: str) -> None:
    ledger = keys_of(3)[0]
    redis_db.hset(ledger.shards, mapping={"count": 3, "bounds": record})
    with pytest.raises(NodeRefused, match="is not one"):
        record_shards(redis_db, ledger, ShardSplit.weighted(3, 1.0))


def test_the_first_node_records_its_split_and_the_others_follow_it(redis_db) -> None:
    ledger = keys_of(3)[0]
    first, other = ShardSplit.weighted(3, 0.7), ShardSplit.weighted(3, 1.0)
    assert record_shards(redis_db, ledger, first) == first
    assert redis_db.hgetall(ledger.shards) == {b"count": b"3", b"bounds": first.record.encode()}
    assert record_shards(redis_db, ledger, other) == first, "the recorded split wins"
    assert redis_db.hget(ledger.shards, "bounds") == first.record.encode()


def test_a_node_follows_the_split_recorded_by_the_crawl(redis_db, redis_server, caplog) -> None:
    first = make_crawler(redis_server.url, BAIKE_SHARDS=3, BAIKE_SHARD0_SHARE=0.6)
    LeasedScheduler.from_crawler(first)
    crawler = make_crawler(redis_server.url, BAIKE_SHARDS=3, BAIKE_SHARD0_SHARE=1.0)
    scheduler = LeasedScheduler.from_crawler(crawler)
    recorded = ShardSplit.weighted(3, 0.6)
    assert scheduler.split == recorded and scheduler.df.split == recorded
    assert scheduler._transfers is not None and scheduler._transfers.split == recorded
    lines = [record.getMessage() for record in caplog.records if "BAIKE_SHARD0_SHARE=1" in record.getMessage()]
    assert len(lines) == 1 and "takes 0.6 of an even share" in lines[0], lines


def test_a_crawl_split_before_bounds_were_recorded_keeps_its_split(redis_db, redis_server, caplog) -> None:
    ledger = keys_of(3, redis_server.url)[0]
    redis_db.hset(ledger.shards, "count", 3)
    crawler = make_crawler(redis_server.url, BAIKE_SHARDS=3)
    scheduler = LeasedScheduler.from_crawler(crawler)
    assert scheduler.split == ShardSplit(3) and scheduler.df.split == ShardSplit(3)
    assert not redis_db.hexists(ledger.shards, "bounds"), "an old crawl's record is left as it is"
    fingerprint = hashlib.sha1(b"old").digest()
    assert (
        scheduler.df.bucket_shard(scheduler.df.slot_of(fingerprint)[0]) == int.from_bytes(fingerprint[-4:], "big") % 3
    )
    assert any("fingerprint % 3" in record.getMessage() for record in caplog.records)


def test_the_shared_rate_is_split_by_the_shards_shares(redis_db, redis_server) -> None:
    split = ShardSplit.weighted(3, 0.75)
    crawler = make_crawler(redis_server.url, BAIKE_SHARDS=3, BAIKE_CLUSTER_RATE=10.0, BAIKE_CLUSTER_BURST=20)
    queues = []
    for shard in range(3):
        queue = LeasedQueue(redis_db, crawler.spider, "unused")
        queue.use_shard(shard, split)
        queues.append(queue)
    assert [queue.rate for queue in queues] == pytest.approx([2.5, 3.75, 3.75]), "the host's total is 10"
    assert [queue.burst for queue in queues] == [5, 8, 8]


def test_a_rate_cap_is_split_by_the_shards_shares(redis_db, redis_server) -> None:
    crawler = make_crawler(redis_server.url, BAIKE_SHARDS=3, BAIKE_SHARD0_SHARE=0.75)
    scheduler = LeasedScheduler.from_crawler(crawler)
    scheduler.open(crawler.spider)
    try:
        scheduler.cap_rate(4.0, "robots.txt")
        assert [queue.rate for queue in scheduler.queues] == pytest.approx([1.0, 1.5, 1.5])
        caps = [float(redis_db.hget(queue.rate_key, "cap")) for queue in scheduler.queues]
        assert caps == pytest.approx([1.0, 1.5, 1.5])
    finally:
        scheduler.close("finished")


def test_grants_follow_the_shards_shares(redis_db, redis_server, keys) -> None:
    split = ShardSplit.weighted(3, 0.75)
    queues = [queue_of(redis_db, redis_server, shard, split=split) for shard in range(3)]
    for shard, queue in enumerate(queues):
        push(queue, *range(100 * shard, 100 * shard + 60))
    assert Transfers(redis_db, keys, split).rebalance(120, 4, lambda: now(redis_db)) == 120
    states, granted, _ = read_shards(redis_db, keys)
    assert [state.allowance for state in states] == [30, 45, 45] and granted == 120


def test_a_grant_run_twice_credits_once(redis_db, keys, transfers) -> None:
    assert transfers.grant(1, 8, BUDGET, grant_id="g-1") == 8
    assert transfers.grant(1, 8, BUDGET, grant_id="g-1") == 0, "a finished grant id grants nothing more"
    transfers.credit(1, "g-1", 8)
    assert allowance(redis_db, keys[1]) == 8
    assert redis_db.hlen(keys[0].grants) == 0
    assert units_everywhere(redis_db, keys) == BUDGET


def test_grants_never_exceed_the_budget(redis_db, keys, transfers) -> None:
    assert [transfers.grant(shard, 9, BUDGET) for shard in (0, 1, 2, 1)] == [9, 9, 2, 0]
    assert sum(allowance(redis_db, shard) for shard in keys) == BUDGET


def test_a_grant_cut_short_by_a_crash_is_finished_by_another_node_once(redis_db, keys, transfers) -> None:
    ledger = keys[0]
    grant = redis_db.register_script(scripts.GRANT)
    credit = redis_db.register_script(scripts.CREDIT)
    # node A dies after GRANT: the units are pending, on no shard
    assert grant(keys=[ledger.shards, ledger.grants, ledger.transfers], args=["g-a", 2, 6, BUDGET]) == 6
    # its resent call changes nothing
    assert grant(keys=[ledger.shards, ledger.grants, ledger.transfers], args=["g-a", 2, 6, BUDGET]) == 6
    # node B dies after GRANT and CREDIT, before clearing
    assert grant(keys=[ledger.shards, ledger.grants, ledger.transfers], args=["g-b", 1, 4, BUDGET]) == 4
    assert credit(keys=[keys[1].budget, keys[1].credited], args=["g-b", 4]) == 1
    assert units_everywhere(redis_db, keys) == BUDGET
    assert transfers.complete(now(redis_db)) == 0, "a fresh transfer is left to the node doing it"
    other = Transfers(redis_db, keys)
    assert other.complete(now(redis_db) + 10) == 2
    assert (allowance(redis_db, keys[2]), allowance(redis_db, keys[1])) == (6, 4)
    assert redis_db.hlen(ledger.grants) == 0
    # a late step of the dead node, and another completion: nothing more
    assert credit(keys=[keys[1].budget, keys[1].credited], args=["g-b", 4]) == 0
    other.credit(2, "g-a", 6)
    assert other.complete(now(redis_db) + 10) == 0
    assert (allowance(redis_db, keys[2]), allowance(redis_db, keys[1])) == (6, 4)
    assert units_everywhere(redis_db, keys) == BUDGET


def queue_of(redis_db, redis_server, shard: int, shards: int = 3, split: ShardSplit | None = None) -> LeasedQueue:
    crawler = make_crawler(redis_server.url, BAIKE_SHARDS=shards)
    queue = LeasedQueue(redis_db, crawler.spider, "unused")
    queue.use_shard(shard, split or ShardSplit.weighted(shards, 1.0))
    return queue


def push(queue: LeasedQueue, *numbers: int) -> None:
    requests = [Request(f"https://baike.baidu.com/item/entry{n}/{n}") for n in numbers]
    pushes = [(None, None, 0, queue.encode(request)) for request in requests]
    queue.push_and_ack("n1", pushes, [])


def test_a_shard_leases_no_more_than_its_allowance(redis_db, redis_server, keys, transfers) -> None:
    queue = queue_of(redis_db, redis_server, 1)
    push(queue, *range(10))
    assert queue.take("n1", 8, 30, budget=BUDGET).requests == [], "no allowance yet"
    transfers.grant(1, 3, BUDGET)
    taken = queue.take("n1", 8, 30, budget=BUDGET)
    assert len(taken.requests) == 3 and taken.budget_left == 0
    assert all(handle_shard(lease) == 1 for lease, _ in taken.requests)
    # a lease settled without a page gives its unit back to the shard's allowance
    queue.push_and_ack("n1", [], [(taken.requests[0][0], False, ""), (taken.requests[1][0], True, "")])
    assert len(queue.take("n1", 8, 30, budget=BUDGET).requests) == 1
    assert redis_db.hmget(keys[1].budget, "pages", "reserved", "allowance") == [b"1", b"3", b"3"]
    assert redis_db.hget(keys[0].budget, "reserved") is None, "shard 0's ledger untouched"


def test_unused_units_flow_back_from_an_empty_shard_once(redis_db, redis_server, keys, transfers) -> None:
    queue = queue_of(redis_db, redis_server, 2)
    push(queue, 1)
    transfers.grant(2, 5, BUDGET)
    assert transfers.give_back(2, 5) == 0, "a shard with requests queued keeps its units"
    lease = queue.take("n1", 8, 30, budget=BUDGET).requests[0][0]
    queue.push_and_ack("n1", [], [(lease, True, "")])
    # a give-back cut short after its debit, finished by another node, then resent
    debit = redis_db.register_script(scripts.DEBIT)
    debit_keys = [keys[2].budget, keys[2].returns, keys[2].leases, keys[2].credited]
    assert debit(keys=debit_keys, args=["r-a", 10]) == 4
    assert debit(keys=debit_keys, args=["r-a", 10]) == 4
    assert units_everywhere(redis_db, keys) == BUDGET
    assert Transfers(redis_db, keys).complete(now(redis_db) + 10) == 1
    assert debit(keys=debit_keys, args=["r-a", 10]) == 0
    transfers.add_back(2, "r-a", 4)
    assert int(redis_db.hget(keys[0].shards, "granted")) == 1, "the page spent stays spent"
    assert allowance(redis_db, keys[2]) == 1 and units_everywhere(redis_db, keys) == BUDGET


def test_rebalance_feeds_the_shards_with_work_and_moves_stranded_units(redis_db, redis_server, keys, transfers) -> None:
    queues = [queue_of(redis_db, redis_server, shard) for shard in range(3)]
    push(queues[1], *range(30))
    push(queues[2], 30, 31)
    # shard 2 holds more units than its work needs; shard 1 gets what is left, in grants
    assert transfers.grant(2, 10, BUDGET) == 10
    assert transfers.rebalance(BUDGET, 4, lambda: now(redis_db)) > 0
    states, granted, pending = read_shards(redis_db, keys)
    assert (pending, states[0].allowance) == (0, 0) and 0 < states[1].allowance == granted - 10
    for _ in range(20):
        for queue in queues:
            taken = queue.take("n1", 8, 30, budget=BUDGET).requests
            queue.push_and_ack("n1", [], [(lease, True, "") for lease, _ in taken])
        transfers.rebalance(BUDGET, 4, lambda: now(redis_db))
        assert units_everywhere(redis_db, keys) == BUDGET
    states, granted, pending = read_shards(redis_db, keys)
    assert [state.pages for state in states] == [0, BUDGET - 2, 2], "the stranded units were spent on shard 1"
    assert states[1].queued == 30 - (BUDGET - 2) and pending == 0


def test_a_node_with_another_shard_count_is_refused(redis_db) -> None:
    single, sharded = keys_of(1)[0], keys_of(3)[0]
    three, one = ShardSplit.weighted(3, DEFAULT_SHARD0_SHARE), ShardSplit.weighted(1, DEFAULT_SHARD0_SHARE)
    assert record_shards(redis_db, sharded, three) == three
    assert record_shards(redis_db, sharded, three) == three
    with pytest.raises(NodeRefused, match="BAIKE_SHARDS=3"):
        record_shards(redis_db, single, one)
    assert len(crawl_shards(redis_db, single)) == 3
    redis_db.flushdb()
    assert record_shards(redis_db, single, one) == one
    assert redis_db.dbsize() == 0, "one shard records nothing"
    redis_db.hset(single.budget, "enqueued", 5)
    with pytest.raises(NodeRefused, match=r"split over 1 shard .*BAIKE_SHARDS=1"):
        record_shards(redis_db, sharded, three)


# -- whole crawls with shards -----------------------------------------------------------------

SHARDED = ("BAIKE_SHARDS=3",)


def sharded_pages(client, shards: list[CrawlKeys]) -> int:
    return sum(int(client.hget(keys.budget, "pages") or 0) for keys in shards)


def assert_sharded_crawl_exact(client, answer: dict, shards: list[CrawlKeys]) -> None:
    """Every entry stored once; every shard's frontier empty, its ledger whole; no transfer pending."""
    urls = [key.decode() for key in client.hkeys(shards[0].items)]
    assert len(urls) == len(set(urls)) and set(urls) == set(answer), "every reachable entry is stored, exactly once"
    for keys in shards:
        assert client.zcard(keys.leases) == 0 and client.zcard(keys.requests) == 0 and client.llen(keys.dead) == 0
        assert_accounting_whole(client, keys)
        assert client.hlen(keys.returns) == 0
    assert client.hlen(shards[0].grants) == 0
    assert all(client.hget(keys.budget, "enqueued") for keys in shards), "every shard had work"


def test_two_nodes_crawl_to_the_end_over_three_shards(redis_db, redis_server, replica_factory, node_factory) -> None:
    shards = keys_of(3, redis_server.url)
    replica = replica_factory(200, 11)
    answer = replica.answer_key(replica.start_url())
    redis_db.lpush(shards[0].start_urls, replica.start_url())
    nodes = [node_factory(redis_server.url, replica.url, "CLOSESPIDER_PAGECOUNT=0", *SHARDED) for _ in range(2)]
    for node in nodes:
        assert node.wait(timeout=120) == 0, node.log[-3000:]
        assert node.finish_reason == "finished" and "Traceback" not in node.log
    assert_sharded_crawl_exact(redis_db, answer, shards)
    assert redis_db.hget(shards[0].shards, "count") == b"3"
    # a node with another shard count is refused with one line
    late = node_factory(redis_server.url, replica.url, *SHARDED[:0])
    assert late.wait(timeout=60) != 0
    assert "BAIKE_SHARDS=3" in late.log + late.log_path.with_suffix(".err").read_text()


def crawl_to_the_budget(
    client, redis_url: str, shards: list[CrawlKeys], budget: int, replica_factory, node_factory, *settings: str
) -> None:
    """2 nodes crawl a 2000-entry replica to ``budget`` pages (with ``settings``): both stop at
    the budget, the shards settled exactly that many pages and the replica served no more."""
    replica = replica_factory(2000, 5)
    client.lpush(shards[0].start_urls, replica.start_url())
    nodes = [node_factory(redis_url, replica.url, f"CLOSESPIDER_PAGECOUNT={budget}", *settings) for _ in range(2)]
    for node in nodes:
        assert node.wait(timeout=180) == 0, node.log[-3000:]
        assert node.finish_reason == "closespider_pagecount"
    assert sharded_pages(client, shards) == budget
    stats = replica.stats()
    assert stats["pages"] + stats["by_kind"].get("list", 0) == budget, "not one page more than the budget is downloaded"


def test_the_budget_is_exact_over_three_shards(redis_db, redis_server, replica_factory, node_factory) -> None:
    shards = keys_of(3, redis_server.url)
    crawl_to_the_budget(redis_db, redis_server.url, shards, 60, replica_factory, node_factory, *SHARDED)
    assert units_everywhere_at(redis_db, shards, 60) == 60
    assert all(int(redis_db.hget(keys.budget, "pages") or 0) > 0 for keys in shards), "the budget went to every shard"


def test_the_dupefilter_puts_a_fingerprint_in_its_shards_buckets(redis_db, redis_server) -> None:
    crawler = make_crawler(redis_server.url, BAIKE_SHARDS=3)
    dupefilter = BucketDupeFilter.from_crawler(crawler)
    assert dupefilter.split == ShardSplit.weighted(3, DEFAULT_SHARD0_SHARE)
    shards = keys_of(3, redis_server.url)
    seen = set()
    for n in range(60):
        fingerprint = hashlib.sha1(str(n).encode()).digest()
        bucket, _ = dupefilter.slot_of(fingerprint)
        shard = shard_of(fingerprint, dupefilter.split)
        assert bucket.startswith(shards[shard].dupefilter + ":") and dupefilter.bucket_shard(bucket) == shard
        seen.add(shard)
    assert seen == {0, 1, 2}
    assert redis_db.exists(shards[0].dupefilter) and not redis_db.exists(shards[1].dupefilter), "one layout record"


def test_the_bloom_filter_is_refused_with_shards(redis_server) -> None:
    crawler = make_crawler(redis_server.url, BAIKE_SHARDS=2)
    with pytest.raises(NodeRefused, match="BucketDupeFilter"):
        BloomDupeFilter.from_crawler(crawler)


def test_a_page_is_settled_on_its_shard_only_after_its_links_are_in_theirs(redis_db, redis_server) -> None:
    crawler = make_crawler(redis_server.url, BAIKE_SHARDS=3)
    scheduler = LeasedScheduler.from_crawler(crawler)
    scheduler.open(crawler.spider)
    shards = keys_of(3, redis_server.url)
    spider = crawler.spider
    try:
        assert scheduler.enqueue_request(Request("https://baike.baidu.com/item/parent/1", callback=spider.parse))
        parent = scheduler.next_request()
        lease = scheduler.lease_of(parent)
        home = shards[handle_shard(lease)]
        for n in range(2, 20):
            scheduler.enqueue_request(Request(f"https://baike.baidu.com/item/entry{n}/{n}", callback=spider.parse))
        assert scheduler.settle(lease)
        scheduler._flush()
        enqueued = [int(redis_db.hget(keys.budget, "enqueued") or 0) for keys in shards]
        assert sum(enqueued) == 19 and all(enqueued), "every link is in its shard"
        assert redis_db.zcard(home.leases) == 1 and scheduler.has_pending_requests(), "the page is not settled yet"
        scheduler._flush()
        assert redis_db.zcard(home.leases) == 0 and redis_db.hget(home.budget, "settled") == b"1"
        assert not scheduler.has_pending_requests()
    finally:
        scheduler.close("finished")
    assert_accounting_whole(redis_db, home)


def test_a_flush_waits_for_one_shard_to_fill_its_batch(redis_db, redis_server) -> None:
    crawler = make_crawler(redis_server.url, BAIKE_SHARDS=3, SCHEDULER_FLUSH_SHARD_SIZE=4)
    scheduler = LeasedScheduler.from_crawler(crawler)
    scheduler.open(crawler.spider)
    shards = keys_of(3, redis_server.url)
    spider = crawler.spider
    per_shard = [0, 0, 0]
    try:
        for n in range(2, 200):
            request = Request(f"https://baike.baidu.com/item/entry{n}/{n}", callback=spider.parse)
            shard = shard_of(crawler.request_fingerprinter.fingerprint(request), scheduler.split)
            if per_shard[shard] == 3:
                continue
            per_shard[shard] += 1
            assert scheduler.enqueue_request(request)
            if per_shard == [3, 3, 3]:
                break
        assert not any(redis_db.exists(keys.budget) for keys in shards), "no shard has a full batch yet: 9 wait"
        for n in range(200, 400):
            request = Request(f"https://baike.baidu.com/item/entry{n}/{n}", callback=spider.parse)
            if shard_of(crawler.request_fingerprinter.fingerprint(request), scheduler.split) == 1:
                assert scheduler.enqueue_request(request)
                break
        enqueued = [int(redis_db.hget(keys.budget, "enqueued") or 0) for keys in shards]
        assert enqueued == [3, 4, 3], "shard 1's fourth request flushes every shard's batch, one call each"
    finally:
        scheduler.close("finished")
