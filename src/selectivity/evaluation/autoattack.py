"""Worst-case robustness: AutoAttack (Croce & Hein 2020) through the authors' package.

    autoattack_rows(context) -> rows of the `autoattack` evaluation part
    run_chain(model, x, y, clean, eps, order, ...)   the ensemble on tensors, for benchmarks

The ensemble is `pyautoattack` (the optional extra `selectivity[autoattack]`), not a
re-implementation. Its attacks run one after the other on the images each earlier attack left
correctly classified, as RobustBench reports them, so `autoattack_accuracy_<attack>` is the
cumulative robust accuracy after that attack and `autoattack_accuracy` the accuracy after the
whole ensemble. Versions: `standard` (APGD-CE, APGD-T, FAB-T, Square; deterministic models) and
`rand` (APGD-CE, APGD-DLR with 20 EOT samples; randomised models).

Resumable through the package's own state file: each (eps, attack) step runs the package's
`run_standard_evaluation` with `state_path=RUN_DIR/evaluation/autoattack/eps<eps>-<attack>.json`.
A step whose state file records its attack as run is read back, not rerun; a state file left
by a step killed midway is deleted and the step redone whole. (The package itself would resume
inside the attack from the flags of its last batch, and then attack the remaining images in
other batches, with other random draws: the numbers would differ from an uninterrupted run.)

Beside the ensemble, the evaluation's own PGD (its eps, step size and steps) is rerun on the same
images to record its accuracy and its loss over steps (`masking_pgd_*`), which the
gradient-masking flags of `selectivity.masking` compare with AutoAttack.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from selectivity import attacks
from selectivity.catalog import AUTOATTACK_ATTACKS, AUTOATTACK_VERSIONS
from selectivity.config import ConfigError, EvalConfig
from selectivity.data import ImageSet
from selectivity.evaluation.context import Context, fixed_subset, pgd_attack
from selectivity.models import eval_mode
from selectivity.schema import Rows, row

__all__ = [
    "ATTACKS",
    "INSTALL_HINT",
    "MIN_CLASSES",
    "VERSIONS",
    "autoattack_rows",
    "eps_values",
    "pgd_trace",
    "robust_flags",
    "run_chain",
    "runnable",
    "skipped_attacks_note",
]

# Each version's ensemble, in the order the package runs it, and every attack (the catalog's,
# under the names this module has always exported).
VERSIONS = AUTOATTACK_VERSIONS
ATTACKS = AUTOATTACK_ATTACKS
# The DLR losses read the logits sorted by size at fixed ranks: the third largest (untargeted),
# the fourth (targeted); with fewer classes the package fails with an IndexError.
MIN_CLASSES = {"apgd-dlr": 3, "apgd-t": 4}

INSTALL_HINT = (
    'AutoAttack needs the optional package pyautoattack: pip install "selectivity[autoattack]" '
    "(or --set autoattack_version=off)"
)


def eps_values(config: EvalConfig) -> list[float]:
    """The radii AutoAttack runs at: `autoattack_eps` (None: pgd_eps) and `masking_eps`."""
    radii = set(config.autoattack_eps if config.autoattack_eps is not None else (config.pgd_eps,))
    if config.masking_eps is not None:
        radii.add(config.masking_eps)
    return sorted(e for e in radii if e > 0)


def autoattack_rows(c: Context) -> Rows:
    """The `autoattack` part: per eps, accuracy after each attack of the ensemble and after all
    of it; clean accuracy on the same images (eps 0); the evaluation's PGD on them.

    Runs on `autoattack_samples` images of the test subset (a fixed draw); none when
    autoattack_version is off.
    """
    config = c.config
    if config.autoattack_version == "off":
        return []
    images = fixed_subset(c.test, config.autoattack_samples)
    keys = {"split": "test", "samples": len(images)}
    x, y = images.batch(slice(0, len(images)), c.device)
    order = runnable(
        config.autoattack_attacks or VERSIONS[config.autoattack_version], _classes(c.model, x[:1])
    )
    with eval_mode(c.model):
        clean = _predict(c.model, x, c.batch) == y
    rows = [row("autoattack_accuracy", clean.float().mean().item(), eps=0.0, **keys)]
    radii = eps_values(config)
    for eps in tqdm(radii, desc="autoattack", disable=not c.progress, leave=False):
        folder = c.folder / "autoattack"
        after = run_chain(c.model, x, y, clean, eps, order, config, folder, c.seed, c.batch)
        for attack, accuracy in after.items():
            rows.append(row(f"autoattack_accuracy_{attack}", accuracy, eps=eps, **keys))
        rows.append(row("autoattack_accuracy", list(after.values())[-1], eps=eps, **keys))
    rows += _pgd_rows(c, images, keys)
    return rows


def runnable(order: Sequence[str], classes: int) -> tuple[str, ...]:
    """The attacks of `order` that a model with `classes` outputs can be attacked with."""
    return tuple(a for a in order if classes >= MIN_CLASSES.get(a, 2))


def skipped_attacks_note(config: EvalConfig, classes: int) -> list[str]:
    """A note naming the ensemble's attacks that `classes` outputs rule out (none: [])."""
    order = config.autoattack_attacks or VERSIONS[config.autoattack_version]
    skipped = [a for a in order if a not in runnable(order, classes)]
    if not skipped:
        return []
    needs = ", ".join(f"{a} needs {MIN_CLASSES[a]}" for a in skipped)
    return [f"AutoAttack ran without {', '.join(skipped)}: {classes} classes ({needs})"]


