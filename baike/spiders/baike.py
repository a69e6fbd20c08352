"""The ``baike`` spider: seeds in from Redis, pages parsed, entry links followed.

Thin on purpose: parsing lives in :mod:`baike.parsing`, URL rules in
:mod:`baike.urls`, the shared frontier in :mod:`baike.frontier`.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from scrapy import Request, signals
from scrapy.exceptions import DontCloseSpider
from scrapy.http import TextResponse
from scrapy.settings import BaseSettings
from scrapy_redis.spiders import RedisSpider

from baike.connection import REDIS_ERRORS, SharedClient, get_redis
from baike.errors import DeadLetter
from baike.failover import redis_failover
from baike.frontier.known import MAX_KEY, KnownFingerprints
from baike.frontier.queue import BadSeed
from baike.frontier.scheduler import SEEN_ONLY_META_KEY, uses_leases
from baike.frontier.schema import MAX_LABEL_CHARS, SENSE_LABEL_META_KEY
from baike.items import BaikeItem
from baike.keys import CrawlKeys
from baike.parsing import KIND_ENTRY, KIND_LIST, ParsedPage, parse_page
from baike.referer import SpiderRefererMiddleware
from baike.revisit import RevisitPolicy, Revisits
from baike.urls import (
    LIST_QUERY,
    MAX_URL_LENGTH,
    canonicalize,
    deny_list,
    download_url,
    is_list_url,
    item_url,
    normalize_origin,
    subview_url,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from redis import Redis
    from scrapy.http import Response

# Longest seed accepted: a URL, or a JSON object carrying one and a little meta.
MAX_SEED_BYTES = 8192
SEED_FIELDS = frozenset({"url", "meta", "priority"})


class BaikeSpider(RedisSpider):  # type: ignore[misc]  # scrapy-redis is untyped
    """Crawls Baike entries from seeds pushed to ``baike:start_urls``."""

    name = "baike"
    server: Redis  # scrapy-redis's client, made by setup_redis()
    # Callbacks a request read back from Redis may name; anything else is refused. A request
    # that ends without a page is the frontier's to settle (baike.frontier.failures): no errback.
    frontier_callbacks = ("parse",)

    def setup_redis(self, crawler: Any = None) -> None:
        """scrapy-redis's set-up, with the crawler's shared client (:func:`baike.connection.get_redis`:
        one connection pool, TLS settings) instead of the client scrapy-redis makes for itself."""
        crawler = crawler or self.crawler
        settings = crawler.settings
        # scrapy-redis builds its client from REDIS_PARAMS' redis_cls: here one that hands it
        # the shared client (no client, no pool of its own); and it reads the seed key already
        # resolved (on a Redis Cluster it carries the hash tag). A mutable copy of the
        # settings: a running crawler's are frozen, and so are their copies.
        plain = BaseSettings(settings.copy_to_dict(), priority="project")
        plain.set("REDIS_START_URLS_KEY", CrawlKeys.for_spider(self.name, settings).start_urls, priority=100)
        params = {**plain.getdict("REDIS_PARAMS"), "redis_cls": SharedClient(get_redis(settings))}
        plain.set("REDIS_PARAMS", params, priority=100)
        super().setup_redis(SimpleNamespace(settings=plain, signals=crawler.signals))
        settings = self.crawler.settings
        self.redis_batch_size = settings.getint("REDIS_START_URLS_BATCH_SIZE", 16)
        self.mirror = normalize_origin(settings.get("BAIKE_MIRROR"))
        self.keys = CrawlKeys.for_spider(self.name, settings)
        # with the leased scheduler, seeds enter the frontier in its lease script, and
        # the other URL forms of a parsed page are marked seen in it
        self.frontier_admits_seeds = uses_leases(settings)
        self.deny = deny_list(settings.getlist("BAIKE_DENY_URLS"))
        # links this node has handed to the frontier already (BAIKE_KNOWN_LINKS): dropped
        # here, before a Request is built, fingerprinted and passed through the middlewares
        slots = settings.getint("BAIKE_KNOWN_LINKS", 1_000_000)
        self.known_links = KnownFingerprints(slots) if slots > 0 else None
        self.crawler.signals.connect(self.redis_failover, signal=redis_failover)
        # the Referer of the requests this spider yields (baike.referer), once the engine
        # has its spider middlewares
        self.referer: SpiderRefererMiddleware | None = None
        self.crawler.signals.connect(self._find_referer, signal=signals.spider_opened)
        # BAIKE_REVISIT_AFTER > 0: a revisit answered 304 is recorded here
        policy = RevisitPolicy.from_settings(settings)
        self.revisits = Revisits(self.server, self.keys, policy) if policy.enabled else None

    async def start(self) -> AsyncIterator[Request]:
        """With the leased frontier, nothing: seeds enter it atomically, admitted by the
        scheduler's takes (see :data:`baike.frontier.scripts.LEASE`), and come back through
        :meth:`request_from_seed`, so a seed is never held only in a node's memory.

        With another scheduler (a single node debugging the spider), the seeds waiting
        in Redis are read here and whenever the node idles, as scrapy-redis does.
        """
        try:
            for request in self.next_requests():
                yield request
        except REDIS_ERRORS as exc:
            self.logger.error("Cannot read seeds from Redis (%s); will try again when idle", exc)

    def next_requests(self) -> Iterator[Request]:
        """scrapy-redis reads seeds here; with the leased frontier, the frontier admits them instead."""
        if self.frontier_admits_seeds:
            return iter(())
        return cast("Iterator[Request]", super().next_requests())

    def make_request_from_data(self, data: bytes) -> Request | None:
        """One seed read by scrapy-redis (without the leased frontier); a bad one is logged,
        counted and skipped."""
        try:
            return self.request_from_seed(data)
        except BadSeed as exc:
            self.logger.error("Skipping seed %r: %s", data[:200], exc)
            self.crawler.stats.inc_value("baike/seeds/rejected")
            return None

    def spider_idle(self) -> None:
        """scrapy-redis's idle handler: read the seeds waiting in Redis (without the leased
        frontier), riding out a Redis outage instead of logging a traceback; and stay open.

        When a node closes is :class:`~baike.extensions.closespider.ClusterCloseSpider`'s to
        decide: the cluster's budget, the end of the crawl, and MAX_IDLE_TIME_BEFORE_CLOSE
        measured while the whole crawl has nothing. scrapy-redis's own check, here, would
        close a node whose queue ran dry for a moment while others still hold the work.
        """
        try:
            self.schedule_next_requests()
        except REDIS_ERRORS as exc:
            self.crawler.stats.inc_value("baike/redis/errors")
            self.logger.warning("Cannot read seeds from Redis (%s); retrying when idle", exc)
        raise DontCloseSpider

    # -- seeds ------------------------------------------------------------------------

    def request_from_seed(self, data: bytes) -> Request:
        """The request of one seed: a URL or ``{"url": ..., "meta": {...}, "priority": 0}``.

        Raises BadSeed with the reason; the frontier dead-letters such a seed.
        """
        url, meta, priority = self._read_seed(data)
        return self.entry_request(url, meta=meta, priority=priority)

    def _read_seed(self, data: bytes) -> tuple[str, dict[str, Any], int]:
        if len(data) > MAX_SEED_BYTES:
            raise BadSeed(f"seed of {len(data)} bytes is longer than {MAX_SEED_BYTES}")
        try:
            text = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise BadSeed("seed is not UTF-8 text") from None
        meta: Any = {}
        priority: Any = 0
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise BadSeed(f"seed looks like JSON but is not: {exc}") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("url"), str):
                raise BadSeed('a JSON seed must be an object with a string "url"')
            unknown = sorted(set(obj) - SEED_FIELDS)
            if unknown:
                raise BadSeed(f"unknown fields in a JSON seed: {', '.join(map(str, unknown))[:200]}")
            text, meta, priority = obj["url"], obj.get("meta", {}), obj.get("priority", 0)
            if not isinstance(meta, dict):
                raise BadSeed('"meta" of a JSON seed must be an object')
            if not isinstance(priority, int) or isinstance(priority, bool):
                raise BadSeed('"priority" of a JSON seed must be an integer')
        if len(text) > MAX_URL_LENGTH:
            raise BadSeed(f"seed URL is longer than {MAX_URL_LENGTH} characters")
        url = canonicalize(text, mirror=self.mirror)
        if url is None:
            raise BadSeed(f"not a Baike entry URL (expected https://baike.baidu.com/item/<name>): {text[:200]!r}")
        if url in self.deny:
            raise BadSeed(f"{url} is in BAIKE_DENY_URLS, pages that are not entries")
        return url, meta, priority

    # -- pages --------------------------------------------------------------------------

    def entry_request(self, url: str, meta: dict[str, Any] | None = None, priority: int = 0) -> Request:
        """The request for canonical entry URL ``url``, downloaded from the mirror if set."""
        return Request(
            download_url(url, self.mirror),
            callback=self.parse,
            meta=meta,
            priority=priority,
        )

    def parse(self, response: Response) -> Iterator[BaikeItem | Request]:
        if response.status == 304:
            self._not_modified(response)
            return
        # the text as the server's declared charset (header, BOM, <meta>) reads it
        html = response.text if isinstance(response, TextResponse) else response.body
        try:
            page = parse_page(html, response.url, mirror=self.mirror)
        except Exception as exc:
            self.crawler.stats.inc_value("baike/pages/parser_failed")
            raise DeadLetter(f"parser failed: {exc!r}"[:500]) from exc
        url = canonicalize(response.url, mirror=self.mirror)
        if url in self.deny:
            # redirected onto a denied page: not an entry, whatever it looks like
            self.crawler.stats.inc_value("baike/pages/denied")
            self.logger.info("Not an entry (in BAIKE_DENY_URLS): %s", response.url)
            return
        self.crawler.stats.inc_value(f"baike/pages/{page.kind}")
        referred = self._referred(response)
        if page.kind == KIND_ENTRY:
            item = self._item(page, url or response.url, response.meta.get(SENSE_LABEL_META_KEY))
            item.etag, item.last_modified = _validators(response)
            yield item
            yield from map(referred, self._marks(page, url))
        elif page.kind == KIND_LIST:
            self.logger.debug("Disambiguation list of %d senses: %s", len(page.sense_urls), response.url)
            yield from map(referred, self._list_marks(url))
        else:
            self.logger.info("Not an entry (%s): %s", page.kind, response.url)
            return
        known = 0
        for link in page.links:
            if link in self.deny:
                continue
            if not self._first_time(link):
                known += 1
                continue
            label = page.sense_labels.get(link, "")[:MAX_LABEL_CHARS]
            yield referred(self.entry_request(link, meta={SENSE_LABEL_META_KEY: label} if label else None))
        if known:
            self.crawler.stats.inc_value("baike/links/known", known)

    def _not_modified(self, response: Response) -> None:
        """A revisit answered 304 (only revisits allow one through): the stored record is
        current; its state and schedule are updated before the frontier hears of it, nothing parsed."""
        url = canonicalize(response.url, mirror=self.mirror)
        if self.revisits is None or url is None:
            return
        self.crawler.stats.inc_value("baike/revisit/not_modified")
        try:
            self.revisits.not_modified(url, *_validators(response))
        except REDIS_ERRORS as exc:
            # the entry stays scheduled at its interval (PROMOTE_DUE moved its due time on)
            raise DeadLetter(f"304 not recorded: {exc}") from exc

    def _find_referer(self) -> None:
        self.referer = self.crawler.get_spider_middleware(SpiderRefererMiddleware)

    def _referred(self, response: Response) -> Callable[[Request], Request]:
        """What gives a request made from ``response`` its ``Referer``: Scrapy's policy
        applied by :class:`~baike.referer.SpiderRefererMiddleware` (the project's
        stand-in for Scrapy's RefererMiddleware), or nothing without it."""
        if self.referer is None:
            return _as_is
        return self.referer.for_page(response).set

    def redis_failover(self, failover: Any) -> None:
        """The new master may lack the last links this node handed over: forget them all."""
        if self.known_links is not None:
            self.known_links.clear()

    def _first_time(self, url: str) -> bool:
        """True the first time this node hands ``url`` to the frontier (as far as its
        lossy cache remembers: a forgotten link goes on, and the shared dupefilter,
        which stays the source of truth, drops it)."""
        known = self.known_links
        if known is None:
            return True
        key = hash(url) & MAX_KEY or 1
        if key in known:
            return False
        known.add(key)
        return True

    def _item(self, page: ParsedPage, url: str, sense_label: object) -> BaikeItem:
        subtitle = page.subtitle
        if subtitle is None and isinstance(sense_label, str) and sense_label:
            # the page shows no label of its sense; the disambiguation list that led here did
            subtitle = sense_label
            self.crawler.stats.inc_value("baike/pages/subtitle_from_list")
        if page.summary_from_lead:
            self.crawler.stats.inc_value("baike/pages/summary_from_lead")
        return BaikeItem(
            url=url,
            title=page.title,
            subtitle=subtitle,
            summary=page.summary,
            infobox=dict(page.infobox),
            lemma_id=page.lemma_id,
            old_lemma_id=page.old_lemma_id,
            sub_lemma_id=page.sub_lemma_id,
        )

    def _list_marks(self, url: str | None) -> Iterator[Request]:
        """A list served at ``/item/<name>`` (a name with no default sense) is the page
        ``/item/<name>?force=1`` shows too: that form is marked seen. Not the other way
        round: ``/item/<name>`` of a name with a default sense is that sense."""
        if self.frontier_admits_seeds and url is not None and not is_list_url(url):
            yield self._mark(url + LIST_QUERY)

    def _mark(self, url: str) -> Request:
        self._first_time(url)
        return Request(download_url(url, self.mirror), meta={SEEN_ONLY_META_KEY: True}, callback=self.parse)

    def _marks(self, page: ParsedPage, url: str | None) -> Iterator[Request]:
        """Requests that only mark the page's other URL forms seen in the shared frontier,
        so that no node downloads this sense again under them."""
        if not self.frontier_admits_seeds or url is None:
            return
        forms = []
        if page.lemma_id is not None and page.title:
            forms.append(item_url(page.title, page.lemma_id))
        if page.old_lemma_id is not None and page.sub_lemma_id is not None:
            forms.append(subview_url(page.old_lemma_id, page.sub_lemma_id))
        for form in forms:
            if form is not None and form != url:
                yield self._mark(form)


def _as_is(request: Request) -> Request:
    return request


def _validators(response: Response) -> tuple[str, str]:
    """The ``ETag`` and ``Last-Modified`` a response carries ("" for one it lacks)."""
    return tuple(  # type: ignore[return-value]
        (response.headers.get(name) or b"").decode("latin-1")[:256] for name in ("ETag", "Last-Modified")
    )
