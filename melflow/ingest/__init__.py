"""Ingest: turn a corpus folder (or URL) into a manifest, quarantining unusable files.

Modules: :mod:`~melflow.ingest.sources` (listing, labels, groups),
:mod:`~melflow.ingest.probe` (hashing and decoding with a cache),
:mod:`~melflow.ingest.splits` (grouped, seeded, stable splits) and
:mod:`~melflow.ingest.run` (the stage and its outputs).
"""

from melflow.ingest.run import IngestResult, ingest_corpus, latest_manifest, load_manifest

__all__ = ["IngestResult", "ingest_corpus", "latest_manifest", "load_manifest"]
