"""Revisits (issue 16): the replica's epochs and conditional GETs, the revisit scripts on the
suite's Redis, and a real 2-node revisit pass after the replica changed."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from datetime import datetime, timedelta

import pytest

from baike.keys import CrawlKeys
from baike.revisit import RevisitPolicy, Revisits, fingerprint, make_due
from replica.server import Replica as ReplicaApp
from replica.site import Site
from tests.test_commands import scrapy
from tests.test_crash_safety import FAST_LEASES, assert_accounting_whole, kill_while_holding

KEYS = CrawlKeys.for_spider("baike")
URL = "https://baike.baidu.com/item/x/1"
POLICY = RevisitPolicy(after=100.0, shortest=10.0, longest=1000.0, history=2)


# -- the replica ----------------------------------------------------------------------------


def test_the_replica_changes_the_same_entries_each_epoch_and_answers_304_when_unchanged() -> None:
    site = Site(300, 3, None)
    app = ReplicaApp(site)
    app.bind("http://replica")
    before = {index: site.expected(index) for index in range(300)}
    changed = set(site.advance(0.1))
    assert 0 < len(changed) < 100
    assert changed == set(site.advance(0.1)), "the same hot entries change every epoch"
    assert site.epoch == 2
    for index in range(300):
        assert (site.expected(index) != before[index]) == (index in changed), index
        assert site.targets(index) == Site(300, 3, None).targets(index), "links never change"
    hot, cold = min(changed), min(set(range(300)) - changed)
    for index, status in ((hot, 200), (cold, 304)):
        full = app.handle("GET", site.entry_path(index))
        headers = dict(full.headers)
        assert full.status == 200 and headers["ETag"]
        site_before = Site(300, 3, None)
        old_etag, _old_modified = site_before.validators(index)
        assert (headers["ETag"] == old_etag) == (index not in changed)
        answer = app.handle("GET", site.entry_path(index), headers={"if-none-match": old_etag})
        assert answer.status == status and (answer.body == b"") == (status == 304)
        since = app.handle(
            "GET", site.entry_path(index), headers={"if-modified-since": "Mon, 01 Jan 2024 00:00:00 GMT"}
        )
        assert since.status == status
    stats = app.stats.as_dict()
    assert stats["not_modified"] == {site.canonical_url(cold): 2}
    assert stats["full_bodies"] == {site.canonical_url(hot): 3, site.canonical_url(cold): 1}


# -- the scripts ------------------------------------------------------------------------------


def record(summary: str) -> dict:
    return {"url": URL, "title": "x", "summary": summary, "crawled_at": "2026-01-01T00:00:00+00:00"}


def state(client) -> dict:
    return json.loads(client.hget(KEYS.freshness, URL))


def test_a_changed_entry_keeps_its_previous_record_once_and_is_due_sooner(redis_db) -> None:
    revisits = Revisits(redis_db, KEYS, POLICY)
    first, second = record("one"), record("two")
    assert revisits.store([(first, json.dumps(first), "", '"a"', "")]) == [1, 0, 0]
    assert state(redis_db)["interval"] == 100
    assert revisits.store([(second, json.dumps(second), "", '"b"', "")]) == [0, 1, 0]
    # stored again (a lease redone after a crash): its own fingerprint, no second history entry
    assert revisits.store([(second, json.dumps(second), "", '"b"', "")]) == [0, 0, 1]
    assert redis_db.hget(KEYS.history, URL).decode().split("\n") == [json.dumps(first)]
    assert json.loads(redis_db.hget(KEYS.items, URL)) == second
    assert state(redis_db)["fp"] == fingerprint(second) != fingerprint(first)
    assert fingerprint(record("two") | {"crawled_at": "later"}) == fingerprint(second), "times are not content"
    third = record("three")
    revisits.store([(third, json.dumps(third), "", "", "")])
    fourth = record("four")
    revisits.store([(fourth, json.dumps(fourth), "", "", "")])
    assert [json.loads(line)["summary"] for line in redis_db.hget(KEYS.history, URL).decode().split("\n")] == [
        "three",
        "two",
    ], "newest first, at most BAIKE_HISTORY_LENGTH"


def test_intervals_adapt_after_three_epochs(redis_db) -> None:
    revisits = Revisits(redis_db, KEYS, POLICY)
    hot, cold = "https://baike.baidu.com/item/hot/1", "https://baike.baidu.com/item/cold/2"
    for url in (hot, cold):
        rec = record("v0") | {"url": url}
        revisits.store([(rec, json.dumps(rec), "", '"v0"', "")])
    for epoch in range(1, 4):
        rec = record(f"v{epoch}") | {"url": hot}
        revisits.store([(rec, json.dumps(rec), "", f'"v{epoch}"', "")])
        assert revisits.not_modified(cold, '"v0"') > 0
    intervals = {url: json.loads(redis_db.hget(KEYS.freshness, url))["interval"] for url in (hot, cold)}
    assert intervals == {hot: 12.5, cold: 337.5}
    assert redis_db.zscore(KEYS.revisit, hot) < redis_db.zscore(KEYS.revisit, cold)
    assert redis_db.hgetall(KEYS.revisit_stats) == {b"new": b"2", b"changed": b"3", b"not_modified": b"3"}
    assert revisits.not_modified("https://baike.baidu.com/item/unknown/3") == 0, "an entry never stored is left alone"


def test_due_entries_enter_the_frontier_once_with_their_validators(redis_db) -> None:
    revisits = Revisits(redis_db, KEYS, POLICY)
    rec = record("one")
    revisits.store([(rec, json.dumps(rec), "", '"a"', "Tue, 02 Jan 2024 00:00:00 GMT")])
    assert revisits.promote_due() == 0, "not due yet"
    assert make_due(redis_db, KEYS, None, 0.0) == 1
    assert revisits.promote_due() == 1
    assert revisits.promote_due() == 0, "a second run finds nothing due twice"
    (entry,) = redis_db.hvals(KEYS.request_data)
    payload = json.loads(entry)
    assert payload["url"] == URL and payload["dont_filter"] is True and payload["priority"] == -1
    assert payload["meta"] == {
        "baike_revisit": True,
        "handle_httpstatus_list": [304],
        "baike_etag": '"a"',
        "baike_modified": "Tue, 02 Jan 2024 00:00:00 GMT",
    }
    assert redis_db.hmget(KEYS.budget, "enqueued", "revisits") == [b"1", b"1"]
    assert redis_db.zscore(KEYS.revisit, URL) > 0, "still scheduled should the revisit fail"


# -- a real revisit pass ------------------------------------------------------------------------


def advance(replica, fraction: float) -> set[str]:
    with urllib.request.urlopen(f"{replica.url}/__replica__/advance?fraction={fraction}", timeout=10) as answer:
        return set(json.load(answer)["changed"])


def stored(client) -> dict[str, dict]:
    return {key.decode(): json.loads(value) for key, value in client.hgetall(KEYS.items).items()}


FIELDS = ("title", "subtitle", "summary", "infobox", "lemma_id", "old_lemma_id", "sub_lemma_id")


@pytest.mark.e2e
def test_recrawl_after_an_epoch_reparses_what_changed_and_gets_304_for_the_rest(
    redis_db, redis_server, replica_factory, node_factory, tmp_path
) -> None:
    replica = replica_factory(500, 5, "--no-samples")
    start = replica.start_url()
    redis_db.lpush(KEYS.start_urls, start)
    settings = ("CLOSESPIDER_PAGECOUNT=0",)
    for node in [node_factory(redis_server.url, replica.url, *settings) for _ in range(2)]:
        assert node.wait(timeout=180) == 0, node.log[-3000:]
        assert node.finish_reason == "finished"
    before = stored(redis_db)
    assert set(before) == set(replica.answer_key(start))
    assert redis_db.zcard(KEYS.revisit) == len(before)

    changed = advance(replica, 0.1) & set(before)
    assert changed and len(changed) < len(before)
    replica.reset()
    result = scrapy(redis_server.url, "recrawl", "--all")
    assert result.returncode == 0 and f"{len(before)} stored entries are due now" in result.stdout, result.stderr
    nodes = [node_factory(redis_server.url, replica.url, *settings) for _ in range(2)]
    for node in nodes:
        assert node.wait(timeout=180) == 0, node.log[-3000:]
        assert node.finish_reason == "finished"

    stats = replica.stats()
    assert stats["full_bodies"] == dict.fromkeys(changed, 1), "only the changed entries were downloaded whole"
    assert stats["not_modified"] == dict.fromkeys(set(before) - changed, 1), "every other entry answered 304"
    after = stored(redis_db)
    answer = replica.answer_key(start)
    assert set(after) == set(answer)
    for url, rec in after.items():
        assert {name: rec[name] for name in FIELDS} == {name: answer[url][name] for name in FIELDS}, url
        history = redis_db.hget(KEYS.history, url)
        if url in changed:
            assert history is not None and [json.loads(line) for line in history.decode().split("\n")] == [before[url]]
            assert rec["changed_at"] >= before[url]["changed_at"]
        else:
            assert history is None and rec == before[url], "an unchanged entry's record is not written"
    intervals = {
        url: json.loads(raw)["interval"]
        for url, raw in ((key.decode(), value) for key, value in redis_db.hgetall(KEYS.freshness).items())
    }
    week = 7 * 86_400
    assert {intervals[url] for url in changed} == {week / 2}
    assert {intervals[url] for url in set(before) - changed} == {week * 1.5}
    assert redis_db.hgetall(KEYS.revisit_stats) == {
        b"new": str(len(before)).encode(),
        b"changed": str(len(changed)).encode(),
        b"not_modified": str(len(before) - len(changed)).encode(),
    }
    assert_accounting_whole(redis_db)
    assert int(redis_db.hget(KEYS.budget, "revisits")) == len(before)
    assert redis_db.llen(KEYS.dead) == 0

    # what changed since the first pass, and only that, is exported, with its change time
    since = max(datetime.fromisoformat(rec["changed_at"]) for rec in before.values()) + timedelta(seconds=1)
    feed = tmp_path / "changed.jsonl"
    result = scrapy(redis_server.url, "export", "-o", str(feed), "--changed-since", since.isoformat())
    assert result.returncode == 0, result.stderr
    exported = [json.loads(line) for line in feed.read_text(encoding="utf-8").splitlines()]
    assert {rec["url"] for rec in exported} == changed
    assert all(rec["changed_at"] == after[rec["url"]]["changed_at"] for rec in exported)

    # scrapy status and the report say what the revisits found
    result = scrapy(redis_server.url, "status", "--json")
    assert result.returncode == 0, result.stderr
    fresh = json.loads(result.stdout)["freshness"]
    assert fresh | {"next_due": None} == {
        "scheduled": len(before),
        "due_now": 0,
        "due_day": 0,
        "next_due": None,
        "revisits": len(before),
        "new": len(before),
        "changed": len(changed),
        "unchanged": 0,
        "not_modified": len(before) - len(changed),
    }
    assert fresh["next_due"] > json.loads(result.stdout)["time"] + 3 * 86_400
    text = scrapy(redis_server.url, "status").stdout
    assert f"{len(before)} revisits done: {len(changed)} changed, {len(before) - len(changed)} answered 304" in text
    report = tmp_path / "report.html"
    assert scrapy(redis_server.url, "export", "-o", str(report)).returncode == 0
    assert f"{len(changed)} changed, {len(before) - len(changed)} answered 304" in report.read_text(encoding="utf-8")


@pytest.mark.e2e
def test_a_node_killed_during_a_revisit_pass_loses_nothing_and_writes_no_history_twice(
    redis_db, redis_server, replica_factory, node_factory
) -> None:
    replica = replica_factory(300, 9, "--no-samples", "--latency-ms", "15")
    start = replica.start_url()
    redis_db.lpush(KEYS.start_urls, start)
    for node in [node_factory(redis_server.url, replica.url, "CLOSESPIDER_PAGECOUNT=0") for _ in range(2)]:
        assert node.wait(timeout=180) == 0, node.log[-3000:]
    before = stored(redis_db)
    changed = advance(replica, 0.5) & set(before)
    assert scrapy(redis_server.url, "recrawl", "--all").returncode == 0

    settings = ("CLOSESPIDER_PAGECOUNT=0", *FAST_LEASES)
    nodes = [node_factory(redis_server.url, replica.url, *settings) for _ in range(3)]

    def mid_pass(held: int, _seeds: int) -> bool:
        return held > 0 and int(redis_db.hget(KEYS.revisit_stats, "changed") or 0) >= 5

    held, _ = kill_while_holding(redis_db, nodes[0], mid_pass)
    assert held > 0, "the victim died holding revisits"
    for node in nodes[1:]:
        assert node.wait(timeout=180) == 0, node.log[-3000:]
        assert node.finish_reason == "finished"

    after = stored(redis_db)
    answer = replica.answer_key(start)
    assert set(after) == set(answer) == set(before)
    for url, rec in after.items():
        assert {name: rec[name] for name in FIELDS} == {name: answer[url][name] for name in FIELDS}, url
        history = redis_db.hget(KEYS.history, url)
        if url in changed:
            assert [json.loads(line) for line in history.decode().split("\n")] == [before[url]], url
        else:
            assert history is None, url
    assert int(redis_db.hget(KEYS.revisit_stats, "changed")) == len(changed), "each change is found once"
    assert redis_db.zcard(KEYS.revisit) == len(before), "every entry is still scheduled"
    assert redis_db.zcard(KEYS.leases) == 0 and redis_db.llen(KEYS.dead) == 0
    assert_accounting_whole(redis_db)


@pytest.mark.e2e
def test_a_crawl_out_of_new_urls_stays_up_while_revisits_are_due_within_the_grace(
    redis_db, redis_server, replica_factory, node_factory
) -> None:
    replica = replica_factory(60, 4, "--no-samples")
    start = replica.start_url()
    answer = replica.answer_key(start)
    redis_db.lpush(KEYS.start_urls, start)
    # every entry is due 6 s after it was stored: long after the 3 s with nothing queued that
    # end a crawl as finished when nothing is due within BAIKE_REVISIT_GRACE
    node = node_factory(
        redis_server.url,
        replica.url,
        "CLOSESPIDER_PAGECOUNT=0",
        "BAIKE_REVISIT_AFTER=6",
        "BAIKE_REVISIT_MIN=6",
        "BAIKE_REVISIT_MAX=6",
        "BAIKE_REVISIT_GRACE=60",
    )
    deadline = time.monotonic() + 90
    while int(redis_db.hget(KEYS.revisit_stats, "not_modified") or 0) < len(answer):
        assert node.process.poll() is None, f"the node ended instead of waiting for the revisits: {node.log[-2000:]}"
        assert time.monotonic() < deadline, "the entries were not revisited"
        time.sleep(0.1)
    assert node.process.poll() is None, "still up: revisits stay due within the grace"
    node.kill(signal.SIGTERM)
    assert node.wait(timeout=60) == 0
    assert node.finish_reason == "shutdown"
    not_modified = replica.stats()["not_modified"]
    assert set(not_modified) == set(answer), "every stored entry revisited without a restart, answered 304"
