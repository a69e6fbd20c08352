"""Canonical Baike entry URLs: the one function every component calls.

Baike writes the same entry in many forms (percent-encoded or raw names,
``/item/<name>``, ``/item/<name>/<id>``, ``/item/<name>/0``, tracking queries,
fragments, legacy ``/view/<n>.htm`` and ``/subview/<a>/<b>.htm``, http or
https, relative or absolute). The shared dupefilter must see one fingerprint
per entry, so every URL that enters the crawl goes through
:func:`canonicalize` first, and every download goes through
:func:`download_url` so that a mirror (``BAIKE_MIRROR``) can stand in for the
real site without changing what is stored or fingerprinted.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import SplitResult, quote, unquote, urljoin, urlsplit

BAIKE_ORIGIN = "https://baike.baidu.com"
BAIKE_HOSTS = frozenset({"baike.baidu.com", "www.baike.baidu.com"})

# Longest URL we accept at all; a longer one is hostile or broken.
MAX_URL_LENGTH = 2048

# The query that makes /item/<name> the word's disambiguation list (see canonicalize).
LIST_QUERY = "?force=1"
_SUBVIEW_PREFIX = f"{BAIKE_ORIGIN}/subview/"

_ITEM_PATH = re.compile(r"^/item/(?P<name>[^/]+)(?:/(?P<id>\d+))?/?$")
_VIEW_PATH = re.compile(r"^/view/(?P<id>\d+)\.html?$")
_SUBVIEW_PATH = re.compile(r"^/subview/(?P<a>\d+)/(?P<b>\d+)\.html?$")
# Name characters kept unescaped in canonical paths: none but the unreserved set,
# so `C++` and `C%2B%2B` (and raw Chinese) all become one spelling.
_NAME_SAFE = ""


def normalize_origin(origin: str | None) -> str | None:
    """Return ``scheme://host[:port]`` of a mirror setting, or None when unset.

    Raises ValueError for anything that is not an absolute http(s) origin.
    """
    if not origin:
        return None
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) origin: {origin!r}")
    return f"{parts.scheme}://{parts.netloc}"


def canonicalize(url: str, base: str | None = None, mirror: str | None = None) -> str | None:
    """Map any form of a Baike entry URL to its canonical spelling.

    ``url`` may be relative (resolved against ``base``). URLs on ``mirror``'s
    origin count as Baike URLs. Returns ``https://baike.baidu.com/item/<name>``,
    ``.../item/<name>/<id>``, ``.../view/<n>.htm`` or ``.../subview/<a>/<b>.htm``
    with the name percent-encoded one way, no query and no fragment, except
    ``.../item/<name>?force=1``: a name with ``force=1`` and no sense id is the
    word's disambiguation list page, not its default sense. Returns
    None for anything that is not an entry (help, user, edit or history pages,
    error and captcha pages, images, other hosts, malformed input).
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        return None
    if base:
        try:
            url = urljoin(base, url.strip())
        except ValueError:
            return None
    return _canonical_of(url.strip(), mirror)


# Canonical URLs canonicalize() returned lately. Each is its own canonical form, on any
# mirror (canonicalize is idempotent), and so is its download URL on the mirror: only
# the path and query count, and the mirror's origin is a Baike origin. So a request
# built from a link (download_url) is recognised here when it is fingerprinted and
# encoded, instead of being parsed again. Bounded: emptied when full.
_RECENT_CANONICAL: set[str] = set()
_RECENT_CANONICAL_SIZE = 1 << 16


def _canonical_of(url: str, mirror: str | None) -> str | None:
    recent = _RECENT_CANONICAL
    if url in recent:
        return url
    if mirror and url.startswith(mirror) and url[len(mirror) : len(mirror) + 1] == "/":
        site = BAIKE_ORIGIN + url[len(mirror) :]
        if site in recent:
            return site
    canonical = _canonicalize_absolute(url, mirror)
    if canonical is not None:
        if len(recent) >= _RECENT_CANONICAL_SIZE:
            recent.clear()
        recent.add(canonical)
    return canonical


# Every link of every page passes here (parser, fingerprinter, frontier): the same
# popular entries recur on most pages, so a bounded memo pays for itself.
@functools.lru_cache(maxsize=1 << 16)
def _canonicalize_absolute(url: str, mirror: str | None) -> str | None:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or host is None:
        return None
    if not _is_baike_origin(parts.scheme, host, port, mirror):
        return None
    canonical = _canonical_path(parts.path)
    if canonical is not None and parts.query and _forces_list(parts.query) and _is_bare_item(canonical):
        return canonical + LIST_QUERY
    return canonical


def _forces_list(query: str) -> bool:
    return "force=1" in query.split("&")


def _is_bare_item(canonical: str) -> bool:
    return canonical.count("/") == 4 and canonical.startswith(BAIKE_ORIGIN + "/item/")


