"""HTML templates for the three Baike layouts, plus the fixed pages.

The markup follows the *structure* of real Baike pages of each era (class
names, nesting, attribute quirks, where ids and JSON live) with our own
generated text. Rendering is plain string building, and the big constant
chunks (scripts, styles, header, footer) are encoded to UTF-8 once: the server
must turn out thousands of distinct pages per second on one core.
"""

from __future__ import annotations

import json
import random

from replica.model import (
    BAIKE_HTTP_ORIGIN,
    BAIKE_ORIGIN,
    GBK,
    LAYOUT_2017,
    LAYOUT_2021,
    LAYOUT_2023,
    Entry,
    Link,
    Segment,
    clean_text,
)
from replica.site import DEPLOYS, NAVBAR_SPECIAL, USERBAR_SPECIAL, Site

HTML_UTF8 = "text/html; charset=utf-8"
HTML_GBK = "text/html; charset=GBK"
# The Python codec of pages served as GBK: a superset of GBK, so no character is lost.
GBK_CODEC = "gb18030"
_META_UTF8 = b'<meta charset="UTF-8">'

# CSS-module names of the React layout; each deploy gives them new suffixes.
MODULE_CLASSES = (
    "pageWrapper", "header", "searchBar", "navBar", "lemmaTitleBox", "lemmaTitle", "lemmaDesc",
    "polysemantText", "polysemant", "polysemantTitle", "polysemantList", "polysemantItem",
    "polysemantLink", "selected", "lemmaSummary", "para", "summary", "text", "innerLink",
    "supWrap", "basicInfo", "basicInfoBlock", "itemWrapper", "basicInfoItem", "itemName",
    "itemValue", "catalog", "catalogItem", "catalogList", "paraTitle", "level2", "level3",
    "mainContent", "sideContent", "relatedLemma", "hotLemma", "lemmaList", "referenceList",
    "referenceItem", "footer", "tagList", "tag", "albumList", "picture", "pictureImg",
    "contentWrapper", "toolBar", "toolButton", "audioPlay", "editLemma",
)
# The suffixes of deploy 0 are the ones documented for real 2024 pages.
_KNOWN_SUFFIXES = {"lemmaTitle": "qmNnR", "text": "BvQ2v", "innerLink": "zQv0z"}
_SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

_PRODUCTS = (
    ("网页", "https://www.baidu.com/"), ("新闻", "http://news.baidu.com/"),
    ("贴吧", "https://tieba.baidu.com/"), ("知道", "https://zhidao.baidu.com/"),
    ("音乐", "http://music.baidu.com/"), ("图片", "http://image.baidu.com/"),
    ("视频", "http://v.baidu.com/"), ("地图", "http://map.baidu.com/"),
    ("文库", "https://wenku.baidu.com/"),
)
_CATEGORIES = (
    ("艺术", "/art"), ("科学", "/science"), ("自然", "/ziran"), ("文化", "/wenhua"),
    ("地理", "/dili"), ("生活", "/shenghuo"), ("社会", "/shehui"), ("人物", "/renwu"),
    ("经济", "/jingji"), ("体育", "/tiyu"), ("历史", "/lishi"),
)
_SPECIALS = (
    ("历史上的今天", "/calendar/"), ("数字博物馆", "/museum/"), ("城市百科", "/city/"),
    ("二战百科", "/operation/worldwar2"), ("非遗百科", "/feiyi?fr=dhlfeiyi"), ("蝌蚪团", "/kedou/"),
    ("燃梦计划", "/event/ranmeng/"), ("百科任务", "/task/"), ("百科商城", "/mall/"),
    ("合作模式", "/operation/cooperation#joint"), ("常见问题", "/operation/cooperation#issue"),
    ("联系方式", "/operation/cooperation#connection"), ("手机百科", "/m#wap"), ("我的收藏", "/uc/favolemma"),
)
_HELP_LINKS = (
    ("新手上路", "/help#main01"), ("编辑入门", "/help#main02"), ("编辑规则", "/help/rules"),
    ("我有疑问", "https://help.baidu.com/question?prod_id=10"), ("意见反馈", "https://help.baidu.com/newadd?prod_id=10"),
    ("投诉建议", "http://tousu.baidu.com/baike#1"), ("用户中心", "/usercenter#guide"),
)
_PLACEHOLDER_IMG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="


def _filler_css(prefix: str, classes: tuple[str, ...]) -> str:
    """Deterministic stand-in for a site stylesheet: real pages inline a lot of CSS."""
    rules = []
    for i, cls in enumerate(classes):
        color = (i * 2654435761) % 0xFFFFFF
        rules.append(
            f".{prefix}{cls}{{margin:{i % 7}px {i % 5}px;padding:0 {i % 9}px;"
            f"color:#{color:06x};font-size:{12 + i % 6}px;line-height:{18 + i % 8}px}}"
            f".{prefix}{cls}:hover{{color:#{(color * 7) % 0xFFFFFF:06x}}}"
            f"@media (max-width:{900 + i % 5 * 40}px){{.{prefix}{cls}{{margin:0;padding:{i % 4}px}}}}"
        )
    return "".join(rules)


