"""Request fingerprints over canonical Baike URLs (``REQUEST_FINGERPRINTER_CLASS``).

Scrapy's own fingerprinter, fed the canonical URL of a request instead of the URL
it is downloaded from, so a mirror origin, a tracking query or another spelling
of an entry never makes a second fingerprint.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from scrapy import Request
from scrapy.utils.request import RequestFingerprinter, fingerprint

from baike.urls import canonicalize, normalize_origin

if TYPE_CHECKING:
    from scrapy.crawler import Crawler


class CanonicalRequestFingerprinter(RequestFingerprinter):
    """Fingerprint requests by their canonical entry URL (others as Scrapy does)."""

    def __init__(self, crawler: Crawler | None = None):
        super().__init__(crawler)
        settings = crawler.settings if crawler else None
        self.mirror = normalize_origin(settings.get("BAIKE_MIRROR")) if settings else None

    def fingerprint(self, request: Request) -> bytes:
        canonical = canonicalize(request.url, mirror=self.mirror)
        if canonical is None or canonical == request.url:
            return super().fingerprint(request)
        if request.method == "GET" and not request.body:
            return _entry_fingerprint(canonical)
        return super().fingerprint(request.replace(url=canonical))


@functools.lru_cache(maxsize=1 << 16)
def _entry_fingerprint(canonical_url: str) -> bytes:
    """Scrapy's fingerprint of a plain GET of ``canonical_url`` (cached: links recur)."""
    return fingerprint(Request(canonical_url))
