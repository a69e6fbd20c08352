"""Dedup memory: Redis bytes per URL, stock scrapy-redis vs baike's buckets vs the Bloom filter.

    .venv/bin/python bench/dedup.py --sizes 1000000 10000000

Redis is filled directly (pipelines, Lua), not through Scrapy. Fingerprints are
SHA1 digests of distinct strings: statistically the same as Scrapy's fingerprints
(SHA1 too), a hundred times faster to make. The memory per URL is the growth of
Redis's ``used_memory`` over an empty database divided by the URL count (it
includes the keyspace's own dict), net of the clients' buffers and measured after
a warm-up batch on throwaway keys, so that Redis's one-time allocations (script
cache, Lua and client buffers: a few hundred KB) are not charged to the filter.
``MEMORY USAGE`` per key, summed (buckets: a sample of 2000, extrapolated), is
shown beside it as a cross-check.

The redis-server runs with ``hash-max-listpack-entries 128``, upstream Redis's
default (some distributions ship 512), so the numbers hold on a stock server.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baike.frontier.bloom import BloomDupeFilter, BloomLayout
from baike.frontier.dupefilter import BucketDupeFilter, BucketLayout
from bench.harness import Lab, logger, setup_logging, table, write_results

KEY = "baike:dupefilter"
BLOOM_KEY = "baike:bloom"
BATCH = 10_000
LISTPACK_ENTRIES = 128
BLOOM_ERROR_RATE = 0.001
# fresh fingerprints tested against a full Bloom filter to measure its false positives
BLOOM_PROBES = 200_000
MEMORY_SAMPLE = 2000


def fingerprints(count: int, salt: bytes = b"url") -> Iterator[list[bytes]]:
    """``count`` distinct SHA1 fingerprints, in batches."""
    for start in range(0, count, BATCH):
        yield [hashlib.sha1(b"%s:%d" % (salt, n)).digest() for n in range(start, min(start + BATCH, count))]


def used_memory(client: Any) -> int:
    """``used_memory`` without the clients' buffers (they grow with a pipeline or a
    script's arguments and shrink again when the client idles)."""
    memory = client.info("memory")
    return int(memory["used_memory"]) - int(memory["mem_clients_normal"])


def settled_memory(client: Any) -> int:
    # Redis trims an idle client's query buffer after about 2 s
    time.sleep(2.5)
    return used_memory(client)


def baseline(client: Any, warm_up: Callable[[list[bytes]], Any]) -> int:
    """Memory of the empty database, after one batch of the same commands on throwaway
    keys, so that one-time allocations (script cache, client and Lua buffers) are in it."""
    client.flushall()
    warm_up(next(fingerprints(BATCH, salt=b"warm-up")))
    client.flushall()
    return settled_memory(client)


def fill_and_measure(client: Any, fill: Callable[[list[bytes]], int], count: int) -> tuple[int, float, int]:
    """Fill the filter with ``count`` fingerprints through ``fill`` (warmed up with it first):
    (URLs ``fill`` counted as new, seconds the fill took, bytes of ``used_memory`` it added)."""
    before = baseline(client, fill)
    started = time.monotonic()
    added = sum(fill(batch) for batch in fingerprints(count))
    fill_s = time.monotonic() - started
    return added, fill_s, settled_memory(client) - before


def measure_stock(lab: Lab, count: int) -> dict[str, Any]:
    """scrapy-redis's RFPDupeFilter: 40-character hex strings in one set."""
    client = lab.redis.client()

    def fill(batch: list[bytes]) -> int:
        with client.pipeline(transaction=False) as pipe:
            for start in range(0, len(batch), 1000):
                pipe.sadd(KEY, *(fingerprint.hex() for fingerprint in batch[start : start + 1000]))
            return sum(pipe.execute())

    added, fill_s, used = fill_and_measure(client, fill, count)
    return {
        "filter": "scrapy-redis set of SHA1 hex",
        "urls": count,
        "bytes_per_url": used / count,
        "memory_usage_per_url": client.memory_usage(KEY, samples=0) / count,
        "encoding": client.object("encoding", KEY).decode(),
        "false_positives": count - added,
        "fill_s": round(fill_s, 1),
    }


def measure_buckets(lab: Lab, count: int) -> dict[str, Any]:
    """baike's BucketDupeFilter, sized for ``count`` URLs (DUPEFILTER_EXPECTED_URLS = count)."""
    client = lab.redis.client()
    layout = BucketLayout.for_size(count)
    df = BucketDupeFilter(client, KEY, fingerprinter=None, layout=layout)

    def fill(batch: list[bytes]) -> int:
        with client.pipeline(transaction=False) as pipe:
            for fingerprint in batch:
                pipe.hsetnx(*df.slot_of(fingerprint), b"")
            return sum(pipe.execute())

    added, fill_s, used = fill_and_measure(client, fill, count)
    sizes, encodings = bucket_shapes(client, layout)
    sample = random.Random(6).sample(range(layout.buckets), min(MEMORY_SAMPLE, layout.buckets))
    with client.pipeline(transaction=False) as pipe:
        for index in sample:
            pipe.memory_usage(f"{KEY}:{index:x}", samples=0)
        sampled = sum(value or 0 for value in pipe.execute())
    return {
        "filter": f"baike buckets ({layout.buckets} x {layout.field_bytes}-byte fields)",
        "urls": count,
        "bytes_per_url": used / count,
        "memory_usage_per_url": sampled * layout.buckets / len(sample) / count,
        "encoding": ", ".join(f"{name} {n}" for name, n in sorted(encodings.items())),
        "false_positives": count - added,
        "fill_s": round(fill_s, 1),
        "buckets": layout.buckets,
        "bucket_entries": {"mean": count / layout.buckets, "max": max(sizes)},
    }


