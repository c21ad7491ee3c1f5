"""Configuration: frozen dataclasses, the papers' presets, and `--set key=value` parsing.

One flat key space serves every command: a key names a field of `TrainConfig`, `EvalConfig` or
`SweepConfig` (their names do not overlap), so `--set epochs=3` reaches training whether it is
given to `train` or to `sweep`. Values are parsed by the field's declared type; an unknown key or
a value of the wrong type raises `ConfigError` with one line.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

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
    "parse_assignments",
    "to_dict",
    "train_preset",
]


class ConfigError(ValueError):
    """A bad key, value or preset; the message is one line for the user."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs. Defaults are the ResNet20/CIFAR10 recipe (appendix A.1.1)."""

    model: str = "resnet20"
    dataset: str = "cifar10"
    data_dir: str | None = None
    image_size: int | None = None  # None: the data set's native size (digits: 16)
    alpha: float = 0.0  # loss = CE - alpha * mu_SI; < 0 discourages selectivity
    seed: int = 0
    epochs: int = 200
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple[int, ...] = (100, 150)  # lr x lr_gamma at each of these epochs
    lr_gamma: float = 0.1
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    eval_batch_size: int = 1024
    normalize: bool = True  # per-channel input normalisation inside the model
    selectivity_layers: tuple[str, ...] | None = None  # None: every ReLU call site
    num_threads: int | None = None  # torch CPU threads; None: torch's default
    channels_last: bool = False  # NHWC memory order: ~1.2x faster ResNet training on CPUs

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "epochs must be >= 1")
        _check(
            self.batch_size >= 2,
            "batch_size must be >= 2 (selectivity needs two classes in a batch)",
        )
        _check(self.lr > 0, "lr must be > 0")
        _check(self.eval_batch_size >= 1, "eval_batch_size must be >= 1")
        _check(all(m >= 1 for m in self.milestones), "milestones must be epochs >= 1")
        _check(self.alpha == self.alpha, "alpha must be a number, not NaN")
        _check(
            self.image_size is None or self.image_size >= 1,
            f"image_size must be >= 1 (none: the data set's own size), got {self.image_size}",
        )
        _check(
            self.num_threads is None or self.num_threads >= 1,
            f"num_threads must be >= 1 (none: torch's default), got {self.num_threads}",
        )
        _check(
            self.selectivity_layers is None or len(self.selectivity_layers) > 0,
            "selectivity_layers names no layer (none: every ReLU call site)",
        )
        check_device(self.device)
        # The registry is open (`register_model`), so the names are asked for, not listed here.
        from selectivity.models import list_models

        _check(
            self.model in list_models(),
            f"unknown model {self.model!r}; available: {', '.join(list_models())}",
        )


