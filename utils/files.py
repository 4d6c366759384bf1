"""Atomic file writes: a file is either absent or complete, never half-written."""

import json
import os
import tempfile
from pathlib import Path


def atomic_write(path, write) -> Path:
    """Call `write(tmp_path)` then rename it onto `path` (same folder, so the rename is atomic). The temporary
    name is unique, so processes writing the same file at once (parallel sweep runs) do not mix their bytes."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path, data) -> Path:
    return atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2) + "\n"))
