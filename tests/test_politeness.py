"""One shared crawl rate for the whole fleet, measured by the replica from its own clock."""

from __future__ import annotations

import json
import math
import time
import urllib.request

import pytest

from baike.keys import CrawlKeys

pytestmark = pytest.mark.e2e
KEYS = CrawlKeys.for_spider("baike")
RATE = 20.0
# The window the rate is measured over, in whole seconds of the replica's clock: 10 s,
# after the first second.
WINDOW = (1, 11)


def measured_rate(replica) -> float:
    """Entry requests per second the replica received from every client, counted on its own
    clock in whole seconds, over WINDOW after the first second with a request."""
    per_second: dict[int, int] = {}
    for seconds in replica.stats()["per_second"].values():
        for second, count in seconds.items():
            per_second[int(second)] = per_second.get(int(second), 0) + count
    first, last = min(per_second), max(per_second)
    assert last - first >= WINDOW[1], "the crawl lasted the whole window"
    window = range(first + int(WINDOW[0]), first + int(WINDOW[1]))
    return sum(per_second.get(second, 0) for second in window) / len(window)


@pytest.mark.parametrize("nodes", [1, 3])
def test_the_cluster_rate_holds_for_one_node_and_for_three(
    redis_db, redis_server, replica_factory, node_factory, nodes: int
) -> None:
    """20/s for the whole cluster, whatever the number of nodes; the replica, enforcing
    25/s per client address (every node here is 127.0.0.1), never pushes back."""
    replica = replica_factory(2000, 3, "--latency-ms", "100", "--max-rate", "25")
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    settings = ("CLOSESPIDER_PAGECOUNT=260", f"BAIKE_CLUSTER_RATE={RATE:g}", "BAIKE_CLUSTER_BURST=5")
    started = [node_factory(redis_server.url, replica.url, *settings) for _ in range(nodes)]
    for node in started:
        assert node.wait(timeout=120) == 0, node.log[-3000:]
    rate = measured_rate(replica)
    print(f"{nodes} node(s) at BAIKE_CLUSTER_RATE={RATE:g}: the replica measured {rate:.2f} requests/s")
    assert rate == pytest.approx(RATE, rel=0.10)
    stats = replica.stats()
    assert stats["captchas"] == 0 and stats["too_many_requests"] == 0, "no pushback at 20/s under 25/s"
    assert int(redis_db.hget(KEYS.budget, "pages")) == 260


def replica_get(replica, path: str) -> dict:
    with urllib.request.urlopen(f"{replica.url}{path}", timeout=30) as answer:
        return json.load(answer)


def requests_between(replica, start: float, end: float) -> int:
    """Entry requests (pushed back or not) in the whole seconds inside ``[start, end)``."""
    seconds = range(math.ceil(start), math.floor(end))
    return sum(counts.get(str(second), 0) for counts in replica.stats()["per_second"].values() for second in seconds)


def test_a_captcha_storm_pauses_the_cluster_which_then_finishes_the_crawl(
    redis_db, redis_server, replica_factory, node_factory
) -> None:
    replica = replica_factory(200, 8, "--latency-ms", "50")
    answer = replica.answer_key(replica.start_url())
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    settings = (
        "CLOSESPIDER_PAGECOUNT=0",
        "BAIKE_CLUSTER_RATE=30",
        "BAIKE_CLUSTER_BURST=5",
        "BAIKE_COOLDOWN=5",
        "BAIKE_BACKOFF_WINDOW=5",
    )
    nodes = [node_factory(redis_server.url, replica.url, *settings) for _ in range(2)]
    deadline = time.monotonic() + 60
    while int(redis_db.hget(KEYS.budget, "pages") or 0) < 60:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    storm = replica_get(replica, "/__replica__/storm?seconds=10")
    for node in nodes:
        assert node.wait(timeout=120) == 0, node.log[-3000:]
        assert node.finish_reason == "finished"
    during = requests_between(replica, storm["start"] + 1, storm["end"])
    print(
        f"entry requests in the storm after its first second: {during}; captchas served: {replica.stats()['captchas']}"
    )
    assert during <= 12, "the cluster stopped within a second of the first captchas"
    assert set(redis_db.hkeys(KEYS.items)) == {url.encode() for url in answer}, "every entry stored after the storm"
    assert redis_db.llen(KEYS.dead) == 0, "no entry dead-lettered for the storm's captchas"
    # a node learns of the cool-down from its flush (it pauses, and logs it) or from its take
    # (which leases nothing until the cool-down is over)
    assert any("pauses for" in node.log for node in nodes) and any("goes on" in node.log for node in nodes)


def test_retry_after_stops_every_node_for_as_long(redis_db, redis_server, replica_factory, node_factory) -> None:
    """The replica answers over 20/s with 429 and Retry-After: 5; no node sends for 5 s."""
    replica = replica_factory(2000, 4, "--latency-ms", "50", "--max-rate", "20", "--penalty", "5", "--pushback", "429")
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    settings = ("CLOSESPIDER_PAGECOUNT=150", "BAIKE_CLUSTER_RATE=40", "BAIKE_CLUSTER_BURST=5")
    nodes = [node_factory(redis_server.url, replica.url, *settings) for _ in range(2)]
    deadline = time.monotonic() + 60
    while replica.stats()["too_many_requests"] == 0:
        assert time.monotonic() < deadline, "the replica never pushed back"
        time.sleep(0.02)
    first = replica_get(replica, "/__replica__/times?since=0")["now"]
    time.sleep(5.5)
    quiet = requests_between(replica, first + 1, first + 5)
    for node in nodes:
        node.kill()
    print(f"entry requests from 1 s to 5 s after the first 429: {quiet}")
    assert quiet == 0, "no node sent to the host during its Retry-After"


def test_robots_crawl_delay_caps_the_cluster_rate(redis_db, redis_server, replica_factory, node_factory) -> None:
    replica = replica_factory(500, 2, "--crawl-delay", "0.25")
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    settings = ("CLOSESPIDER_PAGECOUNT=52", "BAIKE_CLUSTER_RATE=50", "BAIKE_CLUSTER_BURST=2", "ROBOTSTXT_OBEY=True")
    nodes = [node_factory(redis_server.url, replica.url, *settings) for _ in range(2)]
    for node in nodes:
        assert node.wait(timeout=120) == 0, node.log[-3000:]
    capped = "robots.txt Crawl-delay: 0.25: the cluster's rate is capped at 4 requests/s"
    assert any(capped in node.log for node in nodes)
    rate = measured_rate(replica)
    print(f"Crawl-delay 0.25 s, BAIKE_CLUSTER_RATE=50, 2 nodes: the replica measured {rate:.2f} requests/s")
    assert rate == pytest.approx(4.0, rel=0.15)
