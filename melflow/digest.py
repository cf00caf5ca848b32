"""Content digests: the identity of every input, config section and stage output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

DIGEST_CHARS = 16
_READ_BLOCK = 1 << 20


def digest_bytes(data: bytes) -> str:
    """Full hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def digest_file(path: str | Path, *, fs: Any = None) -> str:
    """Full hex SHA-256 of a file's bytes, streamed in 1 MiB blocks (local path or fsspec)."""
    h = hashlib.sha256()
    opener = fs.open if fs is not None else open
    with opener(str(path), "rb") as f:
        for block in iter(lambda: f.read(_READ_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, pydantic models dumped in JSON mode."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def digest_of(*parts: Any) -> str:
    """Short digest (16 hex chars) of any JSON-able parts, in order: the stage key builder."""
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()[:DIGEST_CHARS]
