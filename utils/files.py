"""Atomic file writes: a file is either absent or complete, never half-written."""

import errno
import json
import os
import tempfile
from pathlib import Path

from .errors import UserError

UMASK = os.umask(0o022)  # reading the umask means setting it: set it straight back
os.umask(UMASK)


class DiskFullError(UserError, OSError):
    """No space left for a file; the message names the file and the fix."""


def atomic_write(path, write) -> Path:
    """Call `write(tmp_path)` then rename it onto `path` (same folder, so the rename is atomic). The temporary
    name is unique, so processes writing the same file at once (parallel sweep runs) do not mix their bytes.
    The file gets the mode a plain `open` would give (0644 with the usual umask), not mkstemp's 0600.
    A full disk raises DiskFullError naming the file; a previous version of it is left as it was."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        write(tmp)
        tmp.chmod(0o666 & ~UMASK)
        os.replace(tmp, path)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DiskFullError(
            f"cannot write {path}: no space left on the device; free some space, then run again"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path, data) -> Path:
    return atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2) + "\n"))
