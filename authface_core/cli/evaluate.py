"""``evaluate``: tables (Markdown, CSV) and a plot comparing folders of restored faces.

A file that cannot be scored (unreadable, or not the aligned square face the identity metrics need)
is reported with its name and the problem, the others are scored, and the exit status is 1.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from ..metrics.config import EvaluationConfig
from ..settings import add_settings_arguments, check_settings, setting

HELP = "Score folders of restored aligned faces (PSNR/SSIM, identity, LMD, NIQE, learned) into tables and a plot."


@dataclass(frozen=True)
class ReportSettings:
    """How to show the scores (what to measure is :class:`~authface_core.metrics.config.EvaluationConfig`)."""

    _argument_group_name = "report"

    plot_metric: str | None = setting(
        None, "metric to plot per method (None: psnr_y with --gt, else niqe if measured; none for no plot)"
    )
    x_label: str = setting(
        "setting", "what the number ending each folder name means, e.g. fidelity or steps (folders fidelity_0.5, ...)"
    )
    title: str = setting("Evaluation", "title of the Markdown table")

    def __post_init__(self):
        check_settings(self)


def add_arguments(parser) -> None:
    """The settings' flags (from :class:`EvaluationConfig` and :class:`ReportSettings`), then the folders."""
    add_settings_arguments(parser, EvaluationConfig, ReportSettings)
    parser.add_argument(
        "methods", nargs="+", metavar="RESTORED_DIR", help="one folder of restored faces per method or setting"
    )
    parser.add_argument(
        "-o", "--out", required=True, metavar="OUT", help="folder for results.md, results.csv, per_image.csv, the plot"
    )


def run(args) -> int:
    from ..errors import AuthFaceError
    from ..metrics.evaluate import evaluate_folders
    from ..metrics.report import save_report
    from ..settings import settings_from_namespace
    from . import EXIT_CANNOT_START, EXIT_OK, EXIT_SOME_FAILED

    try:
        config, settings = settings_from_namespace(args, EvaluationConfig, ReportSettings)
        plot_metric = settings.plot_metric or next((k for k in ("psnr_y", "niqe") if k in config.metric_keys), "none")
        if plot_metric.lower() == "none":
            plot_metric = None
        elif plot_metric not in config.metric_keys:
            raise ValueError(
                f"--plot-metric {plot_metric!r} is not measured here; choose from {list(config.metric_keys)}"
            )
        report = evaluate_folders(args.methods, config)
        files = save_report(report, args.out, plot_metric=plot_metric, x_label=settings.x_label, title=settings.title)
    except (AuthFaceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    print(files.markdown.read_text())
    written = [files.markdown, files.csv, files.per_image_csv] + ([files.plot] if files.plot else [])
    print("wrote " + ", ".join(str(p) for p in written))
    return EXIT_SOME_FAILED if any(method.failures for method in report.methods) else EXIT_OK
