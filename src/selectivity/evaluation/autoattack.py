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

Before attacking, two passes on the same images say whether the model is randomised
(`output_change`); one that is runs the `rand` version where `standard` was asked for
(`ran_version`). Rows record what ran (`settings_rows`: `autoattack_ran_standard` is 1 only for
the standard version as published) and the package's own checks, read from its warnings
(`warning_rows`; each step's warnings are kept beside its state file, so a step read back
reports them too).

Beside the ensemble, the evaluation's own PGD (its eps, step size and steps) is rerun on the same
images to record its accuracy and its loss over steps (`masking_pgd_*`) and, per image, whether
its gradient is zero and whether its loss moved (`pgd_masking`), which the gradient-masking
flags of `selectivity.masking` read.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
from selectivity.files import write_text
from selectivity.models import eval_mode
from selectivity.schema import Rows, row

__all__ = [
    "ATTACKS",
    "INSTALL_HINT",
    "MIN_CLASSES",
    "PUBLISHED_ITERATIONS",
    "PUBLISHED_QUERIES",
    "PUBLISHED_TARGETS",
    "RANDOM_TOLERANCE",
    "RAND_EOT",
    "STUCK_TOLERANCE",
    "VERSIONS",
    "PgdMasking",
    "autoattack_rows",
    "eps_values",
    "output_change",
    "pgd_masking",
    "pgd_trace",
    "ran_version",
    "robust_flags",
    "run_chain",
    "runnable",
    "settings_rows",
    "skipped_attacks_note",
    "warning_rows",
]

# Each version's ensemble, in the order the package runs it, and every attack (the catalog's,
# under the names this module has always exported).
VERSIONS = AUTOATTACK_VERSIONS
ATTACKS = AUTOATTACK_ATTACKS
# The DLR losses read the logits sorted by size at fixed ranks: the third largest (untargeted),
# the fourth (targeted); with fewer classes the package fails with an IndexError.
MIN_CLASSES = {"apgd-dlr": 3, "apgd-t": 4}

