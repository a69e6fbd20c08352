"""The baike spider: seeds, parsing into items and requests."""

from __future__ import annotations

import json
import re

import pytest
from scrapy import Request
from scrapy.http import HtmlResponse
from scrapy.utils.test import get_crawler

from baike.errors import DeadLetter
from baike.frontier.queue import BadSeed, LeasedQueue
from baike.items import BaikeItem
from baike.keys import CrawlKeys
from baike.spiders.baike import MAX_SEED_BYTES, BaikeSpider
from tests.frontier_helpers import PROJECT_SETTINGS

KEYS = CrawlKeys.for_spider("baike")
MIRROR = "http://127.0.0.1:8800"
PAGE = "https://baike.baidu.com/item/%E7%BD%91%E7%BB%9C%E7%88%AC%E8%99%AB/5162711"


@pytest.fixture()
def spider(redis_db, redis_server) -> BaikeSpider:
    crawler = get_crawler(BaikeSpider, {**PROJECT_SETTINGS, "REDIS_URL": redis_server.url, "BAIKE_MIRROR": MIRROR})
    return BaikeSpider.from_crawler(crawler)


@pytest.mark.parametrize(
    ("seed", "url", "meta", "priority"),
    [
        ("https://baike.baidu.com/item/网络爬虫/5162711", PAGE, {}, 0),
        (f"{PAGE}?fromModule=lemma_inlink#1", PAGE, {}, 0),
        (f"  {MIRROR}/item/%E7%BD%91%E7%BB%9C%E7%88%AC%E8%99%AB/5162711\n", PAGE, {}, 0),
        (json.dumps({"url": PAGE, "meta": {"job": "a"}, "priority": 5}), PAGE, {"job": "a"}, 5),
    ],
)
def test_good_seeds_become_entry_requests(
    spider: BaikeSpider, redis_db, seed: str, url: str, meta: dict, priority: int
) -> None:
    request = spider.request_from_seed(seed.encode())
    assert request.url == f"{MIRROR}{url.removeprefix('https://baike.baidu.com')}"
    assert request.meta == meta and request.priority == priority
    assert request.callback == spider.parse and request.errback is None, "failures are the frontier's"
    assert not request.dont_filter, "a seed already crawled is not crawled again"


@pytest.mark.parametrize(
    ("seed", "reason"),
    [
        (b"not a url", "not a Baike entry URL"),
        (b"https://example.com/item/x", "not a Baike entry URL"),
        (b"https://baike.baidu.com/help", "not a Baike entry URL"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"{bad json", "looks like JSON"),
        (b'["https://baike.baidu.com/item/x"]', "not a Baike entry URL"),
        (b'{"meta": {}}', 'string "url"'),
        (b'{"url": 5}', 'string "url"'),
        (b'{"url": "https://baike.baidu.com/item/x", "meta": []}', '"meta"'),
        (b'{"url": "https://baike.baidu.com/item/x", "priority": "high"}', '"priority"'),
        (b'{"url": "https://baike.baidu.com/item/x", "callback": "close"}', "unknown fields"),
        (b"https://baike.baidu.com/item/" + b"x" * MAX_SEED_BYTES, "longer than"),
    ],
)
def test_bad_seeds_are_refused_with_the_reason(spider: BaikeSpider, seed: bytes, reason: str) -> None:
    with pytest.raises(BadSeed, match=re.escape(reason)):
        spider.request_from_seed(seed)


@pytest.mark.parametrize(
    ("extra", "accepted"),
    [((), False), (("job",), True)],
)
def test_json_seeds_meet_the_request_schema(redis_db, redis_server, extra: tuple, accepted: bool) -> None:
    """A seed's meta keys are held to the frontier's allowlist; bad seeds are dead-lettered."""
    settings = {**PROJECT_SETTINGS, "REDIS_URL": redis_server.url, "SCHEDULER_EXTRA_META_KEYS": list(extra)}
    spider = BaikeSpider.from_crawler(get_crawler(BaikeSpider, settings))
    queue = LeasedQueue(redis_db, spider, KEYS.requests)
    redis_db.rpush(KEYS.start_urls, json.dumps({"url": PAGE, "meta": {"job": "a"}}))
    taken = queue.take("n1", 1, 30)
    if accepted:
        assert [(r.url, r.meta["job"]) for _, r in taken.seeds] == [(PAGE, "a")]
    else:
        assert taken.bad_seeds == [
            "bad seed: meta key 'job' is not allowed (add it to SCHEDULER_EXTRA_META_KEYS to carry it)"
        ]
        (record,) = [json.loads(raw) for raw in redis_db.lrange(KEYS.dead, 0, -1)]
        assert record["reason"] == taken.bad_seeds[0] and json.loads(record["raw"])["url"] == PAGE


