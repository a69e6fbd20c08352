"""Redis failures every component rides out the same way (log, back off, retry)."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# What a lost or restarting Redis raises; anything else is a bug and propagates.
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError)
