"""One function per command of the command line: what `selectivity <command>` does, given its
options as values. `selectivity.cli` parses the command line, calls one of these and prints
what it returns; these print nothing but progress bars.

    train(out, preset, assignments, device, progress)            -> the run's summary
    measure(source, split, checkpoint, out, assignments, device) -> (per-unit table, path)
    evaluate(source, suite, corruptions_dir, generate_corruptions, out, assignments, device,
             progress)                                           -> (evaluation table, path)
    corrupt(out, options, assignments, device, progress)         -> Corrupted
    sweep(out, config_file, preset, assignments, grid, device, ray_address, progress) -> trials
    report(sweep_dir, out, margin)                               -> report.html's path
    compare(folders, labels, out)                                -> report.html's path
    demo(out, assignments, device, progress)                     -> (trials, report.html's path)

Each command that writes holds its folder's lock (`selectivity.lock`) while it works: a second
process on the folder is refused in one line naming the first (`wait=True`: it waits). The lock
is taken here, not in train/evaluate themselves, whose callers (a sweep's trials) hold it.

Each command takes only the keys it uses (`TRAIN_KEYS`, `EVALUATE_KEYS`, ...): a key it would
ignore is refused with one line, so nothing is silently dropped. Errors the user can fix are
`SelectivityError`s (`selectivity.errors`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selectivity import config as cfg
from selectivity.errors import UserError

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from torch import nn

    from selectivity.data import DataSplits
    from selectivity.load import UserData

__all__ = [
    "ALL_KEYS",
    "CORRUPT_KEYS",
    "EVALUATE_KEYS",
    "MODEL_KEYS",
    "TRAIN_KEYS",
    "Corrupted",
    "ModelSource",
    "assignments",
    "compare",
    "corrupt",
    "demo",
    "evaluate",
    "locked",
    "measure",
    "report",
    "sweep",
    "train",
]


def _keys(*classes: type) -> frozenset[str]:
    return frozenset(field.name for cls in classes for field in dataclasses.fields(cls))


TRAIN_KEYS = _keys(cfg.TrainConfig)
EVALUATE_KEYS = _keys(cfg.EvalConfig) | {"device"}
CORRUPT_KEYS = frozenset(
    {
        "dataset",
        "data_dir",
        "image_size",
        "device",
        "corruptions",
        "severities",
        "corruption_table",
        "corruption_seed",
    }
)
ALL_KEYS = _keys(cfg.TrainConfig, cfg.EvalConfig, cfg.SweepConfig)
# What measuring or evaluating a user's model (--model) reads besides evaluation keys: its data
# and how it is read.
MODEL_KEYS = frozenset(
    {
        "dataset",
        "data_dir",
        "image_size",
        "seed",
        "device",
        "eval_batch_size",
        "selectivity_layers",
        "unit_types",
        "selectivity_positive_part",
        "unit_tokens",
        "image_key",
        "label_key",
    }
)
# Keys naming a data set of the registry, which --data replaces.
DATASET_KEYS = frozenset({"dataset", "data_dir", "image_size"})


def assignments(
    items: Sequence[str] | None,
    device: str | None,
    command: str,
    accepted: frozenset[str] = ALL_KEYS,
    hint: str = "",
) -> dict[str, Any]:
    """--set items (only keys in `accepted`), typed, with --device on top when given."""
    values = cfg.parse_assignments(items or [])
    if device is not None:
        values.update(cfg.parse_assignments([f"device={device}"]))
    refused = sorted(set(values) - accepted)
    if refused:
        what = {
            TRAIN_KEYS: "training keys",
            EVALUATE_KEYS: "evaluation keys and device",
        }.get(accepted, ", ".join(sorted(accepted)))
        raise UserError(
            f"{command} takes {what}, not {', '.join(refused)}{hint} (`selectivity keys` lists them)"
        )
    return values


def locked(folder: Path | None, wait: bool = False) -> contextlib.AbstractContextManager[Any]:
    """The write lock of `folder` (`lock.folder_lock`), a waiter told on stderr in one line;
    nothing for no folder."""
    if folder is None:
        return contextlib.nullcontext()
    from selectivity.lock import folder_lock

    def waiting(line: str) -> None:
        print(f"selectivity: {line}", file=sys.stderr)

    return folder_lock(folder, wait=wait, waiting=waiting)


def train(
    out: Path,
    preset: str,
    items: Sequence[str] | None = None,
    device: str | None = None,
    progress: bool = True,
    wait: bool = False,
) -> dict[str, Any]:
    """Train one network (a preset with --set keys on top) in `out`; the run's summary."""
    from selectivity.train import train as run_training

    config = cfg.build(
        cfg.TrainConfig, cfg.train_preset(preset), assignments(items, device, "train", TRAIN_KEYS)
    )
    with locked(out, wait):
        return run_training(config, out, progress=progress)


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """What `measure` and `evaluate` work on: a run folder, or a user's model (`--model` spec
    with its --weights, --normalize and --random-init, and optionally its own test set, a
    `--data` spec); exactly one of run_dir and model."""

    run_dir: Path | None = None
    model: str | None = None
    weights: Path | None = None
    normalize: str | None = None
    data: str | None = None
    random_init: bool = False

    def check(self) -> None:
        """UserError unless exactly one of RUN_DIR and --model is given, with its own options."""
        if (self.run_dir is None) == (self.model is None):
            raise UserError("give a RUN_DIR or --model package.module:factory, not both or neither")
        if self.model is None and (self.weights is not None or self.normalize is not None):
            raise UserError("--weights and --normalize go with --model")
        if self.model is None and self.data is not None:
            raise UserError("--data goes with --model (a run folder has its data set)")
        if self.model is None and self.random_init:
            raise UserError("--random-init goes with --model (a run folder has its checkpoints)")
        if self.weights is not None and self.random_init:
            raise UserError("give either --weights or --random-init, not both")

    def check_out(self, out: Path | None) -> None:
        """UserError for --out with a run folder (its tables stay in it)."""
        if self.run_dir is not None and out is not None:
            raise UserError("--out goes with --model; a run folder's tables stay in it")


