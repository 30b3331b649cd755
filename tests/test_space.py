"""``authface space demo|annotate``: both Spaces created and updated through huggingface_hub against a local
stand-in of the Hub, read back as a Space would read them (the README's YAML front matter, the app file, the
variables and secrets), with no token in any uploaded file."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

from authface_core.cli import EXIT_CANNOT_START, EXIT_OK, main
from authface_core.errors import PublishError
from authface_core.pipeline.constants import DEFAULT_MODEL_ID
from authface_core.space import (
    UPLOADED_FILES,
    UPLOADED_PACKAGES,
    deploy_space,
    front_matter,
    gradio_version,
    split_front_matter,
)
from tests.annotation.hub_standin import HubStandIn, use_standin
from tests.conftest import REPO_ROOT

TOKEN = "hf_deployerSecretToken0123456789"
DATASET_TOKEN = "hf_datasetWriteToken9876543210"


def read_front_matter(readme: bytes) -> dict:
    """The README's front matter as the Hub reads it: the YAML between the first two ``---`` lines (restated here,
    independently of authface_core.space)."""
    found = re.match(rb"---\n(.*?)\n---\n", readme, re.DOTALL)
    assert found, "README.md has no front matter"
    return yaml.safe_load(found.group(1))


def pinned_gradio() -> str:
    lines = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    return next(line.split("==")[1] for line in lines if line.startswith("gradio[oauth]=="))


def expected_files() -> set[str]:
    """What a Space of this checkout holds: the top files, the three packages without caches, and the README."""
    files = {"README.md", *UPLOADED_FILES}
    for package in UPLOADED_PACKAGES:
        for path in (REPO_ROOT / package).rglob("*"):
            relative = path.relative_to(REPO_ROOT)
            hidden = any(part.startswith(".") or part == "__pycache__" for part in relative.parts)
            if path.is_file() and not hidden and path.suffix != ".pyc":
                files.add(relative.as_posix())
    return files


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A running stand-in of the Hub that huggingface_hub talks to with ``TOKEN``; the dataset token in the
    environment, as the person deploying the annotation Space keeps it."""
    monkeypatch.chdir(REPO_ROOT)  # the deploy is run in a checkout
    with HubStandIn(tmp_path / "hub") as standin:
        use_standin(monkeypatch, standin, TOKEN)
        monkeypatch.setenv("DATASET_WRITE_TOKEN", DATASET_TOKEN)
        yield standin


def test_the_repository_readme_carries_the_demo_space_s_front_matter():
    """GitHub shows the front matter as a small table; a Space reads it. It is what the deploy writes, with the
    Gradio version requirements.txt pins (the one the tests ran)."""
    matter, body = split_front_matter((REPO_ROOT / "README.md").read_text())
    assert matter == front_matter("demo", gradio_version((REPO_ROOT / "requirements.txt").read_text()))
    assert matter["sdk_version"] == pinned_gradio() and body.lstrip().startswith("# AuthFace Studio")


def test_both_spaces_deploy_with_their_files_front_matter_variables_and_secrets(hub, capsys):
    assert main(["space", "demo", "--repo", "lab/authface-studio", "--variable", "AUTHFACE_MODEL=tiny"]) == EXIT_OK
    variables = ["ANNOTATE_REVIEWERS=ana,ben", "ANNOTATE_ADMINS=ana", "ANNOTATE_REPO_ID=lab/pairs"]
    secret = ["--secret", "HF_TOKEN=DATASET_WRITE_TOKEN"]
    argv = ["space", "annotate", "--repo", "lab/annotate", "--variable", *variables, *secret]
    assert main(argv) == EXIT_OK
    printed = capsys.readouterr()
    assert TOKEN not in printed.out + printed.err and DATASET_TOKEN not in printed.out + printed.err
    assert "secret HF_TOKEN set" in printed.out and "persistent storage" in printed.err

    demo, annotate = hub.files("lab/authface-studio", "space"), hub.files("lab/annotate", "space")
    assert set(demo) == set(annotate) == expected_files()
    assert not any(path.startswith(("tests/", "bench/", "configs/", "docs/")) for path in demo)
    for files in (demo, annotate):
        for name in ("app.py", "requirements.txt", "demo/app.py", "annotate/app.py", "authface_core/restore.py"):
            assert files[name] == (REPO_ROOT / name).read_bytes()
        leaking = [path for path, data in files.items() if TOKEN.encode() in data or DATASET_TOKEN.encode() in data]
        assert leaking == []

    demo_matter, annotate_matter = read_front_matter(demo["README.md"]), read_front_matter(annotate["README.md"])
    for matter in (demo_matter, annotate_matter):
        assert matter["sdk"] == "gradio" and matter["sdk_version"] == pinned_gradio()
        assert matter["python_version"] == "3.11" and matter["license"] == "apache-2.0"
        assert len(matter["short_description"]) <= 60  # the Hub's limit
    assert demo_matter["app_file"] == "app.py" and demo_matter["app_file"] in demo
    assert demo_matter["models"] == demo_matter["preload_from_hub"] == [DEFAULT_MODEL_ID]  # weights baked in
    assert demo["README.md"].split(b"\n---\n", 1)[1] == (REPO_ROOT / "README.md").read_bytes().split(b"\n---\n", 1)[1]
    assert annotate_matter["app_file"] == "annotate/app.py" and annotate_matter["app_file"] in annotate
    assert annotate_matter["hf_oauth"] is True and annotate_matter["suggested_storage"] == "small"
    assert "hf_oauth" not in demo_matter

    demo_settings, annotate_settings = hub.space_settings["lab/authface-studio"], hub.space_settings["lab/annotate"]
    assert demo_settings["sdk"] == annotate_settings["sdk"] == "gradio"
    assert demo_settings["variables"] == {"AUTHFACE_MODEL": "tiny"} and demo_settings["secrets"] == {}
    assert annotate_settings["variables"] == {
        "ANNOTATE_ROOT": "/data/annotation",
        "ANNOTATE_REVIEWERS": "ana,ben",
        "ANNOTATE_ADMINS": "ana",
        "ANNOTATE_REPO_ID": "lab/pairs",
    }
    assert annotate_settings["secrets"] == {"HF_TOKEN": DATASET_TOKEN}  # in the Space's settings, nowhere else
    assert set(hub.authorizations) == {f"Bearer {TOKEN}"}  # every call made with the deployer's token


