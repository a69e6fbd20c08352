"""The replica's HTTP server: the application (``Replica``) served by aiohttp (``serve``).

aiohttp parses requests and writes responses (keep-alive, pipelining, limits);
``Replica.handle`` maps a request target to an answer and counts it. Every
malformed request gets a 4xx answer and never a traceback. Debug endpoints live
under ``/__replica__/`` and are not counted in the statistics. Entry requests can
be pushed back like Baike does (see ``replica.pushback``): per client address,
or all of them in a storm.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import random
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from urllib.parse import parse_qs, quote

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion10, HttpVersion11, RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from replica.layouts import HTML_UTF8, Renderer
from replica.model import BAIKE_ORIGIN, Route, list_word
from replica.pushback import (
    CAUSES,
    ENTRY_PREFIXES,
    PUSHBACK_429,
    PUSHBACK_MODES,
    ClientSeconds,
    EntryTimes,
    RateLimiter,
    Storm,
    Verdict,
)
from replica.site import Site

logger = logging.getLogger(__name__)

MAX_TARGET = 8192
SERVER_NAME = "baike-replica"
# How long a stopping server lets the requests in progress finish.
SHUTDOWN_SECONDS = 1.0
DEBUG_PREFIX = "/__replica__/"
SLOW_PREFIX = DEBUG_PREFIX + "answer"
# Where a request keeps the HTTP version it was sent with (aiohttp's request is a mapping).
_REQUEST_VERSION = "replica.version"
HTML = HTML_UTF8
_ENTRY_ROUTES = frozenset({"entry", "list", "redirect", "error-redirect"})
SUBVIEW_PREFIX = "/subview/"
# Kinds in the stats' by_kind besides the site's route kinds (replica.model.ROUTE_KINDS).
KIND_FIXED = "fixed"  # /, /help..., /error.html, the captcha page, /robots.txt
KIND_PUSHBACK = "pushback"  # an entry request pushed back (rate limit, penalty, storm)
KIND_BLOCKED = "blocked"  # --captcha-rate / --block-rate answers
KIND_NOT_ALLOWED = "not-allowed"  # any method but GET


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = HTML
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


class Stats:
    """Request counters exposed at /__replica__/stats, and the entry times at /__replica__/times."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total = 0
        self.pages = 0
        self.captchas = 0
        self.too_many_requests = 0
        self.subviews = 0
        self.by_status: Counter[str] = Counter()
        self.by_path: Counter[str] = Counter()
        self.by_kind: Counter[str] = Counter()
        self.page_paths: Counter[str] = Counter()
        self.list_pages: Counter[str] = Counter()
        self.help_pages: Counter[str] = Counter()
        self.pushbacks: Counter[str] = Counter(dict.fromkeys(CAUSES, 0))
        self.per_second = ClientSeconds()
        self.times = EntryTimes()
        # entry pages by canonical URL: served with a full body (200), or answered 304
        self.full_bodies: Counter[str] = Counter()
        self.not_modified: Counter[str] = Counter()
        # bytes of every answer's body (what a client downloads, headers aside)
        self.body_bytes = 0

    def count(self, target: str, path: str, status: int, kind: str, now: float, page: str | None = None) -> None:
        """Count one answered request of ``kind``; an entry page served with 200 also records ``now``.

        ``page`` is the canonical site path of a list or help page (``Route.page``):
        list and help pages are counted by it, whatever URL form asked for them.
        """
        self.total += 1
        self.by_status[str(status)] += 1
        self.by_path[target] += 1
        self.by_kind[kind] += 1
        if path.startswith(SUBVIEW_PREFIX):
            self.subviews += 1
        if status != 200:
            return
        if kind == "entry":
            self.pages += 1
            self.page_paths[path] += 1
            self.times.add(now)
        elif kind == "list":
            self.list_pages[page or path] += 1
        elif kind == "help":
            self.help_pages[page or path] += 1

    def as_dict(self) -> dict:
        return {
            "total": self.total,
            "by_status": dict(sorted(self.by_status.items())),
            "pages": self.pages,
            "by_path": dict(self.by_path),
            "page_paths": dict(self.page_paths),
            "by_kind": dict(sorted(self.by_kind.items())),
            "list_pages": dict(self.list_pages),
            "help_pages": dict(self.help_pages),
            "subviews": self.subviews,
            "captchas": self.captchas,
            "too_many_requests": self.too_many_requests,
            "pushbacks": dict(self.pushbacks),
            "per_second": self.per_second.as_dict(),
            "full_bodies": dict(self.full_bodies),
            "not_modified": dict(self.not_modified),
            "body_bytes": self.body_bytes,
        }


