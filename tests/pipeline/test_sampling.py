"""Seeds, steps, schedulers and fidelity on the tiny model, measured."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from authface_core.pipeline.constants import SCHEDULER_NAMES
from authface_core.pipeline.pipeline_authface_sdxl import denoising_start_index

from .conftest import seeded

FIDELITIES = (0.0, 0.25, 0.5, 0.75, 1.0)
NUM_SEEDS = 4


def test_fixed_seed_gives_identical_output_twice(tiny_pipe, small_face):
    first = tiny_pipe(small_face[None], num_inference_steps=4, generator=seeded(7)).images
    second = tiny_pipe(small_face[None], num_inference_steps=4, generator=seeded(7)).images
    other_seed = tiny_pipe(small_face[None], num_inference_steps=4, generator=seeded(8)).images
    assert np.array_equal(first, second)
    assert np.abs(first.astype(int) - other_seed).mean() > 1.0


def test_more_steps_change_the_output(tiny_pipe, small_face):
    outputs = [tiny_pipe(small_face[None], num_inference_steps=n, generator=seeded(0)).images for n in (2, 4, 8)]
    assert not np.array_equal(outputs[0], outputs[1]) and not np.array_equal(outputs[1], outputs[2])


@pytest.mark.parametrize("scheduler", SCHEDULER_NAMES)
def test_every_scheduler_runs_and_is_deterministic(tiny_pipe, small_face, scheduler):
    loaded = tiny_pipe.scheduler
    runs = [
        tiny_pipe(small_face[None], num_inference_steps=3, fidelity=0.3, scheduler=scheduler, generator=seeded(1))
        for _ in range(2)
    ]
    assert np.array_equal(runs[0].images, runs[1].images) and runs[0].images.shape == (1, 64, 64, 3)
    assert tiny_pipe.scheduler is loaded  # the call built its own scheduler; the shared pipeline is unchanged


def test_the_scheduler_argument_picks_the_sampler(tiny_pipe, small_face):
    def run(scheduler):
        return tiny_pipe(small_face[None], num_inference_steps=3, scheduler=scheduler, generator=seeded(1)).images

    default, ddpm, dpmpp = run(None), run("ddpm"), run("dpmpp")
    assert type(tiny_pipe.scheduler).__name__ == "DDPMScheduler"  # the tiny checkpoint ships the released DDPM
    assert np.array_equal(default, ddpm)
    assert np.abs(ddpm.astype(int) - dpmpp).mean() > 1.0
    with pytest.raises(ValueError, match="scheduler must be one of"):
        run("lms")


@pytest.mark.parametrize(
    "steps, fidelity, skipped",
    [(50, 0.0, 0), (50, 0.5, 25), (50, 0.01, 1), (50, 1.0, 50), (20, 0.75, 15), (10, 0.9, 9), (3, 0.5, 2)],
)
def test_fidelity_skips_the_documented_number_of_steps(tiny_pipe, small_face, steps, fidelity, skipped):
    assert denoising_start_index(steps, fidelity) == skipped
    if steps <= 20:  # run the cheap cases end to end
        tiny_pipe(small_face[None], num_inference_steps=steps, fidelity=fidelity, generator=seeded(0))
        assert tiny_pipe.num_timesteps == steps - skipped


def test_fidelity_one_returns_the_input_through_the_vae(tiny_pipe, small_face):
    output = tiny_pipe(small_face[None], num_inference_steps=10, fidelity=1.0, color_fix="none").images
    round_trip = tiny_pipe.decode_latents(tiny_pipe.encode_image(tiny_pipe.prepare_control_image(small_face[None])))
    assert np.array_equal(output, round_trip)


def test_fidelity_is_monotone_in_distance_to_the_input(tiny_pipe, small_face):
    """Distance from the sampler's result to the input, in the latent space where fidelity acts, averaged
    over four noise draws: strictly decreasing, and zero at fidelity 1.

    Measured in latents because the tiny model's random VAE decoder maps every noisy latent to an
    equally random picture (its pixel distance to the input is ~50 grey levels at every fidelity);
    with trained weights the decoder is close to an inverse of the encoder.
    """
    faces = np.stack([small_face] * NUM_SEEDS)  # one batch: four independent noise draws
    input_latents = tiny_pipe.encode_image(tiny_pipe.prepare_control_image(faces))
    distances = []
    for fidelity in FIDELITIES:
        latents = tiny_pipe(
            faces, num_inference_steps=20, fidelity=fidelity, generator=seeded(3), output_type="latent"
        ).images
        distances.append((latents - input_latents).pow(2).mean(dim=(1, 2, 3)).sqrt().mean().item())
    assert all(a > b for a, b in zip(distances, distances[1:], strict=False)), distances
    assert distances[-1] == 0.0
    # the pure-noise start ends far from the input: at least 3x further than fidelity 0.5
    assert distances[0] > 3 * distances[2], distances


def test_pixel_outputs_differ_between_fidelity_values(tiny_pipe, small_face):
    outputs = [
        tiny_pipe(small_face[None], num_inference_steps=8, fidelity=f, generator=seeded(5)).images for f in FIDELITIES
    ]
    for a, b in zip(outputs, outputs[1:], strict=False):
        assert not np.array_equal(a, b)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"fidelity": 1.5}, "fidelity"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"num_inference_steps": 101}, "num_inference_steps"),
        ({"color_fix": "x"}, "color_fix"),
        ({"output_type": "pt"}, "output_type"),
        ({"prompt": ["a", "b"]}, "prompt"),
    ],
)
def test_pipeline_refuses_bad_arguments(tiny_pipe, small_face, bad, message):
    with pytest.raises(ValueError, match=message):
        tiny_pipe(small_face[None], **bad)


def test_step_callback_sees_each_step_and_can_replace_latents(tiny_pipe, small_face):
    seen = []

    def callback(pipe, step_index, timestep, tensors):
        seen.append((step_index, int(timestep), tuple(tensors["denoised"].shape)))
        return {"latents": torch.zeros_like(tensors["latents"])} if step_index == pipe.num_timesteps - 1 else {}

    zeroed = tiny_pipe(
        small_face[None],
        num_inference_steps=4,
        generator=seeded(0),
        color_fix="none",
        callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=["latents", "denoised"],
    ).images
    assert [s[0] for s in seen] == [0, 1, 2, 3] and seen[0][2] == (1, 4, 8, 8)
    assert [s[1] for s in seen] == sorted((s[1] for s in seen), reverse=True)
    assert np.array_equal(zeroed, tiny_pipe.decode_latents(torch.zeros(1, 4, 8, 8)))