ENTRY_HTML = """<html><head><title>网络爬虫_百度百科</title></head><body>
<dd class="lemmaWgt-lemmaTitle-title"><h1>网络爬虫</h1><h2>（程序）</h2></dd>
<div class="lemma-summary"><div class="para">网络爬虫是一种程序。<sup>[1]</sup></div></div>
<a href="/item/%E6%90%9C%E7%B4%A2%E5%BC%95%E6%93%8E/1?fromModule=lemma_inlink">搜索引擎</a>
<a href="https://baike.baidu.com/item/Python">Python</a><a href="/help">帮助</a>
<script>lemmaId:"5162711"</script></body></html>"""


def test_an_entry_page_gives_one_item_and_its_entry_links(spider: BaikeSpider) -> None:
    url = f"{MIRROR}/item/%E7%BD%91%E7%BB%9C%E7%88%AC%E8%99%AB/5162711"
    response = HtmlResponse(url, body=ENTRY_HTML.encode(), encoding="utf-8", request=Request(url))
    output = list(spider.parse(response))
    items = [element for element in output if isinstance(element, BaikeItem)]
    requests = [element for element in output if isinstance(element, Request)]
    assert len(items) == 1
    assert items[0].url == PAGE and items[0].title == "网络爬虫" and items[0].subtitle == "程序"
    assert items[0].summary == "网络爬虫是一种程序。"
    assert [r.url for r in requests] == [
        f"{MIRROR}/item/%E6%90%9C%E7%B4%A2%E5%BC%95%E6%93%8E/1",
        f"{MIRROR}/item/Python",
    ]


def test_captcha_and_error_pages_never_become_items(spider: BaikeSpider) -> None:
    for body in ("<html><title>百度安全验证</title></html>", "<html><title>百度百科</title><p>页面不存在</p></html>"):
        response = HtmlResponse(f"{MIRROR}/item/x/1", body=body.encode(), encoding="utf-8")
        assert list(spider.parse(response)) == []


