"""Tests of the offline Baike replica: generator, templates, HTTP server, answer key."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from parsel import Selector
from w3lib.encoding import resolve_encoding

from baike.guard import CAPTCHA_MARKERS
from baike.urls import canonicalize, download_url
from replica.layouts import Renderer
from replica.model import LAYOUT_2017, LAYOUT_2021, LAYOUT_2023, NO_TARGET, iter_links
from replica.pushback import ClientSeconds, EntryTimes, RateLimiter, Verdict
from replica.site import SAMPLE_NAME, Site, quote_name

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = 300
SEED = 3
STARTUP = re.compile(r"^replica: serving (\d+) entries \(seed (\d+)\) on (http://127\.0\.0\.1:\d+)$")


def samples_dir() -> Path | None:
    env = os.environ.get("BAIKE_SAMPLES")
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "baike-samples"
    return path if (path / "README.md").is_file() else None


SAMPLES = samples_dir()
needs_samples = pytest.mark.skipif(
    SAMPLES is None,
    reason="real Baike samples not found (set BAIKE_SAMPLES or put them in ../shared/baike-samples)",
)


# ---------------------------------------------------------------- server fixture


@dataclass
class Replica:
    proc: subprocess.Popen[str]
    origin: str
    stderr_path: Path
    first_line: str

    def get(self, target: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(urlsplit(self.origin).netloc, timeout=30)
        try:
            conn.request("GET", target, headers=headers or {})
            answer = conn.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            conn.close()

    def json(self, target: str) -> dict:
        status, _headers, body = self.get(target)
        assert status == 200
        return json.loads(body)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=15)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        stderr = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        self.stderr_path.unlink(missing_ok=True)
        assert "Traceback" not in stderr, stderr
        return code


def start_replica(*args: str, entries: int = ENTRIES, seed: int = SEED) -> Replica:
    handle, name = tempfile.mkstemp(prefix="replica-", suffix=".err")
    os.close(handle)
    sample_args = ["--samples", str(SAMPLES)] if SAMPLES else ["--no-samples"]
    with open(name, "w", encoding="utf-8") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "replica",
                "--port",
                "0",
                "--entries",
                str(entries),
                "--seed",
                str(seed),
                *sample_args,
                *args,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            encoding="utf-8",
        )
    assert proc.stdout is not None
    line = proc.stdout.readline().rstrip("\n")
    match = STARTUP.match(line)
    if not match:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        raise AssertionError(f"bad start-up line {line!r}: {Path(name).read_text()}")
    return Replica(proc, match.group(3), Path(name), line)


@pytest.fixture(scope="module")
def replica() -> Iterator[Replica]:
    server = start_replica()
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def site() -> Site:
    return Site(ENTRIES, SEED, SAMPLES)


# ---------------------------------------------------------------- a plain parser


def collapse(text: str) -> str:
    return " ".join(text.replace("\xa0", " ").split())


_NO_CITES = "text()[not(ancestor::sup) and not(ancestor::a[contains(@class,'sup-anchor')])]"


def clean(node: Selector) -> str:
    return collapse("".join(node.xpath(".//" + _NO_CITES).getall()))


_TITLE_SENSE = re.compile(r"<title>[^<]*?（([^<]+)）_百度百科</title>")


def _script_id(pattern: str, html: str) -> int | None:
    found = re.search(pattern + r"""\s*:\s*["'](\d+)""", html)
    return int(found.group(1)) if found else None


def page_kind(html: str) -> str:
    """ "entry", "list" (a disambiguation list page) or "other" (help, special, error pages)."""
    sel = Selector(text=html)
    if sel.css("div.lemmaWgt-subLemmaListTitle"):
        return "list"
    if "window.PAGE_DATA = " in html or sel.css("dd.lemmaWgt-lemmaTitle-title > h1"):
        return "entry"
    return "other"


def list_senses(html: str) -> list[tuple[str, int, str]]:
    """(href, data-lemmaid, text) of every sense a list page offers."""
    return [
        (a.attrib["href"], int(a.attrib["data-lemmaid"]), a.xpath("string()").get())
        for a in Selector(text=html).css("ul.para-list li div.para a")
    ]


def parse_page(html: str) -> dict | None:
    """Fields of an entry page, read the way a simple crawler would; None if not an entry."""
    sel = Selector(text=html)
    blob = re.search(r"window\.PAGE_DATA = (\{.*?\});</script>", html)
    if blob:
        data = json.loads(blob.group(1))
        infobox = {item["title"]: item["data"][0]["text"] for item in data["card"]["left"] + data["card"]["right"]}
        return {
            "title": data["lemmaTitle"],
            "subtitle": data["lemmaDesc"] or None,
            "summary": data["abstractPlain"],
            "infobox": infobox,
            "lemma_id": data["lemmaId"],
            "old_lemma_id": None,
            "sub_lemma_id": None,
        }
    title = sel.css("dd.lemmaWgt-lemmaTitle-title > h1::text").get()
    if title is None or page_kind(html) != "entry":
        return None
    subtitle = sel.css("dd.lemmaWgt-lemmaTitle-title > h2::text").get()
    if subtitle is None:  # a star page: the bar's selected item, else the <title> brackets
        in_title = _TITLE_SENSE.search(html)
        subtitle = sel.css("ul.polysemantList-wrapper li span.selected::text").get() or (in_title and in_title.group(1))
    paras = sel.css("div.lemma-summary > div.para")
    if paras:
        summary = " ".join(clean(p) for p in paras)
    else:  # an empty summary block: the lead paragraph of the main content
        lead = sel.css("div.main-content div.para")
        summary = clean(lead[0]) if lead else ""
    names = sel.css("div.basic-info dt.basicInfo-item.name")
    values = sel.css("div.basic-info dd.basicInfo-item.value")
    return {
        "title": collapse(title),
        "subtitle": collapse(subtitle).strip("（）") if subtitle else None,
        "summary": summary,
        "infobox": {"".join(n.xpath("string()").get().split()): clean(v) for n, v in zip(names, values, strict=False)},
        "lemma_id": _script_id("newLemmaId", html),
        "old_lemma_id": _script_id("(?<![A-Za-z])lemmaId", html),
        "sub_lemma_id": _script_id("subLemmaId", html),
    }


