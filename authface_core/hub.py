"""What the Hub-facing tools (the annotation publish, the Space deploy) share: an error message with the token out.

The token is huggingface_hub's own choice (the caller's, ``HF_TOKEN`` or the saved login) and is never logged; a
server may echo it back in an error, so every message about a failed Hub call goes through :func:`scrubbed`.
"""

from __future__ import annotations


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
