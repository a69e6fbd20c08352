"""Bad settings and refused nodes: one line on stderr and exit code 2, never a traceback.

The unit tests check :func:`baike.settingscheck.check_settings` against the project's
settings and docs; the end-to-end tests run real ``scrapy crawl baike`` processes.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from scrapy.dupefilters import BaseDupeFilter
from scrapy.settings import Settings

import baike.settings as project_settings
from baike.commands.crawl import refusal_in
from baike.errors import NodeRefused
from baike.keys import CrawlKeys
from baike.settingscheck import TYPED_SETTINGS, check_settings
from tests.conftest import ROOT

KEYS = CrawlKeys.for_spider("baike")
# what `scrapy crawl` exits with when it refuses to run the node
EXIT_REFUSED = 2
REFUSAL = "this node cannot read the crawl's dupefilter layout in baike:dupefilter; run scrapy reset"
# the mirror of a node that is refused before it downloads anything
NO_MIRROR = "http://127.0.0.1:9"


class RefusingDupeFilter(BaseDupeFilter):
    """A dupefilter that refuses the node while the crawl starts, as BucketDupeFilter does
    when it cannot read or agree with the crawl's layout (the node imports it by path)."""

    @classmethod
    def from_crawler(cls, crawler: object) -> RefusingDupeFilter:
        raise NodeRefused(REFUSAL)


class BrokenDupeFilter(BaseDupeFilter):
    """A dupefilter with a bug: its error is no refusal and stays Scrapy's to report."""

    @classmethod
    def from_crawler(cls, crawler: object) -> BrokenDupeFilter:
        raise ValueError("a bug in a dupefilter")


def project(**overrides: str) -> Settings:
    """Scrapy's defaults, the project's settings, and ``overrides`` as given with -s."""
    settings = Settings()
    settings.setmodule(project_settings, priority="project")
    settings.setdict(overrides, priority="cmdline")
    return settings


# -- check_settings -------------------------------------------------------------------


def test_the_project_settings_pass() -> None:
    assert check_settings(project()) == []


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CLOSESPIDER_PAGECOUNT", "abc", "a whole number >= 0 (0 = no budget)"),
        ("CLOSESPIDER_PAGECOUNT", "-1", "a whole number >= 0 (0 = no budget)"),
        ("CLOSESPIDER_PAGECOUNT", "2.5", "a whole number >= 0 (0 = no budget)"),
        ("CLOSESPIDER_PAGECOUNT", "", "a whole number >= 0 (0 = no budget)"),
        ("SCHEDULER_LEASE_SECONDS", "-5", "a number of seconds > 0"),
        ("SCHEDULER_FLUSH_INTERVAL", "0", "a number of seconds > 0"),
        ("CLOSESPIDER_FINISHED_GRACE", "nan", "a number of seconds >= 0"),
        ("CLOSESPIDER_POLL_INTERVAL", "inf", "a number of seconds > 0"),
        ("SCHEDULER_FLUSH_SIZE", "65536", "a whole number from 1 to 65535"),
        ("SCHEDULER_BATCH_SIZE", "0", "a whole number >= 1"),
        ("DUPEFILTER_FIELD_BYTES", "17", "a whole number from 1 to 16"),
        ("BLOOM_ERROR_RATE", "1", "a number > 0 and < 1"),
        ("ROBOTSTXT_OBEY", "yes", "True or False (or 1 or 0)"),
        ("CLUSTERSTATS_ENABLED", "2", "True or False (or 1 or 0)"),
        ("RETRY_HTTP_CODES", "500,abc", "a comma-separated list of HTTP status codes (100 to 599)"),
        ("LOGSTATS_INTERVAL", "-1", "a number of seconds >= 0 (0 = no stats line)"),
        ("BAIKE_CAPTCHA_RETRIES", "many", "a whole number >= 0"),
        ("BAIKE_SHARD0_SHARE", "0", "a number > 0 and <= 1 (1 = an even split)"),
        ("BAIKE_SHARD0_SHARE", "1.5", "a number > 0 and <= 1 (1 = an even split)"),
        ("BAIKE_SHARD0_SHARE", "a quarter", "a number > 0 and <= 1 (1 = an even split)"),
    ],
)
def test_a_bad_value_is_one_line_with_the_expected_form(name: str, value: str, expected: str) -> None:
    assert check_settings(project(**{name: value})) == [f"{name}={value!r} is not valid: expected {expected}"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CLOSESPIDER_PAGECOUNT", "0"),
        ("CLOSESPIDER_PAGECOUNT", " 50 "),
        ("SCHEDULER_LEASE_SECONDS", "2"),
        ("SCHEDULER_HEARTBEAT_INTERVAL", "0.5"),
        ("CLOSESPIDER_FINISHED_GRACE", "0"),
        ("BAIKE_SHARD0_SHARE", "1"),
        ("BAIKE_SHARD0_SHARE", "0.7"),
        ("BLOOM_CAPACITY", "100000"),
        ("DOWNLOAD_TIMEOUT", "1e1"),
        ("ROBOTSTXT_OBEY", "False"),
        ("ROBOTSTXT_OBEY", "0"),
        ("AUTOTHROTTLE_ENABLED", "true"),
        ("RETRY_HTTP_CODES", "500,502"),
        ("CLUSTERSTATS_ERROR_STATS", ""),
        ("CLUSTERSTATS_TIMELINE_LENGTH", "0"),
        ("LOGSTATS_INTERVAL", "0"),
    ],
)
def test_the_forms_scrapy_reads_pass(name: str, value: str) -> None:
    assert check_settings(project(**{name: value})) == []


