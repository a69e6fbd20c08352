"""Errors that stop a node with one line saying what to do, never a traceback."""

from __future__ import annotations


class NodeRefused(Exception):
    """This node cannot take part in the crawl as configured; the message says why and what to do.

    Raised while a node starts (a bad setting, a dupefilter layout it cannot read or
    agree with); ``scrapy crawl`` prints the message on one line and exits non-zero.
    """


class DeadLetter(Exception):
    """A request that failed for good while its response was handled; ``str()`` is the reason
    its lease goes to the dead letters with (e.g. ``parser failed: ...``)."""
