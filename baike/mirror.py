"""Downloads from a mirror of Baike (``BAIKE_MIRROR``), a downloader middleware.

Requests are built for the mirror from the start (see :func:`baike.urls.download_url`);
what is left here is the other direction: a mirror that answers like the real
site sends redirects to ``https://baike.baidu.com/...``, and those must be
followed on the mirror too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.exceptions import NotConfigured

from baike.urls import BAIKE_ORIGIN, normalize_origin

if TYPE_CHECKING:
    from typing import Self

    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response


class MirrorMiddleware:
    """Rewrites redirect locations on the real site to the mirror's origin."""

    def __init__(self, mirror: str):
        self.mirror = mirror
        self._site_prefixes = (BAIKE_ORIGIN.encode() + b"/", b"http://baike.baidu.com/")

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        mirror = normalize_origin(crawler.settings.get("BAIKE_MIRROR"))
        if not mirror:
            raise NotConfigured("BAIKE_MIRROR is not set")
        return cls(mirror)

    def process_response(self, request: Request, response: Response) -> Response:
        location = response.headers.get(b"Location")
        if not (300 <= response.status < 400 and location):
            return response
        for prefix in self._site_prefixes:
            if location.startswith(prefix):
                response.headers[b"Location"] = self.mirror.encode() + location[len(prefix) - 1 :]
                break
        return response