def test_every_bad_setting_is_reported() -> None:
    problems = check_settings(project(SCHEDULER_LEASE_SECONDS="-5", CLOSESPIDER_PAGECOUNT="abc"))
    assert [problem.split("=")[0] for problem in problems] == ["SCHEDULER_LEASE_SECONDS", "CLOSESPIDER_PAGECOUNT"]


def test_sizes_that_give_no_dupefilter_layout_are_reported() -> None:
    problems = check_settings(project(DUPEFILTER_EXPECTED_URLS=str(10**13), DUPEFILTER_BUCKET_ENTRIES="1"))
    assert problems == [
        "DUPEFILTER_EXPECTED_URLS, DUPEFILTER_BUCKET_ENTRIES: no usable bucket layout"
        " (bucket count must be 1..2**32, not 10000000000000)"
    ]
    assert check_settings(project(BLOOM_ERROR_RATE="1e-30")) == [
        "BLOOM_CAPACITY, BLOOM_ERROR_RATE: no usable Bloom filter (a Bloom filter uses 1..64 hashes, not 100)"
    ]


def test_every_typed_project_setting_is_in_the_table() -> None:
    typed = {
        name
        for name, value in vars(project_settings).items()
        if name.isupper() and isinstance(value, (int, float, bool, list, tuple)) and name != "SPIDER_MODULES"
    }
    assert typed - set(TYPED_SETTINGS) == set()


