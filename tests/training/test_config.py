"""Config files and the ``train`` subcommand: example configs parse, overrides apply, errors name the file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from authface_core.training.config import apply_overrides, config_to_argv, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("stage*.yaml")), ids=lambda p: p.name)
def test_example_configs_are_valid_for_their_stage(path):
    from authface_core.training import train_controlnet, train_unet

    script = train_unet if path.name.startswith("stage1") else train_controlnet
    args = script.parse_args(config_to_argv(load_config(path)))
    assert args.mixed_precision == "bf16" and args.resume_from_checkpoint == "latest"
    assert args.checkpoints_total_limit and args.gradient_checkpointing


@pytest.mark.parametrize("path", sorted((CONFIGS / "accelerate").glob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_configs_load_with_accelerate(path):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.mixed_precision == "bf16" and config.num_processes >= 1


def test_config_to_argv_switches_lists_and_nulls():
    argv = config_to_argv(
        {
            "resolution": 512,
            "random_flip": True,
            "streaming": False,
            "revision": None,
            "validation_prompts": ["a face", "two faces"],
            "learning_rate": 1e-5,
        }
    )
    assert argv == [
        "--resolution",
        "512",
        "--random_flip",
        "--validation_prompts",
        "a face",
        "two faces",
        "--learning_rate",
        "1e-05",
    ]
    with pytest.raises(ValueError, match="'optimizer' is a mapping"):
        config_to_argv({"optimizer": {"lr": 1}})


def test_overrides_are_read_as_yaml():
    settings = apply_overrides(
        {"max_train_steps": 100, "random_flip": True}, ["max_train_steps=5", "random_flip=false", "--seed=3"]
    )
    assert settings == {"max_train_steps": 5, "random_flip": False, "seed": 3}
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides({}, ["max_train_steps"])


def test_load_config_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.yaml: config file not found"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("resolution: [512\n")
    with pytest.raises(ValueError, match="broken.yaml: not valid YAML"):
        load_config(broken)
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="list.json: expected a mapping"):
        load_config(listed)


def _train_parser() -> argparse.ArgumentParser:
    from authface_core.cli import train

    parser = argparse.ArgumentParser(prog="python -m authface_core train")
    train.add_arguments(parser)
    return parser


def test_train_command_runs_stage2_from_a_config(face_folder, datasets_cache, shared_faces, tmp_path, capsys):
    from authface_core.cli import train
    from authface_core.io import load_rgb
    from authface_core.pipeline.loading import load_pipeline

    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"pretrained_model_name_or_path: tiny\ntrain_data: {face_folder}\ncache_dir: {datasets_cache}\n"
        f"output_dir: {tmp_path / 'out'}\nresolution: 64\ntrain_batch_size: 2\nmax_train_steps: 50\nreport_to: none\n"
    )
    lq_face = sorted((shared_faces / "lq_aligned").glob("*.png"))[0]
    overrides = ["max_train_steps=1", "time_weight_schedule=constant", f"validation_images=[{lq_face}]"]
    overrides += ["validation_steps=1", "validation_inference_steps=1"]
    args = _train_parser().parse_args(["stage2", "--config", str(config), "--set", *overrides])
    assert train.run(args) == 0
    assert "stage2 finished" in capsys.readouterr().out
    out = tmp_path / "out"
    assert (out / "checkpoint-1").is_dir() and load_pipeline(str(out), device="cpu").is_smoke_test_model
    side_by_side = load_rgb(out / "validation" / "step-1" / "00.png")
    assert side_by_side.shape == (64, 128, 3)  # the degraded input beside its restoration


def test_train_command_reports_bad_configs_without_a_traceback(tmp_path, capsys):
    from authface_core.cli import train

    assert train.run(_train_parser().parse_args(["stage1", "--config", str(tmp_path / "none.yaml")])) == 2
    assert "none.yaml: config file not found" in capsys.readouterr().err
    config = tmp_path / "bad.yaml"
    config.write_text("pretrained_model_name_or_path: tiny\ntrain_data: faces\nresolution: 100\n")
    assert train.run(_train_parser().parse_args(["stage2", "--config", str(config)])) == 2
    assert "--resolution must be a multiple of 8" in capsys.readouterr().err
