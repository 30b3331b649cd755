"""Training settings: the example configs parse, flags win over a config, every rule names the setting, the
README lists every key, and the ``train`` subcommand runs from a config and reports bad ones plainly."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest

from authface_core.settings import settings_markdown
from authface_core.training.settings import (
    DiffusionLossSettings,
    Stage1Settings,
    Stage2Settings,
    parse_stage_settings,
    setting_groups,
)

from .conftest import settings_flags

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
REQUIRED = {"pretrained_model_name_or_path": "tiny", "train_data": "./faces", "output_dir": "./out"}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("stage*.yaml")), ids=lambda p: p.name)
def test_example_configs_are_valid_for_their_stage(path):
    stage = Stage1Settings if path.name.startswith("stage1") else Stage2Settings
    settings = parse_stage_settings(stage, ["--config", str(path)])
    assert settings.optimization.mixed_precision == "bf16" and settings.checkpoints.resume_from_checkpoint == "latest"
    assert settings.checkpoints.checkpoints_total_limit and settings.optimization.gradient_checkpointing
    # Local folders are written ./path, so they are never taken for a Hub id.
    for path_setting in (settings.data.train_data, settings.checkpoints.output_dir):
        assert path_setting.startswith("./") or path_setting.count("/") == 1


@pytest.mark.parametrize("path", sorted((CONFIGS / "accelerate").glob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_configs_load_with_accelerate(path):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.mixed_precision == "bf16" and config.num_processes >= 1


def test_flags_after_a_config_win_and_lists_come_from_yaml(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        "pretrained_model_name_or_path: tiny\ntrain_data: ./faces\noutput_dir: ./out\nmax_train_steps: 100\n"
        "random_flip: true\nvalidation_images: [a.png, b.png]\nconditioning_embedding_out_channels: [8, 16]\n"
    )
    settings = parse_stage_settings(Stage2Settings, ["--config", str(config), "--max_train_steps", "5"])
    assert settings.optimization.max_train_steps == 5 and settings.data.random_flip
    assert settings.validation.validation_images == ["a.png", "b.png"]
    assert settings.controlnet.conditioning_embedding_out_channels == [8, 16]
    flags = settings_flags({**REQUIRED, "random_flip": False, "snr_gamma": 5, "validation_images": ["c.png"]})
    settings = parse_stage_settings(Stage2Settings, ["--config", str(config), *flags])
    assert not settings.data.random_flip and settings.diffusion.snr_gamma == 5.0
    assert settings.validation.validation_images == ["c.png"]


def test_new_options_are_off_by_default():
    settings = parse_stage_settings(Stage2Settings, settings_flags(REQUIRED))
    assert settings.diffusion == DiffusionLossSettings(snr_gamma=None, noise_offset=0.0)
    assert not settings.data.cache_latents and not settings.optimization.use_ema
    assert settings.facial.discriminator_warmup_steps == 0 and settings.facial.r1_gamma == 0.0
    assert not parse_stage_settings(Stage1Settings, settings_flags(REQUIRED)).unet.cache_text_embeddings


@pytest.mark.parametrize(
    "stage, changes, message",
    [
        (Stage2Settings, {"resolution": 60}, "resolution must be a multiple of 8"),
        (Stage2Settings, {"resolution": 8}, r"resolution must be an integer in \[16, 4096\]"),
        (Stage2Settings, {"facial_loss_weight": -1}, "facial_loss_weight must be a number at least 0"),
        (Stage2Settings, {"time_weight_s": 0}, "time_weight_s must be a number in"),
        (Stage2Settings, {"conditioning_embedding_out_channels": [16, 0]}, "conditioning_embedding_out_channels"),
        (Stage2Settings, {"streaming": True}, "streaming needs max_train_steps"),
        (Stage2Settings, {"checkpoints_total_limit": 0}, "checkpoints_total_limit must be"),
        (Stage2Settings, {"snr_gamma": 0}, "snr_gamma must be above 0"),
        (Stage2Settings, {"cache_latents": True, "random_flip": True}, "random_flip must be off"),
        (Stage2Settings, {"cache_latents": True, "streaming": True, "max_train_steps": 2}, "turn streaming off"),
        (Stage1Settings, {"train_mode": "lora", "use_ema": True}, "use_ema works with train_mode full only"),
        (Stage1Settings, {"proportion_empty_prompts": 1.5}, "proportion_empty_prompts must be a number in"),
        (Stage1Settings, {"cache_latents": True, "random_crop": True}, "random_crop must be off"),
    ],
)
def test_bad_settings_are_refused_naming_them(stage, changes, message):
    with pytest.raises(ValueError, match=message):
        parse_stage_settings(stage, settings_flags({**REQUIRED, **changes}))


def test_config_errors_name_the_file_and_the_key(tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text("pretrained_model_name_or_path: tiny\nlearning_rat: 1.0e-5\n")
    with pytest.raises(ValueError, match=r"typo.yaml: unknown setting\(s\) learning_rat"):
        parse_stage_settings(Stage2Settings, ["--config", str(config)])
    with pytest.raises(FileNotFoundError, match="missing.yaml: settings file not found"):
        parse_stage_settings(Stage2Settings, ["--config", str(tmp_path / "missing.yaml")])
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="list.json: expected a mapping"):
        parse_stage_settings(Stage2Settings, ["--config", str(listed)])


@pytest.mark.parametrize("stage", [Stage1Settings, Stage2Settings], ids=["stage1", "stage2"])
def test_configs_readme_lists_every_setting_as_the_fields_describe_it(stage):
    """configs/README.md holds each group's table as ``settings_markdown`` makes it from the field docs
    (regenerate with ``python -m authface_core.training.settings``)."""
    readme = (CONFIGS / "README.md").read_text()
    for group in setting_groups(stage):
        assert settings_markdown(group) in readme, f"configs/README.md lacks the current table of {group.__name__}"


def test_help_lists_every_setting_and_creates_nothing(tmp_path, monkeypatch, capsys):
    from authface_core.cli import main

    monkeypatch.chdir(tmp_path)
    for stage, group in (("stage1", "stage I:"), ("stage2", "facial loss:")):
        with pytest.raises(SystemExit) as exit_info:
            main(["train", stage, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        stage_class = Stage1Settings if stage == "stage1" else Stage2Settings
        names = [field.name for cls in setting_groups(stage_class) for field in dataclasses.fields(cls)]
        assert all(f"--{name}" in text for name in names) and group in text
    assert not any(tmp_path.iterdir())


def _train_parser() -> argparse.ArgumentParser:
    from authface_core.cli import train

    parser = argparse.ArgumentParser(prog="python -m authface_core train")
    train.add_arguments(parser)
    return parser


def test_train_command_runs_stage2_from_a_config(face_folder, datasets_cache, shared_faces, tmp_path, capsys):
    from authface_core.cli import train
    from authface_core.io import load_rgb
    from authface_core.pipeline.loading import load_pipeline
    from authface_core.training.checkpoints import read_metrics

    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"pretrained_model_name_or_path: tiny\ntrain_data: {face_folder}\ncache_dir: {datasets_cache}\n"
        f"output_dir: {tmp_path / 'out'}\nresolution: 64\ntrain_batch_size: 2\nmax_train_steps: 50\nreport_to: none\n"
    )
    lq_face = sorted((shared_faces / "lq_aligned").glob("*.png"))[0]
    flags = ["--max_train_steps", "1", "--time_weight_schedule", "constant", "--validation_images", str(lq_face)]
    flags += ["--validation_steps", "1", "--validation_inference_steps", "1"]
    args = _train_parser().parse_args(["stage2", "--config", str(config), *flags])
    assert train.run(args) == 0
    assert "stage2 finished" in capsys.readouterr().out
    out = tmp_path / "out"
    assert (out / "checkpoint-1").is_dir() and load_pipeline(str(out), device="cpu").is_smoke_test_model
    side_by_side = load_rgb(out / "validation" / "step-1" / "00.png")
    assert side_by_side.shape == (64, 128, 3)  # the degraded input beside its restoration
    (row,) = read_metrics(out)
    # 64 px noise from the tiny model: dlib finds no face and NIQE (192 px and up) scores nothing; counted, not faked.
    assert row["validation_identity_found"] == 0 and row["validation_niqe_scored"] == 0


def test_train_command_reports_bad_configs_without_a_traceback(tmp_path, capsys):
    from authface_core.cli import train

    assert train.run(_train_parser().parse_args(["stage1", "--config", str(tmp_path / "none.yaml")])) == 2
    assert "none.yaml: settings file not found" in capsys.readouterr().err
    config = tmp_path / "bad.yaml"
    config.write_text("pretrained_model_name_or_path: tiny\ntrain_data: faces\noutput_dir: out\nresolution: 100\n")
    assert train.run(_train_parser().parse_args(["stage2", "--config", str(config)])) == 2
    assert "resolution must be a multiple of 8" in capsys.readouterr().err


def test_a_missing_stage1_result_is_named_with_what_to_do(tmp_path, monkeypatch, capsys):
    """The README's Stage II example on a fresh clone: no Stage I result yet. A relative path is never sent to the
    Hub as an id, and the message names the setting to fix (train has no --model flag)."""
    from authface_core.cli import train

    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    for missing in ("./outputs/authface-stage1", "outputs/authface-stage1"):
        flags = settings_flags({**REQUIRED, "pretrained_model_name_or_path": missing})
        assert train.run(_train_parser().parse_args(["stage2", *flags])) == 2
        message = capsys.readouterr().err
        assert str(tmp_path / "outputs" / "authface-stage1") in message and "pretrained_model_name_or_path" in message
        assert "train stage1" in message and "--model" not in message