def run_chain(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    clean: Tensor,
    eps: float,
    order: Sequence[str],
    config: EvalConfig,
    folder: Path,
    seed: int,
    batch: int,
) -> dict[str, float]:
    """The attacks of `order`, each on the images the ones before left correct, at radius eps.

    x (N, C, H, W) in [0, 1], y (N,), clean (N,) bool: correct before any attack. Returns
    attack -> accuracy over all N images after it (cumulative); state files go to `folder`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    flags, after = clean.clone(), {}
    for attack in order:
        survivors = flags.nonzero().flatten()
        if len(survivors):
            state = folder / f"eps{eps:.6g}-{attack}.json"
            step = robust_flags(
                model, x[survivors], y[survivors], eps, attack, config, state, seed, batch
            )
            flags[survivors] = step.to(flags.device)
        after[attack] = flags.float().mean().item()
    return after


def _predict(model: nn.Module, x: Tensor, batch: int) -> Tensor:
    """Top-1 classes of x (N, ...) -> (N,) int64, batch by batch."""
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])


def robust_flags(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    attack: str,
    config: EvalConfig,
    state_path: Path,
    seed: int,
    batch: int,
) -> Tensor:
    """One attack of the ensemble on x (N, C, H, W) in [0, 1], y (N,): (N,) bool, True where
    the image is still classified correctly (robust) after the attack, radius eps (L-inf).

    The package's state file at `state_path` holds the result: read back when it records the
    attack as run, otherwise (a step killed midway, or a file cut short) deleted and redone.
    """
    done = _finished(state_path, attack, len(x))
    if done is not None:
        return done
    state_path.unlink(missing_ok=True)
    runner = _autoattack(model, eps, attack, config, seed, x.device, _classes(model, x[:1]))
    devices = [x.device] if x.device.type == "cuda" else []
    # The package seeds torch's global generator at every attack: keep the caller's stream.
    # It also calls .view on its inputs' gradients: data sets stored NHWC come as permuted
    # (channels-last) views, so it is handed contiguous copies.
    with torch.random.fork_rng(devices=devices), _quiet(), eval_mode(model):
        runner.run_standard_evaluation(
            x.contiguous(), y.contiguous(), batch_size=batch, state_path=state_path
        )
    done = _finished(state_path, attack, len(x), ended=True)
    assert done is not None, f"AutoAttack left no complete state in {state_path}"
    return done


def _finished(path: Path, attack: str, count: int, ended: bool = False) -> Tensor | None:
    """The robust flags (count,) of a state file that records `attack` as run; None when the
    file is absent, unreadable or from a step that did not finish.

    ended: the package returned, so the file is final even where it skipped the attack because
    no image was left to attack.
    """
    try:
        record = json.loads(path.read_text())
        flags = torch.tensor(record["_robust_flags"], dtype=torch.bool)
        run = set(record["_run_attacks"])
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
        return None
    if flags.shape != (count,) or not (attack in run or ended or not flags.any()):
        return None
    return flags


def _classes(model: nn.Module, x: Tensor) -> int:
    with torch.no_grad(), eval_mode(model):
        return int(model(x).shape[1])


def _autoattack(
    model: nn.Module,
    eps: float,
    attack: str,
    config: EvalConfig,
    seed: int,
    device: torch.device,
    classes: int,
) -> Any:
    """The package's AutoAttack for one attack, with the version's settings and the config's
    iterations, target classes and Square queries."""
    try:
        from pyautoattack import AutoAttack
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    runner = AutoAttack(
        model, norm="Linf", eps=eps, version=config.autoattack_version, seed=seed, device=device
    )
    runner.verbose = False
    runner.attacks_to_run = [attack]  # the version's parameters stay
    targets = min(config.autoattack_target_classes, classes - 1)
    runner.apgd.n_iter = runner.apgd_targeted.n_iter = config.autoattack_iterations
    runner.fab.n_iter = config.autoattack_iterations
    runner.apgd_targeted.n_target_classes = runner.fab.n_target_classes = targets
    runner.square.n_queries = config.autoattack_square_queries
    return runner


class _Collect(logging.Handler):
    """Keeps the package's warnings, to print each once after the attack."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message not in self.messages:
            self.messages.append(message)


