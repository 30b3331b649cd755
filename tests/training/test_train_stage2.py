"""Stage II end to end on CPU: the tiny model trains on real aligned faces, checkpoints, resumes, restores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from authface_core.training.checkpoints import list_checkpoints, read_metrics, resolve_resume_checkpoint
from authface_core.training.settings import DiffusionLossSettings, FacialLossSettings, ModelSettings
from authface_core.training.train_controlnet import main, parse_args

from .conftest import bf16_would_change, forward_batches, saved_tensors

RESOLUTION = 64
TINY = ModelSettings(pretrained_model_name_or_path="tiny")


def _fixed_evaluation_loss(controlnet, face_folder, datasets_cache) -> float:
    """Mean diffusion loss of the 4 faces under 4 fixed noise draws: the same batch, noise and
    timesteps for any ControlNet."""
    from authface_core.degradations import PRESETS
    from authface_core.pipeline.pipeline_authface_sdxl import encode_sdxl_prompts
    from authface_core.training.data import collate_examples, load_face_dataset, prepare_faces, stage2_example
    from authface_core.training.run import load_base_components
    from authface_core.training.train_controlnet import Stage2Models, stage2_losses

    base = load_base_components(TINY)
    faces = prepare_faces(
        load_face_dataset(str(face_folder), cache_dir=str(datasets_cache)), "image", align=False, face_size=512
    )
    batch = collate_examples(
        [
            stage2_example(
                faces[i],
                np.random.default_rng(i),
                resolution=RESOLUTION,
                degradation=PRESETS["gfpgan"],
                random_flip=False,
            )
            for i in range(len(faces))
        ]
    )
    prompt_embeds, pooled = encode_sdxl_prompts(
        [""], (base.tokenizer, base.tokenizer_2), (base.text_encoder, base.text_encoder_2), "cpu"
    )
    models = Stage2Models(base.vae, base.unet, controlnet, base.scheduler, prompt_embeds, pooled)
    with torch.no_grad():
        losses = [
            stage2_losses(
                models,
                batch,
                discriminators=None,
                facial=FacialLossSettings(facial_loss_weight=0.0),
                diffusion=DiffusionLossSettings(),
                weight_dtype=torch.float32,
                generator=torch.Generator().manual_seed(seed),
            ).diffusion.item()
            for seed in range(4)
        ]
    return float(np.mean(losses))


def test_stage2_trains_checkpoints_resumes_and_the_pipeline_restores(
    training_argv, face_folder, datasets_cache, tmp_path, shared_faces
):
    from diffusers import ControlNetModel

    from authface_core.pipeline.loading import load_pipeline
    from authface_core.restore import RestoreConfig, restore_image
    from authface_core.training.run import load_base_components
    from authface_core.training.train_controlnet import new_controlnet

    # 1. 30 uninterrupted steps (15 epochs of 4 faces), checkpoints every 12.
    first = tmp_path / "uninterrupted"
    main(parse_args(training_argv(first, max_train_steps=30, checkpointing_steps=12)))
    rows = read_metrics(first)
    assert [row["step"] for row in rows] == list(range(1, 31))
    assert all(
        np.isfinite([row["diffusion_loss"], row["facial_loss"], row["discriminator_loss"]]).all() for row in rows
    )
    assert [p.name for p in list_checkpoints(first)] == ["checkpoint-12", "checkpoint-24", "checkpoint-30"]
    for part in ("controlnet", "discriminators"):
        assert (first / "checkpoint-24" / part / "diffusion_pytorch_model.safetensors").is_file()

    # 2. The loss falls: the trained ControlNet beats its starting point on a fixed batch.
    initial = new_controlnet(load_base_components(TINY).unet, (16, 32, 96, 256))
    trained = ControlNetModel.from_pretrained(first / "controlnet")
    before = _fixed_evaluation_loss(initial, face_folder, datasets_cache)
    after = _fixed_evaluation_loss(trained, face_folder, datasets_cache)
    assert after < 0.97 * before, (before, after)

    # 3. Resuming from checkpoint-24 replays steps 25-30 exactly (same weights, optimiser states, batch
    # order and noise); old checkpoints are rotated away.
    resumed = tmp_path / "resumed"
    main(
        parse_args(
            training_argv(
                resumed,
                max_train_steps=30,
                checkpointing_steps=2,
                checkpoints_total_limit=2,
                resume_from_checkpoint=first / "checkpoint-24",
            )
        )
    )
    resumed_rows = read_metrics(resumed)
    assert [row["step"] for row in resumed_rows] == list(range(25, 31))
    for original, replayed in zip(rows[24:], resumed_rows, strict=True):
        assert replayed["loss"] == pytest.approx(original["loss"], rel=1e-6)
        assert replayed["discriminator_loss"] == pytest.approx(original["discriminator_loss"], rel=1e-6)
    assert [p.name for p in list_checkpoints(resumed)] == ["checkpoint-28", "checkpoint-30"]
    assert resolve_resume_checkpoint(resumed, "latest") == resumed / "checkpoint-30"

    # 4. The pipeline loads the result (trained ControlNet inside) and restores an aligned face.
    pipe = load_pipeline(str(resumed), device="cpu")
    assert pipe.is_smoke_test_model and pipe.controlnet.config.get("use_pre_img_encoder") is False
    for loaded, saved in zip(
        pipe.controlnet.parameters(), ControlNetModel.from_pretrained(resumed / "controlnet").parameters(), strict=True
    ):
        assert torch.equal(loaded, saved)
    lq = sorted((shared_faces / "lq_aligned").glob("*.png"))[0]
    from authface_core.io import load_rgb

    result = restore_image(
        load_rgb(lq),
        pipe,
        RestoreConfig(aligned=True, face_size=RESOLUTION, num_inference_steps=2, check_identity=False),
    )
    assert len(result.faces) == 1 and result.faces[0].restored_face.shape == (RESOLUTION, RESOLUTION, 3)
    assert result.smoke_test_model


def test_resume_latest_without_checkpoints_starts_fresh_and_bad_paths_fail(tmp_path):
    from authface_core.errors import CheckpointNotFoundError

    assert resolve_resume_checkpoint(tmp_path, "latest") is None
    (tmp_path / "checkpoint-5").mkdir()
    (tmp_path / "checkpoint-40").mkdir()
    (tmp_path / "checkpoint-old").mkdir()
    assert resolve_resume_checkpoint(tmp_path, "latest") == tmp_path / "checkpoint-40"
    assert resolve_resume_checkpoint(tmp_path, "checkpoint-5") == tmp_path / "checkpoint-5"
    with pytest.raises(CheckpointNotFoundError, match="checkpoint-7"):
        resolve_resume_checkpoint(tmp_path, "checkpoint-7")


def test_stage2_in_bf16_exports_frozen_parts_bit_identical_keeps_ema_and_validates_in_fp32(
    training_argv, shared_faces, tmp_path
):
    from diffusers import ControlNetModel

    from authface_core.pipeline.tiny import ensure_tiny_checkpoint

    out = tmp_path / "bf16"
    lq_face = sorted((shared_faces / "lq_aligned").glob("*.png"))[0]
    settings = {"mixed_precision": "bf16", "max_train_steps": 2, "checkpointing_steps": 1, "use_ema": True}
    validation = {"validation_images": [lq_face], "validation_steps": 2, "validation_inference_steps": 1}
    with forward_batches("Decoder") as decodes:
        main(parse_args(training_argv(out, **settings, **validation)))

    # Frozen parts leave bit for bit as loaded, though training ran the UNet and text encoders in bf16.
    source = ensure_tiny_checkpoint()
    for component in ("unet", "text_encoder", "text_encoder_2", "vae"):
        exported, original = saved_tensors(out, component), saved_tensors(source, component)
        assert exported.keys() == original.keys()
        differing = [name for name in original if not torch.equal(exported[name], original[name])]
        assert not differing, f"{component}: {len(differing)} tensors changed, e.g. {differing[:3]}"
    assert bf16_would_change(saved_tensors(source, "unet"))  # a bf16 round trip would have been caught

    # The exported ControlNet is the moving average, which lags the trained weights.
    exported = ControlNetModel.from_pretrained(out / "controlnet").state_dict()
    trained = ControlNetModel.from_pretrained(out / "checkpoint-2" / "controlnet").state_dict()
    averaged = ControlNetModel.from_pretrained(out / "checkpoint-2" / "controlnet_ema").state_dict()
    assert all(torch.equal(exported[name], averaged[name]) for name in exported)
    assert any(not torch.equal(exported[name], trained[name]) for name in exported)

    # Validation decoded in float32 with autocast off, and logged its scores with step 2.
    assert decodes and all(dtype == torch.float32 and not autocast for _, dtype, autocast in decodes)
    rows = read_metrics(out)
    assert [row["step"] for row in rows] == [1, 2]
    assert {"validation_identity_found", "validation_niqe_scored"} <= set(rows[1]) and all(
        np.isfinite(list(row.values())).all() for row in rows
    )


def test_stage2_discriminator_warmup_then_facial_loss_with_r1(training_argv, tmp_path):
    out = tmp_path / "warmup"
    settings = {"max_train_steps": 3, "discriminator_warmup_steps": 2, "r1_gamma": 1.0}
    main(parse_args(training_argv(out, **settings)))
    rows = read_metrics(out)
    for row in rows[:2]:  # warm-up: the discriminators train, the ControlNet sees the diffusion loss only
        assert "facial_loss" not in row and row["loss"] == row["diffusion_loss"] and row["discriminator_loss"] > 0
    assert rows[2]["facial_loss"] > 0 and rows[2]["loss"] > rows[2]["diffusion_loss"]
    assert all(row["r1_penalty"] > 0 for row in rows)


def test_stage2_with_cached_latents_trains_as_with_encoding_and_never_encodes_per_step(training_argv, tmp_path):
    runs = {}
    for cached in (False, True):
        out = tmp_path / f"cached-{cached}"
        with forward_batches("Encoder") as encodes:
            main(parse_args(training_argv(out, max_train_steps=2, cache_latents=cached, facial_loss_weight=0)))
        runs[cached] = (read_metrics(out), [batch for batch, _, _ in encodes])
    (plain, plain_encodes), (cached, cached_encodes) = runs[False], runs[True]
    assert plain_encodes == [2, 2]  # one encoding per training batch of 2
    assert cached_encodes in ([], [4])  # the 4 faces encoded once (or read back from the datasets cache)
    for a, b in zip(plain, cached, strict=True):
        assert b["diffusion_loss"] == pytest.approx(a["diffusion_loss"], rel=1e-4)
