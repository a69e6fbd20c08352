"""Offline, deterministic replica of baike.baidu.com for tests, demos and benchmarks.

``python -m replica --port 8800 --entries 100000 --seed 1`` serves it; the
Python API is :class:`replica.site.Site` (generator, routing, answer key).
"""

from __future__ import annotations

from replica.site import Site

__all__ = ["Site"]