@dataclass(frozen=True)
class EvalConfig:
    """What `evaluate` measures. Defaults are the `full` suite; `quick` bounds sample counts."""

    suite: str = "full"
    corruptions_dir: str | None = None  # a published or generated set in CIFAR-10-C layout
    generate_corruptions: bool = False  # generate the set from the test images when no dir
    corruptions: tuple[str, ...] | None = None  # None: all available
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    corruption_table: str | None = None  # parameter table; None: chosen by image size
    corruption_seed: int = 0
    fgsm_eps: tuple[float, ...] = (0.0, 0.5 / 255, 1 / 255, 2 / 255, 4 / 255, 8 / 255)
    pgd_eps: float = 8 / 255  # not stated in the papers
    # A number (the paper's 1e-4, appendix A.1.4) or "auto": 2.5 * eps / steps (Madry et al.),
    # steps being the length of the PGD run. At 1e-4 a pixel moves at most steps * 1e-4, so an
    # 8/255 ball binds only after 314 steps (2/255 after 79): below that, eps is nominal.
    pgd_step_size: float | str = 1e-4
    pgd_steps: tuple[int, ...] = (0, 1, 2, 5, 10, 25, 50)
    jacobian_projections: int | None = 1  # None: exact (one backward per class)
    gradient_max_units: int | None = 32  # units per layer for gradient variability
    dimensionality_variance: float = 0.9
    dimensionality_corruption: str | None = (
        None  # None: motion_blur (CIFAR) / brightness (Tiny ImageNet)
    )
    dimensionality_severity: int = 3
    dimensionality_pgd_steps: int = 25
    max_samples: int | None = None  # test samples for attacks, corruptions and the rest; None: all
    # Samples for Jacobian, gradient variability, dimensionality; "all": the whole test set.
    # Dimensionality is capped by (N - 1) / D, so N matters: rows carry it.
    analysis_samples: int | str = 1000
    # AutoAttack (pyautoattack): standard (deterministic models) | rand (randomised models) | off
    autoattack_version: str = "standard"
    autoattack_attacks: tuple[str, ...] | None = None  # None: the version's ensemble, in order
    autoattack_eps: tuple[float, ...] | None = None  # L-inf radii; None: pgd_eps only
    autoattack_samples: int | None = None  # images of the max_samples subset; None: all of them
    autoattack_iterations: int = 100  # APGD and FAB iterations per run (the package's 100)
    autoattack_target_classes: int = 9  # APGD-T and FAB-T target classes (capped at classes - 1)
    autoattack_square_queries: int = 5000  # Square's queries per image (the package's 5000)
    # A large radius where accuracy must approach 0 (masking flag large_eps); None: no such run.
    masking_eps: float | None = 0.5

    def __post_init__(self) -> None:
        _check(
            self.suite in EVAL_SUITES,
            f"suite must be one of {sorted(EVAL_SUITES)}, got {self.suite!r}",
        )
        _check(all(1 <= s <= 5 for s in self.severities), "severities must be in 1..5")
        _check(all(e >= 0 for e in self.fgsm_eps) and self.pgd_eps >= 0, "eps must be >= 0")
        _check(
            self.pgd_step_size == "auto"
            or (not isinstance(self.pgd_step_size, str) and self.pgd_step_size > 0),
            f"pgd_step_size must be a number > 0 or auto, got {self.pgd_step_size!r}",
        )
        _check(all(s >= 0 for s in self.pgd_steps), "pgd_steps must be >= 0")
        _check(0 < self.dimensionality_variance <= 1, "dimensionality_variance must be in (0, 1]")
        _check(self.max_samples is None or self.max_samples >= 2, "max_samples must be >= 2")
        _check(
            self.analysis_samples == "all"
            or (not isinstance(self.analysis_samples, str) and self.analysis_samples >= 2),
            f"analysis_samples must be an integer >= 2 or all, got {self.analysis_samples!r}",
        )
        _check(1 <= self.dimensionality_severity <= 5, "dimensionality_severity must be in 1..5")
        self._check_autoattack()
        from selectivity.corruptions.tables import CORRUPTIONS, TABLES

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
            self.corruption_table is None or self.corruption_table in TABLES,
            f"unknown corruption_table {self.corruption_table!r}; known: {', '.join(TABLES)}",
        )

    def _check_autoattack(self) -> None:
        from selectivity.worstcase import ATTACKS, VERSIONS

        versions = (*VERSIONS, "off")
        _check(
            self.autoattack_version in versions,
            f"autoattack_version must be one of {', '.join(versions)}, got {self.autoattack_version!r}",
        )
        unknown = sorted(set(self.autoattack_attacks or ()) - set(ATTACKS))
        _check(not unknown, f"unknown autoattack_attacks {unknown}; known: {', '.join(ATTACKS)}")
        _check(
            self.autoattack_attacks is None or len(self.autoattack_attacks) > 0,
            "autoattack_attacks names none (none: the version's ensemble)",
        )
        radii = (*(self.autoattack_eps or ()), self.masking_eps or 0.0)
        _check(all(0 <= e <= 1 for e in radii), "autoattack_eps and masking_eps must be in [0, 1]")
        _check(
            self.autoattack_samples is None or self.autoattack_samples >= 1,
            "autoattack_samples must be >= 1 (none: all max_samples images)",
        )
        _check(
            min(self.autoattack_iterations, self.autoattack_target_classes) >= 1
            and self.autoattack_square_queries >= 1,
            "autoattack_iterations, autoattack_target_classes, autoattack_square_queries must be >= 1",
        )

    def pgd_step(self, steps: int) -> float:
        """The PGD step size, [0, 1] pixel units, for a run of `steps` steps at `pgd_eps`.

        auto: 2.5 * eps / steps, so the run can cross the ball (Madry et al. 2018); 0 when eps
        or steps is 0 (the attack is then the identity).
        """
        if self.pgd_step_size != "auto":
            return float(self.pgd_step_size)
        return 2.5 * self.pgd_eps / steps if steps > 0 else 0.0


