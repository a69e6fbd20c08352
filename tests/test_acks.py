"""The acknowledgement middleware: a lease settles only when all its page's output is handled."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from scrapy import Request, signals
from scrapy.exceptions import IgnoreRequest
from scrapy.http import HtmlResponse

from baike.errors import DeadLetter
from baike.frontier.acks import LeaseAckMiddleware
from baike.frontier.queue import LEASE_META_KEY
from baike.items import BaikeItem
from tests.frontier_helpers import make_crawler

PAGE = "https://baike.baidu.com/item/x/1"


class RecordingScheduler:
    """Only what the middleware asks of the leased scheduler."""

    def __init__(self) -> None:
        self.settled: list[tuple[str, str]] = []
        self.records: dict[str, tuple[str, ...]] = {}

    def lease_of(self, request: Request) -> str | None:
        return request.meta.get(LEASE_META_KEY)

    def settle(self, lease: str, reason: str = "", records: tuple[str, ...] = ()) -> bool:
        self.settled.append((lease, reason))
        self.records[lease] = records
        return True


@pytest.fixture()
def middleware(redis_db, redis_server):
    crawler = make_crawler(redis_server.url)
    crawler.engine = SimpleNamespace(scheduler=RecordingScheduler())
    return LeaseAckMiddleware(crawler)


def leased_response(lease: str = "7") -> HtmlResponse:
    return HtmlResponse(PAGE, body=b"<html></html>", request=Request(PAGE, meta={LEASE_META_KEY: lease}))


def drain(middleware: LeaseAckMiddleware, response: HtmlResponse, outputs: list) -> list:
    async def produce():
        for output in outputs:
            if isinstance(output, Exception):
                raise output
            yield output

    async def collect():
        return [element async for element in middleware.process_spider_output(response, produce())]

    # a loop of its own, leaving the reactor's current loop in place for the other tests
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(collect())
    finally:
        loop.close()


def test_the_lease_waits_for_every_request_to_reach_the_scheduler(middleware) -> None:
    response = leased_response()
    children = [Request(f"https://baike.baidu.com/item/c/{n}") for n in range(500)]
    out = drain(middleware, response, [*children, None])
    scheduler = middleware.scheduler
    assert len(out) == 501 and scheduler.settled == [], "output exhausted, but no request has arrived yet"
    send = middleware.crawler.signals.send_catch_log
    for child in children[:-1]:
        send(signals.request_scheduled, request=child, spider=middleware.crawler.spider)
    assert scheduler.settled == []
    send(signals.request_scheduled, request=children[-1], spider=middleware.crawler.spider)
    assert scheduler.settled == [("7", "")]


def test_none_outputs_are_not_items(middleware) -> None:
    drain(middleware, leased_response(), [None, None])
    assert middleware.scheduler.settled == [("7", "")]


def test_a_dropped_item_and_the_links_settle_together(middleware) -> None:
    response = leased_response()
    child = Request("https://baike.baidu.com/item/c/1")
    item = BaikeItem(url=PAGE, title="x")
    drain(middleware, response, [item, child])
    crawler = middleware.crawler
    crawler.signals.send_catch_log(
        signals.item_dropped, item=item, response=response, exception=Exception("dropped"), spider=crawler.spider
    )
    assert middleware.scheduler.settled == []
    crawler.signals.send_catch_log(signals.request_scheduled, request=child, spider=crawler.spider)
    assert middleware.scheduler.settled == [("7", "")]


def test_the_ack_names_the_records_its_page_stored_not_the_dropped_ones(middleware) -> None:
    """Redis settles the lease only if it holds these records (a failover may have lost them)."""
    response = leased_response()
    stored, dropped = BaikeItem(url=PAGE, title="x"), BaikeItem(url="https://baike.baidu.com/item/y/2", title="y")
    drain(middleware, response, [stored, dropped])
    crawler = middleware.crawler
    crawler.signals.send_catch_log(signals.item_scraped, item=stored, response=response, spider=crawler.spider)
    crawler.signals.send_catch_log(
        signals.item_dropped, item=dropped, response=response, exception=Exception("dropped"), spider=crawler.spider
    )
    assert middleware.scheduler.settled == [("7", "")]
    assert middleware.scheduler.records == {"7": (PAGE,)}


def test_without_the_redis_store_no_record_is_named(redis_db, redis_server) -> None:
    crawler = make_crawler(redis_server.url, ITEM_PIPELINES={"baike.pipelines.RedisStorePipeline": None})
    crawler.engine = SimpleNamespace(scheduler=RecordingScheduler())
    middleware = LeaseAckMiddleware(crawler)
    response = leased_response()
    item = BaikeItem(url=PAGE, title="x")
    drain(middleware, response, [item])
    crawler.signals.send_catch_log(signals.item_scraped, item=item, response=response, spider=crawler.spider)
    assert middleware.scheduler.records == {"7": ()}


def test_a_parser_failure_dead_letters_the_page_with_its_reason(middleware) -> None:
    with pytest.raises(DeadLetter):
        drain(middleware, leased_response(), [DeadLetter("parser failed: KeyError('x')")])
    assert middleware.scheduler.settled == [("7", "parser failed: KeyError('x')")]


@pytest.fixture()
def leased(redis_db, redis_server):
    """A real leased scheduler with the middleware, after spider_opened: (middleware, scheduler, parent)."""
    from baike.frontier.scheduler import LeasedScheduler

    crawler = make_crawler(redis_server.url)
    scheduler = LeasedScheduler.from_crawler(crawler)
    scheduler.open(crawler.spider)
    crawler.engine = SimpleNamespace(scheduler=scheduler)
    middleware = LeaseAckMiddleware(crawler)
    scheduler.enqueue_request(Request(PAGE, callback=crawler.spider.parse))
    parent = scheduler.next_request()
    yield middleware, scheduler, parent
    scheduler.close("finished")


def children_of(count: int) -> list[Request]:
    return [Request(f"https://baike.baidu.com/item/c/{n}") for n in range(count)]


def test_without_other_request_scheduled_receivers_the_scheduler_counts_a_pages_requests(leased) -> None:
    middleware, scheduler, parent = leased
    crawler = middleware.crawler
    crawler.signals.send_catch_log(signals.spider_opened, spider=crawler.spider)
    response = HtmlResponse(parent.url, body=b"<html></html>", request=parent)
    children = children_of(3)
    drain(middleware, response, [*children, None])
    lease = parent.meta[LEASE_META_KEY]
    for child in children:
        # the engine still sends the signal, with no receiver of the middleware's left
        crawler.signals.send_catch_log(signals.request_scheduled, request=child, spider=crawler.spider)
    assert scheduler._acks == [] and len(scheduler) == 0
    for child in children[:-1]:
        scheduler.enqueue_request(child)
    assert scheduler._acks == [], "one request of the page has not arrived"
    scheduler.enqueue_request(children[-1])
    assert [ack[0] for ack in scheduler._acks] == [lease] and len(scheduler) == 3


def test_with_another_request_scheduled_receiver_the_signal_counts_as_before(leased) -> None:
    middleware, scheduler, parent = leased
    crawler = middleware.crawler
    dropped = []

    def drop_everything(request: Request, spider) -> None:
        dropped.append(request)
        raise IgnoreRequest("offsite")

    crawler.signals.connect(drop_everything, signal=signals.request_scheduled)
    crawler.signals.send_catch_log(signals.spider_opened, spider=crawler.spider)
    response = HtmlResponse(parent.url, body=b"<html></html>", request=parent)
    children = children_of(2)
    drain(middleware, response, [*children, None])
    for child in children:
        crawler.signals.send_catch_log(signals.request_scheduled, request=child, spider=crawler.spider)
    # dropped before the scheduler: never enqueued, yet the page is settled
    assert len(dropped) == 2 and len(scheduler) == 0
    assert [ack[0] for ack in scheduler._acks] == [parent.meta[LEASE_META_KEY]]
