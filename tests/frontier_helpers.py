"""Builds frontier components on the suite's Redis without running a crawl."""

from __future__ import annotations

import redis
from scrapy import Spider
from scrapy.utils.reactor import install_reactor, is_reactor_installed
from scrapy.utils.test import get_crawler

from baike import settings as project_settings

if not is_reactor_installed():
    install_reactor("twisted.internet.asyncioreactor.AsyncioSelectorReactor")

PROJECT_SETTINGS = {name: getattr(project_settings, name) for name in dir(project_settings) if name.isupper()}


class FrontierSpider(Spider):
    name = "baike"
    frontier_callbacks = ("parse", "errback")

    def parse(self, response):
        return None

    def errback(self, failure):
        return None


def make_crawler(redis_url: str, **overrides):
    settings = {**PROJECT_SETTINGS, "REDIS_URL": redis_url, "BAIKE_MIRROR": "", "BAIKE_CLUSTER_RATE": 0, **overrides}
    crawler = get_crawler(FrontierSpider, settings)
    crawler.spider = FrontierSpider.from_crawler(crawler)
    return crawler


class DropHubPipeline:
    """A user's item pipeline that drops the item of the page titled "hub" (for nodes
    started with it in ITEM_PIPELINES): a page whose item leaves at once."""

    def process_item(self, item):
        from scrapy.exceptions import DropItem

        if item.get("title") == "hub":
            raise DropItem("the hub's item is not kept")
        return item


class CustomRedis(redis.Redis):
    """A Redis client class of the user's own, named by REDIS_PARAMS["redis_cls"]."""
