"""Disambiguation list pages (``/item/<name>?force=1``), in the 2017 chrome.

Baike shows a polysemant's list of senses at its bare name when no sense is the
default, and at ``?force=1`` always: the ``h1``, a
``div.lemmaWgt-subLemmaListTitle`` and a ``ul.para-list`` of the senses. The
page comes in the 2017 layout's chrome with its hot-entries box.
"""

from __future__ import annotations

from replica.layouts.shared import _META_UTF8
from replica.layouts.y2017 import Layout2017


class ListPages:
    """Renders list pages in the chrome and hot-entries box of ``layout``."""

    def __init__(self, layout: Layout2017):
        self.layout = layout

    def page(self, word: int) -> bytes:
        """Word ``word``'s disambiguation list page, in the 2017 chrome (UTF-8).

        After the ``<h1>`` come ``div.lemmaWgt-subLemmaListTitle`` and a
        ``ul.para-list`` with one ``li div.para a`` per sense, linking
        ``/item/<enc>/<lemmaId>`` (with ``data-lemmaid``), text "name：subtitle".
        Its entry links are the senses, the navbar hub and the hot-entries box
        (``Site.list_targets``).
        """
        layout = self.layout
        chrome = layout.chrome
        site = layout.site
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
        return b"".join(
            (
                b"<!DOCTYPE html><!--STATUS OK--><html><head>",
                _META_UTF8,
                b'<meta http-equiv="X-UA-Compatible" content="IE=Edge" /><meta name="referrer" content="always" />',
                f"<title>{name}_百度百科</title>".encode(),
                chrome.head,
                name.encode("utf-8"),
                chrome.nav,
                f'<div><a href="{layout.href(navbar)}" target="_blank">{navbar.text}</a></div>'.encode(),
                chrome.body,
                body.encode("utf-8"),
                layout.hot,
                chrome.footer,
                chrome.tail,
            )
        )
