"""Requests that end without a usable page: the frontier settles their leases.

Scrapy 2.19 hands a request that ends without a page to one place only, its
errback: a download error after RetryMiddleware gave up, an HttpError of
HttpErrorMiddleware (5xx/403/429 after retries, 404), and the IgnoreRequest a
downloader middleware raises from ``process_response`` (the guard's captchas and
missing entries, RedirectMiddleware's redirect limit), which no downloader
middleware's ``process_exception`` sees and no spider middleware sees either.
So the leased scheduler gives each request it hands out the errback of this
module (:meth:`FailedRequests.errback`), and takes it off again when a retry or
a redirect of the request comes back to the frontier; the spider knows nothing
of leases.

Missing entries and redirects off the entries end normally (the lease settles
with no reason); anything that failed for good (errors after retries, captchas,
5xx/403/429) goes to the dead letters with the reason. A request that has an
errback of its own keeps it: it is called after the lease settled.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

from scrapy.exceptions import IgnoreRequest
from scrapy.spidermiddlewares.httperror import HttpError

from baike.frontier.queue import LEASE_META_KEY
from baike.guard import GiveUp

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from scrapy import Request
    from scrapy.statscollectors import StatsCollector
    from twisted.python.failure import Failure

logger = logging.getLogger(__name__)

# counted for each request that goes to the dead letters after a failure
FAILED_STAT = "baike/requests/failed"


def dead_reason(failure: Failure, retry_codes: Iterable[Any]) -> str:
    """Why a request that ended without a page goes to the dead letters ("" when it
    ends normally: a missing entry, a redirect off the entries, a 404)."""
    if failure.check(HttpError):
        status = cast("HttpError", failure.value).response.status
        retryable = status >= 500 or str(status) in map(str, retry_codes)
        return f"HTTP {status} after retries" if retryable else ""
    if failure.check(GiveUp):
        return str(failure.value)
    if failure.check(IgnoreRequest):
        return ""
    return f"{cast('type[BaseException]', failure.type).__name__}: {failure.getErrorMessage()}"


class FailedRequests:
    """The leased scheduler's errback, and the errbacks of the requests it took over."""

    def __init__(self, settle: Callable[[str, str], bool], stats: StatsCollector, retry_codes: Iterable[Any]):
        self._settle = settle
        self._stats = stats
        self._retry_codes = list(retry_codes)
        # lease -> the errback the request had of its own
        self._own: dict[str, Callable[[Failure], Any]] = {}

    def attach(self, lease: str, request: Request) -> None:
        """Give ``request``, handed out under ``lease``, the frontier's errback."""
        if request.errback is not None and request.errback != self.errback:
            self._own[lease] = request.errback
        request.errback = self.errback

    def detach(self, lease: str | None, request: Request) -> None:
        """Give a request coming back to the frontier (a retry or redirect of the request of
        ``lease``, which copies its errback) its own errback again, before it is stored."""
        if request.errback == self.errback:
            request.errback = self._own.get(lease) if lease is not None else None

    def forget(self, lease: str) -> None:
        """``lease`` settled: its request's own errback is no longer needed."""
        self._own.pop(lease, None)

    def clear(self) -> None:
        self._own.clear()

    def errback(self, failure: Failure) -> Any:
        """Settle the lease of a request that ended without a usable page (to the dead
        letters with the reason when it failed for good); then its own errback, if any."""
        request = failure.request  # type: ignore[attr-defined]
        lease = request.meta.get(LEASE_META_KEY)
        own = self._own.get(lease) if lease is not None else None
        reason = dead_reason(failure, self._retry_codes)
        if reason:
            logger.warning("Giving up on %s: %s (kept in the dead letters)", request.url, reason)
            self._stats.inc_value(FAILED_STAT)
        if lease is not None:
            self._settle(lease, reason)
        return own(failure) if own is not None else None
