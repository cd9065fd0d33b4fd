"""The model card's charts as inline SVG: the training loss curve and the curation bars.

Numbers only come from the night's report, which may be partial or odd: anything that is
not a finite number is skipped, and labels are escaped.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from .site_model import excerpt, finite_number, fmt_number


def loss_curve_svg(points) -> str | None:
    """Inline SVG line chart of [[step, loss], …]; None without at least two valid points."""
    clean = []
    for point in points or []:
        if isinstance(point, (list, tuple)) and len(point) >= 2:
            step, loss = finite_number(point[0]), finite_number(point[1])
            if step is not None and loss is not None:
                clean.append((step, loss))
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
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="loss-title loss-desc">',
             '<title id="loss-title">Training loss by step</title>',
             f'<desc id="loss-desc">{len(clean)} points from step {fmt_number(int(xs[0]))} (loss {ys[0]:.3f}) '
             f'to step {fmt_number(int(xs[-1]))} (loss {ys[-1]:.3f}).</desc>']
    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}"/>')
        parts.append(f'<text class="tick" x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
    for i in range(5):
        x = x0 + (x1 - x0) * i / 4
        parts.append(f'<text class="tick" x="{sx(x):.1f}" y="{height - bottom + 18}" text-anchor="middle">'
                     f'{int(round(x)):,}</text>')
    parts.append(f'<text class="axis-label" x="{(left + width - right) / 2:.0f}" y="{height - 4}" '
                 f'text-anchor="middle">step</text>')
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
