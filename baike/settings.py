"""Settings of the baike project: every default in one place.

Every value can be overridden per node with ``scrapy crawl baike -s NAME=value``;
REDIS_URL also comes from the environment. docs/settings.md documents each one.
"""

from __future__ import annotations

import os

BOT_NAME = "baike"
SPIDER_MODULES = ["baike.spiders"]
NEWSPIDER_MODULE = "baike.spiders"
COMMANDS_MODULE = "baike.commands"

# -- where the crawl lives -------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_PARAMS = {
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
    "retry_on_timeout": True,
    "health_check_interval": 30,
}
# With a rediss:// REDIS_URL: the CA file, and this client's certificate and key (docs/redis.md).
REDIS_SSL_CA_CERTS = ""
REDIS_SSL_CERTFILE = ""
REDIS_SSL_KEYFILE = ""
# With a redis+sentinel:// REDIS_URL: the Sentinels' own user and password, when they need one.
REDIS_SENTINEL_USERNAME = ""
REDIS_SENTINEL_PASSWORD = ""
# WAIT for this many replicas after the writes a failover must not lose (0: never), at most
# REDIS_WAIT_TIMEOUT milliseconds (docs/redis.md).
REDIS_WAIT_REPLICAS = 0
REDIS_WAIT_TIMEOUT = 100
# Download from this origin instead of https://baike.baidu.com (a mirror or the replica);
# stored URLs and fingerprints stay canonical.
BAIKE_MIRROR = os.environ.get("BAIKE_MIRROR", "")
# Pages that are not entries but are linked from (nearly) every page: the navbar's special
# topic, the real-name notice and the help pages on 多义词, 义项 and 锁定. Never followed,
# never stored; absolute URLs or paths on Baike, in any form canonicalize() reads.
BAIKE_DENY_URLS = [
    "/item/史记·2016",
    "/item/百科实名验证",
    "/view/10812277.htm",
    "/view/340519.htm",
    "/view/10812319.htm",
    "/view/10811633.htm",
]

# -- the shared frontier (scrapy-redis plug points) ------------------------------------------
SCHEDULER = "baike.frontier.scheduler.LeasedScheduler"
SCHEDULER_QUEUE_CLASS = "baike.frontier.queue.LeasedQueue"
SCHEDULER_SERIALIZER = "baike.frontier.serializer"
DUPEFILTER_CLASS = "baike.frontier.dupefilter.BucketDupeFilter"
REQUEST_FINGERPRINTER_CLASS = "baike.frontier.fingerprint.CanonicalRequestFingerprinter"
# scrapy-redis's: the leased scheduler never deletes shared state when a node closes (False is refused)
SCHEDULER_PERSIST = True
# scrapy-redis's: the first node of a crawl runs `scrapy reset --keep-items` as it starts
SCHEDULER_FLUSH_ON_START = False
# scrapy-redis's blocking-pop timeout: the leased scheduler never blocks (anything but 0 is refused)
SCHEDULER_IDLE_BEFORE_CLOSE = 0
SCHEDULER_BATCH_SIZE = 16
SCHEDULER_FLUSH_SIZE = 4096
SCHEDULER_FLUSH_INTERVAL = 0.5
SCHEDULER_FLUSH_SHARD_SIZE = 256
SCHEDULER_LEASE_SECONDS = 60.0
SCHEDULER_IDLE_POLL = 0.2
SCHEDULER_HEARTBEAT_INTERVAL = 5.0
# fingerprints a node remembers having sent, to drop repeated links without a round trip
SCHEDULER_KNOWN_FINGERPRINTS = 1_000_000
# links the spider remembers having handed to the frontier, dropped before a Request is built
# (8 bytes per slot; 0 turns it off)
BAIKE_KNOWN_LINKS = 1_000_000
# hash tags the frontier and the dupefilter are split over, by request fingerprint, so that
# their Redis work spreads over a Redis Cluster's masters (1: one, every key as before)
BAIKE_SHARDS = 1
# with BAIKE_SHARDS > 1: the part of an even share of the fingerprints that shard 0 takes, its
# master also doing the crawl's unsplit work (items, seeds, node records, stats, the budget's
# ledger); 1.0 splits evenly. The crawl's first node records the split, the others follow it
BAIKE_SHARD0_SHARE = 0.4
# Request.meta keys of your own that travel through the frontier (e.g. "proxy"); the
# crawler's own keys always do, any other key is dropped on the way in and refused on
# the way out (baike.frontier.schema)
SCHEDULER_EXTRA_META_KEYS: list[str] = []
# compact dupefilter: buckets sized for this many URLs, 5-byte fields (docs/settings.md)
DUPEFILTER_EXPECTED_URLS = 10_000_000
DUPEFILTER_BUCKET_ENTRIES = 80
DUPEFILTER_FIELD_BYTES = 5
# only read when DUPEFILTER_CLASS is baike.frontier.bloom.BloomDupeFilter
BLOOM_CAPACITY = 10_000_000
BLOOM_ERROR_RATE = 0.001
# seeds each take moves from baike:start_urls into the frontier (scrapy-redis's setting)
REDIS_START_URLS_BATCH_SIZE = 16

# -- cluster-wide stop -------------------------------------------------------------------
# Pages for the whole cluster (not per process); 0 turns the budget off.
CLOSESPIDER_PAGECOUNT = 2000
# End the crawl when nothing is queued or in flight anywhere for this long.
CLOSESPIDER_FINISHED_GRACE = 3.0
CLOSESPIDER_POLL_INTERVAL = 0.2
# scrapy-redis's: a node that waited this many seconds while the whole crawl had nothing
# (no seed, nothing queued or leased) closes; 0 waits forever
MAX_IDLE_TIME_BEFORE_CLOSE = 0

