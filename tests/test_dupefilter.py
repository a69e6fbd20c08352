"""The shared dupefilters (exact buckets and the Bloom filter), on a real redis-server."""

from __future__ import annotations

import hashlib
import logging
import random
from urllib.parse import quote

import pytest
from scrapy import Request
from w3lib.url import canonicalize_url

from baike.errors import NodeRefused
from baike.frontier.bloom import SHARD_BITS, SHARD_BYTES, BloomDupeFilter, BloomLayout
from baike.frontier.dupefilter import BucketDupeFilter, BucketLayout
from baike.frontier.fingerprint import CanonicalRequestFingerprinter, _entry_fingerprint, is_plain_entry
from baike.frontier.queue import LeasedQueue
from baike.keys import CrawlKeys
from baike.parsing import parse_page
from baike.urls import canonicalize
from replica.layouts import Renderer
from replica.site import Site
from tests.conftest import free_port
from tests.frontier_helpers import make_crawler

KEYS = CrawlKeys.for_spider("baike")
MIRROR = "http://127.0.0.1:8800"


def entry(n: int) -> str:
    return f"https://baike.baidu.com/item/entry{n}/{n}"


def fingerprints(count: int, salt: str = "") -> list[bytes]:
    return [hashlib.sha1(f"{salt}{n}".encode()).digest() for n in range(count)]


@pytest.fixture()
def crawler(redis_db, redis_server):
    return make_crawler(redis_server.url, BAIKE_MIRROR=MIRROR, DUPEFILTER_EXPECTED_URLS=8000)


# -- the exact bucket filter ---------------------------------------------------------------


def test_layout_fills_buckets_to_the_target_at_the_expected_size() -> None:
    assert BucketLayout.for_size(1_000_000, 80) == BucketLayout(buckets=12_500, field_bytes=5)
    assert BucketLayout.for_size(10_000_001, 80).buckets == 125_001
    assert BucketLayout.for_size(1, 80).buckets == 1
    for bad in ({"buckets": 0}, {"buckets": 10, "field_bytes": 0}, {"buckets": 10, "field_bytes": 17}):
        with pytest.raises(ValueError):
            BucketLayout(**bad)


def test_slot_cuts_a_fingerprint_into_bucket_and_field(crawler) -> None:
    df = BucketDupeFilter.from_crawler(crawler)
    assert df.layout == BucketLayout(buckets=100, field_bytes=5)
    fingerprint = crawler.request_fingerprinter.fingerprint(Request(entry(1)))
    key, field = df.slot(Request(entry(1)))
    assert field == fingerprint[:5]
    assert key == f"{KEYS.dupefilter}:{int.from_bytes(fingerprint[5:9], 'big') % 100:x}"
    assert df.slot_of(b"short") == df.slot_of(hashlib.sha1(b"short").digest())


def test_a_mirror_url_and_its_canonical_url_share_one_fingerprint(crawler) -> None:
    fingerprinter = crawler.request_fingerprinter
    assert isinstance(fingerprinter, CanonicalRequestFingerprinter)
    canonical = "https://baike.baidu.com/item/%E5%90%B4%E6%9D%BE/92577436"
    mirrored = f"{MIRROR}/item/%E5%90%B4%E6%9D%BE/92577436"
    assert fingerprinter.fingerprint(Request(mirrored)) == fingerprinter.fingerprint(Request(canonical))

    df = BucketDupeFilter.from_crawler(crawler)
    assert df.slot(Request(mirrored)) == df.slot(Request(canonical))
    assert df.request_seen(Request(canonical)) is False
    assert df.request_seen(Request(mirrored)) is True


def test_request_seen_is_exact_over_many_urls(crawler, redis_db) -> None:
    df = BucketDupeFilter.from_crawler(crawler)
    requests = [Request(entry(n)) for n in range(2000)]
    assert not any(df.request_seen(request) for request in requests)
    assert all(df.request_seen(request) for request in requests[::7])
    buckets = list(redis_db.scan_iter(match=f"{KEYS.dupefilter}:*", count=1000))
    assert sum(redis_db.hlen(key) for key in buckets) == 2000
    assert {redis_db.type(key) for key in buckets} == {b"hash"}


