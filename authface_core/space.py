"""Create or update a Hugging Face Space running either app: ``authface space demo|annotate --repo user/name``.

A Space is a repo whose README.md starts with YAML front matter telling the Hub how to run it: the SDK and its
version, the Python version, the app file (hub-docs ``spaces-config-reference.md``). Both apps run from this
repository's code, with the front matter of :func:`front_matter`:

- ``demo``, the restoration demo (``app.py``): its README is the repository's own README.md, whose front matter
  is this one (a test keeps them equal). ``preload_from_hub`` bakes the weights into the Space's image when it is
  built, so a cold start downloads nothing; on ZeroGPU hardware the model's step runs under ``spaces.GPU``.
- ``annotate``, the annotation app (``annotate/app.py``): a README made here, the Hub sign-in on (``hf_oauth``),
  its project folder on the persistent storage (the variable ``ANNOTATE_ROOT``) and the allow-lists the person
  deploying gives as variables.

Uploaded: ``app.py``, ``requirements.txt``, ``LICENSE``, the README and the packages ``authface_core``, ``demo``
and ``annotate`` (caches and hidden files left out); nothing else of the checkout. Files of an earlier upload
that are gone are deleted; anything else in the Space is left. Variables and secrets are set in the Space's
settings before the upload, so its first build has them; a secret's value is read from an environment variable,
never from the command line, and never written to a file. The token is huggingface_hub's (``HF_TOKEN`` or the
saved login): it is never logged, any error message has it scrubbed, and a deploy refuses to upload a file
containing it or a secret's value.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .annotation.config import check_repo_id
from .errors import PublishError
from .pipeline.constants import DEFAULT_MODEL_ID

SPACE_APPS = ("demo", "annotate")
# What a Space gets of the checkout, besides its README.md; also what an update deletes when it is gone.
UPLOADED_FILES = ("app.py", "requirements.txt", "LICENSE")
UPLOADED_PACKAGES = ("authface_core", "demo", "annotate")
# The Python the project is tested on (CI, pyproject's requires-python).
PYTHON_VERSION = "3.11"
# The annotation app's project folder on the Space's persistent storage (mounted at /data).
ANNOTATE_ROOT_ON_SPACE = "/data/annotation"
# A variable is public in the Space's settings: names like these must be secrets.
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|KEY", re.IGNORECASE)
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_GRADIO_PIN = re.compile(r"^gradio(?:\[[^\]]*\])?==([0-9][0-9A-Za-z.+-]*)\s*$", re.MULTILINE)
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)

ANNOTATE_README = """
# AuthFace annotation

Photographers review original / retouched face-photo pairs here and publish the accepted ones as a Hugging Face
dataset: the training data of AuthFace Studio's Stage I. Sign in with your Hugging Face account; only the people
on this Space's allow-lists get in, each with their role.

