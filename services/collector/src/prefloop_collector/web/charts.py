"""Inline SVG for the status page: per-game balance bars with the minimum share marked."""

from __future__ import annotations

from html import escape


def balance_svg(shares: dict[str, float], minimum: float, width: int = 420, bar: int = 26) -> str:
    label_w, gap = 110, 10
    plot_w = width - label_w - 60
    height = len(shares) * (bar + gap) + gap
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="share of trainable pairs per game">'
    ]
    for i, (game, share) in enumerate(shares.items()):
        y = gap + i * (bar + gap)
        color = "#2f9e44" if share >= minimum else "#e8590c"
        parts.append(f'<text x="0" y="{y + bar * 0.7:.0f}" font-size="14">{escape(game)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{plot_w}" height="{bar}" fill="#eee"/>')
        parts.append(
            f'<rect class="bar" data-game="{escape(game)}" x="{label_w}" y="{y}" '
            f'width="{plot_w * share:.1f}" height="{bar}" fill="{color}"/>'
        )
        parts.append(f'<text x="{label_w + plot_w + 6}" y="{y + bar * 0.7:.0f}" font-size="14">{share:.0%}</text>')
    x_min = label_w + plot_w * minimum
    parts.append(f'<line x1="{x_min:.1f}" x2="{x_min:.1f}" y1="0" y2="{height}" stroke="#333" stroke-dasharray="4 3"/>')
    parts.append("</svg>")
    return "".join(parts)
