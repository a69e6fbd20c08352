"""What every Baike layout's parser uses: the result, text cleaning, tree reading, links.

Every page is decoded once (:func:`_decode`: a BOM or ``<meta charset>``, else
UTF-8), parsed once into one lxml tree (:func:`_tree`, one parser per thread)
and read with precompiled XPath. The layout readers (:mod:`baike.parsing.classic`,
:mod:`baike.parsing.react`, :mod:`baike.parsing.lists`) all read text with
:func:`_content_text` (block boundaries as spaces; chrome such as 播报 and edit
buttons, citation superscripts and expand/collapse toggles skipped; only
``span[data-text]`` where the React layout has them) and clean it with
:func:`clean_text` (whitespace, zero-width characters, ``[1]`` citation
markers). Links are resolved to canonical entry URLs by :func:`_canonical`,
memoized across pages; :func:`_links` collects a page's entry links in document
order, and :func:`_id_in_url` reads the id of a canonical ``/item/<name>/<id>``.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from lxml import etree
from w3lib.encoding import html_to_unicode

from baike.parsing.y2021 import AUDIO_CLASS_PART
from baike.urls import MAX_URL_LENGTH, canonicalize


@dataclass(frozen=True, slots=True)
class ParsedPage:
    """What one downloaded page says; see :mod:`baike.parsing` for sources."""

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

_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "button", "iframe", "svg", "select", "textarea"})
_BLOCK_TAGS = frozenset(
    {
        "div",
        "p",
        "li",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "br",
        "tr",
        "td",
        "th",
        "table",
        "section",
        "article",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
    }
)
# Class fragments of page chrome that sits inside content containers: read-aloud
# (播报) and edit buttons, citation anchors, expand/collapse toggles. Substrings,
# because the React layout hashes its class names (``audioBtn_x1Y2z``). The
# 2021-2022 audio buttons' part is y2021's; J-polysemantText is the React sense
# toggle beside the h1, read on its own by baike.parsing.react.
_NOISE_CLASS_PARTS = (
    AUDIO_CLASS_PART,
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


# --------------------------------------------------------------------- ids and links


def _as_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
        number = int(value)
        return number if number > 0 else None
    return None


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
    return href[:1] == "/" and "//" not in href and "/." not in href and href.isprintable() and href == href.strip()


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
    return bool(href) and href[0] not in "#?/" and ":" not in href


def _usable_base(url: object) -> str:
    # canonicalize() lets urljoin raise on a malformed base ("http://[::1"); a
    # page URL that urlsplit rejects is treated as unknown instead.
    if not isinstance(url, str):
        return ""
    try:
        _ = urlsplit(url).port
    except ValueError:
        return ""
    return url


# --------------------------------------------------------------------- decoding

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
