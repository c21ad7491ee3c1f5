"""Configuration: frozen dataclasses, reading presets (`selectivity.presets`), config files
and `--set key=value`.

One flat key space serves every command: a key names a field of `TrainConfig`, `EvalConfig` or
`SweepConfig` (their names do not overlap), so `--set epochs=3` reaches training whether it is
given to `train` or to `sweep`. Values are parsed by the field's declared type; an unknown key or
a value of the wrong type raises `ConfigError` with one line, an unknown key naming the closest
known ones. Every field is declared with `_key(default, meaning)`: its one-line meaning is data,
which `selectivity.keys.describe_keys` (and so `selectivity keys`) shows beside its type
and default.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
import typing
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from selectivity.catalog import (
    ADV_METHODS,
    AUTOATTACK_ATTACKS,
    AUTOATTACK_VERSIONS,
    CORRUPTION_TABLES,
    CORRUPTIONS,
    TRAINING_SUBSET,
    UNIT_TYPE_NAMES,
)
from selectivity.errors import ConfigError
from selectivity.presets import (  # noqa: F401 - re-exported: config is where keys are read
    DEMO_GRIDS,
    EVAL_SUITES,
    PAPER_ALPHAS,
    SWEEP_PRESETS,
    TRAIN_PRESETS,
)
from selectivity.ranges import EVAL_RANGES, SWEEP_RANGES, TRAIN_RANGES, check_values

if TYPE_CHECKING:
    from selectivity.probe import Sites

__all__ = [
    "EVAL_SUITES",
    "PAPER_ALPHAS",
    "SWEEP_PRESETS",
    "TRAIN_PRESETS",
    "ConfigError",
    "EvalConfig",
    "SweepConfig",
    "TrainConfig",
    "build",
    "check_device",
    "key_defaults",
    "key_types",
    "parse_assignments",
    "to_dict",
    "train_preset",
    "typed",
]


_T = typing.TypeVar("_T")


def _key(default: _T, meaning: str) -> _T:
    """A config field: its default and its one-line meaning, which `keys.describe_keys` (and so
    `selectivity keys`) shows; every field of the config classes is declared with it."""
    return dataclasses.field(default=default, metadata={"meaning": meaning})


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs. Defaults are the ResNet20/CIFAR10 recipe (appendix A.1.1)."""

    model: str = _key("resnet20", "network, by registered name (`selectivity.list_models()`)")
    dataset: str = _key("cifar10", "data set: digits, cifar10, tinyimagenet, svhn or folder")
    data_dir: str | None = _key(None, "where the data set lies; none: $SELECTIVITY_DATA or ./data")
    image_size: int | None = _key(
        None, "side, pixels, images are resized to; none: the data set's own (digits: 16)"
    )
    alpha: float = _key(0.0, "loss = CE - alpha * mu_SI; < 0 discourages selectivity, > 0 favours")
    seed: int = _key(0, "seed of the weights, the validation split and the data order")
    epochs: int = _key(200, "training epochs")
    batch_size: int = _key(256, "training minibatch, images")
    lr: float = _key(0.1, "SGD learning rate at the start")
    momentum: float = _key(0.9, "SGD momentum")
    weight_decay: float = _key(1e-4, "SGD weight decay (L2 coefficient)")
    milestones: tuple[int, ...] = _key((100, 150), "epochs at which lr is multiplied by lr_gamma")
    lr_gamma: float = _key(0.1, "factor applied to lr at each milestone")
    device: str = _key("auto", "auto | cpu | cuda | cuda:N; auto: a GPU when torch sees one")
    eval_batch_size: int = _key(1024, "images per batch when validating, testing and evaluating")
    normalize: bool = _key(True, "per-channel input normalisation inside the model")
    selectivity_layers: tuple[str, ...] | None = _key(
        None, "modules whose units are regularized and measured; none: every unit_types call site"
    )
    unit_types: tuple[str, ...] = _key(
        ("relu",), "module types that are units when selectivity_layers is none (gelu: max(a, 0))"
    )
    # How units are read, and what a user's own test set (`--data`) holds; the same keys reach
    # train (the regularizer), measure, evaluate and sweep.
    selectivity_positive_part: bool | None = _key(
        None,
        "read units as max(a, 0): true (every site), false (none); none: rectified activations only",
    )
    unit_tokens: str = _key(
        "mean", "(N, T, D) outputs: a unit is a feature; mean over tokens, or cls (first token)"
    )
    image_key: str = _key("pixel_values", "--data dict items or batches: the image's key")
    label_key: str = _key("labels", "--data dict items or batches: the label's key")
    num_threads: int | None = _key(None, "torch CPU threads; none: torch's default")
    channels_last: bool = _key(False, "NHWC memory order: ~1.2x faster ResNet training on CPUs")
    tensorboard: bool = _key(
        False, "also log each epoch to RUN_DIR/tensorboard/ (extra: selectivity[tensorboard])"
    )
    # Robustness training (`selectivity.robust`; README "Robustness training"). Each is off at 0.
    noise_std: float = _key(0.0, "Gaussian-noise augmentation: std, [0, 1] pixel units; 0: off")
    noise_prob: float = _key(0.5, "chance that a training image gets the noise")
    mix_severity: int = _key(
        0, "corruption mix (AugMix-like): severity 1..5 of the chains' operations; 0: off"
    )
    mix_width: int = _key(3, "corruption mix: chains per image, mixed with Dirichlet(1) weights")
    mix_corruptions: tuple[str, ...] | None = _key(
        None,
        "corruption mix: the operations (families held out whole); none: speckle_noise,gaussian_blur",
    )
    adv_eps: float = _key(0.0, "adversarial training: L-inf radius, [0, 1] pixel units; 0: off")
    adv_method: str = _key(
        "pgd", "adversarial training: pgd (Madry, random start) or fgsm (random start, Wong)"
    )
    adv_steps: int = _key(7, "adversarial training: PGD steps (fgsm: one step)")
    adv_step_size: float | str = _key(
        "auto",
        "attack step, [0, 1] pixel units; auto: 2.5 * adv_eps / adv_steps, fgsm 1.25 * adv_eps",
    )
    adv_fraction: float = _key(1.0, "share of each batch replaced by adversarial examples")
    adv_bn_mode: str = _key(
        "train", "the model's mode while the training attack runs: train | eval"
    )
    # Which epoch's weights are kept (checkpoint_best.pt); README "Robustness training".
    checkpoint_metric: str = _key(
        "auto",
        "the kept epoch is best on: clean | robust (PGD) val accuracy | auto (adv_eps > 0: robust)",
    )
    checkpoint_pgd_steps: int = _key(
        10, "robust validation: PGD steps at adv_eps, random start, step 2.5 * adv_eps / steps"
    )
    checkpoint_samples: int = _key(
        1000, "robust validation: images of the validation split attacked (a fixed random subset)"
    )

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "epochs must be >= 1")
        _check(
            self.batch_size >= 2,
            "batch_size must be >= 2 (selectivity needs two classes in a batch)",
        )
        _check(all(m >= 1 for m in self.milestones), "milestones must be epochs >= 1")
        _check(
            list(self.milestones) == sorted(self.milestones),
            f"milestones must be increasing epochs, got {','.join(map(str, self.milestones))}",
        )
        check_values(self, TRAIN_RANGES)
        most = max(256, 4 * (os.cpu_count() or 1))
        _check(
            self.num_threads is None or 1 <= self.num_threads <= most,
            f"num_threads must be in 1..{most} (none: torch's default), got {self.num_threads}",
        )
        _check(
            self.selectivity_layers is None or len(self.selectivity_layers) > 0,
            "selectivity_layers names no layer (none: every unit_types call site)",
        )
        _check_unit_types(self)
        _check_unit_rules(self)
        check_device(self.device)
        _check_robust(self)
        # The registry is open (`register_model`), so the names are asked for, not listed here.
        from selectivity.models import list_models

        _check(
            self.model in list_models(),
            f"unknown model {self.model!r}; available: {', '.join(list_models())}",
        )

    def units(self) -> Sites:
        """The units that `selectivity_layers` and `unit_types` choose, as the probe takes them."""
        from selectivity.probe import named_units

        return named_units(
            self.selectivity_layers,
            self.unit_types,
            positive_part=self.selectivity_positive_part,
            tokens=self.unit_tokens,
        )

    def mix_subset(self) -> tuple[str, ...]:
        """The corruptions corruption-mix training draws from (whether or not it is on): the
        evaluation holds out the benchmark corruptions of every other family
        (`catalog.heldout_corruptions`, `corruption_accuracy_heldout_mean`)."""
        return self.mix_corruptions if self.mix_corruptions is not None else TRAINING_SUBSET

    def checkpoint_rule(self) -> str:
        """What picks the kept epoch: "robust" (PGD accuracy on the validation subset) or "clean"
        (validation accuracy); auto is robust for adversarially trained runs (adv_eps > 0)."""
        if self.checkpoint_metric == "auto":
            return "robust" if self.adv_eps > 0 else "clean"
        return self.checkpoint_metric

    def adv_step(self) -> float:
        """The adversarial-training step size, [0, 1] pixel units (resolves auto)."""
        if self.adv_step_size != "auto":
            return float(self.adv_step_size)
        if self.adv_method == "fgsm":
            return 1.25 * self.adv_eps
        return 2.5 * self.adv_eps / self.adv_steps


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_unit_types(config: TrainConfig) -> None:
    """One-line ConfigError for an unknown unit type; the names are kept in lower case."""
    names = tuple(str(name).lower() for name in config.unit_types)
    _check(len(names) > 0, "unit_types names no type (default: relu)")
    for name in names:
        _check(
            name in UNIT_TYPE_NAMES,
            f"unknown unit type {name!r} in unit_types; known: {', '.join(UNIT_TYPE_NAMES)}",
        )
    _check(len(set(names)) == len(names), f"unit_types has duplicates: {','.join(names)}")
    object.__setattr__(config, "unit_types", names)


