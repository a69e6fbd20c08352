"""The node-local cache of flushed fingerprints (baike.frontier.known), without Redis."""

from __future__ import annotations

import bisect
import hashlib
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from baike.frontier.dupefilter import BucketDupeFilter, BucketLayout
from baike.frontier.known import KEY_MODULUS, KEY_MULTIPLIER, MAX_KEY, KnownFingerprints

ROOT = Path(__file__).resolve().parents[1]
DUPEFILTER_KEY = "baike:dupefilter"


def random_keys(count: int, seed: int = 0) -> list[int]:
    """``count`` distinct random keys of 1..2**64 - 1."""
    rnd = random.Random(seed)
    keys: set[int] = set()
    while len(keys) < count:
        keys.add(rnd.randrange(1, MAX_KEY + 1))
    return list(keys)


def colliding_keys(cache: KnownFingerprints, count: int, start: int = 5) -> list[int]:
    """``count`` distinct keys of the same word: they differ only above the index bits."""
    return [start + n * cache.capacity for n in range(count)]


# -- sizing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slots", "capacity"),
    [(1, 1), (2, 2), (3, 4), (1000, 1024), (1024, 1024), (1_000_000, 1_048_576)],
)
def test_slots_are_rounded_up_to_a_power_of_two(slots: int, capacity: int) -> None:
    cache = KnownFingerprints(slots)
    assert cache.capacity == capacity
    assert cache.nbytes == 8 * capacity


@pytest.mark.parametrize("slots", [0, -1, -1_000_000, 1.5, 1e6, "1000", None, True])
def test_bad_slot_counts_are_rejected_naming_the_setting(slots: object) -> None:
    with pytest.raises(ValueError, match=r"SCHEDULER_KNOWN_FINGERPRINTS must be .*at least 1"):
        KnownFingerprints(slots)  # type: ignore[arg-type]


def test_memory_stays_at_the_configured_size_whatever_the_number_of_adds() -> None:
    cache = KnownFingerprints(1024)
    nbytes = cache.nbytes
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        cache.add_many(random_keys(50_000, seed=1))
        for key in range(1, 50_000):
            cache.add(key)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert cache.nbytes == nbytes == 8 * 1024
    assert cache.capacity == 1024
    assert len(cache) == 1024
    # the 50,000-key list was freed; nothing the cache keeps grew
    assert grown < 1024


# -- membership ----------------------------------------------------------------------------


def test_an_empty_cache_knows_nothing_not_even_the_empty_marker() -> None:
    cache = KnownFingerprints(64)
    assert len(cache) == 0
    assert 0 not in cache
    assert not any(key in cache for key in random_keys(1000))
    assert all(key not in cache for key in range(-3, 200))


def test_added_keys_are_found() -> None:
    cache = KnownFingerprints(1 << 12)
    # keys 1..capacity - 1 have words of their own: all of them stay
    keys = list(range(1, cache.capacity))
    cache.add_many(keys)
    assert all(key in cache for key in keys)
    assert len(cache) == len(keys)
    assert MAX_KEY not in cache
    cache.add(MAX_KEY)
    assert MAX_KEY in cache


def test_the_last_key_added_to_a_word_is_found_and_evicts_the_one_before() -> None:
    cache = KnownFingerprints(256)
    for key in random_keys(5000, seed=2):
        cache.add(key)
        assert key in cache
    first, second = colliding_keys(cache, 2)
    cache.add(first)
    cache.add(first)
    assert first in cache
    cache.add(second)
    assert second in cache
    assert first not in cache
    cache.add(first)
    assert first in cache
    assert second not in cache


def test_unknown_keys_are_not_found() -> None:
    keys = random_keys(20_000, seed=3)
    added, never = keys[:10_000], keys[10_000:]
    cache = KnownFingerprints(1 << 16)
    cache.add_many(added)
    assert not any(key in cache for key in never)
    # keys that differ from a stored one in a single bit, in or above the index bits
    assert not any(key ^ (1 << bit) in cache for key in added[:1000] for bit in (1, 17, 40, 63))


def test_eviction_on_collision_never_produces_a_false_positive() -> None:
    """Against a model: a key is found exactly when it is the last key added to its word,
    with many more keys than slots and every word overwritten many times."""
    cache = KnownFingerprints(64)
    words: dict[int, int] = {}
    universe = random_keys(2000, seed=4) + colliding_keys(cache, 50)
    rnd = random.Random(5)
    for _ in range(30_000):
        key = rnd.choice(universe)
        words[key % cache.capacity] = key
        cache.add(key)
        probe = rnd.choice(universe)
        assert (probe in cache) == (words.get(probe % cache.capacity) == probe)
    held = set(words.values())
    assert {key for key in universe if key in cache} == held
    assert len(cache) == len(held) == cache.capacity


@pytest.mark.parametrize("key", [0, -1, MAX_KEY + 1, -MAX_KEY])
def test_keys_out_of_range_are_rejected_and_change_nothing(key: int) -> None:
    cache = KnownFingerprints(16)
    keys = list(range(1, 16))
    cache.add_many(keys)
    with pytest.raises(ValueError, match="1 to 2\\*\\*64 - 1"):
        cache.add(key)
    with pytest.raises(ValueError, match="1 to 2\\*\\*64 - 1"):
        cache.add_many([key])
    assert all(known in cache for known in keys)
    assert key not in cache
    assert len(cache) == len(keys)


