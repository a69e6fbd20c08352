"""Real Baike pages (2017 layout) served verbatim beside the generated site.

The pages are read from a samples directory at start-up and never copied into
the project. Everything the replica needs (name, ids, sense order, links, the
expected fields) is derived from the markup itself.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import lxml.html

from replica.model import collapse

logger = logging.getLogger(__name__)

SAMPLE_GLOB = "old2017-*.html"

_NEW_ID = re.compile(r"newLemmaId\s*:\s*[\"']?(\d+)")
_OLD_ID = re.compile(r"(?<![A-Za-z])lemmaId\s*:\s*[\"'](\d+)")
_SUB_ID = re.compile(r"subLemmaId\s*:\s*[\"']?(\d+)")


@dataclass(slots=True)
class SamplePage:
    name: str
    lemma_id: int
    old_id: int
    sub_id: int
    position: int
    body: bytes
    hrefs: list[str]
    fields: dict
    targets: list[int] = field(default_factory=list)


def load_sample_pages(directory: Path) -> list[list[SamplePage]]:
    """Parse every old2017 page in ``directory``, grouped by entry name in sense order."""
    if not directory.is_dir():
        logger.info("no samples directory at %s; serving the generated site only", directory)
        return []
    groups: dict[tuple[str, int], list[SamplePage]] = {}
    for path in sorted(directory.glob(SAMPLE_GLOB)):
        try:
            page = parse_sample(path.read_bytes())
        except (OSError, ValueError) as exc:
            logger.warning("skipping sample %s: %s", path.name, exc)
            continue
        groups.setdefault((page.name, page.old_id), []).append(page)
    return [sorted(pages, key=lambda p: (p.position, p.lemma_id)) for _key, pages in sorted(groups.items())]


def parse_sample(body: bytes) -> SamplePage:
    """Derive ids, links and expected fields of one real 2017 page; ValueError if it is not one."""
    text = body.decode("utf-8")
    ids = [_first(pattern, text) for pattern in (_NEW_ID, _OLD_ID, _SUB_ID)]
    if None in ids:
        raise ValueError("no newLemmaId/lemmaId/subLemmaId in the page scripts")
    lemma_id, old_id, sub_id = (int(value) for value in ids)  # type: ignore[arg-type]
    doc = lxml.html.document_fromstring(text)
    title = _text(doc.xpath("//dd[contains(@class,'lemmaWgt-lemmaTitle-title')]/h1"))
    if not title:
        raise ValueError("no lemma title")
    fields = {
        "title": title,
        "subtitle": _subtitle(doc),
        "summary": _summary(doc),
        "infobox": _infobox(doc),
        "lemma_id": lemma_id,
        "old_lemma_id": old_id,
        "sub_lemma_id": sub_id,
    }
    hrefs = [str(href) for href in doc.xpath("//a/@href")]
    return SamplePage(title, lemma_id, old_id, sub_id, _sense_position(doc), body, hrefs, fields)


def _first(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    return match.group(1) if match else None


def _text(nodes: list) -> str | None:
    if not nodes:
        return None
    value = collapse(nodes[0].text_content())
    return value or None


def _subtitle(doc: lxml.html.HtmlElement) -> str | None:
    value = _text(doc.xpath("//dd[contains(@class,'lemmaWgt-lemmaTitle-title')]/h2"))
    if value is None:
        return None
    return value.strip("（）() ") or None


def _without_citations(node: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    node = lxml.html.fromstring(lxml.html.tostring(node, encoding="unicode"))
    for junk in node.xpath(".//sup | .//a[contains(@class,'sup-anchor')]"):
        junk.drop_tree()
    return node


def _summary(doc: lxml.html.HtmlElement) -> str | None:
    paras = doc.xpath("//div[contains(@class,'lemma-summary')]/div[contains(concat(' ',@class,' '),' para ')]")
    texts = [collapse(_without_citations(para).text_content()) for para in paras]
    value = " ".join(text for text in texts if text)
    return value or None


def _infobox(doc: lxml.html.HtmlElement) -> dict[str, str] | None:
    names = doc.xpath("//div[contains(@class,'basic-info')]//dt[contains(@class,'name')]")
    values = doc.xpath("//div[contains(@class,'basic-info')]//dd[contains(@class,'value')]")
    if not names or len(names) != len(values):
        return None
    infobox: dict[str, str] = {}
    for name, value in zip(names, values, strict=False):
        key = "".join(name.text_content().split())
        infobox[key] = collapse(_without_citations(value).text_content())
    return infobox


def _sense_position(doc: lxml.html.HtmlElement) -> int:
    items = doc.xpath("//ul[contains(@class,'polysemantList-wrapper')]/li")
    for position, item in enumerate(items):
        if item.xpath(".//span[contains(@class,'selected')]"):
            return position
    return 0
