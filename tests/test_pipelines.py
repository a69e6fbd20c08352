"""Item pipelines: validate, clean, store (idempotent by URL)."""

from __future__ import annotations

import json

import pytest
from scrapy.exceptions import DropItem

from baike.items import BaikeItem
from baike.keys import CrawlKeys
from baike.pipelines import CleanPipeline, RedisStorePipeline, ValidatePipeline
from tests.frontier_helpers import make_crawler

KEYS = CrawlKeys.for_spider("baike")
URL = "https://baike.baidu.com/item/x/1"


@pytest.fixture()
def validate() -> ValidatePipeline:
    return ValidatePipeline(make_crawler("redis://127.0.0.1:1/0"))


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (BaikeItem(url="http://127.0.0.1:8800/item/x/1", title="x"), "no_canonical_url"),
        (BaikeItem(url="https://baike.baidu.com/help", title="x"), "no_canonical_url"),
        (BaikeItem(url=URL, title=None), "no_title"),
        (BaikeItem(url=URL, title="  "), "no_title"),
        (BaikeItem(url=URL, title="x", infobox=["a"]), "bad_infobox"),  # type: ignore[arg-type]
        ({"url": URL}, "no_title"),
    ],
)
def test_invalid_items_are_dropped_with_a_counted_reason(validate: ValidatePipeline, item, reason: str) -> None:
    with pytest.raises(DropItem):
        validate.process_item(item)
    assert validate.stats.get_value(f"baike/items/invalid/{reason}") == 1


def test_valid_items_pass(validate: ValidatePipeline) -> None:
    item = BaikeItem(url=URL, title="x")
    assert validate.process_item(item) is item


def test_clean_normalises_text_and_stamps_the_time() -> None:
    item = BaikeItem(
        url=URL,
        title=" 网络\u00a0爬虫 ",
        subtitle="（程序）",
        summary="一种\n  程序。[1] 它[2-3]很常见。",
        infobox={"中\u00a0\u00a0文\u00a0名": " 网络爬虫 ", "别 名": "蜘蛛[4]"},
    )
    CleanPipeline().process_item(item)
    assert item.title == "网络 爬虫"
    assert item.subtitle == "程序"
    assert item.summary == "一种 程序。 它很常见。"
    assert item.infobox == {"中文名": "网络爬虫", "别名": "蜘蛛"}
    assert item.crawled_at and item.crawled_at.endswith("+00:00")


def test_store_writes_one_record_per_url(redis_db, redis_server) -> None:
    store = RedisStorePipeline(redis_db, KEYS.items, batch_size=10, interval=0.05)
    first = {"url": URL, "title": "old"}
    store._write({URL: json.dumps(first)})
    store._write({URL: json.dumps({"url": URL, "title": "new"}), URL + "0": json.dumps({"url": URL + "0"})})
    assert redis_db.hlen(KEYS.items) == 2
    assert json.loads(redis_db.hget(KEYS.items, URL))["title"] == "new"


def test_store_gives_up_after_the_retry_window(redis_server) -> None:
    import redis

    unreachable = redis.Redis(port=1, socket_connect_timeout=0.1)
    store = RedisStorePipeline(unreachable, KEYS.items, batch_size=10, interval=0.05, retry_seconds=0.2)
    with pytest.raises(redis.ConnectionError):
        store._write({URL: "{}"})


def test_a_record_with_legacy_ids_stores_its_subview_form_with_it(redis_db, redis_server) -> None:
    from baike.pipelines import _alias_of

    with_ids = {"url": URL, "title": "t", "old_lemma_id": 568462, "sub_lemma_id": 19518466}
    subview = "https://baike.baidu.com/subview/568462/19518466.htm"
    assert _alias_of(with_ids) == subview
    assert _alias_of({**with_ids, "sub_lemma_id": None}) is None
    assert _alias_of({**with_ids, "old_lemma_id": True}) is None
    store = RedisStorePipeline(redis_db, KEYS.items, batch_size=10, interval=0.05, aliases_key=KEYS.aliases)
    store._write({URL: json.dumps(with_ids)}, {subview: URL})
    assert json.loads(redis_db.hget(KEYS.items, URL))["sub_lemma_id"] == 19518466
    assert redis_db.hgetall(KEYS.aliases) == {subview.encode(): URL.encode()}
