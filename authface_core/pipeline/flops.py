"""What a face costs the GPU: the denoiser's FLOPs counted by torch, and the released model's size.

``torch.utils.flop_counter`` counts one ControlNet + UNet pass; on the ``meta`` device the models are built
from their configs alone (no weights, no compute), so the released SDXL size is counted in seconds on any
machine. ``bench/gpu_speed.py`` divides measured time by these counts; the archive's dry run multiplies them
by the faces it found.
"""

from __future__ import annotations

# The released UNet's geometry: stabilityai/stable-diffusion-xl-base-1.0 unet/config.json.
SDXL_UNET_CONFIG = dict(
    sample_size=128,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20),
    cross_attention_dim=2048,
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
)
# The released ControlNet's conditioning embedding (AUTHFACE.md: 16-32-96-256).
CONTROLNET_EMBEDDING_CHANNELS = (16, 32, 96, 256)
# Dense fp16/bf16 tensor-core peak, TFLOP/s (H100 as quoted in issue 3).
PEAK_TFLOPS = {"H100": 790.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "RTX 4090": 165.0}
# The denoiser's cost does not depend on the timestep; the count uses this one.
FLOP_COUNT_TIMESTEP = 500
CLIP_TOKENS = 77  # CLIP's context length: the text conditioning's sequence length
TIME_IDS = 6  # SDXL's added time ids (H, W, top, left, H, W)


def denoiser_flops(unet, controlnet, *, batch: int, face_size: int, guidance: bool) -> int:
    """FLOPs of one denoiser pass (ControlNet + UNet) for ``batch`` faces of ``face_size`` px, both CFG
    branches if ``guidance``, on the models' device and dtype (``meta`` counts without computing)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    device, dtype = unet.device, unet.dtype
    config = unet.config
    rows = batch * (2 if guidance else 1)
    latent = face_size // 8
    pooled = config.projection_class_embeddings_input_dim - TIME_IDS * config.addition_time_embed_dim
    sample = torch.randn(rows, config.in_channels, latent, latent, device=device, dtype=dtype)
    text = torch.randn(rows, CLIP_TOKENS, config.cross_attention_dim, device=device, dtype=dtype)
    added = {
        "text_embeds": torch.randn(rows, pooled, device=device, dtype=dtype),
        "time_ids": torch.tensor(
            [[face_size, face_size, 0, 0, face_size, face_size]] * rows, device=device, dtype=dtype
        ),
    }
    control = torch.rand(rows, 3, face_size, face_size, device=device, dtype=dtype)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        down, mid = controlnet(
            sample,
            FLOP_COUNT_TIMESTEP,
            encoder_hidden_states=text,
            controlnet_cond=control,
            added_cond_kwargs=added,
            return_dict=False,
        )
        unet(
            sample,
            FLOP_COUNT_TIMESTEP,
            encoder_hidden_states=text,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            added_cond_kwargs=added,
            return_dict=False,
        )
    return counter.get_total_flops()


def meta_denoiser(unet_config: dict | None = None, controlnet_config: dict | None = None):
    """(UNet, ControlNet) on the ``meta`` device from their configs: the released geometry when None."""
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    with torch.device("meta"):
        unet = (
            UNet2DConditionModel.from_config(unet_config) if unet_config else UNet2DConditionModel(**SDXL_UNET_CONFIG)
        )
        if controlnet_config:
            controlnet = ControlNetModel.from_config(controlnet_config)
        else:
            controlnet = ControlNetModel.from_unet(
                unet, conditioning_embedding_out_channels=CONTROLNET_EMBEDDING_CHANNELS, load_weights_from_unet=False
            )
    return unet, controlnet
