"""What every Baike layout's page is made of: the chrome's links, filler CSS and JS, helpers.

Real pages of every era (2017, 2021-2022, 2023+ React) inline a lot of style
and script around the same header links (Baidu's products, Baike's categories)
and footer (help and feature links). The big constant chunks are kept here as
text; the layouts encode them to UTF-8 once per Renderer, since the server must
turn out thousands of distinct pages per second on one core.
"""

from __future__ import annotations

from replica.model import BAIKE_HTTP_ORIGIN, BAIKE_ORIGIN, Entry, Link
from replica.site import Site

HTML_UTF8 = "text/html; charset=utf-8"
HTML_GBK = "text/html; charset=GBK"
# The Python codec of pages served as GBK: a superset of GBK, so no character is lost.
GBK_CODEC = "gb18030"
_META_UTF8 = b'<meta charset="UTF-8">'

_PRODUCTS = (
    ("网页", "https://www.baidu.com/"),
    ("新闻", "http://news.baidu.com/"),
    ("贴吧", "https://tieba.baidu.com/"),
    ("知道", "https://zhidao.baidu.com/"),
    ("音乐", "http://music.baidu.com/"),
    ("图片", "http://image.baidu.com/"),
    ("视频", "http://v.baidu.com/"),
    ("地图", "http://map.baidu.com/"),
    ("文库", "https://wenku.baidu.com/"),
)
_CATEGORIES = (
    ("艺术", "/art"),
    ("科学", "/science"),
    ("自然", "/ziran"),
    ("文化", "/wenhua"),
    ("地理", "/dili"),
    ("生活", "/shenghuo"),
    ("社会", "/shehui"),
    ("人物", "/renwu"),
    ("经济", "/jingji"),
    ("体育", "/tiyu"),
    ("历史", "/lishi"),
)
_SPECIALS = (
    ("历史上的今天", "/calendar/"),
    ("数字博物馆", "/museum/"),
    ("城市百科", "/city/"),
    ("二战百科", "/operation/worldwar2"),
    ("非遗百科", "/feiyi?fr=dhlfeiyi"),
    ("蝌蚪团", "/kedou/"),
    ("燃梦计划", "/event/ranmeng/"),
    ("百科任务", "/task/"),
    ("百科商城", "/mall/"),
    ("合作模式", "/operation/cooperation#joint"),
    ("常见问题", "/operation/cooperation#issue"),
    ("联系方式", "/operation/cooperation#connection"),
    ("手机百科", "/m#wap"),
    ("我的收藏", "/uc/favolemma"),
)
_HELP_LINKS = (
    ("新手上路", "/help#main01"),
    ("编辑入门", "/help#main02"),
    ("编辑规则", "/help/rules"),
    ("我有疑问", "https://help.baidu.com/question?prod_id=10"),
    ("意见反馈", "https://help.baidu.com/newadd?prod_id=10"),
    ("投诉建议", "http://tousu.baidu.com/baike#1"),
    ("用户中心", "/usercenter#guide"),
)


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


# The classic (2017, 2021-2022) stylesheet; the fixed pages inline its first 2,000 characters.
_OLD_CLASSES = (
    "header-wrapper",
    "topbar",
    "wgt-userbar",
    "wiki-common-headTabBar",
    "header",
    "layout",
    "wgt-searchbar",
    "logo-container",
    "search",
    "form",
    "navbar-wrapper",
    "wgt-navbar",
    "body-wrapper",
    "before-content",
    "polysemant-list",
    "polysemantList-header",
    "content-wrapper",
    "content",
    "main-content",
    "top-tool",
    "lemmaWgt-lemmaTitle",
    "lemma-summary",
    "basic-info",
    "basicInfo-block",
    "basicInfo-item",
    "lemmaWgt-lemmaCatalog",
    "lemma-catalog",
    "catalog-list",
    "para-title",
    "title-text",
    "para",
    "lemma-picture",
    "lemma-reference",
    "reference-list",
    "side-content",
    "lemmaWgt-sideRelation",
    "side-catalog",
    "wgt-footer-main",
    "open-tag",
    "taglist",
    "edit-icon",
    "audio-play",
    "sup--normal",
    "sup-anchor",
    "image-link",
    "lazy-img",
    "lemma-statistics",
    "side-box",
    "lemmaWgt-hotLemma",
    "lemma-list",
    "side-title",
    "related-sample",
    "top-collect",
    "collect-tip",
    "split-icon",
    "lock-lemma",
    "edit-lemma",
    "polysemantList-wrapper",
    "selected",
    "reference-item",
    "gotop",
    "linkRedirect",
    "errorBox",
    "sorryCont",
    "help-wrapper",
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


def _pad_key(key: str, pad: str) -> str:
    # Real pages space two-character infobox names out to the width of four.
    return key[0] + pad * 4 + key[1] if len(key) == 2 else key


def _page_title(entry: Entry) -> str:
    if entry.subtitle:
        return f"{entry.name}（{entry.subtitle}）_百度百科"
    return f"{entry.name}_百度百科"


class Base:
    """What each part of the Renderer holds: the site, and the origin its absolute links point at.

    ``origin`` ``None`` gives the real baike.baidu.com links (https, or http
    where a page links over http).
    """

    def __init__(self, site: Site, origin: str | None = None):
        self.site = site
        self.https = origin or BAIKE_ORIGIN
        self.http = origin or BAIKE_HTTP_ORIGIN
        # By Link.anchor: relative, absolute https, absolute http.
        self._prefix = ("", self.https, self.http)

    def href(self, link: Link) -> str:
        return self._prefix[link.anchor] + link.path

    def footer(self) -> str:
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
