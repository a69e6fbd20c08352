"""Plain data types shared by the generator, the templates and the server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

BAIKE_ORIGIN = "https://baike.baidu.com"
BAIKE_HTTP_ORIGIN = "http://baike.baidu.com"

LAYOUT_2017 = 0
LAYOUT_2021 = 1
LAYOUT_2023 = 2
LAYOUT_NAMES = ("2017", "2021", "2023")

# How a link's href is anchored: relative path, or absolute on the https/http origin.
REL = 0
ABS_HTTPS = 1
ABS_HTTP = 2

NO_TARGET = -1
# Link targets below NO_TARGET are disambiguation list pages: word ``w`` is ``-2 - w``.
FIRST_LIST_TARGET = -2

UTF8 = "utf-8"
GBK = "GBK"


def list_target(word: int) -> int:
    """The Link.target of word ``word``'s disambiguation list page (always below NO_TARGET)."""
    return FIRST_LIST_TARGET - word


def list_word(target: int) -> int:
    """The word whose list page ``target`` (a list_target) is."""
    return FIRST_LIST_TARGET - target


def is_list_target(target: int) -> bool:
    """True for a list_target, False for an entry index or NO_TARGET."""
    return target <= FIRST_LIST_TARGET


@dataclass(slots=True)
class Link:
    """One ``<a href>`` to a (possibly missing) entry.

    ``path`` is the href without origin (path, query and fragment exactly as
    written); ``anchor`` says whether the origin is prepended. ``target`` is the
    entry page a crawler lands on after following it (redirects included), a
    ``list_target(word)`` when it lands on a word's disambiguation list page,
    or NO_TARGET when it ends on the error page. Not frozen: a frozen dataclass
    costs three times as much to build, and pages build a hundred of these.
    """

    text: str
    path: str
    anchor: int
    target: int


@dataclass(frozen=True, slots=True)
class Cite:
    """A citation marker such as ``[1]`` or ``[2-3]``; never part of the clean text."""

    label: str


# A run of inline content: plain text (may hold "\n" and "\xa0"), links, citations.
Segment = str | Link | Cite


@dataclass(slots=True)
class Section:
    title: str
    level: int
    number: str  # catalog anchor, e.g. "2" or "2_1"
    paragraphs: list[list[Segment]]


@dataclass(slots=True)
class Entry:
    """Everything a template needs to render one generated entry page."""

    index: int
    name: str
    lemma_id: int
    old_id: int
    sub_id: int
    layout: int
    deploy: int
    subtitle: str | None
    senses: list[int]
    summary: list[list[Segment]]
    infobox: list[tuple[str, list[Segment]]]
    sections: list[Section]
    related: list[Link]
    hot: list[Link]
    images: list[str]
    references: list[tuple[str, str]]
    tags: list[str]
    # Polysemant bar: one Link per other sense, None at the current sense.
    sense_links: list[Link | None] = field(default_factory=list)
    # Links in the page chrome (navbar, "all senses" counter, sample entry).
    chrome_links: list[Link] = field(default_factory=list)
    # 2017 polysemant sense shown as a featured ("star") page: no <h2> subtitle.
    star: bool = False
    # 2017/2021: empty summary block, the summary paragraphs lead the main content.
    lead_in_body: bool = False
    # Charset the page is served in: UTF8, or GBK (gb18030 bytes, no <meta charset>).
    charset: str = UTF8


def iter_links(entry: Entry) -> Iterator[Link]:
    """Every entry Link a template renders for ``entry`` (order is not significant)."""
    for para in entry.summary:
        yield from (seg for seg in para if type(seg) is Link)
    for _key, value in entry.infobox:
        yield from (seg for seg in value if type(seg) is Link)
    for section in entry.sections:
        for para in section.paragraphs:
            yield from (seg for seg in para if type(seg) is Link)
    yield from entry.related
    yield from entry.hot
    yield from (link for link in entry.sense_links if link is not None)
    yield from entry.chrome_links


@dataclass(frozen=True, slots=True)
class Route:
    """What the site answers for one path, before any anti-bot or transport concern.

    ``kind`` is one of ROUTE_KINDS: "entry" (200, entry page ``entry``),
    "list" (200, the disambiguation list page whose list_target is ``entry``),
    "help" (200, a help or special non-entry page), "redirect" or
    "error-redirect" (302 to the site-relative ``location``), "not-found" (404)
    or "bad-request" (400). ``page`` names list and help pages by their
    canonical site path (``/item/<enc>`` of the word, ``/view/<id>.htm``,
    ``/item/<enc special name>``).
    """

    status: int
    kind: str
    entry: int = NO_TARGET
    location: str | None = None
    page: str | None = None


ROUTE_KINDS = ("entry", "list", "help", "redirect", "error-redirect", "not-found", "bad-request")


def clean_text(segments: list[Segment]) -> str:
    """Text a correct parser extracts: citations dropped, whitespace collapsed."""
    parts: list[str] = []
    for seg in segments:
        if type(seg) is str:
            parts.append(seg)
        elif type(seg) is Link:
            parts.append(seg.text)
    return collapse("".join(parts))


def collapse(text: str) -> str:
    return " ".join(text.replace("\xa0", " ").split())
