"""restore_image end to end on the tiny model: settings, the aligned path, whole photos, progress."""

from __future__ import annotations

import numpy as np
import pytest

from authface_core.errors import InvalidImageError, NoFaceDetectedError
from authface_core.io import load_image
from authface_core.restore import (
    FAST_PRESET,
    NO_FACE_IN_CROP,
    RestoreConfig,
    StepProgress,
    check_output_size,
    comparison_images,
    describe_progress,
    estimate_seconds_left,
    finish_restoration,
    largest_upscale,
    prepare_restoration,
    restore_faces,
    restore_image,
)

from .conftest import FACE_SIZE

TINY = dict(face_size=FACE_SIZE, num_inference_steps=4, check_identity=False)
WHOLE_PHOTO = "whole/diffbir_Harry_Potter.jpg"  # 480x293, three faces


@pytest.mark.parametrize(
    "field, value",
    [
        ("num_inference_steps", 0),
        ("num_inference_steps", 101),
        ("fidelity", -0.1),
        ("fidelity", 1.01),
        ("scheduler", "lms"),
        ("color_fix", "hist"),
        ("face_size", 100),
        ("face_size", 16),
        ("upscale", 5),
        ("upscale", 1.5),
        ("face_selection", "left"),
        ("min_face_size", -1),
        ("seed", -3),
        ("preview_every", -1),
        ("max_batch_size", 0),
        ("guidance_scale", -1.0),
    ],
)
def test_config_refuses_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        RestoreConfig(**{field: value})


def test_fast_preset_is_a_fast_scheduler_with_fewer_steps():
    assert FAST_PRESET.scheduler != "ddpm" and 20 <= FAST_PRESET.num_inference_steps <= 25


def test_aligned_face_in_restored_face_out(tiny_pipe, astronaut):
    config = RestoreConfig(aligned=True, upscale=2, seed=11, **TINY)
    result = restore_image(astronaut, tiny_pipe, config)  # 512 px input, restored at the 64 px face size
    assert result.image.shape == (2 * 512, 2 * 512, 3) and result.image.dtype == np.uint8  # its own size, x2
    assert result.smoke_test_model and result.config == config and len(result.faces) == 1
    face = result.faces[0]
    assert face.box is None and face.affine is None and face.input_face.shape == face.restored_face.shape == (64, 64, 3)
    again = restore_image(astronaut, tiny_pipe, config)
    assert np.array_equal(again.image, result.image)
    before, after = comparison_images(astronaut, result)
    assert before.shape == after.shape == result.image.shape and after is result.image


@pytest.mark.parametrize("side, upscale, expected", [(40, 1, FACE_SIZE), (FACE_SIZE, 2, 2 * FACE_SIZE), (100, 3, 300)])
def test_aligned_crop_comes_back_at_its_own_size_never_below_the_face_size(
    tiny_pipe, small_face, side, upscale, expected
):
    import cv2

    crop = cv2.resize(small_face, (side, side), interpolation=cv2.INTER_AREA)
    result = restore_image(crop, tiny_pipe, RestoreConfig(aligned=True, upscale=upscale, **TINY))
    assert result.image.shape == (expected, expected, 3)


def test_aligned_mode_refuses_an_image_that_is_not_square(tiny_pipe):
    wide = np.full((120, 160, 3), 128, np.uint8)
    with pytest.raises(InvalidImageError, match=r"aligned face crop is square, this image is 160x120"):
        restore_image(wide, tiny_pipe, RestoreConfig(aligned=True, **TINY))
    nearly = np.full((100, 101, 3), 128, np.uint8)  # within the tolerance
    assert prepare_restoration(nearly, RestoreConfig(aligned=True, **TINY)).faces.shape == (1, 64, 64, 3)


def test_an_aligned_crop_without_a_face_is_restored_with_a_note(astronaut):
    cup = np.full((200, 200, 3), 90, np.uint8)
    cup[60:140, 50:150] = 230  # nothing like a face
    assert prepare_restoration(cup, RestoreConfig(aligned=True, **TINY)).notes == [NO_FACE_IN_CROP]
    face = astronaut[0:300, 120:420]
    assert prepare_restoration(face, RestoreConfig(aligned=True, **TINY)).notes == []


