"""Baike's failure answers, recognised before they are followed (a downloader middleware).

Baike does not answer a missing entry or a suspected bot with an error status:
it redirects, to ``/error.html?status=404`` or to a captcha page. Followed blindly,
those become downloads of pages that are not entries. This middleware sits before
RedirectMiddleware and decides:

* redirect to an error page: the entry does not exist; the request ends (IgnoreRequest);
* redirect to a captcha, or a captcha page served in place: the request goes back
  to the shared frontier, up to ``BAIKE_CAPTCHA_RETRIES`` times, then to the dead letters;
  a captcha while the cluster cools down (Baike pushed back) spends no retry;
* redirect to anything that is not an entry: the request ends.

Every answer is also reported to the leased scheduler for the cluster's shared rate:
healthy, failed (403, 429, 5xx, with any ``Retry-After``) or a captcha; the
``Crawl-delay`` of robots.txt (as Scrapy's RobotsTxtMiddleware fetches it) caps that rate.
"""

from __future__ import annotations

import logging
import time
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from protego import Protego
from scrapy import signals
from scrapy.exceptions import IgnoreRequest

from baike.urls import canonicalize, normalize_origin

if TYPE_CHECKING:
    from typing import Self

    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

CAPTCHA_MARKERS = (b"/anticrawl/", b"wappass.baidu.com", b"/static/captcha")
ERROR_MARKERS = (b"/error.html", b"/error?")
CAPTCHA_TITLE = "百度安全验证".encode()
ATTEMPTS_META_KEY = "baike_captcha_attempts"
# Answers that tell the shared rate to slow down (with 5xx).
PUSHBACK_STATUSES = frozenset({403, 429})
# The longest Retry-After honoured, seconds (a bad header must not stop a crawl for days).
MAX_RETRY_AFTER = 3600.0


def retry_after(value: bytes | None, now: float | None = None) -> float:
    """Seconds a ``Retry-After`` header asks to wait (a number or an HTTP date); 0 if none or unreadable."""
    if not value:
        return 0.0
    text = value.decode("latin-1").strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(text).timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, OverflowError):
            return 0.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER) if seconds == seconds else 0.0


class GiveUp(IgnoreRequest):
    """A request that failed for good; the frontier sends it to the dead letters (baike.frontier.failures)."""


class BaikeGuardMiddleware:
    """Stops error and captcha answers from becoming downloads or items."""

    def __init__(self, crawler: Crawler):
        self.crawler = crawler
        self.stats = crawler.stats
        # the leased scheduler, which reports answers to the shared rate (None without it)
        self.rate: Any = None
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        self.mirror = normalize_origin(crawler.settings.get("BAIKE_MIRROR"))
        self.captcha_retries = crawler.settings.getint("BAIKE_CAPTCHA_RETRIES", 3)
        self.user_agent = crawler.settings.get("USER_AGENT") or "*"

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_response(self, request: Request, response: Response) -> Request | Response:
        location = response.headers.get(b"Location") or b""
        if 300 <= response.status < 400 and location:
            return self._redirect(request, response, location)
        if response.status == 200 and CAPTCHA_TITLE in response.body[:4096]:
            return self._captcha(request)
        if response.status == 200 and urlsplit(response.url).path == "/robots.txt":
            self._crawl_delay(response)
        failed = response.status in PUSHBACK_STATUSES or response.status >= 500
        self._report("failed" if failed else "healthy", retry_after(response.headers.get(b"Retry-After")))
        return response

    def spider_opened(self, spider: Any) -> None:
        scheduler = self.crawler.engine.scheduler
        self.rate = scheduler if hasattr(scheduler, "report_answer") else None

    def _crawl_delay(self, response: Response) -> None:
        """Cap the cluster's rate by the Crawl-delay robots.txt asks of this user agent."""
        try:
            delay = Protego.parse(response.body.decode("utf-8", "replace")).crawl_delay(self.user_agent)
        except ValueError:
            return
        if delay and delay > 0 and self.rate is not None:
            self.rate.cap_rate(1.0 / delay, f"robots.txt Crawl-delay: {delay:g}")

    def _report(self, kind: str, wait: float = 0.0) -> None:
        if self.rate is not None:
            self.rate.report_answer(kind, wait)

    def _redirect(self, request: Request, response: Response, location: bytes) -> Request | Response:
        if any(marker in location for marker in CAPTCHA_MARKERS):
            return self._captcha(request)
        if any(marker in location for marker in ERROR_MARKERS):
            self._report("healthy")
            self.stats.inc_value("baike/missing")
            raise IgnoreRequest(f"missing entry: {request.url} redirects to an error page")
        target = canonicalize(location.decode("utf-8", errors="replace"), base=request.url, mirror=self.mirror)
        self._report("healthy")
        if target is None:
            self.stats.inc_value("baike/redirect_off_entries")
            raise IgnoreRequest(f"{request.url} redirects off the entry pages, to {location[:200]!r}")
        return response

    def _captcha(self, request: Request) -> Request:
        cooling = self.rate is not None and self.rate.cooling_down
        attempts = request.meta.get(ATTEMPTS_META_KEY, 0) + (0 if cooling else 1)
        self._report("captcha")
        self.stats.inc_value("baike/captcha")
        if attempts > self.captcha_retries:
            raise GiveUp(f"captcha answered {attempts} times for {request.url}")
        logger.info("Captcha for %s (attempt %d); sending it back to the frontier", request.url, attempts)
        retry = request.replace(dont_filter=True, priority=request.priority - 1)
        retry.meta[ATTEMPTS_META_KEY] = attempts
        return retry
