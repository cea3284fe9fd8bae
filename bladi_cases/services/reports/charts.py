"""Small bar charts drawn on the server as SVG (no chart library in the browser). Each chart
comes with a table of the same figures for screen readers and for copying."""

from __future__ import annotations

from markupsafe import Markup, escape

WIDTH, BAR, GAP = 320, 22, 8


def bar_chart(title: str, bars: list[tuple[str, float | None, str]], rtl: bool = False) -> Markup:
    """Horizontal bars: (label, value or None when hidden, text shown). Hidden values draw no
    bar, only their text ("…"), so a chart never shows more than its table."""
    known = [v for _, v, _ in bars if v is not None]
    top = max(known, default=0) or 1
    height = len(bars) * (BAR + GAP) + GAP
    label_x, text_anchor = (WIDTH - 4, "end") if rtl else (4, "start")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
             f'role="img" aria-label="{escape(title)}" class="chart">']
    for index, (label, value, text) in enumerate(bars):
        y = GAP + index * (BAR + GAP)
        length = 0 if value is None else round((WIDTH * 0.55) * value / top)
        x = WIDTH * 0.4 - length if rtl else WIDTH * 0.45
        parts.append(f'<rect x="{x:.0f}" y="{y}" width="{length}" height="{BAR}" rx="3" '
                     f'class="bar"/>')
        parts.append(f'<text x="{label_x}" y="{y + BAR * 0.7:.0f}" text-anchor="{text_anchor}" '
                     f'class="label">{escape(label)}</text>')
        value_x = (x - 4) if rtl else (x + length + 4)
        parts.append(f'<text x="{value_x:.0f}" y="{y + BAR * 0.7:.0f}" '
                     f'text-anchor="{"end" if rtl else "start"}" class="value">'
                     f'{escape(text)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