def decode_body(content_type: str, body: bytes) -> str:
    """The page's text, in the charset its Content-Type header declares (as Scrapy resolves it)."""
    declared = re.search(r"charset=([\w-]+)", content_type)
    return body.decode(resolve_encoding(declared.group(1) if declared else "utf-8"))


def parse_react_hooks(html: str) -> dict:
    """The stable hooks of the React layout (not PAGE_DATA)."""
    sel = Selector(text=html)
    subtitle = sel.css(".J-polysemantText::text").get()
    return {
        "title": collapse(sel.css("h1.J-lemma-title::text").get() or ""),
        "subtitle": collapse(subtitle) if subtitle else None,
        "summary": " ".join(clean(p) for p in sel.css(".J-summary > div")),
        "infobox": {
            "".join(n.xpath("string()").get().split()): clean(v)
            for n, v in zip(sel.css(".J-basic-info dt"), sel.css(".J-basic-info dd"), strict=False)
        },
    }


def hrefs(html: str) -> list[str]:
    return Selector(text=html).css("a::attr(href)").getall()


# ---------------------------------------------------------------- generator


def test_start_line_and_clean_exit() -> None:
    server = start_replica(entries=50, seed=9)
    assert server.first_line.startswith("replica: serving 50 entries (seed 9) on http://127.0.0.1:")
    status, _headers, _body = server.get("/robots.txt")
    assert status == 200
    assert server.stop() == 0


def test_site_is_deterministic() -> None:
    first, second, other = Site(ENTRIES, SEED), Site(ENTRIES, SEED), Site(ENTRIES, SEED + 1)
    assert first.word_names == second.word_names
    assert list(first.entry_id) == list(second.entry_id)
    one, two = Renderer(first), Renderer(second)
    for index in range(0, ENTRIES, 7):
        assert one.entry_page(index) == two.entry_page(index)
    assert first.answer_key() == second.answer_key()
    assert first.word_names != other.word_names


def test_served_bytes_do_not_depend_on_the_run(replica: Replica) -> None:
    again = start_replica()
    try:
        site = Site(ENTRIES, SEED)
        for index in range(0, ENTRIES, 23):
            path = site.entry_path(index)
            assert replica.get(path)[2] == again.get(path)[2], path
    finally:
        assert again.stop() == 0


def test_generation_is_fast_and_ids_unique() -> None:
    started = time.perf_counter()
    site = Site(100_000, 1)
    assert time.perf_counter() - started < 5.0
    assert site.entry_count == 100_000
    ids = list(site.entry_id)
    assert len(set(ids)) == len(ids)
    assert all(100_000 <= lemma < 100_000_000 for lemma in ids)
    assert len(set(site.word_names)) == len(site.word_names)
    assert not set(site.synonyms) & set(site.by_name)


def test_names_are_mixed_and_safe(site: Site) -> None:
    names = site.word_names
    latin = [n for n in names if n.isascii()]
    assert {"C++", "C#", "Guido van Rossum", "Node.js"} <= set(names)
    assert len(latin) >= 8 and len(latin) < len(names) / 3
    for name in names:
        assert name == name.strip() and "  " not in name
        assert not set(name) & set("/?%&<>\"'\\")
        assert quote_name(name) == quote(name, safe="")


def test_small_site_is_mostly_reachable(site: Site) -> None:
    reachable = site.reachable()
    assert len(reachable) >= 0.9 * ENTRIES
    assert site.canonical_url(reachable[0]) == site.start_url()
    key = site.answer_key()
    assert list(key) == [site.canonical_url(i) for i in reachable]


def test_canonical_urls_agree_with_baike_urls(site: Site) -> None:
    for index in range(site.page_count):
        url = site.canonical_url(index)
        assert canonicalize(url) == url
        assert url == f"https://baike.baidu.com/item/{quote(site.entry_name(index), safe='')}/{site.entry_id[index]}"


def test_link_targets_resolve_like_the_router(site: Site) -> None:
    """Every link's precomputed target is where its href really leads."""
    renderer = Renderer(site)
    for index in range(0, ENTRIES, 5):
        base = site.canonical_url(index)
        for link in iter_links(site.entry(index)):
            href = renderer.href(link)
            assert site.resolve_url(href, base=base) == link.target, href
            if link.target != NO_TARGET:
                assert canonicalize(href, base=base) is not None, href


def test_answer_summaries_are_clean(site: Site) -> None:
    key = site.answer_key()
    for url, fields in key.items():
        assert set(fields) == {"title", "subtitle", "summary", "infobox", "lemma_id", "old_lemma_id", "sub_lemma_id"}
        summary = fields["summary"]
        assert summary and summary == collapse(summary)
        assert "\xa0" not in summary and not re.search(r"\[\d+(-\d+)?\]", summary)
        assert all(name == "".join(name.split()) for name in fields["infobox"])
        assert url.endswith(f"/{fields['lemma_id']}")
        assert fields["subtitle"] is None or not fields["subtitle"].startswith("（")


