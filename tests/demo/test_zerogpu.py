"""On a ZeroGPU Space only the model's step holds the GPU: detection, checks, paste-back and PNG writing run outside
``spaces.GPU``, which asks for a time computed from the faces and steps. Checked in this process with a stand-in
for ``spaces.GPU`` that records what runs inside it (the real one needs a Space)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from authface_core.restore import RestoreConfig


@pytest.fixture
def on_gpu():
    """A stand-in for ``spaces.GPU(duration=...)``: marks the wrapped generator's run and records its durations."""
    state = {"inside": False, "durations": [], "duration_fn": None}

    def gpu(duration):
        state["duration_fn"] = duration

        def decorate(fn):
            def wrapped(*args, **kwargs):
                state["durations"].append(duration(*args, **kwargs))
                state["inside"] = True
                try:
                    yield from fn(*args, **kwargs)
                finally:
                    state["inside"] = False

            return wrapped

        return decorate

    state["GPU"] = gpu
    return state


def test_only_the_model_runs_under_spaces_gpu(on_gpu, photos, monkeypatch):
    import authface_core.restore as core
    from authface_core.model_config import ModelConfig
    from demo import app as demo_app

    where: dict[str, list[bool]] = {}

    def record(module, name):
        real = getattr(module, name)

        def spy(*args, **kwargs):
            where.setdefault(name, []).append(on_gpu["inside"])
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)

    for module, name in [
        (core, "detect_faces"),
        (core, "align_face"),
        (core, "paste_faces"),
        (core, "authenticity_report"),
        (demo_app, "restore_faces"),
        (demo_app, "save_image"),
        (demo_app, "draw_numbered_boxes"),
        (demo_app, "comparison_images"),
    ]:
        record(module, name)
    demo = demo_app.build_demo(ModelConfig(model="tiny"), gpu=on_gpu["GPU"](demo_app.zero_gpu_seconds))
    restore = next(fn.fn for fn in demo.fns.values() if fn.api_name == demo_app.API_NAME)
    upload = {"path": str(photos["wide"]), "orig_name": "wide.png"}
    settings = {"num_inference_steps": 3, "check_identity": True, "upscale": 1}
    outputs = list(restore(upload, False, **settings))
    assert any("Done in" in str(value) for update in outputs[-1:] for value in update.values())
    assert where["restore_faces"] == [True]  # the model, inside
    for name in ("detect_faces", "align_face", "paste_faces", "authenticity_report", "save_image"):
        assert where[name] and not any(where[name]), f"{name} ran under spaces.GPU"
    assert not any(where["draw_numbered_boxes"] + where["comparison_images"])
    assert on_gpu["durations"] == [
        demo_app.zero_gpu_seconds(np.zeros((2, 512, 512, 3), np.uint8), RestoreConfig(num_inference_steps=3))
    ]


def test_gpu_time_grows_with_faces_and_steps_within_zero_gpu_bounds():
    from demo.app import ZERO_GPU_MAX_S, ZERO_GPU_MIN_S, ZERO_GPU_S_PER_FACE_STEP, ZERO_GPU_SETUP_S, zero_gpu_seconds

    def faces(count):
        return np.zeros((count, 8, 8, 3), np.uint8)

    released = RestoreConfig()  # 50 steps
    assert zero_gpu_seconds(faces(4), released) == pytest.approx(
        ZERO_GPU_SETUP_S + 4 * 50 * ZERO_GPU_S_PER_FACE_STEP, abs=1
    )
    assert zero_gpu_seconds(faces(2), released) < zero_gpu_seconds(faces(4), released)
    assert zero_gpu_seconds(faces(4), RestoreConfig(fidelity=0.5)) < zero_gpu_seconds(faces(4), released)
    assert zero_gpu_seconds(faces(1), RestoreConfig(fidelity=1.0)) == ZERO_GPU_MIN_S  # no step: the floor
    assert zero_gpu_seconds(faces(100), released) == ZERO_GPU_MAX_S


def test_the_entry_point_hands_spaces_gpu_the_computed_duration(on_gpu, monkeypatch):
    """``python app.py`` on a ZeroGPU Space (where ``spaces`` is installed) builds the demo with
    ``spaces.GPU(duration=zero_gpu_seconds)``; elsewhere with no GPU wrapper."""
    from demo import __main__ as entry
    from demo import app as demo_app

    built = []
    monkeypatch.setattr(demo_app, "build_demo", lambda model, gpu=None: built.append(gpu))
    monkeypatch.setattr(demo_app, "launch", lambda demo, **options: None)
    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=on_gpu["GPU"]))
    entry.main(["--model", "tiny"])
    assert built[-1] is not None and on_gpu["duration_fn"] is demo_app.zero_gpu_seconds
    monkeypatch.setitem(sys.modules, "spaces", None)  # not installed: import fails
    entry.main(["--model", "tiny"])
    assert built[-1] is None
