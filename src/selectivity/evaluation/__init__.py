"""Everything the papers measure about one trained network, as one tidy table.

    evaluate_model(model, data, EvalConfig, out_dir=...) -> DataFrame (`selectivity.schema`)
        any nn.Module on [0, 1] images, any data (Dataset, DataLoader, tensors, DataSplits)
    evaluate(run_dir, EvalConfig)   the same for the best checkpoint of a run folder

The work is split into parts, listed in order in `suite.PARTS` (clean, representations,
offaxis, ablation, each corruption, fgsm, pgd, autoattack, jacobian, gradients,
dimensionality), each a function of one `context.Context`. Representations (unit responses
for `selectivity.comparison`, stored as OUT_DIR/evaluation/representations.npz) are kept only
with an `out_dir`.
With an `out_dir`, each finished part is written to `OUT_DIR/evaluation/<part>.parquet`, so an
interrupted evaluation resumes at the first unfinished part; `OUT_DIR/evaluation.parquet` is
assembled from the parts at the end. Parts are keyed by the evaluation config and what was
evaluated: changing it starts afresh, and a note in the table's notes names the keys that
changed (`parts.PartStore`). Every row says what produced it (split, samples, attack step
size). Metric names and keys: `selectivity.schema` and docs/results.md. AutoAttack and the PGD
rerun beside it: `evaluation.autoattack`.
"""

from __future__ import annotations

import hashlib
import math
import sys
import tempfile
from collections.abc import Sequence
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from selectivity import schema
from selectivity.catalog import format_eps
from selectivity.config import EvalConfig, TrainConfig, build, suite_defaults, to_dict
from selectivity.corruptions.generate import corruption_source
from selectivity.corruptions.tables import TRAINING_SUBSET
from selectivity.data import Labelled, labelled, load_dataset
from selectivity.evaluation import autoattack
from selectivity.evaluation.context import Context
from selectivity.evaluation.parts import PartStore
from selectivity.evaluation.suite import (
    PARTS,
    corruption_rows,
    derived_rows,
    dimensionality_cap,
    heldout_note,
)
from selectivity.files import remove_stale_temporaries, write_table
from selectivity.measure import accuracy, model_device, units_note, unmeasured_relu_note
from selectivity.models import LogitsOnly
from selectivity.probe import Sites, unwrap
from selectivity.runs import check_data, load_model, resolve_device

__all__ = [
    "DEFAULT_KEYS",
    "DEFAULT_SUITE",
    "default_config",
    "derived_rows",
    "dimensionality_cap",
    "eval_config",
    "evaluate",
    "evaluate_model",
    "pgd_binding_note",
    "run_settings",
]

# Bumped when the rows of a part change, so that parts written by an older version are redone.
TABLE_VERSION = 3


def eval_config(suite: str = "full", *overrides: dict[str, Any]) -> EvalConfig:
    """The EvalConfig of a suite (`quick` or `full`) with key overrides applied on top."""
    return build(EvalConfig, suite_defaults(suite), *overrides)


# What `evaluate_model` measures when given no config: the quick suite (bounded samples, minutes
# on a CPU rather than hours) with a PGD step that lets the attack reach its radius (2.5 * eps /
# steps), not the papers' 1e-4, at which an 8/255 ball binds only after 314 steps.
DEFAULT_SUITE = "quick"
DEFAULT_KEYS: dict[str, Any] = {"pgd_step_size": "auto"}


def default_config() -> EvalConfig:
    """The config of `evaluate_model` without one: `DEFAULT_SUITE` with `DEFAULT_KEYS`."""
    return eval_config(DEFAULT_SUITE, DEFAULT_KEYS)


def pgd_binding_note(config: EvalConfig) -> str | None:
    """A note when a PGD run of `config` can never reach its eps (steps x step < eps: the attack
    starts at the image), so its accuracies measure steps x step, not eps; None otherwise."""
    runs = [("PGD", max(config.pgd_steps, default=0))]
    runs.append(("the adversarial dimensionality's PGD", config.dimensionality_pgd_steps))
    short = []
    for what, steps in runs:
        if steps <= 0 or config.pgd_eps <= 0:
            continue
        reach = steps * config.pgd_step(steps)
        if reach < config.pgd_eps * (1 - 1e-6):
            short.append(f"{what} ({steps} steps x {config.pgd_step(steps):.3g} = {reach:.3g})")
    if not short:
        return None
    return (
        f"the PGD eps-ball never binds: {' and '.join(short)} cannot reach eps = "
        f"{format_eps(config.pgd_eps)}, so those accuracies measure steps x step size, not eps "
        "(pgd_step_size=auto: 2.5 * eps / steps)"
    )


