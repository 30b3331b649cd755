"""A fresh copy of the repository installed as a user would: what the README and the entry points are tested on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT


def install_fresh_copy(root: Path) -> tuple[Path, Path]:
    """Copy the tracked files to ``root/clone`` and install them (no dependencies) into ``root/site``; its
    console scripts land in ``site/bin``. Returns (clone, site)."""
    clone, site = root / "clone", root / "site"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    for name in tracked.stdout.splitlines():
        if (REPO_ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, clone / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site)]
        + [str(clone)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return clone, site
