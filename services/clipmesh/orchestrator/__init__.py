"""The orchestrator: clipmesh's public API (search, ingest, previs) over the other services."""
