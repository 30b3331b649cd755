"""Each face's noise from (seed, photo key, face index): what lets an archive restore a photo the same in any
order, batch or process (``restore.face_seeds``, ``restore_faces(seeds=...)``, ``restore_image(noise_key=...)``)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from authface_core.restore import RestoreConfig, face_seeds, prepare_restoration, restore_faces, restore_image

from .conftest import FACE_SIZE

TINY = dict(face_size=FACE_SIZE, num_inference_steps=3, check_identity=False, seed=5)


def test_face_seeds_are_sha256_of_seed_key_and_index():
    seeds = face_seeds(123, "2019/a.jpg", 3)
    for index, seed in enumerate(seeds):
        digest = hashlib.sha256(b"123\x002019/a.jpg\x00" + str(index).encode()).digest()
        assert seed == int.from_bytes(digest[:8], "big") // 2 and 0 <= seed < 2**63
    assert len(set(seeds)) == 3
    assert face_seeds(123, "2019/b.jpg", 1) != seeds[:1] and face_seeds(124, "2019/a.jpg", 1) != seeds[:1]


def test_a_faces_noise_follows_its_seed_not_its_place(tiny_pipe, small_face):
    faces = np.stack([small_face, small_face[:, ::-1], np.roll(small_face, 9, axis=0)])
    seeds = face_seeds(5, "photo", 3)
    config = RestoreConfig(max_batch_size=1, **TINY)
    forward = restore_faces(tiny_pipe, faces, config, seeds=seeds)
    backward = restore_faces(tiny_pipe, faces[::-1], config, seeds=seeds[::-1])
    assert np.array_equal(forward, backward[::-1])
    # one generator drawn in order (the release's way) gives the second face other noise when it comes first
    shared = restore_faces(tiny_pipe, faces, config)
    assert not np.array_equal(shared[1], restore_faces(tiny_pipe, faces[1:], config)[0])
    with pytest.raises(ValueError, match="one seed per face"):
        restore_faces(tiny_pipe, faces, config, seeds=seeds[:2])


def test_noise_key_seeds_each_face_and_changes_the_noise(tiny_pipe, small_face):
    config = RestoreConfig(aligned=True, **TINY)
    keyed = restore_image(small_face, tiny_pipe, config, noise_key="scans/a.png")
    by_hand = restore_faces(
        tiny_pipe, prepare_restoration(small_face, config).faces, config, seeds=face_seeds(5, "scans/a.png", 1)
    )
    assert np.array_equal(keyed.faces[0].restored_face, by_hand[0])
    other = restore_image(small_face, tiny_pipe, config, noise_key="scans/b.png")
    assert not np.array_equal(keyed.image, other.image)
