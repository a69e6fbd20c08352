"""What every ``scrapy <command>`` of the project shares (the commands are in
:mod:`baike.commands`; this base lives outside that package, where Scrapy would
take it for a command of its own)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, ClassVar

from scrapy.commands import ScrapyCommand

from baike.keys import CrawlKeys
from baike.status import connect, redacted

if TYPE_CHECKING:
    from redis import Redis
    from scrapy.settings import Settings


class CrawlCommand(ScrapyCommand):
    """A command on the crawl at REDIS_URL: runs in the project, logs nothing, and
    reports a failure as one line on stderr with exit code 1."""

    requires_project = True
    settings: Settings  # set by Scrapy before a command runs
    default_settings: ClassVar[dict[str, Any]] = {"LOG_ENABLED": False}
    # what a failure's line starts with, e.g. "status: cannot reach Redis ..."
    failure_prefix = ""

    @property
    def where(self) -> str:
        """REDIS_URL without its password, for messages."""
        return redacted(self.settings.get("REDIS_URL") or "redis://127.0.0.1:6379/0")

    @property
    def keys(self) -> CrawlKeys:
        return CrawlKeys.for_spider("baike", self.settings)

    def connect(self) -> Redis:
        """The crawl's Redis client; raises CrawlDataError for a REDIS_URL that is not one."""
        return connect(self.settings, self.where)

    def fail(self, message: str) -> None:
        print(f"{self.failure_prefix}: {message}", file=sys.stderr)
        self.exitcode = 1
