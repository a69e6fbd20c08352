"""Requests that end without a page: the frontier settles their leases, the spider knows nothing of leases."""

from __future__ import annotations

import inspect
import json
from types import SimpleNamespace

import pytest
from scrapy import Request
from scrapy.http import Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.error import ConnectionRefusedError
from twisted.python.failure import Failure

from baike.frontier.failures import dead_reason
from baike.frontier.scheduler import LeasedScheduler
from baike.guard import GiveUp
from baike.keys import CrawlKeys
from baike.settings import RETRY_HTTP_CODES
from baike.spiders import baike as spider_module
from baike.spiders.baike import BaikeSpider
from tests.frontier_helpers import make_crawler
from tests.support import free_port

KEYS = CrawlKeys.for_spider("baike")
PAGE = "https://baike.baidu.com/item/%E7%BD%91%E7%BB%9C%E7%88%AC%E8%99%AB/5162711"
OTHER = "https://baike.baidu.com/item/x/2"


def failure_of(exc: Exception, request: Request) -> Failure:
    failure = Failure(exc)
    failure.request = request
    return failure


@pytest.mark.parametrize(
    ("exception", "dead"),
    [
        (HttpError(Response(PAGE, status=503)), "HTTP 503 after retries"),
        (HttpError(Response(PAGE, status=429)), "HTTP 429 after retries"),
        (HttpError(Response(PAGE, status=404)), ""),
        (GiveUp("captcha answered 4 times"), "captcha answered 4 times"),
        (ConnectionRefusedError("refused"), "ConnectionRefusedError"),
    ],
)
def test_failure_reasons(exception: Exception, dead: str) -> None:
    reason = dead_reason(failure_of(exception, Request(PAGE)), RETRY_HTTP_CODES)
    assert reason.startswith(dead) if dead else reason == ""


def test_the_spider_has_no_lease_code() -> None:
    source = inspect.getsource(spider_module)
    for word in (
        "lease_of",
        "settle(",
        "LEASE_META_KEY",
        "dead_reason",
        "engine.scheduler",
        "def errback",
        "GiveUp",
        "HttpError",
    ):
        assert word not in source, f"the spider still speaks of {word!r}"
    assert not hasattr(BaikeSpider, "errback"), "a request that ends without a page is the frontier's"
    assert "errback" not in BaikeSpider.frontier_callbacks


@pytest.fixture()
def frontier(redis_db, redis_server):
    """A real leased scheduler and the request it handed out: (scheduler, request)."""
    crawler = make_crawler(redis_server.url)
    scheduler = LeasedScheduler.from_crawler(crawler)
    scheduler.open(crawler.spider)
    crawler.engine = SimpleNamespace(scheduler=scheduler)
    scheduler.enqueue_request(Request(PAGE, callback=crawler.spider.parse))
    request = scheduler.next_request()
    yield scheduler, request
    scheduler.close("finished")


def dead_letters(client) -> list[dict]:
    return [json.loads(raw) for raw in client.lrange(KEYS.dead, 0, -1)]


def test_a_failed_request_goes_to_the_dead_letters_once_with_its_reason(frontier, redis_db) -> None:
    scheduler, request = frontier
    assert request.errback == scheduler.failures.errback, "every request handed out has the frontier's errback"
    failure = failure_of(ConnectionRefusedError("refused"), request)
    assert request.errback(failure) is None
    request.errback(failure)  # a second report of the same request settles nothing more
    scheduler.close("finished")
    (letter,) = dead_letters(redis_db)
    assert letter["reason"].startswith("ConnectionRefusedError") and letter["payload"]["url"] == PAGE
    assert redis_db.zcard(KEYS.leases) == 0 and redis_db.zcard(KEYS.requests) == 0


def test_an_ignored_request_settles_without_a_dead_letter(frontier, redis_db) -> None:
    from scrapy.exceptions import IgnoreRequest

    scheduler, request = frontier
    request.errback(failure_of(IgnoreRequest("missing entry"), request))
    scheduler.close("finished")
    assert dead_letters(redis_db) == [] and redis_db.zcard(KEYS.leases) == 0


