"""BaikeGuardMiddleware and MirrorMiddleware: failure answers and redirects."""

from __future__ import annotations

import pytest
from scrapy import Request
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import HtmlResponse, Response

from baike.guard import ATTEMPTS_META_KEY, BaikeGuardMiddleware, GiveUp, retry_after
from baike.mirror import MirrorMiddleware
from tests.frontier_helpers import make_crawler

MIRROR = "http://127.0.0.1:8800"
URL = f"{MIRROR}/item/%E7%BD%91/1"


@pytest.fixture()
def guard() -> BaikeGuardMiddleware:
    return BaikeGuardMiddleware(make_crawler("redis://127.0.0.1:1/0", BAIKE_MIRROR=MIRROR, BAIKE_CAPTCHA_RETRIES=2))


def redirect(location: str, status: int = 302) -> Response:
    return Response(URL, status=status, headers={"Location": location})


@pytest.mark.parametrize(
    "location",
    ["https://baike.baidu.com/error.html?status=404", "/error.html?status=404"],
)
def test_redirect_to_an_error_page_ends_the_request(guard: BaikeGuardMiddleware, location: str) -> None:
    with pytest.raises(IgnoreRequest, match="missing entry"):
        guard.process_response(Request(URL), redirect(location))
    assert guard.stats.get_value("baike/missing") == 1


@pytest.mark.parametrize("location", ["https://baike.baidu.com/help", "https://www.baidu.com/", "/usercenter/x"])
def test_redirect_off_the_entries_ends_the_request(guard: BaikeGuardMiddleware, location: str) -> None:
    with pytest.raises(IgnoreRequest, match="off the entry pages"):
        guard.process_response(Request(URL), redirect(location))


@pytest.mark.parametrize(
    "location",
    ["https://baike.baidu.com/item/%E7%BD%91/1?fromtitle=x&fromid=2", "/item/网/1", f"{MIRROR}/view/5.htm"],
)
def test_redirect_to_an_entry_is_followed(guard: BaikeGuardMiddleware, location: str) -> None:
    response = redirect(location)
    assert guard.process_response(Request(URL), response) is response


def test_captcha_sends_the_request_back_then_gives_up(guard: BaikeGuardMiddleware) -> None:
    request = Request(URL, meta={"baike_lease": "7"}, priority=3)
    captcha = redirect("https://baike.baidu.com/anticrawl/captchaview?x=1")
    retry = guard.process_response(request, captcha)
    assert isinstance(retry, Request)
    assert retry.dont_filter and retry.priority == 2
    assert retry.meta == {"baike_lease": "7", ATTEMPTS_META_KEY: 1}, "the lease travels with the retry"
    retry = guard.process_response(retry, captcha)
    with pytest.raises(GiveUp):
        guard.process_response(retry, captcha)
    assert guard.stats.get_value("baike/captcha") == 3


def test_captcha_page_served_in_place_is_recognised(guard: BaikeGuardMiddleware) -> None:
    page = HtmlResponse(URL, body="<html><head><title>百度安全验证</title></head></html>".encode(), encoding="utf-8")
    assert isinstance(guard.process_response(Request(URL), page), Request)


def test_ordinary_pages_pass(guard: BaikeGuardMiddleware) -> None:
    page = HtmlResponse(URL, body=b"<html><title>x</title></html>")
    assert guard.process_response(Request(URL), page) is page


def test_mirror_maps_real_site_redirects_back_to_the_mirror() -> None:
    mirror = MirrorMiddleware(MIRROR)
    response = redirect("https://baike.baidu.com/item/x/1?fromtitle=y")
    assert (
        mirror.process_response(Request(URL), response).headers[b"Location"]
        == f"{MIRROR}/item/x/1?fromtitle=y".encode()
    )
    other = redirect("https://example.com/x")
    assert mirror.process_response(Request(URL), other).headers[b"Location"] == b"https://example.com/x"


def test_mirror_is_off_without_the_setting() -> None:
    with pytest.raises(NotConfigured):
        MirrorMiddleware.from_crawler(make_crawler("redis://127.0.0.1:1/0", BAIKE_MIRROR=""))


class Answers:
    """Only what the guard asks of the leased scheduler."""

    def __init__(self, cooling: bool = False) -> None:
        self.cooling_down = cooling
        self.reports: list[tuple[str, float]] = []
        self.caps: list[float] = []

    def report_answer(self, kind: str, retry_after: float = 0.0) -> None:
        self.reports.append((kind, retry_after))

    def cap_rate(self, rate: float, why: str) -> None:
        self.caps.append(rate)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (b"5", 5.0),
        (b" 0.5 ", 0.5),
        (b"-3", 0.0),
        (b"nan", 0.0),
        (b"99999999", 3600.0),
        (b"soon", 0.0),
        (None, 0.0),
        (b"Wed, 02 Dec 2026 06:00:10 GMT", 10.0),
    ],
)
def test_retry_after_in_seconds_or_as_a_date(header, seconds) -> None:
    from email.utils import parsedate_to_datetime

    now = parsedate_to_datetime("Wed, 02 Dec 2026 06:00:00 GMT").timestamp()
    assert retry_after(header, now=now) == seconds


def test_every_answer_is_reported_and_a_captcha_in_a_cool_down_spends_no_retry(guard: BaikeGuardMiddleware) -> None:
    guard.rate = answers = Answers()
    request = Request("https://baike.baidu.com/item/x/1")
    guard.process_response(request, HtmlResponse(request.url, body=b"<html></html>"))
    guard.process_response(request, Response(request.url, status=429, headers={"Retry-After": "7"}))
    first = guard.process_response(request, redirect("https://baike.baidu.com/anticrawl/captchaview?x=1"))
    assert answers.reports == [("healthy", 0.0), ("failed", 7.0), ("captcha", 0.0)]
    assert first.meta[ATTEMPTS_META_KEY] == 1
    answers.cooling_down = True
    again = guard.process_response(first, redirect("https://baike.baidu.com/anticrawl/captchaview?x=2"))
    assert again.meta[ATTEMPTS_META_KEY] == 1, "a captcha during the cool-down spends no retry"


def test_robots_crawl_delay_caps_the_rate(guard: BaikeGuardMiddleware) -> None:
    guard.rate = answers = Answers()
    robots = Response("https://baike.baidu.com/robots.txt", body=b"User-agent: *\nCrawl-delay: 2\n")
    guard.process_response(Request(robots.url), robots)
    assert answers.caps == [0.5]
