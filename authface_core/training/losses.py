"""AuthFace's time-aware latent facial feature loss, as small tensor functions.

Stage II adds to the diffusion loss a loss on the eye and mouth regions of the *predicted clean
latent* x0_hat (latents are (B, 4, h, w), the VAE's 1/8 grid). Each region has its own small
discriminator; the generator side is a non-saturating GAN loss plus a style loss, the L1 distance
between Gram matrices of the discriminator features of predicted and true regions (GFPGAN's
facial component loss, Wang et al. 2021). Every sample is weighted by the logit-normal density
of its timestep t in (0, 1), as SD3 samples timesteps (Esser et al. 2024, Eq. 19), so that middle
timesteps, where facial detail is decided, count most.

The t convention: t = (DDPM index + 0.5) / T, so t grows with the noise as in SD3, but on SDXL's
scaled-linear DDPM schedule, not SD3's rectified flow. The density with m = 0 peaks at index 500,
where SNR = alpha_bar / (1 - alpha_bar) is 0.38; SD3's t = 0.5 is SNR 1, which here is index 354
(t = 0.3545, reached with m = logit(0.3545) = -0.60). We keep m = 0 as the paper states m and s,
not an SNR; set ``time_weight_m`` to move the peak.

Balance of the terms, and the band a test holds them to. At initialisation on SDXL-shaped latents
(batch 8, 4 x 64 x 64, eyes and mouth boxes of an FFHQ-aligned face, timesteps spread over the
schedule, a UNet error giving a diffusion loss of 0.1), the gradient on x0_hat of each weighted
facial term, lambda * weight * term, must lie within [1/100, 1/2] of the diffusion loss's gradient
(L2 norms over the batch). Below 1/100 a term does nothing: the eye and mouth crops cover 8 % of
the latent, so 1/100 of the whole gradient is already about 1/8 of the diffusion gradient on those
pixels. Above 1/2 an auxiliary loss on 8 % of the face would outweigh the reconstruction of all of
it. With lambda 0.1 and GFPGAN's weights (style 200 on an L1 Gram distance, GAN 1) the terms sit at
0.04 and 0.055 (``bench/loss_balance.py``); the former squared Gram difference at weight 1 sat at
4e-7 and the GAN term at weight 0.1 at 0.006.

Region boxes come in pixels of the training image (``(x0, y0, x1, y1)``, x1/y1 exclusive, from
``authface_core.faces.regions``) and are cropped from the latent by bilinear sampling (RoIAlign
without torchvision), so one box serves any latent resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn
from torch.func import functional_call

LOSS_REGIONS = ("eyes", "mouth")
# (height, width) in latent pixels that each region is resampled to: the eyes box is about 3:1, the mouth 2:1.
REGION_CROP_SIZES = {"eyes": (8, 24), "mouth": (8, 16)}


def logit_normal_weight(t: torch.Tensor, m: float = 0.0, s: float = 1.0) -> torch.Tensor:
    """Logit-normal density 1/(s sqrt(2 pi)) 1/(t(1-t)) exp(-(logit t - m)^2 / (2 s^2)) (SD3, Eq. 19)."""
    logit = torch.log(t) - torch.log1p(-t)
    return torch.exp(-((logit - m) ** 2) / (2 * s**2)) / (s * math.sqrt(2 * math.pi) * t * (1 - t))


def timestep_fraction(timesteps: torch.Tensor, num_train_timesteps: int) -> torch.Tensor:
    """DDPM indices 0..T-1 as the midpoints of T equal bins of (0, 1); t grows with the noise (module doc)."""
    return (timesteps.float() + 0.5) / num_train_timesteps


def time_weight(
    timesteps: torch.Tensor, num_train_timesteps: int, schedule: str = "logit_normal", m: float = 0.0, s: float = 1.0
) -> torch.Tensor:
    """(B,) weight of each sample's facial loss: the logit-normal density at t (the paper), or 1 for the
    ``"constant"`` ablation (the density's mean over uniform t)."""
    if schedule == "constant":
        return torch.ones(timesteps.shape, device=timesteps.device)
    if schedule != "logit_normal":
        raise ValueError(f"schedule must be 'logit_normal' or 'constant', got {schedule!r}")
    return logit_normal_weight(timestep_fraction(timesteps, num_train_timesteps), m, s)


def crop_regions(
    latents: torch.Tensor, boxes: torch.Tensor, image_size: int, crop_size: tuple[int, int]
) -> torch.Tensor:
    """Resample one box per sample: latents (B, C, h, w), boxes (B, 4) image pixels -> (B, C, *crop_size).

    The box is given in pixels of the (image_size x image_size) image that the latent encodes;
    normalised coordinates make it land on the same area of the latent grid. Differentiable.
    """
    boxes = boxes.to(latents.device, torch.float32)
    centre_x = (boxes[:, 0] + boxes[:, 2]) / image_size - 1.0
    centre_y = (boxes[:, 1] + boxes[:, 3]) / image_size - 1.0
    scale_x = (boxes[:, 2] - boxes[:, 0]) / image_size
    scale_y = (boxes[:, 3] - boxes[:, 1]) / image_size
    zeros = torch.zeros_like(scale_x)
    theta = torch.stack(
        [torch.stack([scale_x, zeros, centre_x], dim=1), torch.stack([zeros, scale_y, centre_y], dim=1)], dim=1
    )  # (B, 2, 3): output grid -> input normalised coordinates
    grid = F.affine_grid(theta, [latents.shape[0], latents.shape[1], *crop_size], align_corners=False)
    return F.grid_sample(latents.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) Gram matrix normalised by C*H*W (Gatys et al. 2016)."""
    batch, channels, height, width = features.shape
    flat = features.reshape(batch, channels, height * width).float()
    return flat @ flat.transpose(1, 2) / (channels * height * width)


def style_loss(predicted: list[torch.Tensor], target: list[torch.Tensor]) -> torch.Tensor:
    """(B,) mean absolute Gram difference, averaged over feature levels (GFPGAN's ``comp_style_loss``: an L1
    loss between Gram matrices; a squared difference of these small normalised entries would vanish)."""
    per_level = [
        (gram_matrix(p) - gram_matrix(t)).abs().mean(dim=(1, 2)) for p, t in zip(predicted, target, strict=True)
    ]
    return torch.stack(per_level).mean(dim=0)


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """(B,) non-saturating GAN loss, softplus(-D(fake)) (Goodfellow et al. 2014)."""
    return F.softplus(-fake_logits)


def discriminator_adversarial_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """(B,) logistic discriminator loss, softplus(-D(real)) + softplus(D(fake))."""
    return F.softplus(-real_logits) + F.softplus(fake_logits)


def r1_penalty(real_logits: list[torch.Tensor], real_inputs: list[torch.Tensor]) -> torch.Tensor:
    """Mean over samples of |grad_x D(x)|^2 on real inputs, summed over discriminators (Mescheder et al. 2018,
    Eq. 9, without gamma / 2). The inputs must require grad; the result is differentiable (create_graph)."""
    gradients = torch.autograd.grad(sum(logits.sum() for logits in real_logits), real_inputs, create_graph=True)
    return sum(g.pow(2).flatten(1).sum(dim=1).mean() for g in gradients)


class _RegionCritic(nn.Module):
    """A few strided convolutions over a latent crop; returns (logits (B,), features per level)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...]):
        super().__init__()
        widths = (in_channels, *channels)
        self.levels = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=1 if i == 0 else 2, padding=1), nn.LeakyReLU(0.2))
            for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:], strict=True))
        )
        self.head = nn.Conv2d(widths[-1], 1, 3, padding=1)

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features, hidden = [], crops
        for level in self.levels:
            hidden = level(hidden)
            features.append(hidden)
        return self.head(hidden).mean(dim=(1, 2, 3)), features