def _is_baike_origin(scheme: str, host: str, port: int | None, mirror: str | None) -> bool:
    if host in BAIKE_HOSTS and port in (None, 80, 443):
        return True
    if not mirror:
        return False
    mirror_parts = _split_origin(mirror)
    return (
        scheme == mirror_parts.scheme
        and host == mirror_parts.hostname
        and (port or _default_port(scheme)) == (mirror_parts.port or _default_port(scheme))
    )


@functools.lru_cache(maxsize=16)
def _split_origin(origin: str) -> SplitResult:
    """``urlsplit`` of a mirror origin, split once instead of for every link."""
    return urlsplit(origin)


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _canonical_path(path: str) -> str | None:
    match = _ITEM_PATH.match(path)
    if match:
        name = _canonical_name(match.group("name"))
        if name is None:
            return None
        lemma_id = match.group("id")
        if lemma_id and int(lemma_id) != 0:
            return f"{BAIKE_ORIGIN}/item/{name}/{int(lemma_id)}"
        return f"{BAIKE_ORIGIN}/item/{name}"
    match = _VIEW_PATH.match(path)
    if match:
        return f"{BAIKE_ORIGIN}/view/{int(match.group('id'))}.htm"
    match = _SUBVIEW_PATH.match(path)
    if match:
        return f"{BAIKE_ORIGIN}/subview/{int(match.group('a'))}/{int(match.group('b'))}.htm"
    return None


def _canonical_name(raw: str) -> str | None:
    try:
        name = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return None
    name = name.strip()
    if not name or any(ord(ch) < 0x20 or 0xD800 <= ord(ch) <= 0xDFFF for ch in name):
        return None
    return quote(name, safe=_NAME_SAFE)


def item_url(name: str, lemma_id: int) -> str | None:
    """The canonical ``/item/<name>/<id>`` URL of a sense; None for an unusable name."""
    name = name.strip()
    if not name:
        return None
    try:
        return canonicalize(f"{BAIKE_ORIGIN}/item/{quote(name, safe='')}/{lemma_id}")
    except (UnicodeEncodeError, ValueError):  # a lone surrogate from a JSON escape
        return None


def deny_list(entries: list[str]) -> frozenset[str]:
    """The canonical URLs of ``entries`` (absolute, or paths on Baike) for BAIKE_DENY_URLS.

    Raises ValueError naming the first entry that is not a Baike URL.
    """
    denied = set()
    for entry in entries:
        url = canonicalize(str(entry).strip(), base=BAIKE_ORIGIN + "/")
        if url is None:
            raise ValueError(f"{entry!r} is not a Baike URL (/item/<name>, /view/<n>.htm, /subview/<a>/<b>.htm)")
        denied.add(url)
    return frozenset(denied)


def subview_url(old_lemma_id: int, sub_lemma_id: int) -> str:
    """The canonical legacy URL of a sense: ``/subview/<lemmaId>/<subLemmaId>.htm``."""
    return f"{BAIKE_ORIGIN}/subview/{old_lemma_id}/{sub_lemma_id}.htm"


def is_alias_form(url: str) -> bool:
    """True for a canonical ``/subview/`` URL: a sense named by its legacy ids, which Baike
    redirects to the sense's ``/item/<name>/<id>`` (see the ``aliases`` key)."""
    return url.startswith(_SUBVIEW_PREFIX)


def is_list_url(url: str) -> bool:
    """True for the canonical URL of a disambiguation list page (``/item/<name>?force=1``)."""
    return url.endswith(LIST_QUERY)


def entry_name(url: str) -> str | None:
    """Return the decoded entry name of a canonical ``/item/`` URL, else None."""
    match = _ITEM_PATH.match(urlsplit(url).path)
    return unquote(match.group("name")) if match else None


def download_url(canonical_url: str, mirror: str | None) -> str:
    """Return where to download ``canonical_url``: on ``mirror`` when set.

    Path and query are kept; only the origin changes.
    """
    if not mirror:
        return canonical_url
    rest = canonical_url[len(BAIKE_ORIGIN) :]
    if (
        canonical_url.startswith(BAIKE_ORIGIN)
        and rest[:1] == "/"
        and "#" not in rest
        and rest[-1] not in " ?"
        and rest.isprintable()
    ):
        # a canonical URL (every link): its path and query are what follows the origin,
        # exactly as urlsplit would cut them (nothing it strips or drops is there)
        return mirror + rest
    parts = urlsplit(canonical_url)
    target = mirror + parts.path
    if parts.query:
        target += "?" + parts.query
    return target


def to_site_url(url: str, mirror: str | None) -> str:
    """Map a URL on ``mirror``'s origin back to the real site (others unchanged)."""
    if not mirror or not url.startswith(mirror + "/"):
        return url
    return BAIKE_ORIGIN + url[len(mirror) :]
