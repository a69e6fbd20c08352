"""``scrapy recrawl``: make stored entries due now (e.g. after a parser fix)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.exceptions import UsageError

from baike.cli import CrawlCommand
from baike.connection import redis_time
from baike.revisit import make_due

if TYPE_CHECKING:
    import argparse


class Command(CrawlCommand):
    failure_prefix = "recrawl failed"

    def syntax(self) -> str:
        return "[--due-within SECONDS] [--all]"

    def short_desc(self) -> str:
        return "Make stored entries due for a revisit now"

    def long_desc(self) -> str:
        return (
            "Sets the due time (baike:revisit, Redis time) of the stored entries due within "
            "--due-within seconds, or of every stored entry with --all, to now: the next nodes "
            "running with BAIKE_REVISIT_AFTER > 0 revisit them (with conditional requests), "
            "under the crawl's budget. Entries stored before revisits were on are scheduled by --all."
        )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument(
            "--due-within",
            type=float,
            default=None,
            metavar="SECONDS",
            help="entries due within this many seconds from now",
        )
        parser.add_argument("--all", action="store_true", help="every stored entry")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if args:
            raise UsageError("recrawl takes no arguments")
        if opts.all == (opts.due_within is not None):
            raise UsageError("give one of --all or --due-within SECONDS")
        if opts.due_within is not None and opts.due_within < 0:
            raise UsageError("--due-within takes a number of seconds, at least 0")
        try:
            server = self.connect()
            due = make_due(
                server, self.keys, None if opts.all else opts.due_within, redis_time(server, self.keys.revisit)
            )
        except Exception as exc:  # one line, not a traceback: this is a user-facing command
            self.fail(str(exc))
            return
        print(f"{due} stored entries are due now at {self.where}.")
