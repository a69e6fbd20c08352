"""Pure parser of Baidu Baike pages: HTML in, fields out.

Baike has served three layouts over the years and the crawl meets all of them
(the real site, archived copies and the replica):

* 2017, server-rendered: ``dd.lemmaWgt-lemmaTitle-title > h1`` (+ ``h2``
  subtitle), ``div.lemma-summary > div.para``, ``div.basic-info`` with
  ``dt``/``dd`` pairs, the ``ul.polysemantList-wrapper`` sense bar and ids in
  inline scripts (``newLemmaId:"…"``, ``lemmaId:"…"``).
* ~2021-2022: the same tree plus the ``J-lemma-title``, ``J-summary`` and
  ``J-basic-info`` hooks, ``para MARK_MODULE`` paragraphs and 播报 (read aloud)
  buttons next to the title and headings.
* 2023+, React: CSS-module class names (``lemmaTitle_qmNnR``) change with
  every deploy, so only the ``J-*`` hooks, ``span[data-text]`` and the
  ``window.PAGE_DATA`` JSON blob are relied on; PAGE_DATA wins field by field
  when it holds a usable value, the DOM hooks fill the rest.

Every page is parsed once into one lxml tree and read with precompiled XPath;
the only scans of the raw text are for the PAGE_DATA blob and the script ids.
:func:`parse_page` reads any input: whatever is not HTML is kind ``"other"``. An
exception out of it is a parser bug; the spider sends that page to the dead letters.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from lxml import etree
from w3lib.encoding import html_to_unicode

from baike.urls import MAX_URL_LENGTH, canonicalize, entry_name, item_url

logger = logging.getLogger(__name__)

KIND_ENTRY = "entry"
# A disambiguation list (``/item/<name>?force=1``, or a name with no default
# sense): links to the word's senses, no entry of its own.
KIND_LIST = "list"
KIND_CAPTCHA = "captcha"
KIND_ERROR = "error"
KIND_OTHER = "other"


@dataclass(frozen=True, slots=True)
class ParsedPage:
    """What one downloaded page says; see the module docstring for sources."""

    kind: str
    title: str | None = None
    subtitle: str | None = None
    summary: str | None = None
    infobox: dict[str, str] = field(default_factory=dict)
    lemma_id: int | None = None
    sense_urls: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    # The legacy ids of 2017/2021 scripts: the word's ``lemmaId`` (``/view/<id>.htm``)
    # and the sense's ``subLemmaId`` (``/subview/<lemmaId>/<subLemmaId>.htm``).
    old_lemma_id: int | None = None
    sub_lemma_id: int | None = None
    # True when the summary block was empty and the summary is the lead paragraph.
    summary_from_lead: bool = False
    # List pages: each sense URL's description, as the list shows it ("<name>：<description>").
    sense_labels: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- text

# Citation markers as Baike prints them: [1], [12], [2-3], [1,4], [ 3 ].
_CITATION = re.compile(r"\[\s*[0-9]+(?:\s*[-–—,，、]\s*[0-9]+)*\s*\]")
# Characters that render as nothing but would split or glue words in stored text.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
# Expand/collapse widget labels that infobox values can end with when the
# widget is not its own element (those are dropped as noise). Only a label set
# off by a space or an ellipsis counts: "工作全面展开" is content.
_WIDGET_TAIL = re.compile(r"(?:\s|\.\.\.|…)+(?:收起|展开)$")


def clean_text(text: str) -> str:
    """Collapse all whitespace to single spaces, strip, drop citation markers.

    ``str.split()`` already treats ``\\xa0``, ``\\u3000`` and newlines as
    whitespace; zero-width characters are removed outright.
    """
    if not text:
        return ""
    text = text.translate(_INVISIBLE)
    if "[" in text:
        # Markers hang on the preceding word ("学生。[1]"), so they go without
        # leaving a gap, as the reader sees them (superscripts).
        text = _CITATION.sub("", text)
    return " ".join(text.split())


def _strip_widgets(value: str) -> str:
    while value.endswith(("收起", "展开")):
        stripped = _WIDGET_TAIL.sub("", value)
        if stripped == value:
            break
        value = stripped
    return value


def _strip_brackets(text: str) -> str:
    # Subtitles are shown as （…） in 2017/2021 pages; PAGE_DATA has them bare.
    if text[:1] in ("（", "("):
        text = text[1:]
    if text[-1:] in ("）", ")"):
        text = text[:-1]
    return text.strip()


# ------------------------------------------------------------------ tree reading

_SKIP_TAGS = frozenset(
    {"script", "style", "noscript", "template", "button", "iframe", "svg", "select", "textarea"}
)
_BLOCK_TAGS = frozenset(
    {
        "div", "p", "li", "ul", "ol", "dl", "dt", "dd", "br", "tr", "td", "th", "table",
        "section", "article", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre",
    }
)
# Class fragments of page chrome that sits inside content containers: read-aloud
# (播报) and edit buttons, citation anchors, expand/collapse toggles. Substrings,
# because the React layout hashes its class names (``audioBtn_x1Y2z``).
_NOISE_CLASS_PARTS = (
    "audio",
    "sup-anchor",
    "edit-icon",
    "edit-lemma",
    "lock-lemma",
    "j-edit-link",
    "lemma-discussion",
    "add-video",
    "lemma-anchor",
    "toggle",
    "J-polysemantText",
    "lemma-picture",
)


def _is_citation_sup(el: etree._Element) -> bool:
    # A superscript is a citation when Baike marks it so or it reads like one;
    # other superscripts (km², x²) are content and stay.
    attrib = el.attrib
    if "data-sup" in attrib or "data-ctrmap" in attrib or attrib.get("data-tag") == "ref":
        return True
    if "sup" in attrib.get("class", ""):
        return True
    text = "".join(el.itertext()).strip()
    return not text or _CITATION.fullmatch(text) is not None


def _is_noise(el: etree._Element) -> bool:
    tag = el.tag
    if not isinstance(tag, str):  # comments and processing instructions
        return True
    if tag in _SKIP_TAGS:
        return True
    if tag == "sup" and _is_citation_sup(el):
        return True
    cls = el.get("class")
    return bool(cls) and any(part in cls for part in _NOISE_CLASS_PARTS)


def _visible_text(root: etree._Element, data_text_only: bool = False) -> str:
    """Text a reader sees in ``root``, block boundaries as spaces, chrome skipped.

    With ``data_text_only`` only text inside ``[data-text]`` spans counts: in
    the React layout those hold the content and everything else is widgets.
    Iterative, so a hostile page nested thousands deep cannot exhaust the stack.
    """
    parts: list[str] = []
    # Stack items: (element, inside a data-text span) to enter, or a str to emit.
    stack: list[tuple[etree._Element, bool] | str] = [(root, not data_text_only)]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
            continue
        el, emit = item
        emit = emit or (data_text_only and "data-text" in el.attrib)
        block = el.tag in _BLOCK_TAGS
        if block:
            parts.append(" ")
        if emit and el.text:
            parts.append(el.text)
        pending: list[tuple[etree._Element, bool] | str] = []
        for child in el:
            if not _is_noise(child):
                pending.append((child, emit))
            if child.tail and emit:
                pending.append(child.tail)
        if block:
            pending.append(" ")
        stack.extend(reversed(pending))
    return "".join(parts)


def _content_text(el: etree._Element) -> str:
    data_text = bool(_X_HAS_DATA_TEXT(el))
    return clean_text(_visible_text(el, data_text_only=data_text))


_X_HAS_DATA_TEXT = etree.XPath("boolean(.//span[@data-text])")
_X_HREFS = etree.XPath("/descendant::a/@href", smart_strings=False)
_X_HTML_TITLE = etree.XPath("/descendant::title[1]")
_X_CANONICAL = etree.XPath("/html/head/link[@rel='canonical']/@href", smart_strings=False)

# Tags that carry the layout hooks. libxml2 evaluates class predicates slowly
# (a //*[contains(@class, ...)] costs ~0.3 ms on a 140 KB page), so the hooks
# are found in one Python pass over these tags instead.
_HOOK_TAGS = ("h1", "dd", "dl", "div", "ul", "section")
_TITLE_HOOKS = frozenset({"lemmaWgt-lemmaTitle-title", "J-lemma-title"})
_SUMMARY_HOOKS = frozenset({"lemma-summary", "J-summary"})
_INFOBOX_HOOKS = frozenset({"basic-info", "J-basic-info"})
_POLYSEMANT_LIST_HOOKS = frozenset({"polysemantList-wrapper", "J-polysemant"})
_LIST_TITLE_HOOKS = frozenset({"lemmaWgt-subLemmaListTitle"})
_LIST_HOOKS = frozenset({"para-list"})
# Cheap substring test before splitting a class attribute into tokens.
_HOOK_PARTS = (
    "lemmaTitle-title", "J-", "summary", "basic-info", "polysemantList", "subLemmaList", "para-list",
)
# React puts the sense description (J-polysemantText, a div or span) beside the
# title h1, so it is looked for near the h1 only, not in the whole page.
_POLYSEMANT_TEXT_TEST = "contains(concat(' ', normalize-space(@class), ' '), ' J-polysemantText ')"
_X_NEAR_POLYSEMANT_TEXT = (
    etree.XPath(f"../descendant::*[{_POLYSEMANT_TEXT_TEST}]"),
    etree.XPath(f"../../descendant::*[{_POLYSEMANT_TEXT_TEST}]"),
)
# Hooks kept per kind. Real pages have one or two; a hostile page nesting
# thousands would otherwise cost quadratic time (each hook reads its subtree).
_MAX_HOOKS = 8


@dataclass(slots=True)
class _Hooks:
    """The layout hook elements of one page, in document order."""

    titles: list[etree._Element] = field(default_factory=list)
    summaries: list[etree._Element] = field(default_factory=list)
    infoboxes: list[etree._Element] = field(default_factory=list)
    polysemant_lists: list[etree._Element] = field(default_factory=list)
    list_titles: list[etree._Element] = field(default_factory=list)
    sense_lists: list[etree._Element] = field(default_factory=list)


def _find_hooks(root: etree._Element) -> _Hooks:
    hooks = _Hooks()
    for el in root.iter(_HOOK_TAGS):
        cls = el.get("class")
        if not cls or not any(part in cls for part in _HOOK_PARTS):
            continue
        tokens = set(cls.split())
        if tokens & _TITLE_HOOKS:
            _add(hooks.titles, el)
        if tokens & _SUMMARY_HOOKS:
            _add(hooks.summaries, el)
        if tokens & _INFOBOX_HOOKS:
            _add(hooks.infoboxes, el)
        if tokens & _POLYSEMANT_LIST_HOOKS:
            _add(hooks.polysemant_lists, el)
        if tokens & _LIST_TITLE_HOOKS:
            _add(hooks.list_titles, el)
        if el.tag == "ul" and tokens & _LIST_HOOKS:
            _add(hooks.sense_lists, el)
    return hooks


def _add(found: list[etree._Element], el: etree._Element) -> None:
    if len(found) < _MAX_HOOKS:
        found.append(el)


# ------------------------------------------------------------------- PAGE_DATA

_PAGE_DATA = re.compile(r"PAGE_DATA\s*=\s*(?=\{)")
# Script ids of the 2017/2021 layouts, JS object style (key: "digits").
_NEW_LEMMA_ID = re.compile(r"newLemmaId\s*:\s*[\"']?([0-9]+)")
_OLD_LEMMA_ID = re.compile(r"(?<![\w$\"'-])lemmaId\s*:\s*[\"']?([0-9]+)")
_SUB_LEMMA_ID = re.compile(r"subLemmaId\s*:\s*[\"']?([0-9]+)")
# Keys of the summary in PAGE_DATA, most specific first.
_SUMMARY_KEYS = ("summary", "abstract", "lemmaSummary", "abstractPlain")
_MAX_PAGE_DATA_TRIES = 4
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_JSON = json.JSONDecoder()


def _page_data(text: str, url: str) -> dict[str, Any] | None:
    """Decode ``window.PAGE_DATA = {...}``; None when absent or broken.

    ``raw_decode`` stops at the end of the object, so whatever script follows
    the blob (``;``, more statements) does not matter.
    """
    if "PAGE_DATA" not in text:
        return None
    for tries, match in enumerate(_PAGE_DATA.finditer(text)):
        if tries >= _MAX_PAGE_DATA_TRIES:
            break
        try:
            data, end = _JSON.raw_decode(text, match.end())
            if _SURROGATE_ESCAPE.search(text, match.end(), end):
                data = _without_lone_surrogates(data)
        except (ValueError, RecursionError) as exc:
            logger.debug("broken PAGE_DATA on %s: %s", url, exc)
            continue
        if isinstance(data, dict) and data:
            return data
    return None


def _without_lone_surrogates(data: Any) -> Any:
    # A "\ud800" escape without its pair decodes to a lone surrogate, which
    # cannot be encoded later (Redis, JSON lines); round-trip through UTF-8
    # with replacement. Proper pairs (emoji) survive unchanged.
    blob = json.dumps(data, ensure_ascii=False).encode("utf-8", "replace").decode("utf-8")
    return json.loads(blob)


def _flatten(node: Any, depth: int = 0) -> str:
    """Plain text of a PAGE_DATA rich-text value (str, list or {"text": ...})."""
    if depth > 20 or node is None or isinstance(node, bool):
        return ""
    if isinstance(node, str):
        return node
    if isinstance(node, (int, float)):
        return str(node)
    if isinstance(node, list):
        return "".join(_flatten(item, depth + 1) for item in node)
    if isinstance(node, dict):
        for key in ("text", "value", "data", "title", "content"):
            if key in node:
                return _flatten(node[key], depth + 1)
    return ""


def _as_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
        number = int(value)
        return number if number > 0 else None
    return None


def _pd_str(data: dict[str, Any] | None, key: str) -> str | None:
    if data is None:
        return None
    value = data.get(key)
    if isinstance(value, str):
        return clean_text(value) or None
    return None


def _pd_summary(data: dict[str, Any] | None) -> str | None:
    if data is None:
        return None
    for key in _SUMMARY_KEYS:
        if key in data:
            text = clean_text(_flatten(data[key]))
            if text:
                return text
    return None


def _pd_infobox(data: dict[str, Any] | None) -> dict[str, str] | None:
    """Infobox from ``card.left`` + ``card.right``; None when PAGE_DATA has no card."""
    card = data.get("card") if data is not None else None
    if not isinstance(card, dict):
        return None
    items: list[Any] = []
    for side in ("left", "right"):
        block = card.get(side)
        if isinstance(block, list):
            items.extend(block)
    if not items:
        return None
    infobox: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        name = item.get("title", item.get("name"))
        if not isinstance(name, str):
            continue
        name = "".join(clean_text(name).split())
        if not name or name in infobox:
            continue
        raw = item.get("data", item.get("value"))
        values = raw if isinstance(raw, list) else [raw]
        # Several data entries are several values of one field (co-authors...).
        texts = [clean_text(_flatten(value)) for value in values]
        infobox[name] = _strip_widgets("、".join(t for t in texts if t))
    return infobox


def _pd_senses(data: dict[str, Any] | None, lemma_id: int | None) -> list[str] | None:
    """Other senses from ``navigation.lemmas``; None when PAGE_DATA has no list."""
    navigation = data.get("navigation") if data is not None else None
    lemmas = navigation.get("lemmas") if isinstance(navigation, dict) else None
    if not isinstance(lemmas, list):
        return None
    urls: list[str] = []
    for lemma in lemmas:
        if not isinstance(lemma, dict):
            continue
        sense_id = _as_id(lemma.get("lemmaId"))
        title = lemma.get("lemmaTitle")
        if sense_id is None or sense_id == lemma_id or not isinstance(title, str):
            continue
        if lemma.get("isCurrent") is True or lemma.get("current") is True:
            continue
        url = item_url(title, sense_id)
        if url and url not in urls:
            urls.append(url)
    return urls


# --------------------------------------------------------------- field readers


def _dom_title(hooks: _Hooks) -> str | None:
    # Every layout puts the name in an h1: the hook itself (React) or inside
    # it (2017/2021 dd). Other text in the hook is buttons.
    for hook in hooks.titles:
        h1 = hook if hook.tag == "h1" else next(hook.iter("h1"), None)
        if h1 is None:
            continue
        text = _content_text(h1)
        if text:
            return text
    return None


def _dom_subtitle(hooks: _Hooks) -> str | None:
    for hook in hooks.titles:
        if hook.tag != "h1":
            # 2017/2021: an h2 beside the h1 in the title dd, shown as （…）.
            for h2 in hook.iterchildren("h2"):
                text = _strip_brackets(_content_text(h2))
                if text:
                    return text
            continue
        # React: the J-polysemantText toggle, before its "展开 N 个同名词条" label.
        for near in _X_NEAR_POLYSEMANT_TEXT:
            for desc in near(hook):
                text = clean_text(_visible_text(desc))
                text = _strip_brackets(text.split("展开", 1)[0].strip())
                if text:
                    return text
    return None


def _dom_summary(hooks: _Hooks) -> str | None:
    for container in hooks.summaries:
        text = _content_text(container)
        if text:
            return text
    return None


def _lead_paragraph(root: etree._Element, hooks: _Hooks) -> str | None:
    """The first paragraph a reader sees when the summary block is empty.

    2017/2021 pages then open their main content with ordinary ``div.para``
    paragraphs; the first one with text outside the summary, sense list and
    infobox hooks is the lead.
    """
    skip = {*hooks.summaries, *hooks.sense_lists, *hooks.infoboxes, *hooks.polysemant_lists}
    for div in _X_PARAS(root):
        if any(ancestor in skip for ancestor in div.iterancestors(*_HOOK_TAGS)):
            continue
        text = _content_text(div)
        if text:
            return text
    return None


_X_PARAS = etree.XPath("/descendant::div[contains(concat(' ', normalize-space(@class), ' '), ' para ')]")
_SUFFIX = "_百度百科"


def _bar_label(hooks: _Hooks) -> str | None:
    """The selected item of the 2017/2021 sense bar: the label of the page's own sense."""
    for wrapper in hooks.polysemant_lists:
        for span in wrapper.iter("span"):
            if "selected" in (span.get("class") or "").split():
                text = _strip_brackets(_content_text(span))
                if text:
                    return text
    return None


