"""Baike's ~2021-2022 layout: its ``J-*`` hooks and its chrome to skip.

The 2021-2022 pages are the 2017 tree (:mod:`baike.parsing.y2017`, read by
:mod:`baike.parsing.classic`) plus the ``J-lemma-title``, ``J-summary``,
``J-basic-info`` and ``J-polysemant`` hooks, ``para MARK_MODULE`` paragraphs
and 播报 (read aloud) buttons next to the title and headings, which are chrome
to skip (their class names hold ``audio``). The 2023+ React pages
(:mod:`baike.parsing.react`) keep these ``J-*`` hooks, which is why the React
layout's DOM falls back on the classic readers.

Only markers live here, so that :mod:`baike.parsing.classic`'s hook finder and
:mod:`baike.parsing.shared`'s noise test can import them without a cycle.
"""

from __future__ import annotations

TITLE_HOOK = "J-lemma-title"
SUMMARY_HOOK = "J-summary"
INFOBOX_HOOK = "J-basic-info"
POLYSEMANT_LIST_HOOK = "J-polysemant"
# Substring of every J-* hook, a cheap test before a class attribute is split into tokens.
HOOK_PARTS = ("J-",)
# Class fragment of the 播报 (read aloud) buttons; a substring, because the
# React layout hashes its class names (``audioBtn_x1Y2z``).
AUDIO_CLASS_PART = "audio"