# -- politeness and robustness for the real site ---------------------------------------------
ROBOTSTXT_OBEY = True
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
DEFAULT_REQUEST_HEADERS = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.6",
}
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 8
DOWNLOAD_TIMEOUT = 30
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 4.0
RETRY_ENABLED = True
RETRY_TIMES = 3
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429, 403]
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
# One rate for the whole cluster, in requests per second per politeness key (the target
# host, or host and BAIKE_EGRESS), shared in Redis by every node; 0 turns it off.
# 2/s is polite for baike.baidu.com: about one page per half second for the whole fleet,
# below what Baike answers with captchas from one client (docs/settings.md).
BAIKE_CLUSTER_RATE = 2.0
# Requests the cluster may send at once after a quiet spell (the bucket's size); as large
# as a take (SCHEDULER_BATCH_SIZE), so that a take leases a whole batch, not one request.
BAIKE_CLUSTER_BURST = 16
# This node's egress (public address or proxy name): nodes with one egress share a bucket.
BAIKE_EGRESS = ""
# Backing off together when Baike pushes back (with a cluster rate): a captcha pauses the
# whole cluster for BAIKE_COOLDOWN seconds, doubled while the storm outlasts it, up to
# BAIKE_COOLDOWN_MAX; 403/429/5xx making a fifth of BAIKE_BACKOFF_WINDOW's answers halve the rate.
BAIKE_COOLDOWN = 5.0
BAIKE_COOLDOWN_MAX = 300.0
BAIKE_BACKOFF_WINDOW = 30.0
# Anti-bot (captcha) answers: how often one request is sent back to the frontier.
BAIKE_CAPTCHA_RETRIES = 3

# Revisits (docs/settings.md, baike.revisit): every stored entry is due again this many
# seconds after it was stored (0 turns revisits off); an entry found changed has its
# interval halved, an unchanged one grown by half, within BAIKE_REVISIT_MIN and _MAX.
BAIKE_REVISIT_AFTER = 7 * 86_400.0
BAIKE_REVISIT_MIN = 3_600.0
BAIKE_REVISIT_MAX = 90 * 86_400.0
# The crawl is not finished while a stored entry is due within this many seconds.
BAIKE_REVISIT_GRACE = 600.0
# Frontier priority of a revisit; new URLs have 0, so by default they go first.
BAIKE_REVISIT_PRIORITY = -1
# Previous versions of an entry kept in baike:history.
BAIKE_HISTORY_LENGTH = 5

DOWNLOADER_MIDDLEWARES = {
    "baike.guard.BaikeGuardMiddleware": 650,
    "baike.mirror.MirrorMiddleware": 620,
    # The spider names no allowed_domains, so Scrapy's offsite filter lets every request
    # through, yet parses each request's URL in a request_scheduled handler (about 3% of
    # a node's CPU, bench/profile.py). The spider follows only canonical Baike URLs anyway.
    "scrapy.downloadermiddlewares.offsite.OffsiteMiddleware": None,
}
SPIDER_MIDDLEWARES = {
    "baike.frontier.acks.LeaseAckMiddleware": 10,
    # The spider sets the Referer of the requests it yields with Scrapy's policy
    # (baike.referer); Scrapy's middleware would set it on each output in turn, one more
    # layer of the spider-output chain (5-7% of a node's CPU, bench/profile.py).
    "scrapy.spidermiddlewares.referer.RefererMiddleware": None,
    "baike.referer.SpiderRefererMiddleware": 700,
}
EXTENSIONS = {
    "scrapy.extensions.closespider.CloseSpider": None,
    "baike.extensions.closespider.ClusterCloseSpider": 500,
    # Scrapy's stats line, with the cluster's pages and rate added
    "scrapy.extensions.logstats.LogStats": None,
    "baike.extensions.logstats.ClusterLogStats": 0,
    "baike.extensions.clusterstats.ClusterStats": 100,
    # this node's own Scrapy stats for Prometheus; off while BAIKE_METRICS_PORT is 0
    "baike.extensions.metrics.NodeMetrics": 200,
}
ITEM_PIPELINES = {
    "baike.pipelines.ValidatePipeline": 100,
    "baike.pipelines.CleanPipeline": 200,
    "baike.pipelines.RedisStorePipeline": 300,
}
# Items are written to Redis in batches of this size, or after this many seconds.
REDIS_STORE_BATCH_SIZE = 50
REDIS_STORE_FLUSH_INTERVAL = 0.25

# -- cluster stats (baike:nodes, baike:stats, baike:timeline) ----------------------------
CLUSTERSTATS_ENABLED = True
# Seconds between two writes of this node's record and counter deltas.
CLUSTERSTATS_INTERVAL = 2.0
# Window of the pages/min rate in each node's record.
CLUSTERSTATS_RATE_WINDOW = 60.0
# Samples kept in baike:timeline for the report's chart (0: none).
CLUSTERSTATS_TIMELINE_LENGTH = 20000
# Local stats summed into a node's "errors".
CLUSTERSTATS_ERROR_STATS = ["log_count/ERROR", "baike/requests/failed"]
# `scrapy status`: a node silent for this long (or 3 of its intervals) is lost.
CLUSTERSTATS_LOST_AFTER = 10.0
# Seconds between two stats lines in a node's log (Scrapy's setting, baike's line).
LOGSTATS_INTERVAL = 60.0

# -- metrics (docs/monitoring.md) --------------------------------------------------------
# This node's own Scrapy stats on http://BAIKE_METRICS_BIND:BAIKE_METRICS_PORT/metrics (0: off).
BAIKE_METRICS_PORT = 0
BAIKE_METRICS_BIND = "127.0.0.1"

FEED_EXPORT_ENCODING = "utf-8"
LOG_LEVEL = "INFO"
