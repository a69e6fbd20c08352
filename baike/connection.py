"""Redis for every component: one client per crawler, TLS, Redis's clock, and the
failures every component rides out the same way (log, back off, retry).

* :func:`get_redis` is the only way baike builds a client: scrapy-redis's
  ``get_redis_from_settings`` (``REDIS_URL``, ``REDIS_PARAMS``, ...) plus the TLS
  client files of ``REDIS_SSL_CA_CERTS``, ``REDIS_SSL_CERTFILE`` and
  ``REDIS_SSL_KEYFILE``. Every component of a crawler (scheduler, dupefilter,
  extensions, pipelines, spider) gets the same client, so one connection pool.
  A ``redis+sentinel://`` (or ``rediss+sentinel://``) ``REDIS_URL`` names Sentinels and
  a service instead of a server: the client is redis-py's ``Sentinel.master_for``,
  whose pool asks the Sentinels for the master on every new connection, so it follows
  a failover (see :func:`sentinel_target` and docs/redis.md).
* :class:`RedisClock` and :func:`redis_time`: every timestamp a node writes for others
  to compare with, and every ``now`` a reader compares them with, is Redis's clock,
  never the clock of whichever machine wrote or reads it.
"""

from __future__ import annotations

import logging
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit

from redis import Redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.sentinel import Sentinel
from scrapy.settings import BaseSettings
from scrapy_redis import defaults as scrapy_redis_defaults
from scrapy_redis.connection import SETTINGS_PARAMS_MAP, get_redis_from_settings

from baike.errors import NodeRefused
from baike.keys import on_cluster

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

logger = logging.getLogger(__name__)

# What a lost, restarting or demoted Redis raises; anything else is a bug and propagates.
# A Sentinel client's "no master known" (MasterNotFoundError) is a ConnectionError; a
# READONLY reply (a master demoted to a replica, still answering) is transient too:
# redis-py's Sentinel pool turns it into a ConnectionError, a plain client raises it.
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, ReadOnlyError)

# TLS client settings -> redis-py's SSLConnection arguments (paths; empty: not used).
SSL_SETTINGS = {
    "REDIS_SSL_CA_CERTS": "ssl_ca_certs",
    "REDIS_SSL_CERTFILE": "ssl_certfile",
    "REDIS_SSL_KEYFILE": "ssl_keyfile",
}
TLS_SCHEME = "rediss://"
SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}  # scheme -> TLS
SENTINEL_PORT = 26379
# How long a Sentinel may take to answer before the next one is asked, in seconds.
SENTINEL_TIMEOUT = 0.5
# Sentinel settings -> the arguments of the Sentinels' own connections (empty: not sent).
SENTINEL_SETTINGS = {"REDIS_SENTINEL_USERNAME": "username", "REDIS_SENTINEL_PASSWORD": "password"}

# id(settings) -> (a weak reference to the settings, what the client was built from, the client)
_clients: dict[int, tuple[weakref.ref[Any], dict[str, Any], Redis]] = {}


class RedisSettingsError(NodeRefused, ValueError):
    """A Redis setting that cannot work (a TLS file that does not exist, TLS files
    without a ``rediss://`` URL); the message names the setting and what to do.

    A NodeRefused, so ``scrapy crawl`` says it in one line and exits 2; a ValueError,
    as redis-py's own complaint about a bad REDIS_URL is.
    """


