"""The node settings each benchmark case runs with (on top of the project's settings).

Every case runs our spider with the same settings except its frontier: the
scheduler, its queue and serializer, the dupefilter, and which CloseSpider
counts the page budget.
"""

from __future__ import annotations

import json

from baike import settings as project_settings

# Scrapy's per-process CloseSpider back on, baike's cluster-wide one off; every other
# extension as the project has it (a -s EXTENSIONS=... replaces the whole dict).
STOCK_EXTENSIONS = {
    **project_settings.EXTENSIONS,
    "scrapy.extensions.closespider.CloseSpider": 0,
    "baike.extensions.closespider.ClusterCloseSpider": None,
}
STOCK_CLOSE = f"EXTENSIONS={json.dumps(STOCK_EXTENSIONS)}"

# Plain Scrapy: in-memory scheduler and dupefilter, one process.
PLAIN_SCRAPY = [
    "SCHEDULER=scrapy.core.scheduler.Scheduler",
    "DUPEFILTER_CLASS=scrapy.dupefilters.RFPDupeFilter",
    STOCK_CLOSE,
]
# Stock scrapy-redis: its scheduler, priority queue, SHA1-set dupefilter and pickle.
STOCK_SCRAPY_REDIS = [
    "SCHEDULER=scrapy_redis.scheduler.Scheduler",
    "SCHEDULER_QUEUE_CLASS=scrapy_redis.queue.PriorityQueue",
    "DUPEFILTER_CLASS=scrapy_redis.dupefilter.RFPDupeFilter",
    # empty: scrapy-redis falls back to its pickle serializer
    "SCHEDULER_SERIALIZER=",
    STOCK_CLOSE,
]
# The lease-free baseline: stock scrapy-redis scheduler and queue, but baike's JSON
# serializer and bucket dupefilter (one HSETNX round trip per link, no batching).
NO_LEASES = [
    "SCHEDULER=scrapy_redis.scheduler.Scheduler",
    "SCHEDULER_QUEUE_CLASS=scrapy_redis.queue.PriorityQueue",
    "SCHEDULER_SERIALIZER=baike.frontier.serializer",
    "DUPEFILTER_CLASS=baike.frontier.dupefilter.BucketDupeFilter",
    STOCK_CLOSE,
]
# baike as configured: leased scheduler, cluster-wide budget.
BAIKE: list[str] = []


def common_settings(pages: int, concurrency: int = 16) -> list[str]:
    """The page budget (per process for Scrapy's CloseSpider, cluster-wide for baike's)."""
    return [f"CLOSESPIDER_PAGECOUNT={pages}", f"CONCURRENT_REQUESTS={concurrency}"]