# ---------------------------------------------------------------- templates


@pytest.mark.parametrize("layout", [LAYOUT_2017, LAYOUT_2021, LAYOUT_2023])
def test_each_layout_parses_to_the_answer_key(replica: Replica, site: Site, layout: int) -> None:
    checked = 0
    for index in range(ENTRIES):
        if site.entry(index).layout != layout:
            continue
        status, headers, body = replica.get(site.entry_path(index))
        charset = site.charset_of(index)
        assert status == 200 and headers["content-type"] == f"text/html; charset={charset}"
        html = decode_body(headers["content-type"], body)
        assert ('<meta charset="UTF-8">' in html or '<meta charset="utf-8">' in html) == (charset == "utf-8")
        expected = site.expected(index)
        assert parse_page(html) == expected
        if layout == LAYOUT_2023:
            hooks = parse_react_hooks(html)
            assert hooks == {k: expected[k] for k in hooks}
            assert re.search(r'class="lemmaTitle_\w{5} J-lemma-title"', html)
            assert 'data-text="true"' in html
            assert expected["old_lemma_id"] is None and expected["sub_lemma_id"] is None
        else:
            assert 'class="lemmaWgt-lemmaTitle-title' in html
            assert f'lemmaId:"{site.entry(index).old_id}"' in html
            assert f'subLemmaId:"{site.entry(index).sub_id}"' in html
            assert (expected["old_lemma_id"], expected["sub_lemma_id"]) == (
                site.entry(index).old_id,
                site.entry(index).sub_id,
            )
        if layout == LAYOUT_2017:
            assert "<div class=para label-module=para>" in html and "&nbsp;" in html
        if layout == LAYOUT_2021:
            assert "J-lemma-title" in html and "lemma-summary J-summary" in html and "para MARK_MODULE" in html
            assert "J-basic-info" in html and "播报" in html and "data-pid=" in html
        checked += 1
        if checked == 12:
            break
    assert checked >= 5


def test_react_deploys_and_polysemant_hooks(site: Site) -> None:
    renderer = Renderer(site)
    suffixes = set()
    polysemant_seen = False
    for index in range(ENTRIES):
        entry = site.entry(index)
        if entry.layout != LAYOUT_2023:
            continue
        html = renderer.entry_text(index)
        suffixes.add(re.search(r'class="(lemmaTitle_\w{5}) J-lemma-title"', html).group(1))
        data = json.loads(re.search(r"window\.PAGE_DATA = (\{.*?\});</script>", html).group(1))
        lemmas = data["navigation"]["lemmas"]
        assert [lemma["lemmaId"] for lemma in lemmas] == [site.entry_id[s] for s in entry.senses]
        if len(entry.senses) > 1:
            polysemant_seen = True
            assert "J-polysemantText" in html
            assert all(lemma["lemmaDesc"] for lemma in lemmas)
    assert "lemmaTitle_qmNnR" in suffixes and len(suffixes) >= 2
    assert polysemant_seen


def test_polysemant_bar_in_old_layouts(site: Site) -> None:
    renderer = Renderer(site)
    seen = 0
    for index in range(ENTRIES):
        entry = site.entry(index)
        if len(entry.senses) < 2 or entry.layout == LAYOUT_2023:
            continue
        sel = Selector(text=renderer.entry_text(index))
        items = sel.css("ul.polysemantList-wrapper li")
        assert len(items) == len(entry.senses)
        assert sel.css("ul.polysemantList-wrapper li span.selected::text").get() == entry.subtitle
        assert len(sel.css("ul.polysemantList-wrapper li a")) == len(entry.senses) - 1
        seen += 1
    assert seen >= 2


def test_pages_are_realistic(site: Site) -> None:
    renderer = Renderer(site)
    sizes, totals, entry_links = [], [], []
    for index in range(0, ENTRIES, 3):
        html = renderer.entry_text(index)
        links = hrefs(html)
        base = site.canonical_url(index)
        sizes.append(len(renderer.entry_page(index)))
        totals.append(len(links))
        entry_links.append(sum(1 for href in links if canonicalize(href, base=base)))
        assert "<script" in html and "<style" in html
    assert sum(sizes) / len(sizes) > 20_000
    assert sum(totals) / len(totals) >= 100
    assert sum(entry_links) > 0.5 * sum(totals)


def test_every_url_form_appears(site: Site) -> None:
    renderer = Renderer(site)
    found: list[str] = []
    for index in range(ENTRIES):
        found.extend(hrefs(renderer.entry_text(index)))
    text = "\n".join(found)
    patterns = {
        "percent-encoded name": r"^/item/(%[0-9A-F]{2})+$",
        "name and id": r"^/item/(%[0-9A-F]{2})+/\d{6,8}$",
        "id 0": r"^/item/[^/]+/0(\?|$)",
        "raw Chinese": r"^/item/[\u4e00-\u9fff]+(/\d+)?$",
        "absolute": r"^https://baike\.baidu\.com/item/",
        "http absolute": r"^http://baike\.baidu\.com/item/",
        "fromModule": r"\?fromModule=lemma_inlink$",
        "aladdin": r"\?fr=aladdin$",
        "fragment": r"^/item/[^#]+#\d_\d$",
        "legacy view": r"^/view/\d+\.htm$",
        "legacy subview": r"^/subview/\d+/\d+\.htm",
        "encoded plus": r"^/item/C%2B%2B",
        "lower-case escapes": r"^/item/(%[0-9a-f]{2})+/\d+$",
        "trailing slash": r"^/item/[^/]+/$",
        "help": r"^/help",
        "help site": r"^https://help\.baidu\.com/",
        "user": r"^/usercenter",
        "planet": r"/planet/talk\?",
        "history": r"^/historylist/",
        "image": r"^/pic/",
        "external": r"^http://www\.\w+-news\.com\.cn/",
    }
    for label, pattern in patterns.items():
        assert re.search(pattern, text, re.M), label
    assert "https://bkimg.cdn.bcebos.com/pic/" in renderer.entry_text(0)
    sample_hrefs = [h for h in found if SAMPLE_NAME in h or quote(SAMPLE_NAME) in h]
    assert sample_hrefs, "generated pages link to the real sample entry"


