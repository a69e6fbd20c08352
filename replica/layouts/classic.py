"""What the two server-rendered layouts share: Baike 2017 and ~2021-2022.

Both are one tree in one chrome (user bar, search bar, navbar, footer): title
``dl.lemmaWgt-lemmaTitle > dd.lemmaWgt-lemmaTitle-title > h1`` (+ ``h2``
subtitle), summary ``div.lemma-summary > div.para``, infobox ``div.basic-info
dl > dt.basicInfo-item.name / dd.basicInfo-item.value``, polysemant bar
``ul.polysemantList-wrapper li`` (the current sense a ``span.selected``),
catalog, ``div.para-title`` sections, ``dl.lemma-reference``, the side box, and
the entry's ids inside scripts (``lemmaId:"…"``, ``newLemmaId:"…"``,
``subLemmaId:"…"``). :class:`ClassicLayout` renders that tree;
:mod:`replica.layouts.y2017` and :mod:`replica.layouts.y2021` fill in what
differs (title block, summary and paragraph markup, infobox wrapper, catalog
and inline links, link lists). The disambiguation list pages
(:mod:`replica.layouts.lists`) reuse the chrome.
"""

from __future__ import annotations

import copy

from replica.layouts.shared import (
    _CATEGORIES,
    _LOADER_JS,
    _META_UTF8,
    _MONITOR_JS,
    _OLD_CSS,
    _PRODUCTS,
    _WIDGET_JS,
    GBK_CODEC,
    Base,
    _pad_key,
    _page_title,
)
from replica.model import GBK, Entry, Link, Section, Segment, clean_text
from replica.site import NAVBAR_SPECIAL, USERBAR_SPECIAL, Site

_PLACEHOLDER_IMG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="

_TAIL_JS = (
    "!function(){var map=[1,2,4,3];var links=document.querySelectorAll('.wgt-footer-main .suggestion a');"
    "for(var i=0;i<links.length;i++){links[i].setAttribute('data-map',map[i%4])}"
    "var tables=document.querySelectorAll('.main-content table');for(var j=0;j<tables.length;j++){"
    "if(tables[j].offsetWidth>790){var wrap=document.createElement('div');wrap.className='table-responsive';"
    "tables[j].parentNode.insertBefore(wrap,tables[j]);wrap.appendChild(tables[j])}}}();"
    "void function(w,d,t,u){if(w.alogObjectConfig){var k=w.alogObjectConfig.sample,l=w.alogObjectConfig.rand;"
    "if(!(k&&l&&l>k)){w.addEventListener('load',function(){alog('speed.set','lt',+new Date);var s=d.createElement(t);"
    "s.async=true;s.src=u+'?v='+Math.floor(new Date/864e5);var f=d.getElementsByTagName(t)[0];"
    "f.parentNode.insertBefore(s,f)})}}}(window,document,'script','/hunter/alog/dp.min.js');"
)
_STYLESHEETS = "".join(
    f'<link rel="stylesheet" type="text/css" href="https://baike.bdimg.com/static/{path}_{i * 7919 % 0xFFFFFFF:07x}.css"/>'
    for i, path in enumerate(
        (
            "wiki-lemma/pkg/wiki-lemma",
            "wiki-common/pkg/wiki-common-base",
            "wiki-common/widget/component/userbar/userbar",
            "wiki-common/widget/component/headTabBar/headTabBar",
            "wiki-common/widget/component/searchbar-n/searchbar",
            "wiki-common/widget/component/navbar/navbar",
            "wiki-lemma/widget/tools/announcement/announcement",
            "wiki-lemma/widget/tools/label/label",
            "wiki-lemma/widget/tools/newSideShare/sideShare",
            "wiki-lemma/pkg/wiki-lemma-module",
            "wiki-lemma/widget/lemma_content/mainContent/mainContent",
            "wiki-lemma/widget/lemma_content/mainContent/lemmaRelation/lemmaRelation",
            "wiki-common/widget/component/footer/footer_main",
            "wiki-lemma/widget/tools/searchHeader/searchHeader-n",
        ),
        start=1,
    )
)


