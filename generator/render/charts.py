"""The model card's charts as inline SVG: the training loss curve, the quality trend and the curation bars.

Numbers only come from the night's report, which may be partial or odd: anything that is
not a finite number is skipped, and labels are escaped.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from .site_model import excerpt, finite_number


def loss_curve_svg(points) -> str | None:
    """Inline SVG line chart of [[step, loss], …]; None without at least two valid points."""
    return line_chart_svg(points, chart_id="loss", title="Training loss by step", x_name="step", y_name="loss",
                          x_tick=lambda x: f"{int(round(x)):,}", y_decimals=3)


def trend_svg(points, labels: list[str], title: str, y_name: str, chart_id: str = "trend") -> str | None:
    """Inline SVG line chart of a figure over nights: ``points`` [[night number, value], …], ``labels`` the nights."""
    def tick(x):
        index = int(round(x))
        return escape(labels[index][5:]) if 0 <= index < len(labels) and abs(x - index) < 0.01 else ""

    return line_chart_svg(points, chart_id=chart_id, title=title, x_name="night", y_name=y_name, x_tick=tick,
                          y_decimals=2)


def line_chart_svg(points, *, chart_id: str, title: str, x_name: str, y_name: str, x_tick, y_decimals: int) -> str | None:
    """Inline SVG line chart of [[x, y], …]; None without at least two valid points."""
    clean = []
    for point in points or []:
        if isinstance(point, (list, tuple)) and len(point) >= 2:
            x, y = finite_number(point[0]), finite_number(point[1])
            if x is not None and y is not None:
                clean.append((x, y))
    if len(clean) < 2:
        return None
    clean.sort()
    width, height, left, right, top, bottom = 640, 260, 56, 16, 16, 40
    xs, ys = [p[0] for p in clean], [p[1] for p in clean]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = (y1 - y0) * 0.08
    y0, y1 = y0 - pad, y1 + pad

    def sx(x):
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y):
        return top + (y1 - y) / (y1 - y0) * (height - top - bottom)

    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in clean)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-labelledby="{chart_id}-title {chart_id}-desc">',
             f'<title id="{chart_id}-title">{escape(title)}</title>',
             f'<desc id="{chart_id}-desc">{len(clean)} points from {x_name} {x_tick(xs[0])} ({y_name} '
             f'{ys[0]:.{y_decimals}f}) to {x_name} {x_tick(xs[-1])} ({y_name} {ys[-1]:.{y_decimals}f}).</desc>']
    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}"/>')
        parts.append(f'<text class="tick" x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
    for i in range(5):
        x = x0 + (x1 - x0) * i / 4
        parts.append(f'<text class="tick" x="{sx(x):.1f}" y="{height - bottom + 18}" text-anchor="middle">'
                     f'{x_tick(x)}</text>')
    parts.append(f'<text class="axis-label" x="{(left + width - right) / 2:.0f}" y="{height - 4}" '
                 f'text-anchor="middle">{x_name}</text>')
    parts.append(f'<polyline class="line" points="{path}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def rejection_chart_svg(rejected: dict, kept) -> str | None:
    """Inline SVG horizontal bars: kept and each rejection reason, with counts."""
    rows = [("kept", int(kept), "bar-kept")] if finite_number(kept) is not None else []
    counts = [(str(reason), int(count)) for reason, count in (rejected or {}).items()
              if finite_number(count) is not None]
    rows += [(reason, count, "bar") for reason, count in sorted(counts, key=lambda rc: (-rc[1], rc[0]))]
    if not rows:
        return None
    width, label_w, row_h = 640, 180, 30
    height = row_h * len(rows) + 8
    top = max(count for _, count, _ in rows) or 1
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="rej-title">',
             '<title id="rej-title">Kept samples and rejections by reason</title>']
    for i, (label, count, cls) in enumerate(rows):
        y = 4 + i * row_h
        bar = (width - label_w - 70) * count / top
        parts.append(f'<text class="tick" x="{label_w - 8}" y="{y + 19}" text-anchor="end">{escape(excerpt(label, 20))}</text>')
        parts.append(f'<rect class="{cls}" x="{label_w}" y="{y + 4}" width="{max(bar, 1):.1f}" height="{row_h - 10}" rx="3"/>')
        parts.append(f'<text class="value" x="{label_w + max(bar, 1) + 6:.1f}" y="{y + 19}">{count:,}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