def test_buckets_stay_short_enough_to_be_listpacks(redis_db) -> None:
    layout = BucketLayout.for_size(40_000, 80)
    df = BucketDupeFilter(redis_db, KEYS.dupefilter, fingerprinter=None, layout=layout)
    with redis_db.pipeline(transaction=False) as pipe:
        for fingerprint in fingerprints(40_000):
            pipe.hsetnx(*df.slot_of(fingerprint), b"")
        assert sum(pipe.execute()) == 40_000
    with redis_db.pipeline(transaction=False) as pipe:
        for index in range(layout.buckets):
            pipe.hlen(f"{KEYS.dupefilter}:{index:x}")
        sizes = pipe.execute()
    assert len(sizes) == 500 and min(sizes) > 40 and max(sizes) < 128


def test_the_first_node_records_the_layout_and_later_nodes_adopt_it(redis_db, redis_server, caplog) -> None:
    first = BucketDupeFilter.from_crawler(make_crawler(redis_server.url, DUPEFILTER_EXPECTED_URLS=8000))
    assert redis_db.hgetall(KEYS.dupefilter) == {b"buckets": b"100", b"field_bytes": b"5"}
    with caplog.at_level(logging.WARNING):
        later = BucketDupeFilter.from_crawler(
            make_crawler(redis_server.url, DUPEFILTER_EXPECTED_URLS=10**9, DUPEFILTER_FIELD_BYTES=6)
        )
    assert later.layout == first.layout
    assert "using them, not the 12500000 buckets" in caplog.text
    assert later.slot(Request(entry(5))) == first.slot(Request(entry(5)))


def test_the_leased_queue_dedups_on_the_slots(crawler, redis_db) -> None:
    df = BucketDupeFilter.from_crawler(crawler)
    queue = LeasedQueue(redis_db, crawler.spider, KEYS.requests)
    requests = [Request(entry(n)) for n in (1, 2, 1, 3)] + [Request(f"{MIRROR}/item/entry2/2")]
    pushes = [(*df.slot(request), 0, queue.encode(request)) for request in requests]
    assert queue.push_and_ack("n1", pushes, [])[:2] == (3, 2)
    assert df.request_seen(Request(entry(3))) is True
    assert df.request_seen(Request(entry(4))) is False


def test_from_spider_serves_scrapy_redis_own_scheduler(crawler) -> None:
    df = BucketDupeFilter.from_spider(crawler.spider)
    assert df.key == KEYS.dupefilter and df.layout.buckets == 100


def test_clear_deletes_buckets_and_layout_only(crawler, redis_db) -> None:
    df = BucketDupeFilter.from_crawler(crawler)
    for n in range(300):
        df.request_seen(Request(entry(n)))
    redis_db.set("other:key", "kept")
    buckets = len(list(redis_db.scan_iter(match=f"{KEYS.dupefilter}:*")))
    assert df.clear() == buckets + 1
    assert redis_db.keys("*") == [b"other:key"]
    df.close("finished")


# -- the Bloom filter ------------------------------------------------------------------


def test_bloom_layout_follows_the_textbook_formulas() -> None:
    small = BloomLayout.for_capacity(100_000, 0.001)
    assert small == BloomLayout(shards=1, shard_bits=1_437_759, hashes=10)
    assert small.error_rate(100_000) == pytest.approx(0.001, rel=0.01)
    big = BloomLayout.for_capacity(10_000_000, 0.001)
    assert big.shards == 69 and big.shard_bits == SHARD_BITS and big.hashes == 10
    assert big.shards * (1 << 18) / 10_000_000 < 2.0, "256 KiB allocations, under 2 bytes per URL"
    assert big.error_rate(10_000_000) <= 0.001
    with pytest.raises(ValueError):
        BloomLayout(shards=1, shard_bits=SHARD_BITS + 1, hashes=3)
    shard, h1, h2 = big.place(hashlib.sha1(b"x").digest())
    assert 0 <= shard < 69 and 0 <= h1 < SHARD_BITS and 1 <= h2 < SHARD_BITS


def bloom(redis_server, **settings) -> BloomDupeFilter:
    crawler = make_crawler(redis_server.url, BAIKE_MIRROR=MIRROR, **settings)
    return BloomDupeFilter.from_crawler(crawler)


