"""A crawl on a Redis Cluster of 3 masters: every key carries the hash tag {baike}, so every
script runs on the crawl's one slot; the key end-to-end tests of a single Redis pass here too."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from baike.keys import CrawlKeys
from bench.redisserver import ClusterServers
from tests.conftest import ROOT, node_env
from tests.test_crash_safety import FAST_LEASES, assert_crawled_exactly, kill_while_holding, pages

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
