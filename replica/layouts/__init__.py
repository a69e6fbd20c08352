"""HTML templates for the three Baike layouts, plus the fixed pages.

The markup follows the *structure* of real Baike pages of each era (class
names, nesting, attribute quirks, where ids and JSON live) with our own
generated text. Rendering is plain string building, and the big constant
chunks (scripts, styles, header, footer) are encoded to UTF-8 once: the server
must turn out thousands of distinct pages per second on one core.

One module per layout, as in the parser (``baike/parsing/``), so that a layout
is found in the same place on both sides:

- ``shared``: what every layout uses (chrome links, filler CSS and JS, helpers);
- ``classic``: the tree and chrome that 2017 and ~2021-2022 share, with
  ``y2017`` and ``y2021`` for what is specific to each;
- ``react``: the 2023+ React layout (CSS-module classes, ``window.PAGE_DATA``);
- ``lists``: disambiguation list pages;
- ``kinds``: the fixed pages that are not entries (error, captcha, help, home, robots.txt).

:class:`Renderer` puts them together for one site and origin.
"""

from __future__ import annotations

from replica.layouts.classic import ClassicChrome, ClassicLayout
from replica.layouts.kinds import FixedPages
from replica.layouts.lists import ListPages
from replica.layouts.react import MODULE_CLASSES, ReactLayout, deploy_suffixes
from replica.layouts.shared import GBK_CODEC, HTML_GBK, HTML_UTF8, Base
from replica.layouts.y2017 import Layout2017
from replica.layouts.y2021 import Layout2021
from replica.model import GBK, LAYOUT_2017, LAYOUT_2021, Entry
from replica.site import Site

__all__ = ["GBK_CODEC", "HTML_GBK", "HTML_UTF8", "MODULE_CLASSES", "Renderer", "deploy_suffixes"]


class Renderer(Base):
    """Renders a Site's pages for one origin (``None``: the real baike.baidu.com links)."""

    def __init__(self, site: Site, origin: str | None = None):
        super().__init__(site, origin)
        footer = self.footer()
        # The 2017 and 2021 layouts and the list pages share one encoded chrome.
        chrome = ClassicChrome(footer)
        self.y2017 = Layout2017(site, origin, chrome)
        self.y2021 = Layout2021(site, origin, chrome)
        self.react = ReactLayout(site, origin, footer)
        self.lists = ListPages(self.y2017)
        self.fixed = FixedPages(site, origin)
        self.deploys = self.react.deploys
        self._classic: dict[int, ClassicLayout] = {LAYOUT_2017: self.y2017, LAYOUT_2021: self.y2021}

    # ------------------------------------------------------------ entry pages

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
        classic = self._classic.get(entry.layout)
        if classic is not None:
            return classic.render(entry), HTML_GBK if entry.charset == GBK else HTML_UTF8
        return self.react.render(entry), HTML_UTF8

    def render_old(self, entry: Entry) -> bytes:
        """2017 layout, or ~2021-2022 (``J-`` hooks, absolute links) for LAYOUT_2021."""
        return self._classic[entry.layout].render(entry)

    def render_react(self, entry: Entry) -> bytes:
        """2023+ React layout: CSS-module classes of the entry's deploy, PAGE_DATA JSON."""
        return self.react.render(entry)

    # ------------------------------------------------------------ other pages

    def list_page(self, word: int) -> bytes:
        """Word ``word``'s disambiguation list page (see :meth:`ListPages.page`)."""
        return self.lists.page(word)

    def error_page(self) -> bytes:
        return self.fixed.error_page()

    def captcha_page(self) -> bytes:
        return self.fixed.captcha_page()

    def help_page(self, title: str = "百科帮助_百度百科", heading: str = "帮助中心") -> bytes:
        """A non-entry help page: its own ``<title>``, no lemma title hooks, no entry links."""
        return self.fixed.help_page(title, heading)

    def help_pages(self) -> dict[str, bytes]:
        """Site path -> page of every help id and special page (``Site.help_paths``)."""
        return self.fixed.help_pages()

    def home_page(self) -> bytes:
        return self.fixed.home_page()

    robots = staticmethod(FixedPages.robots)
