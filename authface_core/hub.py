"""What the Hub-facing tools share: appending files to a dataset repo (the annotation publish, the archive run's
Parquet shards) and error messages with the token out (those and the Space deploy).

The token is huggingface_hub's own choice (the caller's, ``HF_TOKEN`` or the saved login) and is never logged; a
server may echo it back in an error, so every message about a failed Hub call goes through :func:`scrubbed`.
``huggingface_hub`` is imported when a repo is opened.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import PublishError

_REPO_ID = re.compile(r"^[\w.\-]{1,96}/[\w.\-]{1,96}$")


def hub_token(token: str | None) -> str:
    """The token huggingface_hub will send for ``token`` (None: ``HF_TOKEN``, ``HUGGING_FACE_HUB_TOKEN`` or the
    login), or '' when there is none: what error messages must never show."""
    from huggingface_hub import get_token

    return token or get_token() or ""


def scrubbed(error: BaseException, *secrets: str) -> str:
    """``error`` and the errors it was raised from, joined with ' <- ' (huggingface_hub wraps upload failures in
    RuntimeError), with each of ``secrets`` replaced by '***'."""
    chain = []
    while error is not None:
        chain.append(str(error))
        error = error.__cause__
    message = " <- ".join(chain)
    for secret in secrets:
        message = message.replace(secret, "***") if secret else message
    return message


def check_repo_id(repo_id: str) -> None:
    """Refuse (``ValueError``) anything but a Hub repo id ``namespace/name``."""
    if not _REPO_ID.match(repo_id):
        raise ValueError(f"repo_id must be 'namespace/name', got {repo_id!r}")


class DatasetRepo:
    """A dataset repo on the Hub (or ``endpoint``), written to by commits of whole files.

    Every call goes through :meth:`call`, which turns a failure into :class:`PublishError` naming the repo and
    the step, with the token scrubbed from the whole chain of causes.
    """

    def __init__(self, repo_id: str, *, token: str | None = None, endpoint: str | None = None):
        from huggingface_hub import HfApi

        check_repo_id(repo_id)
        self.repo_id = repo_id
        self.api = HfApi(endpoint=endpoint, token=token)
        self._secret = hub_token(token)

    def call(self, step: str, function, *args, **kwargs):
        """``function(*args, **kwargs)``; a Hub, network or file error becomes :class:`PublishError`."""
        from huggingface_hub.errors import HfHubHTTPError

        try:
            return function(*args, **kwargs)
        except (HfHubHTTPError, OSError, ValueError, RuntimeError) as error:
            # the whole chain, token scrubbed; the chained exceptions themselves are dropped (a server may echo
            # the token in them)
            message = scrubbed(error, self._secret)
            raise PublishError(f"publishing to {self.repo_id} failed while {step}: {message}") from None

    def create(self, *, private: bool) -> None:
        """Create the repo if it does not exist (``private`` only matters then)."""
        self.call(
            "creating the repo", self.api.create_repo, self.repo_id, repo_type="dataset", private=private, exist_ok=True
        )

    def files(self) -> set[str]:
        """Paths of the files the repo has now."""
        return set(self.call("listing the repo", self.api.list_repo_files, self.repo_id, repo_type="dataset"))

    def add_file(self, path_in_repo: str, content: str | Path | bytes, message: str) -> None:
        """One commit adding (or replacing) one file, from a local path or bytes."""
        from huggingface_hub import CommitOperationAdd

        source = str(content) if isinstance(content, Path) else content
        self.call(
            f"uploading {path_in_repo}",
            self.api.create_commit,
            self.repo_id,
            repo_type="dataset",
            operations=[CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=source)],
            commit_message=message,
        )
