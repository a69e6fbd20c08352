"""The JSON request serializer (SCHEDULER_SERIALIZER): round trips, no pickle, clear refusals."""

from __future__ import annotations

import json
import pickle

import pytest
from scrapy import Request

from baike.frontier import serializer


def test_round_trip_of_a_request_dict() -> None:
    request = Request(
        "https://baike.baidu.com/item/x/1",
        headers={"Referer": "https://baike.baidu.com/item/y/2"},
        meta={"depth": 2, "redirect_urls": ["http://127.0.0.1:1/item/x"]},
        priority=-3,
        dont_filter=True,
    )
    obj = request.to_dict()
    text = serializer.dumps(obj)
    assert json.loads(text)["priority"] == -3
    restored = serializer.loads(text.encode())
    assert restored["meta"] == obj["meta"]
    assert restored["headers"] == {"Referer": [b"https://baike.baidu.com/item/y/2"]}
    assert restored["dont_filter"] is True and restored["method"] == "GET"


def test_defaults_are_left_out() -> None:
    text = serializer.dumps(Request("https://baike.baidu.com/item/x/1").to_dict())
    assert text == '{"url":"https://baike.baidu.com/item/x/1"}'


def test_bytes_bodies_survive() -> None:
    obj = Request("https://baike.baidu.com/item/x/1", method="POST", body=b"\x00\xff").to_dict()
    assert serializer.loads(serializer.dumps(obj))["body"] == b"\x00\xff"


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps({"url": "https://baike.baidu.com/item/x/1"}),
        b"\xff\xfe not utf-8",
        b"not json",
        b"[1, 2]",
        b'{"no_url": 1}',
        b'{"url": "x", "body": {"$b": "!!!"}}',
        b"{" + b" " * serializer.MAX_PAYLOAD_BYTES + b"}",
    ],
)
def test_anything_else_is_refused_with_a_reason(payload: bytes) -> None:
    with pytest.raises(serializer.SerializationError):
        serializer.loads(payload)