def _check_unit_rules(config: TrainConfig) -> None:
    """One-line ConfigErrors for the token rule and the dict keys of `--data`."""
    from selectivity.probe import TOKEN_RULES

    _check(
        config.unit_tokens in TOKEN_RULES,
        f"unit_tokens must be one of {', '.join(TOKEN_RULES)}, got {config.unit_tokens!r}",
    )
    _check(
        bool(config.image_key) and bool(config.label_key) and config.image_key != config.label_key,
        f"image_key and label_key must be two different names, got {config.image_key!r} and "
        f"{config.label_key!r}",
    )


def _check_robust(config: TrainConfig) -> None:
    """One-line ConfigErrors for the robustness-training keys."""
    names = config.mix_corruptions
    _check(names is None or len(names) > 0, "mix_corruptions names none (none: TRAINING_SUBSET)")
    for name in names or ():
        _check(
            name in CORRUPTIONS,
            f"unknown corruption {name!r} in mix_corruptions; known: {', '.join(CORRUPTIONS)}",
        )
    _check(
        config.adv_method in ADV_METHODS,
        f"adv_method must be pgd or fgsm, got {config.adv_method!r}",
    )
    _check(
        config.adv_bn_mode in ("train", "eval"),
        f"adv_bn_mode must be train or eval, got {config.adv_bn_mode!r}",
    )
    _check(
        config.checkpoint_metric in ("auto", "clean", "robust"),
        f"checkpoint_metric must be auto, clean or robust, got {config.checkpoint_metric!r}",
    )
    _check(
        config.checkpoint_metric != "robust" or config.adv_eps > 0,
        "checkpoint_metric robust needs adv_eps > 0 (the validation attack's radius)",
    )


