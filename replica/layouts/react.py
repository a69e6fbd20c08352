"""Baike's 2023+ layout: a React app with CSS-module class names and ``window.PAGE_DATA``.

Modelled on real 2024 pages (fragment C in ``fragments-2020-2024.html`` and
the notes of the real samples): class names such as ``lemmaTitle_qmNnR``,
``text_BvQ2v`` and ``innerLink_zQv0z`` whose suffixes change with each deploy
(three deploys here, deploy 0 with the documented suffixes), text in
``span.text_*[data-text]``, stable hooks ``J-lemma-title``, ``J-summary``,
``J-basic-info``, ``J-polysemantText``, and the page's data as JSON in
``window.PAGE_DATA`` (``lemmaId``, ``lemmaTitle``, ``lemmaDesc``,
``card.left/right[]`` for the infobox, ``navigation.lemmas[]`` for the
senses). Links ``/item/<name>/<id>?fromModule=lemma_inlink``, id ``0`` when no
sense is fixed.
"""

from __future__ import annotations

import json
import random

from replica.layouts.shared import (
    _CATEGORIES,
    _LOADER_JS,
    _MONITOR_JS,
    _PRODUCTS,
    _WIDGET_JS,
    Base,
    _filler_css,
    _pad_key,
    _page_title,
)
from replica.model import LAYOUT_2023, Entry, Link, Segment, clean_text
from replica.site import DEPLOYS, Site

# CSS-module names of the React layout; each deploy gives them new suffixes.
MODULE_CLASSES = (
    "pageWrapper",
    "header",
    "searchBar",
    "navBar",
    "lemmaTitleBox",
    "lemmaTitle",
    "lemmaDesc",
    "polysemantText",
    "polysemant",
    "polysemantTitle",
    "polysemantList",
    "polysemantItem",
    "polysemantLink",
    "selected",
    "lemmaSummary",
    "para",
    "summary",
    "text",
    "innerLink",
    "supWrap",
    "basicInfo",
    "basicInfoBlock",
    "itemWrapper",
    "basicInfoItem",
    "itemName",
    "itemValue",
    "catalog",
    "catalogItem",
    "catalogList",
    "paraTitle",
    "level2",
    "level3",
    "mainContent",
    "sideContent",
    "relatedLemma",
    "hotLemma",
    "lemmaList",
    "referenceList",
    "referenceItem",
    "footer",
    "tagList",
    "tag",
    "albumList",
    "picture",
    "pictureImg",
    "contentWrapper",
    "toolBar",
    "toolButton",
    "audioPlay",
    "editLemma",
)
# The suffixes of deploy 0 are the ones documented for real 2024 pages.
_KNOWN_SUFFIXES = {"lemmaTitle": "qmNnR", "text": "BvQ2v", "innerLink": "zQv0z"}
_SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def deploy_suffixes(seed: int) -> list[dict[str, str]]:
    """Per-deploy CSS-module class names: deterministic from the site seed."""
    deploys = []
    for deploy in range(DEPLOYS):
        rng = random.Random(f"replica:{seed}:deploy:{deploy}")
        suffixes = {cls: "".join(rng.choice(_SUFFIX_CHARS) for _ in range(5)) for cls in MODULE_CLASSES}
        if deploy == 0:
            suffixes.update(_KNOWN_SUFFIXES)
        deploys.append({cls: f"{cls}_{suffix}" for cls, suffix in suffixes.items()})
    return deploys


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _json_script(value: object) -> str:
    return _JSON.encode(value).replace("</", "<\\/")


