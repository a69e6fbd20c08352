"""Baike's ~2021-2022 layout: what it does unlike 2017 (the shared tree is in classic).

Modelled on the real 2021 and 2022 fragments (A and B in
``fragments-2020-2024.html`` of the real samples): the 2017 tree plus
``J-lemma-title``, ``J-summary``, ``J-basic-info`` and ``J-chapter`` hooks,
``para MARK_MODULE`` paragraphs numbered by ``data-pid`` (``data-uuid`` in the
summary), a 播报 (audio) button on the title and on each section title, quoted
attributes with ``data-lemmaid`` on links, absolute
``https://baike.baidu.com/item/...`` links and ``?fr=aladdin`` catalog links.
"""

from __future__ import annotations

from replica.layouts.classic import ClassicLayout
from replica.model import LAYOUT_2021, Entry, Link, Section


class Layout2021(ClassicLayout):
    """An entry page in the ~2021-2022 layout (LAYOUT_2021)."""

    layout = LAYOUT_2021
    summary_open = '<div class="lemma-summary J-summary" label-module="lemmaSummary">\n'
    infobox_open = '<div class="basic-info J-basic-info cmn-clearfix" data-pid="card">'
    quoted_links = True

    def _title(self, entry: Entry, h2: str) -> str:
        return (
            '<dd class="lemmaWgt-lemmaTitle-title J-lemma-title" data-pid="0">\n'
            f'<h1>{entry.name}</h1>{h2}&nbsp;&nbsp;<a class="cmn-btn-28 cmn-btn-hover-blue audio-play title-audio-play J-title-audio-play">'
            '<span class="J-audio-text">播报</span></a>&nbsp;<a class="edit-lemma cmn-btn-hover-blue cmn-btn-28 j-edit-link">编辑</a>'
            '&nbsp;<a class="lemma-discussion cmn-btn-hover-blue cmn-btn-28 j-discussion-link"'
            f' href="{self.https}/planet/talk?lemmaId={entry.lemma_id}" target="_blank">讨论</a></dd>'
        )

    def _summary_paras(self, entry: Entry) -> str:
        sub_id, inline = entry.sub_id, self._inline
        return "\n".join(
            [
                f'<div class="para MARK_MODULE" label-module="para" data-uuid="{sub_id:x}{n}" data-pid="{n + 1}">'
                f"{inline(p, sub_id)}</div>"
                for n, p in enumerate(entry.summary)
            ]
        )

    def _para_open(self, pid: int) -> str:
        return f'<div class="para MARK_MODULE" label-module="para" data-pid="{pid}">'

    def _chapter(self, section: Section, pid: int) -> tuple[str, str]:
        return (
            f' J-chapter" data-index="{section.number}" data-pid="{pid}',
            '<a class="audio-play part-audio-play J-part-audio-play">&nbsp;<span class="J-part-audio-text">播报</span></a>',
        )

    def _catalog_base(self, entry: Entry) -> str:
        return f"{self.https}{self.site.entry_path(entry.index)}?fr=aladdin"

    def _link_items(self, links: list[Link]) -> str:
        prefix, ids = self._prefix, self.site.entry_id
        return "".join(
            [
                f'<li><a href="{prefix[link.anchor]}{link.path}" target="_blank" data-lemmaid="{ids[link.target] if link.target >= 0 else 0}">{link.text}</a></li>'
                for link in links
            ]
        )
