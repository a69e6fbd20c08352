"""JSON serializer for scrapy-redis's ``SCHEDULER_SERIALIZER`` (a module with
``dumps`` and ``loads``), in place of scrapy-redis's default object serialisation,
so that nobody who can write to Redis can run code on a node.

Bytes (request bodies and headers) are tagged ``{"$b": "<base64>"}``; fields that
hold their default value are left out, which keeps the payload of a Baike request
near 100 bytes.
"""

from __future__ import annotations

import base64
import json
from typing import Any

# Larger payloads are refused outright: nothing this crawler builds comes near it.
MAX_PAYLOAD_BYTES = 64 * 1024

_DEFAULTS: dict[str, Any] = {
    "callback": None,
    "errback": None,
    "headers": {},
    "method": "GET",
    "body": b"",
    "cookies": {},
    "meta": {},
    "encoding": "utf-8",
    "priority": 0,
    "dont_filter": False,
    "flags": [],
    "cb_kwargs": {},
}


class SerializationError(ValueError):
    """A payload that is not a request this crawler could have written."""


def dumps(obj: dict[str, Any]) -> str:
    """Encode a request dict (``Request.to_dict()``) as compact JSON text."""
    compact = {key: value for key, value in obj.items() if _DEFAULTS.get(key, ...) != value}
    return json.dumps(_tag_bytes(compact), ensure_ascii=False, separators=(",", ":"))


def loads(data: bytes | str) -> dict[str, Any]:
    """Decode a payload written by :func:`dumps` back to a request dict.

    Raises SerializationError for anything else: oversized, not UTF-8, not JSON (or
    nested too deep to read), not an object with a string ``url``.
    """
    if len(data) > MAX_PAYLOAD_BYTES:
        raise SerializationError(f"payload of {len(data)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        obj = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SerializationError(f"not a JSON payload: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("url"), str):
        raise SerializationError("not a request object (a JSON object with a string 'url')")
    decoded = {**_DEFAULTS, **_untag_bytes(obj)}
    decoded["headers"] = dict(decoded["headers"])
    return decoded


# Values passed through as they are; checked first, by exact type: most of a request is text.
_PLAIN_TYPES = frozenset({str, int, bool, float, type(None)})


def _tag_bytes(value: Any) -> Any:
    if type(value) in _PLAIN_TYPES:
        return value
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {_key(key): _tag_bytes(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tag_bytes(item) for item in value]
    return value


def _key(key: Any) -> str:
    if isinstance(key, bytes):
        return key.decode("latin-1")
    if isinstance(key, str):
        return key
    raise TypeError(f"cannot serialise a mapping key of type {type(key).__name__}")


def _untag_bytes(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and "$b" in value:
            try:
                return base64.b64decode(value["$b"], validate=True)
            except (ValueError, TypeError) as exc:
                raise SerializationError(f"bad base64 field: {exc}") from None
        return {key: _untag_bytes(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_untag_bytes(item) for item in value]
    return value
