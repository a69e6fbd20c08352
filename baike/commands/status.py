"""``scrapy status``: where the crawl stands, once, live (``--watch``) or as JSON."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from scrapy.exceptions import UsageError

from baike.cli import CrawlCommand
from baike.connection import REDIS_ERRORS
from baike.keys import CrawlKeys
from baike.status import (
    CrawlDataError,
    NoCrawlError,
    is_over,
    render,
    require_crawl,
    snapshot,
)

if TYPE_CHECKING:
    import argparse

    from redis import Redis

# ANSI: cursor home, then clear to the end of the screen
CLEAR = "\x1b[H\x1b[J"


class Command(CrawlCommand):
    failure_prefix = "status"

    def syntax(self) -> str:
        return "[--watch [--interval SECONDS]] [--json]"

    def short_desc(self) -> str:
        return "Show the crawl's state, budget, frontier, items and nodes (live with --watch)"

    def long_desc(self) -> str:
        return (
            "Reads the crawl at REDIS_URL: its state (waiting for seeds, running, stopped at budget, "
            "finished), the page budget used, the frontier, fingerprints seen, requests leased, dead "
            "letters, items stored and every node with its pages, rate and last heartbeat; a node "
            "silent for CLUSTERSTATS_LOST_AFTER seconds is marked lost. --watch refreshes until the "
            "crawl ends; --json prints one JSON snapshot (one per refresh with --watch)."
        )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("--watch", action="store_true", help="refresh until the crawl ends")
        parser.add_argument("--json", action="store_true", help="print a JSON snapshot")
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (default 2)")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if args:
            raise UsageError("status takes no arguments")
        if opts.interval <= 0:
            raise UsageError("--interval must be positive")
        where, keys = self.where, self.keys
        try:
            server = self.connect()
            if opts.watch:
                self._watch(server, keys, where, opts)
            else:
                require_crawl(server, keys, where)
                self._show(self._snapshot(server, keys, where), opts.json, clear=False)
        except KeyboardInterrupt:
            print()
        except BrokenPipeError:
            # the reader left (`scrapy status --watch | head`): stop quietly, and keep
            # Python's final flush of stdout from failing again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except REDIS_ERRORS as exc:
            self.fail(f"cannot reach Redis at {where}: {exc}")
        except (RedisError, CrawlDataError) as exc:  # one line, not a traceback: a user-facing command
            self.fail(str(exc))

    def _snapshot(self, server: Redis, keys: CrawlKeys, where: str) -> dict[str, Any]:
        snap = snapshot(
            server,
            keys,
            budget=self.settings.getint("CLOSESPIDER_PAGECOUNT"),
            lost_after=self.settings.getfloat("CLUSTERSTATS_LOST_AFTER", 10.0),
        )
        snap["redis"] = where
        return snap

    def _watch(self, server: Redis, keys: CrawlKeys, where: str, opts: argparse.Namespace) -> None:
        """Refresh until the crawl has ended and its nodes have closed.

        Before any node or seed exists there is nothing to show but the wait, so
        that is shown (a crawl often starts after its watcher).
        """
        clear = sys.stdout.isatty() and not opts.json
        while True:
            try:
                require_crawl(server, keys, where)
            except NoCrawlError as exc:
                self._waiting(str(exc), opts.json, clear)
            else:
                snap = self._snapshot(server, keys, where)
                self._show(snap, opts.json, clear)
                if is_over(snap):
                    return
            time.sleep(opts.interval)

    def _show(self, snap: dict[str, Any], as_json: bool, clear: bool) -> None:
        if as_json:
            # strict JSON: the snapshot holds finite numbers only (baike.status checks every value)
            print(json.dumps(snap, ensure_ascii=False, allow_nan=False), flush=True)
        else:
            print((CLEAR if clear else "") + render(snap), flush=True)

    def _waiting(self, message: str, as_json: bool, clear: bool) -> None:
        if as_json:
            print(json.dumps({"time": time.time(), "state": "no crawl", "message": message}), flush=True)
        else:
            print((CLEAR if clear else "") + message, flush=True)