class FacialDiscriminators(ModelMixin, ConfigMixin):
    """The two small discriminators of the facial loss, one for the eyes and one for the mouth.

    Saved with ``save_pretrained`` (config.json + safetensors) inside each training checkpoint.
    """

    @register_to_config
    def __init__(self, in_channels: int = 4, channels: tuple[int, ...] = (64, 128, 256)):
        super().__init__()
        self.critics = nn.ModuleDict({name: _RegionCritic(in_channels, tuple(channels)) for name in LOSS_REGIONS})

    def forward(self, crops: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, list[torch.Tensor]]]:
        """{region: crops (B, C, H, W)} -> {region: (logits (B,), features per level)}; one call for DDP."""
        return {region: self.critics[region](region_crops) for region, region_crops in crops.items()}


def _call_without_parameter_grads(module: nn.Module, *args):
    """Run ``module`` with detached parameters: gradients reach its inputs but never its weights."""
    state = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    return functional_call(module, {name: tensor.detach() for name, tensor in state.items()}, args)


@dataclass
class FacialLossTerms:
    """The generator side of the facial loss: scalars for logging, ``total`` to optimise."""

    style: torch.Tensor
    adversarial: torch.Tensor
    total: torch.Tensor


def crop_facial_regions(latents: torch.Tensor, region_boxes: torch.Tensor, image_size: int) -> dict[str, torch.Tensor]:
    """latents (B, C, h, w), region_boxes (B, 2, 4) pixels in LOSS_REGIONS order -> {region: crops}."""
    return {
        region: crop_regions(latents, region_boxes[:, index], image_size, REGION_CROP_SIZES[region])
        for index, region in enumerate(LOSS_REGIONS)
    }


