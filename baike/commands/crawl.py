"""``scrapy crawl``: Scrapy's own command, refusing a node that cannot take part in the crawl.

Scrapy finds this module through ``COMMANDS_MODULE = "baike.commands"``: the project's
commands are read after Scrapy's and replace those of the same name
(``scrapy.cmdline._get_commands_dict``), so ``scrapy crawl`` runs this class. It runs
the crawl exactly as Scrapy's does, and adds two refusals, each one line on stderr
starting with ``crawl:`` and exit code 2, never a traceback:

* a bad value of a typed setting, or a scrapy-redis setting or spider argument (``-a``)
  this node cannot honour (:func:`baike.settingscheck.check_settings`,
  :func:`baike.scrapyredis.argument_refusals`), found before anything starts: one line
  per bad setting;
* a :class:`~baike.errors.NodeRefused` raised while the crawl starts, e.g. by the
  dupefilter when this node cannot read or agree with the crawl's layout.

Exit codes: 0 the crawl ran; 1 Scrapy could not start it for another reason (Scrapy's
own ``bootstrap_failed``, reported by Scrapy with its traceback); 2 the node was refused.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, cast

from scrapy import signals
from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError
from twisted.internet.defer import Deferred

from baike.errors import NodeRefused
from baike.scrapyredis import argument_refusals
from baike.settingscheck import check_settings

if TYPE_CHECKING:
    import argparse
    import asyncio

    from twisted.python.failure import Failure

EXIT_REFUSED = 2
# Scrapy's loggers of the errors met while closing a crawl that never finished opening
CLOSING_LOGGERS = ("scrapy.core.engine", "scrapy.utils.signal")


def refusal_in(exc: BaseException | None) -> NodeRefused | None:
    """The NodeRefused that ``exc`` is, or was raised from or while handling; else None.

    Scrapy 2.19 replaces an error raised while its scheduler is built by the
    ``RuntimeError`` of closing the half-built engine; the refusal is its context.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, NodeRefused):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


class OpeningErrors(logging.Filter):
    """Holds back the tracebacks Scrapy logs while a crawl opens, until it is known why.

    When a component refuses the node inside the engine's open (the scheduler's open
    builds the dupefilter), Scrapy 2.19 closes an engine whose scraper and stats never
    opened, and logs what fails in that close with tracebacks ("Scraper close failure",
    CoreStats' spider_closed handler): consequences of the refusal, which the command
    reports itself. Such records are held until the spider is open (none, normally),
    then logged; when the crawl fails instead, they are dropped if the node was refused
    and logged otherwise, after the lines of the close.
    """

    def __init__(self) -> None:
        super().__init__()
        self.held: list[logging.LogRecord] = []
        self.loggers = [logging.getLogger(name) for name in CLOSING_LOGGERS]

    def install(self) -> None:
        for logger in self.loggers:
            logger.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.levelno >= logging.ERROR:
            self.held.append(record)
            return False
        return True

    def release(self, *, drop: bool = False) -> None:
        """Stop holding; log what was held unless ``drop``."""
        for logger in self.loggers:
            logger.removeFilter(self)
        held, self.held = self.held, []
        if not drop:
            for record in held:
                logging.getLogger(record.name).handle(record)

    def spider_opened(self, spider: Any) -> None:
        self.release()


class Command(ScrapyCrawlCommand):
    """Scrapy's ``crawl``, with the project's settings checked and refusals in one line."""

    # the refusal the crawl ended with, if any
    refusal: NodeRefused | None = None

    def long_desc(self) -> str:
        return (
            "Run a spider of the project, by name. Bad values of the project's typed settings and a node "
            "refused while starting (e.g. a dupefilter layout it cannot read) are one line each on stderr, "
            f"exit code {EXIT_REFUSED}."
        )

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        """Scrapy's options, then the check of the settings and spider arguments: every
        problem is one line on stderr and the command exits with EXIT_REFUSED before
        anything starts."""
        super().process_options(args, opts)
        assert self.settings is not None
        problems = [*check_settings(self.settings), *argument_refusals(opts.spargs)]
        if problems:
            for problem in problems:
                self.refuse(problem)
            raise SystemExit(EXIT_REFUSED)

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) < 1:
            raise UsageError
        if len(args) > 1:
            raise UsageError("running 'scrapy crawl' with more than one spider is not supported")
        assert self.crawler_process is not None
        self.opening_errors = OpeningErrors()
        # the public create_crawler, not Scrapy's private ScrapyCommand._create_crawler (which
        # only adds a warning when FEEDS is set without the feed exporter)
        crawler = self.crawler_process.create_crawler(args[0])
        crawler.signals.connect(self.opening_errors.spider_opened, signal=signals.spider_opened)
        self.opening_errors.install()
        self.watch(cast("Deferred[None] | asyncio.Task[None]", self.crawler_process.crawl(crawler, **opts.spargs)))
        self.crawler_process.start()
        self.opening_errors.release(drop=self.refusal is not None)
        if self.refusal is not None:
            self.refuse(str(self.refusal))
        elif self.crawler_process.bootstrap_failed:
            self.exitcode = 1

    def watch(self, crawl: Deferred[None] | asyncio.Task[None]) -> None:
        """Take note of a refusal the crawl ends with; any other error stays Scrapy's to report."""
        if isinstance(crawl, Deferred):
            crawl.addErrback(self._crawl_failed)
        else:
            crawl.add_done_callback(self._crawl_task_done)

    def _crawl_failed(self, failure: Failure) -> Failure | None:
        """Errback of the crawl's Deferred: a refusal is handled here; anything else is
        passed on, so Twisted logs it as it would without this command."""
        self.refusal = refusal_in(failure.value)
        if self.refusal is None:
            self.opening_errors.release()
            return failure
        return None

    def _crawl_task_done(self, task: asyncio.Task[None]) -> None:
        """Done callback of the crawl's task: reading its exception marks it handled, so an
        error that is no refusal is handed to the loop's exception handler, as asyncio
        would have done on its own ("Task exception was never retrieved")."""
        if task.cancelled() or (exc := task.exception()) is None:
            return
        self.refusal = refusal_in(exc)
        if self.refusal is None:
            self.opening_errors.release()
            task.get_loop().call_exception_handler(
                {"message": "Task exception was never retrieved", "exception": exc, "future": task}
            )

    def refuse(self, message: str) -> None:
        """One line on stderr, and the exit code of a refused node."""
        print(f"crawl: {' '.join(message.split())}", file=sys.stderr)
        self.exitcode = EXIT_REFUSED
