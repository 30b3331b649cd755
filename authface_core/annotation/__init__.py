"""The annotation workflow behind ``annotate/``: photographers review original/retouch pairs.

- ``ingest``: pair files by naming rule or CSV, hash them, flag duplicates, list the rest.
- ``geometry``: is the retouch the original's frame? scaled, aligned (ECC) or flagged, at ingest.
- ``tiles``: tile pyramids keyed by content, and the reviewers' tile tokens.
- ``previews``: screen previews, each pair's tiles and every face's 100% regions, cached, prepared ahead.
- ``store``: the SQLite (WAL) review store: locks, decisions, overlap, adjudication.
- ``publish``: incremental Parquet shards on a Hub dataset repo, with its card.
- ``reviewers``: who may decide (allow-list, Hub login on a Space).
- ``session``: the workflow as the app calls it.

Nothing here imports Gradio; ``datasets`` and ``huggingface_hub`` are imported when publishing.
"""
