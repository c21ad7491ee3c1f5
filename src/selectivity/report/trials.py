"""The per-trial tables a sweep keeps in its trial folders, gathered for the report: each
finished trial's `metrics.parquet` (one row per epoch) and `selectivity.parquet` (one row per
unit, written by `selectivity measure`), with the trial's columns in front.

A sweep gathers only evaluation rows into results.parquet; these two stay in the trial folders
(SWEEP_DIR/<key>=<value>/.../seed=<s>/), found here through each folder's trial.json, which
records the trial's values. Reads tables only (pandas and the package's file readers).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from selectivity.files import FileError, read_json, read_table
from selectivity.report.stats import trial_columns

__all__ = ["TrialTables", "load_trial_tables"]


@dataclass(frozen=True)
class TrialTables:
    """epochs: every trial's metrics.parquet; units: every trial's selectivity.parquet (test
    split); each with the trial columns of the results table in front, None when no trial has
    the file. `notes`: files that could not be read, one line each (each also a warning)."""

    epochs: pd.DataFrame | None = None
    units: pd.DataFrame | None = None
    notes: tuple[str, ...] = ()


def _values(record: dict, columns: list[str], results: pd.DataFrame) -> dict | None:
    """The trial's values for the results table's trial columns, in their dtypes; None when
    trial.json lacks one (a folder of another sweep layout)."""
    if any(column not in record for column in columns):
        return None
    values = {}
    for column in columns:
        value = record[column]
        # In the results column's dtype, so that merging on trial columns matches (a value
        # that does not convert stays as recorded, and matches no trial).
        with contextlib.suppress(TypeError, ValueError):
            value = pd.Series([value]).astype(results[column].dtype).iloc[0]
        values[column] = value
    return values


def load_trial_tables(sweep_dir: str | os.PathLike, results: pd.DataFrame) -> TrialTables:
    """Gather metrics.parquet and selectivity.parquet of every finished trial under `sweep_dir`
    whose values are trials of `results` (a sweep's results table). A file that cannot be read
    is left out with a warning (one line naming it): the report goes on without it."""
    columns = trial_columns(results)
    known = results[columns].drop_duplicates()
    epochs: list[pd.DataFrame] = []
    units: list[pd.DataFrame] = []
    notes: list[str] = []
    for status_path in sorted(Path(sweep_dir).rglob("trial.json")):
        try:
            record = read_json(status_path)
        except (FileError, OSError, ValueError) as error:
            notes.append(f"{status_path} unreadable ({error}); its trial is left out")
            continue
        if not isinstance(record, dict) or record.get("status") != "done":
            continue
        values = _values(record, columns, results)
        if values is None:
            continue
        folder = status_path.parent
        for name, found in (("metrics.parquet", epochs), ("selectivity.parquet", units)):
            path = folder / name
            if not path.is_file():
                continue
            try:
                table = read_table(path, [], "")
            except (FileError, OSError, ValueError) as error:
                notes.append(f"{error}; left out of the report")
                continue
            found.append(table.assign(**values)[[*columns, *table.columns]])
    for note in notes:
        warnings.warn(note, stacklevel=2)
    frames = []
    for found in (epochs, units):
        frame = pd.concat(found, ignore_index=True) if found else None
        if frame is not None:
            # Only the trials of this results table (a folder may hold others' trial folders).
            frame = frame.merge(known, on=columns, how="inner")
        frames.append(frame if frame is not None and len(frame) else None)
    return TrialTables(frames[0], frames[1], tuple(notes))