def _title_label(root: etree._Element, title: str) -> str | None:
    """The label in ``<title>name（label）_百度百科</title>``, None without brackets."""
    html_title = _html_title(root)
    if html_title.endswith(_SUFFIX):
        html_title = html_title[: -len(_SUFFIX)]
    rest = html_title[len(title) :].strip() if html_title.startswith(title) else ""
    if len(rest) > 2 and rest[0] in "（(" and rest[-1] in "）)":
        return _strip_brackets(rest) or None
    return None


def _dom_infobox(hooks: _Hooks) -> dict[str, str]:
    infobox: dict[str, str] = {}
    for container in hooks.infoboxes:
        for dt in container.iter("dt"):
            name = "".join(_content_text(dt).split())
            dd = dt.getnext()
            while dd is not None and not isinstance(dd.tag, str):
                dd = dd.getnext()
            # First wins: nested hooks (div.basic-info.J-basic-info > dl) and
            # repeated names must not overwrite what the reader sees first.
            if not name or dd is None or dd.tag != "dd" or name in infobox:
                continue
            infobox[name] = _strip_widgets(_content_text(dd))
    return infobox


def _dom_senses(hooks: _Hooks, base: str, mirror: str | None) -> list[str]:
    # Anchors in the list items only: the current sense is a span there, and
    # the bar's header links elsewhere ("共N个义项", help pages).
    urls: list[str] = []
    for wrapper in hooks.polysemant_lists:
        for li in wrapper.iter("li"):
            for anchor in li.iter("a"):
                url = _canonical(anchor.get("href") or "", base, mirror)
                if url and url not in urls:
                    urls.append(url)
    return urls


