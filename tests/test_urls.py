"""Canonical entry URLs: every form Baike writes maps to one spelling."""

from __future__ import annotations

import pytest

from baike.urls import canonicalize, download_url, entry_name, normalize_origin, to_site_url

NAME = "%E7%BD%91%E7%BB%9C%E7%88%AC%E8%99%AB"  # 网络爬虫
ITEM = f"https://baike.baidu.com/item/{NAME}"
PAGE = "https://baike.baidu.com/item/%E7%BD%91%E7%BB%9C%E7%88%AC%E8%99%AB/5162711"
MIRROR = "http://127.0.0.1:8800"


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        # percent-encoded and raw names, with and without ids
        (f"https://baike.baidu.com/item/{NAME}", None, ITEM),
        ("https://baike.baidu.com/item/网络爬虫", None, ITEM),
        (f"https://baike.baidu.com/item/{NAME.lower()}", None, ITEM),
        ("https://baike.baidu.com/item/网络爬虫/5162711", None, PAGE),
        (f"https://baike.baidu.com/item/{NAME}/5162711/", None, PAGE),
        (f"https://baike.baidu.com/item/{NAME}/0", None, ITEM),
        (f"https://baike.baidu.com/item/{NAME}/05162711", None, PAGE),
        # tracking queries and fragments
        (f"https://baike.baidu.com/item/{NAME}/5162711?fromModule=lemma_inlink", None, PAGE),
        (f"https://baike.baidu.com/item/{NAME}?fr=aladdin", None, ITEM),
        (f"https://baike.baidu.com/item/{NAME}/5162711?fromtitle=spider&fromid=1", None, PAGE),
        (f"https://baike.baidu.com/item/{NAME}/5162711?force=1", None, PAGE),
        (f"https://baike.baidu.com/item/{NAME}/5162711#1_2", None, PAGE),
        # ?force=1 on a name is the disambiguation list page, its own URL; with an id it is the sense
        (f"https://baike.baidu.com/item/{NAME}?force=1", None, f"{ITEM}?force=1"),
        (f"/item/{NAME}?fromModule=x&force=1#top", "https://baike.baidu.com/", f"{ITEM}?force=1"),
        (f"https://baike.baidu.com/item/{NAME}/0?force=1", None, f"{ITEM}?force=1"),
        (f"https://baike.baidu.com/item/{NAME}?force=0", None, ITEM),
        (f"https://baike.baidu.com/item/{NAME}?forced=1", None, ITEM),
        (f"https://baike.baidu.com/item/{NAME}/0?fromModule=lemma_inlink#viewPageContent", None, ITEM),
        # scheme and host variants
        (f"http://baike.baidu.com/item/{NAME}/5162711", None, PAGE),
        (f"https://baike.baidu.com:443/item/{NAME}/5162711", None, PAGE),
        (f"//baike.baidu.com/item/{NAME}/5162711", "https://baike.baidu.com/item/x", PAGE),
        # relative forms
        (f"/item/{NAME}/5162711", "https://baike.baidu.com/item/x/1", PAGE),
        ("/item/网络爬虫", "https://baike.baidu.com/", ITEM),
        (f"/item/{NAME}/5162711", f"{MIRROR}/item/x/1", PAGE),
        # legacy forms
        ("https://baike.baidu.com/view/12345.htm", None, "https://baike.baidu.com/view/12345.htm"),
        ("/view/12345.html#3", "https://baike.baidu.com/", "https://baike.baidu.com/view/12345.htm"),
        (
            "/subview/568462/19518465.htm#viewPageContent",
            "https://baike.baidu.com/",
            "https://baike.baidu.com/subview/568462/19518465.htm",
        ),
        # names that need escaping are spelled one way
        ("https://baike.baidu.com/item/C++", None, "https://baike.baidu.com/item/C%2B%2B"),
        ("https://baike.baidu.com/item/C%2b%2b", None, "https://baike.baidu.com/item/C%2B%2B"),
        ("https://baike.baidu.com/item/Guido van Rossum", None, "https://baike.baidu.com/item/Guido%20van%20Rossum"),
        (
            "https://baike.baidu.com/item/Guido%20van%20Rossum/7/",
            None,
            "https://baike.baidu.com/item/Guido%20van%20Rossum/7",
        ),
        # the mirror's origin counts as Baike
        (f"{MIRROR}/item/{NAME}/5162711?fromModule=lemma_inlink", None, PAGE),
    ],
)
def test_entry_forms_map_to_one_url(url: str, base: str | None, expected: str) -> None:
    assert canonicalize(url, base=base, mirror=MIRROR) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://baike.baidu.com/",
        "https://baike.baidu.com/help",
        "https://baike.baidu.com/usercenter/lemmas",
        "https://baike.baidu.com/planet/talk?lemmaId=1",
        "https://baike.baidu.com/historylist/%E7%BD%91/1",
        "https://baike.baidu.com/error.html?status=404",
        "https://baike.baidu.com/anticrawl/captchaview?x=1",
        "https://wappass.baidu.com/static/captcha/tuxing.html",
        "https://bkimg.cdn.bcebos.com/pic/abc.jpg",
        "https://www.baidu.com/item/x",
        "https://example.com/item/x/1",
        "http://127.0.0.1:9999/item/x/1",
        "ftp://baike.baidu.com/item/x",
        "javascript:void(0)",
        "mailto:someone@baidu.com",
        "https://baike.baidu.com/item/",
        "https://baike.baidu.com/item/%FF%FE",
        "https://baike.baidu.com/item/a%0Ab",
        "https://baike.baidu.com/item/x/abc",
        "https://baike.baidu.com/item/x/1/2",
        "https://baike.baidu.com:8080/item/x",
        "https://[::1",
        "",
        "https://baike.baidu.com/item/" + "a" * 3000,
    ],
)
def test_non_entries_are_never_followed(url: str) -> None:
    assert canonicalize(url, mirror=MIRROR) is None


