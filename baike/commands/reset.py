"""``scrapy reset``: start a fresh crawl, the one operation that deletes crawl state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.exceptions import UsageError

from baike.cli import CrawlCommand
from baike.fresh import doomed_keys, live_nodes, reset_crawl
from baike.frontier.bloom import bloom_key

if TYPE_CHECKING:
    import argparse

# Live nodes named in the refusal; the rest are counted.
NAMED_NODES = 5


class NodesAlive(Exception):
    """Nodes are still crawling: a reset under them would be undone or corrupted."""


def refusal(alive: list[str]) -> str:
    """One line naming the live nodes and what to do."""
    named = ", ".join(alive[:NAMED_NODES])
    if len(alive) > NAMED_NODES:
        named += f" and {len(alive) - NAMED_NODES} more"
    if len(alive) == 1:
        return f"1 node is still alive ({named}): stop it first, or use --force to reset under a running node"
    return f"{len(alive)} nodes are still alive ({named}): stop them first, or use --force to reset under running nodes"


class Command(CrawlCommand):
    failure_prefix = "reset failed"

    def syntax(self) -> str:
        return "[--yes] [--keep-items] [--force]"

    def short_desc(self) -> str:
        return "Delete the crawl's frontier, fingerprints, budget, leases, dead letters and items"

    def long_desc(self) -> str:
        return (
            "Starts a fresh crawl for every node sharing REDIS_URL: deletes the frontier "
            "(baike:requests and its data), the dupefilter (baike:dupefilter:*, or the Bloom filter's "
            "baike:bloom:*), leases, the page "
            "budget counter, dead letters, node records, cluster stats and, unless --keep-items, the "
            "stored items (baike:items, with baike:aliases, the other URL forms of stored entries). Seeds waiting in baike:start_urls are kept. "
            "Refuses while a node is alive (as scrapy status shows it), unless --force. "
            "Nothing else ever deletes this state."
        )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        parser.add_argument("--keep-items", action="store_true", help="keep baike:items and baike:aliases")
        parser.add_argument("--force", action="store_true", help="reset even while nodes are alive")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if args:
            raise UsageError("reset takes no arguments")
        keys = self.keys
        doomed = doomed_keys(keys, opts.keep_items)
        try:
            server = self.connect()
            alive = live_nodes(server, keys, self.settings.getfloat("CLUSTERSTATS_LOST_AFTER", 10.0))
            if alive and not opts.force:
                raise NodesAlive(refusal(alive))
            if not opts.yes:
                answer = input(f"Delete {', '.join(doomed)} and {keys.dupefilter}:* at {self.where}? [y/N] ")
                if answer.strip().lower() not in ("y", "yes"):
                    print("Nothing deleted.")
                    return
            deleted = reset_crawl(server, keys, bloom_key(self.settings, "baike"), opts.keep_items)
        except Exception as exc:  # one line, not a traceback: this is a user-facing command
            self.fail(str(exc))
            return
        print(f"Fresh crawl: deleted {deleted} keys at {self.where}.")