def get_redis(settings: Any) -> Redis:
    """The crawl's Redis client for ``settings`` (a Scrapy Settings).

    scrapy-redis's client (``REDIS_URL``, ``REDIS_PARAMS`` and its other ``REDIS_*``
    settings), with the TLS files of ``REDIS_SSL_*`` added to ``REDIS_PARAMS`` (see
    :func:`tls_params`). Every call with the same Settings object returns the same
    client, so the same connection pool, as long as those settings are unchanged; the
    client is forgotten with the Settings object. Raises RedisSettingsError for
    unusable TLS settings and ValueError for a REDIS_URL redis-py cannot read.

    With a Sentinel URL the client is the master of its service, found through the
    Sentinels (:func:`sentinel_client`). A user that a Redis Cluster refuses a command
    its client needs to start raises RedisSettingsError.
    """
    params = client_settings(settings)
    key = id(settings)
    cached = _clients.get(key)
    if cached is not None and cached[0]() is settings and cached[1] == params:
        return cached[2]
    client = sentinel_client(settings, params) if is_sentinel_url(params.get("REDIS_URL")) else None
    try:
        # a Redis Cluster client reads the slot map and the command table as it is built
        client = client or get_redis_from_settings(BaseSettings(params))
    except NoPermissionError as exc:
        raise RedisSettingsError(
            f"REDIS_URL: Redis refused the user as the client connected ({exc}): give the user the"
            " rules of docs/redis.md (acl:node, and acl:cluster on a Redis Cluster)"
        ) from None
    _clients[key] = (weakref.ref(settings, _forget(key)), params, client)
    return client


class SharedClient:
    """A ``redis_cls`` for scrapy-redis's own client factory (``REDIS_PARAMS["redis_cls"]``)
    that hands it ``client`` (the one :func:`get_redis` made) instead of a client, and a
    connection pool, of its own; what it is given to build one from is not used."""

    def __init__(self, client: Redis):
        self.client = client

    def from_url(self, url: str, **params: Any) -> Redis:
        return self.client

    def __call__(self, **params: Any) -> Redis:
        return self.client


def _forget(key: int) -> Callable[[weakref.ref[Any]], None]:
    """The callback that drops the client of the Settings object ``key`` once it is gone."""

    def forget(ref: weakref.ref[Any]) -> None:
        cached = _clients.get(key)
        if cached is not None and cached[0] is ref:
            del _clients[key]

    return forget


def client_settings(settings: Any) -> dict[str, Any]:
    """What scrapy-redis builds the client from: its ``REDIS_*`` settings (REDIS_URL,
    REDIS_HOST, ...) and ``REDIS_PARAMS`` with the TLS files added; for a Redis Cluster
    URL, redis-py's RedisCluster and its start-up nodes (see :func:`cluster_url`)."""
    values = {name: settings.get(name) for name in SETTINGS_PARAMS_MAP}
    params = dict(settings.getdict("REDIS_PARAMS"))
    url = values.get("REDIS_URL")
    params.update(tls_params(settings, url, params))
    if on_cluster(settings):
        values["REDIS_URL"], nodes = cluster_url(cast("str", url))
        params.update(redis_cls=RedisCluster, startup_nodes=nodes)
    values["REDIS_PARAMS"] = params
    return values


def cluster_url(url: str) -> tuple[str, list[ClusterNode]]:
    """``redis+cluster://[user:password@]host:port[,host:port...][/0]`` as redis-py reads it:
    the URL of the first node (``redis://`` or ``rediss://``) and every node to start from.

    Raises RedisSettingsError for a URL without a node, or with a database other than 0
    (a Redis Cluster has only database 0).
    """
    scheme, _, rest = url.partition("://")
    location, _, path = rest.partition("/")
    userinfo, _, hosts = location.rpartition("@")
    nodes = [node for node in hosts.split(",") if node]
    if not nodes or path.strip("/") not in ("", "0"):
        raise RedisSettingsError(
            "REDIS_URL: a Redis Cluster URL names one or more nodes and no database,"
            " e.g. redis+cluster://host1:7000,host2:7000 (or rediss+cluster:// for TLS)"
        )
    base = scheme.lower().replace("+cluster", "")
    prefix = f"{base}://{userinfo}@" if userinfo else f"{base}://"
    startup = []
    for node in nodes:
        host, _, port = node.rpartition(":")
        startup.append(ClusterNode(host or node, int(port) if port.isdigit() else 6379))
    return prefix + nodes[0], startup