@dataclass(frozen=True)
class EvalConfig:
    """What `evaluate` measures. Defaults are the `full` suite; `quick` bounds sample counts."""

    suite: str = _key("full", "full (everything) or quick (bounded samples and grids)")
    corruptions_dir: str | None = _key(
        None, "a published or generated corruption set in CIFAR-10-C layout"
    )
    generate_corruptions: bool = _key(
        False, "generate the corruption set from the test images when no corruptions_dir"
    )
    corruptions: tuple[str, ...] | None = _key(None, "corruption names; none: all available")
    severities: tuple[int, ...] = _key((1, 2, 3, 4, 5), "corruption severities, 1..5")
    corruption_table: str | None = _key(
        None, "corruption parameter table: cifar10, tinyimagenet, imagenet; none: by image size"
    )
    corruption_seed: int = _key(0, "seed of the random corruptions (noise, ...)")
    fgsm_eps: tuple[float, ...] = _key(
        (0.0, 0.5 / 255, 1 / 255, 2 / 255, 4 / 255, 8 / 255),
        "FGSM L-inf radii, [0, 1] pixel units (8/255 accepted)",
    )
    pgd_eps: float = _key(8 / 255, "PGD L-inf radius, [0, 1] pixel units (not in the papers)")
    # A number (the paper's 1e-4, appendix A.1.4) or "auto": 2.5 * eps / steps (Madry et al.),
    # steps being the length of the PGD run. At 1e-4 a pixel moves at most steps * 1e-4, so an
    # 8/255 ball binds only after 314 steps (2/255 after 79): below that, eps is nominal.
    pgd_step_size: float | str = _key(
        1e-4, "PGD step, [0, 1] pixel units, or auto: 2.5 * pgd_eps / steps"
    )
    pgd_steps: tuple[int, ...] = _key((0, 1, 2, 5, 10, 25, 50), "PGD run lengths, steps")
    jacobian_projections: int | None = _key(
        1, "random projections for the Jacobian norm; none: exact (one backward per class)"
    )
    gradient_max_units: int | None = _key(32, "units per layer for gradient variability; none: all")
    dimensionality_variance: float = _key(
        0.9, "variance fraction the PCA components of dimensionality explain"
    )
    dimensionality_corruption: str | None = _key(
        None,
        "corruption for dimensionality; none: motion_blur (CIFAR) / brightness (Tiny ImageNet)",
    )
    dimensionality_severity: int = _key(3, "severity of that corruption, 1..5")
    dimensionality_pgd_steps: int = _key(25, "PGD steps of the adversarial dimensionality")
    max_samples: int | None = _key(
        None, "test images for attacks, corruptions and accuracy; none: all"
    )
    # Dimensionality is capped by (N - 1) / D, so N matters: rows carry it.
    analysis_samples: int | str = _key(
        1000, "test images for Jacobian, gradient variability, dimensionality; or all"
    )
    # AutoAttack (pyautoattack): the `autoattack` evaluation part and the masking flags.
    autoattack_version: str = _key(
        "standard", "AutoAttack: standard (deterministic models), rand (randomised) or off"
    )
    autoattack_attacks: tuple[str, ...] | None = _key(
        None, "AutoAttack attacks, in order; none: the version's ensemble"
    )
    autoattack_eps: tuple[float, ...] | None = _key(
        None, "AutoAttack L-inf radii, [0, 1] pixel units; none: pgd_eps only"
    )
    autoattack_samples: int | None = _key(
        None, "AutoAttack images, drawn from the max_samples subset; none: all of them"
    )
    autoattack_iterations: int = _key(100, "APGD and FAB iterations per run (the package's 100)")
    autoattack_target_classes: int = _key(
        9, "APGD-T and FAB-T target classes (capped at classes - 1)"
    )
    autoattack_square_queries: int = _key(5000, "Square's queries per image (the package's 5000)")
    masking_eps: float | None = _key(
        0.5, "large radius where accuracy must approach 0 (masking flag large_eps); none: no run"
    )
    # The first paper's off-axis checks and unit ablation (README "Off-axis checks and unit
    # ablation"): parts offaxis, ablation and representations, each on a fixed test subset.
    offaxis: bool = _key(True, "mean SI in an optimized rotated basis per layer (part offaxis)")
    offaxis_restarts: int = _key(4, "rotation searches per layer, the first from the unit axes")
    offaxis_steps: int = _key(100, "Adam steps of each rotation search")
    ablation: bool = _key(True, "accuracy as units are silenced in SI order (part ablation)")
    ablation_fractions: tuple[float, ...] = _key(
        (0.0, 0.1, 0.25, 0.5, 0.75, 1.0), "fractions of a layer's units silenced, in [0, 1]"
    )
    ablation_draws: int = _key(5, "random silencing orders per layer (the band); 0: none")
    representations: bool = _key(
        True, "store unit responses for similarity across a sweep (part representations)"
    )
    representation_samples: int | str | None = _key(
        None, "test images of the stored responses, or all; none: the analysis_samples subset"
    )

    def __post_init__(self) -> None:
        _check(
            self.suite in EVAL_SUITES,
            f"suite must be one of {sorted(EVAL_SUITES)}, got {self.suite!r}",
        )
        check_values(self, EVAL_RANGES)
        _check(
            self.analysis_samples == "all"
            or (not isinstance(self.analysis_samples, str) and self.analysis_samples >= 2),
            f"analysis_samples must be an integer >= 2 or all, got {self.analysis_samples!r}",
        )
        self._check_autoattack()
        self._check_paper_parts()
        for name in (*(self.corruptions or ()), self.dimensionality_corruption):
            _check(
                name is None or name in CORRUPTIONS,
                f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}",
            )
        _check(
            self.corruptions is None or len(self.corruptions) > 0,
            "corruptions names none (none: all available)",
        )
        _check(
            self.corruption_table is None or self.corruption_table in CORRUPTION_TABLES,
            f"unknown corruption_table {self.corruption_table!r}; "
            f"known: {', '.join(CORRUPTION_TABLES)}",
        )

    def _check_autoattack(self) -> None:
        versions = (*AUTOATTACK_VERSIONS, "off")
        _check(
            self.autoattack_version in versions,
            f"autoattack_version must be one of {', '.join(versions)}, got {self.autoattack_version!r}",
        )
        unknown = sorted(set(self.autoattack_attacks or ()) - set(AUTOATTACK_ATTACKS))
        _check(
            not unknown,
            f"unknown autoattack_attacks {unknown}; known: {', '.join(AUTOATTACK_ATTACKS)}",
        )
        _check(
            self.autoattack_attacks is None or len(self.autoattack_attacks) > 0,
            "autoattack_attacks names none (none: the version's ensemble)",
        )
        _check(
            min(self.autoattack_iterations, self.autoattack_target_classes) >= 1
            and self.autoattack_square_queries >= 1,
            "autoattack_iterations, autoattack_target_classes, autoattack_square_queries must be >= 1",
        )

    def _check_paper_parts(self) -> None:
        _check(self.offaxis_restarts >= 1, "offaxis_restarts must be >= 1")
        _check(self.offaxis_steps >= 0, "offaxis_steps must be >= 0")
        _check(
            len(self.ablation_fractions) > 0 and all(0 <= f <= 1 for f in self.ablation_fractions),
            f"ablation_fractions must be in [0, 1], got {list(self.ablation_fractions)}",
        )
        _check(self.ablation_draws >= 0, "ablation_draws must be >= 0")
        samples = self.representation_samples
        _check(
            samples is None or samples == "all" or (not isinstance(samples, str) and samples >= 2),
            f"representation_samples must be an integer >= 2, all or none, got {samples!r}",
        )

    def pgd_step(self, steps: int) -> float:
        """The PGD step size, [0, 1] pixel units, for a run of `steps` steps at `pgd_eps`.

        auto: 2.5 * eps / steps, so the run can cross the ball (Madry et al. 2018); 0 when eps
        or steps is 0 (the attack is then the identity).
        """
        if self.pgd_step_size != "auto":
            return float(self.pgd_step_size)
        return 2.5 * self.pgd_eps / steps if steps > 0 else 0.0


