"""Records which redis-py connection pools of a process hand out connections.

Loaded into a real ``scrapy crawl`` node by tests/test_connections.py (before Scrapy
starts) through :func:`record_pools`; when the node exits, the file it was given holds
``{"created": <pools made>, "pools": [[connection ids of one pool], ...]}``: how
many pools the process made, and every pool that handed out a connection with the
connections it handed out.
"""

from __future__ import annotations

import atexit
import json
import threading
from collections import defaultdict
from typing import Any

from redis import connection


def record_pools(path: str) -> None:
    """Record, for this process, each pool that hands out a connection; written to ``path`` at exit."""
    handed: defaultdict[int, set[int]] = defaultdict(set)
    created: set[int] = set()
    lock = threading.Lock()
    make_pool = connection.ConnectionPool.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        make_pool(self, *args, **kwargs)
        with lock:
            created.add(id(self))

    connection.ConnectionPool.__init__ = init

    def wrap(pool_class: type) -> None:
        original = pool_class.get_connection

        def get_connection(self: Any, *args: Any, **kwargs: Any) -> Any:
            handed_out = original(self, *args, **kwargs)
            with lock:
                handed[id(self)].add(id(handed_out))
            return handed_out

        pool_class.get_connection = get_connection

    wrap(connection.ConnectionPool)
    wrap(connection.BlockingConnectionPool)

    def write() -> None:
        with lock, open(path, "w", encoding="utf-8") as out:
            json.dump({"created": len(created), "pools": [sorted(connections) for connections in handed.values()]}, out)

    atexit.register(write)
