"""Every scrapy-redis setting is honoured with its documented meaning, or refused in one line.

The refusals are checked against the project's settings (as ``scrapy crawl`` checks them) and
with real ``scrapy crawl`` processes; docs/settings.md must list every setting scrapy-redis
reads. The settings baike honours are tested where they act: the seed forms and
MAX_IDLE_TIME_BEFORE_CLOSE in test_cluster_budget.py, SCHEDULER_FLUSH_ON_START in
test_fresh.py, DUPEFILTER_DEBUG in test_scheduler.py, REDIS_START_URLS_BATCH_SIZE in
test_queue.py; the key names and REDIS_PARAMS here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import scrapy_redis
from scrapy.utils.test import get_crawler

from baike.connection import get_redis
from baike.extensions.closespider import ClusterCloseSpider
from baike.keys import CrawlKeys
from baike.settingscheck import check_settings
from baike.spiders.baike import BaikeSpider
from tests.conftest import ROOT, node_env
from tests.frontier_helpers import PROJECT_SETTINGS, CustomRedis, make_crawler
from tests.test_settingscheck import EXIT_REFUSED, project

KEYS = CrawlKeys.for_spider("baike")
SCRAPY_SCHEDULER = "scrapy.core.scheduler.Scheduler"
SCRAPY_REDIS_SCHEDULER = "scrapy_redis.scheduler.Scheduler"
# Settings scrapy-redis documents (its README and docstrings) that its code does not read by name
DOCUMENTED = ("SCHEDULER", "STATS_CLASS", "SCHEDULER_DUPEFILTER_CLASS", "ITEM_PIPELINES", "REDIS_START_URLS_BATCH_SIZE")
# Quoted upper-case words in scrapy-redis's code that are no setting
NOT_SETTINGS = {"POST", "ZADD"}


# -- refused, in one line naming what to use instead ---------------------------------------------


@pytest.mark.parametrize(
    ("settings", "refusal"),
    [
        ({"REDIS_HOST": "10.0.0.5"}, "REDIS_HOST='10.0.0.5' refused: baike always connects to REDIS_URL"),
        ({"REDIS_PORT": "6380"}, "REDIS_PORT='6380' refused: baike always connects to REDIS_URL"),
        ({"REDIS_DB": "3"}, "REDIS_DB='3' refused: baike always connects to REDIS_URL"),
        (
            {"REDIS_ENCODING": "latin1"},
            "REDIS_ENCODING='latin1' refused: seeds, frontier payloads and stored records are UTF-8",
        ),
        ({"REDIS_PARAMS": '{"encoding": "gbk"}'}, "REDIS_PARAMS['encoding']='gbk' refused: seeds, frontier payloads"),
        (
            {"REDIS_DECODE_RESPONSES": "True"},
            "REDIS_DECODE_RESPONSES='True' refused: baike reads Redis replies as bytes",
        ),
        ({"REDIS_PARAMS": '{"decode_responses": true}'}, "REDIS_PARAMS['decode_responses']=True refused: baike reads"),
        ({"SCHEDULER_PERSIST": "False"}, "SCHEDULER_PERSIST='False' refused: no node deletes the shared frontier"),
        (
            {"SCHEDULER_IDLE_BEFORE_CLOSE": "10"},
            "SCHEDULER_IDLE_BEFORE_CLOSE='10' refused: it is how long scrapy-redis's",
        ),
        (
            {"SCHEDULER_FLUSH_ON_START": "True", "CLUSTERSTATS_ENABLED": "False"},
            "SCHEDULER_FLUSH_ON_START='True' refused with CLUSTERSTATS_ENABLED off",
        ),
        (
            {"SCHEDULER_QUEUE_CLASS": "scrapy_redis.queue.FifoQueue"},
            "SCHEDULER_QUEUE_CLASS=scrapy_redis.queue.FifoQueue refused: the leased scheduler needs",
        ),
        (
            {"SCHEDULER_DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter"},
            "SCHEDULER_DUPEFILTER_CLASS=scrapy_redis.dupefilter.RFPDupeFilter refused: scrapy-redis's scheduler",
        ),
        (
            {"DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter"},
            "DUPEFILTER_CLASS=scrapy_redis.dupefilter.RFPDupeFilter refused: built by the leased scheduler",
        ),
        (
            {"SCHEDULER_SERIALIZER": "scrapy_redis.picklecompat"},
            "SCHEDULER_SERIALIZER=scrapy_redis.picklecompat refused: it would run whatever code",
        ),
        (
            {"ITEM_PIPELINES": '{"scrapy_redis.pipelines.RedisPipeline": 300}'},
            "ITEM_PIPELINES has scrapy_redis.pipelines.RedisPipeline, refused: it pushes items onto a list",
        ),
        ({"REDIS_ITEMS_SERIALIZER": "json.dumps"}, "REDIS_ITEMS_SERIALIZER='json.dumps' refused: baike.pipelines"),
        (
            {"STATS_CLASS": "scrapy_redis.stats.RedisStatsCollector"},
            "STATS_CLASS=scrapy_redis.stats.RedisStatsCollector refused: it would write every node's Scrapy stats",
        ),
        (
            {"SCHEDULER": SCRAPY_SCHEDULER, "SCHEDULER_FLUSH_ON_START": "True"},
            f"SCHEDULER_FLUSH_ON_START='True' refused: only scrapy-redis's schedulers read it, and SCHEDULER is {SCRAPY_SCHEDULER}",
        ),
        (
            {"SCHEDULER": SCRAPY_SCHEDULER, "SCHEDULER_PERSIST": "0"},
            "SCHEDULER_PERSIST='0' refused: only scrapy-redis's schedulers read it",
        ),
        (
            {"SCHEDULER": SCRAPY_SCHEDULER, "SCHEDULER_IDLE_BEFORE_CLOSE": "5"},
            "SCHEDULER_IDLE_BEFORE_CLOSE='5' refused: only scrapy-redis's schedulers read it",
        ),
    ],
)
def test_a_setting_baike_cannot_honour_is_one_line_saying_what_to_use(settings: dict[str, str], refusal: str) -> None:
    (line,) = check_settings(project(**settings))
    assert line.startswith(refusal), line
    assert re.search(r"\b(use|set|write|remove|leave|run|turn|export to)\b", line.split(" refused")[-1]), line


@pytest.mark.parametrize(
    "settings",
    [
        {"REDIS_ENCODING": "utf-8"},
        {"REDIS_ENCODING": "UTF8"},
        {"REDIS_DECODE_RESPONSES": "False"},
        {"SCHEDULER_PERSIST": "True"},
        {"SCHEDULER_IDLE_BEFORE_CLOSE": "0"},
        {"SCHEDULER_FLUSH_ON_START": "True"},
        {"MAX_IDLE_TIME_BEFORE_CLOSE": "30"},
        {"MAX_IDLE_TIME_BEFORE_CLOSE": "-1"},
        {"REDIS_PARAMS": '{"redis_cls": "tests.frontier_helpers.CustomRedis", "socket_timeout": 5}'},
        {"STATS_KEY": "mystats:%(spider)s", "REDIS_ITEMS_KEY": "myitems:%(spider)s"},
        {"SCHEDULER_SERIALIZER": "baike.frontier.serializer"},
        # scrapy-redis's own scheduler applies its settings itself, as scrapy-redis documents
        {
            "SCHEDULER": SCRAPY_REDIS_SCHEDULER,
            "SCHEDULER_PERSIST": "False",
            "SCHEDULER_FLUSH_ON_START": "True",
            "SCHEDULER_IDLE_BEFORE_CLOSE": "3",
            "SCHEDULER_QUEUE_CLASS": "scrapy_redis.queue.FifoQueue",
            "SCHEDULER_SERIALIZER": "scrapy_redis.picklecompat",
        },
    ],
)
def test_the_settings_baike_honours_pass(settings: dict[str, str]) -> None:
    assert check_settings(project(**settings)) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc", "a whole number of seconds"), ("1.5", "a whole number of seconds")],
)
def test_max_idle_time_before_close_must_be_whole_seconds(value: str, expected: str) -> None:
    (line,) = check_settings(project(MAX_IDLE_TIME_BEFORE_CLOSE=value))
    assert line.startswith(f"MAX_IDLE_TIME_BEFORE_CLOSE={value!r} is not valid: expected {expected}")


def scrapy_redis_settings() -> set[str]:
    """Every setting scrapy-redis's code reads by name, and the ones its docs name besides."""
    sources = Path(scrapy_redis.__file__).parent.glob("*.py")
    quoted = {name for path in sources for name in re.findall(r"[\"']([A-Z][A-Z0-9_]{3,})[\"']", path.read_text())}
    return (quoted - NOT_SETTINGS) | set(DOCUMENTED)