def _canonical_link(root: etree._Element, base: str, mirror: str | None) -> str | None:
    for href in _X_CANONICAL(root):
        url = _canonical(href, base, mirror)
        if url:
            return url
    return None


# Distinct absolute link spellings remembered across pages (~300 bytes each).
_CANONICAL_CACHE_SIZE = 65536


def _canonical(href: str, base: str, mirror: str | None) -> str | None:
    """``canonicalize(href, base, mirror)``, memoized across pages where exact.

    A root-relative (``/item/…``, ``//host/…``) or absolute ``http(s)://``
    reference resolves the same against any base of the same origin, so those
    are cached under the origin alone: popular entries and page chrome are
    linked from most pages and then cost one dict look-up. None where
    canonicalize() would raise.
    """
    if href[:1] == "/" or href[:8].lower().startswith(("http://", "https://")):
        return _canonical_cached(href, _origin(base), mirror)
    return _safe_canonicalize(href, base, mirror)


def _safe_canonicalize(url: str, base: str | None = None, mirror: str | None = None) -> str | None:
    try:
        return canonicalize(url, base=base, mirror=mirror)
    except ValueError:
        # canonicalize() lets urljoin raise on a malformed reference such as
        # "https://[::1/item/x" (and quote on a lone surrogate); one bad href
        # must not cost the whole page.
        return None


