"""The fixed pages that are not entries: error, captcha, help pages, home page, robots.txt.

Real Baike sends a missing entry to ``/error.html?status=404`` (抱歉，您所访问的页面不存在) and
an anti-bot check to ``/anticrawl/captchaview`` (title 百度安全验证); help pages, also under
``/view/<n>.htm``, have their own ``<title>`` and none of an entry's hooks. None of them
becomes an item. They are small pages in the classic stylesheet and footer.
"""

from __future__ import annotations

from replica.layouts.shared import _OLD_CSS, Base


class FixedPages(Base):
    """The non-entry pages; their links point at the Renderer's origin."""

    def _simple_page(self, title: str, body: str) -> bytes:
        return (
            '<!DOCTYPE html><html><head><meta charset="UTF-8">'
            f'<title>{title}</title><style type="text/css">{_OLD_CSS[:2000]}</style></head>'
            f'<body class="wiki-common">{body}{self.footer()}</body></html>'
        ).encode()

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
