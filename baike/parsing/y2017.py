"""Baike's 2017 layout: its hook class names (the tree it shares with ~2021-2022 is in classic).

2017 pages are server-rendered: the title is ``dd.lemmaWgt-lemmaTitle-title > h1``
(+ ``h2`` subtitle), the summary ``div.lemma-summary > div.para``, the infobox
``div.basic-info`` with ``dt``/``dd`` pairs, and the sense bar
``ul.polysemantList-wrapper`` (the current sense a ``span.selected``). The
~2021-2022 pages keep these classes beside their ``J-*`` hooks
(:mod:`baike.parsing.y2021`). The ids in inline scripts (``newLemmaId:"…"``,
``lemmaId:"…"``, ``subLemmaId:"…"``) are read in :mod:`baike.parsing.classic`,
since 2017 and 2021 pages both carry them (the replica renders that script in
``replica/layouts/classic.py`` too).

Only markers live here, so that :mod:`baike.parsing.classic`'s hook finder can
import them without a cycle.
"""

from __future__ import annotations

TITLE_HOOK = "lemmaWgt-lemmaTitle-title"
SUMMARY_HOOK = "lemma-summary"
INFOBOX_HOOK = "basic-info"
POLYSEMANT_LIST_HOOK = "polysemantList-wrapper"
# Substrings of those hooks, a cheap test before a class attribute is split into tokens.
HOOK_PARTS = ("lemmaTitle-title", "summary", "basic-info", "polysemantList")