def test_every_typed_documented_setting_is_in_the_table_and_every_entry_is_documented() -> None:
    docs = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([A-Z][A-Z0-9_]+)`[^|]*\| ([^|]*) \|", docs, flags=re.MULTILINE)
    documented_typed = {name for name, default in rows if re.fullmatch(r"[\d,.]+|True|False", default.strip())}
    assert documented_typed - set(TYPED_SETTINGS) == set()
    assert {name for name in TYPED_SETTINGS if f"`{name}`" not in docs} == set()


def test_a_refusal_is_found_behind_the_error_it_caused() -> None:
    refusal = NodeRefused(REFUSAL)
    try:
        try:
            raise refusal
        except NodeRefused:
            raise RuntimeError("Engine slot not assigned")  # noqa: B904 - what Scrapy 2.19 raises on top, as it raises it
    except RuntimeError as exc:
        assert refusal_in(exc) is refusal
    assert refusal_in(ValueError("not a refusal")) is None
    assert refusal_in(None) is None


# -- scrapy crawl ---------------------------------------------------------------------


def crawl(redis_url: str, *settings: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "scrapy", "crawl", "baike", "-s", f"REDIS_URL={redis_url}"]
    for setting in settings:
        args += ["-s", setting]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.e2e
def test_crawl_with_a_bad_setting_is_one_line_and_exit_2(redis_db, redis_server) -> None:
    result = crawl(redis_server.url, "CLOSESPIDER_PAGECOUNT=abc")

    assert result.returncode == EXIT_REFUSED, result.stderr[-3000:]
    assert result.stderr == (
        "crawl: CLOSESPIDER_PAGECOUNT='abc' is not valid: expected a whole number >= 0 (0 = no budget)\n"
    )
    assert result.stdout == ""
    assert redis_db.dbsize() == 0, "the node did not start"


@pytest.mark.e2e
def test_crawl_reports_every_bad_setting(redis_db, redis_server) -> None:
    result = crawl(redis_server.url, "SCHEDULER_LEASE_SECONDS=-5", "ROBOTSTXT_OBEY=yes")

    assert result.returncode == EXIT_REFUSED
    assert result.stderr.splitlines() == [
        "crawl: SCHEDULER_LEASE_SECONDS='-5' is not valid: expected a number of seconds > 0",
        "crawl: ROBOTSTXT_OBEY='yes' is not valid: expected True or False (or 1 or 0)",
    ]


def assert_refused(node, redis_db, message: re.Pattern[str] | str) -> None:
    """The node exited with EXIT_REFUSED, ``message`` was its one line on stderr, its log
    shows no error or traceback, and it neither queued, leased nor downloaded anything."""
    assert node.wait(timeout=60) == EXIT_REFUSED, node.log[-3000:]
    errors = node.log_path.with_suffix(".err").read_text()
    lines = errors.splitlines()
    assert len(lines) == 1, errors
    assert re.fullmatch(message, lines[0]) if isinstance(message, re.Pattern) else lines[0] == message
    assert "Traceback" not in node.log, node.log[-3000:]
    assert "ERROR" not in node.log, node.log[-3000:]
    assert not redis_db.exists(KEYS.requests, KEYS.leases, KEYS.budget), "a refused node takes no part in the crawl"


@pytest.mark.e2e
@pytest.mark.parametrize(
    "scheduler",
    [
        # the refusal is raised inside the engine's open, by the scheduler's open()
        "baike.frontier.scheduler.LeasedScheduler",
        # the refusal is raised while Scrapy builds its scheduler
        "scrapy.core.scheduler.Scheduler",
    ],
)
def test_a_node_refused_while_starting_is_one_line_and_exit_2(
    redis_db, redis_server, node_factory, scheduler: str
) -> None:
    node = node_factory(
        redis_server.url,
        NO_MIRROR,
        f"SCHEDULER={scheduler}",
        "DUPEFILTER_CLASS=tests.test_settingscheck.RefusingDupeFilter",
    )
    assert_refused(node, redis_db, f"crawl: {REFUSAL}")


@pytest.mark.e2e
def test_a_garbage_dupefilter_layout_refuses_the_node(redis_db, redis_server, node_factory) -> None:
    redis_db.hset(KEYS.dupefilter, mapping={"buckets": "abc", "field_bytes": "5"})
    node = node_factory(redis_server.url, NO_MIRROR)
    assert_refused(node, redis_db, re.compile(rf"crawl: .*{re.escape(KEYS.dupefilter)}.*"))


@pytest.mark.e2e
def test_any_other_start_failure_stays_scrapys_to_report(redis_db, redis_server, node_factory) -> None:
    node = node_factory(redis_server.url, NO_MIRROR, "DUPEFILTER_CLASS=tests.test_settingscheck.BrokenDupeFilter")

    assert node.wait(timeout=60) == 1, node.log[-3000:]
    assert node.log_path.with_suffix(".err").read_text() == ""
    assert "Traceback" in node.log and "ValueError: a bug in a dupefilter" in node.log


def test_a_deny_list_entry_that_is_not_a_baike_url_is_one_line() -> None:
    problems = check_settings(Settings({"BAIKE_DENY_URLS": "/view/340519.htm,https://example.com/help"}))
    assert problems == [
        "BAIKE_DENY_URLS: 'https://example.com/help' is not a Baike URL (/item/<name>, /view/<n>.htm, /subview/<a>/<b>.htm)"
    ]
    assert check_settings(Settings({"BAIKE_DENY_URLS": "/view/340519.htm,/item/史记·2016"})) == []


def test_waiting_for_replicas_on_a_cluster_is_refused_in_one_line() -> None:
    cluster = {"REDIS_URL": "redis+cluster://127.0.0.1:7000", "REDIS_WAIT_REPLICAS": 1}
    (problem,) = check_settings(Settings(cluster))
    assert problem.startswith("REDIS_WAIT_REPLICAS is not supported with a Redis Cluster")
    assert check_settings(Settings({**cluster, "REDIS_WAIT_REPLICAS": 0})) == []