def test_add_many_is_add_in_order() -> None:
    keys = random_keys(3000, seed=6) * 2
    random.Random(7).shuffle(keys)
    one_by_one, at_once = KnownFingerprints(512), KnownFingerprints(512)
    for key in keys:
        one_by_one.add(key)
    at_once.add_many(iter(keys))
    assert [key in one_by_one for key in keys] == [key in at_once for key in keys]


# -- keys of (bucket, field) pairs ------------------------------------------------------------


def test_key_is_the_documented_stable_function() -> None:
    bucket, field = "baike:dupefilter:1e2f", bytes.fromhex("0123456789")
    expected = (
        int.from_bytes(field, "little") + KEY_MULTIPLIER * int.from_bytes(bucket.encode(), "little")
    ) % KEY_MODULUS
    assert KnownFingerprints.key(bucket, field) == expected == 0x38FD37A4E670A67
    assert KnownFingerprints(8).key(bucket, field) == expected
    digest = hashlib.sha256(b"baike.frontier.known").digest()
    assert int.from_bytes(digest[:8], "big") % KEY_MODULUS == KEY_MULTIPLIER


def test_key_is_the_same_in_another_process_whatever_its_hash_seed() -> None:
    code = (
        "from baike.frontier.known import KnownFingerprints as K;"
        " print(K.key('baike:dupefilter:1e2f', bytes.fromhex('0123456789')))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={"PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outputs == {str(KnownFingerprints.key("baike:dupefilter:1e2f", bytes.fromhex("0123456789")))}


def test_key_is_never_0() -> None:
    # pairs whose integer is a multiple of 2**61 - 1 take the one key no residue gives
    assert KnownFingerprints.key("", b"") == KEY_MODULUS
    assert KnownFingerprints.key("", KEY_MODULUS.to_bytes(8, "little")) == KEY_MODULUS
    assert KnownFingerprints.key("", (1).to_bytes(8, "little")) == 1
    keys = [KnownFingerprints.key(f"b:{n:x}", n.to_bytes(5, "little")) for n in range(10_000)]
    assert all(0 < key <= KEY_MODULUS for key in keys)
    cache = KnownFingerprints(1 << 15)
    cache.add_many(keys)
    assert all(key in cache for key in keys[-100:])


def test_fields_of_one_bucket_never_share_a_key() -> None:
    bucket = f"{DUPEFILTER_KEY}:1e848"
    fields = [n.to_bytes(5, "big") for n in range(1 << 16)] + [bytes([255] * 5), bytes(5)]
    rnd = random.Random(8)
    fields += [rnd.randbytes(5) for _ in range(50_000)]
    keys = {KnownFingerprints.key(bucket, field) for field in set(fields)}
    assert len(keys) == len(set(fields))


def test_one_field_never_shares_a_key_in_two_buckets_of_a_crawl() -> None:
    dupefilter = BucketDupeFilter(None, DUPEFILTER_KEY, None, BucketLayout.for_size())
    buckets = {f"{DUPEFILTER_KEY}:{index:x}" for index in range(dupefilter.layout.buckets)}
    assert len(buckets) == 125_000
    for field in (bytes(5), b"\x01#Eg\x89"):
        assert len({KnownFingerprints.key(bucket, field) for bucket in buckets}) == len(buckets)


def test_buckets_are_spread_over_the_keys() -> None:
    """Two pairs of different buckets can only share a key when the two buckets' terms
    (KEY_MULTIPLIER x B) are within 2**40 (the field's range) of each other. With the terms
    spread like random numbers that is about 75 pairs of the 12,500 buckets of a 1M-URL
    crawl, each then colliding with a chance of 2**-40: read as one integer (no multiplier),
    19.6 million pairs of them would be that close."""
    window = 1 << 40
    layout = BucketLayout.for_size(1_000_000)
    # a bucket's term is the key of its empty field
    terms = sorted(KnownFingerprints.key(f"{DUPEFILTER_KEY}:{index:x}", b"") for index in range(layout.buckets))
    close = sum(bisect.bisect_left(terms, term + window, n + 1) - n - 1 for n, term in enumerate(terms))
    close += sum(1 for low in terms[:100] for high in terms[-100:] if low + KEY_MODULUS - high < window)
    expected = layout.buckets**2 / 2 * 2 * window / KEY_MODULUS
    assert close < 3 * expected


def test_real_slots_round_trip_through_the_cache() -> None:
    dupefilter = BucketDupeFilter(None, DUPEFILTER_KEY, None, BucketLayout.for_size())
    rnd = random.Random(9)
    slots = [dupefilter.slot_of(rnd.randbytes(20)) for _ in range(20_000)]
    keys = [KnownFingerprints.key(bucket, field) for bucket, field in slots]
    assert len(set(keys)) == len(set(slots)) == 20_000
    cache = KnownFingerprints(1 << 16)
    cache.add_many(keys[:10_000])
    found = sum(KnownFingerprints.key(bucket, field) in cache for bucket, field in slots[:10_000])
    # 10,000 keys in 65,536 slots: 65,536 x (1 - exp(-10,000 / 65,536)) = 9,273 words taken
    assert 9_000 <= found < 10_000
    assert not any(KnownFingerprints.key(bucket, field) in cache for bucket, field in slots[10_000:])