def tls_params(settings: Any, url: str | None, params: dict[str, Any]) -> dict[str, str]:
    """redis-py's ``ssl_ca_certs`` / ``ssl_certfile`` / ``ssl_keyfile`` from ``REDIS_SSL_*``.

    Each setting is a path (``~`` expanded) or empty. Raises RedisSettingsError,
    naming the setting, when a file does not exist, when a key file comes without
    its certificate, or when files are given but the connection is not TLS
    (``REDIS_URL`` not ``rediss://`` and no ``ssl`` in ``REDIS_PARAMS``).
    """
    files: dict[str, str] = {}
    for setting, param in SSL_SETTINGS.items():
        value = settings.get(setting) or ""
        if not value:
            continue
        path = Path(value).expanduser()
        if not path.is_file():
            raise RedisSettingsError(
                f"{setting}={value}: no such file (give the path of a PEM file, or leave it empty)"
            )
        files[param] = str(path)
    if not files:
        return files
    if "ssl_keyfile" in files and "ssl_certfile" not in files:
        raise RedisSettingsError("REDIS_SSL_KEYFILE is set without REDIS_SSL_CERTFILE: give the client certificate too")
    if not _is_tls(url) and not params.get("ssl"):
        named = ", ".join(setting for setting, param in SSL_SETTINGS.items() if param in files)
        raise RedisSettingsError(
            f"{named} set, but REDIS_URL is not a {TLS_SCHEME} URL: TLS files are used only over TLS"
            f" (write REDIS_URL={TLS_SCHEME}host:port/db)"
        )
    return files


def _is_tls(url: str | None) -> bool:
    """Whether ``url`` is a TLS URL: ``rediss://``, ``rediss+sentinel://`` or ``rediss+cluster://``."""
    url = (url or "").lower()
    return url.startswith((TLS_SCHEME, "rediss+sentinel://", "rediss+cluster://"))


# -- Sentinel ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """What a Sentinel ``REDIS_URL`` names: the Sentinels, the service (the master's name
    in their configuration), the database, the master's user and password, TLS."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False


def is_sentinel_url(url: str | None) -> bool:
    """Whether ``url`` is a ``redis+sentinel://`` or ``rediss+sentinel://`` URL."""
    scheme, sep, _ = (url or "").partition("://")
    return bool(sep) and scheme.lower() in SENTINEL_SCHEMES


def sentinel_target(url: str) -> SentinelTarget:
    """Read ``redis+sentinel://[user:password@]host1:26379,host2:26379/<service>/<db>``.

    Ports default to 26379 and the database to 0; the user and password (percent-
    encoded) are the master's. Raises ValueError, naming what is wrong, for a URL
    without Sentinels or service, a bad port or a database that is not a number.
    """
    scheme, _, rest = url.partition("://")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else unquote(user)
        if not colon:
            username = None
    sentinels = tuple(_sentinel_address(host) for host in hosts.split(",") if host)
    service, _, db = path.partition("/")
    service = unquote(service.split("?", 1)[0])
    db = db.split("?", 1)[0].strip("/") or "0"
    if not sentinels or not service:
        raise ValueError(f"{scheme}:// needs Sentinels and a service: {scheme}://host:26379,host2:26379/service/0")
    if not db.isdigit():
        raise ValueError(f"the database of a {scheme}:// URL is a number (/service/0), not {db!r}")
    return SentinelTarget(sentinels, service, int(db), username, password, SENTINEL_SCHEMES[scheme.lower()])