**Settings** (the Space's variables, read as `ANNOTATE_<NAME>`; `python -m annotate --help` lists them all):
`ANNOTATE_REVIEWERS`, `ANNOTATE_ADJUDICATORS`, `ANNOTATE_ADMINS` (Hub user names, separated by commas; empty lets
nobody in), `ANNOTATE_REPO_ID` (the dataset repo), `ANNOTATE_LICENSE`, `ANNOTATE_OVERLAP`,
`ANNOTATE_MAX_PIXELS` (largest image read; the default admits a 100 MP file), and `ANNOTATE_ROOT={root}`.
The secret `HF_TOKEN` (write access to the dataset repo) is needed for publishing only.

**Persistent storage** must be on (the Space's settings): the review store lives in `{root}`, and without it
every decision not yet published is lost when the Space restarts.

Code: AuthFace Studio (Apache-2.0).
"""


@dataclass(frozen=True)
class DeployResult:
    """What a deploy did: the Space's URL, the files uploaded, the variables set (names and values), the secrets
    set (names only) and what the person deploying should still do."""

    url: str
    uploaded: list[str]
    variables: dict[str, str]
    secrets: list[str]
    notes: list[str] = field(default_factory=list)


def gradio_version(requirements: str) -> str:
    """The Gradio version ``requirements.txt`` pins (``gradio==X`` or ``gradio[extra]==X``): the Space's sdk_version,
    so that the Space runs the Gradio the tests ran."""
    found = _GRADIO_PIN.search(requirements)
    if not found:
        raise ValueError("requirements.txt pins no gradio version (gradio==X.Y.Z): a Space needs its sdk_version")
    return found.group(1)


def front_matter(app: str, sdk_version: str) -> dict:
    """The YAML front matter of ``app``'s Space README (hub-docs ``spaces-config-reference.md``)."""
    common = {"sdk": "gradio", "sdk_version": sdk_version, "python_version": PYTHON_VERSION, "license": "apache-2.0"}
    if app == "demo":
        return {
            "title": "AuthFace Studio",
            "emoji": "🧑",
            "colorFrom": "indigo",
            "colorTo": "gray",
            **common,
            "app_file": "app.py",
            "short_description": "Restore face photos with AuthFace, check identity",
            "models": [DEFAULT_MODEL_ID],
            "preload_from_hub": [DEFAULT_MODEL_ID],
            "suggested_hardware": "a10g-small",
        }
    if app == "annotate":
        return {
            "title": "AuthFace annotation",
            "emoji": "📝",
            "colorFrom": "gray",
            "colorTo": "indigo",
            **common,
            "app_file": "annotate/app.py",
            "short_description": "Photographers review retouched face photo pairs",
            "hf_oauth": True,
            "suggested_storage": "small",
        }
    raise ValueError(f"app must be one of {', '.join(SPACE_APPS)}, got {app!r}")


def split_front_matter(readme: str) -> tuple[dict, str]:
    """(front matter, body) of a README, as the Hub reads it: a YAML mapping between two ``---`` lines at the top."""
    import yaml

    found = _FRONT_MATTER.match(readme)
    if not found:
        return {}, readme
    values = yaml.safe_load(found.group(1))
    if not isinstance(values, dict):
        raise ValueError("README.md front matter is not a YAML mapping")
    return values, readme[found.end() :]


def space_readme(app: str, root: Path) -> str:
    """The README.md of ``app``'s Space: its front matter, then the repository's README body (demo) or
    :data:`ANNOTATE_README` (annotate)."""
    import yaml

    matter = front_matter(app, gradio_version((root / "requirements.txt").read_text()))
    if app == "demo":
        _, body = split_front_matter((root / "README.md").read_text())
    else:
        body = ANNOTATE_README.format(root=ANNOTATE_ROOT_ON_SPACE)
    return f"---\n{yaml.safe_dump(matter, sort_keys=False, allow_unicode=True)}---\n{body}"


def default_variables(app: str) -> dict[str, str]:
    """The variables a Space of ``app`` always gets (the person deploying may override them)."""
    return {"ANNOTATE_ROOT": ANNOTATE_ROOT_ON_SPACE} if app == "annotate" else {}


def check_variables(variables: Mapping[str, str]) -> None:
    """Refuse (``ValueError``) a variable name that is no environment variable name, or that looks like a secret's:
    a variable is shown to anyone who opens the Space's settings."""
    for name in variables:
        if not _VARIABLE_NAME.match(name):
            raise ValueError(f"variable name {name!r} is not an environment variable name (letters, digits, _)")
        if _SECRET_NAME.search(name):
            raise ValueError(f"{name} looks like a secret: set it with --secret, a variable is public")


def stage_space(app: str, folder: Path, root: Path) -> list[str]:
    """Copy what ``app``'s Space gets from the checkout ``root`` into ``folder`` and write its README; the paths,
    sorted, as in the Space."""
    missing = [name for name in (*UPLOADED_FILES, "README.md", *UPLOADED_PACKAGES) if not (root / name).exists()]
    if missing:
        raise ValueError(
            f"{root} is not a checkout of this repository ({', '.join(missing)} missing): run the deploy in one"
        )
    for name in UPLOADED_FILES:
        shutil.copy2(root / name, folder / name)
    for package in UPLOADED_PACKAGES:
        shutil.copytree(root / package, folder / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
    (folder / "README.md").write_text(space_readme(app, root))
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


def refuse_secrets_in_files(folder: Path, secrets: list[str]) -> None:
    """Raise :class:`PublishError` naming the first staged file that contains a secret's value (not the value)."""
    values = [secret.encode() for secret in secrets if secret]
    for path in sorted(folder.rglob("*")):
        if path.is_file() and any(value in path.read_bytes() for value in values):
            raise PublishError(f"{path.relative_to(folder)} contains a token or a secret's value: nothing was uploaded")


def deploy_space(
    app: str,
    repo_id: str,
    *,
    variables: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    private: bool = False,
    hardware: str | None = None,
    root: Path | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> DeployResult:
    """Create ``repo_id`` as a Gradio Space if it does not exist, set its variables and secrets (``{name: value}``),
    upload ``app``'s files (module doc) from the checkout ``root`` (None: the current folder) and, if given, ask for
    ``hardware``.

    Raises:
        ValueError: a bad repo id, variable name or checkout (nothing was done).
        PublishError: a Hub call failed (the message says which, token scrubbed) or a file held a secret.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from .hub import hub_token, scrubbed

    check_repo_id(repo_id)
    root = Path.cwd() if root is None else Path(root)
    variables = {**default_variables(app), **(variables or {})}
    secrets = dict(secrets or {})
    check_variables(variables)
    api = HfApi(endpoint=endpoint, token=token)
    hidden = [hub_token(token), *secrets.values()]

    def hub_call(step: str, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except (HfHubHTTPError, OSError, ValueError, RuntimeError) as error:
            raise PublishError(f"deploying {repo_id} failed while {step}: {scrubbed(error, *hidden)}") from None

    with tempfile.TemporaryDirectory(prefix="authface-space-") as staging:
        uploaded = stage_space(app, Path(staging), root)
        refuse_secrets_in_files(Path(staging), hidden)
        url = hub_call(
            "creating the Space",
            api.create_repo,
            repo_id,
            repo_type="space",
            space_sdk="gradio",
            private=private,
            exist_ok=True,
        )
        for name, value in variables.items():
            hub_call(f"setting the variable {name}", api.add_space_variable, repo_id, name, value)
        for name, value in secrets.items():
            hub_call(f"setting the secret {name}", api.add_space_secret, repo_id, name, value)
        hub_call(
            "uploading the files",
            api.upload_folder,
            repo_id=repo_id,
            repo_type="space",
            folder_path=staging,
            commit_message=f"Deploy the AuthFace Studio {app} app",
            delete_patterns=["README.md", *UPLOADED_FILES, *(f"{package}/**" for package in UPLOADED_PACKAGES)],
        )
    if hardware:
        hub_call(f"asking for {hardware}", api.request_space_hardware, repo_id, hardware)
    return DeployResult(str(url), uploaded, variables, sorted(secrets), deploy_notes(app, variables, secrets))


def deploy_notes(app: str, variables: Mapping[str, str], secrets: Mapping[str, str]) -> list[str]:
    """What is still to do by hand after a deploy of ``app`` with these settings."""
    if app != "annotate":
        return []
    notes = [
        f"Turn on persistent storage in the Space's settings: the review store lives in {variables['ANNOTATE_ROOT']}"
        ", and without it every decision not yet published is lost when the Space restarts."
    ]
    for role in ("REVIEWERS", "ADMINS"):
        if not variables.get(f"ANNOTATE_{role}"):
            notes.append(f"No ANNOTATE_{role} variable: in hosted mode nobody is a {role.lower()[:-1]}.")
    if "HF_TOKEN" not in secrets:
        notes.append("No HF_TOKEN secret: publishing to the dataset repo will fail until one is set.")
    return notes
