"""Stage I on CPU: LoRA fine-tuning of the tiny UNet on captioned faces, resume, and the exported layout."""

from __future__ import annotations

import pytest
import torch

from authface_core.training.checkpoints import list_checkpoints, read_metrics
from authface_core.training.train_unet import LORA_SUBFOLDER, main, parse_args

from .conftest import bf16_would_change, forward_batches, saved_tensors

LORA = {"train_mode": "lora", "lora_rank": 4, "max_train_steps": 4, "random_crop": True, "random_flip": True}


def test_stage1_lora_trains_resumes_and_exports_a_loadable_checkpoint(training_argv, tmp_path):
    from diffusers import UNet2DConditionModel

    from authface_core.pipeline.loading import load_pipeline
    from authface_core.pipeline.tiny import ensure_tiny_checkpoint

    # Batches of 1 face: checkpoint-2 falls mid-epoch, so the resume must also restore the shuffled order.
    first = tmp_path / "lora"
    main(parse_args(training_argv(first, **LORA, checkpointing_steps=2, train_batch_size=1)))
    rows = read_metrics(first)
    assert [row["step"] for row in rows] == [1, 2, 3, 4]
    assert [p.name for p in list_checkpoints(first)] == ["checkpoint-2", "checkpoint-4"]
    assert (first / "checkpoint-2" / LORA_SUBFOLDER / "pytorch_lora_weights.safetensors").is_file()
    assert (first / LORA_SUBFOLDER / "pytorch_lora_weights.safetensors").is_file()

    resumed = tmp_path / "resumed"
    main(parse_args(training_argv(resumed, **LORA, train_batch_size=1, resume_from_checkpoint=first / "checkpoint-2")))
    assert [row["step"] for row in read_metrics(resumed)] == [3, 4]
    for original, replayed in zip(rows[2:], read_metrics(resumed), strict=True):
        assert replayed["loss"] == pytest.approx(original["loss"], rel=1e-6)

    # The LoRA is merged into unet/: same architecture as the base, only attention projections changed.
    base_state = UNet2DConditionModel.from_pretrained(ensure_tiny_checkpoint(), subfolder="unet").state_dict()
    tuned_state = UNet2DConditionModel.from_pretrained(first, subfolder="unet").state_dict()
    assert base_state.keys() == tuned_state.keys()
    changed = [name for name in base_state if not torch.equal(base_state[name], tuned_state[name])]
    assert changed and all(any(t in name for t in ("to_q", "to_k", "to_v", "to_out")) for name in changed)
    assert load_pipeline(str(first), device="cpu").is_smoke_test_model


def test_stage1_full_with_ema_alignment_and_validation(training_argv, tmp_path):
    from diffusers import UNet2DConditionModel

    out = tmp_path / "full"
    settings = {"max_train_steps": 2, "checkpointing_steps": 1, "use_ema": True, "align_faces": True}
    validation = {"validation_prompts": ["a portrait"], "validation_steps": 2, "validation_inference_steps": 1}
    main(parse_args(training_argv(out, **settings, **validation)))
    assert (out / "checkpoint-1" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (out / "checkpoint-1" / "unet_ema" / "diffusion_pytorch_model.safetensors").is_file()
    assert (out / "validation" / "step-2" / "00.png").is_file()
    # The export carries the EMA weights, which lag the last trained weights.
    exported = UNet2DConditionModel.from_pretrained(out, subfolder="unet").state_dict()
    trained = UNet2DConditionModel.from_pretrained(out / "checkpoint-2", subfolder="unet").state_dict()
    ema = UNet2DConditionModel.from_pretrained(out / "checkpoint-2", subfolder="unet_ema").state_dict()
    assert all(torch.equal(exported[name], ema[name]) for name in exported)
    assert any(not torch.equal(exported[name], trained[name]) for name in exported)

    resumed = tmp_path / "resumed"
    main(parse_args(training_argv(resumed, **settings, resume_from_checkpoint=out / "checkpoint-1")))
    assert read_metrics(resumed)[0]["loss"] == pytest.approx(read_metrics(out)[1]["loss"], rel=1e-6)


def test_stage1_lora_in_bf16_exports_frozen_parts_as_loaded_and_merges_into_the_fp32_base(training_argv, tmp_path):
    from authface_core.pipeline.tiny import ensure_tiny_checkpoint

    out = tmp_path / "lora-bf16"
    main(parse_args(training_argv(out, train_mode="lora", lora_rank=4, max_train_steps=2, mixed_precision="bf16")))
    source = ensure_tiny_checkpoint()
    for component in ("text_encoder", "text_encoder_2", "vae"):
        exported, original = saved_tensors(out, component), saved_tensors(source, component)
        assert all(torch.equal(exported[name], original[name]) for name in original), component
    # The UNet: every tensor LoRA does not touch is the base's, bit for bit (the base trained frozen in bf16) ...
    exported, original = saved_tensors(out, "unet"), saved_tensors(source, "unet")
    targets = ("to_q", "to_k", "to_v", "to_out")
    untouched = [name for name in original if not any(t in name for t in targets)]
    assert untouched and all(torch.equal(exported[name], original[name]) for name in untouched)
    assert bf16_would_change({name: original[name] for name in untouched})
    # ... and the merged projections are the fp32 base plus a small update, not a bf16 rounding of it.
    merged = [name for name in original if name not in untouched and name.endswith("weight")]
    assert all(exported[name].dtype == torch.float32 for name in merged)
    assert any(not torch.equal(exported[name], original[name]) for name in merged)


def test_stage1_with_cached_latents_and_text_embeddings_trains_as_without(training_argv, tmp_path):
    """Fixed crops (the caches' condition) and half the captions dropped, so both cached and empty embeddings run."""
    settings = {"train_mode": "lora", "lora_rank": 4, "max_train_steps": 2, "proportion_empty_prompts": 0.5}
    rows, batches = {}, {}
    for cached in (False, True):
        out = tmp_path / f"cached-{cached}"
        with forward_batches("Encoder") as images, forward_batches("CLIPTextModel") as texts:
            main(parse_args(training_argv(out, **settings, cache_latents=cached, cache_text_embeddings=cached)))
        rows[cached], batches[cached] = read_metrics(out), {size for size, _, _ in images + texts}
    assert 2 in batches[False] and 2 not in batches[True]  # with the caches nothing is encoded per batch of 2
    for plain, cached in zip(rows[False], rows[True], strict=True):
        assert cached["loss"] == pytest.approx(plain["loss"], rel=1e-4)