def test_non_string_input_is_refused() -> None:
    assert canonicalize(None) is None  # type: ignore[arg-type]


def test_download_url_moves_only_the_origin() -> None:
    assert download_url(PAGE, None) == PAGE
    assert download_url(PAGE, MIRROR) == f"{MIRROR}/item/{NAME}/5162711"
    assert canonicalize(download_url(PAGE, MIRROR), mirror=MIRROR) == PAGE
    assert to_site_url(f"{MIRROR}/item/{NAME}/5162711", MIRROR) == PAGE


def test_download_url_of_any_url_on_baike_is_the_mirror_with_urlsplits_path_and_query() -> None:
    """The shortcut for canonical URLs gives what cutting the URL with urlsplit gives, for anything."""
    from urllib.parse import urlsplit

    tails = [
        "/item/x",
        "/item/x?force=1",
        "/item/x?",
        "/item/x#f",
        "/item/x?a#",
        "/item/x ",
        "/item/\tx",
        "/item/x\n",
        "/item/x;p?q",
        "/item/名",
        ":443/item/x",
        "",
        "/",
        "//evil/x",
        "/item/x?a=1&b=2",
    ]
    for tail in tails:
        url = "https://baike.baidu.com" + tail
        parts = urlsplit(url)
        assert download_url(url, MIRROR) == MIRROR + parts.path + ("?" + parts.query if parts.query else ""), tail


def test_mirror_setting_is_checked() -> None:
    assert normalize_origin("http://127.0.0.1:8800/") == MIRROR
    assert normalize_origin("") is None
    with pytest.raises(ValueError):
        normalize_origin("127.0.0.1:8800")


def test_entry_name_decodes() -> None:
    assert entry_name(PAGE) == "网络爬虫"
    assert entry_name("https://baike.baidu.com/view/1.htm") is None


@pytest.mark.parametrize(
    ("url", "base"),
    [("https://[::1/item/x", None), ("/item/x", "http://[::1"), ("/item/\ud800", "https://baike.baidu.com/")],
)
def test_malformed_input_gives_none_not_an_exception(url: str, base: str | None) -> None:
    assert canonicalize(url, base=base) is None


FORMS = [
    f"https://baike.baidu.com/item/{NAME}/05162711?fromModule=lemma_inlink#x",
    f"/item/{NAME}?fromModule=x&force=1#top",
    "https://baike.baidu.com/item/C++",
    "https://baike.baidu.com/item/C%2b%2b",
    "/item/%E3%80%80x%E3%80%80/0",
    "https://baike.baidu.com/item/Guido van Rossum/7/",
    "/view/12345.html#3",
    "/subview/568462/019518465.htm",
    f"{MIRROR}/item/{NAME}/5162711?force=1",
    f"{MIRROR}/item/a%25b",
    "/item/a%2Fb",
    "/item/x;y",
    "/item/x?force=1&a",
]


@pytest.mark.parametrize("form", FORMS)
def test_a_canonical_url_and_its_download_url_are_recognised_as_canonical(form: str) -> None:
    """canonicalize() answers a canonical URL it returned lately (and that URL on the mirror)
    without parsing it again: only right if it is idempotent, checked here with cold caches."""
    from baike import urls

    def cold(url: str, base: str | None = None, mirror: str | None = None) -> str | None:
        urls._RECENT_CANONICAL.clear()
        urls._canonicalize_absolute.cache_clear()
        return canonicalize(url, base=base, mirror=mirror)

    canonical = cold(form, "https://baike.baidu.com/", MIRROR)
    assert canonical is not None and canonical.startswith("https://baike.baidu.com/")
    assert cold(canonical) == canonical and cold(download_url(canonical, MIRROR), mirror=MIRROR) == canonical
    # warm: remembered, and so recognised on the mirror too
    assert canonicalize(form, base="https://baike.baidu.com/", mirror=MIRROR) == canonical
    assert canonicalize(canonical) == canonical
    assert canonicalize(download_url(canonical, MIRROR), mirror=MIRROR) == canonical
    # a form that is not canonical is never taken for one, warm or cold
    assert canonicalize("https://baike.baidu.com/item/C++") == cold("https://baike.baidu.com/item/C++")
    assert canonicalize(f"{MIRROR}/item/C++", mirror=MIRROR) == "https://baike.baidu.com/item/C%2B%2B"
    # the mirror's URLs are Baike's only on the mirror
    assert canonicalize(download_url(canonical, MIRROR)) is None
