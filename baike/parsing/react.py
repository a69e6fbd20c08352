"""Baike's 2023+ layout: a React app, read from ``window.PAGE_DATA`` and its stable hooks.

CSS-module class names (``lemmaTitle_qmNnR``, ``text_BvQ2v``) change with every
deploy, so only the ``J-*`` hooks it keeps from ~2021-2022
(:mod:`baike.parsing.y2021`, read by :mod:`baike.parsing.classic`), the text in
``span[data-text]`` (:func:`baike.parsing.shared._content_text` reads only
those where a hook has them), the ``J-polysemantText`` sense description near
the title ``h1`` and the ``window.PAGE_DATA`` JSON blob are relied on:
``lemmaId``, ``lemmaTitle``, ``lemmaDesc``, the summary, ``card.left/right[]``
for the infobox and ``navigation.lemmas[]`` for the senses. PAGE_DATA wins
field by field when it holds a usable value, the DOM hooks fill the rest.

The blob is the only scan of the raw text besides the classic script ids.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from lxml import etree

from baike.parsing.shared import _as_id, _strip_brackets, _strip_widgets, _visible_text, clean_text
from baike.urls import item_url

logger = logging.getLogger(__name__)

_PAGE_DATA = re.compile(r"PAGE_DATA\s*=\s*(?=\{)")
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


# The sense description (J-polysemantText, a div or span) sits beside the title
# h1, so it is looked for near the h1 only, not in the whole page.
_POLYSEMANT_TEXT_TEST = "contains(concat(' ', normalize-space(@class), ' '), ' J-polysemantText ')"
_X_NEAR_POLYSEMANT_TEXT = (
    etree.XPath(f"../descendant::*[{_POLYSEMANT_TEXT_TEST}]"),
    etree.XPath(f"../../descendant::*[{_POLYSEMANT_TEXT_TEST}]"),
)


def _polysemant_text(h1: etree._Element) -> str | None:
    """The J-polysemantText toggle near title ``h1``, before its "展开 N 个同名词条" label."""
    for near in _X_NEAR_POLYSEMANT_TEXT:
        for desc in near(h1):
            text = clean_text(_visible_text(desc))
            text = _strip_brackets(text.split("展开", 1)[0].strip())
            if text:
                return text
    return None
