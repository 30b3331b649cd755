"""The diffusion math of training, as small pure tensor functions (each cites where it comes from).

Latents are (B, C, h, w) on the VAE's 1/8 grid, scaled by the VAE's ``scaling_factor``; timesteps
are DDPM indices 0..T-1 (T = ``num_train_timesteps``, 1000 for SDXL), larger meaning noisier;
``alphas_cumprod`` is the scheduler's alpha-bar. Nothing here reads settings or touches files.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")  # what a diffusers scheduler's UNet may predict


def encode_pixels(vae: torch.nn.Module, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> scaled latents (B, 4, H/8, W/8), a posterior sample as SDXL trains."""
    with torch.no_grad():
        latents = vae.encode(pixels.to(vae.dtype)).latent_dist.sample(generator)
    return latents * vae.config.scaling_factor


def encode_latent_distribution(vae: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> the VAE posterior's parameters (B, 2C, H/8, W/8): mean then log-variance,
    what ``cache_latents`` stores so that :func:`sample_latents` draws what :func:`encode_pixels` would."""
    with torch.no_grad():
        return vae.encode(pixels.to(vae.dtype)).latent_dist.parameters.float()


def sample_latents(
    parameters: torch.Tensor, scaling_factor: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Scaled latents drawn from stored posterior parameters (Kingma & Welling 2014: mean + std * eps)."""
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    return DiagonalGaussianDistribution(parameters).sample(generator) * scaling_factor


def sample_noise(
    latents: torch.Tensor, generator: torch.Generator | None = None, noise_offset: float = 0.0
) -> torch.Tensor:
    """Gaussian noise like ``latents``, plus ``noise_offset`` times one Gaussian per sample and channel
    (offset noise, Guttenberg 2023), so the model can learn to shift an image's mean."""
    noise = torch.randn(latents.shape, generator=generator, device=latents.device)
    if noise_offset:
        offset = torch.randn((*latents.shape[:2], 1, 1), generator=generator, device=latents.device)
        noise = noise + noise_offset * offset
    return noise


def add_training_noise(
    noise_scheduler, latents: torch.Tensor, generator: torch.Generator | None = None, noise_offset: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(noise, timesteps (B,), noisy latents x_t) for clean latents, t uniform over the DDPM indices 0..T-1
    (Ho et al. 2020, Algorithm 1), x_t by the scheduler's ``add_noise`` (Eq. 4)."""
    noise = sample_noise(latents, generator, noise_offset)
    num_train_timesteps = noise_scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, num_train_timesteps, (latents.shape[0],), generator=generator, device=latents.device)
    return noise, timesteps, noise_scheduler.add_noise(latents, noise, timesteps)


def diffusion_target(
    noise_scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """What the UNet is trained to predict under the scheduler's ``prediction_type``: eps, the velocity
    (Salimans & Ho 2022, Sec. 4) or x_0."""
    prediction_type = noise_scheduler.config.prediction_type
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return noise_scheduler.get_velocity(latents, noise, timesteps)
    if prediction_type == "sample":
        return latents
    raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")


def predict_clean_latents(
    noisy_latents: torch.Tensor,
    model_output: torch.Tensor,
    timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    prediction_type: str,
) -> torch.Tensor:
    """x0_hat from x_t and the UNet output (Ho et al. 2020, Eq. 15; v: Salimans & Ho 2022), in float32."""
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


def min_snr_weights(noise_scheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """(B,) Min-SNR-gamma loss weights (Hang et al. 2023, Eq. 6): min(SNR, gamma) expressed for the prediction
    target, i.e. divided by SNR for epsilon and by SNR + 1 for v; SNR = alpha_bar / (1 - alpha_bar)."""
    from diffusers.training_utils import compute_snr

    snr = compute_snr(noise_scheduler, timesteps)
    clipped = torch.clamp(snr, max=gamma)
    prediction_type = noise_scheduler.config.prediction_type
    if prediction_type == "epsilon":
        return clipped / snr
    if prediction_type == "v_prediction":
        return clipped / (snr + 1)
    if prediction_type == "sample":
        return clipped
    raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")


def diffusion_loss(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error, each sample's mean weighted by ``weights`` (B,) when given (Min-SNR)."""
    if weights is None:
        return F.mse_loss(prediction.float(), target.float())
    per_sample = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=tuple(range(1, target.ndim)))
    return (weights * per_sample).mean()


@torch.no_grad()
def sdxl_time_ids(original_size: torch.Tensor, crop_top_left: torch.Tensor, target_size: int) -> torch.Tensor:
    """SDXL micro-conditioning (B, 6): original (h, w), crop (top, left), target (h, w) (Podell et al. 2023, 2.2)."""
    target = torch.tensor([target_size, target_size], device=original_size.device).expand_as(original_size)
    return torch.cat([original_size, crop_top_left, target], dim=1).float()