class AntiBot:
    """Captcha redirects and 403/429 bursts, from an RNG of its own.

    The RNG never touches the site's generators, so anti-bot settings cannot
    change a single generated byte. A block starts a burst of 1-4 answers; the
    trigger probability is chosen so that the long-run blocked fraction is
    ``block_rate``.
    """

    MEAN_BURST = 2.5

    def __init__(self, captcha_rate: float, block_rate: float, seed: int):
        self.captcha_rate = captcha_rate
        self.block_rate = block_rate
        self.rng = random.Random(f"replica:antibot:{seed}")
        self.burst_left = 0
        self.burst_status = 403
        # Bursts of mean length B started with probability p block a fraction
        # pB / (pB + 1 - p) of requests; solve that for p = block_rate.
        rate = min(block_rate, 1.0)
        self._trigger = rate / (self.MEAN_BURST * (1 - rate) + rate) if rate > 0 else 0.0

    @property
    def enabled(self) -> bool:
        return self.captcha_rate > 0 or self.block_rate > 0

    def verdict(self) -> int | None:
        """None to serve normally, else 302 (captcha) or the blocking status."""
        if self.burst_left > 0:
            self.burst_left -= 1
            return self.burst_status
        if self.block_rate > 0 and self.rng.random() < self._trigger:
            self.burst_left = self.rng.randint(0, 3)
            self.burst_status = 403 if self.rng.random() < 0.5 else 429
            return self.burst_status
        if self.captcha_rate > 0 and self.rng.random() < self.captcha_rate:
            return 302
        return None


class PageCache:
    """LRU of rendered pages (body, Content-Type), bounded by total body bytes.

    A page is admitted on its second request only: a crawl asks for most pages
    once, and caching those would just churn fresh memory (page faults cost more
    than rendering) while evicting the pages that are asked for again.
    """

    MAX_SEEN = 1 << 20

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.size = 0
        self.items: OrderedDict[int, tuple[bytes, str]] = OrderedDict()
        self.seen: set[int] = set()

    def get(self, key: int) -> tuple[bytes, str] | None:
        page = self.items.get(key)
        if page is not None:
            self.items.move_to_end(key)
        return page

    def put(self, key: int, page: tuple[bytes, str]) -> None:
        size = len(page[0])
        if self.max_bytes <= 0 or size > self.max_bytes:
            return
        if key not in self.seen:
            if len(self.seen) >= self.MAX_SEEN:
                self.seen.clear()
            self.seen.add(key)
            return
        if key in self.items:
            return
        self.items[key] = page
        self.size += size
        while self.size > self.max_bytes:
            _key, (old, _type) = self.items.popitem(last=False)
            self.size -= len(old)