class ReactLayout(Base):
    """An entry page in the React layout, in the CSS-module names of the entry's deploy."""

    def __init__(self, site: Site, origin: str | None, footer: str):
        super().__init__(site, origin)
        self.deploys = deploy_suffixes(site.seed)
        # Per deploy: the constant head, body start and tail, and the hot-entries box, encoded once.
        self._static = [self._chunks(cls, footer) for cls in self.deploys]
        self._hot = [
            (
                f'<div class="{cls["hotLemma"]}"><h3>热门词条</h3><ul class="{cls["lemmaList"]}">'
                + "".join(
                    f'<li><a href="{self.href(link)}" target="_blank">{link.text}</a></li>'
                    for link in site.hot_links(LAYOUT_2023)
                )
                + "</ul></div>"
            ).encode("utf-8")
            for cls in self.deploys
        ]

    def _page_data(self, entry: Entry) -> dict:
        site = self.site
        half = (len(entry.infobox) + 1) // 2
        card = [{"title": key, "data": [{"text": clean_text(value)}]} for key, value in entry.infobox]
        subtitles = site.subtitles(site.entry_word[entry.index]) if len(entry.senses) > 1 else (entry.subtitle,)
        ids = site.entry_id
        lemmas = [
            {"lemmaId": ids[sense], "lemmaTitle": entry.name, "lemmaDesc": subtitles[position] or ""}
            for position, sense in enumerate(entry.senses)
        ]
        return {
            "lemmaId": entry.lemma_id,
            "lemmaTitle": entry.name,
            "lemmaDesc": entry.subtitle or "",
            "abstractPlain": " ".join([clean_text(p) for p in entry.summary]),
            "isPolysemant": len(entry.senses) > 1,
            "card": {"left": card[:half], "right": card[half:]},
            "navigation": {"lemmas": lemmas},
            "catalog": [{"title": s.title, "level": s.level - 1, "index": s.number} for s in entry.sections],
            "lemmaType": 0,
            "version": entry.deploy,
        }

    def render(self, entry: Entry) -> bytes:
        """2023+ React layout: CSS-module classes of the entry's deploy, PAGE_DATA JSON."""
        cls = self.deploys[entry.deploy]
        head_static, body_static, tail_static = self._static[entry.deploy]
        site = self.site
        name, lemma = entry.name, entry.lemma_id
        enc = site.enc(site.entry_word[entry.index])
        prefix = self._prefix
        head = (
            '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1"><meta name="referrer" content="always">'
            f'<title>{_page_title(entry)}</title><meta name="description" content="{clean_text(entry.summary[0])[:120]}...">'
            f'<link rel="stylesheet" href="https://baike.bdimg.com/static/baike-react/pkg/main_{entry.deploy:02d}.css">'
            f"<script>window.PAGE_DATA = {_json_script(self._page_data(entry))};</script></head>"
        )
        navbar = entry.chrome_links[0]
        parts = [f'<a href="{prefix[navbar.anchor]}{navbar.path}" target="_blank">{navbar.text}</a></div></div>']
        add = parts.append
        add(f'<div class="{cls["contentWrapper"]}"><div class="{cls["mainContent"]}">')
        if entry.sense_links:
            force = entry.chrome_links[1]
            subtitles = site.subtitles(site.entry_word[entry.index])
            items = []
            for position, link in enumerate(entry.sense_links):
                if link is None:
                    items.append(
                        f'<li class="{cls["polysemantItem"]} {cls["selected"]}"><span>{subtitles[position]}</span></li>'
                    )
                else:
                    items.append(
                        f'<li class="{cls["polysemantItem"]}"><a class="{cls["polysemantLink"]}" href="{self.href(link)}"'
                        f' title="{link.text}">{link.text}</a></li>'
                    )
            add(
                f'<div class="{cls["polysemant"]} J-polysemant">'
                f'<div class="{cls["polysemantTitle"]}">{name}是一个多义词，请在下列义项中选择浏览'
                f'（<a href="{self.href(force)}">{force.text}</a>）</div>'
                f'<ul class="{cls["polysemantList"]}">{"".join(items)}</ul></div>'
            )
        desc = (
            f'<div class="{cls["lemmaDesc"]}"><span class="{cls["polysemantText"]} J-polysemantText">{entry.subtitle}</span></div>'
            if entry.subtitle
            else ""
        )
        add(
            f'<div class="{cls["lemmaTitleBox"]}"><h1 class="{cls["lemmaTitle"]} J-lemma-title">{name}</h1>{desc}'
            f'<div class="{cls["toolBar"]}"><span class="{cls["audioPlay"]}">播报</span>'
            f'<a class="{cls["editLemma"]}" href="/planet/talk?lemmaId={lemma}">讨论</a>'
            f'<a class="{cls["toolButton"]}" href="/historylist/{enc}/{lemma}">历史版本</a></div></div>'
        )
        inline = self._inline
        add(f'<div class="{cls["lemmaSummary"]} J-summary" data-tag="lemmaSummary">')
        for n, para in enumerate(entry.summary):
            # The newline keeps paragraphs apart for parsers that take the box's whole text.
            add(
                f'<div class="{cls["para"]} {cls["summary"]} MARK_MODULE" data-tag="paragraph" data-idx="0-{n + 1}">{inline(para, cls)}</div>\n'
            )
        add(f'</div><div class="{cls["basicInfo"]} J-basic-info">')
        half = (len(entry.infobox) + 1) // 2
        for side, items in (("left", entry.infobox[:half]), ("right", entry.infobox[half:])):
            cells = "".join(
                [
                    f'<div class="{cls["itemWrapper"]}"><dt class="{cls["basicInfoItem"]} {cls["itemName"]}">{_pad_key(key, chr(0xA0))}</dt>'
                    f'<dd class="{cls["basicInfoItem"]} {cls["itemValue"]}">{inline(value, cls)}</dd></div>'
                    for key, value in items
                ]
            )
            add(f'<dl class="{cls["basicInfoBlock"]} {side}">{cells}</dl>')
        catalog = "".join(
            [
                f'<li class="{cls["catalogItem"]} {cls["level" + str(s.level)]}"><a href="#{s.number}">{s.title}</a></li>'
                for s in entry.sections
            ]
        )
        add(f'</div><div class="{cls["catalog"]}"><h2>目录</h2><ol class="{cls["catalogList"]}">{catalog}</ol></div>')
        images = list(entry.images)
        para_open = f'<div class="{cls["para"]} MARK_MODULE" data-tag="paragraph">'
        for section in entry.sections:
            tag = "h2" if section.level == 2 else "h3"
            add(
                f'<div class="{cls["paraTitle"]} {cls["level" + str(section.level)]}" data-index="{section.number}" data-tag="header">'
                f'<a name="{section.number}"></a><{tag} name="{section.number}">{section.title}</{tag}></div>'
            )
            for para in section.paragraphs:
                if images and section.level == 2:
                    image = images.pop()
                    add(
                        f'<div class="{cls["picture"]}"><a href="/pic/{enc}/{lemma}/0/{image}?fr=newalbum">'
                        f'<img class="{cls["pictureImg"]}" alt="{name}" src="https://bkimg.cdn.bcebos.com/pic/{image}'
                        '?x-bce-process=image/format,f_auto/resize,m_lfit,limit_1,h_336"></a></div>'
                    )
                add(para_open + inline(para, cls) + "</div>")
        refs = "".join(
            [
                f'<li class="{cls["referenceItem"]}"><span>[{n}]</span><a href="{url}" target="_blank" rel="nofollow">{title}</a></li>'
                for n, (title, url) in enumerate(entry.references, start=1)
            ]
        )
        extra_links = "".join(
            [
                f'<a class="{cls["innerLink"]}" href="{self.href(link)}" target="_blank">{link.text}</a>'
                for link in entry.chrome_links[1 + bool(entry.sense_links) :]
            ]
        )
        tags = "".join([f'<span class="{cls["tag"]}">{tag}</span>' for tag in entry.tags])
        related = "".join(
            [
                f'<li><a href="{prefix[link.anchor]}{link.path}" target="_blank">{link.text}</a></li>'
                for link in entry.related
            ]
        )
        album = (
            f'<div class="{cls["albumList"]}"><a href="https://bkimg.cdn.bcebos.com/pic/{entry.images[0]}" target="_blank">'
            f'<img src="https://bkimg.cdn.bcebos.com/pic/{entry.images[0]}?x-bce-process=image/format,f_auto" alt="{name}"></a></div>'
        )
        add(
            f'<div class="{cls["referenceList"]}"><h2>参考资料</h2><ul>{refs}</ul></div>'
            f'<div class="{cls["tagList"]}">词条标签：{tags}{extra_links}</div>'
            f'</div><div class="{cls["sideContent"]}">{album}'
            f'<div class="{cls["relatedLemma"]}"><h3>相关词条</h3><ul class="{cls["lemmaList"]}">{related}</ul></div>'
        )
        return b"".join(
            (
                head.encode("utf-8"),
                head_static,
                body_static,
                "".join(parts).encode("utf-8"),
                self._hot[entry.deploy],
                tail_static,
                f'<script src="https://baike.bdimg.com/static/baike-react/pkg/main_{entry.deploy:02d}.js" defer></script></body></html>'.encode(),
            )
        )

    def _chunks(self, cls: dict[str, str], footer: str) -> tuple[bytes, bytes, bytes]:
        css = _filler_css("", tuple(cls.values()))
        head = (f"<style>{css}</style><script>{_MONITOR_JS}</script>").encode()
        products = "".join(f'<a class="{cls["navBar"]}" href="{url}">{label}</a>' for label, url in _PRODUCTS)
        products += "".join(f'<a class="{cls["navBar"]}" href="{path}">{label}</a>' for label, path in _CATEGORIES)
        body = (
            f'<body><div id="root"><div class="{cls["pageWrapper"]}"><div class="{cls["header"]}">'
            f'<div class="{cls["navBar"]}">{products}</div><div class="{cls["searchBar"]}"><a href="/">百度百科</a>'
            '<form action="/search/word" method="GET"><input name="word" value="" autocomplete="off">'
            '<button type="submit">进入词条</button></form><a href="/help" target="_blank">帮助</a>'
            '<a href="/usercenter" target="_blank">个人中心</a>'
        ).encode()
        tail = (f"</div></div>{footer}</div></div><script>{_LOADER_JS}</script><script>{_WIDGET_JS}</script>").encode()
        return head, body, tail

    def _inline(self, segs: list[Segment], cls: dict[str, str]) -> str:
        text, inner, sup = cls["text"], cls["innerLink"], cls["supWrap"]
        prefix = self._prefix
        out: list[str] = []
        add = out.append
        for seg in segs:
            kind = type(seg)
            if kind is str:
                add(f'<span class="{text}" data-text="true">{seg}</span>')
            elif kind is Link:
                add(
                    f'<span class="{text}" data-text="true"><a class="{inner}" href="{prefix[seg.anchor]}{seg.path}"'
                    f' target="_blank" data-from-module="">{seg.text}</a></span>'
                )
            else:
                add(
                    f'<span class="{sup}" data-tag="ref" data-ref-index="{seg.label[1:-1]}"><sup>{seg.label}</sup></span>'
                )
        return "".join(out)
