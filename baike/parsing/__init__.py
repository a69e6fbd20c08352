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

One module per layout, as in the replica's templates (``replica/layouts/``), so
that a layout is found in the same place on both sides:

- ``shared``: what every layout uses (:class:`ParsedPage`, text cleaning, tree
  reading, decoding, links and canonical URLs);
- ``kinds``: the page kinds, and how a page that is not an entry is recognised
  (captcha, error, other);
- ``classic``: the DOM hooks that 2017 and ~2021-2022 share (and that the React
  layout's DOM falls back on), and the ids in their inline scripts, with
  ``y2017`` and ``y2021`` for each layout's hook class names;
- ``react``: the 2023+ React layout (``window.PAGE_DATA``, ``J-polysemantText``);
- ``lists``: disambiguation list pages.

Every page is parsed once into one lxml tree and read with precompiled XPath;
the only scans of the raw text are for the PAGE_DATA blob and the script ids.
:func:`parse_page` reads any input: whatever is not HTML is kind ``"other"``. An
exception out of it is a parser bug; the spider sends that page to the dead letters.
"""

from __future__ import annotations

import logging
from typing import Any

from lxml import etree

from baike.parsing.classic import (
    _bar_label,
    _dom_infobox,
    _dom_senses,
    _dom_subtitle,
    _dom_summary,
    _dom_title,
    _find_hooks,
    _Hooks,
    _lead_paragraph,
    _legacy_ids,
    _lemma_id,
    _title_label,
)
from baike.parsing.kinds import (
    _CAPTCHA_TITLE,
    KIND_CAPTCHA,
    KIND_ENTRY,
    KIND_ERROR,
    KIND_LIST,
    KIND_OTHER,
    _html_title,
    _non_entry_kind,
    _url_kind,
)
from baike.parsing.lists import _list_page
from baike.parsing.react import _page_data, _pd_infobox, _pd_senses, _pd_str, _pd_summary
from baike.parsing.shared import (
    _X_HREFS,
    ParsedPage,
    _canonical,  # noqa: F401 - the memoized link resolver, imported from here by the tests
    _canonical_link,
    _decode,
    _links,
    _safe_canonicalize,
    _strip_brackets,
    _tree,
    _usable_base,
    clean_text,
)
from baike.urls import entry_name, item_url

__all__ = [
    "KIND_CAPTCHA",
    "KIND_ENTRY",
    "KIND_ERROR",
    "KIND_LIST",
    "KIND_OTHER",
    "ParsedPage",
    "clean_text",
    "parse_page",
]

logger = logging.getLogger(__name__)


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
    # A disambiguation list (baike.parsing.lists): its title hook, or a list of senses and no summary.
    if hooks.list_titles or (hooks.sense_lists and not hooks.summaries):
        return _list_page(root, hooks, url, mirror, title)
    return _entry(root, hooks, text, url, mirror, page_data, title)


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


def _subtitle(page_data: dict[str, Any] | None, hooks: _Hooks, root: etree._Element, title: str) -> str | None:
    # A lemmaDesc string in PAGE_DATA is authoritative even when empty: most
    # entries have no subtitle, and the DOM would only be searched in vain.
    if page_data is not None and isinstance(page_data.get("lemmaDesc"), str):
        return _strip_brackets(clean_text(page_data["lemmaDesc"])) or None
    # "star" (featured) sense pages have no h2: the bar's selected item names the
    # sense, and the <title> carries it in brackets
    return _dom_subtitle(hooks) or _bar_label(hooks) or _title_label(root, title)


def _own_urls(url: str, mirror: str | None, canonical_link: str | None, title: str, lemma_id: int | None) -> set[str]:
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