def measure(
    source: ModelSource,
    split: str = "test",
    checkpoint: str = "best",
    out: Path | None = None,
    items: Sequence[str] | None = None,
    device: str | None = None,
    wait: bool = False,
) -> tuple[pd.DataFrame, Path | None]:
    """The per-unit selectivity table of a run's checkpoint, or of a user's model, on a split;
    written to RUN_DIR/selectivity.parquet (selectivity-<split>.parquet for val and train), or
    into `out` for a user's model when given. Returns (table, the file written or None)."""
    source.check()
    if split not in ("test", "val", "train"):
        raise UserError(f"--split must be test, val or train, got {split!r}")
    if checkpoint not in ("best", "last"):
        raise UserError(f"--checkpoint must be best or last, got {checkpoint!r}")
    if source.run_dir is not None:
        source.check_out(out)
        keys = assignments(items, device, "measure", TRAIN_KEYS)
        _existing_run(source.run_dir)
        with locked(source.run_dir, wait):
            return _measure_run(source.run_dir, split, checkpoint, keys)
    keys = assignments(items, device, "measure --model", MODEL_KEYS)
    with locked(out, wait):
        return _measure_user(source, split, keys, out)


def _existing_run(run_dir: Path) -> None:
    """UserError for a run folder that is not there (before its lock would create it)."""
    from selectivity.runs import read_config

    read_config(run_dir)


def _selectivity_file(split: str) -> str:
    # One file per split, so measuring val never replaces the test table the papers report.
    return "selectivity.parquet" if split == "test" else f"selectivity-{split}.parquet"


def _measure_run(
    run_dir: Path, split: str, checkpoint: str, keys: Mapping[str, Any]
) -> tuple[pd.DataFrame, Path]:
    from selectivity.data import load_dataset
    from selectivity.probe import check_layers, check_unit_types
    from selectivity.runs import check_data, load_model, read_config, resolve_device

    config = cfg.build(cfg.TrainConfig, cfg.to_dict(read_config(run_dir)), keys)
    target = resolve_device(config.device)
    _, model, state = load_model(run_dir, checkpoint, target)
    check_layers(model, config.units(), "selectivity_layers")
    check_unit_types(model, config.units())
    data = load_dataset(config.dataset, config.data_dir, config.seed, config.image_size)
    check_data(state, data, Path(run_dir) / f"checkpoint_{checkpoint}.pt")
    table = _measure_model(model, data, split, config, target)
    return table, _write(table, Path(run_dir) / _selectivity_file(split))