class Replica:
    """The application: maps a parsed request (and its client address) to a Response.

    ``max_rate`` > 0 pushes back a client address asking for entry pages faster
    than ``max_rate`` a second beyond a ``burst`` (default ``max(1, max_rate)``),
    and keeps pushing it back for ``penalty`` seconds restarted by each of its
    entry requests; ``pushback`` says how: a captcha redirect or a 429 with
    ``Retry-After``. ``storm`` pushes back every entry request while it blows.
    """

    def __init__(
        self,
        site: Site,
        *,
        self_links: bool = False,
        captcha_rate: float = 0.0,
        block_rate: float = 0.0,
        latency_ms: float = 0.0,
        cache_mb: float = 128.0,
        max_rate: float = 0.0,
        burst: float | None = None,
        penalty: float = 5.0,
        pushback: str = "captcha",
        crawl_delay: float = 0.0,
    ):
        if pushback not in PUSHBACK_MODES:
            raise ValueError(f"pushback must be one of {PUSHBACK_MODES}")
        self.site = site
        self.self_links = self_links
        self.latency = max(0.0, latency_ms) / 1000.0
        self.antibot = AntiBot(captcha_rate, block_rate, site.seed)
        self.limiter = (
            RateLimiter(max_rate, max(1.0, max_rate) if burst is None else burst, penalty) if max_rate > 0 else None
        )
        self.pushback_429 = pushback == PUSHBACK_429
        self.storm = Storm()
        self.captcha_ids = 0  # numbers the captcha redirects for the process's lifetime
        self.stats = Stats()
        self.cache = PageCache(int(cache_mb * 1024 * 1024))
        self.origin = ""
        self.renderer = Renderer(site)
        # robots.txt asks for this Crawl-delay (seconds) when above 0
        self.crawl_delay = max(crawl_delay, 0.0)
        self._fixed: dict[str, bytes] = {}
        self._help: dict[str, bytes] = {}

    def bind(self, origin: str) -> None:
        """Called once the listening address is known (port 0 picks one)."""
        self.origin = origin
        self.renderer = Renderer(self.site, origin if self.self_links else None)
        renderer = self.renderer
        self._fixed = {
            "/error.html": renderer.error_page(),
            "/anticrawl/captchaview": renderer.captcha_page(),
            "/": renderer.home_page(),
            "/help": renderer.help_page(),
        }
        self._help = renderer.help_pages()

    @property
    def link_origin(self) -> str:
        """Origin written into absolute links and redirect Locations."""
        return self.origin if self.self_links else BAIKE_ORIGIN

    # ------------------------------------------------------------ dispatch

    def handle(self, method: str, target: str, client: str = "", headers: dict[str, str] | None = None) -> Response:
        """The answer to ``method target`` from the address ``client``, counted in the stats.

        ``headers`` (lower-case names) may hold ``if-none-match`` / ``if-modified-since``:
        an entry page that did not change since is answered 304 without a body.
        """
        response = self._handle(method, target, client, headers or {})
        self.stats.body_bytes += len(response.body)
        return response

    def _handle(self, method: str, target: str, client: str, headers: dict[str, str]) -> Response:
        path, _, query = target.partition("?")
        if path.startswith(DEBUG_PREFIX):
            return self._debug(method, path, query)
        now = time.time()
        if method != "GET":
            response = Response(405, self._small_page("405 Method Not Allowed"), headers=[("Allow", "GET")])
            self.stats.count(target, path, 405, KIND_NOT_ALLOWED, now)
            return response
        if path.startswith(ENTRY_PREFIXES):
            self.stats.per_second.count(client, now)
            # With no limiter and no storm to come, pushback costs one comparison.
            pushed = None
            if self.limiter is not None or self.storm.end > now:
                pushed = self._pushback(client, now, target)
            if pushed is not None:
                self.stats.count(target, path, pushed.status, KIND_PUSHBACK, now)
                return pushed
        response, kind, page = self._public(path, query, target, headers)
        self.stats.count(target, path, response.status, kind, now, page)
        return response

    def _pushback(self, client: str, now: float, target: str) -> Response | None:
        """The storm's or the rate limiter's answer to an entry request, None to serve it."""
        verdict = self.storm.verdict(now)
        if verdict is None and self.limiter is not None:
            verdict = self.limiter.check(client, now)
        if verdict is None:
            return None
        self.stats.pushbacks[verdict.cause] += 1
        return self._too_many(verdict) if self.pushback_429 else self._captcha(target)

    def _public(
        self, path: str, query: str, target: str, headers: dict[str, str] | None = None
    ) -> tuple[Response, str, str | None]:
        """The answer to a GET that was not pushed back, its kind for the stats and its page key."""
        fixed = self._fixed.get(path)
        if fixed is not None:
            return Response(200, fixed), KIND_FIXED, None
        if path == "/robots.txt":
            robots = self.renderer.robots()
            if self.crawl_delay:
                robots += f"Crawl-delay: {self.crawl_delay:g}\n".encode("ascii")
            return Response(200, robots, "text/plain; charset=utf-8"), KIND_FIXED, None
        if path.startswith("/help/"):
            return Response(200, self._fixed["/help"]), KIND_FIXED, None
        route = self.site.route(path, query)
        if route.kind in _ENTRY_ROUTES and self.antibot.enabled:
            verdict = self.antibot.verdict()
            if verdict is not None:
                return self._blocked(verdict, target), KIND_BLOCKED, None
        if route.kind == "entry":
            return self._entry(route.entry, headers or {}), route.kind, route.page
        return self._from_route(route), route.kind, route.page

    def _entry(self, index: int, headers: dict[str, str]) -> Response:
        """Entry page ``index`` with its ``ETag`` and ``Last-Modified``; 304 without a body when
        the client's ``If-None-Match`` names its ETag (or, without one, its ``If-Modified-Since``
        is not older than its Last-Modified)."""
        etag, modified = self.site.validators(index)
        validators = [("ETag", etag), ("Last-Modified", _http_date(modified))]
        url = self.site.canonical_url(index)
        if _not_modified(headers, etag, modified):
            self.stats.not_modified[url] += 1
            return Response(304, b"", headers=validators)
        response = self._from_route(Route(200, "entry", index))
        response.headers = validators
        self.stats.full_bodies[url] += 1
        return response

    def advance(self, fraction: float) -> dict:
        """The site's next epoch (see Site.advance); rendered pages are forgotten."""
        changed = self.site.advance(fraction)
        self.cache = PageCache(self.cache.max_bytes)
        logger.info("epoch %d: %d entries changed", self.site.epoch, len(changed))
        return {"epoch": self.site.epoch, "changed": [self.site.canonical_url(index) for index in changed]}

    def _from_route(self, route: Route) -> Response:
        if route.kind == "entry" or route.kind == "list":
            # List pages are cached under their list_target, below every entry index.
            page = self.cache.get(route.entry)
            if page is None:
                if route.kind == "entry":
                    page = self.renderer.entry_response(route.entry)
                else:
                    page = self.renderer.list_page(list_word(route.entry)), HTML
                self.cache.put(route.entry, page)
            return Response(200, page[0], page[1])
        if route.kind in ("redirect", "error-redirect"):
            return self._redirect(route.location or "/")
        if route.kind == "help":
            return Response(200, self._help[route.page or ""])
        if route.kind == "bad-request":
            return Response(400, self._small_page("400 Bad Request"))
        return Response(404, self._small_page("404 Not Found"))

    def _redirect(self, location: str) -> Response:
        url = self.link_origin + location
        body = f'<html><head><title>302 Found</title></head><body><a href="{url}">{url}</a></body></html>'
        return Response(302, body.encode("utf-8"), headers=[("Location", url)])

    def _blocked(self, verdict: int, target: str) -> Response:
        if verdict == 302:
            return self._captcha(target)
        if verdict == 429:
            return self._too_many(Verdict("random", 1))
        return Response(verdict, self._small_page(f"{verdict} {HTTPStatus(verdict).phrase}"))

    def _captcha(self, target: str) -> Response:
        """Baike's answer to a suspected bot: a 302 to its captcha page, back URL in the query."""
        self.captcha_ids += 1
        self.stats.captchas += 1
        back = quote(self.link_origin + target, safe="")
        return self._redirect(f"/anticrawl/captchaview?backurl={back}&id={self.captcha_ids}")

    def _too_many(self, verdict: Verdict) -> Response:
        """A 429 telling the client how many whole seconds to wait."""
        self.stats.too_many_requests += 1
        headers = [("Retry-After", str(verdict.retry_after))]
        return Response(429, self._small_page(f"429 {HTTPStatus.TOO_MANY_REQUESTS.phrase}"), headers=headers)

    @staticmethod
    def _small_page(title: str) -> bytes:
        return f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>".encode()

    # --------------------------------------------------------------- debug

    def _debug(self, method: str, path: str, query: str) -> Response:
        name = path[len(DEBUG_PREFIX) :]
        if name == "reset" and method in ("GET", "POST"):
            self.stats.reset()
            if self.limiter is not None:
                self.limiter.reset()
            return _json({"ok": True})
        if method != "GET":
            return Response(405, self._small_page("405 Method Not Allowed"), headers=[("Allow", "GET")])
        if name == "stats":
            return _json(self.stats.as_dict())
        if name == "times":
            return self._times(query)
        if name == "storm":
            return self._storm(query)
        if name == "info":
            return _json(self.info())
        if name == "answer":
            return self._answer(query)
        if name == "advance":
            try:
                fraction = _number_param(query, "fraction", 0.1)
                return _json(self.advance(fraction))
            except ValueError:
                return Response(400, self._small_page("400 Bad Request"))
        return Response(404, self._small_page("404 Not Found"))

    def info(self) -> dict:
        site = self.site
        return {
            "entries": site.entry_count,
            "pages": site.page_count,
            "seed": site.seed,
            "origin": self.origin,
            "self_links": self.self_links,
            "start_url": site.start_url(),
            "samples": site.sample_paths(),
            "help_paths": sorted(site.help_paths),
            "epoch": site.epoch,
        }

    def _times(self, query: str) -> Response:
        """``?since=<t>&until=<t>``: the entry-page 200 timestamps in ``[since, until)``."""
        try:
            since = _number_param(query, "since", 0.0)
            until = _number_param(query, "until", math.inf)
        except ValueError:
            return Response(400, self._small_page("400 Bad Request"))
        times, complete = self.stats.times.between(since, until)
        return _json({"now": time.time(), "since": since, "count": len(times), "complete": complete, "times": times})

    def _storm(self, query: str) -> Response:
        """``?seconds=N`` starts a storm now (0 ends one); without it, just the storm's state."""
        try:
            seconds = _number_param(query, "seconds", math.nan)
        except ValueError:
            return Response(400, self._small_page("400 Bad Request"))
        now = time.time()
        if not math.isnan(seconds):
            if not math.isfinite(seconds) or seconds < 0:
                return Response(400, self._small_page("400 Bad Request"))
            self.storm.schedule(now, seconds)
            logger.info("storm for %gs", seconds)
        return _json(self.storm.as_dict(now))

    def schedule_storm(self, delay: float, seconds: float) -> None:
        """A storm starting ``delay`` seconds from now, lasting ``seconds``."""
        self.storm.schedule(time.time() + delay, seconds)

    def _answer(self, query: str) -> Response:
        try:
            params = parse_qs(query, errors="strict")
        except (UnicodeDecodeError, ValueError):
            return Response(400, self._small_page("400 Bad Request"))
        start = params.get("start", [self.site.start_url()])[0]
        return _json(self.site.answer_key(start, origin=self.origin))