@functools.lru_cache(maxsize=_CANONICAL_CACHE_SIZE)
def _canonical_cached(href: str, origin: str, mirror: str | None) -> str | None:
    # urljoin is ~40% of canonicalize's cost. For a root-relative path without
    # dot segments, empty segments or characters urlsplit would drop, RFC 3986
    # resolution is plain concatenation with the origin, so the join is done
    # here and canonicalize sees the same absolute URL urljoin would build.
    if origin and _joins_plainly(href) and len(origin) + len(href) <= MAX_URL_LENGTH:
        return _safe_canonicalize(origin + href, None, mirror)
    return _safe_canonicalize(href, origin + "/" if origin else None, mirror)


def _joins_plainly(href: str) -> bool:
    return (
        href[:1] == "/"
        and "//" not in href
        and "/." not in href
        and href.isprintable()
        and href == href.strip()
    )


@functools.lru_cache(maxsize=256)
def _origin(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if not parts.scheme or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}"


def _id_in_url(url: str | None) -> int | None:
    # Canonical URLs only: https://baike.baidu.com/item/<name>[/<id>].
    if not url:
        return None
    parts = urlsplit(url).path.split("/")
    if len(parts) != 4 or parts[1] != "item":
        return None
    return _as_id(parts[3])


def _lemma_id(
    text: str, canonical_link: str | None, page_data: dict[str, Any] | None
) -> int | None:
    """The page's own lemma id, i.e. the one its ``/item/<name>/<id>`` URLs use.

    The canonical link states it outright, and PAGE_DATA's ``lemmaId`` is the
    same id. In 2017 scripts ``newLemmaId`` is that per-sense id while
    ``lemmaId`` is the id of the whole polysemant group (the ``<a>`` of
    ``/subview/<a>/<b>.htm``, shared by every sense), so a script ``lemmaId``
    only serves when there is no ``newLemmaId``: later pages such as the 2021
    ones use ``lemmaId`` for the per-sense id.
    """
    found = _id_in_url(canonical_link)
    if found is None and page_data is not None:
        found = _as_id(page_data.get("lemmaId"))
    for pattern in (_NEW_LEMMA_ID, _OLD_LEMMA_ID):
        if found is not None:
            break
        match = pattern.search(text)
        if match:
            found = _as_id(match.group(1))
    return found