def _measure_user(
    source: ModelSource, split: str, keys: Mapping[str, Any], out: Path | None
) -> tuple[pd.DataFrame, Path | None]:
    from selectivity.runs import resolve_device

    config, data, notes = _user_data(keys, source.data)
    if source.data is not None and split != "test" and not data.own_splits:
        raise UserError(
            f"--data {source.data} gives one test set, not a {split} split (return a DataSplits "
            "for several)"
        )
    model = _user_model(source, data.splits, config)
    model = model.to(resolve_device(config.device))
    table = _measure_model(model, data.splits, split, config, resolve_device(config.device))
    _add_notes(table, notes)
    return table, _write(table, out / _selectivity_file(split)) if out is not None else None


def _user_data(
    keys: Mapping[str, Any], spec: str | None
) -> tuple[cfg.TrainConfig, UserData, tuple[str, ...]]:
    """The data keys of a user's model as a TrainConfig, the data set they name (or the test
    set of the `--data` spec), and notes on reading it."""
    from selectivity.data import load_dataset
    from selectivity.load import UserData, import_data

    if spec is not None:
        given = sorted(DATASET_KEYS & set(keys))
        if given:
            raise UserError(f"--data {spec} gives the test set; drop --set {', '.join(given)}")
    config = cfg.build(cfg.TrainConfig, keys)
    if spec is None:
        splits = load_dataset(config.dataset, config.data_dir, config.seed, config.image_size)
        return config, UserData(splits, own_splits=True), ()
    data = import_data(spec, config.image_key, config.label_key)
    return config, data, data.notes


def _add_notes(table: pd.DataFrame, notes: Sequence[str]) -> None:
    """`notes` first among the table's notes (`attrs["notes"]`)."""
    table.attrs["notes"] = [*notes, *table.attrs.get("notes", [])]


def _user_model(source: ModelSource, data: DataSplits, config: cfg.TrainConfig) -> nn.Module:
    from selectivity.load import user_model

    assert source.model is not None  # ModelSource.check
    return user_model(
        source.model, source.weights, source.normalize, data, config.units(), source.random_init
    )


def _measure_model(
    model: nn.Module, data: DataSplits, split: str, config: cfg.TrainConfig, device: torch.device
) -> pd.DataFrame:
    from selectivity.measure import FunctionalReluWarning, measure_model

    with warnings.catch_warnings():
        # The command prints the table's notes, which say the same in one line.
        warnings.simplefilter("ignore", FunctionalReluWarning)
        return measure_model(
            model,
            getattr(data, split),
            num_classes=data.num_classes,
            layers=config.units(),
            batch_size=config.eval_batch_size,
            device=device,
            split=split,
        )


def _write(table: pd.DataFrame, path: Path) -> Path:
    from selectivity.files import write_table

    path.parent.mkdir(parents=True, exist_ok=True)
    return write_table(table, path)


