"""Publish from its own process, so that the test can SIGKILL it half-way.

``python -m tests.annotation.publish_worker STORE REPO_ID MAX_SHARD_BYTES``; the Hub endpoint and
the Xet switch come from the environment (``HF_ENDPOINT``, ``HF_HUB_DISABLE_XET``).
"""

from __future__ import annotations

import sys

from authface_core.annotation.publish import PublishConfig, publish
from authface_core.annotation.store import ReviewStore

if __name__ == "__main__":
    store_path, repo_id, max_shard_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3])
    publish(ReviewStore(store_path), PublishConfig(repo_id=repo_id, max_shard_bytes=max_shard_bytes, rows_per_group=1))