def _sentinel_address(host: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``, or a host alone: port 26379) as ``(host, port)``."""
    parsed = urlsplit(f"//{host}")
    try:
        port = parsed.port or SENTINEL_PORT
    except ValueError:
        raise ValueError(f"not a Sentinel address: {host!r} (write host:26379)") from None
    if not parsed.hostname:
        raise ValueError(f"not a Sentinel address: {host!r} (write host:26379)")
    return parsed.hostname, port


def sentinel_client(settings: Any, params: dict[str, Any]) -> Redis:
    """The master of the Sentinel ``REDIS_URL``'s service, as a redis-py client.

    ``params`` are :func:`client_settings`: ``REDIS_PARAMS`` (timeouts, retries, TLS
    files, ...) go to the master's connections and, for TLS, to the Sentinels' too.
    The Sentinels are asked with their own short timeout and, when they need one, the
    user and password of ``REDIS_SENTINEL_USERNAME`` / ``REDIS_SENTINEL_PASSWORD``.
    Every new connection asks the Sentinels where the master is, so after a failover
    the next command reaches the new master (a READONLY reply of a demoted master
    drops the connection, and the command fails with a ConnectionError).
    """
    target = sentinel_target(params["REDIS_URL"])
    kwargs = {**scrapy_redis_defaults.REDIS_PARAMS, **params["REDIS_PARAMS"]}
    kwargs.pop("redis_cls", None)
    for setting, param in (("REDIS_ENCODING", "encoding"), ("REDIS_DECODE_RESPONSES", "decode_responses")):
        if params.get(setting) is not None:
            kwargs[param] = params[setting]
    tls = {name: kwargs[name] for name in kwargs if name.startswith("ssl")}
    if target.ssl:
        kwargs["ssl"] = tls["ssl"] = True
    own = {param: settings.get(setting) for setting, param in SENTINEL_SETTINGS.items() if settings.get(setting)}
    sentinel_kwargs = {"socket_timeout": SENTINEL_TIMEOUT, "socket_connect_timeout": SENTINEL_TIMEOUT, **tls, **own}
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)
    return cast(
        "Redis",
        sentinel.master_for(
            target.service,
            redis_class=Redis,
            db=target.db,
            username=target.username,
            password=target.password,
            **kwargs,
        ),
    )


def master_address(server: Redis) -> str | None:
    """``host:port`` of the master a Sentinel client last connected to (no round trip), or
    None for a client that is not a Sentinel client (a Redis Cluster client has no single
    pool) or has not connected yet."""
    address = getattr(getattr(server, "connection_pool", None), "master_address", None)
    return f"{address[0]}:{address[1]}" if address else None


# -- Redis's clock ----------------------------------------------------------------------


def time_reply(reply: tuple[int, int]) -> float:
    """Redis's ``TIME`` reply (seconds, microseconds), as redis-py returns it, in Unix seconds."""
    seconds, micros = reply
    return seconds + micros / 1_000_000


def redis_time(server: Redis, key: str | None = None) -> float:
    """Redis's clock now, in Unix seconds (one ``TIME`` round trip; see :func:`slot_time`)."""
    return time_reply(slot_time(server, key))


def slot_time(server: Redis | RedisCluster, key: str | None = None) -> tuple[int, int]:
    """Redis's ``TIME``; on a Redis Cluster, that of the master holding ``key`` (the crawl's
    slot, whose clock its scripts read), since a cluster's pipeline cannot carry ``TIME``."""
    if isinstance(server, RedisCluster) and key is not None:
        return server.time(target_nodes=server.get_node_from_key(key))
    return server.time()


def pipelines_time(server: Redis) -> bool:
    """True when a pipeline of ``server`` may carry ``TIME`` (not on a Redis Cluster)."""
    return not isinstance(server, RedisCluster)