# The package's published settings (what `standard` and `rand` mean on RobustBench).
PUBLISHED_ITERATIONS = 100
PUBLISHED_TARGETS = 9
PUBLISHED_QUERIES = 5000
RAND_EOT = 20  # gradient samples per APGD step in the rand version
# Softmax outputs of two passes further apart than this (L2) mark a randomised model: the
# package's check_randomized threshold. A deterministic model gives 0 (same kernels, same input).
RANDOM_TOLERANCE = 1e-4
# A loss or margin that moved by at most this (nats; relative above 1) over PGD's run did
# not move: float64 differences of float32 outputs that PGD changed are far larger.
STUCK_TOLERANCE = 1e-6
_ZERO_GRADIENT = re.compile(r"there are (?:tensor\()?(\d+)")

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
    of it and the package's own checks; clean accuracy on the same images (eps 0); whether the
    model's outputs change between two passes; the settings that ran; the evaluation's PGD on
    the same images with its per-image masking checks.

    Runs on `autoattack_samples` images of the test subset (a fixed draw); none when
    autoattack_version is off. A model whose outputs change between two passes is attacked with
    the `rand` version (EOT) when `standard` was asked for (`ran_version`), and says so on stderr.
    """
    config = c.config
    if config.autoattack_version == "off":
        return []
    images = fixed_subset(c.test, config.autoattack_samples)
    keys = {"split": "test", "samples": len(images)}
    x, y = images.batch(slice(0, len(images)), c.device)
    changed, classes = output_change(c.model, x[: c.batch]), _classes(c.model, x[:1])
    version, order = ran_version(config, changed > 0, classes)
    with eval_mode(c.model):
        clean = _predict(c.model, x, c.batch) == y
    rows = [
        row("masking_output_change", changed, split="test", samples=min(len(x), c.batch)),
        row("autoattack_accuracy", clean.float().mean().item(), eps=0.0, **keys),
    ]
    rows += settings_rows(config, version, order, classes, **keys)
    switched = version != config.autoattack_version
    rows.append(row("autoattack_switched_to_rand", float(switched), **keys))
    if switched:
        tqdm.write(
            f"autoattack: {changed:.0%} of the images changed output between two passes: "
            "a randomised model, attacked with the rand version (EOT) instead of standard",
            file=sys.stderr,
        )
    for eps in tqdm(eps_values(config), desc="autoattack", disable=not c.progress, leave=False):
        folder = c.folder / "autoattack"
        warned: list[str] = []
        after = run_chain(
            c.model, x, y, clean, eps, order, config, folder, c.seed, c.batch, version, warned
        )
        for attack, accuracy in after.items():
            rows.append(row(f"autoattack_accuracy_{attack}", accuracy, eps=eps, **keys))
        rows.append(row("autoattack_accuracy", list(after.values())[-1], eps=eps, **keys))
        rows += warning_rows(warned, eps=eps, **keys)
    rows += _pgd_rows(c, images, keys)
    return rows


def output_change(model: nn.Module, x: Tensor) -> float:
    """Share of the images x (N, ...) whose outputs differ between two passes in eval mode:
    a different top-1 class, or softmax outputs more than RANDOM_TOLERANCE apart (L2). 0 for a
    deterministic model; a model with noise or dropout at test time changes nearly every image.
    (AutoAttack's check_randomized, with two passes instead of five.)"""
    with torch.no_grad(), eval_mode(model):
        first, second = (torch.softmax(model(x).double(), 1) for _ in range(2))
    moved = (first - second).norm(dim=1) > RANDOM_TOLERANCE
    moved |= first.argmax(1) != second.argmax(1)
    return float(moved.float().mean()) if len(x) else 0.0


def ran_version(config: EvalConfig, randomized: bool, classes: int) -> tuple[str, tuple[str, ...]]:
    """(the version that runs, its attacks in order): `rand` with its ensemble when the model is
    randomised and `standard` was asked for, otherwise the config's version and attacks; attacks
    that `classes` outputs rule out are left out."""
    if randomized and config.autoattack_version == "standard":
        return "rand", runnable(VERSIONS["rand"], classes)
    order = config.autoattack_attacks or VERSIONS[config.autoattack_version]
    return config.autoattack_version, runnable(order, classes)


def settings_rows(
    config: EvalConfig, version: str, order: Sequence[str], classes: int, **keys: Any
) -> Rows:
    """What ran, as rows: `autoattack_ran_standard` and `autoattack_ran_rand` (1 when the
    version ran as the package publishes it, 0 when attacks or settings were changed: a
    custom run), the iterations, target classes, EOT samples and Square queries used; `keys`:
    the images they ran on."""
    targets = min(config.autoattack_target_classes, classes - 1)
    published = config.autoattack_iterations == PUBLISHED_ITERATIONS
    standard = (
        version == "standard"
        and tuple(order) == VERSIONS["standard"]
        and published
        and targets == min(PUBLISHED_TARGETS, classes - 1)
        and config.autoattack_square_queries == PUBLISHED_QUERIES
    )
    rand = version == "rand" and tuple(order) == VERSIONS["rand"] and published
    rows = [
        row("autoattack_ran_standard", float(standard), **keys),
        row("autoattack_ran_rand", float(rand), **keys),
        row("autoattack_iterations", config.autoattack_iterations, **keys),
        row("autoattack_eot_samples", RAND_EOT if version == "rand" else 1, **keys),
    ]
    if "apgd-t" in order or "fab-t" in order:
        rows.append(row("autoattack_target_classes", targets, **keys))
    if "square" in order:
        rows.append(row("autoattack_square_queries", config.autoattack_square_queries, **keys))
    return rows


def warning_rows(messages: Sequence[str], **keys: Any) -> Rows:
    """The package's own checks at one eps, from its warnings: `autoattack_zero_gradient_points`
    (images its DLR attacks started from with an all-zero gradient, summed over them) and
    `autoattack_randomized_warning` (1 when its randomness check fired; it runs only outside
    the rand version)."""
    points = 0
    for message in messages:
        found = _ZERO_GRADIENT.search(message)
        points += int(found.group(1)) if found else 0
    randomized = any("randomized defense" in message for message in messages)
    return [
        row("autoattack_zero_gradient_points", points, **keys),
        row("autoattack_randomized_warning", float(randomized), **keys),
    ]


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
    version: str | None = None,
    warnings: list[str] | None = None,
) -> dict[str, float]:
    """The attacks of `order`, each on the images the ones before left correct, at radius eps.

    x (N, C, H, W) in [0, 1], y (N,), clean (N,) bool: correct before any attack. Returns
    attack -> accuracy over all N images after it (cumulative); state files go to `folder`.
    version: the package's version whose parameters the attacks take (None: the config's);
    warnings: a list the package's warnings of every attack are appended to.
    """
    folder.mkdir(parents=True, exist_ok=True)
    flags, after = clean.clone(), {}
    for attack in order:
        survivors = flags.nonzero().flatten()
        if len(survivors):
            state = folder / f"eps{eps:.6g}-{attack}.json"
            step = robust_flags(
                model, x[survivors], y[survivors], eps, attack, config, state, seed, batch,
                version, warnings,
            )  # fmt: skip
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
    version: str | None = None,
    warnings: list[str] | None = None,
) -> Tensor:
    """One attack of the ensemble on x (N, C, H, W) in [0, 1], y (N,): (N,) bool, True where
    the image is still classified correctly (robust) after the attack, radius eps (L-inf).

    The package's state file at `state_path` holds the result: read back when it records the
    attack as run, otherwise (a step killed midway, or a file cut short) deleted and redone.
    The package's warnings go to `warnings` (when given) and to a file beside the state file,
    so that a step read back reports them too. version: as in `run_chain`.
    """
    said = state_path.with_suffix(".warnings.json")
    done = _finished(state_path, attack, len(x))
    if done is not None:
        if warnings is not None:
            warnings += _said(said)
        return done
    state_path.unlink(missing_ok=True)
    version = version or config.autoattack_version
    classes = _classes(model, x[:1])
    runner = _autoattack(model, eps, attack, config, seed, x.device, classes, version)
    devices = [x.device] if x.device.type == "cuda" else []
    # The package seeds torch's global generator at every attack: keep the caller's stream.
    # It also calls .view on its inputs' gradients: data sets stored NHWC come as permuted
    # (channels-last) views, so it is handed contiguous copies.
    with torch.random.fork_rng(devices=devices), _quiet() as messages, eval_mode(model):
        runner.run_standard_evaluation(
            x.contiguous(), y.contiguous(), batch_size=batch, state_path=state_path
        )
    write_text(said, json.dumps(messages) + "\n")
    if warnings is not None:
        warnings += messages
    done = _finished(state_path, attack, len(x), ended=True)
    assert done is not None, f"AutoAttack left no complete state in {state_path}"
    return done


