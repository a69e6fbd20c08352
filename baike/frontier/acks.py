"""Acknowledgement of leased requests (a spider middleware).

A lease is settled only when its page is fully handled: the callback's output is
exhausted (its requests are in the scheduler's buffer, flushed before the
acknowledgement in one atomic step) and every item it yielded has left the item
pipelines (stored, or dropped with a reason). An item pipeline error or a spider
exception sends the request to the dead letters instead of losing it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scrapy import Request, signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.misc import load_object

from baike.frontier.queue import LEASE_META_KEY
from baike.frontier.scheduler import LeasedScheduler

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from scrapy.crawler import Crawler
    from scrapy.http import Response

    # typing.Self requires Python 3.11
    from typing_extensions import Self

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Progress:
    items: int = 0
    output_done: bool = False
    failure: str = ""


class LeaseAckMiddleware:
    """Settles each leased request once its response is fully handled."""

    def __init__(self, crawler: Crawler):
        self.crawler = crawler
        self._progress: dict[str, _Progress] = {}
        crawler.signals.connect(self.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(self.item_dropped, signal=signals.item_dropped)
        crawler.signals.connect(self.item_error, signal=signals.item_error)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not issubclass(load_object(crawler.settings["SCHEDULER"]), LeasedScheduler):
            raise NotConfigured("leases need SCHEDULER = baike.frontier.scheduler.LeasedScheduler")
        return cls(crawler)

    @property
    def scheduler(self) -> LeasedScheduler:
        return self.crawler.engine.scheduler

    async def process_spider_output(
        self, response: Response, result: AsyncIterator[Any]
    ) -> AsyncIterator[Any]:
        lease = self.scheduler.lease_of(response.request)
        if lease is None:
            async for element in result:
                yield element
            return
        progress = self._progress.setdefault(lease, _Progress())
        try:
            async for element in result:
                if not isinstance(element, Request):
                    progress.items += 1
                yield element
        except Exception as exc:
            progress.failure = f"spider error: {exc!r}"
            raise
        finally:
            progress.output_done = True
            self._maybe_settle(lease)

    def item_scraped(self, item: Any, response: Response, spider: Any) -> None:
        self._item_left(response)

    def item_dropped(self, item: Any, response: Response, exception: BaseException, spider: Any) -> None:
        self._item_left(response)

    def item_error(self, item: Any, response: Response, spider: Any, failure: Any) -> None:
        self._item_left(response, failure=f"item pipeline error: {failure.value!r}")

    def _item_left(self, response: Response | None, failure: str = "") -> None:
        request = getattr(response, "request", None)
        lease = request.meta.get(LEASE_META_KEY) if request is not None else None
        progress = self._progress.get(lease) if lease else None
        if progress is None:
            return
        progress.items -= 1
        progress.failure = progress.failure or failure
        self._maybe_settle(lease)

    def _maybe_settle(self, lease: str) -> None:
        progress = self._progress[lease]
        if not progress.output_done or progress.items > 0:
            return
        del self._progress[lease]
        if progress.failure:
            logger.error("Request of lease %s goes to the dead letters: %s", lease, progress.failure)
        self.scheduler.settle(lease, progress.failure)
