"""Stage II end to end on CPU: the tiny model trains on real aligned faces, checkpoints, resumes, restores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from authface_core.training.checkpoints import list_checkpoints, read_metrics, resolve_resume_checkpoint
from authface_core.training.settings import DiffusionLossSettings, FacialLossSettings, ModelSettings
from authface_core.training.train_controlnet import main, parse_args

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
