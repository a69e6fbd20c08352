"""The replica's round-2 cases (issue 14): list pages, star pages, empty summaries, GBK, ids, help pages.

Each case is checked to exist on the 300-entry site with seed 7 and on the
default test site, then served over HTTP by one replica (seed 7) and read back
with the plain parser of tests/test_replica.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
from parsel import Selector

from baike.urls import canonicalize
from replica.layouts import HTML_GBK, HTML_UTF8, Renderer
from replica.model import (
    LAYOUT_2017,
    LAYOUT_2021,
    LAYOUT_2023,
    NO_TARGET,
    clean_text,
    is_list_target,
    list_target,
    list_word,
)
from replica.site import HELP_PAGES, NAVBAR_SPECIAL, SPECIAL_PAGES, USERBAR_SPECIAL, Site
from tests.test_replica import (
    ENTRIES,
    SEED,
    Replica,
    clean,
    decode_body,
    hrefs,
    list_senses,
    page_kind,
    parse_page,
    start_replica,
)

CASE_SEED = 7
SEEDS = (CASE_SEED, SEED)
ORIGIN = "https://baike.baidu.com"


@pytest.fixture(scope="module", params=SEEDS, ids=lambda seed: f"seed{seed}")
def any_site(request: pytest.FixtureRequest) -> Site:
    return Site(ENTRIES, request.param)


@pytest.fixture(scope="module")
def site() -> Site:
    return Site(ENTRIES, CASE_SEED)


@pytest.fixture(scope="module")
def server() -> Iterator[Replica]:
    served = start_replica("--no-samples", seed=CASE_SEED)
    yield served
    assert served.stop() == 0


def words(site: Site) -> range:
    return range(len(site.word_names))


def entries(site: Site) -> range:
    return range(site.entry_count)


def subview_bars(site: Site) -> list[int]:
    """2017 polysemant senses whose bar links another sense by /subview/."""
    return [
        i
        for i in entries(site)
        if site.entry(i).layout == LAYOUT_2017
        and any(link is not None and link.path.startswith("/subview/") for link in site.entry(i).sense_links)
    ]


# What each case is, as a finder over a site: its pages (entries) or words.
CASES: dict[str, Callable[[Site], list[int]]] = {
    "list page of a word with a default": lambda s: [w for w in words(s) if s.word_count[w] > 1 and s.has_default(w)],
    "word without a default sense": lambda s: [w for w in words(s) if not s.has_default(w)],
    "star sense page": lambda s: [i for i in entries(s) if s.entry(i).star],
    "empty summary, 2017": lambda s: [
        i for i in entries(s) if s.entry(i).lead_in_body and s.entry(i).layout == LAYOUT_2017
    ],
    "empty summary, 2021": lambda s: [
        i for i in entries(s) if s.entry(i).lead_in_body and s.entry(i).layout == LAYOUT_2021
    ],
    "GBK page": lambda s: [i for i in entries(s) if s.charset_of(i) == "GBK"],
    "subview link in a sense bar": subview_bars,
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_case_appears_and_is_reachable(any_site: Site, case: str) -> None:
    found = CASES[case](any_site)
    assert found, case
    key = any_site.answer_key()
    if case.startswith(("list", "word")):
        reachable = set(any_site.reachable_lists())
        assert reachable & set(found), case
    else:
        assert any(any_site.canonical_url(index) in key for index in found), case


def test_case_shares_are_about_right() -> None:
    site = Site(6000, 1)
    polysemants = [w for w in words(site) if site.word_count[w] > 1]
    no_default = [w for w in polysemants if not site.has_default(w)]
    assert 0.15 < len(no_default) / len(polysemants) < 0.35
    pages = [site.entry(i) for i in range(0, 6000, 2)]
    senses_2017 = [e for e in pages if e.layout == LAYOUT_2017 and len(e.senses) > 1]
    assert 0.2 < sum(e.star for e in senses_2017) / len(senses_2017) < 0.5
    old = [e for e in pages if e.layout != LAYOUT_2023]
    assert 0.15 < sum(e.lead_in_body for e in old) / len(old) < 0.25
    assert not any(e.star or e.lead_in_body or e.charset != "utf-8" for e in pages if e.layout == LAYOUT_2023)
    layout_2017 = [e for e in pages if e.layout == LAYOUT_2017]
    assert 0.09 < sum(e.charset == "GBK" for e in layout_2017) / len(layout_2017) < 0.16
    assert not any(e.charset == "GBK" for e in pages if e.layout == LAYOUT_2021)


# ---------------------------------------------------------------- help and special pages


def test_help_ids_are_baikes_and_never_generated(any_site: Site) -> None:
    assert any_site.help_ids == (10812277, 340519, 10812319, 10811633)
    generated = set(any_site.entry_id) | set(any_site.entry_sub) | set(any_site.word_old)
    generated |= {syn_id for syn_id, _target in any_site.synonyms.values()}
    assert not generated & set(any_site.help_ids)
    assert not set(SPECIAL_PAGES) & (set(any_site.word_names) | set(any_site.synonyms))


NON_ENTRY_TARGETS = {
    "help 多义词": "/view/10812277.htm",
    "help 义项": "/view/340519.htm",
    "help 锁定": "/view/10812319.htm",
    "help in the footer": "/view/10811633.htm",
    "navbar special, as linked": f"/item/{quote(NAVBAR_SPECIAL)}?fr=navbar",
    "navbar special, raw": f"/item/{NAVBAR_SPECIAL}",
    "userbar special": f"/item/{quote(USERBAR_SPECIAL)}",
    "userbar special, raw with /0": f"/item/{USERBAR_SPECIAL}/0",
}


@pytest.mark.parametrize("label", list(NON_ENTRY_TARGETS))
def test_help_and_special_pages_answer_200_non_entry(server: Replica, site: Site, label: str) -> None:
    target = NON_ENTRY_TARGETS[label]
    status, headers, body = server.get(quote(target, safe="/?=&%"))
    assert status == 200 and headers["content-type"] == HTML_UTF8
    html = body.decode("utf-8")
    assert page_kind(html) == "other" and parse_page(html) is None
    assert "lemmaWgt-lemmaTitle-title" not in html and "J-lemma-title" not in html and "PAGE_DATA" not in html
    title = re.search(r"<title>([^<]+)</title>", html).group(1)
    path = canonicalize(target, base=ORIGIN)
    assert path is not None, "a crawler sees an entry-like URL: its deny list must drop it"
    assert title == site.help_paths[path.removeprefix(ORIGIN)] and not title.endswith("_百度百科")
    assert site.resolve_url(target, base=ORIGIN) == NO_TARGET


def test_help_paths_cover_the_help_ids_and_specials(site: Site) -> None:
    assert set(site.help_paths) == {f"/view/{number}.htm" for number, _title in HELP_PAGES} | {
        f"/item/{quote(name, safe='')}" for name in SPECIAL_PAGES
    }
    assert site.route(f"/item/{quote(NAVBAR_SPECIAL)}/123").kind == "error-redirect"


@pytest.mark.parametrize("layout", [LAYOUT_2017, LAYOUT_2021, LAYOUT_2023])
def test_chrome_links_to_the_non_entry_pages(site: Site, layout: int) -> None:
    renderer = Renderer(site)
    index = next(i for i in entries(site) if site.entry(i).layout == layout and site.is_polysemant(i))
    links = set(hrefs(renderer.entry_text(index)))
    assert "/view/10811633.htm" in links  # the footer of every layout
    if layout == LAYOUT_2023:
        return
    assert {f"/item/{NAVBAR_SPECIAL}?fr=navbar", f"/item/{USERBAR_SPECIAL}"} <= links
    assert {"/view/10812277.htm", "/view/340519.htm"} <= links  # the polysemant header
    assert ("/view/10812319.htm" in links) == (layout == LAYOUT_2017)  # the lock button


# ---------------------------------------------------------------- list pages


def list_word_with_default(site: Site) -> int:
    return next(w for w in words(site) if site.word_count[w] > 1 and site.has_default(w))


def no_default_word(site: Site) -> int:
    return next(w for w in words(site) if not site.has_default(w))


def check_list_page(site: Site, word: int, html: str) -> None:
    """The list page's markup and links, read with the plain parser."""
    sel = Selector(text=html)
    name, enc = site.word_names[word], site.enc(word)
    senses = site.word_senses[word]
    assert page_kind(html) == "list" and parse_page(html) is None
    assert f"<title>{name}_百度百科</title>" in html
    assert sel.css("dd.lemmaWgt-lemmaTitle-title > h1::text").get() == name
    assert (
        sel.css("div.lemmaWgt-subLemmaListTitle::text").get()
        == f"这是一个多义词，请在下列义项上选择浏览（共{len(senses)}个义项）"
    )
    assert list_senses(html) == [
        (f"/item/{enc}/{site.entry_id[s]}", site.entry_id[s], f"{name}：{site.subtitle_of(s)}") for s in senses
    ]
    assert "newLemmaId" not in html and not sel.css("div.lemma-summary, div.basic-info, ul.polysemantList-wrapper")
    linked = {site.resolve_url(href, base=site.list_url(word)) for href in hrefs(html)} - {NO_TARGET}
    assert linked == set(site.list_targets(word)) >= set(senses)