def test_a_parser_bug_dead_letters_the_page_and_is_counted(spider: BaikeSpider, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise KeyError("lemmaTitle")

    monkeypatch.setattr("baike.spiders.baike.parse_page", broken)
    response = HtmlResponse(f"{MIRROR}/item/x/1", body=ENTRY_HTML.encode(), encoding="utf-8")
    with pytest.raises(DeadLetter, match=re.escape("parser failed: KeyError('lemmaTitle')")):
        list(spider.parse(response))
    assert spider.crawler.stats.get_value("baike/pages/parser_failed") == 1


# ------------------------------------------------- real Baike, round 2 (issue 14)

GUO = "%E9%83%AD%E6%96%87%E6%99%AF"  # 郭文景
LIST_HTML = f"""<html><head><title>郭文景_百度百科</title></head><body>
<a href="/item/史记·2016?fr=navbar">史记·2016</a><a href="/view/10812277.htm">多义词</a>
<dd class="lemmaWgt-lemmaTitle-title"><h1>郭文景</h1></dd>
<div class="lemmaWgt-subLemmaListTitle">这是一个多义词，请在下列义项上选择浏览（共2个义项）</div>
<ul class="para-list"><li><div class="para"><a href="/item/{GUO}/19133243" data-lemmaid="19133243">郭文景：作曲家</a></div></li>
<li><div class="para"><a href="/item/{GUO}/19518465" data-lemmaid="19518465">郭文景：学生</a></div></li></ul></body></html>"""


def parsed(spider: BaikeSpider, url: str, html: str, meta: dict | None = None) -> tuple[list[BaikeItem], list[Request]]:
    response = HtmlResponse(url, body=html.encode(), encoding="utf-8", request=Request(url, meta=meta))
    output = list(spider.parse(response))
    return [e for e in output if isinstance(e, BaikeItem)], [e for e in output if isinstance(e, Request)]


def test_a_disambiguation_list_is_no_item_and_its_senses_carry_their_descriptions(spider: BaikeSpider) -> None:
    items, requests = parsed(spider, f"{MIRROR}/item/{GUO}?force=1", LIST_HTML)
    assert items == []
    assert [(r.url, r.meta.get("baike_sense_label")) for r in requests] == [
        (f"{MIRROR}/item/{GUO}/19133243", "作曲家"),
        (f"{MIRROR}/item/{GUO}/19518465", "学生"),
    ], "the navbar's special page and the help page are in BAIKE_DENY_URLS"
    assert spider.crawler.stats.get_value("baike/pages/list") == 1
    # served at the bare name (no default sense), the list marks its ?force=1 form seen;
    # its senses were handed to the frontier already: this node drops them before a Request
    _, requests = parsed(spider, f"{MIRROR}/item/{GUO}", LIST_HTML)
    assert [(r.url, r.meta) for r in requests] == [(f"{MIRROR}/item/{GUO}?force=1", {"_baike_seen_only": True})]
    assert spider.crawler.stats.get_value("baike/links/known") == 2


def test_known_links_are_dropped_before_a_request_is_built_unless_the_cache_is_off(redis_db, redis_server) -> None:
    url = f"{MIRROR}/item/{GUO}?force=1"
    for slots, second in ((1024, []), (0, [f"{MIRROR}/item/{GUO}/19133243", f"{MIRROR}/item/{GUO}/19518465"])):
        settings = {
            **PROJECT_SETTINGS,
            "REDIS_URL": redis_server.url,
            "BAIKE_MIRROR": MIRROR,
            "BAIKE_KNOWN_LINKS": slots,
        }
        spider = BaikeSpider.from_crawler(get_crawler(BaikeSpider, settings))
        assert len(parsed(spider, url, LIST_HTML)[1]) == 2
        assert [r.url for r in parsed(spider, url, LIST_HTML)[1]] == second


SENSE_HTML = """<html><head><title>郭文景_百度百科</title></head><body>
<dd class="lemmaWgt-lemmaTitle-title"><h1>郭文景</h1></dd><div class="lemma-summary"><div class="para">作曲家。</div></div>
<script>nslog().setGlobal({lemmaId: "568462", newLemmaId: "19133243", subLemmaId: "19518466"});</script></body></html>"""


def test_a_sense_without_a_label_takes_the_lists_and_marks_its_other_forms(spider: BaikeSpider) -> None:
    url = f"{MIRROR}/item/{GUO}/19133243"
    (item,), requests = parsed(spider, url, SENSE_HTML, meta={"baike_sense_label": "作曲家"})
    assert (item.subtitle, item.lemma_id, item.old_lemma_id, item.sub_lemma_id) == (
        "作曲家",
        19133243,
        568462,
        19518466,
    )
    assert spider.crawler.stats.get_value("baike/pages/subtitle_from_list") == 1
    # its /subview/ form is only marked seen in the frontier, never downloaded
    assert [(r.url, r.meta) for r in requests] == [
        (f"{MIRROR}/subview/568462/19518466.htm", {"_baike_seen_only": True})
    ]


def test_pages_are_read_in_the_charset_the_server_declares(spider: BaikeSpider) -> None:
    url = f"{MIRROR}/item/{GUO}/19133243"
    html = SENSE_HTML.replace("作曲家。", "作曲家，生于四川。")
    response = HtmlResponse(
        url, body=html.encode("gb18030"), headers={"Content-Type": "text/html; charset=GBK"}, request=Request(url)
    )
    (item,) = [e for e in spider.parse(response) if isinstance(e, BaikeItem)]
    assert (item.title, item.summary) == ("郭文景", "作曲家，生于四川。")


@pytest.mark.parametrize("url", ["https://baike.baidu.com/item/史记·2016", f"{MIRROR}/view/340519.htm"])
def test_denied_pages_are_refused_as_seeds_and_never_stored(spider: BaikeSpider, url: str) -> None:
    with pytest.raises(BadSeed, match="BAIKE_DENY_URLS"):
        spider.request_from_seed(url.encode())
    items, requests = parsed(spider, url.replace("https://baike.baidu.com", MIRROR), SENSE_HTML)
    assert (items, requests) == ([], [])
    assert spider.crawler.stats.get_value("baike/pages/denied") == 1


def test_the_deny_list_is_a_setting(redis_db, redis_server) -> None:
    settings = {
        **PROJECT_SETTINGS,
        "REDIS_URL": redis_server.url,
        "BAIKE_DENY_URLS": "/item/%E9%83%AD%E6%96%87%E6%99%AF/19518465",
    }
    spider = BaikeSpider.from_crawler(get_crawler(BaikeSpider, settings))
    _, requests = parsed(spider, f"https://baike.baidu.com/item/{GUO}?force=1", LIST_HTML)
    assert [r.url for r in requests] == [
        "https://baike.baidu.com/item/%E5%8F%B2%E8%AE%B0%C2%B72016",
        "https://baike.baidu.com/view/10812277.htm",
        f"https://baike.baidu.com/item/{GUO}/19133243",
    ]


def test_a_failover_makes_the_spider_forget_the_links_it_handed_over(spider: BaikeSpider) -> None:
    from baike.failover import Failover, redis_failover

    url = f"{MIRROR}/item/{GUO}?force=1"
    assert len(parsed(spider, url, LIST_HTML)[1]) == 2
    assert parsed(spider, url, LIST_HTML)[1] == []
    spider.crawler.signals.send_catch_log(redis_failover, failover=Failover("a:1", "b:2", counted=True))
    assert len(parsed(spider, url, LIST_HTML)[1]) == 2, "the new master may lack them: they go to the frontier again"
