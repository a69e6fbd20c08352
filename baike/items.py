"""The record of one Baike entry."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class BaikeItem:
    """One entry as stored in ``baike:items`` (keyed by ``url``)."""

    url: str
    title: str | None
    subtitle: str | None = None
    summary: str | None = None
    infobox: dict[str, str] = field(default_factory=dict)
    lemma_id: int | None = None
    # the legacy ids of 2017/2021 pages: the word's lemmaId (/view/<id>.htm) and the
    # sense's subLemmaId (/subview/<lemmaId>/<subLemmaId>.htm)
    old_lemma_id: int | None = None
    sub_lemma_id: int | None = None
    crawled_at: str | None = None
    # the validators the server sent with the page ("" for none): not part of the record, the
    # store pipeline keeps them in the entry's revisit state for its conditional revisits
    etag: str = ""
    last_modified: str = ""
