"""The diffusion math of training: targets, x0 prediction, Min-SNR weights, offset noise, cached latents."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from authface_core.pipeline.tiny import SDXL_SCHEDULER_CONFIG
from authface_core.training.diffusion import (
    add_training_noise,
    diffusion_loss,
    diffusion_target,
    encode_latent_distribution,
    encode_pixels,
    min_snr_weights,
    predict_clean_latents,
    sample_latents,
    sample_noise,
)


def _scheduler(prediction_type: str = "epsilon") -> DDPMScheduler:
    return DDPMScheduler(**{**SDXL_SCHEDULER_CONFIG, "prediction_type": prediction_type})


def test_predict_clean_latents_inverts_add_noise():
    scheduler = _scheduler()
    generator = torch.Generator().manual_seed(2)
    clean, noise = torch.randn(3, 4, 8, 8, generator=generator), torch.randn(3, 4, 8, 8, generator=generator)
    timesteps = torch.tensor([10, 500, 990])
    noisy = scheduler.add_noise(clean, noise, timesteps)
    recovered = predict_clean_latents(noisy, noise, timesteps, scheduler.alphas_cumprod, "epsilon")
    torch.testing.assert_close(recovered, clean, atol=1e-4, rtol=1e-4)
    velocity = scheduler.get_velocity(clean, noise, timesteps)
    recovered_v = predict_clean_latents(noisy, velocity, timesteps, scheduler.alphas_cumprod, "v_prediction")
    torch.testing.assert_close(recovered_v, clean, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="prediction_type"):
        predict_clean_latents(noisy, noise, timesteps, scheduler.alphas_cumprod, "flow")


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_diffusion_target_is_what_predict_clean_latents_inverts(prediction_type):
    scheduler = _scheduler(prediction_type)
    generator = torch.Generator().manual_seed(6)
    clean = torch.randn(3, 4, 8, 8, generator=generator)
    noise, timesteps, noisy = add_training_noise(scheduler, clean, generator)
    assert timesteps.shape == (3,) and 0 <= int(timesteps.min()) and int(timesteps.max()) < 1000
    target = diffusion_target(scheduler, clean, noise, timesteps)
    recovered = predict_clean_latents(noisy, target, timesteps, scheduler.alphas_cumprod, prediction_type)
    torch.testing.assert_close(recovered, clean, atol=1e-4, rtol=1e-4)


def test_diffusion_target_rejects_an_unknown_prediction_type():
    from types import SimpleNamespace

    scheduler = SimpleNamespace(config=SimpleNamespace(prediction_type="flow"))
    with pytest.raises(ValueError, match="'flow'"):
        diffusion_target(scheduler, torch.zeros(1), torch.zeros(1), torch.zeros(1, dtype=torch.long))


@pytest.mark.parametrize("prediction_type, divisor", [("epsilon", "snr"), ("v_prediction", "snr+1"), ("sample", "1")])
def test_min_snr_weights_clip_the_snr_at_gamma_for_each_target(prediction_type, divisor):
    """Hang et al. 2023: the x0-loss weight min(SNR, gamma), which for an eps target is min(SNR, gamma) / SNR.
    SNR is computed here from SDXL's betas (scaled linear), independently of diffusers."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alpha_bar = torch.cumprod(1 - betas, 0)
    timesteps = torch.tensor([0, 100, 354, 500, 999])
    snr = (alpha_bar / (1 - alpha_bar))[timesteps]
    expected = torch.minimum(snr, torch.tensor(5.0, dtype=torch.float64))
    expected = expected / {"snr": snr, "snr+1": snr + 1, "1": torch.ones_like(snr)}[divisor]
    weights = min_snr_weights(_scheduler(prediction_type), timesteps, 5.0)
    torch.testing.assert_close(weights.double(), expected, rtol=1e-4, atol=1e-7)
    if prediction_type == "epsilon":  # noisy timesteps (SNR below gamma) keep their full weight
        assert float(weights[-1]) == pytest.approx(1.0) and float(weights[0]) < 0.01


def test_weighted_diffusion_loss_weighs_each_sample_mean():
    prediction, target = torch.zeros(2, 1, 2, 2), torch.tensor([1.0, 2.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2)
    assert float(diffusion_loss(prediction, target)) == pytest.approx(2.5)
    assert float(diffusion_loss(prediction, target, torch.tensor([1.0, 0.5]))) == pytest.approx((1 + 2) / 2)


def test_offset_noise_adds_one_gaussian_per_sample_and_channel():
    """Guttenberg 2023: noise + offset * N(0, 1) of shape (B, C, 1, 1)."""
    latents = torch.zeros(64, 4, 8, 8)
    plain = sample_noise(latents, torch.Generator().manual_seed(3))
    offset = sample_noise(latents, torch.Generator().manual_seed(3), noise_offset=0.1)
    shift = offset - plain
    assert torch.allclose(shift, shift[:, :, :1, :1].expand_as(shift), atol=1e-6)  # constant over each plane
    assert float(shift[:, :, 0, 0].std()) == pytest.approx(0.1, rel=0.2)


def test_cached_posterior_draws_exactly_what_encoding_draws():
    """cache_latents stores the posterior's parameters; a step's draw from them equals the VAE's own sample."""
    from authface_core.pipeline.tiny import build_tiny_components

    vae = build_tiny_components()["vae"]
    pixels = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(4)) * 2 - 1
    encoded = encode_pixels(vae, pixels, torch.Generator().manual_seed(5))
    stored = encode_latent_distribution(vae, pixels)
    assert stored.shape == (2, 8, 8, 8)
    drawn = sample_latents(stored, vae.config.scaling_factor, torch.Generator().manual_seed(5))
    assert torch.equal(drawn, encoded)