LIST_FORMS: dict[str, tuple[Callable[[Site], int], Callable[[Site, int], str], int]] = {
    # label: (which word, request target, status): 200 is the list page itself
    "?force=1 of a polysemant": (list_word_with_default, lambda s, w: f"/item/{s.enc(w)}?force=1", 200),
    "/0?force=1 of a polysemant": (list_word_with_default, lambda s, w: f"/item/{s.enc(w)}/0?force=1", 200),
    "?force=1 among other params": (list_word_with_default, lambda s, w: f"/item/{s.enc(w)}?fr=aladdin&force=1", 200),
    "bare name of a polysemant (default sense)": (list_word_with_default, lambda s, w: f"/item/{s.enc(w)}", 302),
    "no default: bare name": (no_default_word, lambda s, w: f"/item/{s.enc(w)}", 200),
    "no default: /0": (no_default_word, lambda s, w: f"/item/{s.enc(w)}/0?fromModule=lemma_inlink", 200),
    "no default: trailing slash": (no_default_word, lambda s, w: f"/item/{s.enc(w)}/", 200),
    "no default: ?force=1": (no_default_word, lambda s, w: f"/item/{s.enc(w)}?force=1", 200),
    "no default: /view/": (no_default_word, lambda s, w: f"/view/{s.word_old[w]}.htm", 302),
    "single sense: ?force=1": (
        lambda s: next(w for w in words(s) if s.word_count[w] == 1),
        lambda s, w: f"/item/{s.enc(w)}?force=1",
        302,
    ),
}