def evaluate(
    source: ModelSource,
    suite: str = "full",
    corruptions_dir: Path | None = None,
    generate_corruptions: bool = False,
    out: Path | None = None,
    items: Sequence[str] | None = None,
    device: str | None = None,
    progress: bool = True,
    wait: bool = False,
) -> tuple[pd.DataFrame, Path | None]:
    """The evaluation table of a run's best checkpoint (written to RUN_DIR/evaluation.parquet),
    or of a user's model on the test split of the data --set names (written into `out` when
    given, resumable). Returns (table, the file written or None).

    A corruption set on disk is looked at before any other work: a missing or wrong folder
    fails at once, not after the clean part has run.
    """
    from selectivity.corruptions.generate import stored_corruption_set
    from selectivity.evaluation import eval_config
    from selectivity.runs import read_config

    source.check()
    if corruptions_dir is not None and generate_corruptions:
        raise UserError("give either --corruptions-dir or --generate-corruptions, not both")
    accepted = EVALUATE_KEYS if source.model is None else EVALUATE_KEYS | MODEL_KEYS
    overrides = assignments(items, device, "evaluate", accepted)
    data_keys = {k: overrides.pop(k) for k in MODEL_KEYS - {"device"} if k in overrides}
    target = overrides.pop("device", None)
    flags: dict[str, object] = {"generate_corruptions": generate_corruptions}
    if corruptions_dir is not None:
        flags["corruptions_dir"] = str(corruptions_dir)
    config = eval_config(suite, overrides, flags)
    source.check_out(out)
    if source.run_dir is not None:
        read_config(source.run_dir)  # a missing run folder is named before the corruption set
    if config.corruptions_dir is not None:
        stored_corruption_set(config.corruptions_dir, config.corruptions)
    if source.run_dir is not None:
        from selectivity.evaluation import evaluate as run_evaluation

        with locked(source.run_dir, wait):
            table = run_evaluation(source.run_dir, config, device=target, progress=progress)
        return table, Path(source.run_dir) / "evaluation.parquet"
    keys = {**data_keys, **({"device": target} if target is not None else {})}
    with locked(out, wait):
        table = _evaluate_user(source, keys, config, out, progress)
    return table, out / "evaluation.parquet" if out is not None else None


def _evaluate_user(
    source: ModelSource,
    data_keys: Mapping[str, Any],
    config: cfg.EvalConfig,
    out: Path | None,
    progress: bool,
) -> pd.DataFrame:
    from selectivity.evaluation import evaluate_model
    from selectivity.measure import FunctionalReluWarning
    from selectivity.runs import resolve_device

    train_config, data, data_notes = _user_data(data_keys, source.data)
    device = resolve_device(train_config.device)
    model = _user_model(source, data.splits, train_config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FunctionalReluWarning)  # a note in the table says it
        table = evaluate_model(
            model,
            data.splits,
            config,
            out_dir=out,
            layers=train_config.units(),
            batch_size=train_config.eval_batch_size,
            seed=train_config.seed,
            device=device,
            dataset=train_config.dataset if source.data is None else None,
            progress=progress,
        )
    _add_notes(table, data_notes)
    return table


@dataclasses.dataclass(frozen=True)
class Corrupted:
    """What `corrupt` wrote: the files of this call, and the set's size."""

    written: list[str]
    images: int
    severities: int


def corrupt(
    out: Path,
    options: Mapping[str, Any],
    split: str = "test",
    items: Sequence[str] | None = None,
    device: str | None = None,
    progress: bool = True,
    wait: bool = False,
) -> Corrupted:
    """Generate the corruption set of a data set's test (or val) images into `out`.

    options: the command's own options, keys by name (dataset, data_dir, image_size,
    corruption_seed, corruption_table, corruptions); given (not None), they win over --set.
    The data set defaults to digits. Every value is checked before any work.
    """
    from selectivity.corruptions import generate_from_dataset
    from selectivity.runs import resolve_device

    if split not in ("test", "val"):
        raise UserError(f"--split must be test or val, got {split!r}")
    names_seed = any(item.split("=", 1)[0].strip() == "seed" for item in items or [])
    hint = " (the corruption seed is --seed or corruption_seed)" if names_seed else ""
    keys = assignments(items, device, "corrupt", CORRUPT_KEYS, hint=hint)
    keys.update({k: v for k, v in options.items() if v is not None})
    keys.setdefault("dataset", "digits")
    data_keys = cfg.build(cfg.TrainConfig, keys)
    set_keys = cfg.build(cfg.EvalConfig, keys)
    target = resolve_device(data_keys.device)
    with locked(out, wait):
        written, images = generate_from_dataset(
            out,
            data_keys.dataset,
            data_keys.data_dir,
            data_keys.image_size,
            split,
            seed=set_keys.corruption_seed,
            corruptions=set_keys.corruptions,
            severities=set_keys.severities,
            table=set_keys.corruption_table,
            device=target,
            progress=progress,
        )
    return Corrupted(written, images, len(set_keys.severities))