@functools.lru_cache(maxsize=64)
def _http_date(seconds: int) -> str:
    """``seconds`` (unix time) as an HTTP date; the pages' Last-Modified take one value per epoch."""
    return formatdate(seconds, usegmt=True)


def _not_modified(headers: dict[str, str], etag: str, modified: int) -> bool:
    """Whether a conditional GET's validators say the client's copy is current (RFC 9110:
    If-None-Match, when present, decides alone)."""
    match = headers.get("if-none-match")
    if match is not None:
        return match.strip() == "*" or etag in (tag.strip().removeprefix("W/") for tag in match.split(","))
    since = headers.get("if-modified-since")
    if not since:
        return False
    try:
        return parsedate_to_datetime(since).timestamp() >= modified
    except (TypeError, ValueError, IndexError, OverflowError):
        return False


def _number_param(query: str, name: str, default: float) -> float:
    """The float query parameter ``name`` (``default`` when absent); ValueError when malformed."""
    values = parse_qs(query, errors="strict").get(name)
    if not values:
        return default
    value = float(values[0])
    if math.isnan(value):
        raise ValueError(f"{name} is not a number")
    return value


def _json(value: object) -> Response:
    body = json.dumps(value, ensure_ascii=False).encode("utf-8")
    return Response(200, body, "application/json; charset=utf-8")


