"""Request fingerprints over canonical Baike URLs (``REQUEST_FINGERPRINTER_CLASS``).

Scrapy's own fingerprinter, fed the canonical URL of a request instead of the URL
it is downloaded from, so a mirror origin, a tracking query or another spelling
of an entry never makes a second fingerprint.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
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
    if is_plain_entry(canonical_url):
        # what json.dumps(data, sort_keys=True) writes below, canonicalize_url(url) being url
        text = _PLAIN_JSON_HEAD + canonical_url + _PLAIN_JSON_TAIL
    else:
        data = {"method": "GET", "url": canonicalize_url(canonical_url), "body": "", "headers": {}}
        text = json.dumps(data, sort_keys=True)
    return hashlib.sha1(text.encode()).digest()


# A canonical URL on Baike whose path holds only ASCII letters, digits, "-._~/" and
# upper-case percent escapes of the bytes 0x80-0xFF (a name in UTF-8: nearly every entry),
# and no "/." (no dot segment to resolve), is its own w3lib canonical form:
# canonicalize_url keeps those characters, unquotes those escapes and quotes the bytes
# again, upper-case, and leaves the query "force=1" as it is. Such a URL needs no JSON
# escaping either. tests/test_dupefilter.py holds both to w3lib and Scrapy.
_PLAIN_ENTRY = re.compile(r"https://baike\.baidu\.com/(?:[A-Za-z0-9._~/-]|%[89A-F][0-9A-F])*(?:\?force=1)?")
_PLAIN_JSON_HEAD = '{"body": "", "headers": {}, "method": "GET", "url": "'
_PLAIN_JSON_TAIL = '"}'


def is_plain_entry(canonical_url: str) -> bool:
    """True for a canonical URL that is its own w3lib canonical form, by the rule above."""
    return _PLAIN_ENTRY.fullmatch(canonical_url) is not None and "/." not in canonical_url