def bucket_shapes(client: Any, layout: BucketLayout) -> tuple[list[int], dict[str, int]]:
    """Entries of every bucket, and how many buckets Redis keeps in each encoding."""
    sizes: list[int] = []
    encodings: dict[str, int] = {}
    for start in range(0, layout.buckets, BATCH):
        with client.pipeline(transaction=False) as pipe:
            for index in range(start, min(start + BATCH, layout.buckets)):
                pipe.hlen(f"{KEY}:{index:x}")
                pipe.object("encoding", f"{KEY}:{index:x}")
            replies = pipe.execute()
        sizes += replies[::2]
        for encoding in replies[1::2]:
            name = encoding.decode() if encoding else "missing"
            encodings[name] = encodings.get(name, 0) + 1
    return sizes, encodings


def measure_bloom(lab: Lab, count: int, error_rate: float = BLOOM_ERROR_RATE) -> dict[str, Any]:
    """baike's BloomDupeFilter with BLOOM_CAPACITY = count, filled to capacity."""
    client = lab.redis.client()
    layout = BloomLayout.for_capacity(count, error_rate)
    df = BloomDupeFilter(client, BLOOM_KEY, fingerprinter=None, layout=layout)

    def fill(batch: list[bytes]) -> int:
        return sum(sum(df.add_fingerprints(batch[start : start + 2000])) for start in range(0, len(batch), 2000))

    before = baseline(client, BloomDupeFilter(client, "warm-up:bloom", None, layout).add_fingerprints)
    started = time.monotonic()
    df.create()
    seen_while_filling = sum(fill(batch) for batch in fingerprints(count))
    fill_s = time.monotonic() - started
    used = settled_memory(client) - before
    probes = 0
    false_positives = 0
    for batch in fingerprints(min(BLOOM_PROBES, count), salt=b"fresh"):
        flags = df.contains_fingerprints(batch)
        probes += len(flags)
        false_positives += sum(flags)
    return {
        "filter": f"baike Bloom ({layout.shards} x {layout.shard_bits} bits, {layout.hashes} hashes, p={error_rate})",
        "urls": count,
        "bytes_per_url": used / count,
        "memory_usage_per_url": sum(
            client.memory_usage(df.shard_key(index), samples=0) for index in range(layout.shards)
        )
        / count,
        "encoding": f"{client.object('encoding', df.shard_key(0)).decode()} strings",
        "false_positives": seen_while_filling,
        "fill_s": round(fill_s, 1),
        "false_positive_rate_full": false_positives / probes,
        "false_positive_rate_expected": layout.error_rate(count),
        "probes": probes,
    }


def run(lab: Lab, sizes: list[int]) -> dict[str, Any]:
    lab.start_redis("--hash-max-listpack-entries", str(LISTPACK_ENTRIES))
    server = dict(lab.redis.client().config_get("hash-max-*"))
    results = []
    for count in sizes:
        for measure in (measure_stock, measure_buckets, measure_bloom):
            result = measure(lab, count)
            logger.info(
                "%-55s %10d URLs  %6.2f bytes/URL  (%.0f s)",
                result["filter"],
                count,
                result["bytes_per_url"],
                result["fill_s"],
            )
            results.append(result)
    return {"server": server, "results": results}


def memory_table(memory: dict[str, Any]) -> str:
    rows = []
    for result in memory["results"]:
        if "false_positive_rate_full" in result:
            errors = (
                f"{result['false_positive_rate_full']:.2%} when full (expected"
                f" {result['false_positive_rate_expected']:.2%}); {result['false_positives']} of the URLs"
                " were taken as seen while filling"
            )
        else:
            errors = f"{result['false_positives']} URLs taken as seen"
        rows.append(
            [
                f"{result['urls']:,}",
                result["filter"],
                f"{result['bytes_per_url']:.2f}",
                f"{result['memory_usage_per_url']:.2f}",
                result["encoding"],
                errors,
            ]
        )
    return table(
        ["URLs", "filter", "bytes/URL (used_memory)", "bytes/URL (MEMORY USAGE)", "encoding", "false positives"], rows
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    setup_logging()
    with Lab("dedup", keep=args.keep) as lab:
        memory = run(lab, args.sizes)
    print(memory_table(memory))
    print(f"results: {write_results('dedup', {'args': vars(args), 'dedup': memory})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
