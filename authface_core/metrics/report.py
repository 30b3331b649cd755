"""Turn an :class:`~authface_core.metrics.evaluate.EvaluationReport` into tables (Markdown, CSV) and a plot (PNG).

The render functions are pure (report in, text or image out); :func:`save_report` writes them
atomically into one output folder.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import atomic_write_bytes, encode_image
from .evaluate import EvaluationReport, MetricSummary
from .plot import draw_line_plot
from .specs import METRIC_SPECS

# A method folder named like "fidelity_0.5", "steps-20" or "ckpt1000" carries its setting as a trailing number.
TRAILING_NUMBER = re.compile(r"(-?\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class ReportFiles:
    """Where :func:`save_report` wrote each output."""

    markdown: Path
    csv: Path
    per_image_csv: Path
    plot: Path | None


def format_cell(summary: MetricSummary, digits: int) -> str:
    """A table cell: the mean, "(measured/total)" when measured on fewer images, "skipped" or "n/a (0/total)"."""
    if summary.note:
        return "skipped"
    if summary.mean is None:
        return f"n/a (0/{summary.total})"
    value = "inf" if math.isinf(summary.mean) else f"{summary.mean:.{digits}f}"
    return value if summary.count == summary.total else f"{value} ({summary.count}/{summary.total})"


def render_markdown(report: EvaluationReport, *, title: str = "Evaluation") -> str:
    """One row per method, one column per metric (arrows give the better direction), then the notes."""
    specs = [METRIC_SPECS[key] for key in report.metric_keys]
    lines = [f"## {title}", "", "| method | images | " + " | ".join(s.header for s in specs) + " |"]
    lines.append("|---|---:|" + "---:|" * len(specs))
    for method in report.methods:
        total = next(iter(method.summary.values())).total if method.summary else 0
        cells = [format_cell(method.summary[s.key], s.digits) for s in specs]
        lines.append(f"| {method.name} | {total} | " + " | ".join(cells) + " |")
    if report.notes:
        lines += ["", "Notes:"]
        lines += [f"- {METRIC_SPECS[k].label if k in METRIC_SPECS else k}: {note}" for k, note in report.notes.items()]
    failures = [message for method in report.methods for message in method.failures]
    if failures:
        lines += ["", f"Failed images ({len(failures)}):"] + [f"- {message}" for message in failures]
    return "\n".join(lines) + "\n"


def render_csv(report: EvaluationReport) -> str:
    """Wide summary CSV: method, images, then per metric its mean and how many images it was measured on."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "images"] + [c for k in report.metric_keys for c in (k, f"{k}_count")] + ["notes"])
    for method in report.methods:
        total = next(iter(method.summary.values())).total if method.summary else 0
        row: list[object] = [method.name, total]
        for key in report.metric_keys:
            summary = method.summary[key]
            row += ["" if summary.mean is None else repr(summary.mean), summary.count]
        notes = "; ".join(f"{k}: {s.note}" for k, s in method.summary.items() if s.note)
        writer.writerow(row + [notes])
    return buffer.getvalue()


def render_per_image_csv(report: EvaluationReport) -> str:
    """Long CSV, one row per (method, image): every metric's value, empty where not measurable."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "image", *report.metric_keys])
    for method in report.methods:
        for image, scores in method.per_image:
            values = [scores.get(key) for key in report.metric_keys]
            writer.writerow([method.name, image] + ["" if v is None else repr(v) for v in values])
    return buffer.getvalue()


def trailing_setting(name: str) -> float | None:
    """The number ending a method name (``fidelity_0.5`` -> 0.5), or None."""
    match = TRAILING_NUMBER.search(name)
    return float(match.group(1)) if match else None


def render_plot(report: EvaluationReport, metric: str, *, x_label: str = "setting") -> np.ndarray:
    """The metric's mean per method against the setting that ends each method's name.

    Methods without a setting (a baseline such as ``lq``) are drawn as flat reference lines. When
    fewer than two methods carry a setting, the means are plotted per method instead.
    Returns an (H, W, 3) uint8 image.
    """
    if metric not in report.metric_keys:
        raise ValueError(f"cannot plot {metric!r}: it was not measured; measured: {list(report.metric_keys)}")
    spec = METRIC_SPECS[metric]
    means = {m.name: math.nan if m.summary[metric].mean is None else m.summary[metric].mean for m in report.methods}
    settings = {name: trailing_setting(name) for name in means}
    swept = {name: x for name, x in settings.items() if x is not None}
    if len(set(swept.values())) >= 2:
        span = (min(swept.values()), max(swept.values()))
        prefix = os.path.commonprefix([TRAILING_NUMBER.sub("", name) for name in swept]).rstrip("_-=@ ")
        series = {prefix or spec.label: [(x, means[name]) for name, x in swept.items()]}
        series.update({name: [(span[0], means[name]), (span[1], means[name])] for name in means if name not in swept})
        title = f"{_direction_title(spec)} vs {x_label}"
        return draw_line_plot(series, title=title, x_label=x_label, y_label=spec.label)
    names = list(means)
    return draw_line_plot(
        {spec.label: [(i, means[name]) for i, name in enumerate(names)]},
        title=f"{_direction_title(spec)} per method",
        x_label="method",
        y_label=spec.label,
        x_tick_labels=dict(enumerate(names)),
    )


def _direction_title(spec) -> str:
    """Plot titles spell the direction out: the default font has no arrow glyphs."""
    return f"{spec.label} ({'higher' if spec.higher_is_better else 'lower'} is better)"


def save_report(
    report: EvaluationReport,
    out_dir: str | os.PathLike,
    *,
    plot_metric: str | None = None,
    x_label: str = "setting",
    title: str = "Evaluation",
) -> ReportFiles:
    """Write ``results.md``, ``results.csv``, ``per_image.csv`` and, when asked, ``<metric>.png``.

    The plot is left out (None) when no method has a value for the metric, which the Markdown notes say.
    """
    out_dir = Path(out_dir)
    files = ReportFiles(out_dir / "results.md", out_dir / "results.csv", out_dir / "per_image.csv", None)
    markdown = render_markdown(report, title=title)
    if plot_metric is not None:
        if any(m.summary[plot_metric].mean is not None for m in report.methods if plot_metric in m.summary):
            files = ReportFiles(files.markdown, files.csv, files.per_image_csv, out_dir / f"{plot_metric}.png")
            atomic_write_bytes(files.plot, encode_image(render_plot(report, plot_metric, x_label=x_label)))
            markdown += f"\n![{METRIC_SPECS[plot_metric].label}]({files.plot.name})\n"
        else:
            markdown += f"\nNo plot: no method has a {plot_metric} value.\n"
    atomic_write_bytes(files.markdown, markdown.encode())
    atomic_write_bytes(files.csv, render_csv(report).encode())
    atomic_write_bytes(files.per_image_csv, render_per_image_csv(report).encode())
    return files