_OLD_CLASSES = (
    "header-wrapper", "topbar", "wgt-userbar", "wiki-common-headTabBar", "header", "layout",
    "wgt-searchbar", "logo-container", "search", "form", "navbar-wrapper", "wgt-navbar",
    "body-wrapper", "before-content", "polysemant-list", "polysemantList-header", "content-wrapper",
    "content", "main-content", "top-tool", "lemmaWgt-lemmaTitle", "lemma-summary", "basic-info",
    "basicInfo-block", "basicInfo-item", "lemmaWgt-lemmaCatalog", "lemma-catalog", "catalog-list",
    "para-title", "title-text", "para", "lemma-picture", "lemma-reference", "reference-list",
    "side-content", "lemmaWgt-sideRelation", "side-catalog", "wgt-footer-main", "open-tag",
    "taglist", "edit-icon", "audio-play", "sup--normal", "sup-anchor", "image-link", "lazy-img",
    "lemma-statistics", "side-box", "lemmaWgt-hotLemma", "lemma-list", "side-title", "related-sample",
    "top-collect", "collect-tip", "split-icon", "lock-lemma", "edit-lemma", "polysemantList-wrapper",
    "selected", "reference-item", "gotop", "linkRedirect", "errorBox", "sorryCont", "help-wrapper",
)
_OLD_CSS = _filler_css("", _OLD_CLASSES) + _filler_css(
    "cmn-", ("clearfix", "btn-28", "btn-hover-blue", "inline-block", "icon", "icons", "baike-logo")
)

_MONITOR_JS = (
    "window.alogObjectConfig={product:'103',page:'103_1',speed:{sample:'0.008'},monkey:{sample:'1',hid:'1533'},"
    "exception:{sample:'0.004'},feature:{sample:'0.004'},csp:{sample:'0.008','default-src':["
    "{match:'*.baidu.com,*.bdimg.com,localhost',target:'Accept'},{match:'*',target:'Accept,Warn'}]}};"
    "void function(w,d,t,u,n){w.alogObjectName=n;w[n]=w[n]||function(){(w[n].q=w[n].q||[]).push(arguments)};"
    "w[n].l=w[n].l||+new Date;var keep=true;if(w.alogObjectConfig&&w.alogObjectConfig.sample){var r=Math.random();"
    "w.alogObjectConfig.rand=r;if(r>w.alogObjectConfig.sample){keep=false}}if(keep){var s=d.createElement(t);s.async=true;"
    "s.src=u+'?v='+Math.floor(new Date/864e5);var f=d.getElementsByTagName(t)[0];f.parentNode.insertBefore(s,f)}}"
    "(window,document,'script','/hunter/alog/alog.min.js','alog');"
    "void function(w){var seen=false;w.onerror=function(msg,js,ln,col){var send=true;"
    "if(!js&&/^script error/i.test(msg)){if(seen){send=false}else{seen=true}}"
    "if(send){alog('exception.send','exception',{msg:msg,js:js,ln:ln,col:col})}return false}}(window);"
)
_LOADER_JS = (
    "var _hmt=_hmt||[];(function(){var hm=document.createElement('script');hm.src='https://hm.baidu.com/hm.js?replica';"
    "var s=document.getElementsByTagName('script')[0];s.parentNode.insertBefore(hm,s)})();"
    "!function(){var q=[];window.require=window.require||function(deps,cb){q.push([deps,cb])};"
    "window.require.async=window.require;window.define=window.define||function(){};"
    "function ready(fn){if(document.readyState!=='loading'){fn()}else{document.addEventListener('DOMContentLoaded',fn)}}"
    "ready(function(){var imgs=document.querySelectorAll('img.lazy-img');for(var i=0;i<imgs.length;i++){"
    "var src=imgs[i].getAttribute('data-src');if(src){imgs[i].setAttribute('src',src)}}})}();"
)
# Stand-in for the ad/share/statistics bundles real pages inline: inert, but it
# gives pages their real weight (most of a Baike page is script).
_WIDGET_JS = "".join(
    f"!function(){{var cfg={{id:{i},name:'widget{i}',sample:{(i * 37) % 100 / 100},retry:{i % 4},"
    f"slots:[{','.join(str((i * k) % 97) for k in range(1, 9))}]}};"
    f"window.__widgets=window.__widgets||{{}};window.__widgets[cfg.name]=cfg;"
    f"function load{i}(cb){{var x=new XMLHttpRequest();x.open('GET','/api/wikiui/widget?id='+cfg.id);"
    f"x.onload=function(){{if(x.status===200){{try{{cb(JSON.parse(x.responseText))}}catch(e){{}}}}}};x.send()}}"
    f"if(Math.random()<cfg.sample){{load{i}(function(data){{var el=document.getElementById('w'+cfg.id);"
    f"if(el&&data&&data.html){{el.innerHTML=data.html}}}})}}}}();"
    for i in range(14)
)
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
    for i, path in enumerate((
        "wiki-lemma/pkg/wiki-lemma", "wiki-common/pkg/wiki-common-base",
        "wiki-common/widget/component/userbar/userbar", "wiki-common/widget/component/headTabBar/headTabBar",
        "wiki-common/widget/component/searchbar-n/searchbar", "wiki-common/widget/component/navbar/navbar",
        "wiki-lemma/widget/tools/announcement/announcement", "wiki-lemma/widget/tools/label/label",
        "wiki-lemma/widget/tools/newSideShare/sideShare", "wiki-lemma/pkg/wiki-lemma-module",
        "wiki-lemma/widget/lemma_content/mainContent/mainContent",
        "wiki-lemma/widget/lemma_content/mainContent/lemmaRelation/lemmaRelation",
        "wiki-common/widget/component/footer/footer_main",
        "wiki-lemma/widget/tools/searchHeader/searchHeader-n",
    ), start=1)
)


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


