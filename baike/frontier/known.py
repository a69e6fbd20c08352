"""A node's fixed-memory cache of the fingerprints it has flushed (``SCHEDULER_KNOWN_FINGERPRINTS``).

The scheduler drops a link without a Redis round trip when it already sent the
link's fingerprint to the shared dupefilter. Remembering every fingerprint in a
Python set of ``(bucket key, field)`` tuples costs about 200 bytes each; this
cache keeps one 64-bit word per slot instead, in an ``array('Q')``:

    memory = 8 bytes x slots (slots rounded up to a power of two)

It is lossy on purpose. The table is direct-mapped: the low bits of a key pick
its one word, and adding a key whose word is taken evicts the key there. A key
that was evicted (or never added) is simply not found: the link then goes to
Redis, whose dupefilter stays the source of truth, so correctness never depends
on the cache. A key is found only when its exact value is stored, so the
cache answers "known" for a pair it was never given only when two pairs share a
key: never for two fields of one bucket or one field of two buckets (see
:meth:`KnownFingerprints.key`), and with a chance of about 2**-60 per lookup
otherwise: 80 million times less likely than the shared dupefilter's own 40-bit
field collision (80 / 2**40 per URL).

After N distinct keys, a cache of N slots holds 1 - 1/e = 63% of them (the more
recent, the likelier), one of 2N slots 79% (measured: bench/README.md). A 2-way
set-associative table would hold 73% and 90%, but in Python its second word costs
a fifth more per link (a read and a compare more per lookup, a read and a write
more per add), which made it slower than the set of tuples it replaces. The
cache is not thread-safe; the scheduler uses it from the reactor thread only.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable

SETTING = "SCHEDULER_KNOWN_FINGERPRINTS"
# Keys of :meth:`KnownFingerprints.key` are residues modulo this Mersenne prime, 0 mapped to itself.
KEY_MODULUS = (1 << 61) - 1
# Spreads buckets over the residues: the first 8 bytes of sha256(b"baike.frontier.known"),
# big-endian, modulo KEY_MODULUS.
# Without it (field + bucket bytes read as one integer) bucket keys that differ only in a few
# hex digits differ by a small residue, and 28% of the pairs of buckets of a crawl could collide.
KEY_MULTIPLIER = 0x9204181217DCA43
# Largest key the table can store; 0 marks an empty word and is never a key.
MAX_KEY = (1 << 64) - 1

_from_bytes = int.from_bytes


def _mod_key_modulus(number: int) -> int:
    return number % KEY_MODULUS


# For a non-negative int, hash() is the int modulo sys.hash_info.modulus (the language's
# documented numeric hash), which is KEY_MODULUS on 64-bit builds and much faster than %.
_reduce = hash if sys.hash_info.modulus == KEY_MODULUS else _mod_key_modulus


def table_words(slots: int) -> int:
    """Words of the table for ``slots``: rounded up to a power of two.

    Raises ValueError naming SCHEDULER_KNOWN_FINGERPRINTS unless ``slots`` is an int >= 1.
    """
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
        raise ValueError(f"{SETTING} must be a whole number of cache slots, at least 1 (got {slots!r})")
    return 1 << (slots - 1).bit_length()


class KnownFingerprints:
    """Fixed-memory, lossy set of 64-bit keys of (dupefilter bucket, field) pairs.

    ``slots`` (SCHEDULER_KNOWN_FINGERPRINTS) is rounded up to a power of two; the
    table takes 8 bytes per slot (:attr:`nbytes`) whatever the number of keys
    added. A key is 1 to 2**64 - 1, usually from :meth:`key`.
    """

    __slots__ = ("_mask", "_table")

    def __init__(self, slots: int) -> None:
        words = table_words(slots)
        self._table = array("Q", [0]) * words
        # a key's word: its low bits
        self._mask = words - 1

    @staticmethod
    def key(bucket: str, field: bytes) -> int:
        """A stable key of ``(bucket, field)``, 1 to 2**61 - 1, the same in every process.

        ``(F + KEY_MULTIPLIER x B) mod (2**61 - 1)``, where F and B are ``field`` and
        ``bucket.encode()`` read as little-endian integers; a result of 0 becomes
        2**61 - 1. So two fields of one length (at most 7 bytes) never share a key in
        one bucket, one field never shares a key in two buckets unless B1 = B2 mod
        2**61 - 1 (never for two bucket keys of one crawl), and other distinct pairs
        share one with a chance of about 2**-60.
        """
        number = _from_bytes(field, "little") + KEY_MULTIPLIER * _from_bytes(bucket.encode(), "little")
        return _reduce(number) or KEY_MODULUS

    def __contains__(self, key: int) -> bool:
        """True only when exactly ``key`` is stored; False for 0 and any key never added."""
        return self._table[key & self._mask] == key and key != 0

    def add(self, key: int) -> None:
        """Store ``key`` in its word, evicting the key there.

        Raises ValueError, leaving the cache unchanged, unless 1 <= ``key`` <= 2**64 - 1.
        """
        if not 0 < key <= MAX_KEY:
            raise ValueError(f"a known-fingerprint key is 1 to 2**64 - 1, not {key!r}")
        self._table[key & self._mask] = key

    def add_many(self, keys: Iterable[int]) -> None:
        """:meth:`add` every key of ``keys``, in order (a later key may evict an earlier one).

        Raises ValueError at the first key out of range; the keys before it are stored.
        """
        # the loop of add(), inlined: a method call would cost as much as the store itself
        table, mask, max_key = self._table, self._mask, MAX_KEY
        for key in keys:
            if not 0 < key <= max_key:
                raise ValueError(f"a known-fingerprint key is 1 to 2**64 - 1, not {key!r}")
            table[key & mask] = key

    def clear(self) -> None:
        """Forget every key (the table keeps its size)."""
        self._table = array("Q", [0]) * len(self._table)

    @property
    def capacity(self) -> int:
        """Slots of the table: the most keys it can hold at once."""
        return len(self._table)

    @property
    def nbytes(self) -> int:
        """Bytes of the table: 8 x :attr:`capacity`, fixed at construction."""
        return self._table.itemsize * len(self._table)

    def __len__(self) -> int:
        """Keys held now. Scans the whole table (about 12 ms per million slots): not for hot paths."""
        return len(self._table) - self._table.count(0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(slots={self.capacity}, nbytes={self.nbytes})"
