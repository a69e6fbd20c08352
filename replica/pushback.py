"""Baike-style pushback and the request clock, for the replica's server.

Baike answers a client that asks too fast with a captcha redirect (or a 429),
and keeps doing so while the client keeps asking. This module decides *when*
to push back; the server decides *how* (``--pushback captcha|429``):

* ``RateLimiter``: a token bucket per client address (``--max-rate``/``--burst``)
  and a penalty (``--penalty``) that restarts with every request made during it;
* ``Storm``: a time window in which every entry request is pushed back;
* ``ClientSeconds`` and ``EntryTimes``: what the statistics expose so tests can
  measure the rate clients achieved, on the replica's own clock (``time.time()``).

Everything is in memory and bounded; nothing here touches the site's RNGs.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# Paths of entry requests, the only ones pushed back and counted per client and second.
ENTRY_PREFIXES = ("/item/", "/view/", "/subview/")
PUSHBACK_CAPTCHA = "captcha"
PUSHBACK_429 = "429"
PUSHBACK_MODES = (PUSHBACK_CAPTCHA, PUSHBACK_429)
# Causes of a pushback answer, as counted in the statistics.
CAUSE_RATE = "rate"
CAUSE_PENALTY = "penalty"
CAUSE_STORM = "storm"
CAUSES = (CAUSE_RATE, CAUSE_PENALTY, CAUSE_STORM)


def _whole_seconds(seconds: float) -> int:
    """A ``Retry-After`` value: ``seconds`` rounded up, at least 1."""
    return max(1, math.ceil(seconds))


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why a request is pushed back and how long the client should wait."""

    cause: str
    retry_after: int


@dataclass(slots=True)
class Bucket:
    """One client's tokens, when they were last topped up, and its penalty end."""

    tokens: float
    last: float
    penalty_until: float = 0.0


class RateLimiter:
    """Token buckets per client address, with a restarting penalty.

    A bucket holds at most ``burst`` tokens and starts full; it gains ``rate``
    tokens a second and every entry request takes one. A request finding less
    than one token is a violation: it is pushed back and, if ``penalty`` > 0,
    the client is penalised for ``penalty`` seconds. Every entry request during
    a penalty is pushed back too and starts the penalty again, so only a client
    that stays quiet for ``penalty`` seconds is served again. Over any window of
    ``w`` seconds a client is served at most ``burst + rate * w`` requests.
    """

    def __init__(self, rate: float, burst: float, penalty: float):
        if rate <= 0 or burst < 1 or penalty < 0:
            raise ValueError("rate must be > 0, burst >= 1 and penalty >= 0")
        self.rate = rate
        self.burst = burst
        self.penalty = penalty
        self.buckets: dict[str, Bucket] = {}
        self._pruned = 0.0

    def reset(self) -> None:
        """Forget every client: full buckets, no penalties."""
        self.buckets.clear()

    def check(self, client: str, now: float) -> Verdict | None:
        """None if ``client`` may be served at ``now`` (a token is taken), else why not."""
        if now - self._pruned >= 1.0:
            self._forget_idle(now)
        bucket = self.buckets.get(client)
        if bucket is None:
            bucket = self.buckets[client] = Bucket(self.burst, now)
        if now < bucket.penalty_until:
            bucket.penalty_until = now + self.penalty
            return Verdict(CAUSE_PENALTY, _whole_seconds(self.penalty))
        if now > bucket.last:  # a clock stepping back never adds tokens
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.last) * self.rate)
            bucket.last = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        if self.penalty > 0:
            bucket.penalty_until = now + self.penalty
            logger.info("client %s over %g requests/s: penalised for %gs", client, self.rate, self.penalty)
            return Verdict(CAUSE_RATE, _whole_seconds(self.penalty))
        return Verdict(CAUSE_RATE, _whole_seconds((1.0 - bucket.tokens) / self.rate))

    def _forget_idle(self, now: float) -> None:
        """Drop the buckets that are full again and not penalised (they start full anyway)."""
        self._pruned = now
        idle = [
            client
            for client, bucket in self.buckets.items()
            if now >= bucket.penalty_until and bucket.tokens + (now - bucket.last) * self.rate >= self.burst
        ]
        for client in idle:
            del self.buckets[client]


class Storm:
    """A window ``[start, end)`` of the replica's clock in which every entry request is pushed back."""

    def __init__(self) -> None:
        self.start = 0.0
        self.end = 0.0

    def schedule(self, start: float, seconds: float) -> None:
        """Replace any storm by one from ``start`` lasting ``seconds`` (0 means no storm)."""
        self.start = start
        self.end = start + max(0.0, seconds)

    def verdict(self, now: float) -> Verdict | None:
        """A storm verdict (wait until its end) while the storm blows, else None."""
        if self.start <= now < self.end:
            return Verdict(CAUSE_STORM, _whole_seconds(self.end - now))
        return None

    def as_dict(self, now: float) -> dict:
        return {"active": self.start <= now < self.end, "start": self.start, "end": self.end, "now": now}


class ClientSeconds:
    """Entry requests per client address per whole second, for the last ``keep`` seconds."""

    def __init__(self, keep: int = 600):
        self.keep = keep
        self.counts: dict[str, dict[int, int]] = {}
        self._second = 0

    def count(self, client: str, now: float) -> None:
        """Count one entry request of ``client`` in the second ``int(now)``."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._prune(second - self.keep)
        per_second = self.counts.get(client)
        if per_second is None:
            per_second = self.counts[client] = {}
        per_second[second] = per_second.get(second, 0) + 1

    def _prune(self, cutoff: int) -> None:
        """Drop seconds up to ``cutoff`` and the clients left with none."""
        for client in list(self.counts):
            per_second = self.counts[client]
            stale = []
            for second in per_second:  # insertion order is time order
                if second > cutoff:
                    break
                stale.append(second)
            for second in stale:
                del per_second[second]
            if not per_second:
                del self.counts[client]

    def as_dict(self) -> dict[str, dict[str, int]]:
        """``{client: {"<unix second>": requests}}``, seconds ascending."""
        return {
            client: {str(second): n for second, n in sorted(per_second.items())}
            for client, per_second in sorted(self.counts.items())
        }


class EntryTimes:
    """The replica's timestamps of the last ``keep`` entry pages served with status 200."""

    def __init__(self, keep: int = 100_000):
        self.keep = keep
        self.times: deque[float] = deque(maxlen=keep)
        self.lost = -math.inf  # the newest timestamp pushed out of the window

    def add(self, now: float) -> None:
        times = self.times
        if len(times) == self.keep:
            self.lost = times[0]
        times.append(now)

    def between(self, since: float, until: float = math.inf) -> tuple[list[float], bool]:
        """Timestamps in ``[since, until)`` and whether none of them was dropped."""
        return [t for t in self.times if since <= t < until], self.lost < since
