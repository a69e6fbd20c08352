"""Disambiguation list pages (``/item/<name>?force=1``), in the 2017 chrome.

Baike shows a polysemant's list of senses at its bare name when no sense is the
default, and at ``?force=1`` always: the ``h1`` (read as any title, by
:mod:`baike.parsing.classic`), a ``div.lemmaWgt-subLemmaListTitle`` and a
``ul.para-list`` of the senses, each ``<a>`` reading ``<name>：<description>``.
Such a page is kind ``"list"``: its senses (with their descriptions) and its
links, no entry of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from baike.parsing.kinds import KIND_LIST
from baike.parsing.shared import (
    _X_HREFS,
    ParsedPage,
    _canonical,
    _content_text,
    _links,
    _safe_canonicalize,
)

if TYPE_CHECKING:
    from lxml import etree

    from baike.parsing.classic import _Hooks

LIST_TITLE_HOOK = "lemmaWgt-subLemmaListTitle"
# On a ul: the list of senses.
LIST_HOOK = "para-list"
# Substrings of those hooks, a cheap test before a class attribute is split into tokens.
HOOK_PARTS = ("subLemmaList", "para-list")


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
