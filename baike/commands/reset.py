"""``scrapy reset``: start a fresh crawl, the one operation that deletes crawl state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.exceptions import UsageError

from baike.cli import CrawlCommand
from baike.frontier.bloom import DEFAULT_KEY as BLOOM_KEY
from baike.frontier.bloom import BloomDupeFilter
from baike.frontier.dupefilter import BucketDupeFilter

if TYPE_CHECKING:
    import argparse


class Command(CrawlCommand):
    failure_prefix = "reset failed"

    def syntax(self) -> str:
        return "[--yes] [--keep-items]"

    def short_desc(self) -> str:
        return "Delete the crawl's frontier, fingerprints, budget, leases, dead letters and items"

    def long_desc(self) -> str:
        return (
            "Starts a fresh crawl for every node sharing REDIS_URL: deletes the frontier "
            "(baike:requests and its data), the dupefilter (baike:dupefilter:*, or the Bloom filter's "
            "baike:bloom:*), leases, the page "
            "budget counter, dead letters, node records, cluster stats and, unless --keep-items, the "
            "stored items (baike:items). Seeds waiting in baike:start_urls are kept. "
            "Nothing else ever deletes this state."
        )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        parser.add_argument("--keep-items", action="store_true", help="keep baike:items")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if args:
            raise UsageError("reset takes no arguments")
        keys = self.keys
        doomed = [key for key in keys.all() if key != keys.start_urls and (key != keys.items or not opts.keep_items)]
        if not opts.yes:
            answer = input(f"Delete {', '.join(doomed)} and {keys.dupefilter}:* at {self.where}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("Nothing deleted.")
                return
        try:
            server = self.connect()
            deleted = server.delete(*doomed)
            deleted += BucketDupeFilter(server, keys.dupefilter, fingerprinter=None).clear()
            bloom_key = self.settings.get("BLOOM_KEY", BLOOM_KEY) % {"spider": "baike", "name": "baike"}
            deleted += BloomDupeFilter(server, bloom_key, fingerprinter=None).clear()
        except Exception as exc:  # one line, not a traceback: this is a user-facing command
            self.fail(str(exc))
            return
        print(f"Fresh crawl: deleted {deleted} keys at {self.where}.")