def _said(path: Path) -> list[str]:
    """The warnings a finished step recorded beside its state file ([] when none was kept)."""
    try:
        said = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [str(message) for message in said] if isinstance(said, list) else []


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
    version: str,
) -> Any:
    """The package's AutoAttack for one attack, with `version`'s settings and the config's
    iterations, target classes and Square queries."""
    try:
        from pyautoattack import AutoAttack
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    runner = AutoAttack(model, norm="Linf", eps=eps, version=version, seed=seed, device=device)
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
def _quiet() -> Iterator[list[str]]:
    """The package logs through the `auto-attack` logger (its own checks warn there: zero
    gradients, a randomised model under `standard`, Square beating the white-box attacks);
    each distinct warning is printed once as `autoattack: ...` on stderr, nothing else, and
    is in the list yielded (filled when the block ends).

    Its check for dynamic defences ends with sys.settrace(None), which would switch off a
    tracer running in this thread (coverage, a debugger): the caller's tracer is put back."""
    logger = logging.getLogger("auto-attack")
    handler, propagate = _Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    tracer = sys.gettrace()
    messages: list[str] = []
    try:
        yield messages
    finally:
        messages += handler.messages
        sys.settrace(tracer)
        logger.removeHandler(handler)
        logger.propagate = propagate
        for message in handler.messages:
            tqdm.write(f"autoattack: {message}", file=sys.stderr)


def _pgd_rows(c: Context, images: ImageSet, keys: dict[str, Any]) -> Rows:
    """The evaluation's PGD (pgd_eps, its step size, pgd_steps) on the AutoAttack images, with
    its per-image masking checks."""
    config = c.config
    steps = sorted(set(config.pgd_steps))
    attack, step = pgd_attack(config, steps[-1])
    run = pgd_masking(c.model, images, attack, steps, c.batch, c.device)
    rows = []
    for k, (accuracy, loss) in run.trace.items():
        where = {"eps": config.pgd_eps, "steps": k, "step_size": step, **keys}
        rows += [
            row("masking_pgd_accuracy", accuracy, **where),
            row("masking_pgd_loss", loss, **where),
        ]
    # Over the images correct before the attack; the stuck share at PGD's longest run.
    attacked = {"split": "test", "samples": run.attacked}
    where = {"eps": config.pgd_eps, "steps": steps[-1], "step_size": step, **attacked}
    rows.append(row("masking_zero_gradient_share", run.zero_gradient_share, **attacked))
    rows.append(row("masking_stuck_share", run.stuck_share, **where))
    return rows


