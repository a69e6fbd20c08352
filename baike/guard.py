"""Baike's failure answers, recognised before they are followed (a downloader middleware).

Baike does not answer a missing entry or a suspected bot with an error status:
it redirects, to ``/error.html?status=404`` or to a captcha page. Followed blindly,
those become downloads of pages that are not entries. This middleware sits before
RedirectMiddleware and decides:

* redirect to an error page: the entry does not exist; the request ends (IgnoreRequest);
* redirect to a captcha, or a captcha page served in place: the request goes back
  to the shared frontier, up to ``BAIKE_CAPTCHA_RETRIES`` times, then to the dead letters;
* redirect to anything that is not an entry: the request ends.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy.exceptions import IgnoreRequest

from baike.urls import canonicalize, normalize_origin

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    # typing.Self requires Python 3.11
    from typing_extensions import Self

logger = logging.getLogger(__name__)

CAPTCHA_MARKERS = (b"/anticrawl/", b"wappass.baidu.com", b"/static/captcha")
ERROR_MARKERS = (b"/error.html", b"/error?")
CAPTCHA_TITLE = "百度安全验证".encode()
ATTEMPTS_META_KEY = "baike_captcha_attempts"


class GiveUp(IgnoreRequest):
    """A request that failed for good; the spider sends it to the dead letters."""


class BaikeGuardMiddleware:
    """Stops error and captcha answers from becoming downloads or items."""

    def __init__(self, crawler: Crawler):
        self.stats = crawler.stats
        self.mirror = normalize_origin(crawler.settings.get("BAIKE_MIRROR"))
        self.captcha_retries = crawler.settings.getint("BAIKE_CAPTCHA_RETRIES", 3)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_response(self, request: Request, response: Response) -> Request | Response:
        location = response.headers.get(b"Location") or b""
        if 300 <= response.status < 400 and location:
            return self._redirect(request, response, location)
        if response.status == 200 and CAPTCHA_TITLE in response.body[:4096]:
            return self._captcha(request)
        return response

    def _redirect(self, request: Request, response: Response, location: bytes) -> Request | Response:
        if any(marker in location for marker in CAPTCHA_MARKERS):
            return self._captcha(request)
        if any(marker in location for marker in ERROR_MARKERS):
            self.stats.inc_value("baike/missing")
            raise IgnoreRequest(f"missing entry: {request.url} redirects to an error page")
        target = canonicalize(location.decode("utf-8", errors="replace"), base=request.url, mirror=self.mirror)
        if target is None:
            self.stats.inc_value("baike/redirect_off_entries")
            raise IgnoreRequest(f"{request.url} redirects off the entry pages, to {location[:200]!r}")
        return response

    def _captcha(self, request: Request) -> Request:
        attempts = request.meta.get(ATTEMPTS_META_KEY, 0) + 1
        self.stats.inc_value("baike/captcha")
        if attempts > self.captcha_retries:
            raise GiveUp(f"captcha answered {attempts} times for {request.url}")
        logger.info("Captcha for %s (attempt %d); sending it back to the frontier", request.url, attempts)
        retry = request.replace(dont_filter=True, priority=request.priority - 1)
        retry.meta[ATTEMPTS_META_KEY] = attempts
        return retry