class ClassicChrome:
    """The constant chunks around every classic page, encoded to UTF-8 once.

    A page is ``head``, its name (the search box's value), ``nav``, its navbar
    link, ``body`` (``body_star`` on a featured sense), its own tree, the
    hot-entries box, ``footer``, its ids script and ``tail``.
    """

    def __init__(self, footer: str):
        products = "".join(
            f'<a href="{url}" nslog="normal" nslog-type="10600112">{label}</a>' for label, url in _PRODUCTS
        )
        categories = "".join(f'<div><a href="{path}" target="_blank">{label}</a></div>' for label, path in _CATEGORIES)
        self.head = (
            '<link rel="shortcut icon" href="/favicon.ico" type="image/x-icon" />'
            '<meta name="image" content="https://baike.bdimg.com/cms/static/baike.png">'
            f'<script type="text/javascript">{_MONITOR_JS}</script>{_STYLESHEETS}'
            f'<style type="text/css">{_OLD_CSS}</style></head><body class="wiki-lemma normal">'
            '<div class="header-wrapper pc-header-new"><div class="topbar cmn-clearfix">'
            '<ul class="wgt-userbar" id="j-wgt-userbar"><li><a href="http://www.baidu.com/">百度首页</a></li>'
            f'<li><a href="/item/{USERBAR_SPECIAL}" target="_blank">实名验证</a></li></ul>'
            f'<div class="separator"></div><div class="wiki-common-headTabBar">{products}<b class="baike">百科</b></div></div>'
            '<div class="header"><div class="layout"><div class="wgt-searchbar wgt-searchbar-new wgt-searchbar-main cmn-clearfix">'
            '<div class="logo-container"><a class="logo cmn-inline-block" title="到百科首页" href="/">'
            '<span class="cmn-baike-logo"><em class="cmn-icon cmn-icons cmn-icons_logo-bai"></em>'
            '<em class="cmn-icon cmn-icons cmn-icons_logo-du"></em></span></a></div>'
            '<div class="search"><div class="form"><form id="searchForm" action="/search/word" method="GET" target="_self">'
            '<input id="query" name="word" type="text" autocomplete="off" value="'
        ).encode()
        self.nav = (
            '" /><button id="search" type="button">进入词条</button><button id="searchLemma" type="button">全站搜索</button>'
            '<a class="help" href="/help" target="_blank">帮助</a></form></div></div></div></div></div></div>'
            '<div class="navbar-wrapper"><div class="wgt-navbar"><div class="navbar-bg"><div class="navbar-content layout">'
            '<dl class="index"><dt><a href="/">首页</a></dt></dl>'
            f'<dl class="cat"><dt><a>分类</a></dt><dd>{categories}</dd></dl>'
            '<dl class="special"><dt><a>特色百科</a></dt><dd><div><a href="/calendar/" target="_blank">历史上的今天</a></div>'
            '<div><a href="/museum/" target="_blank">数字博物馆</a></div>'
            f'<div><a href="/item/{NAVBAR_SPECIAL}?fr=navbar" target="_blank">{NAVBAR_SPECIAL}</a></div>'
        ).encode()
        self.body = (
            '</dd></dl><dl class="user"><dt><a>用户</a></dt><dd><div><a href="/task/" target="_blank">百科任务</a></div>'
            '<div><a href="/mall/" target="_blank">百科商城</a></div></dd></dl>'
            '<div class="usercenter"><div><a href="/usercenter" target="_blank">个人中心</a></div></div>'
            '</div></div></div></div><div class="body-wrapper"><div class="before-content">'
        ).encode()
        # A featured ("star") sense page: same tree, marked on the body wrapper.
        self.body_star = self.body.replace(
            b'<div class="body-wrapper">', b'<div class="body-wrapper feature feature_lemma starSmall">'
        )
        self.footer = (
            f'</div></div></div></div>{footer}<script type="text/javascript">{_LOADER_JS}</script>'
            f'<script type="text/javascript">{_WIDGET_JS}</script>'
        ).encode()
        self.tail = f'<script type="text/javascript">{_TAIL_JS}</script></body></html>'.encode()

    def recoded(self, codec: str) -> ClassicChrome:
        """The same chunks in ``codec`` instead of UTF-8 (the chrome of the pages served as GBK)."""
        other = copy.copy(self)
        for name in ("head", "nav", "body", "body_star", "footer", "tail"):
            setattr(other, name, getattr(self, name).decode("utf-8").encode(codec))
        return other