def evaluate(
    run_dir: str | Path,
    config: EvalConfig,
    device: str | None = None,
    progress: bool = True,
    clean_only: bool = False,
) -> pd.DataFrame:
    """Evaluate the best checkpoint of a run; write and return RUN_DIR/evaluation.parquet.

    clean_only: only the clean part (test and validation accuracy, chance, selectivity with its
    live mean and silent fraction), for sweeps that study selectivity and accuracy without
    robustness.
    """
    run_dir = Path(run_dir)
    train_config, model, checkpoint = load_model(run_dir, "best", "cpu")
    device_ = resolve_device(device or train_config.device)
    model = model.to(device_)
    data = load_dataset(
        train_config.dataset, train_config.data_dir, train_config.seed, train_config.image_size
    )
    check_data(checkpoint, data, run_dir / "checkpoint_best.pt")
    return evaluate_model(
        model, data, config, **run_settings(train_config, checkpoint, run_dir), device=device_,
        progress=progress, clean_only=clean_only,
    )  # fmt: skip


def run_settings(train_config: TrainConfig, best: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The keyword arguments of `evaluate_model` for the run in `run_dir` whose best checkpoint
    is `best`: its layers, batch size, seed and data set, the checkpoint's validation accuracy,
    and parts keyed by the checkpoint's epoch."""
    return {
        "out_dir": run_dir,
        "layers": train_config.units(),
        "batch_size": train_config.eval_batch_size,
        "seed": train_config.seed,
        "dataset": train_config.dataset,
        "val_accuracy": best.get("val_accuracy", math.nan),
        "identity": {"checkpoint_epoch": best.get("epoch")},
        "trained_corruptions": train_config.mix_subset(),
    }


def evaluate_model(
    model: nn.Module,
    data: Any,
    config: EvalConfig | None = None,
    *,
    num_classes: int | None = None,
    out_dir: str | Path | None = None,
    layers: Sites = None,
    batch_size: int = 256,
    seed: int = 0,
    device: torch.device | str | None = None,
    dataset: str | None = None,
    val_accuracy: float | None = None,
    identity: dict[str, Any] | None = None,
    trained_corruptions: Sequence[str] = TRAINING_SUBSET,
    progress: bool | None = None,
    clean_only: bool = False,
) -> pd.DataFrame:
    """Evaluate any `model` on test data; return the tidy table of `selectivity.schema`.

    model: an nn.Module taking float (N, C, H, W) images in [0, 1] (normalisation inside it; a
        `torch.compile`d one runs as its original module); put in eval mode. data: a DataSplits
        (its test split), or anything `data.as_images` reads: a torch Dataset, a non-shuffling
        DataLoader, a pair of tensors (images, labels), batches. num_classes: None takes it from
        the data. config: what to measure; None: `default_config()`, the quick suite with
        pgd_step_size=auto (a note says so; `eval_config("full")` is everything the papers
        measure, AutoAttack's standard version included: hours on a CPU). Corruptions:
        `config.corruptions_dir`, or `config.generate_corruptions` from the test images (into
        OUT_DIR/corruptions, or a temporary folder removed afterwards); neither skips them.
    out_dir: None writes nothing; a folder gets OUT_DIR/evaluation.parquet and each finished part
        in OUT_DIR/evaluation/, so an interrupted evaluation resumes. Parts are keyed by the
        config and `identity` (None: a digest of the weights, the test data and these settings).
    layers: which outputs are units (names or a `probe.Units`; default every nn.ReLU call
        site). batch_size: images per forward; seed: the random streams of the attacks'
        projections and corruptions. device: where to run (the model is moved there; default
        its own). dataset: the data set's name (picks the dimensionality corruption);
        val_accuracy: a row for the checkpoint's validation accuracy, when given.
    trained_corruptions: corruptions the model may have trained on (the corruption mix's
        operations): `corruption_accuracy_heldout_mean` leaves out every benchmark corruption of
        their families (noise, blur, weather, digital), and a note says so unless they are the
        default `TRAINING_SUBSET`.
    progress: bars for the parts; None: when stderr is a terminal or in a notebook.
    clean_only: only the clean part (accuracy, chance, selectivity, silent fraction).
    The table's `attrs["notes"]` says what was skipped or replaced, and when PGD's eps-ball
    never binds.
    """
    model = unwrap(model)
    chosen = [] if config is not None else [_default_note()]
    config = config if config is not None else default_config()
    progress = progress if progress is not None else _interactive()
    device_ = torch.device(device) if device is not None else model_device(model)
    model.to(device_).eval()
    test = labelled(data, num_classes)
    run_dir = Path(out_dir) if out_dir is not None else None
    if run_dir is not None:
        remove_stale_temporaries(run_dir)  # of a run or an evaluation killed while writing
    key = identity if identity is not None else _identity(model, test, layers, batch_size, seed)
    parts = PartStore(run_dir, {"eval": to_dict(config), **key, "table": TABLE_VERSION})
    notes = [*chosen, *([parts.replaced_note] if parts.replaced_note else [])]
    notes += _input_notes(model, test, config, layers, clean_only)
    # Without an out_dir, a temporary folder for what parts keep while they run (a generated
    # corruption set, AutoAttack's state files).
    scratch = run_dir is None and not clean_only
    with tempfile.TemporaryDirectory(prefix="selectivity-") if scratch else nullcontext() as tmp:
        work = run_dir or Path(tmp or ".")
        # Models that return an output object (`.logits`) or a dict are read through it;
        # the probe looks through the wrapper, so unit names stay the model's.
        context = Context.of(
            LogitsOnly(model), data, test, config, layers=layers, batch=batch_size, seed=seed,
            dataset=dataset, val_accuracy=val_accuracy, device=device_, progress=progress,
            work=work,
        )  # fmt: skip
        frames = _run_parts(context, parts, notes, work, clean_only)
    if clean_only:
        return _write_table(run_dir, frames, notes)
    # Corrupted and attacked accuracy are measured on the `max_samples` subset: normalise by
    # clean accuracy on the same images, not on the whole test set.
    subset = context.test
    clean_on_subset = (
        accuracy(model, subset, context.batch, device_) if len(subset) < len(test.images) else None
    )
    measured = pd.concat(frames, ignore_index=True)
    trained = tuple(trained_corruptions)
    frames.append(schema.frame(derived_rows(measured, clean_on_subset, trained)))
    evaluated = schema.metric_rows(measured, "corruption_accuracy")["corruption"]
    note = heldout_note(trained, tuple(dict.fromkeys(evaluated)))
    notes += [note] if note else []
    return _write_table(run_dir, frames, notes)


def _input_notes(
    model: nn.Module, test: Labelled, config: EvalConfig, layers: Sites, clean_only: bool
) -> list[str]:
    """What the table's reader should know of its inputs before any part runs: images a
    DataLoader's drop_last left out, F.relu calls no hook sees, how token-shaped or 1-D unit
    outputs were read, attacks a class count rules out, a PGD ball that never binds."""
    notes = list(test.notes)
    for note in (
        unmeasured_relu_note(model, test.images, layers),
        units_note(model, test.images, layers),
    ):
        notes += [note] if note else []
    if clean_only:
        return notes
    if config.autoattack_version != "off":
        notes += autoattack.skipped_attacks_note(config, test.num_classes)
    binding = pgd_binding_note(config)
    return notes + ([binding] if binding else [])


def _default_note() -> str:
    keys = ", ".join(f"{key}={value}" for key, value in DEFAULT_KEYS.items())
    return (
        f"no config given: the {DEFAULT_SUITE} suite with {keys} (evaluation.default_config()); "
        'eval_config("full") measures everything'
    )


def _interactive() -> bool:
    """Whether progress bars have someone to watch them: a terminal, or a notebook kernel."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def _run_parts(
    c: Context, parts: PartStore, notes: list[str], folder: Path, clean_only: bool
) -> list[pd.DataFrame]:
    """The frames of the parts in `PARTS` order (only the clean part when `clean_only`); a
    generated corruption set goes to FOLDER/corruptions."""
    frames: list[pd.DataFrame] = []
    for name, part in PARTS:
        if clean_only and name != "clean":
            break
        if name == "representations" and parts.folder is None:
            continue  # responses are kept for comparisons across trials: nowhere to keep them
        if part is not None:
            frames.append(parts.get(name, partial(part, c)))
            continue
        # The corruption set is found (or generated) only once the clean part is done.
        if c.config.corruptions_dir is None and not c.config.generate_corruptions:
            notes.append(
                "corruptions skipped: give --corruptions-dir DIR or --generate-corruptions"
            )
            continue
        root, corruption_names = corruption_source(
            c.whole,
            c.config.corruptions_dir,
            folder / "corruptions",
            c.config.corruptions,
            seed=c.config.corruption_seed,
            table=c.config.corruption_table,
            device=c.device,
            progress=c.progress,
        )
        for corruption in tqdm(
            corruption_names, desc="corruptions", disable=not c.progress, leave=False
        ):
            measure = partial(corruption_rows, c, root, corruption)
            frames.append(parts.get(f"{name}-{corruption}", measure))
    return frames


def _identity(
    model: nn.Module, test: Labelled, layers: Sites, batch_size: int, seed: int
) -> dict[str, Any]:
    """What an evaluation's parts depend on besides its config: digests of the weights and of
    the test set, and the settings that change results."""
    weights = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        weights.update(name.encode())
        weights.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    images = hashlib.sha256(test.images.labels.numpy().tobytes())
    for x, _ in test.images.batches(1024):
        images.update(x.numpy().tobytes())
    return {
        "weights_sha256": weights.hexdigest(),
        "data_sha256": images.hexdigest(),
        "num_classes": test.num_classes,
        "layers": repr(layers),
        "batch_size": batch_size,
        "seed": seed,
    }


def _write_table(
    run_dir: Path | None, frames: list[pd.DataFrame], notes: list[str]
) -> pd.DataFrame:
    table = pd.concat(frames, ignore_index=True)
    if run_dir is not None:
        write_table(table, run_dir / "evaluation.parquet")
    table.attrs["notes"] = notes
    return table
