"""Atomic file writes: results are written to a temporary name in the same folder and renamed,
so a reader (or a resumed run) never sees a half-written file.

Temporary names are `.<name>.<pid>-<random>.tmp`: a run killed mid-write leaves such a file
behind, and `remove_stale_temporaries` clears those whose writer is gone.

Writers: `write_text`, `write_bytes`, `write_table` (Parquet), or `atomic_path` for any other.
Reading goes through `read_json` and `read_table`: a file that is unreadable or not what it should
be (damaged on disk, edited by hand, copied from elsewhere) is a `FileError` whose message is one
line naming the file, never a parser's traceback.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selectivity.errors import SelectivityError

__all__ = [
    "FileError",
    "FolderError",
    "atomic_path",
    "one_line",
    "read_json",
    "read_table",
    "refuse_other_contents",
    "remove_stale_temporaries",
    "write_bytes",
    "write_table",
    "write_text",
]

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
    if error.errno is None:
        return OSError(f"{path}: {error}")
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


def _write(path: str | Path, writer: Callable[[Path], object]) -> Path:
    with atomic_path(path) as temporary:
        writer(temporary)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return _write(path, lambda tmp: tmp.write_text(text))


def write_bytes(path: str | Path, data: bytes) -> Path:
    return _write(path, lambda tmp: tmp.write_bytes(data))


def write_table(table: Any, path: str | Path) -> Path:
    """Write DataFrame `table` to `path` as Parquet (without its index), atomically; the table's
    reader is `read_table`."""
    return _write(path, lambda tmp: table.to_parquet(tmp, index=False))


def _writer_alive(pid: int, written: float) -> bool:
    """Whether process `pid` runs and may be the one that wrote a file last modified at `written`
    (seconds since the epoch)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    # Linux: a killed writer stays a zombie until it is reaped (seconds, for an orphan), and a
    # pid is reused by later processes; neither is the writer.
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, IndexError, StopIteration, ValueError):
        return True
    if fields[0] == "Z":
        return False
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return started <= written + 1.0  # boot time is rounded to the second


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
            written = candidate.stat().st_mtime
        except FileNotFoundError:
            continue
        if not _writer_alive(pid, written):
            candidate.unlink(missing_ok=True)


class FileError(SelectivityError, ValueError):
    """A file is unreadable or does not hold what it should; the message is one line naming it."""


def one_line(error: BaseException, with_type: bool = False) -> str:
    """The first line of `error`'s message (the name of its type when it has none), for user
    messages that are one line; with_type: "TypeName: first line"."""
    text = str(error).strip()
    if not text:
        return type(error).__name__
    line = text.splitlines()[0].strip()
    return f"{type(error).__name__}: {line}" if with_type else line


def read_json(path: str | Path, advice: str = "") -> dict[str, Any]:
    """The JSON object in `path`; FileError (one line, `advice` appended) if it is not one.

    A missing file is FileNotFoundError, left to the caller, which knows what a missing file means.
    """
    path = Path(path)
    text = path.read_bytes()
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FileError(f"{path} is not valid JSON ({one_line(error)}){advice}") from None
    if not isinstance(value, dict):
        raise FileError(f"{path} does not hold a JSON object of keys{advice}")
    return value


class FolderError(FileError):
    """A folder holds something other than asked for: a run, sweep or corruption set made with
    other settings. The message is one line naming the keys that differ."""


def differing_keys(
    recorded: Mapping[str, Any], wanted: Mapping[str, Any], ignore: Collection[str] = ()
) -> list[str]:
    """The keys, sorted, in which two records differ (absent on one side counts as None there)."""
    return sorted(
        key
        for key in set(recorded) | set(wanted)
        if key not in ignore and recorded.get(key) != wanted.get(key)
    )


def refuse_other_contents(
    folder: str | Path,
    holds: str,
    recorded: Mapping[str, Any],
    wanted: Mapping[str, Any],
    advice: str,
    ignore: Collection[str] = (),
) -> None:
    """The one rule for a folder that holds something else: it is refused, never written into
    nor deleted. FolderError if `recorded` (what the folder's record says it holds) and `wanted`
    differ in a key outside `ignore` (a key absent from one side counts as None there):
    '<folder> holds <holds> (<key>: <recorded> there, <wanted> here, ...); <advice>'.
    """
    differing = differing_keys(recorded, wanted, ignore)
    if differing:
        detail = ", ".join(
            f"{key}: {recorded.get(key)!r} there, {wanted.get(key)!r} here" for key in differing
        )
        raise FolderError(f"{folder} holds {holds} ({detail}); {advice}")


def read_table(path: str | Path, columns: Iterable[str] = (), advice: str = "") -> Any:
    """The Parquet table in `path` as a DataFrame, with at least `columns`; else FileError.

    A missing file is FileNotFoundError, left to the caller.
    """
    import pandas as pd
    import pyarrow as pa

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    try:
        table = pd.read_parquet(path)
    except PermissionError:
        raise
    except (pa.ArrowException, ValueError, OSError) as error:
        # A truncated or damaged file; pyarrow names the cause on its first line (after the path).
        cause = one_line(error).replace(f"Could not open Parquet input source '{path}': ", "")
        raise FileError(f"{path} is not a readable Parquet table ({cause}){advice}") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise FileError(f"{path} lacks column(s) {', '.join(missing)}{advice}")
    return table