def suite_defaults(suite: str) -> dict[str, Any]:
    """The keys a suite sets beneath the preset's and the user's; ConfigError for an unknown suite."""
    _check(suite in EVAL_SUITES, f"suite must be one of {sorted(EVAL_SUITES)}, got {suite!r}")
    return {**EVAL_SUITES[suite], "suite": suite}


@dataclass(frozen=True)
class SweepConfig:
    """The grid and its engine. Without a grid (`grids`, `--grid`) the trials are alphas x seeds;
    a grid that does not name seed takes `seeds`. Every other key reaches each trial."""

    alphas: tuple[float, ...] = _key(
        PAPER_ALPHAS, "regularizer strengths of a sweep without a grid"
    )
    seeds: tuple[int, ...] = _key(tuple(range(20)), "seeds of every grid that names no seed")
    executor: str = _key("local", "local (processes on this machine) or ray")
    workers: int | None = _key(
        None, "local: trials run at once; none: one per 2 cores (at least 1)"
    )
    ray_address: str | None = _key(None, "Ray cluster to join; none: start a local instance")
    cpus_per_trial: float = _key(1.0, "CPUs Ray reserves per trial")
    gpus_per_trial: float = _key(0.0, "GPUs Ray reserves per trial; fractions allowed")
    evaluate: bool = _key(True, "false: train, then only clean accuracy and selectivity")

    def __post_init__(self) -> None:
        _check(len(self.alphas) > 0, "the grid is empty: alphas has no values")
        _check(len(self.seeds) > 0, "the grid is empty: seeds has no values")
        check_values(self, SWEEP_RANGES)
        _check(
            self.executor in ("local", "ray"),
            f"executor must be local or ray, got {self.executor!r}",
        )