def test_preparing_the_model_and_finishing_apart_is_restore_image(tiny_pipe, astronaut):
    """What a ZeroGPU Space does (the model's step alone on the GPU) gives what one call gives."""
    config = RestoreConfig(seed=5, **TINY)
    prepared = prepare_restoration(astronaut, config)
    restored = restore_faces(tiny_pipe, prepared.faces, prepared.config)
    apart = finish_restoration(prepared, restored, smoke_test_model=True)
    together = restore_image(astronaut, tiny_pipe, config)
    assert np.array_equal(apart.image, together.image) and len(apart.faces) == len(together.faces) == 1
    with pytest.raises(ValueError, match="restored faces of shape"):
        finish_restoration(prepared, restored[:, :32], smoke_test_model=True)


def two_faces(scale: float, astronaut) -> np.ndarray:
    """A small face on the left and a large one on the right (dlib finds the large one first), at ``scale``."""
    import cv2

    face = astronaut[0:300, 100:400]
    canvas = np.full((600, 1400, 3), 200, np.uint8)
    canvas[200:400, 100:300] = cv2.resize(face, (200, 200), interpolation=cv2.INTER_AREA)
    canvas[50:500, 850:1300] = cv2.resize(face, (450, 450), interpolation=cv2.INTER_AREA)
    size = (round(1400 * scale), round(600 * scale))
    return cv2.resize(canvas, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LANCZOS4)


@pytest.mark.parametrize("scale", [0.6, 1.0, 2.0])
def test_faces_are_numbered_left_to_right_at_any_resolution(astronaut, scale):
    prepared = prepare_restoration(two_faces(scale, astronaut), RestoreConfig(**TINY))
    centres = [box.center[0] / scale for box in prepared.boxes]
    assert len(centres) == 2 and centres[0] < 700 < centres[1]