def _links(
    hrefs: Iterable[str], base: str, mirror: str | None, exclude: set[str], senses: list[str]
) -> tuple[str, ...]:
    seen = set(exclude)
    links: list[str] = []
    done: set[str] = set()
    for href in hrefs:
        # The same entry is linked from several paragraphs: each distinct
        # spelling is resolved once.
        if href in done or not _may_be_entry(href):
            continue
        done.add(href)
        url = _canonical(href, base, mirror)
        if url and url not in seen:
            seen.add(url)
            links.append(url)
    # Senses known only from PAGE_DATA have no anchor position: they go last.
    for url in senses:
        if url not in seen:
            seen.add(url)
            links.append(url)
    return tuple(links)


def _may_be_entry(href: str) -> bool:
    """False for hrefs that canonicalize() is certain to reject, to skip it.

    Every entry path contains ``item/`` or ``view/`` (``subview/`` too), and
    dot segments can only add them to a reference without a scheme; a
    path-relative reference (``foo``) may still land under ``/item/``.
    """
    if "item/" in href or "view/" in href:
        return True
    if not href or href[0] in "#?/" or ":" in href:
        return False
    return True


# ----------------------------------------------------------------- page kinds

# The anti-bot page is titled exactly 百度安全验证; an entry about the phrase is
# titled "<name>_百度百科" and has a lemma title, so only lemma-less pages are
# matched loosely.
_CAPTCHA_TITLE = "百度安全验证"
_CAPTCHA_TITLE_PART = "安全验证"
_ERROR_TITLES = ("百度百科-验证", "错误", "404", "不存在")
# Baike's 404 page keeps the site's generic title; only its text says it.
_ERROR_TEXT = "页面不存在"