def test_the_uploaded_space_runs_from_its_own_files(hub, tmp_path):
    """What the Space got is enough to start both entry points (their --help), with nothing from this checkout."""
    deploy_space("demo", "lab/authface-studio")
    space = hub.repo_dir("lab/authface-studio", "space")
    environment = {**os.environ, "PYTHONPATH": "", "HOME": str(tmp_path), "PYTHONNOUSERSITE": "1"}
    for app_file in ("app.py", "annotate/app.py"):
        probe = (
            "import runpy, sys; sys.argv = [sys.argv[1], '--help']\n"
            "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
            "except SystemExit:\n    import authface_core; print('FROM', authface_core.__file__)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", probe, app_file], cwd=space, env=environment, capture_output=True, text=True
        )
        assert result.returncode == 0 and "usage:" in result.stdout, result.stderr[-2000:]
        assert f"FROM {space / 'authface_core' / '__init__.py'}" in result.stdout


def test_an_update_deletes_what_the_app_no_longer_has_and_keeps_the_rest(hub):
    deploy_space("demo", "lab/authface-studio")
    space = hub.repo_dir("lab/authface-studio", "space")
    (space / "demo" / "removed_module.py").write_text("old = True\n")  # from an earlier version of the app
    (space / "NOTES.md").write_text("the team's own file\n")
    deploy_space("demo", "lab/authface-studio", variables={"AUTHFACE_MODEL": "lab/other-model"})
    assert not (space / "demo" / "removed_module.py").exists() and (space / "NOTES.md").exists()
    assert set(hub.files("lab/authface-studio", "space")) == expected_files() | {"NOTES.md"}
    assert hub.space_settings["lab/authface-studio"]["variables"] == {"AUTHFACE_MODEL": "lab/other-model"}


def test_a_file_holding_the_token_stops_the_deploy_before_anything_is_sent(hub, tmp_path):
    import shutil

    root = tmp_path / "checkout"
    root.mkdir()
    for name in (*UPLOADED_FILES, "README.md"):
        shutil.copy2(REPO_ROOT / name, root / name)
    for package in UPLOADED_PACKAGES:
        shutil.copytree(REPO_ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "demo" / "debug_settings.py").write_text(f'TOKEN = "{TOKEN}"\n')  # a careless local edit
    with pytest.raises(PublishError, match=r"demo/debug_settings\.py contains a token") as refused:
        deploy_space("demo", "lab/authface-studio", root=root)
    assert TOKEN not in str(refused.value)
    assert not hub.repo_dir("lab/authface-studio", "space").exists() and hub.commits == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--variable", "HF_TOKEN=hf_abc"], "HF_TOKEN looks like a secret: set it with --secret"),
        (["--variable", "NO_EQUALS"], "variable 'NO_EQUALS' is not NAME=VALUE"),
        (["--secret", "HF_TOKEN=NOT_SET_ANYWHERE"], "the environment variable NOT_SET_ANYWHERE is not set"),
    ],
)
def test_bad_settings_stop_before_anything_is_sent(hub, capsys, argv, message):
    assert main(["space", "annotate", "--repo", "lab/annotate", *argv]) == EXIT_CANNOT_START
    assert message in capsys.readouterr().err
    assert hub.space_settings == {} and hub.commits == []


def test_a_failing_hub_call_is_named_without_the_token(hub, monkeypatch):
    import httpx
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    def refuse(self, repo_id, key, value, **kwargs):  # a server echoing what it was sent
        response = httpx.Response(403, request=httpx.Request("POST", f"{hub.endpoint}/api/spaces/{repo_id}/secrets"))
        raise HfHubHTTPError(f"403 Forbidden: token {TOKEN} may not write secret {value}", response=response)

    monkeypatch.setattr(HfApi, "add_space_secret", refuse)
    with pytest.raises(PublishError, match=r"failed while setting the secret HF_TOKEN: 403") as failed:
        deploy_space("annotate", "lab/annotate", secrets={"HF_TOKEN": DATASET_TOKEN})
    assert TOKEN not in str(failed.value) and DATASET_TOKEN not in str(failed.value)
