"""Training data: facial regions on real aligned faces, per-step examples, dataset sources."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from authface_core.degradations import PRESETS
from authface_core.faces.align import FFHQ_TEMPLATE_512
from authface_core.io import load_rgb
from authface_core.training.data import (
    find_face,
    load_face_dataset,
    region_boxes,
    resolve_image_column,
    sdxl_resize_and_crop,
    stage2_example,
)

from .conftest import TRAINING_FACES

# Independent of dlib: where FFHQ alignment puts the eye centres and the mouth (mean of its corners) at 512 px.
TEMPLATE_EYES = FFHQ_TEMPLATE_512[:2]
TEMPLATE_MOUTH = FFHQ_TEMPLATE_512[3:].mean(axis=0)


def _inside(box: np.ndarray, point: np.ndarray) -> bool:
    return box[0] <= point[0] < box[2] and box[1] <= point[1] < box[3]


@pytest.mark.parametrize("name", TRAINING_FACES + ("ddnm_00234.png",))
def test_region_boxes_land_on_the_eyes_and_mouth_of_aligned_faces(shared_faces, name):
    face, landmarks = find_face(load_rgb(shared_faces / "hq_aligned" / name), align=False, face_size=512)
    eyes, mouth = region_boxes(landmarks, 512)
    # Every eye landmark (36-47) lies in the eyes box, every lip landmark (48-67) in the mouth box ...
    assert all(_inside(eyes, p) for p in landmarks[36:48]) and all(_inside(mouth, p) for p in landmarks[48:68])
    # ... neither box holds the other's landmarks or the chin (8), and the eyes sit above the mouth ...
    assert not any(_inside(eyes, p) for p in landmarks[48:68]) and not any(_inside(mouth, p) for p in landmarks[36:48])
    assert not _inside(mouth, landmarks[8]) and not _inside(eyes, landmarks[8]) and eyes[1] < mouth[1]
    # ... and they agree with the FFHQ template, which knows nothing of this face's landmarks.
    assert all(_inside(eyes, p) for p in TEMPLATE_EYES) and _inside(mouth, TEMPLATE_MOUTH)
    assert (eyes[2] - eyes[0]) * (eyes[3] - eyes[1]) < 0.15 * 512**2 and (mouth[2] - mouth[0]) * (
        mouth[3] - mouth[1]
    ) < 0.10 * 512**2


def test_stage2_example_scales_and_mirrors_boxes_with_the_faces(shared_faces):
    from PIL import Image

    face, landmarks = find_face(load_rgb(shared_faces / "hq_aligned" / TRAINING_FACES[0]), align=False, face_size=256)
    example = {"face": Image.fromarray(face), "landmarks": landmarks.tolist()}
    make = lambda seed, flip: stage2_example(  # noqa: E731
        example, np.random.default_rng(seed), resolution=64, degradation=PRESETS["gfpgan"], random_flip=flip
    )
    plain = make(0, False)
    assert plain["hq"].shape == plain["lq"].shape == (3, 64, 64) and plain["region_boxes"].shape == (2, 4)
    assert -1.0 <= float(plain["hq"].min()) and float(plain["hq"].max()) <= 1.0 and 0.0 <= float(plain["lq"].min())
    eyes, mouth = plain["region_boxes"].numpy()
    assert all(_inside(eyes, p * 64 / 512) for p in TEMPLATE_EYES) and _inside(mouth, TEMPLATE_MOUTH * 64 / 512)
    assert (make(0, False)["lq"] == plain["lq"]).all()  # the degradation comes from the rng passed in

    outcomes = set()
    for seed in range(12):
        unflipped, maybe_flipped = make(seed, False), make(seed, True)
        boxes = unflipped["region_boxes"].numpy()
        mirrored_boxes = boxes[:, [2, 1, 0, 3]] * np.array([-1, 1, -1, 1]) + np.array([64, 0, 64, 0])
        if (maybe_flipped["hq"] == unflipped["hq"]).all():
            assert (maybe_flipped["region_boxes"].numpy() == boxes).all()
            outcomes.add("kept")
        else:
            assert (maybe_flipped["hq"] == unflipped["hq"].flip(-1)).all()
            assert np.allclose(maybe_flipped["region_boxes"].numpy(), mirrored_boxes)
            outcomes.add("mirrored")
    assert outcomes == {"kept", "mirrored"}


def test_sdxl_crop_reports_its_micro_conditioning():
    rgb = np.zeros((300, 600, 3), np.uint8)
    rgb[:, 400:] = 255  # the right third is white
    crop, original, top_left = sdxl_resize_and_crop(
        rgb, 100, np.random.default_rng(0), random_crop=False, random_flip=False
    )
    assert crop.shape == (100, 100, 3) and original == (300, 600) and top_left == (0, 50)
    assert crop[:, -10:].mean() == 255 and crop[:, :60].mean() == 0  # resized to 100x200, columns 50-150 kept
    tops_lefts = {
        sdxl_resize_and_crop(rgb, 100, np.random.default_rng(s), random_crop=True, random_flip=False)[2]
        for s in range(10)
    }
    assert all(top == 0 and 0 <= left <= 100 for top, left in tops_lefts) and len(tops_lefts) > 1
    mirrored = [
        sdxl_resize_and_crop(rgb, 100, np.random.default_rng(s), random_crop=False, random_flip=True)[0]
        for s in range(10)
    ]
    assert any(m[:, :10].mean() == 255 and m[:, -60:].mean() == 0 for m in mirrored)  # white moved to the left


def test_face_dataset_sources_and_columns(face_folder, datasets_cache, tmp_path):
    dataset = load_face_dataset(str(face_folder), cache_dir=str(datasets_cache))
    assert len(dataset) == len(TRAINING_FACES) and set(dataset.column_names) == {"image", "caption"}
    assert resolve_image_column(dataset.column_names) == "image"
    assert resolve_image_column(["original", "retouched", "caption"]) == "retouched"
    with pytest.raises(ValueError, match="'photo' not in"):
        resolve_image_column(dataset.column_names, "photo")
    parquet = tmp_path / "faces.parquet"
    dataset.to_parquet(str(parquet))
    assert len(load_face_dataset(str(parquet), cache_dir=str(datasets_cache))) == len(TRAINING_FACES)
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        load_face_dataset(str(tmp_path / "missing.parquet"))
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_face_dataset(str(tmp_path / "nothing-here"))


def test_find_face_refuses_unaligned_rectangles(astronaut):
    from authface_core.errors import InvalidImageError

    with pytest.raises(InvalidImageError, match="not an aligned square face"):
        find_face(astronaut[:, :400], align=False, face_size=128)
    aligned, landmarks = find_face(astronaut, align=True, face_size=128)
    assert aligned.shape == (128, 128, 3) and landmarks.shape == (68, 2)
    assert all(_inside(np.array([0, 0, 128, 128]), p) for p in landmarks[36:68])


def test_streamed_faces_become_training_examples(face_folder, datasets_cache):
    import torch

    from authface_core.training.data import collate_examples, example_dataset, prepare_faces, stage2_example

    stream = load_face_dataset(str(face_folder), streaming=True)
    faces = prepare_faces(stream, "image", align=False, face_size=128)
    make = partial(stage2_example, resolution=64, degradation=PRESETS["gfpgan"], random_flip=False)
    dataset = example_dataset(faces, make, seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=collate_examples)
    first_pass = list(loader)
    assert len(first_pass) == 2 and first_pass[0]["lq"].shape == (2, 3, 64, 64)
    dataset.set_epoch(1)  # a new epoch draws new degradations of the same faces
    second_pass = list(loader)
    assert torch.equal(first_pass[0]["hq"], second_pass[0]["hq"])
    assert not torch.equal(first_pass[0]["lq"], second_pass[0]["lq"])
    # Prepared once (here: the map-style set), a dataset is not prepared again.
    prepared = prepare_faces(
        load_face_dataset(str(face_folder), cache_dir=str(datasets_cache)), "image", align=False, face_size=128
    )
    assert prepare_faces(prepared, "image", align=False, face_size=128) is prepared
