"""The time-aware latent facial feature loss: w(t), Gram/style loss, region crops, gradient flow."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import integrate

from authface_core.training.losses import (
    FacialDiscriminators,
    FacialLossConfig,
    TimeWeightConfig,
    crop_regions,
    discriminator_loss,
    facial_feature_loss,
    gram_matrix,
    logit_normal_weight,
    predict_clean_latents,
    style_loss,
    time_weight,
)

SETTINGS = [(0.0, 1.0), (0.0, 0.5), (0.0, 1.4), (0.8, 1.0), (-1.5, 0.7)]


def _weight(t: float, m: float, s: float) -> float:
    return float(logit_normal_weight(torch.tensor(t, dtype=torch.float64), m, s))


@pytest.mark.parametrize("m, s", SETTINGS)
def test_time_weight_integrates_to_one(m, s):
    total, error = integrate.quad(_weight, 0.0, 1.0, args=(m, s), limit=200)
    assert total == pytest.approx(1.0, abs=1e-6) and error < 1e-6


@pytest.mark.parametrize("s", [0.5, 1.0, 1.4])
def test_time_weight_peaks_at_sigmoid_m_for_m_zero(s):
    t = torch.linspace(1e-5, 1 - 1e-5, 200_001, dtype=torch.float64)
    peak = float(t[logit_normal_weight(t, 0.0, s).argmax()])
    assert peak == pytest.approx(1 / (1 + math.exp(-0.0)), abs=1e-4)


@pytest.mark.parametrize("m, s", [(0.8, 1.0), (-1.5, 0.7), (1.0, 0.2)])
def test_time_weight_median_is_sigmoid_m_and_mode_solves_its_equation(m, s):
    """For m != 0 the density's median is sigmoid(m); its mode t* solves logit(t*) = m + s^2 (2 t* - 1)."""
    median = 1 / (1 + math.exp(-m))
    below, _ = integrate.quad(_weight, 0.0, median, args=(m, s))
    assert below == pytest.approx(0.5, abs=1e-6)
    t = torch.linspace(1e-5, 1 - 1e-5, 200_001, dtype=torch.float64)
    mode = float(t[logit_normal_weight(t, m, s).argmax()])
    assert math.log(mode / (1 - mode)) == pytest.approx(m + s**2 * (2 * mode - 1), abs=1e-3)
    assert abs(mode - median) < s**2  # close to sigmoid(m) when s is small


def test_time_weight_over_discrete_timesteps_averages_one_and_favours_the_middle():
    timesteps = torch.arange(1000)
    weights = time_weight(timesteps, 1000, TimeWeightConfig())
    assert float(weights.mean()) == pytest.approx(1.0, abs=1e-3)  # same average as the constant ablation
    assert weights[500] > weights[100] > weights[10] and weights[500] > weights[900] > weights[990]
    constant = time_weight(timesteps, 1000, TimeWeightConfig(schedule="constant"))
    assert torch.equal(constant, torch.ones(1000))


@pytest.mark.parametrize(
    "changes, field", [({"s": 0.0}, "s"), ({"m": float("nan")}, "m"), ({"schedule": "cosine"}, "schedule")]
)
def test_time_weight_config_rejects_invalid_values(changes, field):
    with pytest.raises(ValueError, match=field):
        TimeWeightConfig(**changes)


def test_facial_loss_config_rejects_invalid_values():
    with pytest.raises(ValueError, match="style_weight"):
        FacialLossConfig(style_weight=-1.0)
    with pytest.raises(ValueError, match="eyes_crop"):
        FacialLossConfig(eyes_crop=(2, 8))


def test_gram_matrix_matches_its_definition():
    features = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    flat = features.reshape(2, 3, 20)
    expected = torch.einsum("bci,bdi->bcd", flat, flat) / (3 * 4 * 5)
    torch.testing.assert_close(gram_matrix(features), expected)


