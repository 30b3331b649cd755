"""``evaluate``: tables (Markdown, CSV) and a plot comparing folders of restored faces."""

from __future__ import annotations

import sys
from pathlib import Path

HELP = "Score folders of restored aligned faces (PSNR/SSIM, identity, LMD, NIQE, learned) into tables and a plot."

LEARNED_CHOICES = ("lpips", "fid", "musiq", "maniqa", "clipiqa")


def add_arguments(parser) -> None:
    parser.add_argument(
        "methods", nargs="+", metavar="RESTORED_DIR", help="one folder of restored faces per method or setting"
    )
    parser.add_argument("--gt", metavar="GT_DIR", help="ground-truth faces with the same file names (synthetic sets)")
    parser.add_argument(
        "-o", "--out", required=True, metavar="OUT", help="folder for results.md, results.csv, per_image.csv, the plot"
    )
    parser.add_argument(
        "--learned",
        default="lpips,fid,musiq",
        help=f"comma-separated learned metrics to try through pyiqa ({', '.join(LEARNED_CHOICES)}); 'none' for none. "
        "Missing pyiqa or weights: skipped with a note (default: %(default)s)",
    )
    parser.add_argument(
        "--no-identity", action="store_true", help="skip the dlib identity, Deg and LMD metrics (faster)"
    )
    parser.add_argument("--no-niqe", action="store_true", help="skip NIQE")
    parser.add_argument(
        "--plot-metric", help="metric to plot per method (default: psnr_y with --gt, else niqe; 'none' for no plot)"
    )
    parser.add_argument(
        "--x-label",
        default="setting",
        help="what the number ending each folder name means, e.g. fidelity or steps (folders fidelity_0.5, ...)",
    )
    parser.add_argument("--title", default="Evaluation", help="title of the Markdown table")
    parser.add_argument("--device", default="cpu", help="torch device for learned metrics (default cpu)")


def run(args) -> int:
    from ..errors import AuthFaceError
    from ..metrics.evaluate import EvaluationConfig, evaluate_folders
    from ..metrics.report import save_report

    names = [name.strip() for name in args.learned.split(",") if name.strip()]
    learned = () if names == ["none"] else tuple(names)
    try:
        config = EvaluationConfig(
            gt_dir=Path(args.gt) if args.gt else None,
            identity=not args.no_identity,
            niqe=not args.no_niqe,
            learned=learned,
            device=args.device,
        )
        plot_metric = args.plot_metric or ("psnr_y" if config.gt_dir is not None else "niqe")
        if plot_metric.lower() == "none":
            plot_metric = None
        elif plot_metric not in config.metric_keys:
            raise ValueError(
                f"--plot-metric {plot_metric!r} is not measured here; choose from {list(config.metric_keys)}"
            )
        report = evaluate_folders(args.methods, config)
        files = save_report(report, args.out, plot_metric=plot_metric, x_label=args.x_label, title=args.title)
    except (AuthFaceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(files.markdown.read_text())
    written = [files.markdown, files.csv, files.per_image_csv] + ([files.plot] if files.plot else [])
    print("wrote " + ", ".join(str(p) for p in written))
    return 1 if any(method.failures for method in report.methods) else 0
