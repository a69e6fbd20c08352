"""Redis for every component: one client per crawler, TLS, Redis's clock, and the
failures every component rides out the same way (log, back off, retry).

* :func:`get_redis` is the only way baike builds a client: scrapy-redis's
  ``get_redis_from_settings`` (``REDIS_URL``, ``REDIS_PARAMS``, ...) plus the TLS
  client files of ``REDIS_SSL_CA_CERTS``, ``REDIS_SSL_CERTFILE`` and
  ``REDIS_SSL_KEYFILE``. Every component of a crawler (scheduler, dupefilter,
  extensions, pipelines, spider) gets the same client, so one connection pool.
* :class:`RedisClock` and :func:`redis_time`: every timestamp a node writes for others
  to compare with, and every ``now`` a reader compares them with, is Redis's clock,
  never the clock of whichever machine wrote or reads it.
"""

from __future__ import annotations

import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from scrapy.settings import BaseSettings
from scrapy_redis.connection import SETTINGS_PARAMS_MAP, get_redis_from_settings

from baike.errors import NodeRefused
from baike.keys import on_cluster

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis import Redis

# What a lost or restarting Redis raises; anything else is a bug and propagates.
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError)

# TLS client settings -> redis-py's SSLConnection arguments (paths; empty: not used).
SSL_SETTINGS = {
    "REDIS_SSL_CA_CERTS": "ssl_ca_certs",
    "REDIS_SSL_CERTFILE": "ssl_certfile",
    "REDIS_SSL_KEYFILE": "ssl_keyfile",
}
TLS_SCHEME = "rediss://"

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
    """
    params = client_settings(settings)
    key = id(settings)
    cached = _clients.get(key)
    if cached is not None and cached[0]() is settings and cached[1] == params:
        return cached[2]
    client = get_redis_from_settings(BaseSettings(params))
    _clients[key] = (weakref.ref(settings, _forget(key)), params, client)
    return client


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
        values["REDIS_URL"], nodes = cluster_url(url)
        params.update(redis_cls=RedisCluster, startup_nodes=nodes)
    values["REDIS_PARAMS"] = params
    return values


def plain_settings(settings: Any) -> BaseSettings:
    """A copy of ``settings`` whose Redis settings scrapy-redis's own ``get_redis_from_settings``
    can read (a cluster's first node as a plain URL), for scrapy-redis code that builds a
    client of its own; baike's components use :func:`get_redis`."""
    copy = settings.copy()
    if on_cluster(settings):
        values = client_settings(settings)
        params = {name: value for name, value in values["REDIS_PARAMS"].items() if name not in ("redis_cls", "startup_nodes")}
        # above any priority the originals may have (-s sets them at "cmdline")
        copy.set("REDIS_URL", values["REDIS_URL"], priority=100)
        copy.set("REDIS_PARAMS", params, priority=100)
    return copy


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
            raise RedisSettingsError(f"{setting}={value}: no such file (give the path of a PEM file, or leave it empty)")
        files[param] = str(path)
    if not files:
        return files
    if "ssl_keyfile" in files and "ssl_certfile" not in files:
        raise RedisSettingsError("REDIS_SSL_KEYFILE is set without REDIS_SSL_CERTFILE: give the client certificate too")
    if not (url or "").lower().startswith(TLS_SCHEME) and not params.get("ssl"):
        named = ", ".join(setting for setting, param in SSL_SETTINGS.items() if param in files)
        raise RedisSettingsError(
            f"{named} set, but REDIS_URL is not a {TLS_SCHEME} URL: TLS files are used only over TLS"
            f" (write REDIS_URL={TLS_SCHEME}host:port/db)"
        )
    return files


# -- Redis's clock ----------------------------------------------------------------------


def time_reply(reply: tuple[int, int]) -> float:
    """Redis's ``TIME`` reply (seconds, microseconds), as redis-py returns it, in Unix seconds."""
    seconds, micros = reply
    return seconds + micros / 1_000_000


def redis_time(server: Redis, key: str | None = None) -> float:
    """Redis's clock now, in Unix seconds (one ``TIME`` round trip; see :func:`slot_time`)."""
    return time_reply(slot_time(server, key))


def slot_time(server: Redis, key: str | None = None) -> tuple[int, int]:
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