@pytest.mark.parametrize("label", list(LIST_FORMS))
def test_list_page_forms(server: Replica, site: Site, label: str) -> None:
    pick, form, status = LIST_FORMS[label]
    word = pick(site)
    target = form(site, word)
    got, headers, body = server.get(target)
    assert got == status
    landing = site.resolve_url(target, base=ORIGIN)
    if status == 200:
        check_list_page(site, word, decode_body(headers["content-type"], body))
        assert landing == list_target(word) and list_word(landing) == word
        assert site.route(target.partition("?")[0], target.partition("?")[2]).page == f"/item/{site.enc(word)}"
    elif not site.has_default(word):
        assert headers["location"] == f"{ORIGIN}/item/{site.enc(word)}" and landing == list_target(word)
    else:
        assert headers["location"] == site.canonical_url(site.word_first[word]) and landing == site.word_first[word]


def test_list_urls_are_what_the_crawler_canonicalizes(site: Site) -> None:
    for word in (list_word_with_default(site), no_default_word(site)):
        assert canonicalize(f"/item/{site.word_names[word]}?force=1", base=ORIGIN) == site.list_url(word)
        assert site.resolve_url(site.list_url(word)) == list_target(word)
        assert site.targets(list_target(word)) == site.list_targets(word)


def link_form(href: str) -> str:
    """ "view", "zero" (``/item/<name>/0``), "force" (``?force=1``) or "bare" (``/item/<name>``)."""
    if "/view/" in href:
        return "view"
    if "force=1" in href:
        return "force"
    path = href.split("#")[0].split("?")[0].rstrip("/")
    return "zero" if path.endswith("/0") else "bare"