EVAL_SUITES: dict[str, dict[str, Any]] = {
    "full": {},
    "quick": {
        "max_samples": 500,
        "analysis_samples": 200,
        "fgsm_eps": (0.0, 1 / 255, 4 / 255, 8 / 255),
        "pgd_steps": (0, 1, 5, 25),
        "gradient_max_units": 8,
        # AutoAttack's white-box half (no FAB-T, no Square) with a quarter of its iterations and
        # 3 target classes, on 200 images: ~1/20 of the standard version's gradient evaluations.
        "autoattack_attacks": ("apgd-ce", "apgd-t"),
        "autoattack_samples": 200,
        "autoattack_iterations": 25,
        "autoattack_target_classes": 3,
    },
}


def suite_defaults(suite: str) -> dict[str, Any]:
    """The keys a suite sets beneath the preset's and the user's; ConfigError for an unknown suite."""
    _check(suite in EVAL_SUITES, f"suite must be one of {sorted(EVAL_SUITES)}, got {suite!r}")
    return {**EVAL_SUITES[suite], "suite": suite}


# Symmetric around 0 and log-spaced in |alpha|; the seed texts do not list the papers' grid.
PAPER_ALPHAS: tuple[float, ...] = (
    -100.0,
    -30.0,
    -10.0,
    -3.0,
    -1.0,
    -0.3,
    -0.1,
    0.0,
    0.1,
    0.3,
    1.0,
    3.0,
    10.0,
    30.0,
    100.0,
)


@dataclass(frozen=True)
class SweepConfig:
    """The grid and its engine. Trials are alpha x seed; every other key reaches each trial."""

    alphas: tuple[float, ...] = PAPER_ALPHAS
    seeds: tuple[int, ...] = tuple(range(20))
    executor: str = "local"  # local | ray
    workers: int | None = None  # local: parallel trials; None: one per 2 cores (at least 1)
    ray_address: str | None = None  # join an existing cluster; None: start a local instance
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0  # fractions allowed with Ray
    evaluate: bool = True  # false: train, then only clean accuracy and selectivity

    def __post_init__(self) -> None:
        _check(len(self.alphas) > 0, "the grid is empty: alphas has no values")
        _check(len(self.seeds) > 0, "the grid is empty: seeds has no values")
        _check(len(set(self.alphas)) == len(self.alphas), "alphas has duplicates")
        _check(len(set(self.seeds)) == len(self.seeds), "seeds has duplicates")
        _check(
            self.executor in ("local", "ray"),
            f"executor must be local or ray, got {self.executor!r}",
        )
        _check(self.workers is None or self.workers >= 1, "workers must be >= 1")
        _check(
            self.cpus_per_trial > 0 and self.gpus_per_trial >= 0,
            "cpus_per_trial must be > 0, gpus_per_trial >= 0",
        )


TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "resnet20-cifar10": {},
    "resnet18-tinyimagenet": {
        "model": "resnet18",
        "dataset": "tinyimagenet",
        "epochs": 90,
        "batch_size": 4096,
        "milestones": (35, 50, 65, 80),
    },
    "resnet50-tinyimagenet": {
        "model": "resnet50",
        "dataset": "tinyimagenet",
        "epochs": 90,
        "batch_size": 4096,
        "milestones": (35, 50, 65, 80),
    },
    # Seconds per run on a CPU: for tests, the demo and trying things out.
    "digits": {
        "model": "digitsnet",
        "dataset": "digits",
        "epochs": 12,
        "batch_size": 64,
        "lr": 0.05,
        "milestones": (9,),
        "eval_batch_size": 512,
    },
}

# The papers' presets keep the paper's PGD step (appendix A.1.4), to reproduce its numbers: with
# pgd_steps up to 50 a pixel moves at most 50 * 1e-4 = 1.3/255, so the 8/255 ball never binds
# and the attack is weaker than its eps says (the rows' pgd_linf_max shows how far it went).
# --set pgd_step_size=auto gives the Madry-strength attack of that radius.
_PAPER_PGD: dict[str, Any] = {"pgd_step_size": 1e-4}

SWEEP_PRESETS: dict[str, dict[str, Any]] = {
    "demo": {
        **TRAIN_PRESETS["digits"],
        "alphas": (-10.0, -1.0, 0.0, 1.0, 10.0),
        "seeds": (0, 1, 2),
        "generate_corruptions": True,
        "fgsm_eps": (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255),
        "pgd_eps": 8 / 255,
        # 2/255, not the paper's 1e-4: at 1e-4 the 25 steps move a pixel by 0.6/255 at most and
        # the 8/255 ball never binds; at 2/255 it binds after 4 steps, so the demo shows a real
        # attack of that radius.
        "pgd_step_size": 2 / 255,
        "pgd_steps": (0, 1, 2, 5, 10, 25),
        "gradient_max_units": 16,
        "analysis_samples": 359,
        # The quick suite's AutoAttack (APGD-CE, APGD-T; 25 iterations, 3 targets) on 100
        # images, at 8/255 and 0.5: ~17x PGD-25's time per image (benchmarks/autoattack.py).
        # Square is left out: 500 queries alone cost ~50x PGD-25 per image on this tiny net.
        "autoattack_attacks": ("apgd-ce", "apgd-t"),
        "autoattack_samples": 100,
        "autoattack_iterations": 25,
        "autoattack_target_classes": 3,
    },
    "resnet20-cifar10": {
        **TRAIN_PRESETS["resnet20-cifar10"],
        **_PAPER_PGD,
        "dimensionality_corruption": "motion_blur",
    },
    "resnet18-tinyimagenet": {
        **TRAIN_PRESETS["resnet18-tinyimagenet"],
        **_PAPER_PGD,
        "dimensionality_corruption": "brightness",
    },
    "resnet50-tinyimagenet": {
        **TRAIN_PRESETS["resnet50-tinyimagenet"],
        **_PAPER_PGD,
        "dimensionality_corruption": "brightness",
    },
}

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
        if key not in known:
            raise ConfigError(f"unknown key {key!r}; known keys: {', '.join(sorted(known))}")
        parsed[key] = _coerce(text.strip(), known[key], key)
    return parsed


def _typed(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check keys and coerce already-parsed values (from JSON or presets) to declared types."""
    known = _all_fields()
    out = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown key {key!r}; known keys: {', '.join(sorted(known))}")
        out[key] = _coerce(value, known[key], key)
    return out


def build(cls: type, *overrides: Mapping[str, Any]) -> Any:
    """Construct `cls` from key/value maps applied in order (later wins); keys of other configs
    are ignored."""
    names = {f.name for f in fields(cls)}
    merged: dict[str, Any] = {}
    for override in overrides:
        merged.update({k: v for k, v in _typed(override).items() if k in names})
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


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON object of keys, as written in `config.json` or by hand."""
    try:
        values = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"config file {path} is not valid JSON: {error.msg} at line {error.lineno}"
        ) from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a JSON object of keys")
    return _typed(values)


def to_dict(config: Any) -> dict[str, Any]:
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
    }