@dataclass(frozen=True)
class PgdMasking:
    """One PGD run's trace and per-image masking checks (`pgd_masking`).

    trace: k -> (accuracy, mean cross-entropy in nats), as `pgd_trace`. attacked: images
    classified correctly before the attack. zero_gradient_share: the share of them whose input
    gradient of PGD's loss is all zero (or not finite). stuck_share: the share whose loss and
    margin did not move over the longest run (STUCK_TOLERANCE). Both NaN when attacked is 0.
    """

    trace: dict[int, tuple[float, float]]
    attacked: int
    zero_gradient_share: float
    stuck_share: float


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
    return pgd_masking(model, images, attack, steps, batch, device).trace


def pgd_masking(
    model: nn.Module,
    images: ImageSet,
    attack: attacks.PGD,
    steps: Sequence[int],
    batch: int,
    device: torch.device | str = "cpu",
) -> PgdMasking:
    """PGD-k for every k in `steps` from one run, and per image whether PGD could move it.

    Per image correct before the attack: its input gradient of PGD's loss (summed cross-entropy
    on the model's outputs, `attacks.input_gradient`) at the clean image, zero when every entry
    is 0 (or one is not finite: NaN gradients leave sign-PGD unusable too). In float32 that
    needs the softmax exactly one-hot (margin above ~100 nats): a confident image of a normal
    net (margin 17-100) has a loss of exactly 0 but a tiny nonzero gradient, which sign-PGD
    follows. Stuck: after the last step, neither its cross-entropy nor its logit margin (true
    class minus the best other) moved by more than STUCK_TOLERANCE (relative for the margin),
    so the loss's saturation at 0 alone does not count.
    """
    wanted = sorted({int(k) for k in steps})
    correct = dict.fromkeys(wanted, 0)
    loss_sum = dict.fromkeys(wanted, 0.0)
    attacked = zero = stuck = 0
    for x, y in images.batches(batch, device):
        with eval_mode(model):
            start = _predict(model, x, len(x)) == y
            if start.any():
                flat = attacks.input_gradient(model, x[start], y[start]).flatten(1)
                zero += int(((flat.abs().sum(1) == 0) | ~flat.isfinite().all(1)).sum())
        attacked += int(start.sum())
        iterates = attack.iterates(model, x, y)
        x_adv = x
        for k in range(wanted[-1] + 1):
            if k > 0:
                x_adv = next(iterates, x_adv)  # eps 0: no iterates, every k is the clean batch
            if k in correct or k == 0:
                with torch.no_grad(), eval_mode(model):
                    logits = model(x_adv)
                losses = F.cross_entropy(logits[start], y[start], reduction="none")
                now = (losses.double(), _margins(logits[start].double(), y[start]))
                if k == 0:
                    before = now
            if k in correct:
                correct[k] += int((logits.argmax(1) == y).sum())
                loss_sum[k] += float(losses.sum())
        if isinstance(iterates, Generator):
            iterates.close()  # restores the model's mode flags now, not when collected
        stuck += int((~_moved(before[0], now[0]) & ~_moved(before[1], now[1])).sum())
    n = len(images)
    trace = {k: (correct[k] / n, loss_sum[k] / attacked if attacked else math.nan) for k in wanted}
    share = (lambda count: count / attacked) if attacked else (lambda count: math.nan)
    return PgdMasking(trace, attacked, share(zero), share(stuck) if wanted[-1] > 0 else math.nan)


def _margins(logits: Tensor, y: Tensor) -> Tensor:
    """(N,) logit of the true class minus the largest other logit; logits (N, K), y (N,)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], -math.inf)
    return true - others.max(1).values


def _moved(before: Tensor, after: Tensor) -> Tensor:
    """(N,) bool: `after` differs from `before` by more than STUCK_TOLERANCE x max(1, |before|);
    equal infinities (a saturated output) did not move, anything NaN did."""
    same = before == after
    apart = (after - before).abs() > STUCK_TOLERANCE * before.abs().clamp(min=1.0)
    return ~same & (apart | after.isnan() | before.isnan())
