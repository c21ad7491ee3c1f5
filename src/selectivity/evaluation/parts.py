"""The resumable part store: each finished part of an evaluation, as
OUT_DIR/evaluation/<part>.parquet.

    parts = PartStore(out_dir, key)       key: what the parts depend on (config, weights, data)
    parts.get("fgsm", compute)            the stored table, or compute() written and returned

The folder is stamped with a hash of `key` (evaluation/config.json): a folder stamped with
another key holds another evaluation and is replaced whole, and `replaced_note` names the keys
that differed. Without a folder nothing is kept and every part is computed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from selectivity import schema
from selectivity.files import (
    differing_keys,
    read_json,
    read_table,
    remove_stale_temporaries,
    write_table,
    write_text,
)

__all__ = ["PartStore"]


class PartStore:
    """Finished parts on disk, keyed by a hash of the evaluation's key (no folder: none kept)."""

    def __init__(self, run_dir: Path | None, key: dict[str, Any]):
        # Keys in which the evaluation found here, and replaced, differed; None: none replaced.
        self.replaced: list[str] | None = None
        self.folder = run_dir / "evaluation" if run_dir is not None else None
        if self.folder is None:
            return
        fingerprint = hashlib.sha256(
            json.dumps(key, sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        stamp = self.folder / "config.json"
        previous = read_json(stamp, self._advice) if stamp.is_file() else {}
        if self.folder.exists() and previous.get("fingerprint") != fingerprint:
            self.replaced = _differing(previous.get("config"), key)
            try:
                shutil.rmtree(self.folder)
            except OSError as error:
                # rmtree names only the entry it failed on, without its folder.
                raise OSError(error.errno, error.strerror, str(self.folder)) from error
        self.folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.folder)  # of an evaluation killed while writing
        write_text(
            stamp,
            json.dumps({"fingerprint": fingerprint, "config": key}, indent=2, default=str) + "\n",
        )

    @property
    def replaced_note(self) -> str | None:
        """The table's note that an evaluation made with other settings was replaced; None when
        none was."""
        if self.replaced is None:
            return None
        return (
            f"replaced the evaluation in {self.folder}, made with other settings "
            f"({', '.join(self.replaced)})"
        )

    @property
    def _advice(self) -> str:
        return f"; delete {self.folder} to evaluate afresh"

    def get(self, name: str, compute: Callable[[], schema.Rows]) -> pd.DataFrame:
        """Part `name`'s table: read back when stored, else `compute()`d and stored."""
        if self.folder is None:
            return schema.frame(compute())
        path = self.folder / f"{name}.parquet"
        if path.exists():
            return read_table(path, schema.COLUMNS, self._advice)
        frame = schema.frame(compute())
        write_table(frame, path)
        return frame


def _differing(recorded: Any, key: dict[str, Any]) -> list[str]:
    """The names of the keys of a parts stamp's `config` that differ from `key`."""
    if not isinstance(recorded, dict):
        return ["no settings recorded"]
    current = json.loads(json.dumps(key, default=str))  # as the stamp stores it
    names = []
    for name in differing_keys(recorded, current):
        old, new = recorded.get(name), current.get(name)
        # A nested config is named by its keys that differ, not by its own name.
        if isinstance(old, dict) and isinstance(new, dict):
            names += differing_keys(old, new)
        else:
            names.append(name)
    return names or ["an older version of selectivity"]