def facial_feature_loss(
    predicted_latents: torch.Tensor,
    target_latents: torch.Tensor,
    region_boxes: torch.Tensor,
    image_size: int,
    weights: torch.Tensor,
    discriminators: FacialDiscriminators,
    *,
    style_weight: float,
    adversarial_weight: float,
) -> FacialLossTerms:
    """Generator loss on eyes and mouth: time-weighted (style + GAN) between x0_hat and x0 crops.

    Shapes: latents (B, C, h, w); region_boxes (B, 2, 4) pixels, in LOSS_REGIONS order; weights (B,).
    ``discriminators`` is the unwrapped module; it runs with detached weights, so this loss trains
    only what produced ``predicted_latents``.
    """
    fake = _call_without_parameter_grads(
        discriminators, crop_facial_regions(predicted_latents, region_boxes, image_size)
    )
    with torch.no_grad():
        real = discriminators(crop_facial_regions(target_latents, region_boxes, image_size))
    style = torch.stack([style_loss(fake[r][1], real[r][1]) for r in LOSS_REGIONS]).sum(dim=0)  # (B,)
    adversarial = torch.stack([generator_adversarial_loss(fake[r][0]) for r in LOSS_REGIONS]).sum(dim=0)
    per_sample = style_weight * style + adversarial_weight * adversarial
    return FacialLossTerms(
        style=style.mean().detach(),
        adversarial=adversarial.mean().detach(),
        total=(weights * per_sample).mean(),
    )


@dataclass
class DiscriminatorLossTerms:
    """The discriminators' loss: scalars for logging (``r1`` None when off), ``total`` to optimise."""

    adversarial: torch.Tensor
    r1: torch.Tensor | None
    total: torch.Tensor


def discriminator_loss(
    predicted_latents: torch.Tensor,
    target_latents: torch.Tensor,
    region_boxes: torch.Tensor,
    image_size: int,
    weights: torch.Tensor,
    discriminators: nn.Module,
    r1_gamma: float = 0.0,
) -> DiscriminatorLossTerms:
    """Time-weighted logistic loss of both discriminators (real = x0 crops, fake = detached x0_hat crops), plus
    ``r1_gamma / 2`` times the R1 penalty on the real crops when ``r1_gamma`` > 0."""
    real = crop_facial_regions(target_latents.detach(), region_boxes, image_size)
    fake = crop_facial_regions(predicted_latents.detach(), region_boxes, image_size)
    if r1_gamma:
        real = {region: crops.requires_grad_(True) for region, crops in real.items()}
    batch = predicted_latents.shape[0]
    outputs = discriminators({r: torch.cat([real[r], fake[r]]) for r in LOSS_REGIONS})  # one forward for DDP
    real_logits = [outputs[r][0][:batch] for r in LOSS_REGIONS]
    fake_logits = [outputs[r][0][batch:] for r in LOSS_REGIONS]
    per_sample = sum(discriminator_adversarial_loss(r, f) for r, f in zip(real_logits, fake_logits, strict=True))
    adversarial = (weights * per_sample).mean()
    if not r1_gamma:
        return DiscriminatorLossTerms(adversarial.detach(), None, adversarial)
    r1 = r1_penalty(real_logits, [real[r] for r in LOSS_REGIONS])
    return DiscriminatorLossTerms(adversarial.detach(), r1.detach(), adversarial + r1_gamma / 2 * r1)
