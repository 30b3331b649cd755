"""``python -m authface_core train stage1|stage2 --config FILE [--set KEY=VALUE ...]``."""

from __future__ import annotations

import argparse
import sys

HELP = "Train AuthFace: stage1 (face-oriented SDXL UNet fine-tuning) or stage2 (restoration ControlNet)."
STAGE_MODULES = {"stage1": "train_unet", "stage2": "train_controlnet"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "stage",
        choices=sorted(STAGE_MODULES),
        help="stage1: UNet on captioned photos; stage2: ControlNet on degraded faces.",
    )
    parser.add_argument(
        "--config", required=True, help="YAML or JSON file of the stage's flags (examples in configs/)."
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        nargs="+",
        action="extend",
        default=[],
        help="Override config settings, YAML values (e.g. --set max_train_steps=10 gradient_checkpointing=true).",
    )
    parser.epilog = (
        "Multi-GPU: accelerate launch --config_file configs/accelerate/8gpu_ddp.yaml "
        "-m authface_core train stage2 --config ... "
        "Every flag: python -m authface_core.training.train_controlnet --help (or train_unet)."
    )


def run(args: argparse.Namespace) -> int:
    import importlib

    from ..errors import AuthFaceError
    from ..training.config import apply_overrides, config_to_argv, load_config

    script = importlib.import_module(f"authface_core.training.{STAGE_MODULES[args.stage]}")
    try:
        settings = apply_overrides(load_config(args.config), args.overrides)
        training_args = script.parse_args(config_to_argv(settings))
        output_dir = script.main(training_args)
    except (AuthFaceError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.stage} finished: model in {output_dir}")
    return 0