# ---------------------------------------------------------------- HTTP behaviour


def test_redirects(replica: Replica, site: Site) -> None:
    polysemant = next(i for i in range(ENTRIES) if site.is_polysemant(i) and site.has_default(site.entry_word[i]))
    word = site.entry_word[polysemant]
    enc = site.enc(word)
    default = site.word_first[word]
    loc = lambda target: replica.get(target)[1].get("location")  # noqa: E731
    assert replica.get(f"/item/{enc}")[0] == 302
    assert loc(f"/item/{enc}") == site.canonical_url(default)
    assert loc(f"/item/{enc}/0?fromModule=lemma_inlink") == site.canonical_url(default)
    second = site.entry_id[default + 1]
    assert replica.get(f"/item/{enc}/{second}")[0] == 200
    assert loc(f"/view/{site.word_old[word]}.htm") == site.canonical_url(default)
    assert loc(f"/subview/{site.word_old[word]}/{site.entry_sub[default + 1]}.htm") == site.canonical_url(default + 1)
    assert loc(f"/item/{enc}/12345") == "https://baike.baidu.com/error.html?status=404"
    assert loc("/item/" + quote("不存在的词条名字")) == "https://baike.baidu.com/error.html?status=404"
    synonym, (syn_id, target) = next(iter(site.synonyms.items()))
    expected = f"{site.canonical_url(target)}?fromtitle={quote(synonym, safe='')}&fromid={syn_id}"
    assert loc("/item/" + quote(synonym)) == expected
    status, headers, body = replica.get("/error.html?status=404")
    assert status == 200 and "text/html" in headers["content-type"] and body
    status, headers, body = replica.get(expected.replace("https://baike.baidu.com", ""))
    assert status == 200 and parse_page(decode_body(headers["content-type"], body))["lemma_id"] == site.entry_id[target]


def test_raw_utf8_request_target_is_a_bad_request(replica: Replica, site: Site) -> None:
    """A request target is ASCII (RFC 9112, section 3.2): raw UTF-8 gets a 400, its percent-encoded form the page."""
    name = site.entry_name(0)
    raw = f"GET /item/{name}/{site.entry_id[0]} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    assert raw_request(replica, raw).startswith(b"HTTP/1.1 400 ")
    encoded = raw.replace(name.encode(), quote(name).encode())
    assert raw_request(replica, encoded).startswith(b"HTTP/1.1 200 ")


def test_robots(replica: Replica) -> None:
    status, headers, body = replica.get("/robots.txt")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert b"Allow: /item/" in body and b"Disallow: /search" in body and b"Disallow: /edit" in body


def test_keep_alive_and_headers(replica: Replica, site: Site) -> None:
    conn = http.client.HTTPConnection(urlsplit(replica.origin).netloc, timeout=10)
    try:
        for index in range(5):
            conn.request("GET", site.entry_path(index))
            answer = conn.getresponse()
            body = answer.read()
            assert answer.status == 200
            assert int(answer.getheader("Content-Length")) == len(body)
            assert answer.getheader("Content-Type") == f"text/html; charset={site.charset_of(index)}"
            assert answer.getheader("Connection") == "keep-alive"
    finally:
        conn.close()


def test_stats_and_reset(replica: Replica, site: Site) -> None:
    assert replica.json("/__replica__/reset") == {"ok": True}
    path = site.entry_path(1)
    replica.get(path)
    replica.get(path + "?fromModule=lemma_inlink")
    replica.get(f"/item/{site.enc(site.entry_word[1])}")
    replica.get("/no/such/page")
    stats = replica.json("/__replica__/stats")
    assert set(stats) == {
        "total",
        "by_status",
        "pages",
        "by_path",
        "page_paths",
        "by_kind",
        "list_pages",
        "help_pages",
        "subviews",
        "captchas",
        "too_many_requests",
        "pushbacks",
        "per_second",
        "full_bodies",
        "not_modified",
        "body_bytes",
    }
    assert stats["total"] == 4
    assert stats["by_status"] == {"200": 2, "302": 1, "404": 1}
    assert stats["pages"] == 2
    assert stats["page_paths"] == {path: 2}
    assert stats["by_kind"] == {"entry": 2, "redirect": 1, "not-found": 1}
    assert stats["list_pages"] == stats["help_pages"] == {} and stats["subviews"] == 0
    assert stats["by_path"][path + "?fromModule=lemma_inlink"] == 1
    conn = http.client.HTTPConnection(urlsplit(replica.origin).netloc, timeout=10)
    conn.request("POST", "/__replica__/reset", body=b"", headers={"Content-Length": "0"})
    assert conn.getresponse().status == 200
    conn.close()
    assert replica.json("/__replica__/stats")["total"] == 0


def raw_request(replica: Replica, data: bytes) -> bytes:
    """Send raw bytes; read until the server closes (requests end with Connection: close)."""
    parts = urlsplit(replica.origin)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


