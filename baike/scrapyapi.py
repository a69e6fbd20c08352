"""The one place baike reaches past Scrapy's public API.

Scrapy 2.19 has no public call for "the scheduler has requests again": the engine
asks its scheduler for work when a download ends, when ``engine.crawl()`` adds a
request, and on a 5-second heartbeat. A cluster node's scheduler gets work from
Redis on its own (requests other nodes produced, a cool-down ending, Redis coming
back), and must have the engine ask at once. What ``engine.crawl()`` does after
enqueuing a request is that: it schedules the engine slot's next call. So does
:func:`wake_engine`, without a request.

Everything this module relies on is checked by ``tests/test_scrapyapi.py`` on a
real engine, so that a Scrapy upgrade that changes it fails there, saying what
changed, instead of leaving nodes that wait 5 s for work.
"""

from __future__ import annotations

from typing import Any

__all__ = ["wake_engine"]


def wake_engine(engine: Any) -> bool:
    """Have ``engine`` ask its scheduler for requests at its next turn (at once, not on
    its heartbeat). False when there is nothing to wake: no open spider, or closing."""
    # ExecutionEngine._slot: None before open_spider and after close_spider; its
    # ``closing`` is set while the spider closes; its ``nextcall`` is the CallLaterOnce
    # of ExecutionEngine._start_scheduled_requests that engine.crawl() schedules
    slot = getattr(engine, "_slot", None)
    if slot is None or slot.closing is not None:
        return False
    slot.nextcall.schedule()
    return True
