"""Layers point down (io -> faces -> pipeline -> restore -> apps); metrics and training sit beside the core and
the core never imports them. Each import runs in a fresh interpreter, so what it loads is all its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import REPO_ROOT

CORE_NEVER_LOADS = ("authface_core.metrics", "authface_core.training")


def modules_loaded_by(module: str) -> list[str]:
    """Every module in ``sys.modules`` after ``import module`` in a fresh interpreter using this checkout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return result.stdout.split()


def under(modules: list[str], package: str) -> list[str]:
    return [name for name in modules if name == package or name.startswith(package + ".")]


@pytest.mark.parametrize(
    "module, forbidden",
    [
        ("authface_core.restore", (*CORE_NEVER_LOADS, "authface_core.degradations")),
        ("authface_core.faces", (*CORE_NEVER_LOADS, "authface_core.pipeline", "authface_core.restore")),
        ("authface_core.io", (*CORE_NEVER_LOADS, "authface_core.faces", "authface_core.pipeline")),
    ],
)
def test_core_modules_load_nothing_above_or_beside_them(module, forbidden):
    loaded = modules_loaded_by(module)
    assert module in loaded
    assert [name for package in forbidden for name in under(loaded, package)] == []


def test_metrics_package_imports_none_of_its_modules():
    assert under(modules_loaded_by("authface_core.metrics"), "authface_core.metrics") == ["authface_core.metrics"]
