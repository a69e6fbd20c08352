"""Node-local known fingerprints: the scheduler's set of (bucket, field) tuples vs KnownFingerprints.

    .venv/bin/python bench/known.py --sizes 100000 1000000

No services, one process. Fingerprints are random 20-byte strings cut by the dupefilter's
own ``slot_of`` with the default layout (DUPEFILTER_EXPECTED_URLS 10M: 125,000 buckets,
5-byte fields), so every (bucket key, field) pair is a fresh ``str`` and a fresh ``bytes``, as
the scheduler gets them per request.

- **Memory**: what the structure holding N entries allocated, from tracemalloc (sizes asked of
  the allocator, without its rounding) and from ``sys.getsizeof`` of every object it keeps.
  The old structure is built as ``LeasedScheduler._remember`` builds it (a set of new tuples),
  the new one as ``KnownFingerprints(N)`` with the N keys added.
- **Time** (ns of this process's CPU time per operation, median of the rounds, net of the
  same loop doing nothing; the two structures take turns every twentieth of the work, the
  first swapped every round, so both see the same machine; the garbage collector stays on,
  as in a node): *key* is ``KnownFingerprints.key(bucket, field)``; *lookup* is what the scheduler
  does for every link, on fresh pairs of which half were added and half never were, shuffled
  (old: ``(bucket, field) in known``; new: ``key(bucket, field) in cache``); *add* is what a
  flush does for the links the lookup missed, N of them from empty in flushes of 128 (old:
  ``known.update((bucket, field) for ...)`` as ``_remember`` does, the pairs' hashes already
  computed by the lookup; new: ``cache.add_many(key for ...)`` with the lookups' keys).
- **Hit rate**: the share of N distinct keys found after adding them all to a cache of N/2, N
  and 2N slots, N being the capacity ``KnownFingerprints(entries)`` gets (a power of two), and
  the keys never added that were found anyway (false "known": must be 0).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baike.frontier.dupefilter import BucketDupeFilter, BucketLayout
from baike.frontier.known import KnownFingerprints
from bench.harness import logger, setup_logging, table, write_results

DUPEFILTER_KEY = "baike:dupefilter"
OLD = "set of (bucket str, 5-byte field) tuples"
NEW = "KnownFingerprints (direct-mapped array('Q'))"
# new requests per flush: about 190 at 75 pages/s, 25 new links a page, one flush per 0.1 s
FLUSH = 128
# the two structures take turns every 1/CHUNKS of the work, so both see the same machine
CHUNKS = 20

Pair = tuple[str, bytes]
Entry = tuple[str, bytes, int]
slot_of = BucketDupeFilter(None, DUPEFILTER_KEY, None, BucketLayout.for_size()).slot_of
key_of = KnownFingerprints.key


def fingerprints(count: int, rnd: random.Random) -> list[bytes]:
    return [rnd.randbytes(20) for _ in range(count)]


def fresh_pairs(fps: list[bytes]) -> list[Pair]:
    """New bucket strings and fields, their hashes not yet computed (as the scheduler gets them)."""
    return [slot_of(fp) for fp in fps]


# -- memory ----------------------------------------------------------------------------------


def traced(build: Callable[[], Any]) -> tuple[Any, int]:
    """What ``build`` returns, and the bytes it left allocated (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        built = build()
        return built, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def old_memory(fps: list[bytes]) -> dict[str, float]:
    def build() -> set[Pair]:
        known: set[Pair] = set()
        known.update((bucket, field) for bucket, field in map(slot_of, fps))
        return known

    known, used = traced(build)
    sized = sys.getsizeof(known) + sum(
        sys.getsizeof(pair) + sys.getsizeof(pair[0]) + sys.getsizeof(pair[1]) for pair in known
    )
    return {"traced": used, "getsizeof": sized, "held": len(known)}


def new_memory(fps: list[bytes]) -> dict[str, float]:
    def build() -> KnownFingerprints:
        cache = KnownFingerprints(len(fps))
        cache.add_many(key_of(*slot_of(fp)) for fp in fps)
        return cache

    cache, used = traced(build)
    sized = sys.getsizeof(cache) + sum(sys.getsizeof(part) for part in gc.get_referents(cache))
    return {"traced": used, "getsizeof": sized, "held": len(cache), "slots": cache.capacity, "nbytes": cache.nbytes}


# -- time --------------------------------------------------------------------------------------


def flushes(stored: list[bytes]) -> list[list[Entry]]:
    """The stored entries as the flushes that would add them: (bucket, field, key) each, their
    str and bytes hashes already computed by the lookup that missed them."""
    entries = [(bucket, field, key_of(bucket, field)) for bucket, field in fresh_pairs(stored)]
    looked_up: set[Pair] = set()
    for bucket, field, _ in entries:
        _ = (bucket, field) in looked_up
    return [entries[start : start + FLUSH] for start in range(0, len(entries), FLUSH)]


class OldSet:
    """The scheduler's former ``_known``: a set of (bucket, field) tuples."""

    name = OLD

    def __init__(self) -> None:
        self.known: set[Pair] = set()

    def add(self, batches: list[list[Entry]]) -> None:
        for batch in batches:
            self.known.update((bucket, field) for bucket, field, _ in batch)

    def lookup(self, pairs: list[Pair]) -> None:
        known = self.known
        for bucket, field in pairs:
            (bucket, field) in known  # noqa: B015


class NewCache:
    """KnownFingerprints as the scheduler would use it."""

    name = NEW

    def __init__(self, slots: int) -> None:
        self.cache = KnownFingerprints(slots)

    def add(self, batches: list[list[Entry]]) -> None:
        add_many = self.cache.add_many
        for batch in batches:
            add_many(key for _, _, key in batch)

    def lookup(self, pairs: list[Pair]) -> None:
        cache = self.cache
        for bucket, field in pairs:
            cache.key(bucket, field) in cache  # noqa: B015

    def key(self, pairs: list[Pair]) -> None:
        cache = self.cache
        for bucket, field in pairs:
            cache.key(bucket, field)


def idle_pairs(pairs: list[Pair]) -> None:
    for _bucket, _field in pairs:
        pass


def idle_batches(batches: list[list[Entry]]) -> None:
    for _batch in batches:
        pass


def cpu_s(work: Callable[[Any], None], items: Any) -> float:
    started = time.process_time()
    work(items)
    return time.process_time() - started


def chunks(items: list[Any], count: int) -> list[list[Any]]:
    size = -(-len(items) // count)
    return [items[start : start + size] for start in range(0, len(items), size)]


def one_round(stored: list[bytes], probes: list[bytes], first: int) -> dict[str, dict[str, float]]:
    """ns per add, lookup and key of both structures, filled with ``stored`` and probed with
    ``probes``; the two take turns every chunk, ``sides[first]`` first."""
    sides: list[OldSet | NewCache] = [OldSet(), NewCache(len(stored))]
    sides = sides[first:] + sides[:first]
    spent = {side.name: {"add": 0.0, "lookup": 0.0, "key": 0.0} for side in sides}
    flushed = {side.name: chunks(flushes(stored), CHUNKS) for side in sides}
    for part in range(CHUNKS):
        for side in sides:
            batches = flushed[side.name][part]
            spent[side.name]["add"] += cpu_s(side.add, batches) - cpu_s(idle_batches, batches)
    for operation, takers in (("lookup", sides), ("key", [side for side in sides if side.name == NEW])):
        # per structure: the pairs it works on and the pairs of the empty loop, all fresh
        probed = {
            side.name: (chunks(fresh_pairs(probes), CHUNKS), chunks(fresh_pairs(probes), CHUNKS)) for side in takers
        }
        for part in range(CHUNKS):
            for side in takers:
                work, idle = (pairs[part] for pairs in probed[side.name])
                spent[side.name][operation] += cpu_s(getattr(side, operation), work) - cpu_s(idle_pairs, idle)
    counts = {"add": len(stored), "lookup": len(probes), "key": len(probes)}
    return {name: {op: max(s, 0.0) / counts[op] * 1e9 for op, s in ops.items()} for name, ops in spent.items()}


def timings(count: int, rounds: int, rnd: random.Random) -> dict[str, list[dict[str, float]]]:
    """Per round and structure: ns per key, lookup and add, with ``count`` entries."""
    stored = fingerprints(count, rnd)
    probes = stored[: count // 2] + fingerprints(count - count // 2, rnd)
    rnd.shuffle(probes)
    runs: dict[str, list[dict[str, float]]] = {OLD: [], NEW: []}
    for round_ in range(rounds):
        for name, result in one_round(stored, probes, round_ % 2).items():
            runs[name].append(result)
        gc.collect()
        logger.info(
            "%d entries, round %d, lookup / add ns: %s",
            count,
            round_ + 1,
            "; ".join(f"{name}: {runs[name][-1]['lookup']:.0f} / {runs[name][-1]['add']:.0f}" for name in runs),
        )
    return runs


# -- hit rate ------------------------------------------------------------------------------------


def hit_rates(count: int, rnd: random.Random) -> dict[str, Any]:
    """N = the capacity of KnownFingerprints(count); N keys added to caches of N/2, N, 2N slots."""
    slots = KnownFingerprints(count).capacity
    keys = [key_of(*slot_of(fp)) for fp in fingerprints(slots, rnd)]
    never = [key_of(*slot_of(fp)) for fp in fingerprints(slots, rnd)]
    rates: dict[str, float] = {}
    false_known = 0
    for factor, label in ((0.5, "N/2"), (1, "N"), (2, "2N")):
        cache = KnownFingerprints(int(slots * factor))
        cache.add_many(keys)
        rates[label] = sum(key in cache for key in keys) / len(keys)
        false_known += sum(key in cache for key in never)
    return {
        "n": slots,
        "rates": rates,
        "false_known": false_known,
        "probes": 3 * len(never),
        "distinct": len(set(keys)) == len(keys),
    }


# -- run and report ------------------------------------------------------------------------------


def measure(count: int, rounds: int, seed: int) -> dict[str, Any]:
    rnd = random.Random(seed + count)
    fps = fingerprints(count, rnd)
    memory = {OLD: old_memory(fps), NEW: new_memory(fps)}
    del fps
    gc.collect()
    logger.info(
        "%d entries: %s",
        count,
        "; ".join(f"{name}: {result['traced'] / count:.1f} bytes/entry" for name, result in memory.items()),
    )
    runs = timings(count, rounds, rnd)
    medians = {
        name: {op: statistics.median(run[op] for run in results) for op in ("key", "lookup", "add")}
        for name, results in runs.items()
    }
    return {"entries": count, "memory": memory, "runs": runs, "medians": medians, "hits": hit_rates(count, rnd)}


def results_table(results: list[dict[str, Any]]) -> str:
    rows = []
    for result in results:
        count, memory, medians, hits = result["entries"], result["memory"], result["medians"], result["hits"]
        old_link = medians[OLD]["lookup"] + medians[OLD]["add"]
        for name in (OLD, NEW):
            used, op = memory[name], medians[name]
            link = op["lookup"] + op["add"]
            if name == OLD:
                rates = "exact up to SCHEDULER_KNOWN_FINGERPRINTS entries, then emptied"
                errors = "0"
                label = name
            else:
                rates = " / ".join(f"{hits['rates'][size]:.3f}" for size in ("N/2", "N", "2N"))
                errors = f"{hits['false_known']} of {hits['probes']:,}"
                label = f"{name}, {used['slots']:,} slots"
            rows.append(
                [
                    f"{count:,}",
                    label,
                    f"{used['traced'] / 2**20:.1f}",
                    f"{used['traced'] / count:.1f}",
                    f"{used['getsizeof'] / count:.1f}",
                    f"{used['traced'] / used['held']:.1f}",
                    f"{used['traced'] / memory[OLD]['traced']:.3f}",
                    f"{op['key']:.0f}" if name == NEW else "-",
                    f"{op['lookup']:.0f}",
                    f"{op['add']:.0f}",
                    f"{link:.0f}",
                    f"{op['lookup'] / medians[OLD]['lookup']:.2f} / {op['add'] / medians[OLD]['add']:.2f}"
                    f" / {link / old_link:.2f}",
                    f"{hits['n']:,}" if name == NEW else "-",
                    rates,
                    errors,
                ]
            )
    return table(
        [
            "entries",
            "structure",
            "MB (tracemalloc)",
            "bytes/entry (tracemalloc)",
            "bytes/entry (getsizeof)",
            "bytes/key held",
            "memory x old",
            "key ns",
            "lookup ns",
            "add ns",
            "lookup + add ns",
            "x old: lookup / add / both",
            "N",
            "hit rate, N keys in N/2 / N / 2N slots",
            "false known",
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args(argv)
    if min(args.sizes) < 2 or args.rounds < 1:
        parser.error("sizes must be at least 2 and rounds at least 1")
    setup_logging()
    results = [measure(count, args.rounds, args.seed) for count in args.sizes]
    print(results_table(results))
    print(f"results: {write_results('known', {'args': vars(args), 'results': results})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
