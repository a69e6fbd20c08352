"""The DOM hooks that Baike 2017 and ~2021-2022 share, which the React layout's DOM falls back on.

Both server-rendered layouts are one tree: title
``dd.lemmaWgt-lemmaTitle-title > h1`` (+ ``h2`` subtitle, shown as （…）),
summary ``div.lemma-summary > div.para``, infobox ``div.basic-info`` with
``dt``/``dd`` pairs, sense bar ``ul.polysemantList-wrapper li`` (the current
sense a ``span.selected``); ~2021-2022 adds ``J-*`` hooks to the same
elements, and the 2023+ React pages keep those (``h1.J-lemma-title``,
``J-summary``, ``J-basic-info``). The class names are the layouts' own
(:mod:`baike.parsing.y2017`, :mod:`baike.parsing.y2021`,
:mod:`baike.parsing.lists`); :func:`_find_hooks` finds them all in one pass
over the tree, and the ``_dom_*`` readers read fields from them.

The entry's ids inside the 2017 and 2021 inline scripts (``newLemmaId:"…"``,
``lemmaId:"…"``, ``subLemmaId:"…"``) are read here too, as both layouts carry
them (the replica renders that script in ``replica/layouts/classic.py``); with
the PAGE_DATA blob (:mod:`baike.parsing.react`) they are the only scans of the
raw text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from baike.parsing import lists, y2017, y2021
from baike.parsing.kinds import _html_title
from baike.parsing.react import _polysemant_text
from baike.parsing.shared import (
    _as_id,
    _canonical,
    _content_text,
    _id_in_url,
    _strip_brackets,
    _strip_widgets,
)

# Tags that carry the layout hooks. libxml2 evaluates class predicates slowly
# (a //*[contains(@class, ...)] costs ~0.3 ms on a 140 KB page), so the hooks
# are found in one Python pass over these tags instead.
_HOOK_TAGS = ("h1", "dd", "dl", "div", "ul", "section")
_TITLE_HOOKS = frozenset({y2017.TITLE_HOOK, y2021.TITLE_HOOK})
_SUMMARY_HOOKS = frozenset({y2017.SUMMARY_HOOK, y2021.SUMMARY_HOOK})
_INFOBOX_HOOKS = frozenset({y2017.INFOBOX_HOOK, y2021.INFOBOX_HOOK})
_POLYSEMANT_LIST_HOOKS = frozenset({y2017.POLYSEMANT_LIST_HOOK, y2021.POLYSEMANT_LIST_HOOK})
_LIST_TITLE_HOOKS = frozenset({lists.LIST_TITLE_HOOK})
_LIST_HOOKS = frozenset({lists.LIST_HOOK})
# Cheap substring test before splitting a class attribute into tokens.
_HOOK_PARTS = y2017.HOOK_PARTS + y2021.HOOK_PARTS + lists.HOOK_PARTS
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


# ------------------------------------------------------------------ script ids

# Script ids of the 2017/2021 layouts, JS object style (key: "digits").
_NEW_LEMMA_ID = re.compile(r"newLemmaId\s*:\s*[\"']?([0-9]+)")
_OLD_LEMMA_ID = re.compile(r"(?<![\w$\"'-])lemmaId\s*:\s*[\"']?([0-9]+)")
_SUB_LEMMA_ID = re.compile(r"subLemmaId\s*:\s*[\"']?([0-9]+)")
# The text every _OLD_LEMMA_ID match starts with: its lookbehind leaves the regex engine
# no literal prefix to skip ahead by, so a search tries the pattern at every offset
# (0.8 ms on a 50 KB page, against 0.03 ms for the other two).
_OLD_LEMMA_ID_START = "lemmaId"


def _search_old_lemma_id(text: str) -> re.Match[str] | None:
    """``_OLD_LEMMA_ID.search(text)``, tried only where ``lemmaId`` occurs: a match
    starts with it, and ``match`` at an offset still sees the text before it (the
    lookbehind), so the first match found is the same match, span and group."""
    find, match = text.find, _OLD_LEMMA_ID.match
    at = find(_OLD_LEMMA_ID_START)
    while at >= 0:
        found = match(text, at)
        if found is not None:
            return found
        at = find(_OLD_LEMMA_ID_START, at + 1)
    return None


def _lemma_id(text: str, canonical_link: str | None, page_data: dict[str, Any] | None) -> int | None:
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
    for search in (_NEW_LEMMA_ID.search, _search_old_lemma_id):
        if found is not None:
            break
        match = search(text)
        if match:
            found = _as_id(match.group(1))
    return found


def _legacy_ids(text: str) -> tuple[int | None, int | None]:
    """``(lemmaId, subLemmaId)`` of 2017/2021 scripts; see :func:`_lemma_id` for why a
    script ``lemmaId`` is the word's legacy id only beside a ``newLemmaId``."""
    if not _NEW_LEMMA_ID.search(text):
        return None, None
    old, sub = _search_old_lemma_id(text), _SUB_LEMMA_ID.search(text)
    return (_as_id(old.group(1)) if old else None), (_as_id(sub.group(1)) if sub else None)


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
                text: str | None = _strip_brackets(_content_text(h2))
                if text:
                    return text
            continue
        # React: the J-polysemantText toggle beside the h1.
        text = _polysemant_text(hook)
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