def test_style_loss_is_zero_for_identical_inputs_and_positive_otherwise():
    generator = torch.Generator().manual_seed(1)
    features = [torch.randn(2, 8, 6, 6, generator=generator), torch.randn(2, 16, 3, 3, generator=generator)]
    assert torch.equal(style_loss(features, features), torch.zeros(2))
    # A Gram matrix ignores where things are: spatially shuffled features have the same style.
    shuffled = [
        f.flatten(2)[:, :, torch.randperm(f[0, 0].numel(), generator=generator)].reshape(f.shape) for f in features
    ]
    torch.testing.assert_close(style_loss(features, shuffled), torch.zeros(2), atol=1e-7, rtol=0)
    other = [f + 0.5 * torch.randn(f.shape, generator=generator) for f in features]
    assert (style_loss(features, other) > 1e-5).all()
    assert (style_loss(features, [2 * f for f in features]) > style_loss(features, other)).all()


def test_crop_regions_samples_the_box_on_the_latent_grid():
    """A latent whose value is its x (column) index: a crop must hold the box's latent x positions."""
    latents = torch.arange(8.0).repeat(1, 1, 8, 1)  # (1, 1, 8, 8) latent of a 64 px image, value = column
    boxes = torch.tensor([[16.0, 8.0, 48.0, 40.0]])  # image pixels
    crop = crop_regions(latents, boxes, image_size=64, crop_size=(4, 8))
    sample_x = 16.0 + (torch.arange(8) + 0.5) * 32.0 / 8  # pixel centres of the 8 crop columns
    torch.testing.assert_close(crop[0, 0, 0], sample_x / 8 - 0.5)  # latent pixel centres sit at 8 px steps
    assert torch.equal(crop[0, 0, 0], crop[0, 0, 3])  # rows differ only in y, along which values are constant


def test_predict_clean_latents_inverts_add_noise():
    from diffusers import DDPMScheduler

    from authface_core.pipeline.tiny import SDXL_SCHEDULER_CONFIG

    scheduler = DDPMScheduler(**SDXL_SCHEDULER_CONFIG)
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
    from diffusers import DDPMScheduler

    from authface_core.pipeline.tiny import SDXL_SCHEDULER_CONFIG
    from authface_core.training.common import add_training_noise, diffusion_target

    scheduler = DDPMScheduler(**{**SDXL_SCHEDULER_CONFIG, "prediction_type": prediction_type})
    generator = torch.Generator().manual_seed(6)
    clean = torch.randn(3, 4, 8, 8, generator=generator)
    noise, timesteps, noisy = add_training_noise(scheduler, clean, generator)
    assert timesteps.shape == (3,) and 0 <= int(timesteps.min()) and int(timesteps.max()) < 1000
    target = diffusion_target(scheduler, clean, noise, timesteps)
    recovered = predict_clean_latents(noisy, target, timesteps, scheduler.alphas_cumprod, prediction_type)
    torch.testing.assert_close(recovered, clean, atol=1e-4, rtol=1e-4)


def test_diffusion_target_rejects_an_unknown_prediction_type():
    from types import SimpleNamespace

    from authface_core.training.common import diffusion_target

    scheduler = SimpleNamespace(config=SimpleNamespace(prediction_type="flow"))
    with pytest.raises(ValueError, match="'flow'"):
        diffusion_target(scheduler, torch.zeros(1), torch.zeros(1), torch.zeros(1, dtype=torch.long))


@pytest.fixture(scope="module")
def stage2_setup():
    from authface_core.pipeline.pipeline_authface_sdxl import encode_sdxl_prompts
    from authface_core.pipeline.tiny import build_tiny_components
    from authface_core.training.common import freeze
    from authface_core.training.train_controlnet import Stage2Models, new_controlnet

    components = build_tiny_components(seed=0)
    freeze(components["vae"], components["unet"], components["text_encoder"], components["text_encoder_2"])
    prompt_embeds, pooled = encode_sdxl_prompts(
        [""],
        (components["tokenizer"], components["tokenizer_2"]),
        (components["text_encoder"], components["text_encoder_2"]),
        torch.device("cpu"),
    )
    controlnet = new_controlnet(components["unet"], (8, 16, 16, 32))
    with torch.no_grad():  # past the zero-initialised outputs: as after a few steps, so gradients reach every layer
        zero_initialised = [
            *controlnet.controlnet_down_blocks,
            controlnet.controlnet_mid_block,
            controlnet.controlnet_cond_embedding.conv_out,
        ]
        for block in zero_initialised:
            block.weight.normal_(0, 0.02, generator=torch.Generator().manual_seed(3))
    models = Stage2Models(
        components["vae"], components["unet"], controlnet, components["scheduler"], prompt_embeds, pooled
    )
    return models, components


