"""A crawl on a Redis Cluster of 3 masters: every key carries the hash tag {baike}, so every
script runs on the crawl's one slot; the key end-to-end tests of a single Redis pass here too."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from baike.keys import CrawlKeys, shard_keys
from bench.redisserver import ClusterServers
from tests.conftest import ROOT, node_env
from tests.test_crash_safety import FAST_LEASES, assert_crawled_exactly, held_leases, kill_while_holding, pages
from tests.test_shards import SHARDED, Settings, assert_sharded_crawl_exact, sharded_pages, units_everywhere_at

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    servers = ClusterServers(tmp_path_factory.mktemp("cluster"))
    try:
        servers.start()
    except (FileNotFoundError, RuntimeError) as exc:
        servers.stop()
        pytest.skip(f"cannot start a Redis Cluster here: {exc}")
    yield servers
    servers.stop()


@pytest.fixture()
def cluster_db(cluster: ClusterServers):
    cluster.flush()
    client = cluster.client()
    yield client
    client.close()


def cluster_keys(cluster: ClusterServers) -> CrawlKeys:
    return CrawlKeys.for_spider("baike", {"REDIS_URL": cluster.url})


def test_every_key_of_a_crawl_is_in_one_slot_and_the_crawl_is_exact(cluster, cluster_db, replica_factory, node_factory) -> None:
    keys = cluster_keys(cluster)
    assert keys.start_urls == "{baike}:start_urls" and keys.rate("h").startswith("{baike}:")
    replica = replica_factory(300, 7)
    answer = replica.answer_key(replica.start_url())
    cluster_db.lpush(keys.start_urls, replica.start_url())
    nodes = [node_factory(cluster.url, replica.url, "CLOSESPIDER_PAGECOUNT=0") for _ in range(2)]
    for node in nodes:
        assert node.wait(timeout=180) == 0, node.log[-3000:]
        assert node.finish_reason == "finished"
        assert "Traceback" not in node.log
    assert_crawled_exactly(cluster_db, answer, keys)
    written = list(cluster_db.scan_iter(match="*", count=1000))
    assert len(written) > 10 and all(key.startswith(b"{baike}:") for key in written)
    assert len({cluster_db.keyslot(key) for key in written}) == 1

    status = scrapy(cluster.url, "status", "--json")
    assert status.returncode == 0, status.stderr
    snapshot = json.loads(status.stdout.splitlines()[-1])
    assert (snapshot["state"], snapshot["items"]) == ("finished", len(answer))
    reset = scrapy(cluster.url, "reset", "--yes")
    assert reset.returncode == 0, reset.stderr
    assert set(cluster_db.scan_iter(match="*", count=1000)) <= {keys.start_urls.encode()}, "a fresh crawl"


def test_the_budget_is_exact_on_a_cluster(cluster, cluster_db, replica_factory, node_factory) -> None:
    keys = cluster_keys(cluster)
    replica = replica_factory(2000, 5)
    cluster_db.lpush(keys.start_urls, replica.start_url())
    nodes = [node_factory(cluster.url, replica.url, "CLOSESPIDER_PAGECOUNT=60") for _ in range(2)]
    for node in nodes:
        assert node.wait(timeout=180) == 0, node.log[-3000:]
        assert node.finish_reason == "closespider_pagecount"
    assert pages(cluster_db, keys) == 60
    stats = replica.stats()
    assert stats["pages"] + stats["by_kind"].get("list", 0) == 60, "not one page more than the budget is downloaded"


def test_a_node_killed_holding_leases_loses_nothing_on_a_cluster(cluster, cluster_db, replica_factory, node_factory) -> None:
    keys = cluster_keys(cluster)
    replica = replica_factory(300, 5, "--latency-ms", "15")
    answer = replica.answer_key(replica.start_url())
    cluster_db.lpush(keys.start_urls, replica.start_url())
    nodes = [node_factory(cluster.url, replica.url, "CLOSESPIDER_PAGECOUNT=0", *FAST_LEASES) for _ in range(3)]
    held, _ = kill_while_holding(cluster_db, nodes[0], lambda held, _: held and pages(cluster_db, keys) >= 40, keys=keys)
    assert held > 0, "the victim died holding leases"
    for node in nodes[1:]:
        assert node.wait(timeout=180) == 0, node.log[-3000:]
        assert node.finish_reason == "finished"
    assert_crawled_exactly(cluster_db, answer, keys)


def scrapy(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scrapy", *args, "-s", f"REDIS_URL={redis_url}"],
        cwd=ROOT, env=node_env(), capture_output=True, text=True, timeout=60,
    )


# -- frontier shards (BAIKE_SHARDS=3) over the three masters ----------------------------------------


def cluster_shards(cluster: ClusterServers) -> list[CrawlKeys]:
    return shard_keys("baike", Settings(REDIS_URL=cluster.url, BAIKE_SHARDS=3))


def test_three_shards_spread_over_the_three_masters_and_the_crawl_is_exact(
    cluster, cluster_db, replica_factory, node_factory
) -> None:
    shards = cluster_shards(cluster)
    slots = [cluster_db.keyslot(keys.requests) for keys in shards]
    owners = {cluster_db.get_node_from_key(keys.requests).port for keys in shards}
    assert len(set(slots)) == 3 and len(owners) == 3, "each shard's slot is on a master of its own"
    replica = replica_factory(150, 13)
    answer = replica.answer_key(replica.start_url())
    cluster_db.lpush(shards[0].start_urls, replica.start_url())
    nodes = [node_factory(cluster.url, replica.url, "CLOSESPIDER_PAGECOUNT=0", *SHARDED) for _ in range(2)]
    for node in nodes:
        assert node.wait(timeout=120) == 0, node.log[-3000:]
        assert node.finish_reason == "finished" and "Traceback" not in node.log
    assert_sharded_crawl_exact(cluster_db, answer, shards)
    for server in cluster.servers:
        master = server.client()
        written = list(master.scan_iter(match="*", count=1000))
        assert master.dbsize() > 5, "every master holds a shard's frontier and buckets"
        tags = {key.split(b"}")[0] + b"}" for key in written}
        assert len(tags) == 1 and tags <= {b"{baike}", b"{baike:1}", b"{baike:2}"}
        master.close()
    status = scrapy(cluster.url, "status", "--json")
    assert status.returncode == 0, status.stderr
    snapshot = json.loads(status.stdout.splitlines()[-1])
    assert (snapshot["state"], snapshot["items"], snapshot["shards"]) == ("finished", len(answer), 3)
    assert snapshot["fingerprints"] == sum(
        sum(cluster_db.hlen(key) for key in cluster_db.scan_iter(match=f"{keys.dupefilter}:*", count=1000))
        for keys in shards
    )
    reset = scrapy(cluster.url, "reset", "--yes")
    assert reset.returncode == 0, reset.stderr
    assert set(cluster_db.scan_iter(match="*", count=1000)) <= {shards[0].start_urls.encode()}, "a fresh crawl"


def test_the_budget_is_exact_over_three_shards_on_a_cluster(cluster, cluster_db, replica_factory, node_factory) -> None:
    shards = cluster_shards(cluster)
    replica = replica_factory(2000, 5)
    cluster_db.lpush(shards[0].start_urls, replica.start_url())
    nodes = [node_factory(cluster.url, replica.url, "CLOSESPIDER_PAGECOUNT=50", *SHARDED) for _ in range(2)]
    for node in nodes:
        assert node.wait(timeout=120) == 0, node.log[-3000:]
        assert node.finish_reason == "closespider_pagecount"
    assert sharded_pages(cluster_db, shards) == 50
    stats = replica.stats()
    assert stats["pages"] + stats["by_kind"].get("list", 0) == 50, "not one page more than the budget is downloaded"
    assert units_everywhere_at(cluster_db, shards, 50) == 50


def test_a_node_killed_holding_leases_on_shards_loses_nothing(cluster, cluster_db, replica_factory, node_factory) -> None:
    shards = cluster_shards(cluster)
    replica = replica_factory(150, 5, "--latency-ms", "15")
    answer = replica.answer_key(replica.start_url())
    cluster_db.lpush(shards[0].start_urls, replica.start_url())
    nodes = [node_factory(cluster.url, replica.url, "CLOSESPIDER_PAGECOUNT=0", *SHARDED, *FAST_LEASES) for _ in range(3)]

    def held() -> list[int]:
        return [held_leases(cluster_db, nodes[0], keys)[0] for keys in shards]

    deadline = time.monotonic() + 60
    while not (sum(1 for count in held() if count) >= 2 and sharded_pages(cluster_db, shards) >= 20):
        assert time.monotonic() < deadline, "the victim never held leases on two shards"
        time.sleep(0.002)
    nodes[0].kill()
    nodes[0].process.wait(timeout=10)
    assert sum(1 for count in held() if count) >= 2, "the victim died holding leases on two shards"
    for node in nodes[1:]:
        assert node.wait(timeout=120) == 0, node.log[-3000:]
        assert node.finish_reason == "finished"
    assert_sharded_crawl_exact(cluster_db, answer, shards)