_CLASSES = (TrainConfig, EvalConfig, SweepConfig)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


_DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


def check_device(name: str) -> str:
    """`name` if it is auto, cpu, cuda or cuda:N; ConfigError otherwise (whether torch sees the
    device is asked when it is used)."""
    _check(
        isinstance(name, str) and _DEVICE.fullmatch(name) is not None,
        f"device must be auto, cpu, cuda or cuda:N, got {name!r}",
    )
    return name


def _check_known(key: str, known: Collection[str]) -> None:
    """ConfigError naming the closest known keys (not all of them) unless `key` is known."""
    if key in known:
        return
    # Close spellings first, then keys sharing a word (lr_rate: lr, lr_gamma), the closest first.
    close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
    words = set(key.split("_"))
    sharing = sorted(
        (k for k in known if k not in close and words & set(k.split("_"))),
        key=lambda k: (-difflib.SequenceMatcher(None, key, k).ratio(), k),
    )
    suggestions = [*close, *sharing][:5]
    hint = f"; did you mean: {', '.join(suggestions)}?" if suggestions else ""
    raise ConfigError(f"unknown key {key!r}{hint} (`selectivity keys` lists every key)")


def _all_fields() -> dict[str, Any]:
    """Key -> declared type of that field, over all config classes."""
    return {name: hint for cls in _CLASSES for name, hint in typing.get_type_hints(cls).items()}


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if isinstance(value, str) and value.lower() in ("none", "null", "") and type(None) in args:
            return None
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if errors else f"{key}: cannot parse {value!r}")
    if origin is tuple:
        items = (
            value
            if isinstance(value, (list, tuple))
            else [v for v in str(value).split(",") if v.strip() != ""]
        )
        return tuple(
            _coerce(item.strip() if isinstance(item, str) else item, args[0], key) for item in items
        )
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            lowered = str(value).lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value) if not isinstance(value, str) else int(value, 10)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, str) and "/" in value:  # eps as 8/255
                numerator, denominator = value.split("/")
                return float(numerator) / float(denominator)
            return float(value)
        if hint is str:
            return str(value)
    except (TypeError, ValueError, ZeroDivisionError):
        pass
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{key}: expected {name}, got {value!r}")