def _batch(seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    boxes = torch.tensor([[[12.0, 20.0, 52.0, 32.0], [22.0, 40.0, 42.0, 52.0]]]).repeat(2, 1, 1)
    return {
        "hq": torch.rand(2, 3, 64, 64, generator=generator) * 2 - 1,
        "lq": torch.rand(2, 3, 64, 64, generator=generator),
        "region_boxes": boxes,
    }


def _grads(module: torch.nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


def test_gradients_reach_the_controlnet_and_discriminators_never_the_frozen_parts(stage2_setup):
    from authface_core.training.train_controlnet import stage2_losses

    models, components = stage2_setup
    discriminators = FacialDiscriminators(in_channels=4, channels=(8, 16))
    config = FacialLossConfig(adversarial_weight=0.5)
    losses = stage2_losses(
        models,
        _batch(),
        discriminators=discriminators,
        loss_config=config,
        facial_loss_weight=1.0,
        weight_dtype=torch.float32,
        generator=torch.Generator().manual_seed(4),
    )
    # The facial loss alone already reaches the ControlNet (through x0_hat and the frozen UNet).
    losses.facial.total.backward(retain_graph=True)
    facial_grads = [g for g in _grads(models.controlnet) if g is not None]
    assert facial_grads and sum(float(g.abs().sum()) for g in facial_grads) > 0
    models.controlnet.zero_grad(set_to_none=True)

    losses.total.backward()
    controlnet_grads = _grads(models.controlnet)
    assert all(g is not None and float(g.abs().sum()) > 0 for g in controlnet_grads)
    frozen = [components[name] for name in ("unet", "vae", "text_encoder", "text_encoder_2")]
    assert all(g is None for module in frozen for g in _grads(module))
    assert all(g is None for g in _grads(discriminators))  # the generator loss never trains the critics

    snapshot = [g.clone() for g in controlnet_grads]
    d_loss = discriminator_loss(
        losses.predicted_latents,
        losses.target_latents,
        _batch()["region_boxes"],
        64,
        losses.weights,
        discriminators,
        config,
    )
    d_loss.backward()
    assert all(g is not None and float(g.abs().sum()) > 0 for g in _grads(discriminators))
    assert all(
        torch.equal(a, b) for a, b in zip(snapshot, _grads(models.controlnet), strict=True)
    )  # fake crops were detached
    assert all(g is None for module in frozen for g in _grads(module))
    models.controlnet.zero_grad(set_to_none=True)


def test_facial_loss_is_weighted_per_sample_by_time(stage2_setup):
    models, _ = stage2_setup
    discriminators = FacialDiscriminators(in_channels=4, channels=(8, 16))
    generator = torch.Generator().manual_seed(5)
    predicted, target = torch.randn(2, 4, 8, 8, generator=generator), torch.randn(2, 4, 8, 8, generator=generator)
    boxes = _batch()["region_boxes"]
    config = FacialLossConfig()
    full = facial_feature_loss(predicted, target, boxes, 64, torch.ones(2), discriminators, config).total
    first_only = facial_feature_loss(
        predicted, target, boxes, 64, torch.tensor([2.0, 0.0]), discriminators, config
    ).total
    second_only = facial_feature_loss(
        predicted, target, boxes, 64, torch.tensor([0.0, 2.0]), discriminators, config
    ).total
    torch.testing.assert_close(first_only + second_only, 2 * full)
    assert not torch.isclose(first_only, second_only)
    assert float(facial_feature_loss(target, target, boxes, 64, torch.ones(2), discriminators, config).style) == 0.0
    assert float(facial_feature_loss(predicted, target, boxes, 64, torch.ones(2), discriminators, config).style) > 0.0
