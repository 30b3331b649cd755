"""Fixtures of the training tests: a tiny folder dataset of real aligned faces (torch runs on one
thread, see tests/conftest.py)."""

from __future__ import annotations

import contextlib
import json
import shutil

import pytest

# FFHQ-aligned faces of ../shared/faces/hq_aligned (512 and 1024 px), frontal enough for dlib.
TRAINING_FACES = ("gfpgan_00000000.png", "gpen_ffhq_00006.png", "gpen_ffhq_00007.png", "gpen_ffhq_00008.png")
CAPTION = "a close-up portrait photo, soft window light, natural skin texture"


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """accelerate keeps one process-wide state: without a reset, a run after a bf16 run would train in bf16 too."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="session")
def face_folder(shared_faces, tmp_path_factory):
    """An ``imagefolder`` dataset: 4 aligned faces (copied into a temp dir, never the repo) + captions."""
    folder = tmp_path_factory.mktemp("faces")
    with (folder / "metadata.jsonl").open("w") as metadata:
        for name in TRAINING_FACES:
            shutil.copy(shared_faces / "hq_aligned" / name, folder / name)
            metadata.write(json.dumps({"file_name": name, "caption": CAPTION}) + "\n")
    return folder


@pytest.fixture(scope="session")
def datasets_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("datasets-cache")


def settings_flags(settings: dict) -> list[str]:
    """{setting: value} as the flags of a stage (``--name value``; lists as several values; None left out)."""
    argv: list[str] = []
    for name, value in settings.items():
        if value is None:
            continue
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        argv += [f"--{name}", *map(str, values)]
    return argv


@pytest.fixture(scope="session")
def training_argv(face_folder, datasets_cache):
    """argv for a stage: the tiny model on ``face_folder`` at 64 px, plus ``settings`` (name=value)."""

    def make(output_dir, **settings) -> list[str]:
        defaults = {
            "pretrained_model_name_or_path": "tiny",
            "train_data": face_folder,
            "cache_dir": datasets_cache,
            "output_dir": output_dir,
            "resolution": 64,
            "train_batch_size": 2,
            "learning_rate": 1e-3,
            "report_to": "none",
        }
        return settings_flags({**defaults, **settings})

    return make


def saved_tensors(folder, component: str) -> dict:
    """Every tensor of a saved component folder (its safetensors files), by name."""
    from pathlib import Path

    from safetensors.torch import load_file

    tensors = {}
    for path in sorted((Path(folder) / component).glob("*.safetensors")):
        tensors |= load_file(path)
    assert tensors, f"no safetensors in {folder}/{component}"
    return tensors


def bf16_would_change(tensors: dict) -> bool:
    """Whether rounding these float32 tensors to bfloat16 and back changes any (so a test of bit identity after a
    bf16 run can fail)."""
    import torch

    return any(not torch.equal(t, t.bfloat16().float()) for t in tensors.values() if t.is_floating_point())


@contextlib.contextmanager
def forward_batches(class_name: str):
    """Within the block, the list of (batch size, input dtype, autocast on) of every forward of any module whose
    class is named ``class_name`` (e.g. the VAE's ``Encoder``)."""
    import torch

    calls = []

    def hook(module, args):
        if type(module).__name__ == class_name and args:
            tensor = args[0]
            calls.append((tensor.shape[0], tensor.dtype, torch.is_autocast_enabled(tensor.device.type)))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        yield calls
    finally:
        handle.remove()
