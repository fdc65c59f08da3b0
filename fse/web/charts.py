"""Charts drawn on the server as SVG: readable without a script or a mouse (every bar carries its
value as text), printable, and described for screen readers (``<title>`` and ``aria-label``)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape

from fse.web.formats import amount_fr, count_fr

PALETTE = ("#00594f", "#f79009", "#2e90fa", "#b42318", "#6941c6", "#667085")
"""Greens, orange, blue, red, violet, grey: distinct for the usual colour blindnesses in order."""


def _number(value: Decimal | int) -> str:
    """French conventions, as every page writes numbers (``fse.web.formats``)."""
    return amount_fr(value) if isinstance(value, Decimal) else count_fr(value)


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[Decimal | int]],
    unit: str = "",
    width: int = 720,
    bar_height: int = 18,
) -> str:
    """Horizontal grouped bars: one group per label, one bar per series, the value written at
    the end of each bar, a legend on top."""
    names = list(series)
    peak = max((v for values in series.values() for v in values), default=0) or 1
    label_width, value_width = 130, 110
    plot = width - label_width - value_width
    group = bar_height * len(names) + 8
    legend = 22
    height = legend + group * len(labels) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="system-ui, sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
    ]
    x = 0
    for index, name in enumerate(names):
        colour = PALETTE[index % len(PALETTE)]
        parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 16}" y="14">{escape(name)}</text>')
        x += 24 + 8 * len(name)
    for row, label in enumerate(labels):
        top = legend + row * group
        parts.append(
            f'<text x="{label_width - 6}" y="{top + group / 2 + 4}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
        for index, name in enumerate(names):
            value = series[name][row]
            length = max(1.0, float(value) / float(peak) * plot) if value else 0.0
            y = top + index * bar_height
            colour = PALETTE[index % len(PALETTE)]
            parts.append(
                f'<rect x="{label_width}" y="{y}" width="{length:.1f}" '
                f'height="{bar_height - 3}" fill="{colour}"/>'
            )
            parts.append(
                f'<text x="{label_width + length + 4:.1f}" y="{y + bar_height - 6}">'
                f"{_number(value)}{escape(unit)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)
