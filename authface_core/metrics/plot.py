"""A metric against a setting (fidelity, steps, checkpoint) as a line chart, drawn with Pillow.

Pillow is already a dependency; matplotlib is not, and one chart type does not justify it.
The chart is returned as an (H, W, 3) uint8 array; callers save it (``io.save_image``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PLOT_SIZE = (800, 500)  # width, height in pixels
MARGINS = (80, 50, 190, 60)  # left, top, right (legend), bottom
# Tableau 10, distinguishable and colour-blind friendly enough for a handful of methods.
SERIES_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75))
FONT_SIZE = 14
TICK_COUNT = 5


def nice_ticks(low: float, high: float, count: int = TICK_COUNT) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) covering [low, high]."""
    if high <= low:
        low, high = low - 0.5, high + 0.5
    raw_step = (high - low) / max(1, count - 1)
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw_step)
    first = math.floor(low / step) * step
    ticks = [first + i * step for i in range(int(math.ceil((high - first) / step)) + 1)]
    return [round(t, 10) for t in ticks]


def draw_line_plot(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_tick_labels: Mapping[float, str] | None = None,
    size: tuple[int, int] = PLOT_SIZE,
) -> np.ndarray:
    """Draw one line per series of (x, y) points; NaN y values are left out. Returns (H, W, 3) uint8.

    ``x_tick_labels`` replaces the numeric x ticks by names (categories such as method names);
    categories get dots only, since a line between unrelated methods would suggest a trend.
    """
    points = {name: [(x, y) for x, y in pts if math.isfinite(y)] for name, pts in series.items()}
    all_points = [p for pts in points.values() for p in pts]
    if not all_points:
        raise ValueError(f"nothing to plot: no finite {y_label} values")
    width, height = size
    left, top, right, bottom = MARGINS
    plot_box = (left, top, width - right, height - bottom)
    x_ticks = sorted(x_tick_labels) if x_tick_labels else nice_ticks(*_span([x for x, _ in all_points]))
    # Categories get half a slot of room on each side so that no point sits on the frame.
    x_pad = 0.5 if x_tick_labels else 0.0
    y_ticks = nice_ticks(*_span([y for _, y in all_points]))
    to_pixel = _axis_mapping(plot_box, (x_ticks[0] - x_pad, x_ticks[-1] + x_pad), (y_ticks[0], y_ticks[-1]))

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=FONT_SIZE)
    draw.text((width / 2, top / 2), title, fill="black", font=font, anchor="mm")
    for y in y_ticks:
        _, py = to_pixel(x_ticks[0], y)
        draw.line([(plot_box[0], py), (plot_box[2], py)], fill=(225, 225, 225))
        draw.text((plot_box[0] - 8, py), f"{y:g}", fill="black", font=font, anchor="rm")
    for x in x_ticks:
        px, _ = to_pixel(x, y_ticks[0])
        label = x_tick_labels[x] if x_tick_labels else f"{x:g}"
        draw.text((px, plot_box[3] + 8), label, fill="black", font=font, anchor="mt")
    draw.rectangle(plot_box, outline="black")
    draw.text(((plot_box[0] + plot_box[2]) / 2, height - 18), x_label, fill="black", font=font, anchor="mm")
    draw.text((12, top - 20), y_label, fill="black", font=font, anchor="lm")

    for index, (name, pts) in enumerate(points.items()):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        pixels = [to_pixel(x, y) for x, y in sorted(pts)]
        if len(pixels) > 1 and not x_tick_labels:
            draw.line(pixels, fill=colour, width=2)
        for px, py in pixels:
            draw.ellipse((px - 4, py - 4, px + 4, py + 4), fill=colour)
        legend_y = top + 10 + index * 22
        draw.line([(plot_box[2] + 15, legend_y), (plot_box[2] + 40, legend_y)], fill=colour, width=3)
        draw.text((plot_box[2] + 48, legend_y), name, fill="black", font=font, anchor="lm")
    return np.asarray(image, dtype=np.uint8).copy()


def _span(values: Sequence[float]) -> tuple[float, float]:
    return min(values), max(values)


def _axis_mapping(box: tuple[int, int, int, int], x_range: tuple[float, float], y_range: tuple[float, float]):
    """A function data (x, y) -> pixel (px, py) inside ``box``; y grows upwards on screen."""
    x0, y0, x1, y1 = box
    x_span = (x_range[1] - x_range[0]) or 1.0
    y_span = (y_range[1] - y_range[0]) or 1.0

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        return x0 + (x - x_range[0]) / x_span * (x1 - x0), y1 - (y - y_range[0]) / y_span * (y1 - y0)

    return to_pixel
