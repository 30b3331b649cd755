"""AuthFace's time-aware latent facial feature loss, as small tensor functions.

Stage II adds to the diffusion loss a loss on the eye and mouth regions of the *predicted clean
latent* x0_hat (latents are (B, 4, h, w), the VAE's 1/8 grid). Each region has its own small
discriminator; the generator side is a non-saturating GAN loss plus a style (Gram matrix) loss
between the discriminator features of predicted and true regions. Every sample is weighted by the
logit-normal density of its timestep t in (0, 1), as SD3 samples timesteps (Esser et al. 2024,
Eq. 19), so that middle timesteps, where facial detail is decided, count most.

Region boxes come in pixels of the training image (``(x0, y0, x1, y1)``, x1/y1 exclusive, from
``authface_core.faces.regions``) and are cropped from the latent by bilinear sampling (RoIAlign
without torchvision), so one box serves any latent resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn
from torch.func import functional_call

LOSS_REGIONS = ("eyes", "mouth")
TIME_WEIGHT_SCHEDULES = ("logit_normal", "constant")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")  # what a diffusers scheduler's UNet may predict


@dataclass(frozen=True)
class TimeWeightConfig:
    """How each sample's facial loss is weighted by its timestep.

    Args:
        m: location of the logit-normal density (SD3 uses 0); its median is t = sigmoid(m).
        s: scale of the density (SD3 uses 1); keep s <= sqrt(2) for a single peak.
        schedule: ``"logit_normal"`` (the paper's time-aware weight) or ``"constant"`` (weight 1,
            the density's mean over uniform t, for the paper's ablation).
    """

    m: float = 0.0
    s: float = 1.0
    schedule: str = "logit_normal"

    def __post_init__(self) -> None:
        if not math.isfinite(self.m):
            raise ValueError(f"m must be a finite number, got {self.m!r}")
        if not (math.isfinite(self.s) and self.s > 0):
            raise ValueError(f"s must be a positive number, got {self.s!r}")
        if self.schedule not in TIME_WEIGHT_SCHEDULES:
            raise ValueError(f"schedule must be one of {TIME_WEIGHT_SCHEDULES}, got {self.schedule!r}")


@dataclass(frozen=True)
class FacialLossConfig:
    """Weights and crop sizes of the facial feature loss (the paper gives no values; these are ours).

    Args:
        style_weight: weight of the Gram (style) loss on discriminator features.
        adversarial_weight: weight of the generator's GAN loss.
        time_weight: the per-sample timestep weighting.
        eyes_crop: (height, width) in latent pixels that the eyes region is resampled to.
        mouth_crop: (height, width) in latent pixels that the mouth region is resampled to.
    """

    style_weight: float = 1.0
    adversarial_weight: float = 0.1
    time_weight: TimeWeightConfig = field(default_factory=TimeWeightConfig)
    eyes_crop: tuple[int, int] = (8, 24)
    mouth_crop: tuple[int, int] = (8, 16)

    def __post_init__(self) -> None:
        for name in ("style_weight", "adversarial_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("eyes_crop", "mouth_crop"):
            crop = tuple(getattr(self, name))
            if len(crop) != 2 or min(crop) < 4:
                raise ValueError(f"{name} must be (height, width) with both >= 4 latent pixels, got {crop!r}")
            object.__setattr__(self, name, crop)

    def crop_size(self, region: str) -> tuple[int, int]:
        return {"eyes": self.eyes_crop, "mouth": self.mouth_crop}[region]


def logit_normal_weight(t: torch.Tensor, m: float = 0.0, s: float = 1.0) -> torch.Tensor:
    """Logit-normal density 1/(s sqrt(2 pi)) 1/(t(1-t)) exp(-(logit t - m)^2 / (2 s^2)) (SD3, Eq. 19)."""
    logit = torch.log(t) - torch.log1p(-t)
    return torch.exp(-((logit - m) ** 2) / (2 * s**2)) / (s * math.sqrt(2 * math.pi) * t * (1 - t))


def timestep_fraction(timesteps: torch.Tensor, num_train_timesteps: int) -> torch.Tensor:
    """Discrete timesteps 0..T-1 as the midpoints of T equal bins of (0, 1)."""
    return (timesteps.float() + 0.5) / num_train_timesteps


def time_weight(timesteps: torch.Tensor, num_train_timesteps: int, config: TimeWeightConfig) -> torch.Tensor:
    """(B,) weight of each sample's facial loss."""
    if config.schedule == "constant":
        return torch.ones(timesteps.shape, device=timesteps.device)
    return logit_normal_weight(timestep_fraction(timesteps, num_train_timesteps), config.m, config.s)


