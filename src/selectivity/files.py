"""Atomic file writes: results are written to a temporary name in the same folder and renamed,
so a reader (or a resumed run) never sees a half-written file.

Temporary names are `.<name>.<pid>-<random>.tmp`: a run killed mid-write leaves such a file
behind, and `remove_stale_temporaries` clears those whose writer is gone.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "remove_stale_temporaries", "write_bytes", "write_text"]

_TEMPORARY = re.compile(r"^\..+\.(\d+)-[^.]+\.tmp$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp"
    )
    os.close(handle)
    try:
        yield Path(temporary)
        # mkstemp makes files private (0600); results and shared caches get the usual permissions.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write(path: str | Path, writer: Callable[[Path], None]) -> Path:
    with atomic_path(path) as temporary:
        writer(temporary)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return _write(path, lambda tmp: tmp.write_text(text))


def write_bytes(path: str | Path, data: bytes) -> Path:
    return _write(path, lambda tmp: tmp.write_bytes(data))


def remove_stale_temporaries(folder: str | Path) -> None:
    """Delete temporary files in `folder` left by writers that are no longer running."""
    for candidate in Path(folder).glob(".*.tmp"):
        match = _TEMPORARY.match(candidate.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            candidate.unlink(missing_ok=True)
        except PermissionError:
            pass  # another user's live process
