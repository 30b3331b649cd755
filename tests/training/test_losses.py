"""The time-aware latent facial feature loss: w(t) and its t convention, Gram/style loss, R1, region crops, the
balance of the terms, gradient flow, and what a Stage II step feeds the ControlNet."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import integrate

from authface_core.training.losses import (
    FacialDiscriminators,
    crop_regions,
    discriminator_loss,
    facial_feature_loss,
    gram_matrix,
    logit_normal_weight,
    r1_penalty,
    style_loss,
    time_weight,
)
from authface_core.training.settings import DiffusionLossSettings, FacialLossSettings

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
    weights = time_weight(timesteps, 1000)
    assert float(weights.mean()) == pytest.approx(1.0, abs=1e-3)  # same average as the constant ablation
    assert weights[500] > weights[100] > weights[10] and weights[500] > weights[900] > weights[990]
    assert torch.equal(time_weight(timesteps, 1000, "constant"), torch.ones(1000))
    with pytest.raises(ValueError, match="schedule"):
        time_weight(timesteps, 1000, "cosine")


@pytest.mark.parametrize("m", [1.0, -0.6])
def test_t_grows_with_the_ddpm_index_so_m_moves_the_median_index_to_sigmoid_m(m):
    """t = (index + 0.5) / T, larger t noisier (as in SD3): half the weight lies below index T * sigmoid(m)."""
    weights = time_weight(torch.arange(1000), 1000, m=m, s=1.0).double()
    median_index = int(torch.searchsorted(weights.cumsum(0) / weights.sum(), 0.5))
    assert median_index == pytest.approx(1000 / (1 + math.exp(-m)), abs=2)


def test_documented_snr_of_the_time_weight_convention():
    """losses.py and the time_weight_m help: index 500 has SNR 0.38; SNR 1 sits at index 354, m = -0.60."""
    from diffusers import DDPMScheduler

    from authface_core.pipeline.tiny import SDXL_SCHEDULER_CONFIG

    alpha_bar = DDPMScheduler(**SDXL_SCHEDULER_CONFIG).alphas_cumprod.double()
    snr = alpha_bar / (1 - alpha_bar)
    assert float(snr[500]) == pytest.approx(0.38, abs=0.005)
    snr_one = int((snr - 1).abs().argmin())
    assert snr_one == 354 and math.log((snr_one + 0.5) / (1000 - snr_one - 0.5)) == pytest.approx(-0.60, abs=0.005)


def test_gram_matrix_matches_its_definition():
    features = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    flat = features.reshape(2, 3, 20)
    expected = torch.einsum("bci,bdi->bcd", flat, flat) / (3 * 4 * 5)
    torch.testing.assert_close(gram_matrix(features), expected)


def test_style_loss_is_the_mean_absolute_gram_difference():
    """GFPGAN's component style loss: an L1 distance between normalised Gram matrices, per sample and level."""
    generator = torch.Generator().manual_seed(7)
    a = [torch.randn(2, 8, 6, 6, generator=generator), torch.randn(2, 16, 3, 3, generator=generator)]
    b = [torch.randn(2, 8, 6, 6, generator=generator), torch.randn(2, 16, 3, 3, generator=generator)]
    expected = []
    for p, t in zip(a, b, strict=True):
        flat_p, flat_t = p.flatten(2), t.flatten(2)
        size = p[0].numel()
        gram_p = torch.einsum("bci,bdi->bcd", flat_p, flat_p) / size
        gram_t = torch.einsum("bci,bdi->bcd", flat_t, flat_t) / size
        expected.append((gram_p - gram_t).abs().flatten(1).mean(dim=1))
    torch.testing.assert_close(style_loss(a, b), torch.stack(expected).mean(dim=0))


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


def test_r1_penalty_is_the_squared_input_gradient_of_the_discriminator():
    """For D(x) = <w, x> the gradient is w whatever x, so the penalty is |w|^2 per sample, summed over inputs."""
    generator = torch.Generator().manual_seed(8)
    w1, w2 = torch.randn(4, 3, 5, generator=generator), torch.randn(4, 2, 2, generator=generator)
    x1 = torch.randn(6, 4, 3, 5, generator=generator, requires_grad=True)
    x2 = torch.randn(6, 4, 2, 2, generator=generator, requires_grad=True)
    logits = [(x1 * w1).flatten(1).sum(1), (x2 * w2).flatten(1).sum(1)]
    penalty = r1_penalty(logits, [x1, x2])
    torch.testing.assert_close(penalty, w1.pow(2).sum() + w2.pow(2).sum())