class ClassicLayout(Base):
    """An entry page in the classic tree; subclasses fill in what their years changed."""

    layout: int
    # The summary block's opening tag (J- hooks from ~2021 on).
    summary_open: str
    # The infobox wrapper's opening tag.
    infobox_open: str
    # Inline links: 2017 writes ``target=_blank`` unquoted; ~2021-2022 quotes it
    # and adds ``data-lemmaid`` and ``data-log``. A flag rather than a method:
    # it is read once per paragraph, and most of a page is paragraphs.
    quoted_links: bool

    def __init__(self, site: Site, origin: str | None, chrome: ClassicChrome):
        super().__init__(site, origin)
        self.chrome = chrome
        # The hot-entries box is the same on every page of a layout: render it once.
        self.hot = self._link_list("热门词条", "lemmaWgt-hotLemma", site.hot_links(self.layout)).encode("utf-8")
        # The pages served as GBK: the constant chunks encoded once more, so a page encodes only its own parts.
        self.gbk_chrome = chrome.recoded(GBK_CODEC)
        self.gbk_hot = self.hot.decode("utf-8").encode(GBK_CODEC)

    # ------------------------------------------------- what the years change

    def _title(self, entry: Entry, h2: str) -> str:
        """The ``dd.lemmaWgt-lemmaTitle-title`` block; ``h2`` is the subtitle's heading (or empty)."""
        raise NotImplementedError

    def _summary_paras(self, entry: Entry) -> str:
        """The summary paragraphs inside the summary block, newline-separated."""
        raise NotImplementedError

    def _para_open(self, pid: int) -> str:
        """Opening tag of a section paragraph (and of a lead paragraph); ``pid`` counts paragraphs."""
        raise NotImplementedError

    def _chapter(self, section: Section, pid: int) -> tuple[str, str]:
        """What a section title gains: text appended to its ``class`` value, and markup after its edit link.

        The appended text may close the attribute and add others (``" data-pid="…``).
        """
        raise NotImplementedError

    def _catalog_base(self, entry: Entry) -> str:
        """What the catalog's ``#<number>`` links start with."""
        raise NotImplementedError

    def _link_items(self, links: list[Link]) -> str:
        """The ``<li>`` items of a side link list (related or hot entries)."""
        raise NotImplementedError

    # ------------------------------------------------------------ the tree

    def render(self, entry: Entry) -> bytes:
        """The page's bytes: UTF-8, or gb18030 when ``entry.charset`` is GBK (no ``<meta charset>`` then)."""
        site = self.site
        chrome = self.chrome
        name, lemma = entry.name, entry.lemma_id
        enc = site.enc(site.entry_word[entry.index])
        description = clean_text(entry.summary[0])[:120]
        keywords = " ".join([name] + [name + s.title for s in entry.sections if s.level == 2])
        navbar = entry.chrome_links[0]
        # A star page names its sense only in <title> and the sense bar.
        h2 = f"<h2>（{entry.subtitle}）</h2>" if entry.subtitle and not entry.star else ""
        summary, lead = self._summary(entry)
        extra_links = "".join(
            [
                f'<a href="{self.href(link)}" target="_blank">{link.text}</a>'
                for link in entry.chrome_links[1 + bool(entry.sense_links) :]
            ]
        )
        tags = "，".join([f'<span class="taglist">{tag}</span>' for tag in entry.tags])
        body = "".join(
            (
                self._polysemant(entry),
                '</div><div class="content-wrapper"><div class="content"><div class="main-content">',
                f'<div class="top-tool"><a href="/divideload/{enc}" title="拆分词条" target="_blank" class="split-icon" style="display:none;"></a>'
                '<div class="top-collect"><span class="collect-text">收藏</span><div class="collect-tip">查看'
                '<a href="/uc/favolemma" target="_blank">我的收藏</a></div></div></div>',
                f'<dl class="lemmaWgt-lemmaTitle lemmaWgt-lemmaTitle-">{self._title(entry, h2)}</dl>',
                summary,
                f'<div class="lemmaWgt-promotion-rightPreciseAd" data-lemmaId="{lemma}" data-lemmaTitle="{name}"></div>',
                self._infobox(entry),
                self._catalog(entry),
                lead,
                self._sections(entry),
                self._references(entry),
                '<div id="open-tag"><dl class="open-tag-collapse"><dt class="open-tag-title">词条标签：</dt>'
                f'<dd id="open-tag-item">{tags}</dd></dl></div>',
                f'<div class="related-sample">{extra_links}</div>' if extra_links else "",
                "</div>",
                self._tools(entry, enc),
                f'<div class="album-list"><a class="album-pic" href="https://bkimg.cdn.bcebos.com/pic/{entry.images[0]}" target="_blank">'
                f'<img src="https://bkimg.cdn.bcebos.com/pic/{entry.images[0]}?x-bce-process=image/resize,m_lfit,w_268,limit_1" alt="{name}"/></a>'
                f'<span class="album-count">共{len(entry.images)}张</span></div>',
                self._link_list("相关词条", "lemmaWgt-sideRelation", entry.related),
            )
        )
        gbk = entry.charset == GBK
        # 1/8 of 2017 pages are GBK: their own parts in gb18030, the constant ones encoded once.
        codec, chrome, hot = (GBK_CODEC, self.gbk_chrome, self.gbk_hot) if gbk else ("utf-8", chrome, self.hot)
        return b"".join(
            (
                b"<!DOCTYPE html><!--STATUS OK--><html><head>",
                b"" if gbk else _META_UTF8,
                b'<meta http-equiv="X-UA-Compatible" content="IE=Edge" /><meta name="referrer" content="always" />',
                (
                    f'<meta name="description" content="{description}..."><title>{_page_title(entry)}</title>'
                    f'<meta name="keywords" content="{keywords}">'
                ).encode(codec),
                chrome.head,
                name.encode(codec),
                chrome.nav,
                f'<div><a href="{self.href(navbar)}" target="_blank">{navbar.text}</a></div>'.encode(codec),
                chrome.body_star if entry.star else chrome.body,
                body.encode(codec),
                hot,
                chrome.footer,
                self._ids_script(entry).encode(codec),
                chrome.tail,
            )
        )

    def _inline(self, segs: list[Segment], sub_id: int) -> str:
        """A paragraph or infobox value: text, links, citation marks (``sup`` + anchor)."""
        prefix = self._prefix
        ids = self.site.entry_id
        quoted = self.quoted_links
        out: list[str] = []
        add = out.append
        for seg in segs:
            kind = type(seg)
            if kind is str:
                add(seg.replace("\xa0", "&nbsp;"))
            elif kind is Link:
                href = prefix[seg.anchor] + seg.path
                if quoted:
                    lemma = ids[seg.target] if seg.target >= 0 else 0
                    add(f'<a target="_blank" href="{href}" data-lemmaid="{lemma}" data-log="summary">{seg.text}</a>')
                else:
                    add(f'<a target=_blank href="{href}">{seg.text}</a>')
            else:
                label = seg.label
                add(
                    f'<sup class="sup--normal" data-sup="{label[1:-1]}">{label}</sup>'
                    f'<a class="sup-anchor" name="ref_{label}_{sub_id}">&nbsp;</a>'
                )
        return "".join(out)

    def _summary(self, entry: Entry) -> tuple[str, str]:
        """The summary block and the lead paragraphs after the catalog (empty unless ``lead_in_body``).

        A ``lead_in_body`` page has an empty summary block; its summary paragraphs
        lead the main content with the markup of section paragraphs instead.
        """
        if entry.lead_in_body:
            sub_id, inline, para_open = entry.sub_id, self._inline, self._para_open
            lead = "".join([f"{para_open(n + 1)}{inline(p, sub_id)}</div>\n" for n, p in enumerate(entry.summary)])
            return self.summary_open + "</div>", lead
        return self.summary_open + self._summary_paras(entry) + "\n</div>", ""

    def _polysemant(self, entry: Entry) -> str:
        if not entry.sense_links:
            return ""
        site = self.site
        word = site.entry_word[entry.index]
        subtitles = site.subtitles(word)
        items = []
        for position, link in enumerate(entry.sense_links):
            if link is None:
                items.append(f'<li class="item">▪<span class="selected">{subtitles[position]}</span></li>')
            else:
                items.append(
                    f'<li class="item">▪<a title="{link.text}" href=\'{self.href(link)}\'>{link.text}</a></li>'
                )
        force = entry.chrome_links[1]
        return (
            '<div class="polysemant-list polysemant-list-normal"><div class="polysemantList-header">'
            f'<div class="polysemantList-header-title"><b>{entry.name}</b>是一个'
            f'<a href="/view/{site.help_ids[0]}.htm" target="_blank">多义词</a>，'
            f'请在下列<a href="/view/{site.help_ids[1]}.htm" target="_blank">义项</a>上选择浏览'
            f'（<a href="{self.href(force)}" target="_blank">{force.text}</a>）</div>'
            f'<a class="polysemantList-addButton" target="_blank" href="/createsub/{site.enc(word)}">添加义项</a></div>'
            f'<ul class="polysemantList-wrapper cmn-clearfix" >{"".join(items)}</ul></div>'
        )

    def _catalog(self, entry: Entry) -> str:
        base = self._catalog_base(entry)
        items = []
        top = 0
        for section in entry.sections:
            if section.level == 2:
                top += 1
                items.append(
                    f'<li class="level1"><span class="index">{top}</span><span class="text">'
                    f'<a href="{base}#{section.number}">{section.title}</a></span></li>'
                )
            else:
                items.append(
                    f'<li class="level2"><span class="index">▪</span><span class="text">'
                    f'<a href="{base}#{section.number}">{section.title}</a></span></li>'
                )
        return (
            '<div class="lemmaWgt-lemmaCatalog"><div class="lemma-catalog"><h2 class="block-title">目录</h2>'
            f'<div class="catalog-list column-4"><ol>{"".join(items)}</ol></div></div></div>'
        )

    def _infobox(self, entry: Entry) -> str:
        half = (len(entry.infobox) + 1) // 2
        blocks = []
        for cls, items in (("basicInfo-left", entry.infobox[:half]), ("basicInfo-right", entry.infobox[half:])):
            cells = "".join(
                [
                    f'<dt class="basicInfo-item name">{_pad_key(key, "&nbsp;")}</dt>'
                    f'<dd class="basicInfo-item value">{self._inline(value, entry.sub_id)}</dd>'
                    for key, value in items
                ]
            )
            blocks.append(f'<dl class="basicInfo-block {cls}">{cells}</dl>')
        return f"{self.infobox_open}{''.join(blocks)}</div>"

    def _sections(self, entry: Entry) -> str:
        out: list[str] = []
        add = out.append
        name, sub_id, inline, para_open = entry.name, entry.sub_id, self._inline, self._para_open
        images = list(entry.images)
        enc = self.site.enc(self.site.entry_word[entry.index])
        pid = 2
        for number, section in enumerate(entry.sections, start=1):
            tag = "h2" if section.level == 2 else "h3"
            extra, audio = self._chapter(section, pid)
            add(
                f'<div class="anchor-list"><a name="{section.number}" class="lemma-anchor para-title" ></a>'
                f'<a name="sub{sub_id}_{section.number}" class="lemma-anchor " ></a>'
                f'<a name="{section.title}" class="lemma-anchor " ></a></div>'
                f'<div class="para-title level-{section.level}{extra}" label-module="para-title">'
                f'<{tag} class="title-text"><span class="title-prefix">{name}</span>{section.title}</{tag}>'
                f'<a class="edit-icon j-edit-link" data-edit-dl="{number}" href="javascript:;">'
                f'<em class="cmn-icon wiki-lemma-icons wiki-lemma-icons_edit-lemma"></em>编辑</a>{audio}</div>'
            )
            for para in section.paragraphs:
                pid += 1
                if images and number % 2:
                    image = images.pop()
                    picture = (
                        '<div class="lemma-picture text-pic layout-right" style="width:220px; float: right;">'
                        f'<a class="image-link" nslog-type="9317" target="_blank" title="{name}"'
                        f' href="/pic/{enc}/{entry.lemma_id}/0/{image}?fr=lemma&ct=single">'
                        f'<img class="lazy-img" src="{_PLACEHOLDER_IMG}" alt="{name}"'
                        f' data-src="https://bkimg.cdn.bcebos.com/pic/{image}?x-bce-process=image/resize,m_lfit,w_220,limit_1"/></a>'
                        f'<span class="description">{name}</span></div>'
                    )
                else:
                    picture = ""
                add(f"{para_open(pid)}{picture}{inline(para, sub_id)}</div>\n")
        return "".join(out)

    def _references(self, entry: Entry) -> str:
        sub_id = entry.sub_id
        items = "".join(
            [
                f'<li class="reference-item" id="reference-[{number}]-{sub_id}-wrap"><span class="index">{number}.</span>'
                f'<a class="gotop anchor" name="refIndex_{number}_{sub_id}" title="向上跳转" href="#ref_[{number}]_{sub_id}">&nbsp;&nbsp;</a>'
                f'<a rel="nofollow" href="{url}" target="_blank" class="text">{title}<span class="linkRedirect">&nbsp;</span></a>'
                f'<span class="site">．{url.split("/")[2]}</span></li>'
                for number, (title, url) in enumerate(entry.references, start=1)
            ]
        )
        return (
            '<dl class="lemma-reference collapse nslog-area log-set-param" data-nslog-type="2">'
            f'<dt class="reference-title">参考资料</dt><dd class="reference-list-wrap"><ul class="reference-list">{items}</ul></dd></dl>'
        )

    def _link_list(self, title: str, css: str, links: list[Link]) -> str:
        items = self._link_items(links)
        return f'<div class="{css}"><h3 class="side-title">{title}</h3><ul class="lemma-list">{items}</ul></div>'

    def _tools(self, entry: Entry, enc: str) -> str:
        lemma = entry.lemma_id
        return (
            '<div class="side-content"><dl class="side-box lemma-statistics"><dt class="title">词条统计</dt><dd class="description"><ul>'
            f'<li>浏览次数：<span id="j-lemmaStatistics-pv">{(lemma * 7) % 99991}</span>次</li>'
            f'<li>编辑次数：{1 + lemma % 60}次<a href="/historylist/{enc}/{lemma}#page" target="_blank">历史版本</a></li>'
            f'<li>最近更新：<a class="show-userCard" href="/usercenter/userpage?uk={entry.sub_id:x}" target="_blank">百科用户</a></li>'
            f'<li><a href="/planet/talk?lemmaId={lemma}" target="_blank">讨论</a> '
            f'<a href="/wikiui/doubt?lemmaId={lemma}&fr=lemma" target="_blank">我有疑问</a> '
            f'<a href="/divideload/{enc}" target="_blank">拆分词条</a></li></ul></dd></dl>'
        )

    def _ids_script(self, entry: Entry) -> str:
        lemma, old, sub = entry.lemma_id, entry.old_id, entry.sub_id
        return (
            '<script type="text/javascript">!function(){require(["wiki-lemma:widget/basicElement/collect/collect.js"],'
            f'function(collect){{collect({{newLemmaId:"{lemma}",lemmaId:"{old}",subLemmaId:"{sub}"}});}});'
            '}();!function(){require(["wiki-lemma:widget/tools/searchHeader/toolButtons-n/toolButtons.js"],function(init){'
            f'init({{lemmaId:"{old}",subLemmaId:"{sub}",newLemmaId:"{lemma}"}});}});}}();'
            '!function(){require(["wiki-common:widget/component/nslog/nslog.js"],function(nslog){nslog().setGlobal({'
            f'lemmaId:"{old}",newLemmaId:"{lemma}",subLemmaId:"{sub}",lemmaTitle:"{entry.name}"}});}});}}();</script>'
        )