def test_a_retry_goes_back_without_the_frontiers_errback_and_keeps_the_requests_own(frontier, redis_db) -> None:
    scheduler, request = frontier
    spider = scheduler.spider
    # a request with an errback of its own: the frontier's is called first, then its own
    scheduler.enqueue_request(Request(OTHER, callback=spider.parse, errback=spider.errback))
    scheduler._flush()
    own = scheduler.next_request()
    assert own.errback == scheduler.failures.errback
    # a retry copies the request, errback and lease included, and comes back to the frontier
    retry = request.replace(dont_filter=True)
    assert scheduler.enqueue_request(retry) and retry.errback is None
    own_retry = own.replace(dont_filter=True)
    assert scheduler.enqueue_request(own_retry) and own_retry.errback == spider.errback
    scheduler._flush()
    stored = [scheduler.next_request(), scheduler.next_request()]
    assert sorted(str(r.url) for r in stored) == sorted([request.url, own.url]), "both retries were stored"
    assert dead_letters(redis_db) == []


def test_a_stored_request_naming_the_spiders_old_errback_is_still_read(redis_db, redis_server) -> None:
    crawler = make_crawler(redis_server.url)
    crawler.spider = BaikeSpider.from_crawler(crawler)
    scheduler = LeasedScheduler.from_crawler(crawler)
    scheduler.open(crawler.spider)
    try:
        payload = scheduler.queue.encode(Request(PAGE, callback=crawler.spider.parse))
        old = json.loads(payload)
        old["errback"] = "errback"
        request = scheduler.queue.decode(json.dumps(old).encode())
        assert request.callback == crawler.spider.parse and request.errback is None
    finally:
        scheduler.close("finished")


@pytest.mark.e2e
def test_a_download_failure_after_retries_lands_in_the_dead_letters_with_the_reason(
    redis_db, redis_server, node_factory
) -> None:
    nothing_there = f"http://127.0.0.1:{free_port()}"
    redis_db.lpush(KEYS.start_urls, PAGE)
    node = node_factory(redis_server.url, nothing_there, "RETRY_TIMES=2", "CLOSESPIDER_PAGECOUNT=0")
    assert node.wait(timeout=120) == 0, node.log[-3000:]
    assert node.finish_reason == "finished"
    assert "Gave up retrying" in node.log and node.stat("retry/count") == 2, "retried first"
    (letter,) = dead_letters(redis_db)
    assert letter["reason"].startswith("DownloadConnectionRefusedError: "), letter
    assert letter["payload"]["meta"]["retry_times"] == 2, "the request of the last retry"
    assert redis_db.zcard(KEYS.leases) == 0 and redis_db.zcard(KEYS.requests) == 0
    assert node.stat("baike/requests/failed") == 1 and node.stat("log_count/ERROR") == 1, (
        "one error line: RetryMiddleware's; the frontier's is a warning, and Scrapy logs no download error"
    )


@pytest.mark.e2e
def test_captchas_and_missing_entries_end_with_their_reasons(
    redis_db, redis_server, replica_factory, node_factory
) -> None:
    replica = replica_factory(300, 5, "--captcha-rate", "1")
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    node = node_factory(redis_server.url, replica.url, "BAIKE_CAPTCHA_RETRIES=1", "CLOSESPIDER_PAGECOUNT=0")
    assert node.wait(timeout=120) == 0, node.log[-3000:]
    (letter,) = dead_letters(redis_db)
    assert letter["reason"].startswith("captcha answered 2 times for "), letter
    assert redis_db.zcard(KEYS.leases) == 0

    redis_db.delete(KEYS.dead)
    plain = replica_factory(300, 5)
    redis_db.lpush(KEYS.start_urls, "https://baike.baidu.com/item/no-such-entry/987654321")
    node = node_factory(redis_server.url, plain.url, "CLOSESPIDER_PAGECOUNT=0")
    assert node.wait(timeout=120) == 0, node.log[-3000:]
    assert node.stat("baike/missing") == 1 and dead_letters(redis_db) == []
    assert redis_db.zcard(KEYS.leases) == 0 and redis_db.zcard(KEYS.requests) == 0