def test_discriminator_loss_adds_r1_and_it_trains_the_discriminators():
    generator = torch.Generator().manual_seed(9)
    predicted, target = torch.randn(2, 4, 8, 8, generator=generator), torch.randn(2, 4, 8, 8, generator=generator)
    boxes = torch.tensor([[[12.0, 20.0, 52.0, 32.0], [22.0, 40.0, 42.0, 52.0]]]).repeat(2, 1, 1)
    discriminators = FacialDiscriminators(in_channels=4, channels=(8, 16))
    plain = discriminator_loss(predicted, target, boxes, 64, torch.ones(2), discriminators)
    assert plain.r1 is None and torch.equal(plain.total.detach(), plain.adversarial)
    with_r1 = discriminator_loss(predicted, target, boxes, 64, torch.ones(2), discriminators, r1_gamma=10.0)
    assert float(with_r1.r1) > 0
    torch.testing.assert_close(with_r1.total.detach(), with_r1.adversarial + 5.0 * with_r1.r1)
    r1_only = torch.autograd.grad(with_r1.total - plain.total, list(discriminators.parameters()), allow_unused=True)
    assert any(g is not None and float(g.abs().sum()) > 0 for g in r1_only)  # the penalty reaches the weights


def test_each_facial_term_is_within_the_documented_band_of_the_diffusion_loss():
    """losses.py's band: at initialisation on SDXL-shaped latents, each weighted facial term's gradient on x0_hat
    is 1/100 to 1/2 of the diffusion loss's (the old squared Gram loss was 4e-7 of it)."""
    bench = _load_bench("loss_balance")
    low, high = bench.BAND
    assert (low, high) == (1 / 100, 1 / 2)
    for seed in range(2):
        norms = bench.gradient_norms(FacialLossSettings(), seed)
        for term in ("style", "adversarial"):
            assert low <= norms[term] / norms["diffusion"] <= high, (seed, term, norms)


def _load_bench(name: str):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def stage2_setup():
    from authface_core.pipeline.pipeline_authface_sdxl import encode_sdxl_prompts
    from authface_core.pipeline.tiny import build_tiny_components
    from authface_core.training.run import freeze
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
    losses = stage2_losses(
        models,
        _batch(),
        discriminators=discriminators,
        facial=FacialLossSettings(facial_loss_weight=1.0, adversarial_loss_weight=0.5),
        diffusion=DiffusionLossSettings(),
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
    ).total
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
    weights = {"style_weight": 200.0, "adversarial_weight": 1.0}

    def loss(pred, time_weights):
        return facial_feature_loss(pred, target, boxes, 64, time_weights, discriminators, **weights)

    full = loss(predicted, torch.ones(2)).total
    first_only = loss(predicted, torch.tensor([2.0, 0.0])).total
    second_only = loss(predicted, torch.tensor([0.0, 2.0])).total
    torch.testing.assert_close(first_only + second_only, 2 * full)
    assert not torch.isclose(first_only, second_only)
    assert float(loss(target, torch.ones(2)).style) == 0.0 and float(loss(predicted, torch.ones(2)).style) > 0.0


def test_stage2_step_feeds_the_controlnet_and_unet_the_sdxl_time_ids_of_the_face(stage2_setup):
    """SDXL micro-conditioning of an aligned R x R face: original (R, R), crop (0, 0), target (R, R), for both
    the trained ControlNet and the frozen UNet."""
    from authface_core.training.train_controlnet import stage2_losses

    models, _ = stage2_setup
    seen = []

    def record(module, args, kwargs):
        seen.append(kwargs["added_cond_kwargs"]["time_ids"].clone())

    handles = [m.register_forward_pre_hook(record, with_kwargs=True) for m in (models.controlnet, models.unet)]
    try:
        with torch.no_grad():
            stage2_losses(
                models,
                _batch(),
                discriminators=None,
                facial=FacialLossSettings(),
                diffusion=DiffusionLossSettings(),
                weight_dtype=torch.float32,
            )
    finally:
        for handle in handles:
            handle.remove()
    expected = torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]] * 2)
    assert len(seen) == 2 and all(torch.equal(time_ids, expected) for time_ids in seen)


def test_min_snr_and_offset_noise_change_the_stage2_loss_as_configured(stage2_setup):
    from authface_core.training.train_controlnet import stage2_losses

    models, _ = stage2_setup

    def diffusion(**settings) -> float:
        with torch.no_grad():
            return stage2_losses(
                models,
                _batch(),
                discriminators=None,
                facial=FacialLossSettings(),
                diffusion=DiffusionLossSettings(**settings),
                weight_dtype=torch.float32,
                generator=torch.Generator().manual_seed(11),
            ).diffusion.item()

    plain = diffusion()
    assert diffusion(snr_gamma=1e9) == pytest.approx(plain, rel=1e-6)  # gamma above every SNR: weights of 1
    assert diffusion(snr_gamma=1e-3) < 0.5 * plain  # a small gamma shrinks the weight of every timestep
    assert diffusion(noise_offset=0.5) != pytest.approx(plain, rel=1e-3)