def predict_clean_latents(
    noisy_latents: torch.Tensor,
    model_output: torch.Tensor,
    timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    prediction_type: str,
) -> torch.Tensor:
    """x0_hat from x_t and the UNet output (DDPM, Ho et al. 2020 Eq. 15; v: Salimans & Ho 2022)."""
    alpha_bar = alphas_cumprod.to(noisy_latents.device, torch.float32)[timesteps].view(-1, 1, 1, 1)
    sqrt_alpha, sqrt_one_minus = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    noisy, output = noisy_latents.float(), model_output.float()
    if prediction_type == "epsilon":
        return (noisy - sqrt_one_minus * output) / sqrt_alpha
    if prediction_type == "v_prediction":
        return sqrt_alpha * noisy - sqrt_one_minus * output
    if prediction_type == "sample":
        return output
    raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")


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
    """(B,) mean squared Gram difference, averaged over feature levels."""
    per_level = [
        (gram_matrix(p) - gram_matrix(t)).pow(2).mean(dim=(1, 2)) for p, t in zip(predicted, target, strict=True)
    ]
    return torch.stack(per_level).mean(dim=0)


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """(B,) non-saturating GAN loss, softplus(-D(fake)) (Goodfellow et al. 2014)."""
    return F.softplus(-fake_logits)


def discriminator_adversarial_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """(B,) logistic discriminator loss, softplus(-D(real)) + softplus(D(fake))."""
    return F.softplus(-real_logits) + F.softplus(fake_logits)


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


def crop_facial_regions(
    latents: torch.Tensor, region_boxes: torch.Tensor, image_size: int, config: FacialLossConfig
) -> dict[str, torch.Tensor]:
    """latents (B, C, h, w), region_boxes (B, 2, 4) pixels in LOSS_REGIONS order -> {region: crops}."""
    return {
        region: crop_regions(latents, region_boxes[:, index], image_size, config.crop_size(region))
        for index, region in enumerate(LOSS_REGIONS)
    }


def facial_feature_loss(
    predicted_latents: torch.Tensor,
    target_latents: torch.Tensor,
    region_boxes: torch.Tensor,
    image_size: int,
    weights: torch.Tensor,
    discriminators: FacialDiscriminators,
    config: FacialLossConfig,
) -> FacialLossTerms:
    """Generator loss on eyes and mouth: time-weighted (style + GAN) between x0_hat and x0 crops.

    Shapes: latents (B, C, h, w); region_boxes (B, 2, 4) pixels, in LOSS_REGIONS order; weights (B,).
    ``discriminators`` is the unwrapped module; it runs with detached weights, so this loss trains
    only what produced ``predicted_latents``.
    """
    fake = _call_without_parameter_grads(
        discriminators, crop_facial_regions(predicted_latents, region_boxes, image_size, config)
    )
    with torch.no_grad():
        real = discriminators(crop_facial_regions(target_latents, region_boxes, image_size, config))
    style = torch.stack([style_loss(fake[r][1], real[r][1]) for r in LOSS_REGIONS]).sum(dim=0)  # (B,)
    adversarial = torch.stack([generator_adversarial_loss(fake[r][0]) for r in LOSS_REGIONS]).sum(dim=0)
    per_sample = config.style_weight * style + config.adversarial_weight * adversarial
    return FacialLossTerms(
        style=style.mean().detach(),
        adversarial=adversarial.mean().detach(),
        total=(weights * per_sample).mean(),
    )


def discriminator_loss(
    predicted_latents: torch.Tensor,
    target_latents: torch.Tensor,
    region_boxes: torch.Tensor,
    image_size: int,
    weights: torch.Tensor,
    discriminators: nn.Module,
    config: FacialLossConfig,
) -> torch.Tensor:
    """Time-weighted logistic loss of both discriminators: real = x0 crops, fake = detached x0_hat crops."""
    real = crop_facial_regions(target_latents.detach(), region_boxes, image_size, config)
    fake = crop_facial_regions(predicted_latents.detach(), region_boxes, image_size, config)
    batch = predicted_latents.shape[0]
    outputs = discriminators({r: torch.cat([real[r], fake[r]]) for r in LOSS_REGIONS})  # one forward for DDP
    per_sample = sum(discriminator_adversarial_loss(outputs[r][0][:batch], outputs[r][0][batch:]) for r in LOSS_REGIONS)
    return (weights * per_sample).mean()
