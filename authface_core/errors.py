"""Every exception AuthFace raises.

Core code raises these; only the apps translate them (to ``gr.Error``) and only the CLI turns
them into exit codes. Each one also subclasses the builtin that callers would naturally catch
(``ValueError``, ``FileNotFoundError``, ``ImportError``), as ``huggingface_hub.errors`` does.
"""

from __future__ import annotations


class AuthFaceError(Exception):
    """Base class of every error raised on purpose by AuthFace."""


class InvalidImageError(AuthFaceError, ValueError):
    """A file or buffer is not an image we can use: corrupt, empty, too large, unsupported.

    The message always names the file and the problem.
    """

    def __init__(self, source: str, problem: str):
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class NoFaceDetectedError(AuthFaceError, ValueError):
    """No face was found where one was needed."""

    def __init__(self, source: str, hint: str = ""):
        self.source = source
        message = f"{source}: no face detected"
        super().__init__(f"{message}. {hint}" if hint else message)


class CheckpointNotFoundError(AuthFaceError, FileNotFoundError):
    """Model weights could not be found or loaded; the message says what was tried and how to fix it."""


class UnsupportedCheckpointError(AuthFaceError, ValueError):
    """A checkpoint whose architecture this pipeline does not run (named in the message)."""


class OutputFolderError(AuthFaceError, ValueError):
    """An output folder that would write over an input, or that cannot hold the outputs; the message names it."""


class MissingDependencyError(AuthFaceError, ImportError):
    """An optional dependency is missing; the message says what to install."""

    def __init__(self, package: str, purpose: str, install: str | None = None):
        self.package = package
        super().__init__(f"{package} is required for {purpose}. Install it with: pip install {install or package}")


# Annotation workflow (annotate/ and authface_core/annotation/).


class PairNotFoundError(AuthFaceError, KeyError):
    """A pair id that the store does not hold."""

    def __init__(self, pair_id: str):
        self.pair_id = pair_id
        super().__init__(f"pair {pair_id!r} is not in the review store")

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return self.args[0]


class DecisionRefusedError(AuthFaceError, ValueError):
    """A decision that would break a rule: pair locked by someone else, already decided, published..."""


class ReviewerNotAllowedError(AuthFaceError, PermissionError):
    """The person is not on the reviewers' allow-list (or is not logged in where a login is required)."""


class PairingError(AuthFaceError, ValueError):
    """A naming rule or pairs CSV that cannot be used; the message names the file or rule and the problem."""


class PublishError(AuthFaceError, RuntimeError):
    """Publishing to the Hub failed; the message says which step and never contains the token."""