def _pad_key(key: str, pad: str) -> str:
    # Real pages space two-character infobox names out to the width of four.
    return key[0] + pad * 4 + key[1] if len(key) == 2 else key


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _json_script(value: object) -> str:
    return _JSON.encode(value).replace("</", "<\\/")


def _page_title(entry: Entry) -> str:
    if entry.subtitle:
        return f"{entry.name}（{entry.subtitle}）_百度百科"
    return f"{entry.name}_百度百科"


class Renderer:
    """Renders a Site's pages for one origin (``None``: the real baike.baidu.com links)."""

    def __init__(self, site: Site, origin: str | None = None):
        self.site = site
        self.https = origin or BAIKE_ORIGIN
        self.http = origin or BAIKE_HTTP_ORIGIN
        self._prefix = ("", self.https, self.http)
        self.deploys = deploy_suffixes(site.seed)
        self._build_static()

    # ------------------------------------------------------------- statics

    def _build_static(self) -> None:
        """Encode the constant chunks of every layout once."""
        footer = self._footer()
        products = "".join(
            f'<a href="{url}" nslog="normal" nslog-type="10600112">{label}</a>' for label, url in _PRODUCTS
        )
        categories = "".join(f'<div><a href="{path}" target="_blank">{label}</a></div>' for label, path in _CATEGORIES)
        self._old_head = (
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
        ).encode("utf-8")
        self._old_nav = (
            '" /><button id="search" type="button">进入词条</button><button id="searchLemma" type="button">全站搜索</button>'
            '<a class="help" href="/help" target="_blank">帮助</a></form></div></div></div></div></div></div>'
            '<div class="navbar-wrapper"><div class="wgt-navbar"><div class="navbar-bg"><div class="navbar-content layout">'
            '<dl class="index"><dt><a href="/">首页</a></dt></dl>'
            f'<dl class="cat"><dt><a>分类</a></dt><dd>{categories}</dd></dl>'
            '<dl class="special"><dt><a>特色百科</a></dt><dd><div><a href="/calendar/" target="_blank">历史上的今天</a></div>'
            '<div><a href="/museum/" target="_blank">数字博物馆</a></div>'
            f'<div><a href="/item/{NAVBAR_SPECIAL}?fr=navbar" target="_blank">{NAVBAR_SPECIAL}</a></div>'
        ).encode("utf-8")
        self._old_body = (
            '</dd></dl><dl class="user"><dt><a>用户</a></dt><dd><div><a href="/task/" target="_blank">百科任务</a></div>'
            '<div><a href="/mall/" target="_blank">百科商城</a></div></dd></dl>'
            '<div class="usercenter"><div><a href="/usercenter" target="_blank">个人中心</a></div></div>'
            '</div></div></div></div><div class="body-wrapper"><div class="before-content">'
        ).encode("utf-8")
        # A featured ("star") sense page: same tree, marked on the body wrapper.
        self._old_body_star = self._old_body.replace(
            b'<div class="body-wrapper">', b'<div class="body-wrapper feature feature_lemma starSmall">'
        )
        self._old_footer = (
            f'</div></div></div></div>{footer}<script type="text/javascript">{_LOADER_JS}</script>'
            f'<script type="text/javascript">{_WIDGET_JS}</script>'
        ).encode("utf-8")
        self._old_tail = f'<script type="text/javascript">{_TAIL_JS}</script></body></html>'.encode("utf-8")
        self._react_static = [self._react_chunks(cls, footer) for cls in self.deploys]
        # The hot-entries box is the same on every page of a layout: render it once.
        self._old_hot = {
            layout: self._link_list_old("热门词条", "lemmaWgt-hotLemma", self.site.hot_links(layout), layout == LAYOUT_2021).encode("utf-8")
            for layout in (LAYOUT_2017, LAYOUT_2021)
        }
        self._react_hot = [
            (
                f'<div class="{cls["hotLemma"]}"><h3>热门词条</h3><ul class="{cls["lemmaList"]}">'
                + "".join(f'<li><a href="{self.href(l)}" target="_blank">{l.text}</a></li>' for l in self.site.hot_links(LAYOUT_2023))
                + "</ul></div>"
            ).encode("utf-8")
            for cls in self.deploys
        ]

    def _footer(self) -> str:
        helps = "".join(f'<div><a href="{url}" target="_blank">{label}</a></div>' for label, url in _HELP_LINKS)
        helps += f'<div><a href="/view/{self.site.help_ids[3]}.htm" target="_blank">使用帮助</a></div>'
        specials = "".join(f'<div><a href="{url}" target="_blank">{label}</a></div>' for label, url in _SPECIALS)
        return (
            '<div class="wgt-footer-main"><div class="footer-content">'
            f'<dl class="suggestion"><dt>帮助与反馈</dt><dd>{helps}</dd></dl>'
            f'<dl class="special"><dt>特色百科</dt><dd>{specials}</dd></dl>'
            '<div class="copyright">本站为离线复制品，内容由程序生成，仅供测试抓取程序使用。'
            '<a href="/help/terms" target="_blank">使用协议</a> <a href="/help/privacy" target="_blank">隐私说明</a>'
            f' <a href="{self.https}/help/cooperation" target="_blank">合作平台</a></div></div></div>'
        )

    def _react_chunks(self, cls: dict[str, str], footer: str) -> tuple[bytes, bytes, bytes]:
        css = _filler_css("", tuple(cls.values()))
        head = (
            f'<style>{css}</style><script>{_MONITOR_JS}</script>'
        ).encode("utf-8")
        products = "".join(f'<a class="{cls["navBar"]}" href="{url}">{label}</a>' for label, url in _PRODUCTS)
        products += "".join(f'<a class="{cls["navBar"]}" href="{path}">{label}</a>' for label, path in _CATEGORIES)
        body = (
            f'<body><div id="root"><div class="{cls["pageWrapper"]}"><div class="{cls["header"]}">'
            f'<div class="{cls["navBar"]}">{products}</div><div class="{cls["searchBar"]}"><a href="/">百度百科</a>'
            '<form action="/search/word" method="GET"><input name="word" value="" autocomplete="off">'
            '<button type="submit">进入词条</button></form><a href="/help" target="_blank">帮助</a>'
            '<a href="/usercenter" target="_blank">个人中心</a>'
        ).encode("utf-8")
        tail = (
            f'</div></div>{footer}</div></div><script>{_LOADER_JS}</script><script>{_WIDGET_JS}</script>'
        ).encode("utf-8")
        return head, body, tail

    # ------------------------------------------------------------- helpers

    def href(self, link: Link) -> str:
        return self._prefix[link.anchor] + link.path

    def _old_inline(self, segs: list[Segment], quoted: bool, sub_id: int) -> str:
        prefix = self._prefix
        ids = self.site.entry_id
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

    def _react_inline(self, segs: list[Segment], cls: dict[str, str]) -> str:
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
                add(f'<span class="{sup}" data-tag="ref" data-ref-index="{seg.label[1:-1]}"><sup>{seg.label}</sup></span>')
        return "".join(out)

    # ----------------------------------------------------------- old layouts

    def _polysemant_old(self, entry: Entry) -> str:
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
                items.append(f"<li class=\"item\">▪<a title=\"{link.text}\" href='{self.href(link)}'>{link.text}</a></li>")
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

    def _catalog_old(self, entry: Entry, modern: bool) -> str:
        base = f"{self.https}{self.site.entry_path(entry.index)}?fr=aladdin" if modern else ""
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

    def _infobox_old(self, entry: Entry, modern: bool) -> str:
        half = (len(entry.infobox) + 1) // 2
        blocks = []
        for cls, items in (("basicInfo-left", entry.infobox[:half]), ("basicInfo-right", entry.infobox[half:])):
            cells = "".join(
                f'<dt class="basicInfo-item name">{_pad_key(key, "&nbsp;")}</dt>'
                f'<dd class="basicInfo-item value">{self._old_inline(value, modern, entry.sub_id)}</dd>'
                for key, value in items
            )
            blocks.append(f'<dl class="basicInfo-block {cls}">{cells}</dl>')
        if modern:
            return f'<div class="basic-info J-basic-info cmn-clearfix" data-pid="card">{"".join(blocks)}</div>'
        return f'<div class="basic-info cmn-clearfix">{"".join(blocks)}</div>'

    def _sections_old(self, entry: Entry, modern: bool) -> str:
        out: list[str] = []
        add = out.append
        name, sub_id, inline = entry.name, entry.sub_id, self._old_inline
        images = list(entry.images)
        enc = self.site.enc(self.site.entry_word[entry.index])
        pid = 2
        para_open = '<div class="para MARK_MODULE" label-module="para"' if modern else "<div class=para label-module=para"
        for number, section in enumerate(entry.sections, start=1):
            tag = "h2" if section.level == 2 else "h3"
            if modern:
                extra = f' J-chapter" data-index="{section.number}" data-pid="{pid}'
                audio = '<a class="audio-play part-audio-play J-part-audio-play">&nbsp;<span class="J-part-audio-text">播报</span></a>'
            else:
                extra = audio = ""
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
                data = f' data-pid="{pid}">' if modern else ">"
                add(f"{para_open}{data}{picture}{inline(para, modern, sub_id)}</div>\n")
        return "".join(out)

    def _references_old(self, entry: Entry) -> str:
        sub_id = entry.sub_id
        items = "".join(
            f'<li class="reference-item" id="reference-[{number}]-{sub_id}-wrap"><span class="index">{number}.</span>'
            f'<a class="gotop anchor" name="refIndex_{number}_{sub_id}" title="向上跳转" href="#ref_[{number}]_{sub_id}">&nbsp;&nbsp;</a>'
            f'<a rel="nofollow" href="{url}" target="_blank" class="text">{title}<span class="linkRedirect">&nbsp;</span></a>'
            f'<span class="site">．{url.split("/")[2]}</span></li>'
            for number, (title, url) in enumerate(entry.references, start=1)
        )
        return (
            '<dl class="lemma-reference collapse nslog-area log-set-param" data-nslog-type="2">'
            f'<dt class="reference-title">参考资料</dt><dd class="reference-list-wrap"><ul class="reference-list">{items}</ul></dd></dl>'
        )

    def _link_list_old(self, title: str, css: str, links: list[Link], modern: bool) -> str:
        prefix = self._prefix
        if modern:
            ids = self.site.entry_id
            items = "".join(
                f'<li><a href="{prefix[l.anchor]}{l.path}" target="_blank" data-lemmaid="{ids[l.target] if l.target >= 0 else 0}">{l.text}</a></li>'
                for l in links
            )
        else:
            items = "".join(f"<li><a href='{prefix[l.anchor]}{l.path}' target=_blank>{l.text}</a></li>" for l in links)
        return f'<div class="{css}"><h3 class="side-title">{title}</h3><ul class="lemma-list">{items}</ul></div>'

    def _tools_old(self, entry: Entry, enc: str) -> str:
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

    def render_old(self, entry: Entry) -> bytes:
        """2017 layout, or ~2021-2022 (``J-`` hooks, absolute links) for LAYOUT_2021."""
        modern = entry.layout == LAYOUT_2021
        site = self.site
        name, lemma = entry.name, entry.lemma_id
        enc = site.enc(site.entry_word[entry.index])
        description = clean_text(entry.summary[0])[:120]
        keywords = " ".join([name] + [name + s.title for s in entry.sections if s.level == 2])
        navbar = entry.chrome_links[0]
        # A star page names its sense only in <title> and the sense bar.
        h2 = f"<h2>（{entry.subtitle}）</h2>" if entry.subtitle and not entry.star else ""
        if modern:
            title = (
                '<dd class="lemmaWgt-lemmaTitle-title J-lemma-title" data-pid="0">\n'
                f'<h1>{name}</h1>{h2}&nbsp;&nbsp;<a class="cmn-btn-28 cmn-btn-hover-blue audio-play title-audio-play J-title-audio-play">'
                '<span class="J-audio-text">播报</span></a>&nbsp;<a class="edit-lemma cmn-btn-hover-blue cmn-btn-28 j-edit-link">编辑</a>'
                '&nbsp;<a class="lemma-discussion cmn-btn-hover-blue cmn-btn-28 j-discussion-link"'
                f' href="{self.https}/planet/talk?lemmaId={lemma}" target="_blank">讨论</a></dd>'
            )
        else:
            title = (
                f'<dd class="lemmaWgt-lemmaTitle-title">\n<h1 >{name}</h1>{h2}'
                '<a href="javascript:;" class="edit-lemma cmn-btn-hover-blue cmn-btn-28 j-edit-link">'
                '<em class="cmn-icon wiki-lemma-icons wiki-lemma-icons_edit-lemma"></em>编辑</a>'
                f'<a class="lock-lemma" target="_blank" href="/view/{site.help_ids[2]}.htm" title="锁定">锁定</a></dd>'
            )
        summary, lead = self._summary_old(entry, modern)
        extra_links = "".join(
            f'<a href="{self.href(link)}" target="_blank">{link.text}</a>'
            for link in entry.chrome_links[1 + bool(entry.sense_links):]
        )
        tags = "，".join(f'<span class="taglist">{tag}</span>' for tag in entry.tags)
        body = "".join((
            self._polysemant_old(entry),
            '</div><div class="content-wrapper"><div class="content"><div class="main-content">',
            f'<div class="top-tool"><a href="/divideload/{enc}" title="拆分词条" target="_blank" class="split-icon" style="display:none;"></a>'
            '<div class="top-collect"><span class="collect-text">收藏</span><div class="collect-tip">查看'
            '<a href="/uc/favolemma" target="_blank">我的收藏</a></div></div></div>',
            f'<dl class="lemmaWgt-lemmaTitle lemmaWgt-lemmaTitle-">{title}</dl>',
            summary,
            f'<div class="lemmaWgt-promotion-rightPreciseAd" data-lemmaId="{lemma}" data-lemmaTitle="{name}"></div>',
            self._infobox_old(entry, modern),
            self._catalog_old(entry, modern),
            lead,
            self._sections_old(entry, modern),
            self._references_old(entry),
            '<div id="open-tag"><dl class="open-tag-collapse"><dt class="open-tag-title">词条标签：</dt>'
            f'<dd id="open-tag-item">{tags}</dd></dl></div>',
            f'<div class="related-sample">{extra_links}</div>' if extra_links else "",
            '</div>',
            self._tools_old(entry, enc),
            f'<div class="album-list"><a class="album-pic" href="https://bkimg.cdn.bcebos.com/pic/{entry.images[0]}" target="_blank">'
            f'<img src="https://bkimg.cdn.bcebos.com/pic/{entry.images[0]}?x-bce-process=image/resize,m_lfit,w_268,limit_1" alt="{name}"/></a>'
            f'<span class="album-count">共{len(entry.images)}张</span></div>',
            self._link_list_old("相关词条", "lemmaWgt-sideRelation", entry.related, modern),
        ))
        gbk = entry.charset == GBK
        page = b"".join((
            b"<!DOCTYPE html><!--STATUS OK--><html><head>",
            b"" if gbk else _META_UTF8,
            b'<meta http-equiv="X-UA-Compatible" content="IE=Edge" /><meta name="referrer" content="always" />',
            (
                f'<meta name="description" content="{description}..."><title>{_page_title(entry)}</title>'
                f'<meta name="keywords" content="{keywords}">'
            ).encode("utf-8"),
            self._old_head,
            name.encode("utf-8"),
            self._old_nav,
            f'<div><a href="{self.href(navbar)}" target="_blank">{navbar.text}</a></div>'.encode("utf-8"),
            self._old_body_star if entry.star else self._old_body,
            body.encode("utf-8"),
            self._old_hot[entry.layout],
            self._old_footer,
            self._ids_script(entry).encode("utf-8"),
            self._old_tail,
        ))
        # Rare (1/8 of 2017 pages): re-encoding beats keeping a GBK copy of every static chunk.
        return page.decode("utf-8").encode(GBK_CODEC) if gbk else page

    def _summary_old(self, entry: Entry, modern: bool) -> tuple[str, str]:
        """The summary block and the lead paragraphs after the catalog (empty unless ``lead_in_body``).

        A ``lead_in_body`` page has an empty summary block; its summary paragraphs
        lead the main content with the markup of section paragraphs instead.
        """
        sub_id, inline = entry.sub_id, self._old_inline
        if modern:
            head = '<div class="lemma-summary J-summary" label-module="lemmaSummary">\n'
            if entry.lead_in_body:
                lead = "".join(
                    f'<div class="para MARK_MODULE" label-module="para" data-pid="{n + 1}">{inline(p, True, sub_id)}</div>\n'
                    for n, p in enumerate(entry.summary)
                )
                return head + "</div>", lead
            paras = "\n".join(
                f'<div class="para MARK_MODULE" label-module="para" data-uuid="{sub_id:x}{n}" data-pid="{n + 1}">'
                f"{inline(p, True, sub_id)}</div>"
                for n, p in enumerate(entry.summary)
            )
            return head + paras + "\n</div>", ""
        head = '<div class="lemma-summary" label-module="lemmaSummary">\n'
        if entry.lead_in_body:
            lead = "".join(f"<div class=para label-module=para>{inline(p, False, sub_id)}</div>\n" for p in entry.summary)
            return head + "</div>", lead
        paras = "\n".join(f"<div class=para label-module=para>\n{inline(p, False, sub_id)}\n</div>" for p in entry.summary)
        return head + paras + "\n</div>", ""

    # --------------------------------------------------------- React layout

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
            "abstractPlain": " ".join(clean_text(p) for p in entry.summary),
            "isPolysemant": len(entry.senses) > 1,
            "card": {"left": card[:half], "right": card[half:]},
            "navigation": {"lemmas": lemmas},
            "catalog": [{"title": s.title, "level": s.level - 1, "index": s.number} for s in entry.sections],
            "lemmaType": 0,
            "version": entry.deploy,
        }

    def render_react(self, entry: Entry) -> bytes:
        """2023+ React layout: CSS-module classes of the entry's deploy, PAGE_DATA JSON."""
        cls = self.deploys[entry.deploy]
        head_static, body_static, tail_static = self._react_static[entry.deploy]
        site = self.site
        name, lemma = entry.name, entry.lemma_id
        enc = site.enc(site.entry_word[entry.index])
        prefix = self._prefix
        head = (
            '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1"><meta name="referrer" content="always">'
            f'<title>{_page_title(entry)}</title><meta name="description" content="{clean_text(entry.summary[0])[:120]}...">'
            f'<link rel="stylesheet" href="https://baike.bdimg.com/static/baike-react/pkg/main_{entry.deploy:02d}.css">'
            f'<script>window.PAGE_DATA = {_json_script(self._page_data(entry))};</script></head>'
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
                    items.append(f'<li class="{cls["polysemantItem"]} {cls["selected"]}"><span>{subtitles[position]}</span></li>')
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
            if entry.subtitle else ""
        )
        add(
            f'<div class="{cls["lemmaTitleBox"]}"><h1 class="{cls["lemmaTitle"]} J-lemma-title">{name}</h1>{desc}'
            f'<div class="{cls["toolBar"]}"><span class="{cls["audioPlay"]}">播报</span>'
            f'<a class="{cls["editLemma"]}" href="/planet/talk?lemmaId={lemma}">讨论</a>'
            f'<a class="{cls["toolButton"]}" href="/historylist/{enc}/{lemma}">历史版本</a></div></div>'
        )
        inline = self._react_inline
        add(f'<div class="{cls["lemmaSummary"]} J-summary" data-tag="lemmaSummary">')
        for n, para in enumerate(entry.summary):
            # The newline keeps paragraphs apart for parsers that take the box's whole text.
            add(f'<div class="{cls["para"]} {cls["summary"]} MARK_MODULE" data-tag="paragraph" data-idx="0-{n + 1}">{inline(para, cls)}</div>\n')
        add(f'</div><div class="{cls["basicInfo"]} J-basic-info">')
        half = (len(entry.infobox) + 1) // 2
        for side, items in (("left", entry.infobox[:half]), ("right", entry.infobox[half:])):
            cells = "".join(
                f'<div class="{cls["itemWrapper"]}"><dt class="{cls["basicInfoItem"]} {cls["itemName"]}">{_pad_key(key, chr(0xA0))}</dt>'
                f'<dd class="{cls["basicInfoItem"]} {cls["itemValue"]}">{inline(value, cls)}</dd></div>'
                for key, value in items
            )
            add(f'<dl class="{cls["basicInfoBlock"]} {side}">{cells}</dl>')
        catalog = "".join(
            f'<li class="{cls["catalogItem"]} {cls["level" + str(s.level)]}"><a href="#{s.number}">{s.title}</a></li>'
            for s in entry.sections
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
            f'<li class="{cls["referenceItem"]}"><span>[{n}]</span><a href="{url}" target="_blank" rel="nofollow">{title}</a></li>'
            for n, (title, url) in enumerate(entry.references, start=1)
        )
        extra_links = "".join(
            f'<a class="{cls["innerLink"]}" href="{self.href(link)}" target="_blank">{link.text}</a>'
            for link in entry.chrome_links[1 + bool(entry.sense_links):]
        )
        tags = "".join(f'<span class="{cls["tag"]}">{tag}</span>' for tag in entry.tags)
        related = "".join(f'<li><a href="{prefix[l.anchor]}{l.path}" target="_blank">{l.text}</a></li>' for l in entry.related)
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
        return b"".join((
            head.encode("utf-8"),
            head_static,
            body_static,
            "".join(parts).encode("utf-8"),
            self._react_hot[entry.deploy],
            tail_static,
            f'<script src="https://baike.bdimg.com/static/baike-react/pkg/main_{entry.deploy:02d}.js" defer></script></body></html>'.encode("utf-8"),
        ))

    # ------------------------------------------------------------ entry point

    def entry_page(self, index: int) -> bytes:
        """The bytes served for entry ``index`` (gb18030 when ``site.charset_of(index)`` is GBK)."""
        return self.entry_response(index)[0]

    def entry_text(self, index: int) -> str:
        """Entry ``index``'s page as text, decoded the way its Content-Type says."""
        body, content_type = self.entry_response(index)
        return body.decode(GBK_CODEC if content_type == HTML_GBK else "utf-8")

    def entry_response(self, index: int) -> tuple[bytes, str]:
        """Body and Content-Type of entry ``index``: HTML_UTF8, or HTML_GBK for GBK pages."""
        sample = self.site.samples.get(index)
        if sample is not None:
            return sample.body, HTML_UTF8
        entry = self.site.make_entry(index)
        if entry.layout == LAYOUT_2017 or entry.layout == LAYOUT_2021:
            return self.render_old(entry), HTML_GBK if entry.charset == GBK else HTML_UTF8
        return self.render_react(entry), HTML_UTF8

    # ------------------------------------------------------- list pages

    def list_page(self, word: int) -> bytes:
        """Word ``word``'s disambiguation list page, in the 2017 chrome (UTF-8).

        After the ``<h1>`` come ``div.lemmaWgt-subLemmaListTitle`` and a
        ``ul.para-list`` with one ``li div.para a`` per sense, linking
        ``/item/<enc>/<lemmaId>`` (with ``data-lemmaid``), text "name：subtitle".
        Its entry links are the senses, the navbar hub and the hot-entries box
        (``Site.list_targets``).
        """
        site = self.site
        name, enc = site.word_names[word], site.enc(word)
        senses = site.word_senses[word]
        items = "".join(
            f'<li class="list-dot list-dot-paddingleft"><div class="para"><a target=_blank href="/item/{enc}/{site.entry_id[sense]}"'
            f' data-lemmaid="{site.entry_id[sense]}">{name}：{site.subtitle_of(sense)}</a></div></li>'
            for sense in senses
        )
        navbar = site.navbar
        body = (
            '</div><div class="content-wrapper"><div class="content"><div class="main-content">'
            f'<dl class="lemmaWgt-lemmaTitle lemmaWgt-lemmaTitle-"><dd class="lemmaWgt-lemmaTitle-title"><h1>{name}</h1></dd></dl>'
            f'<div class="lemmaWgt-subLemmaListTitle">这是一个多义词，请在下列义项上选择浏览（共{len(senses)}个义项）</div>'
            f'<ul class="para-list">{items}</ul>'
            f'<div class="lemmaWgt-createsub"><a href="/createsub/{enc}" target="_blank">添加义项</a></div>'
            '</div><div class="side-content">'
        )
        return b"".join((
            b"<!DOCTYPE html><!--STATUS OK--><html><head>",
            _META_UTF8,
            b'<meta http-equiv="X-UA-Compatible" content="IE=Edge" /><meta name="referrer" content="always" />',
            f"<title>{name}_百度百科</title>".encode("utf-8"),
            self._old_head,
            name.encode("utf-8"),
            self._old_nav,
            f'<div><a href="{self.href(navbar)}" target="_blank">{navbar.text}</a></div>'.encode("utf-8"),
            self._old_body,
            body.encode("utf-8"),
            self._old_hot[LAYOUT_2017],
            self._old_footer,
            self._old_tail,
        ))

    # -------------------------------------------------------------- fixed pages

    def _simple_page(self, title: str, body: str) -> bytes:
        return (
            '<!DOCTYPE html><html><head><meta charset="UTF-8">'
            f'<title>{title}</title><style type="text/css">{_OLD_CSS[:2000]}</style></head>'
            f'<body class="wiki-common">{body}{self._footer()}</body></html>'
        ).encode("utf-8")

    def error_page(self) -> bytes:
        return self._simple_page(
            "百度百科——全球领先的中文百科全书",
            '<div class="errorBox"><p class="sorryCont"><span class="sorryTxt">抱歉，您所访问的页面不存在...</span></p>'
            '<p class="sorryHint">请检查您输入的网址是否正确，或<a href="/">返回首页</a>。</p></div>',
        )

    def captcha_page(self) -> bytes:
        return self._simple_page(
            "百度安全验证",
            '<div class="timeout hide"><div class="timeout-img"></div><div class="timeout-title">网络不给力，请稍后重试</div>'
            '<button type="button" class="timeout-button">返回首页</button></div>'
            '<div class="passMod_dialog-body"><div class="passMod_dialog-title">百度安全验证</div>'
            '<div class="passMod_dialog-hint">请完成下方验证后继续操作</div><div id="captcha" class="vcode-body"></div></div>',
        )

    def help_page(self, title: str = "百科帮助_百度百科", heading: str = "帮助中心") -> bytes:
        """A non-entry help page: its own ``<title>``, no lemma title hooks, no entry links."""
        return self._simple_page(
            title,
            f'<div class="help-wrapper"><h1 class="help-title">{heading}</h1><p>这里是帮助页面。</p>'
            '<ul><li><a href="/help#main01">新手上路</a></li><li><a href="https://help.baidu.com/question?prod_id=10">常见问题</a></li></ul></div>',
        )

    def help_pages(self) -> dict[str, bytes]:
        """Site path -> page of every help id and special page (``Site.help_paths``)."""
        return {path: self.help_page(title, title) for path, title in self.site.help_paths.items()}

    def home_page(self) -> bytes:
        site = self.site
        start = site.word_first[0]
        return self._simple_page(
            "百度百科_全球领先的中文百科全书",
            f'<div class="index-wrapper"><h1>百度百科</h1><ul><li><a href="{site.entry_path(start)}">{site.entry_name(start)}</a></li></ul></div>',
        )

    @staticmethod
    def robots() -> bytes:
        return (
            "User-agent: *\n"
            "Allow: /item/\n"
            "Allow: /view/\n"
            "Allow: /subview/\n"
            "Disallow: /search\n"
            "Disallow: /edit\n"
            "Disallow: /planet/\n"
            "Disallow: /usercenter\n"
            "Disallow: /__replica__/\n"
        ).encode("ascii")
