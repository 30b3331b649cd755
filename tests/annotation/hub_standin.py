"""A local stand-in for the parts of the Hugging Face Hub HTTP API that publishing uses.

Started on 127.0.0.1 by the tests and stopped by them; ``huggingface_hub`` talks to it through
``HF_ENDPOINT`` exactly as it talks to the Hub (with Xet disabled, so LFS files go through the
LFS batch API and a basic PUT). Implemented, for dataset and Space repos: repo creation, README YAML
validation (the front matter must parse), preupload (``.parquet`` as LFS, the rest inline), LFS
batch and upload, NDJSON commits (added and deleted files), the recursive tree listing, and repo
info (asked for when a commit would change nothing); for Spaces also their variables, secrets and
hardware requests, kept in ``space_settings``. Each dataset's current files are kept under
``root/<namespace>/<name>/`` so that ``datasets.load_dataset`` can read what was published; a
Space's under ``root/spaces/<namespace>/<name>/``.

Bounded: requests over ``MAX_BODY_BYTES`` are refused, sockets time out after ``SOCKET_TIMEOUT_S``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

MAX_BODY_BYTES = 512 * 2**20
SOCKET_TIMEOUT_S = 30


def use_standin(patch, hub: HubStandIn, token: str) -> dict[str, str]:
    """Point huggingface_hub at ``hub`` through ``patch`` (a pytest MonkeyPatch): online, no Xet, ``token``
    as HF_TOKEN. Returns the environment, for subprocesses."""
    import huggingface_hub.constants as constants

    env = {"HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0", "HF_TOKEN": token}
    for name, value in env.items():
        patch.setenv(name, value)
    patch.setattr(constants, "ENDPOINT", hub.endpoint)
    patch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    patch.setattr(constants, "HF_HUB_OFFLINE", False)
    return env


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubStandIn:
    """The server and its state; ``on_commit(repo_id, paths)`` is called after each applied commit."""

    def __init__(self, root: Path, on_commit: Callable[[str, list[str]], None] | None = None):
        self.root = Path(root)
        self.lfs_dir = self.root / ".lfs"
        self.lfs_dir.mkdir(parents=True, exist_ok=True)
        self.on_commit = on_commit
        self.commits: list[tuple[str, list[str]]] = []
        self.lfs_uploads: list[str] = []
        # Per Space: {"sdk": ..., "private": ..., "variables": {}, "secrets": {}, "hardware": [...]}.
        self.space_settings: dict[str, dict] = {}
        # The Authorization header of every request, to check which token a client sent.
        self.authorizations: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def repo_dir(self, repo_id: str, repo_type: str = "dataset") -> Path:
        return self.root / "spaces" / repo_id if repo_type == "space" else self.root / repo_id

    def files(self, repo_id: str, repo_type: str = "dataset") -> dict[str, bytes]:
        folder = self.repo_dir(repo_id, repo_type)
        files = sorted(path for path in folder.rglob("*") if path.is_file())
        return {path.relative_to(folder).as_posix(): path.read_bytes() for path in files}

    def __enter__(self) -> HubStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def _handler_for(hub: HubStandIn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = SOCKET_TIMEOUT_S

        def log_message(self, format, *args):  # keep pytest output clean
            pass

        # -- plumbing --------------------------------------------------------------------
        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks, total = [], 0
                while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                    total += size
                    if total > MAX_BODY_BYTES:
                        raise ValueError("body too large")
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                raise ValueError("body too large")
            return self.rfile.read(length)

        def _reply(self, status: int, payload=None) -> None:
            data = json.dumps(payload if payload is not None else {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            path = unquote(urlparse(self.path).path)
            try:
                body = self._body() if method in ("POST", "PUT") else b""
            except ValueError as error:
                return self._reply(413, {"error": str(error)})
            parts = path.strip("/").split("/")
            if self.headers.get("Authorization"):
                hub.authorizations.append(self.headers["Authorization"])
            if method == "POST" and path == "/api/repos/create":
                return self._create_repo(json.loads(body))
            if method == "POST" and path == "/api/validate-yaml":
                return self._validate_yaml(json.loads(body))
            if method == "PUT" and parts[0] == "lfs-upload":
                return self._lfs_upload(parts[1], body)
            if parts[0] == "api" and len(parts) >= 5 and parts[1] in ("datasets", "spaces"):
                repo_type, repo_id, action = parts[1][:-1], "/".join(parts[2:4]), parts[4]
                if not hub.repo_dir(repo_id, repo_type).is_dir():
                    return self._reply(404, {"error": f"Repository {repo_id} not found"})
                if method == "POST" and action == "preupload":
                    return self._preupload(repo_id, repo_type, json.loads(body))
                if method == "POST" and action == "commit":
                    return self._commit(repo_id, repo_type, body)
                if method == "GET" and action == "tree":
                    return self._tree(repo_id, repo_type)
                if method == "GET" and action == "revision":
                    return self._info(repo_id, repo_type)
                if repo_type == "space" and method == "POST" and action in ("variables", "secrets", "hardware"):
                    return self._space_setting(repo_id, action, json.loads(body))
            if method == "POST" and re.match(r"^/(datasets|spaces)/.+\.git/info/lfs/objects/batch$", path):
                return self._lfs_batch(json.loads(body))
            return self._reply(404, {"error": f"stand-in does not implement {method} {path}"})

        def do_GET(self):
            self._route("GET")

        def do_POST(self):
            self._route("POST")

        def do_PUT(self):
            self._route("PUT")

        # -- endpoints ---------------------------------------------------------------------
        def _create_repo(self, payload: dict) -> None:
            repo_id, repo_type = f"{payload['organization']}/{payload['name']}", payload.get("type") or "model"
            if repo_type not in ("dataset", "space"):
                return self._reply(400, {"error": f"stand-in does not implement {repo_type} repos"})
            if repo_type == "space" and payload.get("sdk") not in ("gradio", "docker", "static"):
                return self._reply(400, {"error": "a Space needs an sdk: gradio, docker or static"})
            url = {"url": f"{hub.endpoint}/{repo_type}s/{repo_id}"}
            with hub.lock:
                if hub.repo_dir(repo_id, repo_type).is_dir():
                    return self._reply(409, {"error": f"You already created this {repo_type} repo", **url})
                hub.repo_dir(repo_id, repo_type).mkdir(parents=True)
                if repo_type == "space":
                    hub.space_settings[repo_id] = {
                        "sdk": payload["sdk"],
                        "private": payload.get("private"),
                        "variables": {},
                        "secrets": {},
                        "hardware": [],
                    }
            self._reply(200, url)

        def _validate_yaml(self, payload: dict) -> None:
            import yaml

            content = payload.get("content", "")
            found = re.match(r"\A---\n(.*?)\n---\n", content, re.DOTALL)
            try:
                values = yaml.safe_load(found.group(1)) if found else {}
            except yaml.YAMLError as error:
                return self._reply(400, {"error": f"Invalid YAML in README.md metadata: {error}"})
            if not isinstance(values, dict):
                return self._reply(400, {"error": "README.md metadata must be a YAML mapping"})
            self._reply(200, {"errors": [], "warnings": []})

        def _space_setting(self, repo_id: str, action: str, payload: dict) -> None:
            with hub.lock:
                settings = hub.space_settings[repo_id]
                if action == "hardware":
                    settings["hardware"].append(payload["flavor"])
                    return self._reply(200, {"stage": "BUILDING", "hardware": {"requested": payload["flavor"]}})
                settings[action][payload["key"]] = payload["value"]
                variables = {key: {"value": value} for key, value in settings["variables"].items()}
            self._reply(200, variables if action == "variables" else {})

        def _preupload(self, repo_id: str, repo_type: str, payload: dict) -> None:
            existing = hub.files(repo_id, repo_type)
            files = [
                {
                    "path": item["path"],
                    "uploadMode": "lfs" if item["path"].endswith(".parquet") else "regular",
                    "shouldIgnore": False,
                    "oid": git_blob_oid(existing[item["path"]]) if item["path"] in existing else None,
                }
                for item in payload["files"]
            ]
            self._reply(200, {"files": files, "commitOid": "0" * 40})

        def _lfs_batch(self, payload: dict) -> None:
            objects = []
            for item in payload["objects"]:
                entry = {"oid": item["oid"], "size": item["size"]}
                if not (hub.lfs_dir / item["oid"]).is_file():
                    entry["actions"] = {"upload": {"href": f"{hub.endpoint}/lfs-upload/{item['oid']}"}}
                objects.append(entry)
            self._reply(200, {"transfer": "basic", "objects": objects})

        def _lfs_upload(self, oid: str, body: bytes) -> None:
            if hashlib.sha256(body).hexdigest() != oid:
                return self._reply(400, {"error": "sha256 mismatch"})
            (hub.lfs_dir / oid).write_bytes(body)
            hub.lfs_uploads.append(oid)
            self._reply(200)

        def _commit(self, repo_id: str, repo_type: str, body: bytes) -> None:
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            writes: dict[str, bytes] = {}
            deletions: list[str] = []
            for line in lines:
                value = line["value"]
                if line["key"] == "file":
                    writes[value["path"]] = base64.b64decode(value["content"])
                elif line["key"] == "lfsFile":
                    blob = hub.lfs_dir / value["oid"]
                    if not blob.is_file():
                        return self._reply(400, {"error": f"LFS object {value['oid']} was never uploaded"})
                    writes[value["path"]] = blob.read_bytes()
                elif line["key"] == "deletedFile":
                    deletions.append(value["path"])
                elif line["key"] != "header":
                    return self._reply(400, {"error": f"stand-in does not implement {line['key']}"})
            with hub.lock:
                for path in deletions:
                    (hub.repo_dir(repo_id, repo_type) / path).unlink(missing_ok=True)
                for path, data in writes.items():
                    target = hub.repo_dir(repo_id, repo_type) / path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                hub.commits.append((repo_id, sorted(writes)))
                oid = hashlib.sha1(repr(hub.commits).encode()).hexdigest()
            if hub.on_commit is not None:
                hub.on_commit(repo_id, sorted(writes))
            url = f"{hub.endpoint}/{repo_type}s/{repo_id}/commit/{oid}"
            self._reply(200, {"commitUrl": url, "commitOid": oid})

        def _info(self, repo_id: str, repo_type: str) -> None:
            with hub.lock:
                sha = hashlib.sha1(repr(hub.commits).encode()).hexdigest()
            siblings = [{"rfilename": path} for path in hub.files(repo_id, repo_type)]
            self._reply(200, {"id": repo_id, "sha": sha, "private": True, "siblings": siblings})

        def _tree(self, repo_id: str, repo_type: str) -> None:
            entries = []
            for path, data in hub.files(repo_id, repo_type).items():
                entry = {"type": "file", "path": path, "size": len(data), "oid": git_blob_oid(data)}
                if path.endswith(".parquet"):
                    sha = hashlib.sha256(data).hexdigest()
                    entry["lfs"] = {"oid": sha, "size": len(data), "pointerSize": 134}
                entries.append(entry)
            self._reply(200, entries)

    return Handler
