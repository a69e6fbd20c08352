"""Bar charts as PNG (a tiny pure-Python writer: zlib + struct) and as SVG.

No plotting library is a dependency of the project, so the benchmarks draw their
own: one bar per case (the median), a whisker from min to max, the value above.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# 5x7 glyphs, one string of 7 rows of 5 pixels each; lowercase is drawn as uppercase.
_FONT_ROWS = {
    "A": "01110 10001 10001 11111 10001 10001 10001",
    "B": "11110 10001 10001 11110 10001 10001 11110",
    "C": "01110 10001 10000 10000 10000 10001 01110",
    "D": "11110 10001 10001 10001 10001 10001 11110",
    "E": "11111 10000 10000 11110 10000 10000 11111",
    "F": "11111 10000 10000 11110 10000 10000 10000",
    "G": "01110 10001 10000 10111 10001 10001 01111",
    "H": "10001 10001 10001 11111 10001 10001 10001",
    "I": "01110 00100 00100 00100 00100 00100 01110",
    "J": "00111 00010 00010 00010 00010 10010 01100",
    "K": "10001 10010 10100 11000 10100 10010 10001",
    "L": "10000 10000 10000 10000 10000 10000 11111",
    "M": "10001 11011 10101 10101 10001 10001 10001",
    "N": "10001 10001 11001 10101 10011 10001 10001",
    "O": "01110 10001 10001 10001 10001 10001 01110",
    "P": "11110 10001 10001 11110 10000 10000 10000",
    "Q": "01110 10001 10001 10001 10101 10010 01101",
    "R": "11110 10001 10001 11110 10100 10010 10001",
    "S": "01111 10000 10000 01110 00001 00001 11110",
    "T": "11111 00100 00100 00100 00100 00100 00100",
    "U": "10001 10001 10001 10001 10001 10001 01110",
    "V": "10001 10001 10001 10001 10001 01010 00100",
    "W": "10001 10001 10001 10101 10101 10101 01010",
    "X": "10001 10001 01010 00100 01010 10001 10001",
    "Y": "10001 10001 01010 00100 00100 00100 00100",
    "Z": "11111 00001 00010 00100 01000 10000 11111",
    "0": "01110 10001 10011 10101 11001 10001 01110",
    "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111",
    "3": "11111 00010 00100 00010 00001 10001 01110",
    "4": "00010 00110 01010 10010 11111 00010 00010",
    "5": "11111 10000 11110 00001 00001 10001 01110",
    "6": "00110 01000 10000 11110 10001 10001 01110",
    "7": "11111 00001 00010 00100 01000 01000 01000",
    "8": "01110 10001 10001 01110 10001 10001 01110",
    "9": "01110 10001 10001 01111 00001 00010 01100",
    ".": "00000 00000 00000 00000 00000 01100 01100",
    ",": "00000 00000 00000 00000 01100 00100 01000",
    "-": "00000 00000 00000 11111 00000 00000 00000",
    "/": "00001 00001 00010 00100 01000 10000 10000",
    ":": "00000 01100 01100 00000 01100 01100 00000",
    "(": "00010 00100 01000 01000 01000 00100 00010",
    ")": "01000 00100 00010 00010 00010 00100 01000",
    "%": "11001 11010 00010 00100 01000 01011 10011",
    "=": "00000 00000 11111 00000 11111 00000 00000",
    "+": "00000 00100 00100 11111 00100 00100 00000",
    " ": "00000 00000 00000 00000 00000 00000 00000",
}
FONT = {char: [int(row, 2) for row in rows.split()] for char, rows in _FONT_ROWS.items()}
GLYPH_W, GLYPH_H = 5, 7

Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)
INK: Color = (40, 40, 40)
GRID: Color = (225, 225, 225)
PALETTE: tuple[Color, ...] = ((120, 144, 156), (255, 167, 38), (66, 133, 244), (15, 157, 88), (171, 71, 188))


@dataclass
class Bar:
    label: str
    value: float
    low: float | None = None
    high: float | None = None


class Canvas:
    """An RGB raster with rectangles and 5x7 text."""

    def __init__(self, width: int, height: int, background: Color = WHITE):
        self.width, self.height = width, height
        self.pixels = [bytearray(bytes(background) * width) for _ in range(height)]

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        x0, x1 = max(0, min(x0, x1)), min(self.width, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.height, max(y0, y1))
        span = bytes(color) * (x1 - x0)
        for y in range(y0, y1):
            self.pixels[y][3 * x0 : 3 * x1] = span

    def text(self, x: int, y: int, text: str, color: Color = INK, scale: int = 2) -> None:
        for char in text.upper():
            rows = FONT.get(char, FONT[" "])
            for row, bits in enumerate(rows):
                for col in range(GLYPH_W):
                    if bits & (1 << (GLYPH_W - 1 - col)):
                        self.rect(x + col * scale, y + row * scale, x + (col + 1) * scale, y + (row + 1) * scale, color)
            x += (GLYPH_W + 1) * scale

    @staticmethod
    def text_width(text: str, scale: int = 2) -> int:
        return len(text) * (GLYPH_W + 1) * scale - scale

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(row) for row in self.pixels)

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
        )


@dataclass
class Layout:
    width: int = 760
    height: int = 420
    left: int = 70
    right: int = 30
    top: int = 60
    bottom: int = 70

    @property
    def plot_height(self) -> int:
        return self.height - self.top - self.bottom


def _scale(bars: Sequence[Bar]) -> float:
    """A round top for the axis, with room for the labels above the highest bar."""
    top = (max(max(bar.high or bar.value, bar.value) for bar in bars) or 1.0) * 1.15
    magnitude = 10 ** math.floor(math.log10(top))
    return next(step * magnitude for step in (1, 2, 2.5, 4, 5, 8, 10) if step * magnitude >= top)


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 100 or value == int(value) else f"{value:.1f}"


def bar_chart_png(path: Path, title: str, bars: Sequence[Bar], note: str = "") -> None:
    layout = Layout()
    canvas = Canvas(layout.width, layout.height)
    top = _scale(bars)
    base_y = layout.top + layout.plot_height
    canvas.text(layout.left, 18, title)
    for tick in range(5):
        value = top * tick / 4
        y = base_y - round(layout.plot_height * tick / 4)
        canvas.rect(layout.left, y, layout.width - layout.right, y + 1, GRID)
        label = _fmt(value)
        canvas.text(layout.left - 10 - canvas.text_width(label), y - 7, label)
    slot = (layout.width - layout.left - layout.right) / len(bars)
    for index, bar in enumerate(bars):
        x0 = round(layout.left + slot * index + slot * 0.2)
        x1 = round(layout.left + slot * (index + 1) - slot * 0.2)
        y = base_y - round(layout.plot_height * bar.value / top)
        canvas.rect(x0, y, x1, base_y, PALETTE[index % len(PALETTE)])
        if bar.low is not None and bar.high is not None:
            mid = (x0 + x1) // 2
            y_low = base_y - round(layout.plot_height * bar.low / top)
            y_high = base_y - round(layout.plot_height * bar.high / top)
            canvas.rect(mid - 1, y_high, mid + 1, y_low + 1, INK)
            canvas.rect(mid - 6, y_high, mid + 6, y_high + 2, INK)
            canvas.rect(mid - 6, y_low - 1, mid + 6, y_low + 1, INK)
        value = _fmt(bar.value)
        canvas.text((x0 + x1 - canvas.text_width(value)) // 2, min(y, base_y) - 34, value)
        canvas.text((x0 + x1 - canvas.text_width(bar.label)) // 2, base_y + 12, bar.label)
    canvas.rect(layout.left, base_y, layout.width - layout.right, base_y + 2, INK)
    if note:
        canvas.text(layout.left, layout.height - 26, note, scale=1)
    path.write_bytes(canvas.png())


def bar_chart_svg(path: Path, title: str, bars: Sequence[Bar], note: str = "") -> None:
    layout = Layout()
    top = _scale(bars)
    base_y = layout.top + layout.plot_height
    slot = (layout.width - layout.left - layout.right) / len(bars)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{layout.width}" height="{layout.height}"'
        ' font-family="sans-serif" font-size="13">',
        f'<rect width="{layout.width}" height="{layout.height}" fill="white"/>',
        f'<text x="{layout.left}" y="30" font-size="16">{_escape(title)}</text>',
    ]
    for tick in range(5):
        y = base_y - layout.plot_height * tick / 4
        parts.append(
            f'<line x1="{layout.left}" x2="{layout.width - layout.right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e1e1e1"/>'
        )
        parts.append(f'<text x="{layout.left - 8}" y="{y + 4:.1f}" text-anchor="end">{_fmt(top * tick / 4)}</text>')
    for index, bar in enumerate(bars):
        x0 = layout.left + slot * index + slot * 0.2
        width = slot * 0.6
        height = layout.plot_height * bar.value / top
        color = "#{:02x}{:02x}{:02x}".format(*PALETTE[index % len(PALETTE)])
        parts.append(
            f'<rect x="{x0:.1f}" y="{base_y - height:.1f}" width="{width:.1f}" height="{height:.1f}" fill="{color}"/>'
        )
        mid = x0 + width / 2
        if bar.low is not None and bar.high is not None:
            y_low = base_y - layout.plot_height * bar.low / top
            y_high = base_y - layout.plot_height * bar.high / top
            parts.append(
                f'<line x1="{mid:.1f}" x2="{mid:.1f}" y1="{y_low:.1f}" y2="{y_high:.1f}" stroke="#282828" stroke-width="2"/>'
            )
        parts.append(
            f'<text x="{mid:.1f}" y="{base_y - height - 16:.1f}" text-anchor="middle">{_fmt(bar.value)}</text>'
        )
        parts.append(f'<text x="{mid:.1f}" y="{base_y + 22}" text-anchor="middle">{_escape(bar.label)}</text>')
    if note:
        parts.append(f'<text x="{layout.left}" y="{layout.height - 16}" font-size="11">{_escape(note)}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts), encoding="utf-8")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
