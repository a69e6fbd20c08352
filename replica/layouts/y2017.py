"""Baike's 2017 layout: what it does unlike ~2021-2022 (the shared tree is in classic).

Modelled on whole 2017 pages (``old2017-*.html`` in the real samples): a bare
``h1`` with an edit and a lock link in the title block, no ``J-`` hooks and no
``data-pid`` counters, unquoted attributes (``target=_blank``), relative links
(``/item/<enc>[/<id>]``, ``/subview/<a>/<b>.htm``, ``/view/<n>.htm``) and
catalog links that are fragments only. One 2017 page in eight is served as
``charset=GBK`` without a ``<meta charset>``.
"""

from __future__ import annotations

from replica.layouts.classic import ClassicLayout
from replica.model import LAYOUT_2017, Entry, Link, Section


class Layout2017(ClassicLayout):
    """An entry page in the 2017 layout (LAYOUT_2017)."""

    layout = LAYOUT_2017
    summary_open = '<div class="lemma-summary" label-module="lemmaSummary">\n'
    infobox_open = '<div class="basic-info cmn-clearfix">'
    quoted_links = False

    def _title(self, entry: Entry, h2: str) -> str:
        return (
            f'<dd class="lemmaWgt-lemmaTitle-title">\n<h1 >{entry.name}</h1>{h2}'
            '<a href="javascript:;" class="edit-lemma cmn-btn-hover-blue cmn-btn-28 j-edit-link">'
            '<em class="cmn-icon wiki-lemma-icons wiki-lemma-icons_edit-lemma"></em>编辑</a>'
            f'<a class="lock-lemma" target="_blank" href="/view/{self.site.help_ids[2]}.htm" title="锁定">锁定</a></dd>'
        )

    def _summary_paras(self, entry: Entry) -> str:
        sub_id, inline = entry.sub_id, self._inline
        return "\n".join([f"<div class=para label-module=para>\n{inline(p, sub_id)}\n</div>" for p in entry.summary])

    def _para_open(self, pid: int) -> str:
        return "<div class=para label-module=para>"

    def _chapter(self, section: Section, pid: int) -> tuple[str, str]:
        return "", ""

    def _catalog_base(self, entry: Entry) -> str:
        return ""

    def _link_items(self, links: list[Link]) -> str:
        prefix = self._prefix
        return "".join(
            [f"<li><a href='{prefix[link.anchor]}{link.path}' target=_blank>{link.text}</a></li>" for link in links]
        )
