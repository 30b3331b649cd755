"""The engine of one process (``archive.engine.restore_in_order``): photos in input order, faces in the batches
their groups decide, a bounded queue ahead of the model, and each failure kept to its photo."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from authface_core.archive.engine import Batching, restore_in_order
from authface_core.archive.sources import ArchiveItem
from authface_core.errors import InvalidImageError
from authface_core.io import LoadedImage
from authface_core.restore import RestoreConfig, restore_image

from .conftest import FACE_SIZE, astronaut_variants

ALIGNED = RestoreConfig(aligned=True, face_size=FACE_SIZE, num_inference_steps=2, seed=3, check_identity=False)


class RecordingPipe:
    """The tiny pipeline, recording the size of every batch it is called with (and able to fail one call)."""

    def __init__(self, pipe, *, fail_call: int | None = None, first_call_delay: float = 0.0):
        self.pipe, self.fail_call, self.first_call_delay = pipe, fail_call, first_call_delay
        self.batches: list[int] = []
        self.loads_at_call: list[int] = []
        self.loads = 0
        self.is_smoke_test_model = pipe.is_smoke_test_model
        self.execution_device = pipe.execution_device

    def __call__(self, faces, **kwargs):
        self.loads_at_call.append(self.loads)
        self.batches.append(len(faces))
        if len(self.batches) == 1:
            time.sleep(self.first_call_delay)
        if len(self.batches) == self.fail_call:
            raise RuntimeError("the GPU fell over")
        return self.pipe(faces, **kwargs)


def items_of(photos: list[np.ndarray], pipe: RecordingPipe | None = None, delays=()) -> list[ArchiveItem]:
    lock = threading.Lock()

    def loader(index: int, photo: np.ndarray):
        def load() -> LoadedImage:
            if pipe is not None:
                with lock:
                    pipe.loads += 1
            if index < len(delays):
                time.sleep(delays[index])
            return LoadedImage(photo, None, f"photo-{index}", "RGB", "PNG")

        return load

    return [
        ArchiveItem(f"photo-{index}", Path(f"photo-{index}.png"), f"photo-{index}", loader(index, photo))
        for index, photo in enumerate(photos)
    ]


def run(items, pipe, config=ALIGNED, **batching):
    return list(restore_in_order(items, pipe, config, Batching(**batching), encode=lambda item, result, s: item.key))


def test_each_photo_alone_gets_the_pixels_restore_image_gives_it(tiny_pipe, astronaut):
    photos = astronaut_variants(astronaut, 3)
    outcomes = run(items_of(photos), tiny_pipe, group_size=1, workers=2, queue_size=2)
    assert [outcome.item.key for outcome in outcomes] == ["photo-0", "photo-1", "photo-2"]
    for index, outcome in enumerate(outcomes):
        alone = restore_image(photos[index], tiny_pipe, ALIGNED, noise_key=f"photo-{index}")
        assert np.array_equal(outcome.result.image, alone.image) and outcome.payload == f"photo-{index}"


@pytest.mark.parametrize("group_size, batches", [(1, [1, 1, 1, 1, 1]), (3, [2, 1, 2]), (5, [2, 2, 1])])
def test_batches_are_filled_across_photos_within_a_group(tiny_pipe, astronaut, group_size, batches):
    pipe = RecordingPipe(tiny_pipe)
    config = RestoreConfig(**{**vars(ALIGNED), "max_batch_size": 2})
    outcomes = run(items_of(astronaut_variants(astronaut, 5)), pipe, config, group_size=group_size)
    assert pipe.batches == batches and all(outcome.result is not None for outcome in outcomes)


def test_cross_photo_batches_keep_each_faces_noise(tiny_pipe, astronaut):
    """A face batched with other photos' faces gets its own noise: the same face restored in batches of one
    photo differs from it by rounding alone (batched matrix products), never by another draw of noise."""
    photos = astronaut_variants(astronaut, 4)
    config = RestoreConfig(**{**vars(ALIGNED), "max_batch_size": 4})
    alone = run(items_of(photos), tiny_pipe, config, group_size=1)
    together = run(items_of(photos), tiny_pipe, config, group_size=4)
    for a, b in zip(alone, together, strict=True):
        difference = np.abs(a.result.image.astype(int) - b.result.image.astype(int))
        assert difference.max() <= 2, a.item.key
    other_seed = run(items_of(photos), tiny_pipe, RestoreConfig(**{**vars(config), "seed": 4}), group_size=4)
    assert np.abs(other_seed[0].result.image.astype(int) - together[0].result.image.astype(int)).max() > 20


def test_the_queue_ahead_of_the_model_is_bounded(tiny_pipe, astronaut):
    pipe = RecordingPipe(tiny_pipe, first_call_delay=0.5)  # time enough for an unbounded queue to load them all
    items = items_of(astronaut_variants(astronaut, 8), pipe)
    run(items, pipe, group_size=1, workers=2, queue_size=2)
    # at the k-th model call (k from 0) photo k is being restored and at most 2 more have been loaded
    assert all(loads <= call + 1 + 2 for call, loads in enumerate(pipe.loads_at_call)), pipe.loads_at_call
    assert pipe.loads == 8


def test_outcomes_come_in_input_order_whatever_finishes_first(tiny_pipe, astronaut):
    items = items_of(astronaut_variants(astronaut, 4), delays=(0.4, 0.0, 0.0, 0.0))
    outcomes = run(items, tiny_pipe, group_size=1, workers=3, queue_size=4)
    assert [outcome.item.key for outcome in outcomes] == [item.key for item in items]


def test_failures_stay_with_their_photos(tiny_pipe, astronaut):
    photos = astronaut_variants(astronaut, 4)
    items = items_of(photos)

    def corrupt() -> LoadedImage:
        raise InvalidImageError("photo-1", "corrupt PNG image")

    items[1] = ArchiveItem("photo-1", Path("photo-1.png"), "photo-1", corrupt)
    pipe = RecordingPipe(tiny_pipe, fail_call=2)  # photo-2's batch (photo-1 never reaches the model)
    outcomes = run(items, pipe, group_size=1)
    assert "corrupt PNG image" in str(outcomes[1].error)
    assert str(outcomes[2].error) == "the GPU fell over"
    assert outcomes[0].result is not None and outcomes[3].result is not None


def test_a_photo_without_a_face_is_an_outcome_not_an_error(tiny_pipe, astronaut):
    whole = RestoreConfig(face_size=FACE_SIZE, num_inference_steps=2, seed=3, check_identity=False)
    photos = [np.full((120, 160, 3), 128, np.uint8), astronaut]
    outcomes = run(items_of(photos), tiny_pipe, whole)
    assert "no face detected" in outcomes[0].no_face and outcomes[0].error is None
    assert outcomes[1].result is not None and len(outcomes[1].result.faces) >= 1


def test_a_run_needs_one_seed(tiny_pipe, astronaut):
    with pytest.raises(ValueError, match="needs a seed"):
        run(items_of([astronaut]), tiny_pipe, RestoreConfig(**{**vars(ALIGNED), "seed": None}))
