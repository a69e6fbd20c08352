"""Acknowledgement of leased requests (a spider middleware).

A lease is settled only when its page is fully handled: the callback's output is
exhausted, every request it yielded has been handed to the scheduler (counted:
Scrapy buffers up to CONCURRENT_ITEMS outputs between this middleware and the
engine, so an exhausted output does not mean its requests arrived), and every item
it yielded has left the item pipelines (stored, or dropped with a reason). The
requests reach the scheduler's buffer before the acknowledgement, and both are
flushed in one atomic step. The acknowledgement names the records its items were
stored under (with RedisStorePipeline), and Redis settles the lease only if it holds
them: after a failover the new master may lack a record the old one stored, and the
page is then done again (see LeasedScheduler.settle). An item pipeline error or a spider exception sends the
request to the dead letters instead of losing it; a
:class:`~baike.errors.DeadLetter` gives the reason (e.g. ``parser failed: ...``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from itemadapter import ItemAdapter, is_item
from pydispatch.dispatcher import getAllReceivers, liveReceivers
from scrapy import Request, signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.conf import build_component_list
from scrapy.utils.misc import load_object

from baike.errors import DeadLetter
from baike.frontier.queue import LEASE_META_KEY
from baike.frontier.scheduler import PARENT_META_KEY, LeasedScheduler, uses_leases
from baike.pipelines import RedisStorePipeline

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from typing import Self

    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

__all__ = ["PARENT_META_KEY", "LeaseAckMiddleware"]


def stores_in_redis(settings: Any) -> bool:
    """Whether ``ITEM_PIPELINES`` (the node's own settings) holds RedisStorePipeline (or a subclass)."""
    for component in build_component_list(settings.getwithbase("ITEM_PIPELINES")):
        cls = load_object(component) if isinstance(component, str) else component
        if isinstance(cls, type) and issubclass(cls, RedisStorePipeline):
            return True
    return False


@dataclass(slots=True)
class _Progress:
    items: int = 0
    requests: int = 0
    output_done: bool = False
    failure: str = ""
    # the URLs of the records the page's items were stored under
    records: list[str] = field(default_factory=list)


class LeaseAckMiddleware:
    """Settles each leased request once its response is fully handled."""

    def __init__(self, crawler: Crawler):
        self.crawler = crawler
        self._progress: dict[str, _Progress] = {}
        # whether a scraped item was stored in Redis (RedisStorePipeline is enabled): its
        # page's ack then names the record, for Redis to check (see LeasedScheduler.settle)
        self._stores = stores_in_redis(crawler.settings)
        crawler.signals.connect(self.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(self.item_dropped, signal=signals.item_dropped)
        crawler.signals.connect(self.item_error, signal=signals.item_error)
        crawler.signals.connect(self.request_scheduled, signal=signals.request_scheduled)
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not uses_leases(crawler.settings):
            raise NotConfigured("leases need SCHEDULER = baike.frontier.scheduler.LeasedScheduler")
        return cls(crawler)

    @property
    def scheduler(self) -> LeasedScheduler:
        return cast("LeasedScheduler", self.crawler.engine.scheduler)

    async def process_spider_output(self, response: Response, result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        lease = self.scheduler.lease_of(cast("Request", response.request))
        if lease is None:
            async for element in result:
                yield element
            return
        progress = self._progress.setdefault(lease, _Progress())
        try:
            async for element in result:
                if isinstance(element, Request):
                    element.meta[PARENT_META_KEY] = lease
                    progress.requests += 1
                elif is_item(element):
                    progress.items += 1
                yield element
        except Exception as exc:
            progress.failure = str(exc) if isinstance(exc, DeadLetter) else f"spider error: {exc!r}"
            raise
        finally:
            progress.output_done = True
            self._maybe_settle(lease)

    def spider_opened(self, spider: Any) -> None:
        """Count a leased page's requests where they arrive, in the leased scheduler's
        ``enqueue_request``, instead of on Scrapy's ``request_scheduled`` signal: a
        signal with a receiver costs every request a dispatch.

        Only while nothing else receives ``request_scheduled``: a receiver there may
        drop a request with IgnoreRequest before it reaches the scheduler (Scrapy's
        offsite filter does), and such a request must still count as handled. Then
        the signal goes on counting, as Scrapy sends it, for every request.
        """
        scheduler = self.crawler.engine.scheduler
        if not isinstance(scheduler, LeasedScheduler):
            return
        sender = self.crawler.signals.sender
        others = [
            receiver
            for receiver in liveReceivers(getAllReceivers(sender, signals.request_scheduled))
            if receiver != self.request_scheduled
        ]
        if others:
            logger.debug(
                "request_scheduled has %d other receivers: leased pages' requests are counted there", len(others)
            )
            return
        scheduler.count_children(self.request_arrived)
        self.crawler.signals.disconnect(self.request_scheduled, signal=signals.request_scheduled)

    def request_scheduled(self, request: Request, spider: Any) -> None:
        """A request of a leased page reached the scheduler (Scrapy sends this before
        ``enqueue_request``, in the same call: the request is in the scheduler's buffer
        before any flush can carry the acknowledgement)."""
        lease = request.meta.pop(PARENT_META_KEY, None)
        if lease:
            self.request_arrived(lease)

    def request_arrived(self, lease: str) -> None:
        """A request yielded by the page of ``lease`` reached the scheduler (or was
        dropped on its way there)."""
        progress = self._progress.get(lease)
        if progress is None:
            return
        progress.requests -= 1
        self._maybe_settle(lease)

    def item_scraped(self, item: Any, response: Response, spider: Any) -> None:
        url = ItemAdapter(item).get("url") if self._stores else None
        self._item_left(response, record=url if isinstance(url, str) else "")

    def item_dropped(self, item: Any, response: Response, exception: BaseException, spider: Any) -> None:
        self._item_left(response)

    def item_error(self, item: Any, response: Response, spider: Any, failure: Any) -> None:
        self._item_left(response, failure=f"item pipeline error: {failure.value!r}")

    def _item_left(self, response: Response | None, failure: str = "", record: str = "") -> None:
        """An item of ``response``'s page left the pipelines: failed (``failure``), or stored
        under the URL ``record``, or neither (dropped, or not stored in Redis)."""
        request = getattr(response, "request", None)
        lease = request.meta.get(LEASE_META_KEY) if request is not None else None
        progress = self._progress.get(lease) if lease else None
        if progress is None or not lease:
            return
        progress.items -= 1
        progress.failure = progress.failure or failure
        if record:
            progress.records.append(record)
        self._maybe_settle(lease)

    def _maybe_settle(self, lease: str) -> None:
        progress = self._progress[lease]
        if not progress.output_done or progress.items > 0 or progress.requests > 0:
            return
        del self._progress[lease]
        if progress.failure:
            logger.error("Request of lease %s goes to the dead letters: %s", lease, progress.failure)
        self.scheduler.settle(lease, progress.failure, tuple(progress.records))
