"""Atomic file writes: a file is either absent or complete, never half-written."""

import json
import os
from pathlib import Path


def atomic_write(path, write) -> Path:
    """Call `write(tmp_path)` then rename it onto `path` (same folder, so the rename is atomic)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path, data) -> Path:
    return atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2) + "\n"))
