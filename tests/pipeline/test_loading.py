"""The released checkpoint layout loads (tiny model), with the release's classes, dtypes and guards."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from authface_core.errors import CheckpointNotFoundError, UnsupportedCheckpointError
from authface_core.pipeline.loading import COMPONENT_FOLDERS, load_pipeline


def test_tiny_checkpoint_has_the_released_layout(tiny_checkpoint):
    for name in COMPONENT_FOLDERS:
        assert (tiny_checkpoint / name).is_dir(), name
    controlnet_config = json.loads((tiny_checkpoint / "controlnet" / "config.json").read_text())
    assert controlnet_config["use_pre_img_encoder"] is False
    weights = sorted(
        p.suffix for p in tiny_checkpoint.rglob("*") if p.suffix in (".safetensors", ".bin", ".pt", ".ckpt")
    )
    assert weights and set(weights) == {".safetensors"}


def test_loaded_pipeline_is_marked_smoke_test_and_uses_release_classes(tiny_pipe):
    assert tiny_pipe.is_smoke_test_model
    assert isinstance(tiny_pipe.scheduler, DDPMScheduler)
    assert tiny_pipe.controlnet.config["use_pre_img_encoder"] is False  # kept in .config, ignored by the class
    assert tiny_pipe.controlnet.controlnet_cond_embedding.conv_in.in_channels == 3
    for encoder in (tiny_pipe.text_encoder, tiny_pipe.text_encoder_2):
        assert encoder.config._attn_implementation == "eager"


def test_fp16_keeps_the_vae_in_fp32(tiny_checkpoint):
    pipe = load_pipeline(str(tiny_checkpoint), device="cpu", dtype="fp16")
    assert pipe.unet.dtype == pipe.controlnet.dtype == pipe.text_encoder_2.dtype == torch.float16
    assert pipe.vae.dtype == torch.float32


def test_scheduler_folder_loads_as_ddpm_whatever_its_class_name(tiny_checkpoint, tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    config_path = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config.update(_class_name="EulerDiscreteScheduler", timestep_spacing="trailing", steps_offset=0)
    config_path.write_text(json.dumps(config))
    pipe = load_pipeline(str(folder), device="cpu")
    assert type(pipe.scheduler) is DDPMScheduler
    assert pipe.scheduler.config.timestep_spacing == "trailing" and pipe.scheduler.config.steps_offset == 0


def test_latent_controlnet_variant_is_refused_with_a_clear_message(tiny_checkpoint, tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    config_path = folder / "controlnet" / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "use_pre_img_encoder": True}))
    with pytest.raises(UnsupportedCheckpointError, match="use_pre_img_encoder: true"):
        load_pipeline(str(folder), device="cpu")


def test_pickle_only_checkpoint_is_not_loaded(tiny_checkpoint, tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(CheckpointNotFoundError, match="unet"):
        load_pipeline(str(folder), device="cpu")


def test_missing_component_folder_is_named(tmp_path):
    (tmp_path / "unet").mkdir()
    with pytest.raises(CheckpointNotFoundError, match="missing folder.*controlnet"):
        load_pipeline(str(tmp_path), device="cpu")


def test_offline_hub_id_fails_fast_saying_what_was_tried(monkeypatch, tmp_path):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(CheckpointNotFoundError) as error:
        load_pipeline("someone/not-cached-model", device="cpu")
    assert time.monotonic() - start < 5
    message = str(error.value)
    assert "someone/not-cached-model" in message and "HF_HUB_OFFLINE" in message and "--model" in message


def test_model_defaults_to_environment_variable(monkeypatch, tiny_checkpoint):
    monkeypatch.setenv("AUTHFACE_MODEL", str(tiny_checkpoint))
    assert load_pipeline(device="cpu").is_smoke_test_model


def test_low_memory_enables_slicing_and_tiling(tiny_checkpoint, small_face):
    pipe = load_pipeline(str(tiny_checkpoint), device="cpu", low_memory=True)
    assert pipe.vae.use_slicing and pipe.vae.use_tiling
    images = pipe(small_face[None], num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images
    assert images.shape == (1, 64, 64, 3) and images.dtype == np.uint8
