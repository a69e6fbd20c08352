"""Page kinds, and how a page that is not an entry is recognised.

Every page is an entry, a disambiguation list (:mod:`baike.parsing.lists`), or
none of them: Baike's anti-bot check (``wappass.baidu.com`` or
``/anticrawl/…``, titled 百度安全验证), its error page (``/error.html?status=404``,
whose text says 页面不存在 under the site's generic title), or anything else
(help pages have their own ``<title>`` and none of an entry's hooks; whatever is
not HTML). Only the URL, the ``<title>`` and the page's text are looked at.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from lxml import etree

from baike.parsing.shared import _X_HTML_TITLE, clean_text

KIND_ENTRY = "entry"
# A disambiguation list (``/item/<name>?force=1``, or a name with no default
# sense): links to the word's senses, no entry of its own.
KIND_LIST = "list"
KIND_CAPTCHA = "captcha"
KIND_ERROR = "error"
KIND_OTHER = "other"


# The anti-bot page is titled exactly 百度安全验证; an entry about the phrase is
# titled "<name>_百度百科" and has a lemma title, so only lemma-less pages are
# matched loosely.
_CAPTCHA_TITLE = "百度安全验证"
_CAPTCHA_TITLE_PART = "安全验证"
_ERROR_TITLES = ("百度百科-验证", "错误", "404", "不存在")
# Baike's 404 page keeps the site's generic title; only its text says it.
_ERROR_TEXT = "页面不存在"


def _html_title(root: etree._Element) -> str:
    for el in _X_HTML_TITLE(root):
        return clean_text("".join(el.itertext()))
    return ""


def _url_kind(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return None
    path = parts.path.lower()
    if host == "wappass.baidu.com" or path.startswith("/anticrawl"):
        return KIND_CAPTCHA
    if path.startswith("/error."):
        return KIND_ERROR
    return None


def _non_entry_kind(root: etree._Element, text: str) -> str:
    title = _html_title(root)
    if _CAPTCHA_TITLE_PART in title:
        return KIND_CAPTCHA
    if any(word in title for word in _ERROR_TITLES):
        return KIND_ERROR
    if _ERROR_TEXT in text:
        return KIND_ERROR
    return KIND_OTHER