BAD_REQUESTS = {
    "garbage query": (b"GET /item/abc?%%zz HTTP/1.1\r\nHost: x\r\n\r\n", (400, 404)),
    "bad utf-8 escape": (b"GET /item/%E9%83 HTTP/1.1\r\nHost: x\r\n\r\n", (400, 404)),
    "bad escape": (b"GET /item/%G1 HTTP/1.1\r\nHost: x\r\n\r\n", (400, 404)),
    "huge path": (b"GET /item/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", (414, 400)),
    "post": (b"POST /item/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", (405,)),
    "put": (b"PUT /item/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", (405,)),
    "head": (b"HEAD /item/abc HTTP/1.1\r\nHost: x\r\n\r\n", (405,)),
    "unknown path": (b"GET /nothing/here HTTP/1.1\r\nHost: x\r\n\r\n", (404,)),
    "no version": (b"GET /\r\n\r\n", (400,)),
    "http/2": (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", (400,)),
    "header without colon": (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", (400,)),
    "chunked body": (b"POST /item/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", (400,)),
    "not a path": (b"GET item HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    "control byte": (b"GET /item/a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    "bad id": (b"GET /item/abc/12ab HTTP/1.1\r\nHost: x\r\n\r\n", (302,)),
    "huge header": (b"GET / HTTP/1.1\r\nX: " + b"a" * 40000 + b"\r\n\r\n", (431, 400)),
}


@pytest.mark.parametrize("label", list(BAD_REQUESTS))
def test_bad_requests_get_4xx(replica: Replica, label: str) -> None:
    data, allowed = BAD_REQUESTS[label]
    if b"Connection:" not in data:
        data = data.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1) if b"HTTP/1" in data else data
    answer = raw_request(replica, data)
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert match, answer[:200]
    assert int(match.group(1)) in allowed
    assert b"Traceback" not in answer
    assert replica.get("/robots.txt")[0] == 200


def test_pipelined_requests_keep_their_order(replica: Replica, site: Site) -> None:
    data = (
        b"HEAD /item/abc HTTP/1.1\r\nHost: x\r\n\r\n"
        + f"GET {site.entry_path(0)} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        + b"GET /robots.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    answer = raw_request(replica, data)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) [A-Z]", answer)
    assert statuses == [b"405", b"200", b"200"]
    assert answer.endswith(b"Disallow: /__replica__/\n")


def test_anti_bot_and_latency() -> None:
    site = Site(ENTRIES, SEED)
    path = site.entry_path(0)
    captcha = start_replica("--captcha-rate", "1")
    try:
        status, headers, _body = captcha.get(path)
        assert status == 302
        assert headers["location"].startswith("https://baike.baidu.com/anticrawl/captchaview?")
        status, _headers, body = captcha.get(urlsplit(headers["location"]).path)
        assert status == 200 and "<title>百度安全验证</title>" in body.decode()
        assert captcha.get("/robots.txt")[0] == 200
        assert captcha.json("/__replica__/stats")["captchas"] == 1
    finally:
        assert captcha.stop() == 0
    blocked = start_replica("--block-rate", "1", "--latency-ms", "150")
    try:
        started = time.perf_counter()
        statuses = [blocked.get(path)[0] for _ in range(4)]
        assert time.perf_counter() - started >= 0.6
        assert set(statuses) <= {403, 429} and statuses
        assert blocked.json("/__replica__/stats")["too_many_requests"] == statuses.count(429)
    finally:
        assert blocked.stop() == 0


def test_anti_bot_is_off_by_default_and_never_changes_pages(replica: Replica, site: Site) -> None:
    statuses = {replica.get(site.entry_path(i))[0] for i in range(40)}
    assert statuses == {200}
    noisy = start_replica("--captcha-rate", "0.3", "--block-rate", "0.2")
    try:
        seen = []
        for index in range(30):
            status, _headers, body = noisy.get(site.entry_path(index))
            seen.append(status)
            if status == 200:
                assert body == replica.get(site.entry_path(index))[2]
        assert 200 in seen and any(s != 200 for s in seen)
    finally:
        assert noisy.stop() == 0


def test_self_links() -> None:
    server = start_replica("--self-links", entries=60)
    try:
        site = Site(60, SEED)
        index = next(
            i for i in range(60) if site.entry(i).layout == LAYOUT_2021 and site.has_default(site.entry_word[i])
        )
        html = server.get(site.entry_path(index))[2].decode()
        assert server.origin + "/item/" in html
        assert "https://baike.baidu.com/item/" not in html
        location = server.get(f"/item/{site.enc(site.entry_word[index])}")[1]["location"]
        assert location == server.origin + site.entry_path(site.word_first[site.entry_word[index]])
        for href in hrefs(html):
            if href.startswith(server.origin + "/item/"):
                assert canonicalize(href, mirror=server.origin) is not None
    finally:
        assert server.stop() == 0


# ---------------------------------------------------------------- pushback: rate limit, penalty, storm


Answer = tuple[int, dict[str, str]]


def is_captcha(answer: Answer) -> bool:
    """A redirect the crawler's guard takes for Baike's captcha."""
    status, headers = answer
    location = headers.get("location", "").encode()
    return status == 302 and any(marker in location for marker in CAPTCHA_MARKERS)


def hammer(replica: Replica, path: str, seconds: float) -> tuple[list[Answer], float]:
    """GET ``path`` back to back over one keep-alive connection for ``seconds``: answers, time taken."""
    conn = http.client.HTTPConnection(urlsplit(replica.origin).netloc, timeout=30)
    answers: list[Answer] = []
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < seconds:
            conn.request("GET", path)
            answer = conn.getresponse()
            answer.read()
            answers.append((answer.status, {k.lower(): v for k, v in answer.getheaders()}))
    finally:
        conn.close()
    return answers, time.perf_counter() - started


def test_token_bucket_serves_rate_plus_burst_and_captchas_the_rest() -> None:
    rate, burst = 5, 4
    server = start_replica("--max-rate", str(rate), "--burst", str(burst), "--penalty", "0")
    try:
        path = Site(ENTRIES, SEED).entry_path(0)
        answers, elapsed = hammer(server, path, 2.0)
        served = sum(1 for status, _headers in answers if status == 200)
        pushed = [answer for answer in answers if answer[0] != 200]
        assert len(answers) > 3 * served, "the loop must ask much faster than the rate"
        assert pushed and all(is_captcha(answer) for answer in pushed)
        assert burst + rate * elapsed - 4 <= served <= burst + rate * elapsed + 1
        times = server.json("/__replica__/times?since=0")
        assert times["count"] == served and times["complete"]
        stamps = times["times"]
        for first in range(len(stamps)):  # the bucket's promise, on the server's own clock
            for last in range(first, len(stamps)):
                assert last - first + 1 <= burst + rate * (stamps[last] - stamps[first]) + 1e-6
        stats = server.json("/__replica__/stats")
        assert stats["captchas"] == len(pushed) == stats["pushbacks"]["rate"]
        assert stats["by_status"] == {"200": served, "302": len(pushed)}
        assert sum(stats["per_second"]["127.0.0.1"].values()) == len(answers)
        assert max(stats["per_second"]["127.0.0.1"].values()) > rate + burst
        # Only entry requests are limited.
        assert server.get("/robots.txt")[0] == 200 and server.get("/")[0] == 200
        assert server.get(urlsplit(pushed[0][1]["location"]).path)[0] == 200
    finally:
        assert server.stop() == 0


def test_penalty_restarts_with_every_request_during_it() -> None:
    server = start_replica("--max-rate", "5", "--burst", "2", "--penalty", "2")
    try:
        path = Site(ENTRIES, SEED).entry_path(0)
        statuses = []
        while not statuses or statuses[-1] == 200:  # a new connection each time: the limit is per address
            statuses.append(server.get(path)[0])
            assert len(statuses) < 50
        violated = time.monotonic()
        assert statuses[0] == 200 and statuses[-1] == 302 and len(statuses) >= 3
        penalised = []
        while time.monotonic() - violated < 3.5:  # longer than the penalty, with a request every 0.5 s
            time.sleep(0.5)
            status, headers, _body = server.get(path)
            penalised.append((status, headers))
            assert server.get("/robots.txt")[0] == 200
        assert len(penalised) >= 5 and all(is_captcha(answer) for answer in penalised)
        time.sleep(2.3)  # quiet for longer than the penalty: served again
        assert server.get(path)[0] == 200
        stats = server.json("/__replica__/stats")
        assert stats["pushbacks"] == {"rate": 1, "penalty": len(penalised), "storm": 0}
        assert stats["captchas"] == 1 + len(penalised) and stats["too_many_requests"] == 0
    finally:
        assert server.stop() == 0


def test_429_pushback_sends_retry_after() -> None:
    server = start_replica("--max-rate", "2", "--burst", "1", "--penalty", "3", "--pushback", "429")
    try:
        path = Site(ENTRIES, SEED).entry_path(0)
        assert server.get(path)[0] == 200
        answers = [server.get(path)[:2] for _ in range(3)]
        assert [(status, headers.get("retry-after")) for status, headers in answers] == [(429, "3")] * 3
        assert "location" not in answers[0][1]
        stats = server.json("/__replica__/stats")
        assert stats["too_many_requests"] == 3 and stats["captchas"] == 0
        assert stats["pushbacks"] == {"rate": 1, "penalty": 2, "storm": 0}
        assert server.json("/__replica__/reset") == {"ok": True}  # also forgets the penalty
        assert server.get(path)[0] == 200
        assert server.json("/__replica__/reset") == {"ok": True}
        server.json("/__replica__/storm?seconds=30")
        status, headers, _body = server.get(path)
        assert status == 429 and 28 <= int(headers["retry-after"]) <= 30
        server.json("/__replica__/storm?seconds=0")
        assert server.get(path)[0] == 200
        assert server.json("/__replica__/stats")["pushbacks"] == {"rate": 0, "penalty": 0, "storm": 1}
    finally:
        assert server.stop() == 0


def test_storm_from_the_endpoint() -> None:
    server = start_replica()
    try:
        site = Site(ENTRIES, SEED)
        assert not server.json("/__replica__/storm")["active"]
        storm = server.json("/__replica__/storm?seconds=1.5")
        assert storm["active"] and storm["end"] - storm["start"] == pytest.approx(1.5)
        redirect = server.get(f"/item/{site.enc(site.entry_word[0])}")[:2]
        assert is_captcha(server.get(site.entry_path(1))[:2]) and is_captcha(redirect)
        assert server.get("/robots.txt")[0] == 200 and server.get("/help")[0] == 200
        time.sleep(max(0.0, storm["end"] - time.time()) + 0.05)
        assert server.get(site.entry_path(1))[0] == 200
        server.json("/__replica__/storm?seconds=600")
        assert is_captcha(server.get(site.entry_path(2))[:2])
        assert not server.json("/__replica__/storm?seconds=0")["active"]
        assert server.get(site.entry_path(2))[0] == 200
        for bad in ("-1", "abc", "inf", "nan"):
            assert server.get(f"/__replica__/storm?seconds={bad}")[0] == 400
        stats = server.json("/__replica__/stats")
        assert stats["pushbacks"] == {"rate": 0, "penalty": 0, "storm": 3} and stats["captchas"] == 3
    finally:
        assert server.stop() == 0


def test_storm_from_the_command_line() -> None:
    server = start_replica("--storm-at", "2", "--storm-seconds", "1.5")
    try:
        started = time.time()
        path = Site(ENTRIES, SEED).entry_path(0)
        status = server.get(path)[0]
        storm = server.json("/__replica__/storm")
        assert storm["end"] - storm["start"] == pytest.approx(1.5)
        assert started - 1.0 <= storm["start"] - 2 <= started
        if storm["now"] < storm["start"]:  # asked before the storm (a slow machine may be later)
            assert status == 200
        time.sleep(max(0.0, storm["start"] - time.time()) + 0.05)
        assert is_captcha(server.get(path)[:2])
        time.sleep(max(0.0, storm["end"] - time.time()) + 0.05)
        assert server.get(path)[0] == 200
        assert server.json("/__replica__/stats")["pushbacks"]["storm"] >= 1
    finally:
        assert server.stop() == 0


def test_pushback_flags_are_checked() -> None:
    for args in (
        ["--max-rate", "0"],
        ["--max-rate", "5", "--burst", "0.5"],
        ["--burst", "3"],
        ["--pushback", "403"],
        ["--storm-seconds", "3"],
        ["--penalty", "-1"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "replica", "--port", "0", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2 and "Traceback" not in done.stderr, args


def test_per_second_counts_times_and_reset(replica: Replica, site: Site) -> None:
    assert replica.json("/__replica__/reset") == {"ok": True}
    started = time.time()
    for index in range(3):
        assert replica.get(site.entry_path(index))[0] == 200
    assert replica.get(f"/item/{site.enc(site.entry_word[1])}")[0] == 302  # an entry request, not a page
    assert replica.get("/robots.txt")[0] == 200  # not an entry request
    ended = time.time()
    stats = replica.json("/__replica__/stats")
    per_second = stats["per_second"]
    assert list(per_second) == ["127.0.0.1"] and sum(per_second["127.0.0.1"].values()) == 4
    assert all(int(started) <= int(second) <= int(ended) for second in per_second["127.0.0.1"])
    assert stats["captchas"] == stats["too_many_requests"] == 0
    assert stats["pushbacks"] == {"rate": 0, "penalty": 0, "storm": 0}
    times = replica.json(f"/__replica__/times?since={started}")
    assert times["count"] == 3 and times["complete"] and times["since"] == started
    assert times["times"] == sorted(times["times"]) and all(started <= t <= ended for t in times["times"])
    assert ended <= times["now"]
    middle = times["times"][1]
    assert replica.json(f"/__replica__/times?since={started}&until={middle}")["times"] == times["times"][:1]
    assert replica.json(f"/__replica__/times?since={ended}")["count"] == 0
    assert replica.get("/__replica__/times?since=abc")[0] == 400
    assert replica.json("/__replica__/reset") == {"ok": True}
    stats = replica.json("/__replica__/stats")
    assert stats["per_second"] == {} and stats["total"] == 0
    assert replica.json("/__replica__/times")["times"] == []


def test_rate_limiter_on_a_fake_clock() -> None:
    limiter = RateLimiter(rate=5, burst=2, penalty=0)
    assert limiter.check("a", 100.0) is None and limiter.check("a", 100.0) is None
    assert limiter.check("a", 100.0) == Verdict("rate", 1)
    assert limiter.check("b", 100.0) is None  # per client
    assert limiter.check("a", 100.2) is None and limiter.check("a", 100.2) is not None
    assert limiter.check("a", 99.0) is not None  # a clock stepping back adds nothing
    penalised = RateLimiter(rate=5, burst=1, penalty=2)
    assert penalised.check("a", 0.0) is None
    assert penalised.check("a", 0.0) == Verdict("rate", 2)
    assert penalised.check("a", 1.9) == Verdict("penalty", 2)  # restarts: now until 3.9
    assert penalised.check("a", 3.8) == Verdict("penalty", 2)  # until 5.8
    assert penalised.check("a", 5.9) is None
    assert set(penalised.buckets) == {"a"}
    assert penalised.check("b", 60.0) is None and set(penalised.buckets) == {"b"}  # idle clients forgotten


def test_request_clock_is_bounded() -> None:
    seconds = ClientSeconds(keep=10)
    for second in range(100):
        seconds.count("a", second + 0.5)
    seconds.count("b", 100.2)
    assert seconds.as_dict() == {"a": {str(s): 1 for s in range(91, 100)}, "b": {"100": 1}}
    seconds.count("b", 200.0)
    assert seconds.as_dict() == {"b": {"200": 1}}
    times = EntryTimes(keep=5)
    for stamp in range(10):
        times.add(float(stamp))
    assert times.between(5.5) == ([6.0, 7.0, 8.0, 9.0], True)
    assert times.between(4.0) == ([5.0, 6.0, 7.0, 8.0, 9.0], False)
    assert times.between(0.0, 7.0) == ([5.0, 6.0], False)


# ---------------------------------------------------------------- answer key vs BFS


class Crawler:
    """A minimal crawler: canonical dedup, downloads through the replica as a mirror.

    Entry pages become records; list pages only lend their links (the senses).
    """

    def __init__(self, origin: str):
        self.origin = origin
        self.conn = http.client.HTTPConnection(urlsplit(origin).netloc, timeout=30)
        self.lists: set[str] = set()

    def fetch(self, url: str) -> tuple[int, str, str]:
        """GET ``url`` (a baike URL), following redirects through the mirror."""
        for _ in range(6):
            parts = urlsplit(url)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            self.conn.request("GET", target)
            answer = self.conn.getresponse()
            body = answer.read()
            if answer.status in (301, 302):
                location = answer.getheader("Location")
                url = download_url(location.replace("https://baike.baidu.com", self.origin), None)
                continue
            return answer.status, url, decode_body(answer.getheader("Content-Type", ""), body)
        raise AssertionError(f"redirect loop at {url}")

    def crawl(self, start: str) -> dict[str, dict]:
        seen = {canonicalize(start)}
        queue = deque(seen)
        pages: dict[str, dict] = {}
        while queue:
            canonical = queue.popleft()
            status, final, html = self.fetch(download_url(canonical, self.origin))
            page = canonicalize(final, mirror=self.origin)
            if status != 200 or page in pages:
                continue
            kind = page_kind(html)
            if kind == "list":
                self.lists.add(page)
            elif kind == "entry":
                pages[page] = parse_page(html)
            else:
                continue
            for href in hrefs(html):
                link = canonicalize(href, base=final, mirror=self.origin)
                if link and link not in seen:
                    seen.add(link)
                    queue.append(link)
        self.conn.close()
        return pages


def test_answer_key_matches_an_http_bfs(replica: Replica, site: Site) -> None:
    start = site.start_url()
    crawler = Crawler(replica.origin)
    crawled = crawler.crawl(start)
    key = site.answer_key(start)
    assert set(crawled) == set(key)
    for url, fields in key.items():
        assert crawled[url] == fields, url
    # every reachable list page was crawled through (at ?force=1, and at the bare name without a default)
    lists = site.reachable_lists(start)
    assert lists and {site.list_url(word) for word in lists} <= crawler.lists
    assert {canonicalize(url) for url in crawler.lists} <= {site.list_url(word) for word in lists} | {
        site.list_url(word).removesuffix("?force=1") for word in lists if not site.has_default(word)
    }
    served = replica.json("/__replica__/answer?start=" + quote(start, safe=""))
    assert served == json.loads(json.dumps(key, ensure_ascii=False))


# ---------------------------------------------------------------- real samples


def _readme_expectations(readme: str) -> dict[str, dict]:
    expected: dict[str, dict] = {}
    current = None
    for line in readme.splitlines():
        if line.startswith("#"):
            current = None
        head = re.match(r"^(old2017-[\w-]+\.html)$", line.strip())
        if head:
            current = expected.setdefault(head.group(1), {})
            continue
        if current is None or not line.startswith("- "):
            continue
        for key, value in re.findall(r"(title|subtitle|summary|infobox|other sense):? `([^`]*)`", line):
            current[key] = json.loads(value) if key == "infobox" else value
    return expected


@needs_samples
def test_samples_are_served_and_answered(replica: Replica, site: Site) -> None:
    assert SAMPLES is not None
    expectations = _readme_expectations((SAMPLES / "README.md").read_text(encoding="utf-8"))
    info = replica.json("/__replica__/info")
    assert len(info["samples"]) == 2
    by_body = {}
    for index in sorted(site.samples):
        status, _headers, body = replica.get(site.entry_path(index))
        assert status == 200
        by_body[body] = index
    assert len(expectations) == 2
    for filename, fields in expectations.items():
        body = (SAMPLES / filename).read_bytes()
        assert body in by_body, filename
        index = by_body[body]
        answer = site.expected(index)
        other = fields.pop("other sense")
        assert set(fields) == {"title", "subtitle", "summary", "infobox"}
        for key, value in fields.items():
            assert answer[key] == value, (filename, key)
        assert answer == parse_page(body.decode("utf-8"))
        assert other in hrefs(body.decode("utf-8"))
        other_index = site.resolve_url(other, base=site.canonical_url(index))
        assert other_index in site.samples and other_index != index
    first, second = sorted(site.samples)
    sub = site.entry_sub
    old = site.word_old[site.entry_word[first]]
    assert replica.get(f"/subview/{old}/{sub[first]}.htm")[1]["location"] == site.canonical_url(first)
    assert replica.get("/item/" + quote(SAMPLE_NAME))[1]["location"] == site.canonical_url(first)
    assert set(site.targets(first)) >= {second} and set(site.targets(second)) >= {first}
    key = site.answer_key()
    assert site.canonical_url(first) in key and site.canonical_url(second) in key
    assert all(site.expected(i)["old_lemma_id"] == old for i in (first, second))
    assert [site.expected(i)["sub_lemma_id"] for i in (first, second)] == [sub[first], sub[second]]
    # the samples' "共2个义项" link: a generated list page of the real senses
    word = site.entry_word[first]
    assert site.list_target(word) in site.targets(first)
    status, headers, body = replica.get(f"/item/{quote(SAMPLE_NAME)}?force=1")
    assert status == 200 and list_senses(decode_body(headers["content-type"], body)) == [
        (site.entry_path(i), site.entry_id[i], f"{SAMPLE_NAME}：{site.expected(i)['subtitle']}")
        for i in (first, second)
    ]


def test_no_samples_means_no_error(tmp_path: Path) -> None:
    site = Site(40, SEED, tmp_path / "missing")
    assert not site.samples and site.page_count == 40
    assert site.resolve_url("/item/" + quote(SAMPLE_NAME), base="https://baike.baidu.com/") == NO_TARGET
