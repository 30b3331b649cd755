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


def test_pickle_weights_load_only_when_allowed_and_with_a_warning(tiny_checkpoint, tmp_path, caplog):
    from safetensors.torch import load_file

    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    torch.save(state, weights.with_suffix(".bin"))
    weights.unlink()
    with pytest.raises(CheckpointNotFoundError, match="unet"):
        load_pipeline(str(folder), device="cpu")
    with caplog.at_level("WARNING", logger="authface_core.pipeline.loading"):
        pipe = load_pipeline(str(folder), device="cpu", allow_pickle=True)
    warnings = [r.getMessage() for r in caplog.records if "pickle" in r.getMessage()]
    assert len(warnings) == 1 and str(folder / "unet") in warnings[0]
    assert all(torch.equal(pipe.unet.state_dict()[name], tensor) for name, tensor in state.items())


def _attention_processors(pipe) -> set[str]:
    return {type(p).__name__ for model in (pipe.unet, pipe.controlnet) for p in model.attn_processors.values()}


def test_memory_presets_keep_sdpa_and_slice_the_vae(tiny_checkpoint, small_face):
    full = load_pipeline(str(tiny_checkpoint), device="cpu")
    assert not full.vae.use_slicing and _attention_processors(full) == {"AttnProcessor2_0"}
    low = load_pipeline(str(tiny_checkpoint), device="cpu", memory="12gb")
    assert low.vae.use_slicing and low.vae.use_tiling and _attention_processors(low) == {"AttnProcessor2_0"}
    faces = np.stack([small_face, small_face[:, ::-1]])
    same = [
        pipe(faces, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images for pipe in (full, low)
    ]
    difference = np.abs(same[0].astype(int) - same[1].astype(int))  # slicing decodes one face at a time
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01  # the same, up to float rounding
    sliced = load_pipeline(str(tiny_checkpoint), device="cpu", attention_slicing=True)
    assert _attention_processors(sliced) == {"SlicedAttnProcessor"}  # only when asked
    with pytest.raises(ValueError, match="memory must be one of full, 12gb, 8gb"):
        load_pipeline(str(tiny_checkpoint), device="cpu", memory="4gb")


@pytest.mark.parametrize("memory, expected", [("full", "to"), ("12gb", "model"), ("8gb", "sequential")])
def test_memory_presets_offload_on_cuda(tiny_pipe, monkeypatch, memory, expected):
    """Which placement each preset asks diffusers for on a CUDA device (recorded, so no GPU is needed)."""
    from authface_core.pipeline.loading import apply_memory_preset

    calls = []
    monkeypatch.setattr(tiny_pipe, "to", lambda device: calls.append(("to", device.type)))
    monkeypatch.setattr(tiny_pipe, "enable_model_cpu_offload", lambda device: calls.append(("model", device.type)))
    monkeypatch.setattr(
        tiny_pipe, "enable_sequential_cpu_offload", lambda device: calls.append(("sequential", device.type))
    )
    monkeypatch.setattr(tiny_pipe.vae, "use_slicing", False)
    apply_memory_preset(tiny_pipe, torch.device("cuda"), memory)
    assert calls == [(expected, "cuda")] and tiny_pipe.vae.use_slicing == (memory != "full")
