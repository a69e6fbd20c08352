"""``python -m bench.node crawl baike -s ...``: a real node that also counts its Redis traffic.

It is ``scrapy crawl`` in this very process, with two counters wrapped around
redis-py's connection: ``writes`` (socket writes: one per command, one per
pipeline or MULTI/EXEC block, i.e. network round trips) and ``replies`` (replies
read: one per command sent, so a pipeline of n commands counts n and an EVALSHA
counts 1 however many commands its script runs), and ``sent``, the commands sent
by name. They are written as JSON to ``$BENCH_REDIS_COUNTS`` when the process
exits normally.

Redis's own INFO cannot tell these apart: ``commandstats`` and
``total_commands_processed`` both include the commands run inside Lua scripts.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from typing import Any

from redis import connection
from redis.connection import AbstractConnection

COUNTS: dict[str, Any] = {"writes": 0, "replies": 0, "sent": {}}


def _install() -> None:
    send = AbstractConnection.send_packed_command
    read = AbstractConnection.read_response
    sent: dict[str, int] = COUNTS["sent"]

    def wrap_packer(cls: Any) -> None:
        pack = cls.pack

        def counting_pack(self: Any, *args: Any) -> Any:
            name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
            name = name.split()[0].lower()
            sent[name] = sent.get(name, 0) + 1
            return pack(self, *args)

        cls.pack = counting_pack

    for packer in ("HiredisRespSerializer", "PythonRespSerializer"):
        if hasattr(connection, packer):
            wrap_packer(getattr(connection, packer))

    def send_packed_command(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        COUNTS["writes"] += 1
        return send(self, command, check_health)

    def read_response(self: AbstractConnection, *args: Any, **kwargs: Any) -> Any:
        COUNTS["replies"] += 1
        return read(self, *args, **kwargs)

    AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
    AbstractConnection.read_response = read_response  # type: ignore[method-assign]


def _dump(path: str) -> None:
    with open(path, "w", encoding="utf-8") as out:
        json.dump(COUNTS, out)


def main() -> None:
    path = os.environ.get("BENCH_REDIS_COUNTS")
    if path:
        _install()
        atexit.register(_dump, path)
    from scrapy.cmdline import execute

    execute(["scrapy", *sys.argv[1:]])


if __name__ == "__main__":
    main()