# ------------------------------------------------------------------ HTTP (aiohttp)


class _OneLineErrors(logging.Filter):
    """aiohttp logs a request it cannot parse at ERROR with a traceback; it is the client's
    mistake, answered 400, so it becomes one INFO line of ours (and stderr stays readable)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is None:
            return True
        logger.info("%s: %s", record.getMessage(), record.exc_info[1])
        return False


_AIOHTTP_LOGGER = logging.getLogger("replica.aiohttp")
_AIOHTTP_LOGGER.addFilter(_OneLineErrors())


class HttpFront:
    """Serves a ``Replica`` over HTTP/1.1 with aiohttp's low-level server: parsing, limits,
    keep-alive, pipelining and the response heads are the library's; this class maps a
    request to ``Replica.handle`` (aiohttp's application router would only add a lookup to
    every request: the site routes by itself)."""

    def __init__(self, app: Replica):
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    def server(self) -> web.Server:
        """aiohttp's low-level server answering with this front (call it in the serving loop)."""
        self.loop = asyncio.get_running_loop()
        return web.Server(
            self._answer,
            request_factory=self._request,
            access_log=None,
            logger=_AIOHTTP_LOGGER,
            max_line_size=MAX_TARGET + 64,
        )

    def _request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        """Every answer is HTTP/1.1, as Baike's: aiohttp would echo the request's version in the
        status line, and answer a request it could not parse as HTTP/1.0. Whether the connection
        stays open is still the request's (``should_close``, from its version and headers)."""
        version = message.version
        if version != HttpVersion11:
            message = message._replace(version=HttpVersion11)
        assert self.loop is not None
        request = web.BaseRequest(message, payload, protocol, writer, task, self.loop)
        request[_REQUEST_VERSION] = version
        return request

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        target = _request_target(request)
        if target is None:
            return _bad_request()
        method, client = request.method, request.remote or ""
        if target.startswith(SLOW_PREFIX):  # the answer key walks the whole graph: off the event loop
            loop = asyncio.get_running_loop()
            response = await loop.run_in_executor(None, self._safe_handle, method, target, client, {})
        else:
            response = self._safe_handle(method, target, client, _conditional_headers(request))
            if self.app.latency > 0:
                await asyncio.sleep(self.app.latency)
        return _web_response(response, request.keep_alive)

    def _safe_handle(self, method: str, target: str, client: str, headers: dict[str, str]) -> Response:
        try:
            return self.app.handle(method, target, client, headers)
        except Exception:  # a bug must cost one 500, not the server
            logger.exception("error answering %s %s", method, target)
            return Response(500, b"<html><body><h1>500 Internal Server Error</h1></body></html>")