@contextmanager
def _quiet() -> Iterator[None]:
    """The package logs through the `auto-attack` logger (its own checks warn there: zero
    gradients, a randomised model under `standard`, Square beating the white-box attacks);
    each distinct warning is printed once as `autoattack: ...` on stderr, nothing else.

    Its check for dynamic defences ends with sys.settrace(None), which would switch off a
    tracer running in this thread (coverage, a debugger): the caller's tracer is put back."""
    logger = logging.getLogger("auto-attack")
    handler, propagate = _Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    tracer = sys.gettrace()
    try:
        yield
    finally:
        sys.settrace(tracer)
        logger.removeHandler(handler)
        logger.propagate = propagate
        for message in handler.messages:
            tqdm.write(f"autoattack: {message}", file=sys.stderr)


def _pgd_rows(c: Context, images: ImageSet, keys: dict[str, Any]) -> Rows:
    """The evaluation's PGD (pgd_eps, its step size, pgd_steps) on the AutoAttack images."""
    config = c.config
    steps = sorted(set(config.pgd_steps))
    attack, step = pgd_attack(config, steps[-1])
    trace = pgd_trace(c.model, images, attack, steps, c.batch, c.device)
    rows = []
    for k, (accuracy, loss) in trace.items():
        where = {"eps": config.pgd_eps, "steps": k, "step_size": step, **keys}
        rows += [
            row("masking_pgd_accuracy", accuracy, **where),
            row("masking_pgd_loss", loss, **where),
        ]
    return rows


def pgd_trace(
    model: nn.Module,
    images: ImageSet,
    attack: attacks.PGD,
    steps: Sequence[int],
    batch: int,
    device: torch.device | str = "cpu",
) -> dict[int, tuple[float, float]]:
    """PGD-k for every k in `steps` from one run: k -> (accuracy, mean cross-entropy in nats).

    The loss is averaged over the images classified correctly before the attack (those the
    attack has to break): a misclassified image's loss can grow without bounds and would hide
    a flat loss on the rest. NaN when no image is classified correctly. k = 0: clean images.
    """
    wanted = sorted({int(k) for k in steps})
    correct = dict.fromkeys(wanted, 0)
    loss_sum = dict.fromkeys(wanted, 0.0)
    attacked = 0
    for x, y in images.batches(batch, device):
        with eval_mode(model):
            start = _predict(model, x, len(x)) == y
        attacked += int(start.sum())
        iterates = attack.iterates(model, x, y)
        x_adv = x
        for k in range(wanted[-1] + 1):
            if k > 0:
                x_adv = next(iterates, x_adv)  # eps 0: no iterates, every k is the clean batch
            if k in correct:
                with torch.no_grad(), eval_mode(model):
                    logits = model(x_adv)
                correct[k] += int((logits.argmax(1) == y).sum())
                loss = F.cross_entropy(logits[start], y[start], reduction="sum")
                loss_sum[k] += float(loss)
        if isinstance(iterates, Generator):
            iterates.close()  # restores the model's mode flags now, not when collected
    n = len(images)
    return {k: (correct[k] / n, loss_sum[k] / attacked if attacked else math.nan) for k in wanted}