def _html_title(root: etree._Element) -> str:
    for el in _X_HTML_TITLE(root):
        return clean_text("".join(el.itertext()))
    return ""


def _usable_base(url: object) -> str:
    # canonicalize() lets urljoin raise on a malformed base ("http://[::1"); a
    # page URL that urlsplit rejects is treated as unknown instead.
    if not isinstance(url, str):
        return ""
    try:
        urlsplit(url).port
    except ValueError:
        return ""
    return url


def _url_kind(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return None
    path = parts.path.lower()
    if host == "wappass.baidu.com" or path.startswith("/anticrawl"):
        return KIND_CAPTCHA
    if path.startswith("/error."):
        return KIND_ERROR
    return None


def _non_entry_kind(root: etree._Element, text: str) -> str:
    title = _html_title(root)
    if _CAPTCHA_TITLE_PART in title:
        return KIND_CAPTCHA
    if any(word in title for word in _ERROR_TITLES):
        return KIND_ERROR
    if _ERROR_TEXT in text:
        return KIND_ERROR
    return KIND_OTHER


# --------------------------------------------------------------------- parsing

_local = threading.local()


def _parser() -> etree.HTMLParser:
    # lxml parsers must not be shared between threads; one per thread is cheap.
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.HTMLParser(
            encoding="utf-8",
            remove_comments=True,
            remove_pis=True,
            huge_tree=True,
            no_network=True,
        )
        _local.parser = parser
    return parser


def _decode(html: object) -> str | None:
    if isinstance(html, str):
        return html
    if isinstance(html, (bytes, bytearray, memoryview)):
        # Honours a BOM or a <meta charset>, else UTF-8; bad bytes become U+FFFD.
        return html_to_unicode(None, bytes(html))[1]
    return None


def _tree(text: str) -> etree._Element | None:
    data = text.encode("utf-8", "replace").replace(b"\x00", b"")
    if not data.strip():
        return None
    try:
        return etree.fromstring(data, _parser())
    except etree.LxmlError:
        return None


def parse_page(html: str | bytes, url: str, mirror: str | None = None) -> ParsedPage:
    """Parse one downloaded page.

    ``url`` is where it was downloaded from (possibly on ``mirror``'s origin);
    it is the base of relative links and, canonicalized, the page's own URL
    that ``links`` leaves out. Unreadable input is kind "other"; an exception is a bug
    in the parser, left to the caller (the spider dead-letters the page, never
    settling it as done).
    """
    url = _usable_base(url)
    kind = _url_kind(url)
    if kind is not None:
        return ParsedPage(kind=kind)
    text = _decode(html)
    root = _tree(text) if text is not None else None
    if text is None or root is None:
        logger.debug("no HTML to parse from %s", url)
        return ParsedPage(kind=KIND_OTHER)
    if _html_title(root) == _CAPTCHA_TITLE:
        return ParsedPage(kind=KIND_CAPTCHA)

    page_data = _page_data(text, url)
    hooks = _find_hooks(root)
    title = _pd_str(page_data, "lemmaTitle") or _dom_title(hooks)
    if not title:
        return ParsedPage(kind=_non_entry_kind(root, text))
    if hooks.list_titles or (hooks.sense_lists and not hooks.summaries):
        return _list_page(root, hooks, url, mirror, title)
    return _entry(root, hooks, text, url, mirror, page_data, title)


def _list_page(root: etree._Element, hooks: _Hooks, url: str, mirror: str | None, title: str) -> ParsedPage:
    """A disambiguation list: its senses (with their descriptions) and its links, no entry."""
    labels: dict[str, str] = {}
    for sense_list in hooks.sense_lists:
        for anchor in sense_list.iter("a"):
            sense = _canonical(anchor.get("href") or "", url, mirror)
            if not sense or sense in labels:
                continue
            labels[sense] = _sense_description(_content_text(anchor), title)
    own = {u for u in (_safe_canonicalize(url, None, mirror),) if u}
    senses = [sense for sense in labels if sense not in own]
    return ParsedPage(
        kind=KIND_LIST,
        title=title,
        sense_urls=tuple(senses),
        links=_links(_X_HREFS(root), url, mirror, own, senses),
        sense_labels={sense: labels[sense] for sense in senses if labels[sense]},
    )


def _sense_description(text: str, title: str) -> str:
    # "<name>：<description>" as the list writes it; a bare description is kept as it is
    for colon in ("：", ":"):
        head, found, tail = text.partition(colon)
        if found and head.strip() == title:
            return tail.strip()
    return "" if text == title else text


def _entry(
    root: etree._Element,
    hooks: _Hooks,
    text: str,
    url: str,
    mirror: str | None,
    page_data: dict[str, Any] | None,
    title: str,
) -> ParsedPage:
    canonical_link = _canonical_link(root, url, mirror)
    lemma_id = _lemma_id(text, canonical_link, page_data)

    senses = _pd_senses(page_data, lemma_id)
    if senses is None:
        senses = _dom_senses(hooks, url, mirror)
    own = _own_urls(url, mirror, canonical_link, title, lemma_id)
    senses = [sense for sense in senses if sense not in own]

    infobox = _pd_infobox(page_data)
    if infobox is None:
        infobox = _dom_infobox(hooks)

    summary = _pd_summary(page_data) or _dom_summary(hooks)
    lead = summary is None and page_data is None
    if lead:
        summary = _lead_paragraph(root, hooks)
    # only 2017/2021 scripts carry them: a PAGE_DATA page's text is not scanned again
    old_lemma_id, sub_lemma_id = _legacy_ids(text) if page_data is None else (None, None)
    return ParsedPage(
        kind=KIND_ENTRY,
        title=title,
        subtitle=_subtitle(page_data, hooks, root, title),
        summary=summary,
        infobox=infobox,
        lemma_id=lemma_id,
        sense_urls=tuple(senses),
        links=_links(_X_HREFS(root), url, mirror, own, senses),
        old_lemma_id=old_lemma_id,
        sub_lemma_id=sub_lemma_id,
        summary_from_lead=lead and summary is not None,
    )


def _legacy_ids(text: str) -> tuple[int | None, int | None]:
    """``(lemmaId, subLemmaId)`` of 2017/2021 scripts; see :func:`_lemma_id` for why a
    script ``lemmaId`` is the word's legacy id only beside a ``newLemmaId``."""
    if not _NEW_LEMMA_ID.search(text):
        return None, None
    old, sub = _OLD_LEMMA_ID.search(text), _SUB_LEMMA_ID.search(text)
    return (_as_id(old.group(1)) if old else None), (_as_id(sub.group(1)) if sub else None)


def _subtitle(page_data: dict[str, Any] | None, hooks: _Hooks, root: etree._Element, title: str) -> str | None:
    # A lemmaDesc string in PAGE_DATA is authoritative even when empty: most
    # entries have no subtitle, and the DOM would only be searched in vain.
    if page_data is not None and isinstance(page_data.get("lemmaDesc"), str):
        return _strip_brackets(clean_text(page_data["lemmaDesc"])) or None
    # "star" (featured) sense pages have no h2: the bar's selected item names the
    # sense, and the <title> carries it in brackets
    return _dom_subtitle(hooks) or _bar_label(hooks) or _title_label(root, title)


def _own_urls(
    url: str, mirror: str | None, canonical_link: str | None, title: str, lemma_id: int | None
) -> set[str]:
    """Every canonical spelling of the page itself, so it never links to itself.

    Once the id is known, ``/item/<name>/<id>`` is this page even when it was
    fetched as ``/item/<name>`` (2021 catalogs link ``/item/<name>/<id>#1``).
    The bare ``/item/<name>`` of a page fetched with its id stays a link: it
    names the default sense, which may be another page.
    """
    own = {u for u in (_safe_canonicalize(url, None, mirror), canonical_link) if u}
    if lemma_id is not None:
        names = {title}
        names.update(n for n in (entry_name(u) for u in own) if n)
        for name in names:
            alias = item_url(name, lemma_id)
            if alias:
                own.add(alias)
    return own
