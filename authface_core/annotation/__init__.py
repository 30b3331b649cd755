"""The annotation workflow behind ``annotate/``: photographers review original/retouch pairs.

- ``ingest``: pair files by naming rule or CSV, hash them, flag duplicates, list the rest.
- ``previews``: screen previews and 100% eye/mouth crops, cached, prepared ahead.
- ``store``: the SQLite (WAL) review store: locks, decisions, overlap, adjudication.
- ``publish``: incremental Parquet shards on a Hub dataset repo, with its card.
- ``reviewers``: who may decide (allow-list, Hub login on a Space).
- ``session``: the workflow as the app calls it.

Nothing here imports Gradio; ``datasets`` and ``huggingface_hub`` are imported when publishing.
"""
