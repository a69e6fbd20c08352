"""Request fingerprints over canonical Baike URLs (``REQUEST_FINGERPRINTER_CLASS``).

Scrapy's own fingerprinter, fed the canonical URL of a request instead of the URL
it is downloaded from, so a mirror origin, a tracking query or another spelling
of an entry never makes a second fingerprint.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import TYPE_CHECKING

from scrapy import Request
from scrapy.utils.request import RequestFingerprinter
from w3lib.url import canonicalize_url

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
        if canonical is None:
            return super().fingerprint(request)
        plain = request.method == "GET" and not request.body
        # verbatim_url only counts for a URL that is its own canonical form, as before
        if plain and (canonical != request.url or not request.meta.get("verbatim_url")):
            return _entry_fingerprint(canonical)
        if canonical == request.url:
            return super().fingerprint(request)
        return super().fingerprint(request.replace(url=canonical))


@functools.lru_cache(maxsize=1 << 16)
def _entry_fingerprint(canonical_url: str) -> bytes:
    """Scrapy's fingerprint of a plain GET of ``canonical_url`` (cached: links recur).

    :func:`scrapy.utils.request.fingerprint` of ``Request(canonical_url)``, computed
    as it computes it (SHA1 of the sorted JSON of method, w3lib's canonical URL, body
    and included headers) without building a Request: a new link's fingerprint is
    never in the cache, and the Request alone (URL parsing and escaping) cost as
    much as the rest. tests/test_dupefilter.py holds it to Scrapy's function.
    """
    data = {"method": "GET", "url": canonicalize_url(canonical_url), "body": "", "headers": {}}
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).digest()
