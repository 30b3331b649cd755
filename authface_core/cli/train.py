"""``python -m authface_core train stage1|stage2 [--config FILE] [--SETTING VALUE ...]``."""

from __future__ import annotations

import argparse
import sys

HELP = "Train AuthFace: stage1 (face-oriented SDXL UNet fine-tuning) or stage2 (restoration ControlNet)."
STAGE_MODULES = {"stage1": "train_unet", "stage2": "train_controlnet"}  # keys: training.settings.STAGES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "stage",
        choices=sorted(STAGE_MODULES),
        help="stage1: UNet on captioned photos; stage2: ControlNet on degraded faces (starts from stage1's result).",
    )
    parser.add_argument(
        "settings",
        nargs=argparse.REMAINDER,
        metavar="SETTINGS",
        help="--config FILE (YAML of settings, examples in configs/) and/or --SETTING VALUE flags, which win over "
        "the file; `train stage2 --help` lists every setting with its default and range.",
    )
    parser.epilog = (
        "Example: python -m authface_core train stage2 --config configs/stage2_1gpu.yaml --max_train_steps 1000. "
        "Multi-GPU: accelerate launch --config_file configs/accelerate/8gpu_ddp.yaml -m authface_core train stage2 "
        "--config ..."
    )


def run(args: argparse.Namespace) -> int:
    import importlib

    from ..errors import AuthFaceError
    from ..training.settings import STAGES, parse_stage_settings

    try:
        settings = parse_stage_settings(STAGES[args.stage], args.settings)  # --help answers here, before torch loads
        script = importlib.import_module(f"authface_core.training.{STAGE_MODULES[args.stage]}")
        output_dir = script.main(settings)
    except (AuthFaceError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.stage} finished: model in {output_dir}")
    return 0
