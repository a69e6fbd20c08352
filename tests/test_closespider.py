"""ClusterCloseSpider's per-process conditions, Scrapy's CloseSpider's, kept without subclassing it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from scrapy import signals
from scrapy.core.scheduler import Scheduler

from baike.extensions.closespider import ClusterCloseSpider
from tests.frontier_helpers import PROJECT_SETTINGS, make_crawler

ENDER = f"{ClusterCloseSpider.__module__}.{ClusterCloseSpider.__qualname__}"
SCRAPY_SCHEDULER = f"{Scheduler.__module__}.{Scheduler.__qualname__}"


def extension(redis_server, **settings) -> tuple[ClusterCloseSpider, list[str]]:
    """The extension on a crawler whose engine records the reasons it is closed with (the
    crawler's own extensions without it, Scrapy's CloseSpider off as in the project)."""
    crawler = make_crawler(redis_server.url, EXTENSIONS={**PROJECT_SETTINGS["EXTENSIONS"], ENDER: None}, **settings)
    closed: list[str] = []
    crawler.engine = SimpleNamespace(close_spider_async=lambda reason: closed.append(reason))
    return ClusterCloseSpider.from_crawler(crawler), closed


def send(ender: ClusterCloseSpider, signal, count: int, **kwargs) -> None:
    spider = ender.crawler.spider
    for _ in range(count):
        ender.crawler.signals.send_catch_log(signal, spider=spider, **kwargs)


@pytest.mark.parametrize(
    ("setting", "signal", "kwargs", "reason"),
    [
        ("CLOSESPIDER_ITEMCOUNT", signals.item_scraped, {"item": {}, "response": None}, "closespider_itemcount"),
        ("CLOSESPIDER_ERRORCOUNT", signals.spider_error, {"failure": None, "response": None}, "closespider_errorcount"),
        (
            "CLOSESPIDER_PAGECOUNT_NO_ITEM",
            signals.response_received,
            {"response": None, "request": None},
            "closespider_pagecount_no_item",
        ),
    ],
)
def test_per_process_conditions_close_the_node_once(redis_db, redis_server, setting, signal, kwargs, reason) -> None:
    ender, closed = extension(redis_server, **{setting: 3})
    send(ender, signal, 2, **kwargs)
    assert closed == []
    send(ender, signal, 3, **kwargs)
    assert closed == [reason]


def test_an_item_resets_the_pages_without_one(redis_db, redis_server) -> None:
    ender, closed = extension(redis_server, CLOSESPIDER_PAGECOUNT_NO_ITEM=2)
    page = {"response": None, "request": None}
    send(ender, signals.response_received, 1, **page)
    send(ender, signals.item_scraped, 1, item={}, response=None)
    send(ender, signals.response_received, 1, **page)
    assert closed == []
    send(ender, signals.response_received, 1, **page)
    assert closed == ["closespider_pagecount_no_item"]


def test_the_page_budget_is_the_nodes_own_only_without_the_leased_scheduler(redis_db, redis_server) -> None:
    page = {"response": None, "request": None}
    clustered, closed = extension(redis_server, CLOSESPIDER_PAGECOUNT=2)
    send(clustered, signals.response_received, 3, **page)
    assert closed == [], "the cluster's budget is counted in Redis, not here"
    alone, closed = extension(redis_server, CLOSESPIDER_PAGECOUNT=2, SCHEDULER=SCRAPY_SCHEDULER)
    send(alone, signals.response_received, 2, **page)
    assert closed == ["closespider_pagecount"]


def test_a_node_with_no_condition_set_still_watches_the_cluster(redis_db, redis_server) -> None:
    ender, closed = extension(redis_server, CLOSESPIDER_PAGECOUNT=0)
    send(ender, signals.response_received, 5, response=None, request=None)
    send(ender, signals.item_scraped, 5, item={}, response=None)
    assert closed == [] and ender.page_budget == 0
