"""Dead letters counted by reason, read a bounded slice at a time.

A dead letter's reason is free text (``HTTP 503 after retries``, ``parser failed:
ValueError(...)``, ``captcha answered 3 times for <url>``, ``TimeoutError: ...``);
as a Prometheus label it is cut down to its kind (:func:`reason_label`), so that no
URL or message ever becomes a label value and the values stay few.

The dead list only grows at its tail (RPUSH) except when ``scrapy deadletters
--requeue`` removes letters or ``scrapy reset`` deletes it. :class:`DeadLetterTally`
therefore counts each letter once, remembering how many it has counted and a digest
of the last one; when the letter at that place is no longer the one it remembers,
the list changed under it and it counts again from the start. Each read takes at
most ``chunks`` LRANGE round trips of ``chunk`` letters, so a long list is caught up
over a few reads; what is not counted yet is reported as :data:`PENDING`.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from typing import TYPE_CHECKING, cast

from baike.status import read_json

if TYPE_CHECKING:
    from redis import Redis

# The reason of letters in the list but not read yet.
PENDING = "pending"
# Any reason not recognised, and every reason beyond MAX_REASONS distinct ones.
OTHER = "other"
# Distinct (reason, status) label pairs kept; beyond it letters count as OTHER.
MAX_REASONS = 32

_HTTP = re.compile(r"HTTP (\d{3})\b")
# "<ExceptionName>: message" as the spider writes a download failure (dotted names allowed)
_EXCEPTION = re.compile(r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*):")
_KINDS = (
    ("parser failed", "parser"),
    ("captcha", "captcha"),
    ("bad seed", "bad_seed"),
    ("rejected payload", "rejected_payload"),
)


def reason_label(reason: object) -> tuple[str, str]:
    """``(reason, status)`` labels of a dead letter's reason text.

    ``HTTP 503 after retries`` -> ``("http", "503")``; ``parser failed: ...`` ->
    ``("parser", "")``; ``captcha ...`` -> ``("captcha", "")``; ``bad seed: ...`` and
    ``rejected payload: ...`` (frontier entries that could not be read) -> ``("bad_seed",
    "")`` and ``("rejected_payload", "")``; ``TimeoutError: ...``
    -> ``("TimeoutError", "")`` (the last part of a dotted exception name); anything
    else ``("other", "")``. Label values are at most 64 characters.
    """
    if not isinstance(reason, str):
        return OTHER, ""
    match = _HTTP.match(reason)
    if match:
        return "http", match.group(1)
    for prefix, kind in _KINDS:
        if reason.startswith(prefix):
            return kind, ""
    match = _EXCEPTION.match(reason)
    if match:
        return match.group(1).rpartition(".")[2][:64], ""
    return OTHER, ""


class DeadLetterTally:
    """Counts of the dead list ``key`` by ``(reason, status)``, kept between reads."""

    def __init__(self, key: str, chunk: int = 1000, chunks: int = 5, most: int = MAX_REASONS):
        self.key = key
        self.chunk = max(chunk, 1)
        self.chunks = max(chunks, 1)
        self.most = most
        self.counted = 0
        self._last: bytes | None = None
        self._counts: Counter[tuple[str, str]] = Counter()

    def read(self, server: Redis, length: int) -> dict[tuple[str, str], int]:
        """The counts after reading on from where the last read stopped.

        ``length`` is the list's length as just read (LLEN); the letters not counted
        yet are given as ``(PENDING, "")``, so the counts always sum to ``length``.
        Raises what redis-py raises; the counts kept are then those of the last read.
        """
        for _ in range(self.chunks):
            if not self._read_chunk(server):
                break
        counts = dict(self._counts)
        if length > self.counted:
            counts[(PENDING, "")] = length - self.counted
        return counts

    def _read_chunk(self, server: Redis) -> bool:
        """Count the next letters; True when a full chunk was read (there may be more)."""
        # from the last letter counted (to check it is still there), then ``chunk`` new ones
        start = max(self.counted - 1, 0)
        letters = cast("list[bytes]", server.lrange(self.key, start, start + self.chunk - (0 if self.counted else 1)))
        if self.counted:
            if not letters or _digest(letters[0]) != self._last:
                self._restart()
                return True
            letters = letters[1:]
        for letter in letters:
            self._count(letter)
        if letters:
            self.counted += len(letters)
            self._last = _digest(letters[-1])
        return len(letters) >= self.chunk

    def _count(self, letter: bytes) -> None:
        record = read_json(letter)
        labels = reason_label(record.get("reason") if isinstance(record, dict) else None)
        if labels not in self._counts and len(self._counts) >= self.most:
            labels = (OTHER, "")
        self._counts[labels] += 1

    def _restart(self) -> None:
        self.counted = 0
        self._last = None
        self._counts.clear()


def _digest(letter: bytes) -> bytes:
    return hashlib.blake2b(letter, digest_size=16).digest()