def _request_target(request: web.BaseRequest) -> str | None:
    """The origin-form target (path?query, no fragment) of a request we answer, None for one we
    refuse with a 400: HTTP versions other than 1.0 and 1.1, request bodies we would have to
    de-chunk, targets that are not a path. aiohttp's parser already refused control characters
    and raw non-ASCII bytes (a request target is ASCII, RFC 9112 section 3.2)."""
    if request[_REQUEST_VERSION] not in (HttpVersion10, HttpVersion11) or hdrs.TRANSFER_ENCODING in request.headers:
        return None
    target = request.raw_path
    if target.startswith(("http://", "https://")):
        slash = target.find("/", target.find("//") + 2)
        target = target[slash:] if slash >= 0 else "/"
    if not target.startswith("/"):
        return None
    return target.partition("#")[0]


def _conditional_headers(request: web.BaseRequest) -> dict[str, str]:
    """The validators of a conditional GET, under the lower-case names ``Replica.handle`` reads."""
    headers = request.headers
    found = {}
    for name in (hdrs.IF_NONE_MATCH, hdrs.IF_MODIFIED_SINCE):
        value = headers.get(name)
        if value is not None:
            found[name.lower()] = value
    return found


def _bad_request() -> web.Response:
    """A 400 that closes the connection (what follows a request we refuse is not trusted)."""
    return _web_response(Response(400, b"<html><body><h1>400 Bad Request</h1></body></html>", close=True), False)


def _web_response(response: Response, keep_alive: bool) -> web.Response:
    """The aiohttp response for ``response`` (it adds Content-Length and Date)."""
    headers = {hdrs.SERVER: SERVER_NAME, hdrs.CONTENT_TYPE: response.content_type}
    headers.update(response.headers)
    if keep_alive and not response.close:
        headers[hdrs.CONNECTION] = "keep-alive"
    answer = web.Response(status=response.status, body=response.body, headers=headers)
    if response.close:
        answer.force_close()
    return answer


class Listening:
    """A running ``HttpFront``: ``close()`` stops listening and closes its connections."""

    def __init__(self, runner: web.ServerRunner):
        self.runner = runner

    async def close(self) -> None:
        await self.runner.cleanup()


async def serve(app: Replica, host: str, port: int) -> Listening:
    """Listen on ``host:port`` and bind ``app`` to the resulting origin."""
    runner = web.ServerRunner(HttpFront(app).server(), shutdown_timeout=SHUTDOWN_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
    await site.start()
    bound_port = runner.addresses[0][1]
    shown_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
    origin = f"http://[{shown_host}]:{bound_port}" if ":" in shown_host else f"http://{shown_host}:{bound_port}"
    app.bind(origin)
    return Listening(runner)
