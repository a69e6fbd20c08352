"""Prometheus metrics: the fleet's (``scrapy metrics``, read from Redis at scrape time)
and one node's own Scrapy stats (``BAIKE_METRICS_PORT``); see docs/monitoring.md."""
