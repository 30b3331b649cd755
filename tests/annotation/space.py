"""A simulated Hugging Face Space for the hosted-mode tests, and the ways a caller reaches the app.

The app runs as on a Space: ``SYSTEM=spaces``, ``SPACE_ID`` and the OAuth variables the Hub sets
with ``hf_oauth: true``, so Gradio installs its real OAuth routes and its session middleware. A
signed-in visitor is simulated the only way the server knows one: a session cookie, signed with
the key Gradio derives from ``OAUTH_CLIENT_SECRET``, holding what Gradio's ``/login/callback``
stores after the Hub's sign-in. The production check is untouched: the app still reads the user
from Gradio's ``gr.OAuthProfile``, which Gradio fills from that signed cookie and nothing else.

Callers: plain HTTP (``/gradio_api/call/<name>`` and the queue's ``/gradio_api/queue/join`` by
function index, which reaches even the events that have no API name) and ``gradio_client``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time
import uuid
from contextlib import contextmanager

import httpx
import itsdangerous
import pytest

SPACE_ENV = {
    "SYSTEM": "spaces",
    "SPACE_ID": "photo-lab/annotate",
    "OAUTH_CLIENT_ID": "00000000-test-client",
    "OAUTH_CLIENT_SECRET": "test-oauth-secret",
    "OAUTH_SCOPES": "openid profile",
    "OPENID_PROVIDER_URL": "http://127.0.0.1:9",  # never contacted: sign-in is simulated by the cookie
}
REQUEST_TIMEOUT_S = 120


@contextmanager
def simulated_space():
    """The Space's environment for as long as the block runs (Gradio reads the OAuth ones at import)."""
    import gradio.http_server
    import gradio.oauth

    with pytest.MonkeyPatch.context() as patch:
        for name, value in SPACE_ENV.items():
            patch.setenv(name, value)
            if hasattr(gradio.oauth, name):
                patch.setattr(gradio.oauth, name, value)
        # Gradio's hot reloader for Spaces needs the `spaces` package, which only a Space has; it has
        # nothing to do with sign-in, so the simulated Space runs without it.
        patch.setattr(gradio.http_server, "get_space", lambda: None)
        yield


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def session_cookie(username: str) -> str:
    """The ``Cookie`` header of a browser signed in as ``username`` (what Gradio's OAuth callback stores)."""
    session = {
        "oauth_info": {
            "access_token": f"hf_oauth_{username}",
            "token_type": "bearer",
            "scope": SPACE_ENV["OAUTH_SCOPES"],
            "expires_at": int(time.time()) + 3600,
            "userinfo": {
                "preferred_username": username,
                "name": username.title(),
                "profile": f"https://huggingface.co/{username}",
                "picture": "",
            },
        }
    }
    key = hashlib.sha256((SPACE_ENV["OAUTH_CLIENT_SECRET"] + "-v4").encode()).hexdigest()  # gradio/oauth.py
    signed = itsdangerous.TimestampSigner(key).sign(base64.b64encode(json.dumps(session).encode()))
    return f"session={signed.decode()}"


def headers_for(user: str | None) -> dict[str, str]:
    """Request headers of ``user`` signed in, or of an anonymous visitor (None)."""
    return {"Cookie": session_cookie(user)} if user else {}


def call_named(url: str, api_name: str, data: list, user: str | None) -> tuple[bool, object]:
    """POST ``/gradio_api/call/<api_name>`` and read the result: (succeeded, data or error message)."""
    with httpx.Client(timeout=REQUEST_TIMEOUT_S, headers=headers_for(user)) as http:
        started = http.post(f"{url}/gradio_api/call/{api_name}", json={"data": data})
        started.raise_for_status()
        text = http.get(f"{url}/gradio_api/call/{api_name}/{started.json()['event_id']}").text
    events = [line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event: ")]
    payloads = [json.loads(line.removeprefix("data: ")) for line in text.splitlines() if line.startswith("data: ")]
    if events[-1] == "error":
        return False, payloads[-1]["error"] if isinstance(payloads[-1], dict) else payloads[-1]
    return events[-1] == "complete", payloads[-1]


def call_index(url: str, fn_index: int, data: list, user: str | None) -> tuple[bool, object]:
    """Run function ``fn_index`` through the queue, as the page does: (succeeded, output data or error message)."""
    session_hash = uuid.uuid4().hex
    with httpx.Client(timeout=REQUEST_TIMEOUT_S, headers=headers_for(user)) as http:
        joined = http.post(
            f"{url}/gradio_api/queue/join",
            json={"data": data, "fn_index": fn_index, "session_hash": session_hash, "event_data": None},
        )
        joined.raise_for_status()
        with http.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[len("data:") :])
                if message.get("msg") == "process_completed":
                    output = message.get("output") or {}
                    succeeded = bool(message.get("success"))
                    return succeeded, output.get("data" if succeeded else "error")
    raise AssertionError(f"function {fn_index} never completed")
