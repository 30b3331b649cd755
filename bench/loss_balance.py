"""The balance of Stage II's loss terms at initialisation: each term's gradient on the predicted clean latent.

The time-aware facial loss acts on x0_hat, the clean latent predicted from the UNet's output; the
diffusion loss acts on the UNet's output itself. Expressing both through x0_hat (eps_hat =
(x_t - sqrt(a) x0_hat) / sqrt(1 - a)) puts their gradients side by side. The setting is SDXL's at
512 px: latents (8, 4, 64, 64) of unit variance, timesteps spread evenly over the DDPM schedule, a
UNet error that gives a diffusion loss of 0.1, the eyes and mouth boxes of an FFHQ-aligned face,
freshly initialised discriminators and the Stage II defaults (lambda, style and GAN weights). The
band each term must lie in, and why, is in ``authface_core/training/losses.py``.

    python bench/loss_balance.py            # prints the table
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from authface_core.training.losses import FacialDiscriminators, facial_feature_loss, time_weight  # noqa: E402
from authface_core.training.settings import FacialLossSettings  # noqa: E402

BATCH, LATENT_SIZE, IMAGE_SIZE = 8, 64, 512
PREDICTION_ERROR = 0.1**0.5  # UNet error std giving a diffusion loss (eps MSE) of 0.1
# Eyes and mouth boxes of an FFHQ-aligned face, as fractions of its side (x0, y0, x1, y1).
EYES_BOX, MOUTH_BOX = (0.27, 0.40, 0.73, 0.55), (0.35, 0.66, 0.65, 0.80)
# The band (as a fraction of the diffusion loss's gradient) of losses.py.
BAND = (1 / 100, 1 / 2)


def gradient_norms(facial: FacialLossSettings, seed: int = 0) -> dict[str, float]:
    """L2 norms of the gradients on x0_hat of the diffusion loss and of each weighted facial term."""
    from diffusers import DDPMScheduler

    from authface_core.pipeline.tiny import SDXL_SCHEDULER_CONFIG

    scheduler = DDPMScheduler(**SDXL_SCHEDULER_CONFIG)
    T = scheduler.config.num_train_timesteps
    generator = torch.Generator().manual_seed(seed)
    shape = (BATCH, 4, LATENT_SIZE, LATENT_SIZE)
    clean, noise = torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)
    timesteps = ((torch.arange(BATCH) + 0.5) * T / BATCH).long()  # one per eighth of the schedule
    alpha_bar = scheduler.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    noisy = alpha_bar.sqrt() * clean + (1 - alpha_bar).sqrt() * noise
    predicted_noise = noise + PREDICTION_ERROR * torch.randn(shape, generator=generator)
    predicted = ((noisy - (1 - alpha_bar).sqrt() * predicted_noise) / alpha_bar.sqrt()).requires_grad_(True)

    diffusion = torch.nn.functional.mse_loss((noisy - alpha_bar.sqrt() * predicted) / (1 - alpha_bar).sqrt(), noise)
    boxes = torch.tensor([EYES_BOX, MOUTH_BOX]).mul(IMAGE_SIZE).expand(BATCH, 2, 4)
    weights = time_weight(timesteps, T, facial.time_weight_schedule, facial.time_weight_m, facial.time_weight_s)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        discriminators = FacialDiscriminators(in_channels=4)

    def term(style_weight: float, adversarial_weight: float) -> torch.Tensor:
        loss = facial_feature_loss(
            predicted,
            clean,
            boxes,
            IMAGE_SIZE,
            weights,
            discriminators,
            style_weight=style_weight,
            adversarial_weight=adversarial_weight,
        )
        return facial.facial_loss_weight * loss.total

    def norm(loss: torch.Tensor) -> float:
        return float(torch.autograd.grad(loss, predicted, retain_graph=True)[0].norm())

    return {
        "diffusion": norm(diffusion),
        "style": norm(term(facial.style_loss_weight, 0.0)),
        "adversarial": norm(term(0.0, facial.adversarial_loss_weight)),
    }


def main() -> None:
    facial = FacialLossSettings()
    print(
        f"Gradient L2 norm on x0_hat at initialisation, lambda {facial.facial_loss_weight}, style weight "
        f"{facial.style_loss_weight}, GAN weight {facial.adversarial_loss_weight}; band {BAND[0]:g}-{BAND[1]:g}\n"
    )
    print("| seed | diffusion | style (ratio) | adversarial (ratio) |\n|---|---|---|---|")
    for seed in range(3):
        norms = gradient_norms(facial, seed)
        ratios = {name: norms[name] / norms["diffusion"] for name in ("style", "adversarial")}
        print(
            f"| {seed} | {norms['diffusion']:.3g} | {norms['style']:.3g} ({ratios['style']:.3g}) | "
            f"{norms['adversarial']:.3g} ({ratios['adversarial']:.3g}) |"
        )


if __name__ == "__main__":
    main()
