"""The ``Referer`` of the requests a page's links become, set by the spider as it builds them.

Scrapy's RefererMiddleware sets that header on every spider output in turn, as one more
async-generator layer of the spider-output chain (5-7% of a node's CPU, bench/profile.py).
:class:`SpiderRefererMiddleware` is that middleware out of the chain: the same policies
(``REFERRER_POLICY``, ``REFERRER_POLICIES``, a request's ``referrer_policy`` meta, the
page's ``Referrer-Policy`` header), found by the redirect middleware for redirects as
before, applied by the spider through :class:`PageReferer`, once per page rather than once
per request: every request a page yields goes to one origin (Baike's, or the mirror's),
and Scrapy's own policies give one referrer for one origin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from scrapy.spidermiddlewares.referer import (
    DefaultReferrerPolicy,
    NoReferrerPolicy,
    NoReferrerWhenDowngradePolicy,
    OriginPolicy,
    OriginWhenCrossOriginPolicy,
    RefererMiddleware,
    SameOriginPolicy,
    StrictOriginPolicy,
    StrictOriginWhenCrossOriginPolicy,
    UnsafeUrlPolicy,
)

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.http import Response

# Scrapy's policies: each reads the request URL only for its origin (scheme, host, port),
# so requests of one page to one origin get one referrer. A policy of your own may read
# more, and is asked request by request.
ORIGIN_POLICIES = frozenset(
    {
        NoReferrerPolicy,
        NoReferrerWhenDowngradePolicy,
        SameOriginPolicy,
        OriginPolicy,
        StrictOriginPolicy,
        OriginWhenCrossOriginPolicy,
        StrictOriginWhenCrossOriginPolicy,
        UnsafeUrlPolicy,
        DefaultReferrerPolicy,
    }
)
# The request meta key that names a policy for one request (Scrapy's).
POLICY_META_KEY = "referrer_policy"


class SpiderRefererMiddleware(RefererMiddleware):
    """Scrapy's RefererMiddleware without its pass over the spider's output: the spider
    sets the header itself (:meth:`for_page`). It stays a spider middleware so that the
    redirect middleware finds it (``crawler.get_spider_middleware``) and sets the
    ``Referer`` of a redirected request as before."""

    # No process_spider_output: Scrapy leaves this middleware out of the output chain.
    process_spider_output = None  # type: ignore[assignment]
    process_spider_output_async = None  # type: ignore[assignment]

    def for_page(self, response: Response) -> PageReferer:
        """What sets the ``Referer`` of the requests made from ``response``."""
        return PageReferer(self, response)


class PageReferer:
    """Sets on each request made from one page the ``Referer`` that
    ``RefererMiddleware.get_processed_request`` gives it: worked out for the first
    request, and reused for the next ones to the same origin that name no policy."""

    __slots__ = ("_middleware", "_prefix", "_referrer", "_response")

    def __init__(self, middleware: RefererMiddleware, response: Response) -> None:
        self._middleware = middleware
        self._response = response
        # "scheme://netloc/" of the origin whose referrer is known, and that referrer
        self._prefix: str | None = None
        self._referrer: str | None = None

    def set(self, request: Request) -> Request:
        """``request``, with the ``Referer`` header the middleware would set (if any)."""
        prefix = self._prefix
        if prefix is not None and request.url.startswith(prefix) and POLICY_META_KEY not in request.meta:
            if self._referrer is not None:
                request.headers.setdefault("Referer", self._referrer)
            return request
        self._middleware.get_processed_request(request, self._response)
        if prefix is None:
            self._learn(request)
        return request

    def _learn(self, request: Request) -> None:
        """Remember the referrer of ``request``'s origin, if the page's policy is Scrapy's
        (one referrer per origin) and the request names no policy of its own."""
        if POLICY_META_KEY in request.meta:
            return
        policy = self._middleware.policy(self._response, request)
        if type(policy) not in ORIGIN_POLICIES:
            return
        parts = urlsplit(request.url)
        prefix = f"{parts.scheme}://{parts.netloc}/"
        # a URL that starts with "scheme://netloc/" has that scheme and netloc: one origin
        if request.url.startswith(prefix):
            self._prefix = prefix
            self._referrer = policy.referrer(self._response.url, request.url)
