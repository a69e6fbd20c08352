"""Serving a registry's ``/metrics`` over HTTP (prometheus_client's own server)."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from prometheus_client import start_http_server

if TYPE_CHECKING:
    import threading
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.registry import CollectorRegistry

# The fleet exporter's default port (scrapy metrics --port).
DEFAULT_PORT = 9410
DEFAULT_BIND = "127.0.0.1"


class MetricsPortError(Exception):
    """The metrics cannot be served on the address asked for; the message is one line."""


def serve(registry: CollectorRegistry, port: int, bind: str) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``registry`` on ``bind``:``port`` from a daemon thread; port 0 takes a free one
    (``server.server_port`` tells which). Raises MetricsPortError for a port in use, an
    address that is not this machine's, or a port out of range."""
    if not 0 <= port <= 65535:
        raise MetricsPortError(f"port {port} is not a TCP port (0 to 65535)")
    try:
        return start_http_server(port, addr=bind, registry=registry)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise MetricsPortError(
                f"port {port} on {bind} is in use (another exporter or node?); choose another port"
            ) from None
        raise MetricsPortError(f"cannot listen on {bind} port {port}: {exc.strerror or exc}") from None


def stop(server: WSGIServer) -> None:
    """Stop serving and close the listening socket."""
    server.shutdown()
    server.server_close()
