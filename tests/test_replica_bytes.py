"""Every byte the replica answers stays the same: digests of its answers against a committed file.

The replica is a fixed site: a crawl's answer key, the parser tests and the benchmarks all
rely on the same ``(entries, seed)`` giving the same pages. Speeding up page generation or
rendering must not change one byte, so this test digests the answers (status, Content-Type,
headers, body) to many targets of two small sites, in every layout and page case: every entry
page in two epochs, list pages, redirects and error answers reached by the pages' own links,
and fixed malformed targets; one site with the real links, one with ``--self-links``.

``tests/data/replica_digests.json`` was written by the code before the rendering was made
faster. Rewrite it (``python -m tests.test_replica_bytes``) only with a change that means to
change the pages, and say so in its commit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from replica.model import iter_links
from replica.server import Replica
from replica.site import Site

DIGESTS = Path(__file__).resolve().parent / "data" / "replica_digests.json"
ENTRIES = 1200
# (seed, self_links): the real baike.baidu.com links, and links to the replica itself.
SITES = ((1, False), (7, True))
ORIGIN = "http://127.0.0.1:8800"
# Entries whose links (redirects, subviews, views, missing names, wrong ids) are followed.
LINKING_ENTRIES = 80
FIXED_TARGETS = (
    "/",
    "/help",
    "/help/terms",
    "/robots.txt",
    "/error.html?status=404",
    "/anticrawl/captchaview",
    "/nope",
    "/item/",
    "/item/%zz",
    "/item/%E4%B8",
    "/item/a%00b",
    "/item/%E4%B8%AD/12x",
    "/view/10812277.htm",
    "/view/1.htm",
    "/subview/1/2.htm",
    "/item/x?force=1",
)


def _targets(site: Site) -> Iterator[tuple[str, str]]:
    """(group, target) of every target digested on ``site``, in a fixed order."""
    for index in range(site.entry_count):
        yield "entries", site.entry_path(index)
    for word in range(len(site.word_names)):
        if site.word_count[word] > 1:
            yield "lists", site.list_path(word)
            yield "lists", f"/item/{site.enc(word)}"
    for index in range(LINKING_ENTRIES):
        for link in iter_links(site.make_entry(index)):
            yield "links", link.path
    for target in FIXED_TARGETS:
        yield "fixed", target


def _answer_line(app: Replica, target: str, headers: dict[str, str] | None = None) -> bytes:
    response = app.handle("GET", target, "127.0.0.1", headers)
    body = hashlib.sha256(response.body).hexdigest()
    return f"{target} {response.status} {response.content_type} {response.headers} {body}\n".encode()


def digests() -> dict[str, str]:
    """Group name -> sha256 of the answers in that group, for every site of SITES."""
    found: dict[str, str] = {}
    for seed, self_links in SITES:
        site = Site(ENTRIES, seed)
        app = Replica(site, self_links=self_links, cache_mb=0)
        app.bind(ORIGIN)
        prefix = f"seed{seed}{'-self' if self_links else ''}"
        groups: dict[str, hashlib._Hash] = {}
        for group, target in _targets(site):
            groups.setdefault(group, hashlib.sha256()).update(_answer_line(app, target))
        app.advance(0.3)
        epoch = groups["epoch1"] = hashlib.sha256()
        for index in range(site.entry_count):
            path = site.entry_path(index)
            etag, _modified = site.validators(index)
            epoch.update(_answer_line(app, path))
            epoch.update(_answer_line(app, path, {"if-none-match": etag}))
        found.update((f"{prefix}:{group}", digest.hexdigest()) for group, digest in groups.items())
    return found


@pytest.fixture(scope="module")
def current() -> dict[str, str]:
    return digests()


def test_answers_are_the_committed_bytes(current: dict[str, str]) -> None:
    expected = json.loads(DIGESTS.read_text())
    changed = sorted(group for group in expected if current.get(group) != expected[group])
    assert sorted(current) == sorted(expected)
    assert not changed, f"the replica's answers changed in {changed}"


if __name__ == "__main__":
    DIGESTS.parent.mkdir(exist_ok=True)
    DIGESTS.write_text(json.dumps(digests(), indent=2, sort_keys=True) + "\n")
    sys.exit(0)