def sweep(
    out: Path,
    config_file: Path | None = None,
    preset: str | None = None,
    items: Sequence[str] | None = None,
    grid: Sequence[str] | None = None,
    device: str | None = None,
    ray_address: str | None = None,
    progress: bool = True,
    wait: bool = False,
) -> pd.DataFrame:
    """Run (or resume) a sweep in `out`: a preset (default demo) or a config file, --set keys on
    top, --grid replacing its grid; the trials table (`selectivity.sweep.run_sweep`)."""
    from selectivity.grid import load_config_file, parse_grid
    from selectivity.sweep import run_sweep

    if preset is not None and config_file is not None:
        raise UserError("give either --preset or a CONFIG_FILE, not both")
    base = (
        cfg.sweep_preset(preset or "demo") if config_file is None else load_config_file(config_file)
    )
    assigned = assignments(items, device, "sweep")
    overrides: list[dict[str, Any]] = [base, assigned]
    if grid:
        overrides.append({"grids": [parse_grid(grid, assigned)]})
    if ray_address:
        overrides.append({"executor": "ray", "ray_address": ray_address})
    return run_sweep(out, overrides, progress=progress, wait=wait)


def report(
    sweep_dir: Path, out: Path | None = None, margin: float | None = None, wait: bool = False
) -> Path:
    """Write the report of the sweep in `sweep_dir` into `out` (default: the sweep folder);
    `margin`: the equivalence margin of the "costs no accuracy" claims (accuracy fraction)."""
    from selectivity.files import read_table
    from selectivity.report import EQUIVALENCE_MARGIN, load_trial_tables, write_report

    margin = EQUIVALENCE_MARGIN if margin is None else margin
    if not 0 < margin < 1:
        raise UserError(f"--margin must be an accuracy difference in (0, 1), got {margin:g}")
    results = sweep_dir / "results.parquet"
    if not results.is_file():
        raise UserError(f"no results table: {results} is missing (made by `selectivity sweep`)")
    rebuild = "; run `selectivity sweep` on the folder again to rebuild it"
    table = read_table(results, ["alpha", "seed", "metric", "value"], rebuild)
    trials_path = sweep_dir / "trials.parquet"
    trials = read_table(trials_path, ["status"], rebuild) if trials_path.is_file() else None
    failed = trials[trials["status"] != "done"] if trials is not None else None
    kept = load_trial_tables(sweep_dir, table)
    with locked(out or sweep_dir, wait):
        return write_report(
            table,
            out or sweep_dir,
            failed=failed,
            epochs=kept.epochs,
            units=kept.units,
            equivalence_margin=margin,
        )


def compare(folders: Sequence[Path], labels: str | None, out: Path, wait: bool = False) -> Path:
    """Put the evaluated models in `folders` side by side (`report.compare`): labels are
    comma-separated, one per folder (default: the folder names); OUT gets comparison.parquet,
    comparison_units.parquet, figures/ and report.html, whose path is returned."""
    from selectivity.report.compare import gather, write_comparison

    names = None if labels is None else [name.strip() for name in labels.split(",")]
    gathered = gather(folders, names)
    with locked(out, wait):
        return write_comparison(gathered, out)


def demo(
    out: Path,
    items: Sequence[str] | None = None,
    device: str | None = None,
    progress: bool = True,
    wait: bool = False,
) -> tuple[pd.DataFrame, Path]:
    """The demo sweep (`presets.DEMO_GRIDS` on the embedded digits) in `out`, then its report;
    (the trials table, report.html's path)."""
    import pandas as pd

    from selectivity.report import load_trial_tables, write_report
    from selectivity.sweep import run_sweep

    trials = run_sweep(
        out,
        [cfg.sweep_preset("demo"), assignments(items, device, "demo")],
        progress=progress,
        grids=cfg.DEMO_GRIDS,
        wait=wait,
    )
    with locked(out, wait):  # the sweep let go of the folder; another writer may be waiting
        table = pd.read_parquet(out / "results.parquet")
        kept = load_trial_tables(out, table)
        path = write_report(
            table,
            out,
            failed=trials[trials["status"] != "done"],
            epochs=kept.epochs,
            units=kept.units,
        )
    return trials, path