def test_bloom_allocates_full_shards_once_and_records_its_layout(redis_db, redis_server) -> None:
    df = bloom(redis_server, BLOOM_CAPACITY=300_000, BLOOM_ERROR_RATE=0.001)
    assert df.layout.shards == 3
    assert [redis_db.strlen(f"baike:bloom:{i}") for i in range(3)] == [SHARD_BYTES] * 3
    assert all(redis_db.memory_usage(f"baike:bloom:{i}") <= (1 << 18) + 64 for i in range(3))
    assert redis_db.hgetall("baike:bloom") == {
        b"shards": b"3",
        b"shard_bits": str(SHARD_BITS).encode(),
        b"hashes": b"10",
    }
    df.request_seen(Request(entry(1)))
    other = bloom(redis_server, BLOOM_CAPACITY=99)
    assert other.layout == df.layout
    assert other.request_seen(Request(entry(1))) is True, "the second node kept the first one's bits"


def test_bloom_request_seen_and_mirror_urls(redis_db, redis_server) -> None:
    df = bloom(redis_server, BLOOM_CAPACITY=10_000)
    assert df.request_seen(Request(entry(1))) is False
    assert df.request_seen(Request(entry(1))) is True
    assert df.request_seen(Request(f"{MIRROR}/item/entry1/1")) is True
    assert df.request_seen(Request(entry(2))) is False


def test_bloom_false_positive_rate_is_near_its_design(redis_db, redis_server) -> None:
    df = BloomDupeFilter(redis_db, "baike:bloom", None, BloomLayout(shards=2, shard_bits=24_000, hashes=7))
    df.create()
    added = fingerprints(5000)
    flags = [seen for start in range(0, 5000, 500) for seen in df.add_fingerprints(added[start : start + 500])]
    assert sum(flags) < 25, "few false positives while filling"
    assert all(df.contains_fingerprints(added[:1000]))
    fresh = df.contains_fingerprints(fingerprints(20_000, salt="fresh"))
    assert df.layout.error_rate(5000) == pytest.approx(0.0095, abs=0.001)
    assert 0.005 < sum(fresh) / len(fresh) < 0.02
    assert df.contains_fingerprints([]) == [] and df.add_fingerprints([]) == []


def test_bloom_works_as_a_standalone_dupefilter_and_clears(redis_db, redis_server) -> None:
    crawler = make_crawler(redis_server.url, BLOOM_CAPACITY=1000, BLOOM_KEY="%(spider)s:bloomtest")
    df = BloomDupeFilter.from_spider(crawler.spider)
    assert df.request_seen(Request(entry(1))) is False
    df.close("finished")
    assert redis_db.exists("baike:bloomtest", "baike:bloomtest:0") == 2
    redis_db.set("baike:bloomtestother", "kept")
    assert df.clear() == 2
    assert redis_db.keys("baike:bloom*") == [b"baike:bloomtestother"]


def test_bloom_marks_seen_in_the_same_step_that_enqueues(redis_db, redis_server) -> None:
    """The push script sets a URL's Bloom bits only where it stores the request: the same
    bits BLOOM_ADD sets, so both ways of asking agree."""
    crawler = make_crawler(redis_server.url, BLOOM_CAPACITY=10_000)
    df = BloomDupeFilter.from_crawler(crawler)
    queue = LeasedQueue(redis_db, crawler.spider, KEYS.requests)
    requests = [Request(entry(n)) for n in (1, 2, 1)]
    pushes = [(*df.slot(r), r.priority, queue.encode(r)) for r in requests]
    assert queue.push_and_ack("n1", pushes, [], df.bloom)[:2] == (2, 1)
    assert df.request_seen(Request(entry(1))) is True and df.request_seen(Request(entry(2))) is True
    assert df.request_seen(Request(entry(3))) is False
    fresh = Request(entry(4))
    assert queue.push_and_ack("n1", [(*df.slot(fresh), 0, queue.encode(fresh))], [], df.bloom)[:2] == (1, 0)
    assert df.contains_fingerprints([crawler.request_fingerprinter.fingerprint(fresh)]) == [True]


@pytest.mark.parametrize(
    ("record", "message"),
    [({"buckets": "abc", "field_bytes": "5"}, "is not one"), ({"buckets": "0", "field_bytes": "5"}, "is not one")],
)
def test_a_node_refuses_a_layout_it_cannot_agree_with(redis_db, redis_server, record, message) -> None:
    redis_db.hset(KEYS.dupefilter, mapping=record)
    with pytest.raises(NodeRefused, match=message):
        BucketDupeFilter.from_crawler(make_crawler(redis_server.url))