class RedisClock:
    """Redis's clock as seen from this process: the local clock plus the offset
    ``Redis TIME - local time`` last measured.

    Measure with :meth:`measure` (one round trip) or, for free, with a ``TIME`` added
    to a pipeline a component sends anyway (:meth:`update`). Until a first
    measurement the offset is 0: the local clock.
    """

    def __init__(self) -> None:
        self.offset = 0.0
        self.measured = False
        self._last = 0.0

    def now(self) -> float:
        """Redis's time now, as last measured, in Unix seconds; once measured, never earlier
        than a time it returned before (each measurement may move the offset by up to half
        a round trip, or a step of the local clock, either way)."""
        self._last = max(time.time() + self.offset, self._last)
        return self._last

    def update(self, reply: tuple[int, int], before: float, after: float) -> None:
        """Take the offset from a ``TIME`` reply received between the local times
        ``before`` and ``after`` (its error is at most half that round trip)."""
        if not self.measured:
            self._last = 0.0  # times before the first measurement were the local clock's
        self.offset = time_reply(reply) - (before + after) / 2
        self.measured = True

    def measure(self, server: Redis, key: str | None = None) -> float:
        """Measure the offset with one ``TIME`` call (see :func:`slot_time`); returns Redis's time now."""
        before = time.time()
        reply = slot_time(server, key)
        self.update(reply, before, time.time())
        return self.now()


# -- WAIT for replicas ------------------------------------------------------------------


class ReplicaWait:
    """``WAIT replicas timeout`` after the writes a failover must not lose (``REDIS_WAIT_REPLICAS``,
    ``REDIS_WAIT_TIMEOUT`` in milliseconds); nothing with 0 replicas (the default).

    ``WAIT`` covers the writes of its own connection only, and a client's pool lends
    any of its connections to each command: writes to be waited for are sent through
    :meth:`pinned`, a client on one connection of the same pool, and waited for on it.
    :meth:`wait` raises what the client raises (a REDIS_ERRORS error when the master is
    lost: the caller then treats the write as not done, and sends it again). A ``WAIT``
    that times out with fewer replicas is not an error: the write stands, the shortfall
    is logged once until enough replicas acknowledge again, and counted.
    """

    def __init__(self, server: Redis, replicas: int = 0, timeout_ms: int = 100):
        self.server = server
        self.replicas = max(replicas, 0)
        self.timeout_ms = max(timeout_ms, 1)
        self.short = 0
        self._short_logged = False

    @contextmanager
    def pinned(self) -> Iterator[Redis]:
        """A client holding one connection of the pool for the writes to wait for (the
        shared client itself when not waiting); the connection goes back afterwards.
        Raises a REDIS_ERRORS error when no connection can be made."""
        if not self.replicas:
            yield self.server
            return
        client = Redis(connection_pool=self.server.connection_pool, single_connection_client=True)
        try:
            yield client
        finally:
            client.close()

    def wait(self, client: Redis) -> int | None:
        """Wait until ``replicas`` replicas hold the writes sent through ``client`` (from
        :meth:`pinned`), at most the timeout; returns how many did (None when not asked to)."""
        if not self.replicas:
            return None
        acked = int(client.wait(self.replicas, self.timeout_ms))
        if acked < self.replicas:
            self.short += 1
            if not self._short_logged:
                self._short_logged = True
                logger.warning(
                    "Only %d of REDIS_WAIT_REPLICAS=%d replicas acknowledged within %d ms: a failover now may"
                    " lose the last writes (going on; said once until they acknowledge again)",
                    acked,
                    self.replicas,
                    self.timeout_ms,
                )
        elif self._short_logged:
            self._short_logged = False
            logger.info("%d replicas acknowledge the crawl's writes again", acked)
        return acked


# client -> its ReplicaWait, shared by the components of one crawler
_waits: weakref.WeakKeyDictionary[Redis, ReplicaWait] = weakref.WeakKeyDictionary()


def replica_wait(server: Redis, settings: Any) -> ReplicaWait:
    """The :class:`ReplicaWait` of ``server`` (one per client: its shortfall is logged once
    per node), from ``REDIS_WAIT_REPLICAS`` and ``REDIS_WAIT_TIMEOUT``."""
    waiter = _waits.get(server)
    if waiter is None:
        waiter = ReplicaWait(
            server, settings.getint("REDIS_WAIT_REPLICAS", 0), settings.getint("REDIS_WAIT_TIMEOUT", 100)
        )
        _waits[server] = waiter
    return waiter
