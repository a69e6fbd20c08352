"""A crawl on a Redis Cluster of 3 masters: every key carries the hash tag {baike}, so every
script runs on the crawl's one slot; the key end-to-end tests of a single Redis pass here too."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time

import pytest
from scrapy.utils.test import get_crawler

from baike.keys import CrawlKeys, shard_keys
from baike.spiders.baike import BaikeSpider
from tests.conftest import ROOT, node_env
from tests.frontier_helpers import PROJECT_SETTINGS
from tests.support import ClusterServers
from tests.test_crash_safety import FAST_LEASES, assert_crawled_exactly, held_leases, kill_while_holding, pages
from tests.test_redis_auth import set_documented_user
from tests.test_shards import (
    SHARDED,
    Settings,
    assert_sharded_crawl_exact,
    crawl_to_the_budget,
    sharded_pages,
    units_everywhere_at,
)

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


def test_every_key_of_a_crawl_is_in_one_slot_and_the_crawl_is_exact(
    cluster, cluster_db, replica_factory, node_factory
) -> None:
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
    crawl_to_the_budget(cluster_db, cluster.url, [cluster_keys(cluster)], 60, replica_factory, node_factory)


def test_a_node_killed_holding_leases_loses_nothing_on_a_cluster(
    cluster, cluster_db, replica_factory, node_factory
) -> None:
    keys = cluster_keys(cluster)
    replica = replica_factory(300, 5, "--latency-ms", "15")
    answer = replica.answer_key(replica.start_url())
    cluster_db.lpush(keys.start_urls, replica.start_url())
    nodes = [node_factory(cluster.url, replica.url, "CLOSESPIDER_PAGECOUNT=0", *FAST_LEASES) for _ in range(3)]
    held, _ = kill_while_holding(
        cluster_db, nodes[0], lambda held, _: held and pages(cluster_db, keys) >= 40, keys=keys
    )
    assert held > 0, "the victim died holding leases"
    for node in nodes[1:]:
        assert node.wait(timeout=180) == 0, node.log[-3000:]
        assert node.finish_reason == "finished"
    assert_crawled_exactly(cluster_db, answer, keys)


def test_the_spider_reads_seeds_from_the_tagged_key(cluster, cluster_db) -> None:
    """scrapy-redis's seed reader (a node without the leased scheduler) reads {baike}:start_urls."""
    settings = {**PROJECT_SETTINGS, "REDIS_URL": cluster.url, "SCHEDULER": "scrapy_redis.scheduler.Scheduler"}
    spider = BaikeSpider.from_crawler(get_crawler(BaikeSpider, settings))
    cluster_db.lpush(cluster_keys(cluster).start_urls, "https://baike.baidu.com/item/a/1")
    assert spider.redis_key == "{baike}:start_urls"
    assert [request.url for request in spider.next_requests()] == ["https://baike.baidu.com/item/a/1"]


def test_nodes_and_commands_run_as_the_documented_acl_users_on_a_cluster(
    cluster, cluster_db, replica_factory, node_factory
) -> None:
    """docs/redis.md's users, made on every master: 2 nodes crawl as baike-node to the budget over
    3 frontier shards, ``scrapy status`` and ``reset`` run as baike-ops, and no master refuses anything."""
    keys = cluster_keys(cluster)
    passwords = {user: secrets.token_hex(12) for user in ("baike-node", "baike-ops")}
    masters = [server.client() for server in cluster.servers]
    for master in masters:
        for user, password in passwords.items():
            set_documented_user(master, user, password, cluster=True)
        master.acl_log_reset()
    try:
        replica = replica_factory(2000, 5)
        cluster_db.lpush(keys.start_urls, replica.start_url())
        node_url, ops_url = (cluster.url.replace("://", f"://{user}:{passwords[user]}@", 1) for user in passwords)
        nodes = [node_factory(node_url, replica.url, "CLOSESPIDER_PAGECOUNT=40", *SHARDED) for _ in range(2)]
        for node in nodes:
            assert node.wait(timeout=180) == 0, node.log[-3000:]
            assert node.finish_reason == "closespider_pagecount"
            assert "Traceback" not in node.log
        assert sharded_pages(cluster_db, cluster_shards(cluster)) == 40
        status = scrapy(ops_url, "status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout.splitlines()[-1])["budget"]["pages"] == 40
        reset = scrapy(ops_url, "reset", "--yes")
        assert reset.returncode == 0, reset.stderr
        assert [entry for master in masters for entry in master.acl_log()] == []
        assert not any(password in node.log for node in nodes for password in passwords.values())
    finally:
        for master in masters:
            master.acl_deluser(*passwords)
            master.close()


def scrapy(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scrapy", *args, "-s", f"REDIS_URL={redis_url}"],
        cwd=ROOT,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=60,
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
    crawl_to_the_budget(cluster_db, cluster.url, shards, 50, replica_factory, node_factory, *SHARDED)
    assert units_everywhere_at(cluster_db, shards, 50) == 50


def test_a_node_killed_holding_leases_on_shards_loses_nothing(
    cluster, cluster_db, replica_factory, node_factory
) -> None:
    shards = cluster_shards(cluster)
    replica = replica_factory(150, 5, "--latency-ms", "15")
    answer = replica.answer_key(replica.start_url())
    cluster_db.lpush(shards[0].start_urls, replica.start_url())
    nodes = [
        node_factory(cluster.url, replica.url, "CLOSESPIDER_PAGECOUNT=0", *SHARDED, *FAST_LEASES) for _ in range(3)
    ]

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