def test_docs_say_what_baike_does_with_every_scrapy_redis_setting() -> None:
    docs = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    section = docs.split("## scrapy-redis settings", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `") or line.startswith("| spider")]
    named = {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split(" | ")[0])}
    assert "MAX_IDLE_TIME_BEFORE_CLOSE" in scrapy_redis_settings()
    assert scrapy_redis_settings() - named == set()
    for row in rows:
        verdict = row.split(" | ")[1]
        assert verdict.startswith(("honoured", "refused")), row


# -- scrapy crawl ---------------------------------------------------------------------------------


def crawl(redis_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scrapy", "crawl", "baike", "-s", f"REDIS_URL={redis_url}", *args],
        cwd=ROOT,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ("-s", "SCHEDULER_IDLE_BEFORE_CLOSE=10"),
            "crawl: SCHEDULER_IDLE_BEFORE_CLOSE='10' refused: it is how long scrapy-redis's queue blocks the node",
        ),
        (
            ("-a", "redis_key=myseeds"),
            "crawl: -a redis_key='myseeds' is refused: seeds are read from REDIS_START_URLS_KEY by every node;"
            " use -s REDIS_START_URLS_KEY=...",
        ),
        (
            ("-a", "max_idle_time=soon"),
            "crawl: -a max_idle_time='soon' is not valid: expected a whole number of seconds",
        ),
    ],
)
def test_crawl_refuses_in_one_line_and_exit_2(redis_db, redis_server, args: tuple[str, ...], line: str) -> None:
    result = crawl(redis_server.url, *args)
    assert result.returncode == EXIT_REFUSED, result.stderr[-3000:]
    (refusal,) = result.stderr.splitlines()
    assert refusal.startswith(line), refusal
    assert redis_db.dbsize() == 0, "the node did not start"


# -- honoured -------------------------------------------------------------------------------------


def test_redis_params_names_the_client_class(redis_server) -> None:
    crawler = make_crawler(redis_server.url, REDIS_PARAMS={"redis_cls": "tests.frontier_helpers.CustomRedis"})
    client = get_redis(crawler.settings)
    assert isinstance(client, CustomRedis) and client.ping()


def test_the_spider_argument_max_idle_time_wins_over_the_setting(redis_db, redis_server) -> None:
    """scrapy-redis reads the spider's max_idle_time (``-a max_idle_time=N``) before the setting."""
    crawler = get_crawler(
        BaikeSpider, {**PROJECT_SETTINGS, "REDIS_URL": redis_server.url, "MAX_IDLE_TIME_BEFORE_CLOSE": 60}
    )
    spider = BaikeSpider.from_crawler(crawler, max_idle_time="2")
    ender = ClusterCloseSpider(crawler)
    assert ender.max_idle == 60
    ender._check_cluster = lambda: None
    ender._watch = SimpleNamespace(running=False, start=lambda interval, now=True: None)
    ender.watch_cluster(spider)
    assert ender.max_idle == 2


@pytest.mark.e2e
def test_the_key_settings_name_every_key_of_the_crawl(redis_db, redis_server, replica_factory, node_factory) -> None:
    """REDIS_START_URLS_KEY, SCHEDULER_QUEUE_KEY, SCHEDULER_DUPEFILTER_KEY, REDIS_ITEMS_KEY and
    STATS_KEY, as scrapy-redis's templates, for the nodes and for scrapy status."""
    replica = replica_factory(300, 11)
    names = {
        "REDIS_START_URLS_KEY": "seeds:%(name)s",
        "SCHEDULER_QUEUE_KEY": "frontier:%(spider)s",
        "SCHEDULER_DUPEFILTER_KEY": "fingerprints:%(spider)s",
        "REDIS_ITEMS_KEY": "records:%(spider)s",
        "STATS_KEY": "counters:%(spider)s",
    }
    settings = [f"{name}={template}" for name, template in names.items()]
    redis_db.lpush("seeds:baike", replica.start_url())

    node = node_factory(redis_server.url, replica.url, "CLOSESPIDER_PAGECOUNT=30", *settings)
    assert node.wait(timeout=120) == 0, node.log[-3000:]

    assert node.finish_reason == "closespider_pagecount"
    assert redis_db.exists("frontier:baike", "fingerprints:baike", "records:baike", "counters:baike") == 4
    assert int(redis_db.hget("counters:baike", "pages")) >= 30
    assert not redis_db.exists(KEYS.start_urls, KEYS.requests, KEYS.dupefilter, KEYS.items, KEYS.stats)
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "scrapy",
            "status",
            "--json",
            "-s",
            f"REDIS_URL={redis_server.url}",
            *(word for setting in settings for word in ("-s", setting)),
        ],
        cwd=ROOT,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    snap = json.loads(status.stdout)
    assert snap["items"] == redis_db.hlen("records:baike") > 0
    assert snap["cluster"]["pages"] == int(redis_db.hget("counters:baike", "pages"))