def test_links_without_a_sense_id_land_on_the_list(site: Site) -> None:
    """Every link form without a sense id to a word without a default targets its list page."""
    renderer = Renderer(site)
    seen = set()
    for index in entries(site):
        base = site.canonical_url(index)
        for href in hrefs(renderer.entry_text(index)):
            target = site.resolve_url(href, base=base)
            if not is_list_target(target):
                continue
            word = list_word(target)
            canonical = canonicalize(href, base=base)
            if site.has_default(word):
                assert canonical == site.list_url(word), href
            elif link_form(href) == "view":
                assert canonical == f"{ORIGIN}/view/{site.word_old[word]}.htm", href
            else:
                assert canonical in (site.list_url(word), site.list_url(word).removesuffix("?force=1")), href
            seen.add((site.has_default(word), link_form(href)))
    assert {(True, "force"), (False, "force"), (False, "bare"), (False, "view"), (False, "zero")} <= seen


def test_list_pages_yield_no_record_but_their_senses(site: Site) -> None:
    key = site.answer_key()
    lists = site.reachable_lists()
    assert lists
    for word in lists:
        assert site.list_url(word) not in key
        for sense in site.word_senses[word]:
            assert site.canonical_url(sense) in key
    order = {index: n for n, index in enumerate(site.reachable())}
    assert all(index >= 0 for index in order)


# ---------------------------------------------------------------- star pages and empty summaries


def test_star_pages(server: Replica, site: Site) -> None:
    stars = CASES["star sense page"](site)
    for index in stars:
        status, headers, body = server.get(site.entry_path(index))
        html = decode_body(headers["content-type"], body)
        sel = Selector(text=html)
        subtitle = site.subtitle_of(index)
        assert status == 200 and '<div class="body-wrapper feature feature_lemma starSmall">' in html
        assert (
            not sel.css("dd.lemmaWgt-lemmaTitle-title > h2")
            and f"（{subtitle}）" not in sel.css("dd.lemmaWgt-lemmaTitle-title").get()
        )
        assert f"<title>{site.entry_name(index)}（{subtitle}）_百度百科</title>" in html
        assert sel.css("ul.polysemantList-wrapper li span.selected::text").get() == subtitle
        assert site.expected(index)["subtitle"] == subtitle
        assert parse_page(html) == site.expected(index)
    plain = next(
        i
        for i in entries(site)
        if site.is_polysemant(i) and not site.entry(i).star and site.entry(i).layout == LAYOUT_2017
    )
    html = Renderer(site).entry_text(plain)
    assert '<div class="body-wrapper">' in html and "starSmall" not in html and "<h2>（" in html


@pytest.mark.parametrize("layout", [LAYOUT_2017, LAYOUT_2021])
def test_empty_summary_blocks_lead_with_a_paragraph(server: Replica, site: Site, layout: int) -> None:
    found = [
        i
        for i in CASES["empty summary, 2017"](site) + CASES["empty summary, 2021"](site)
        if site.entry(i).layout == layout
    ]
    for index in found[:8]:
        status, headers, body = server.get(site.entry_path(index))
        html = decode_body(headers["content-type"], body)
        sel = Selector(text=html)
        entry = site.entry(index)
        assert status == 200
        block = sel.css("div.lemma-summary")
        assert len(block) == 1 and not block.css("div.para") and not block.xpath("string()").get().strip()
        paras = sel.css("div.main-content div.para")
        lead = paras[: len(entry.summary)]
        assert [clean(p) for p in lead] == [clean_text(p) for p in entry.summary]
        # the same markup as section paragraphs, right after the catalog, before the first heading
        assert {p.attrib["class"] for p in lead} == {paras[-1].attrib["class"]}
        assert lead[0].xpath("preceding-sibling::*[1]/@class").get() == "lemmaWgt-lemmaCatalog"
        assert "anchor-list" in lead[-1].xpath("following-sibling::*[1]/@class").get()
        expected = site.expected(index)
        assert expected["summary"] == clean_text(entry.summary[0])
        assert parse_page(html) == expected
    assert found


