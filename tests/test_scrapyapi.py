"""baike.scrapyapi, the one use of Scrapy's private parts, on a real engine.

Each test fails saying what a Scrapy upgrade changed: then baike.scrapyapi (and only
it) needs a new way to wake the engine, or a public call that Scrapy then has.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import scrapy
from scrapy.core.engine import ExecutionEngine

ROOT = Path(__file__).resolve().parent.parent

# A real crawl in a process of its own (a reactor runs once per process): a spider with
# nothing to crawl, kept open while idle, whose scheduler records when the engine asks it
# for requests. Once idle, the spider wakes the engine through baike.scrapyapi and looks,
# a moment later, whether the engine asked its scheduler again: without the wake it would
# ask only on its 5-second heartbeat, long after the look.
SCRIPT = r"""
import json, sys

from scrapy import Spider, signals
from scrapy.core.scheduler import BaseScheduler
from scrapy.crawler import CrawlerProcess
from scrapy.exceptions import DontCloseSpider
from scrapy.utils.asyncio import call_later
from scrapy.utils.defer import deferred_from_coro

from baike.scrapyapi import wake_engine

report = {}


class AskedScheduler(BaseScheduler):
    asked = 0

    def has_pending_requests(self):
        return False

    def enqueue_request(self, request):
        return False

    def next_request(self):
        AskedScheduler.asked += 1
        return None


class IdleSpider(Spider):
    name = "idle"
    woken = False

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.idle, signal=signals.spider_idle)
        return spider

    async def start(self):
        return
        yield

    def idle(self):
        if not self.woken:
            self.woken = True
            call_later(0, self.wake)
        raise DontCloseSpider

    def wake(self):
        report["asked_before"] = AskedScheduler.asked
        report["woken"] = wake_engine(self.crawler.engine)
        call_later(0.5, self.look)

    def look(self):
        report["asked_after"] = AskedScheduler.asked
        deferred_from_coro(self.crawler.engine.close_spider_async(reason="looked"))

    def closed(self, reason):
        report["reason"] = reason


process = CrawlerProcess(
    {"SCHEDULER": "__main__.AskedScheduler", "LOG_LEVEL": "ERROR", "TELNETCONSOLE_ENABLED": False}
)
crawler = process.create_crawler(IdleSpider)
process.crawl(crawler)
process.start()
report["woken_after_close"] = wake_engine(crawler.engine)
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def report() -> dict:
    """What the idle crawl saw."""
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_waking_the_engine_makes_it_ask_the_scheduler_at_once(report) -> None:
    assert report["reason"] == "looked", report
    assert report["woken"] is True, (
        f"Scrapy {scrapy.__version__}: an open engine has no _slot with a nextcall: baike.scrapyapi.wake_engine"
        " needs another way to wake the engine"
    )
    assert report["asked_after"] > report["asked_before"], (
        f"Scrapy {scrapy.__version__}: scheduling the engine slot's nextcall no longer makes the engine ask"
        " its scheduler for requests: baike.scrapyapi.wake_engine wakes nothing, and nodes wait for the"
        " engine's heartbeat"
    )


def test_there_is_nothing_to_wake_once_the_spider_closed(report) -> None:
    assert report["woken_after_close"] is False, (
        f"Scrapy {scrapy.__version__}: ExecutionEngine._slot is no longer None once the spider closed"
    )


def test_the_engine_keeps_what_wake_engine_mirrors() -> None:
    """wake_engine does what engine.crawl() does after enqueuing: schedule the slot's nextcall."""
    source = inspect.getsource(ExecutionEngine.crawl)
    assert "self._slot.nextcall.schedule()" in source, (
        f"Scrapy {scrapy.__version__}: ExecutionEngine.crawl() no longer wakes the engine through"
        " _slot.nextcall.schedule(); see what it does now and do the same in baike.scrapyapi.wake_engine"
        " (or use the public call it may now have)"
    )