def parse_assignments(assignments: Iterable[str]) -> dict[str, Any]:
    """['epochs=3', 'alphas=-1,0,1'] -> {'epochs': 3, 'alphas': (-1.0, 0.0, 1.0)}, typed and checked."""
    known = _all_fields()
    parsed: dict[str, Any] = {}
    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip().replace("-", "_")
        _check_known(key, known)
        parsed[key] = _coerce(text.strip(), known[key], key)
    return parsed


def key_types() -> dict[str, Any]:
    """Key -> declared type, over every config class (Optional and unions as declared)."""
    return _all_fields()


def key_defaults() -> dict[str, Any]:
    """Key -> default value, over every config class; tuples as lists (as JSON records hold them)."""
    return {
        field.name: list(field.default) if isinstance(field.default, tuple) else field.default
        for cls in _CLASSES
        for field in fields(cls)
    }


def typed(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check keys and coerce already-parsed values (from JSON or presets) to declared types."""
    known = _all_fields()
    out = {}
    for key, value in values.items():
        _check_known(key, known)
        out[key] = _coerce(value, known[key], key)
    return out


def build(cls: type, *overrides: Mapping[str, Any]) -> Any:
    """Construct `cls` from key/value maps applied in order (later wins); keys of other configs
    are ignored."""
    names = {f.name for f in fields(cls)}
    merged: dict[str, Any] = {}
    for override in overrides:
        merged.update({k: v for k, v in typed(override).items() if k in names})
    try:
        return cls(**merged)
    except TypeError as error:
        raise ConfigError(str(error)) from None


def train_preset(name: str) -> dict[str, Any]:
    if name not in TRAIN_PRESETS:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(sorted(TRAIN_PRESETS))}")
    return dict(TRAIN_PRESETS[name])


def sweep_preset(name: str) -> dict[str, Any]:
    if name not in SWEEP_PRESETS:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(sorted(SWEEP_PRESETS))}")
    return dict(SWEEP_PRESETS[name])


def to_dict(config: Any) -> dict[str, Any]:
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
    }