def test_a_grayscale_photo_comes_back_grayscale_and_says_so(tiny_pipe, astronaut):
    from authface_core.pipeline.color_fix import to_luminance

    gray = to_luminance(astronaut)
    result = restore_image(gray, tiny_pipe, RestoreConfig(upscale=2, **TINY))
    image = result.image.astype(int)
    assert result.grayscale and (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    face = result.faces[0].restored_face
    assert (face[..., 0] == face[..., 2]).all()
    colour = restore_image(astronaut, tiny_pipe, RestoreConfig(**TINY))
    assert not colour.grayscale and np.abs(colour.image[..., 0].astype(int) - colour.image[..., 2]).max() > 50


@pytest.mark.parametrize(
    "size, aligned, upscale, expected",
    [((4200, 700), False, 4, 4), ((8000, 1400), False, 3, 2), ((9000, 6000), False, 1, 0), ((1000, 1000), True, 4, 4)],
)
def test_largest_upscale_within_a_pixel_cap(size, aligned, upscale, expected):
    cap = 50_000_000
    config = RestoreConfig(aligned=aligned, upscale=upscale, face_size=512)
    assert largest_upscale(size, config, cap) == expected
    fits = size[0] * size[1] * upscale**2 <= cap if not aligned else (max(size) * upscale) ** 2 <= cap
    if fits:
        check_output_size(size, config, cap)
    else:
        advice = f"the largest upscale that fits is {expected}" if expected else "even upscale 1 does not fit"
        with pytest.raises(ValueError, match=rf"^upscale {upscale} would make .*{advice}"):
            check_output_size(size, config, cap)


def test_comparison_is_the_input_and_result_at_one_screen_size(tiny_pipe, astronaut):
    import cv2

    result = restore_image(astronaut, tiny_pipe, RestoreConfig(upscale=3, **TINY))  # 1536 x 1536
    before, after = comparison_images(astronaut, result, max_side=600)
    assert before.shape == after.shape == (600, 600, 3)
    assert np.array_equal(after, cv2.resize(result.image, (600, 600), interpolation=cv2.INTER_AREA))
    assert np.array_equal(before, cv2.resize(astronaut, (600, 600), interpolation=cv2.INTER_LANCZOS4))


@pytest.mark.parametrize("steps, fidelity, expected", [(50, 0.0, 50), (50, 0.5, 25), (50, 1.0, 0), (10, 0.9, 1)])
def test_denoising_steps_are_the_ones_fidelity_leaves(steps, fidelity, expected):
    assert RestoreConfig(num_inference_steps=steps, fidelity=fidelity).denoising_steps == expected


def test_no_seed_draws_one_and_reports_it(tiny_pipe, small_face):
    config = RestoreConfig(aligned=True, seed=None, **TINY)
    first = restore_image(small_face, tiny_pipe, config)
    assert isinstance(first.config.seed, int)
    replay = restore_image(small_face, tiny_pipe, first.config)
    assert np.array_equal(first.image, replay.image)


def test_progress_with_candidates_counts_candidates_not_faces(tiny_pipe, small_face):
    events: list[StepProgress] = []
    config = RestoreConfig(aligned=True, candidates=2, **{**TINY, "num_inference_steps": 2})
    restore_image(small_face, tiny_pipe, config, progress_callback=events.append)
    assert {(e.num_faces, e.candidates) for e in events} == {(2, 2)}
    assert describe_progress(events[0], config.max_batch_size) == "Candidates 1-2 of 2 (1 face x 2): step 1 of 2"


def test_progress_reports_every_step_with_previews_every_k(tiny_pipe, small_face):
    events: list[StepProgress] = []
    restore_image(
        small_face,
        tiny_pipe,
        RestoreConfig(aligned=True, preview_every=3, **{**TINY, "num_inference_steps": 7}),
        progress_callback=events.append,
    )
    assert [e.step for e in events] == list(range(1, 8)) and {e.num_steps for e in events} == {7}
    assert describe_progress(events[0], batch_size=4) == "Face 1 of 1: step 1 of 7"
    with_preview = [e.step for e in events if e.preview is not None]
    assert with_preview == [3, 6, 7]
    preview = events[-1].preview
    assert preview.shape == (FACE_SIZE // 8, FACE_SIZE // 8, 3) and preview.dtype == np.uint8 and preview.std() > 0


def test_threads_sharing_one_pipeline_get_what_they_would_one_after_the_other(tiny_pipe, small_face):
    """Two restorations with different schedulers, steps, fidelity and guidance on one pipeline, run by two
    threads held in lockstep for their first steps, give the images and progress they give run in turn."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    configs = [
        RestoreConfig(aligned=True, scheduler="ddpm", seed=1, **{**TINY, "num_inference_steps": 5}),
        RestoreConfig(
            aligned=True, scheduler="dpmpp", seed=2, fidelity=0.25, guidance_scale=1.0, **TINY
        ),  # 3 of 4 steps
    ]
    lockstep_steps = 3

    def run(config, barrier=None):
        events = []

        def on_step(progress: StepProgress):
            events.append((progress.step, progress.num_steps))
            if barrier is not None and progress.step <= lockstep_steps:
                barrier.wait(timeout=60)  # both threads are inside their denoising loops at once

        try:
            return restore_image(small_face, tiny_pipe, config, progress_callback=on_step).image, events
        except Exception:
            if barrier is not None:
                barrier.abort()  # release the other thread at once; its error is then BrokenBarrierError
            raise

    in_turn = [run(config) for config in configs]
    barrier = threading.Barrier(len(configs))
    with ThreadPoolExecutor(len(configs)) as pool:
        futures = [pool.submit(run, config, barrier) for config in configs]
        errors = [future.exception(timeout=300) for future in futures]
    causes = [error for error in errors if error is not None and not isinstance(error, threading.BrokenBarrierError)]
    if any(errors):
        raise causes[0] if causes else errors[0]
    together = [future.result() for future in futures]
    assert [events for _, events in in_turn] == [[(s, 5) for s in range(1, 6)], [(s, 3) for s in range(1, 4)]]
    assert not np.array_equal(in_turn[0][0], in_turn[1][0])
    for (image, events), (threaded_image, threaded_events) in zip(in_turn, together, strict=True):
        assert threaded_events == events
        assert np.array_equal(threaded_image, image)


def test_identity_check_attaches_an_authenticity_report(tiny_pipe, small_face):
    from authface_core.authenticity import AuthenticityReport

    result = restore_image(small_face, tiny_pipe, RestoreConfig(aligned=True, **{**TINY, "check_identity": True}))
    assert isinstance(result.faces[0].authenticity, AuthenticityReport)


def test_image_without_faces_suggests_aligned_mode(tiny_pipe):
    flat = np.full((120, 160, 3), 128, np.uint8)
    with pytest.raises(NoFaceDetectedError, match="no face detected. Aligned mode restores an image that is already"):
        restore_image(flat, tiny_pipe, RestoreConfig(**TINY))


def test_bad_image_array_is_refused(tiny_pipe):
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        restore_image(np.zeros((10, 10), np.float32), tiny_pipe, RestoreConfig(aligned=True, **TINY))


@pytest.fixture(scope="module")
def whole_photo(shared_faces):
    return load_image(shared_faces / WHOLE_PHOTO)


def far_from_faces(result, shape, scale: int, margin: int = 4) -> np.ndarray:
    """(H, W) bool: pixels outside every face's pasted footprint (plus a margin), in output pixels."""
    from authface_core.faces.align import crop_footprint
    from authface_core.faces.blend import upscale_affine

    outside = np.ones(shape[:2], bool)
    for face in result.faces:
        x0, y0, x1, y1 = crop_footprint(upscale_affine(face.affine, scale), result.config.face_size, margin=margin)
        outside[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = False
    return outside


def test_whole_photo_keeps_size_and_leaves_the_rest_untouched(tiny_pipe, whole_photo):
    config = RestoreConfig(max_batch_size=2, **TINY)  # three faces: two batches
    result = restore_image(whole_photo, tiny_pipe, config)
    rgb = whole_photo.rgb
    assert result.image.shape == rgb.shape and len(result.faces) == 3 and not result.skipped
    outside = far_from_faces(result, rgb.shape, scale=1)
    assert 0.3 < outside.mean() < 0.95
    assert np.array_equal(result.image[outside], rgb[outside])
    changed_inside = np.abs(result.image.astype(int) - rgb)[~outside].mean()
    assert changed_inside > 5  # the faces were replaced (by the tiny model's noise-like output)
    for face in result.faces:
        assert face.box is not None and face.input_face.shape == face.restored_face.shape == (64, 64, 3)


def test_whole_photo_upscaled_changes_only_by_resampling_away_from_faces(tiny_pipe, whole_photo):
    from authface_core.faces.blend import upscale_image

    result = restore_image(whole_photo, tiny_pipe, RestoreConfig(upscale=2, face_selection="largest", **TINY))
    expected = upscale_image(whole_photo.rgb, 2)
    assert result.image.shape == expected.shape == (2 * whole_photo.rgb.shape[0], 2 * whole_photo.rgb.shape[1], 3)
    assert len(result.faces) == 1 and len(result.skipped) == 2
    assert all(reason == "not the largest face" for _, reason in result.skipped)
    outside = far_from_faces(result, expected.shape, scale=2)
    assert np.array_equal(result.image[outside], expected[outside])
    assert np.array_equal(comparison_images(whole_photo, result)[0], expected)


@pytest.mark.parametrize(
    "face_index, num_faces, batch_size, candidates, expected",
    [
        (0, 6, 4, 1, "Faces 1-4 of 6: step 12 of 50"),
        (4, 6, 4, 1, "Faces 5-6 of 6: step 12 of 50"),
        (2, 3, 2, 1, "Face 3 of 3: step 12 of 50"),
        (0, 1, 1, 1, "Face 1 of 1: step 12 of 50"),
        (0, 3, 4, 3, "Candidates 1-3 of 3 (1 face x 3): step 12 of 50"),
        (4, 6, 4, 3, "Candidates 5-6 of 6 (2 faces x 3): step 12 of 50"),
    ],
)
def test_progress_names_the_faces_of_the_batch(face_index, num_faces, batch_size, candidates, expected):
    step = StepProgress(face_index, num_faces, step=12, num_steps=50, preview=None, candidates=candidates)
    assert describe_progress(step, batch_size) == expected


def test_progress_counts_time_across_batches():
    second_batch = StepProgress(face_index=4, num_faces=6, step=10, num_steps=50, preview=None)
    # two batches of 50 steps; 60 of the 100 done in 90 s leave 40 steps at 1.5 s
    assert estimate_seconds_left(second_batch, batch_size=4, elapsed_s=90.0) == pytest.approx(60.0)
    assert (
        describe_progress(second_batch, 4, elapsed_s=90.0)
        == "Faces 5-6 of 6: step 10 of 50, 1:30 elapsed, about 1:00 left"
    )
    first = StepProgress(face_index=0, num_faces=1, step=0, num_steps=50, preview=None)
    assert estimate_seconds_left(first, 1, 3.0) is None


def test_min_face_size_skips_small_faces_with_a_reason(tiny_pipe, whole_photo):
    with pytest.raises(NoFaceDetectedError, match="smaller than the minimum"):
        restore_image(whole_photo, tiny_pipe, RestoreConfig(min_face_size=10_000, **TINY))
