"""The Referer of the requests the spider yields (baike.referer): the header Scrapy's
RefererMiddleware set on them before, for every referrer policy, now set by the spider."""

from __future__ import annotations

import warnings

import pytest
from scrapy import Request, signals
from scrapy.core.engine import ExecutionEngine
from scrapy.downloadermiddlewares.redirect import RedirectMiddleware
from scrapy.http import HtmlResponse, Response
from scrapy.spidermiddlewares.referer import RefererMiddleware, ReferrerPolicy
from scrapy.utils.test import get_crawler

from baike.referer import SpiderRefererMiddleware
from baike.spiders.baike import BaikeSpider
from replica.layouts import Renderer
from replica.site import Site
from tests.frontier_helpers import PROJECT_SETTINGS

BAIKE = "https://baike.baidu.com"
HTTP_MIRROR = "http://127.0.0.1:8800"
HTTPS_MIRROR = "https://127.0.0.1:8443"
# The response's origin and the mirror the spider downloads from: its links' origin.
# The last is a downgrade (an https page, requests over http).
ORIGINS = [(HTTP_MIRROR, HTTP_MIRROR), (BAIKE, ""), (HTTPS_MIRROR, HTTPS_MIRROR), (BAIKE, HTTP_MIRROR)]
PAGE_HEADERS = [None, "no-referrer", "unsafe-url", "origin, same-origin", "strict-origin", "not-a-policy"]


class PathPolicy(ReferrerPolicy):
    """A policy of one's own that reads more of the request URL than its origin."""

    name = "baike-test-path"

    def referrer(self, response_url: str, request_url: str) -> str | None:
        return response_url if request_url.endswith(("1", "3", "5", "7", "9")) else None


POLICIES = [
    None,  # Scrapy's default, the project's
    "no-referrer",
    "no-referrer-when-downgrade",
    "same-origin",
    "origin",
    "strict-origin",
    "origin-when-cross-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
    "scrapy.spidermiddlewares.referer.OriginPolicy",
    f"{__name__}.PathPolicy",
]


@pytest.fixture(scope="module")
def pages() -> list[tuple[str, bytes]]:
    """Site paths and bodies of replica pages of each layout, and a disambiguation list."""
    site = Site(600, 7)
    renderer = Renderer(site)
    found = [(site.entry_path(index), renderer.entry_page(index)) for index in range(0, 600, 100)]
    word = next(word for word in range(len(site.word_senses)) if len(site.word_senses[word]) > 1)
    found.append((site.list_path(word), renderer.list_page(word)))
    return found


def spider_with(redis_url: str, mirror: str, policy: str | None) -> BaikeSpider:
    settings = {**PROJECT_SETTINGS, "REDIS_URL": redis_url, "BAIKE_MIRROR": mirror, "BAIKE_KNOWN_LINKS": 0}
    if policy is not None:
        settings["REFERRER_POLICY"] = policy
    return BaikeSpider.from_crawler(get_crawler(BaikeSpider, settings))


def sent(output: list) -> list[tuple[str, dict, list[bytes]]]:
    return [(r.url, r.meta, r.headers.getlist("Referer")) for r in output if isinstance(r, Request)]


@pytest.mark.parametrize("policy", POLICIES, ids=lambda policy: str(policy).rsplit(".", 1)[-1])
def test_requests_carry_the_referer_scrapys_middleware_gave_them(redis_server, pages, policy: str | None) -> None:
    """Before: the spider's output through Scrapy's RefererMiddleware. Now: the spider's
    output as it leaves the spider, with the project's stand-in found where the engine
    would give it. The same requests, the same Referer (or none), page by page."""
    compared = referred = 0
    for page_origin, mirror in ORIGINS:
        before = spider_with(redis_server.url, mirror, policy)
        scrapys = RefererMiddleware.from_crawler(before.crawler)
        now = spider_with(redis_server.url, mirror, policy)
        now.referer = SpiderRefererMiddleware.from_crawler(now.crawler)
        for header in PAGE_HEADERS:
            for path, body in pages:
                headers = {"Referrer-Policy": header} if header else {}
                url = page_origin + path
                response = HtmlResponse(url, body=body, headers=headers, encoding="utf-8", request=Request(url))
                with warnings.catch_warnings():
                    # "not-a-policy": Scrapy warns and falls back on the setting's policy
                    warnings.simplefilter("ignore", RuntimeWarning)
                    expected = sent(list(scrapys.process_spider_output(response, before.parse(response))))
                    got = sent(list(now.parse(response)))
                assert got == expected, (page_origin, mirror, header, path)
                compared += len(got)
                referred += sum(1 for _, _, referer in got if referer)
    assert compared > 1000
    if policy != "no-referrer":
        assert referred > 0, "every case without a Referer would prove nothing"


def engine_for(redis_url: str) -> tuple[BaikeSpider, ExecutionEngine]:
    """A crawler as `scrapy crawl` builds it with the project's settings, its spider opened."""
    crawler = get_crawler(BaikeSpider, {**PROJECT_SETTINGS, "REDIS_URL": redis_url, "BAIKE_MIRROR": HTTP_MIRROR})
    spider = crawler.spider = BaikeSpider.from_crawler(crawler)
    crawler.engine = ExecutionEngine(crawler, lambda _: None)
    crawler.signals.send_catch_log(signals.spider_opened, spider=spider)
    return spider, crawler.engine


def test_the_project_sets_the_referer_in_the_spider_not_on_each_output(redis_server) -> None:
    spider, engine = engine_for(redis_server.url)
    found = spider.crawler.get_spider_middleware(RefererMiddleware)
    assert isinstance(found, SpiderRefererMiddleware) and spider.referer is found
    output_chain = [
        getattr(method, "__self__", None) for method in engine.scraper.spidermw.methods["process_spider_output"]
    ]
    assert not any(isinstance(middleware, RefererMiddleware) for middleware in output_chain)
    assert sum(isinstance(middleware, RefererMiddleware) for middleware in engine.scraper.spidermw.middlewares) == 1


def test_a_redirect_gets_the_referer_scrapys_middleware_gives_it(redis_server) -> None:
    """Scrapy's redirect middleware finds the project's stand-in, as it found Scrapy's."""
    spider, _ = engine_for(redis_server.url)
    redirect = RedirectMiddleware.from_crawler(spider.crawler)
    spider.crawler.signals.send_catch_log(signals.engine_started)
    scrapys = RefererMiddleware.from_crawler(spider.crawler)
    for status, policy in ((301, None), (302, "origin"), (302, "no-referrer"), (307, "unsafe-url")):
        source = f"{HTTP_MIRROR}/view/12.htm"
        target = f"{HTTP_MIRROR}/item/%E7%94%B2/12"
        headers = {"Location": target, **({"Referrer-Policy": policy} if policy else {})}
        request = Request(source, headers={"Referer": f"{HTTP_MIRROR}/item/x/1"})
        redirected = redirect.process_response(
            request, Response(source, status=status, headers=headers, request=request)
        )
        assert isinstance(redirected, Request) and redirected.url == target
        answer = Response(source, status=status, headers=headers)
        expected = scrapys.get_processed_request(Request(target), answer)
        assert redirected.headers.getlist("Referer") == expected.headers.getlist("Referer"), (status, policy)
