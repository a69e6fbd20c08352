"""The request schema: what a payload read from Redis may hold before it becomes a Request.

Whoever can write to Redis can write the frontier, so a payload is data, never
instructions: it is checked field by field against an explicit list and turned
into a plain :class:`scrapy.Request` here, never by Scrapy's ``request_from_dict``
(which imports and calls the class named by a payload's ``_class``). Anything
else (an unknown field, ``_class``, a callback not on the spider's list, a meta
key nobody allowed, a value of the wrong type) raises :class:`SchemaError` with
the reason.

Meta keys are an allowlist: the keys Scrapy's middlewares and baike itself write
into a request's meta (:data:`CRAWLER_META`, each with the type of its value),
plus the keys a user names in ``SCHEDULER_EXTRA_META_KEYS`` (e.g. ``proxy``),
whose values may be any JSON value. JSON seeds go through the same meta check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

# Frontier scores are -priority * 2**32 + seq (see scripts.py): priorities stay within
# +-MAX_PRIORITY so that a score keeps every digit when Lua turns it into a string
# (14 significant digits). Seeds are admitted at MAX_PRIORITY + 1, ahead of any request.
MAX_PRIORITY = 10_000
SEED_SCORE = -(MAX_PRIORITY + 1) * 2**32
# Fields a payload may carry; each holding anything but what a Baike GET request has
# is refused. Defaults are filled in by the serializer.
FIELDS = frozenset(
    {
        "url",
        "callback",
        "errback",
        "headers",
        "method",
        "body",
        "cookies",
        "meta",
        "encoding",
        "priority",
        "dont_filter",
        "flags",
        "cb_kwargs",
    }
)
MAX_META_KEYS = 64
# Request meta key of a sense followed from a disambiguation list: its description there.
SENSE_LABEL_META_KEY = "baike_sense_label"
MAX_LABEL_CHARS = 200
# Longest ETag or Last-Modified a revisit request carries
MAX_VALIDATOR_CHARS = 256
# Request headers a payload may carry (the spider sets Referer on the requests a page
# yields, with Scrapy's referrer policy: baike.referer); the downloader middlewares add
# the rest at download time.
HEADERS = frozenset({"Referer"})
MAX_HEADER_BYTES = 4096


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_int_list(value: Any) -> bool:
    return isinstance(value, list) and all(_is_int(item) for item in value)


def _is_reason_list(value: Any) -> bool:
    return isinstance(value, list) and all(_is_int(item) or isinstance(item, str) for item in value)


def _is_label(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_LABEL_CHARS


def _is_validator(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_VALIDATOR_CHARS and value.isprintable()


def _any_json(value: Any) -> bool:
    return True


# Meta keys the crawler itself writes (Scrapy's middlewares, baike's guard), with
# the check of each value.
CRAWLER_META: dict[str, Callable[[Any], bool]] = {
    "depth": _is_int,
    "retry_times": _is_int,
    "max_retry_times": _is_int,
    "redirect_times": _is_int,
    "redirect_ttl": _is_int,
    "redirect_urls": _is_str_list,
    "redirect_reasons": _is_reason_list,
    "dont_redirect": _is_bool,
    "dont_retry": _is_bool,
    "dont_obey_robotstxt": _is_bool,
    "handle_httpstatus_all": _is_bool,
    "handle_httpstatus_list": _is_int_list,
    "baike_captcha_attempts": _is_int,
    SENSE_LABEL_META_KEY: _is_label,
    # a revisit of a stored entry and the validators it sends (see baike.revisit)
    "baike_revisit": _is_bool,
    "baike_etag": _is_validator,
    "baike_modified": _is_validator,
}


class SchemaError(ValueError):
    """A payload or seed that does not fit the request schema; the message says why."""


@dataclass(frozen=True, slots=True)
class RequestSchema:
    """The fields, callbacks and meta keys a request read from Redis may have."""

    callbacks: frozenset[str]
    extra_meta: frozenset[str] = frozenset()

    @classmethod
    def build(cls, callbacks: Iterable[str], extra_meta: Iterable[str] = ()) -> RequestSchema:
        return cls(callbacks=frozenset(callbacks), extra_meta=frozenset(extra_meta))

    def check(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Return ``obj`` (a decoded payload with defaults) if it fits the schema.

        Raises SchemaError naming the first field that does not.
        """
        unknown = sorted(map(str, set(obj) - FIELDS))
        if unknown:
            raise SchemaError(f"unknown fields {', '.join(unknown)[:200]}")
        if obj["method"] != "GET" or obj["body"] not in (b"", ""):
            raise SchemaError("only GET requests without a body are crawled")
        for name in ("cookies", "cb_kwargs"):
            if obj[name]:
                raise SchemaError(f"field {name!r} must be empty")
        self.check_headers(obj["headers"])
        for name in ("callback", "errback"):
            value = obj[name]
            if value is not None and (not isinstance(value, str) or value not in self.callbacks):
                raise SchemaError(f"{name} {str(value)[:100]!r} is not one of {sorted(self.callbacks)}")
        self.check_priority(obj["priority"])
        if not _is_bool(obj["dont_filter"]):
            raise SchemaError("dont_filter must be true or false")
        if obj["encoding"] != "utf-8":
            raise SchemaError("encoding must be utf-8")
        if not _is_str_list(obj["flags"]):
            raise SchemaError("flags must be a list of strings")
        self.check_meta(obj["meta"])
        return obj

    def check_priority(self, priority: Any) -> int:
        """``priority`` if it is an integer within +-MAX_PRIORITY; raises SchemaError."""
        if not _is_int(priority) or abs(priority) > MAX_PRIORITY:
            raise SchemaError(f"priority must be an integer within +-{MAX_PRIORITY}")
        return cast("int", priority)

    def check_headers(self, headers: Any) -> dict[str, Any]:
        """``headers`` if every name is in :data:`HEADERS` with one short value (bytes or text)."""
        if not isinstance(headers, dict):
            raise SchemaError("headers must be an object")
        for name, values in headers.items():
            if name not in HEADERS:
                raise SchemaError(f"header {str(name)[:100]!r} is not allowed (only {', '.join(sorted(HEADERS))})")
            if not isinstance(values, list) or len(values) != 1 or not isinstance(values[0], (bytes, str)):
                raise SchemaError(f"header {name!r} must hold one value")
            if len(values[0]) > MAX_HEADER_BYTES:
                raise SchemaError(f"header {name!r} is longer than {MAX_HEADER_BYTES} bytes")
        return headers

    def check_meta(self, meta: Any) -> dict[str, Any]:
        """``meta`` if every key is allowed and every value of the crawler's keys has its type."""
        if not isinstance(meta, dict):
            raise SchemaError("meta must be an object")
        if len(meta) > MAX_META_KEYS:
            raise SchemaError(f"meta has {len(meta)} keys; at most {MAX_META_KEYS}")
        for key, value in meta.items():
            check = CRAWLER_META.get(key) or (_any_json if key in self.extra_meta else None)
            if check is None:
                raise SchemaError(
                    f"meta key {str(key)[:100]!r} is not allowed (add it to SCHEDULER_EXTRA_META_KEYS to carry it)"
                )
            if not check(value):
                raise SchemaError(f"meta key {key!r} has a value of the wrong type")
        return meta
