"""Atomic file writes: results are written to a temporary name in the same folder and renamed,
so a reader (or a resumed run) never sees a half-written file.

Temporary names are `.<name>.<pid>-<random>.tmp`: a run killed mid-write leaves such a file
behind, and `remove_stale_temporaries` clears those whose writer is gone.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
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


# Below this much free space, a writer that failed without saying why (torch.save reports a full
# disk as "unexpected pos", np.save as "requested and written") is taken to have run out of room.
_NEARLY_FULL_BYTES = 1 << 20


def _disk_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < _NEARLY_FULL_BYTES
    except OSError:
        return False


def _naming(error: OSError, path: Path) -> OSError:
    """The same error, naming the file the user asked for instead of its temporary."""
    return OSError(error.errno, os.strerror(error.errno), str(path))


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed.

    Errors of the file system (read-only, full, no permission) come out as OSError naming `path`;
    a writer's own error on a full disk becomes OSError(ENOSPC) too.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp"
        )
    except OSError as error:
        raise _naming(error, path) from None
    os.close(handle)
    try:
        yield Path(temporary)
        # mkstemp makes files private (0600); results and shared caches get the usual permissions.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException as error:
        # Asked before the temporary goes, since removing it frees the space it filled.
        full = (
            isinstance(error, Exception)
            and not (isinstance(error, OSError) and error.errno is not None)
            and _disk_full(path.parent)
        )
        Path(temporary).unlink(missing_ok=True)
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from error
        if (
            isinstance(error, OSError)
            and error.errno is not None
            and error.filename in (None, temporary)
        ):
            raise _naming(error, path) from error
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