def test_a_node_refuses_to_start_without_reading_the_layout(redis_server) -> None:
    with pytest.raises(NodeRefused, match="cannot read the crawl's dupefilter layout"):
        BucketDupeFilter.from_crawler(make_crawler(f"redis://127.0.0.1:{free_port()}/0"))
    with pytest.raises(NodeRefused, match="cannot read the crawl's Bloom filter layout"):
        BloomDupeFilter.from_crawler(make_crawler(f"redis://127.0.0.1:{free_port()}/0"))


def test_a_node_refuses_a_bloom_layout_it_cannot_agree_with(redis_db, redis_server) -> None:
    redis_db.hset("baike:bloom", mapping={"shards": "1", "shard_bits": "x", "hashes": "7"})
    with pytest.raises(NodeRefused, match="is not one"):
        BloomDupeFilter.from_crawler(make_crawler(redis_server.url))


@pytest.mark.parametrize(
    "url",
    [
        "https://baike.baidu.com/item/%E5%90%B4%E6%9D%BE/92577436",
        "https://baike.baidu.com/item/C%2B%2B",
        "https://baike.baidu.com/item/%E9%83%AD%E6%96%87%E6%99%AF?force=1",
        "https://baike.baidu.com/view/10812277.htm",
        "https://baike.baidu.com/subview/1/2.htm",
        "https://baike.baidu.com/item/a%20b%3Fc%23d/7",
    ],
)
def test_an_entry_fingerprint_is_scrapys_fingerprint_of_its_canonical_url(crawler, url) -> None:
    """Computed without a Request, it stays exactly Scrapy's (the shared dupefilter holds them)."""
    from scrapy.utils.request import fingerprint as scrapy_fingerprint

    fingerprinter = crawler.request_fingerprinter
    assert fingerprinter.fingerprint(Request(url)) == scrapy_fingerprint(Request(url))
    assert fingerprinter.fingerprint(Request(url.replace("https://baike.baidu.com", MIRROR))) == scrapy_fingerprint(
        Request(url)
    )
    # a verbatim URL that is its own canonical form keeps Scrapy's verbatim fingerprint
    verbatim = Request(url, meta={"verbatim_url": True})
    assert fingerprinter.fingerprint(verbatim) == scrapy_fingerprint(Request(url, meta={"verbatim_url": True}))


def _canonical_entry_urls() -> list[str]:
    """Canonical URLs the crawl meets: every entry and list page of a replica site and the
    links of some of its pages (every layout), names of every ASCII character, dots, and
    random names mixing ASCII, CJK, symbols and astral characters."""
    site = Site(2000, 7)
    renderer = Renderer(site)
    urls = {site.canonical_url(index) for index in range(site.page_count)}
    urls |= {site.list_url(word) for word in range(0, len(site.word_senses), 3)}
    for index in range(0, site.page_count, 97):
        page = parse_page(renderer.entry_page(index), site.canonical_url(index))
        urls |= set(page.links)
    names = [chr(code) for code in range(0x20, 0x7F)] + [".", "..", "a.b", ".a", "~x", "a/b", "%", "%2F", "%E4"]
    rng = random.Random(18)
    alphabet = (
        [chr(code) for code in range(0x21, 0x7F)] + list("中文百科·（）—、郭文景") + ["\u00e9", "\U0001f600", " "]
    )
    names += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))) for _ in range(3000)]
    for name in names:
        for form in (f"/item/{quote(name, safe='')}", f"/item/{quote(name, safe='')}/{rng.randint(1, 10**9)}"):
            for query in ("", "?force=1"):
                url = canonicalize(f"https://baike.baidu.com{form}{query}")
                if url is not None:
                    urls.add(url)
    return sorted(urls)


def test_a_plain_entry_url_is_its_own_w3lib_canonical_form_and_scrapys_fingerprint() -> None:
    """The fingerprint's shortcut (no canonicalize_url, no json.dumps) for canonical URLs of
    plain names gives w3lib's canonical URL and Scrapy's fingerprint, and the URLs it
    turns down are fingerprinted as before, on every form the crawl meets."""
    from scrapy.utils.request import fingerprint as scrapy_fingerprint

    plain = other = 0
    for url in _canonical_entry_urls():
        if is_plain_entry(url):
            assert canonicalize_url(url) == url, url
            plain += 1
        else:
            other += 1
        assert _entry_fingerprint.__wrapped__(url) == scrapy_fingerprint(Request(url)), url
    assert plain > 3000 and other > 1000, (plain, other)