# ---------------------------------------------------------------- GBK pages


def test_gbk_pages(server: Replica, site: Site) -> None:
    renderer = Renderer(site)
    gbk = CASES["GBK page"](site)
    for index in gbk:
        status, headers, body = server.get(site.entry_path(index))
        assert status == 200 and headers["content-type"] == HTML_GBK == "text/html; charset=GBK"
        assert body == renderer.entry_page(index) and renderer.entry_response(index)[1] == HTML_GBK
        html = body.decode("gb18030")
        assert "<meta charset" not in html.lower() and site.entry(index).layout == LAYOUT_2017
        with pytest.raises(UnicodeDecodeError):
            body.decode("utf-8")
        assert parse_page(decode_body(headers["content-type"], body)) == site.expected(index)
    utf8 = next(i for i in entries(site) if site.entry(i).layout == LAYOUT_2017 and i not in gbk)
    status, headers, body = server.get(site.entry_path(utf8))
    assert headers["content-type"] == HTML_UTF8 and b'<meta charset="UTF-8">' in body


# ---------------------------------------------------------------- ids and /subview/


@pytest.mark.parametrize("layout", [LAYOUT_2017, LAYOUT_2021, LAYOUT_2023])
def test_expected_ids(site: Site, layout: int) -> None:
    for index in [i for i in entries(site) if site.entry(i).layout == layout][:10]:
        fields = site.expected(index)
        if layout == LAYOUT_2023:
            assert fields["old_lemma_id"] is None and fields["sub_lemma_id"] is None
        else:
            assert fields["old_lemma_id"] == site.word_old[site.entry_word[index]]
            assert fields["sub_lemma_id"] == site.entry_sub[index]
            assert (
                site.resolve_url(f"/subview/{fields['old_lemma_id']}/{fields['sub_lemma_id']}.htm", base=ORIGIN)
                == index
            )
            assert site.resolve_url(f"/view/{fields['old_lemma_id']}.htm", base=ORIGIN) == site.default_target(
                site.entry_word[index]
            )


def test_sense_bars_use_both_url_forms(site: Site) -> None:
    forms = set()
    for index in entries(site):
        entry = site.entry(index)
        if entry.layout == LAYOUT_2017:
            forms.update(link.path.split("/")[1] for link in entry.sense_links if link is not None)
    assert forms == {"subview", "item"}


# ---------------------------------------------------------------- stats


def test_stats_count_kinds_lists_helps_and_subviews(server: Replica, site: Site) -> None:
    assert server.json("/__replica__/reset") == {"ok": True}
    word = no_default_word(site)
    enc, sense = site.enc(word), site.word_first[word]
    old, sub = site.word_old[word], site.entry_sub[sense]
    requests = [
        (site.entry_path(sense), 200),
        (f"/item/{enc}", 200),
        (f"/item/{enc}?force=1", 200),
        (f"/item/{enc}/0", 200),
        (f"/view/{old}.htm", 302),
        (f"/subview/{old}/{sub}.htm", 302),
        (f"/subview/{old}/1.htm", 302),
        ("/view/10812277.htm", 200),
        (f"/item/{quote(NAVBAR_SPECIAL)}?fr=navbar", 200),
        ("/help", 200),
        ("/no/such/page", 404),
    ]
    for target, status in requests:
        assert server.get(target)[0] == status, target
    stats = server.json("/__replica__/stats")
    assert stats["by_kind"] == {
        "entry": 1,
        "list": 3,
        "help": 2,
        "redirect": 2,
        "error-redirect": 1,
        "fixed": 1,
        "not-found": 1,
    }
    assert stats["list_pages"] == {f"/item/{enc}": 3}
    assert stats["help_pages"] == {"/view/10812277.htm": 1, f"/item/{quote(NAVBAR_SPECIAL, safe='')}": 1}
    assert stats["subviews"] == 2
    assert stats["pages"] == 1 and stats["page_paths"] == {site.entry_path(sense): 1}
    assert server.json("/__replica__/info")["help_paths"] == sorted(site.help_paths)
