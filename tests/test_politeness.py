"""One shared crawl rate for the whole fleet, measured by the replica from its own clock."""

from __future__ import annotations

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
