"""The `selectivity` command line: train, measure, evaluate, corrupt, sweep, report, demo.

User errors (bad keys, missing folders, corrupt files) end in one line on stderr and exit code 2;
nothing half-written is left behind, because every file is written under a temporary name.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

from selectivity import config as cfg
from selectivity.files import one_line

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure and control class selectivity, and test what it does to robustness.",
)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="key=value; repeatable. `selectivity keys` lists them."),
]
DeviceOption = Annotated[
    str | None,
    typer.Option(
        "--device",
        help="auto (a GPU when torch sees one), cpu, cuda or cuda:N; same as --set device=...",
    ),
]


def _keys(*classes: type) -> frozenset[str]:
    return frozenset(field.name for cls in classes for field in dataclasses.fields(cls))


# The keys each command uses; a key it would ignore is refused, so nothing is silently dropped.
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
    }
)


def _assignments(
    set_: list[str] | None,
    device: str | None,
    command: str,
    accepted: frozenset[str] = ALL_KEYS,
    hint: str = "",
) -> dict:
    """--set values (only keys in `accepted`), with --device on top when given."""
    values = cfg.parse_assignments(set_ or [])
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


class UserError(Exception):
    """Raised for anything the user can fix; printed as one line."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from selectivity.data import DataError
    from selectivity.files import FileError
    from selectivity.loggers import MissingPackageError
    from selectivity.metrics import NegativeActivationError
    from selectivity.models import ModelError
    from selectivity.probe import EmptyCaptureError, UnknownLayerError
    from selectivity.runs import RunError
    from selectivity.sweep import SweepError
    from selectivity.train import TrainingDiverged

    errors: list[type[BaseException]] = [
        cfg.ConfigError,
        DataError,
        NegativeActivationError,
        UnknownLayerError,
        EmptyCaptureError,
        ModelError,
        FileError,
        MissingPackageError,
        RunError,
        TrainingDiverged,
        UserError,
        SweepError,
    ]
    return tuple(errors)


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Run folder to create (or resume).")],
    preset: Annotated[
        str, typer.Option(help=f"One of: {', '.join(cfg.TRAIN_PRESETS)}")
    ] = "resnet20-cifar10",
    set_: SetOption = None,
    device: DeviceOption = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="No progress bar or per-epoch lines.")
    ] = False,
) -> None:
    """Train one network with the selectivity regularizer (alpha = 0: plain training)."""
    from selectivity.train import train as run_training

    config = cfg.build(
        cfg.TrainConfig, cfg.train_preset(preset), _assignments(set_, device, "train", TRAIN_KEYS)
    )
    summary = run_training(config, out, progress=not quiet)
    typer.echo(
        f"{out}: best epoch {summary['best_epoch']}, val accuracy {summary['val_accuracy']:.4f}, "
        f"test accuracy {summary['test_accuracy']:.4f}, test selectivity {summary['test_selectivity']:.4f}"
    )


RunDirArgument = Annotated[
    Path | None,
    typer.Argument(help="A run folder made by `selectivity train` (or give --model)."),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Your model instead of a run folder: package.module:factory (called with no "
        "arguments) or a registered name; the data comes from --set dataset=... data_dir=...",
    ),
]
WeightsOption = Annotated[
    Path | None,
    typer.Option("--weights", help="State dict for --model (torch.save(model.state_dict()))."),
]
NormalizeOption = Annotated[
    str | None,
    typer.Option(
        "--normalize",
        help="mean,std (or C means then C stds) when --model expects normalised inputs.",
    ),
]
OutOption = Annotated[
    Path | None, typer.Option("--out", help="Folder for the tables of --model (default: none).")
]


def _source(
    run_dir: Path | None, model: str | None, weights: Path | None, normalize: str | None
) -> None:
    """UserError unless exactly one of RUN_DIR and --model is given, with its own options."""
    if (run_dir is None) == (model is None):
        raise UserError("give a RUN_DIR or --model package.module:factory, not both or neither")
    if model is None and (weights is not None or normalize is not None):
        raise UserError("--weights and --normalize go with --model")


@app.command()
def measure(
    run_dir: RunDirArgument = None,
    split: Annotated[str, typer.Option(help="test, val or train")] = "test",
    checkpoint: Annotated[str, typer.Option(help="best or last")] = "best",
    model: ModelOption = None,
    weights: WeightsOption = None,
    normalize: NormalizeOption = None,
    out: OutOption = None,
    set_: SetOption = None,
    device: DeviceOption = None,
) -> None:
    """Class selectivity of every unit: writes RUN_DIR/selectivity.parquet (test split;
    selectivity-val.parquet, selectivity-train.parquet for the others) and prints mu_SI.
    With --model, of your own model on the data --set names, written to --out."""
    from selectivity.load import measure_run, measure_user
    from selectivity.summary import selectivity_lines

    _source(run_dir, model, weights, normalize)
    if split not in ("test", "val", "train"):
        raise UserError(f"--split must be test, val or train, got {split!r}")
    if checkpoint not in ("best", "last"):
        raise UserError(f"--checkpoint must be best or last, got {checkpoint!r}")
    path: Path | None
    if run_dir is not None:
        if out is not None:
            raise UserError("--out goes with --model; a run folder's tables stay in it")
        overrides = _assignments(set_, device, "measure", TRAIN_KEYS)
        table, path = measure_run(run_dir, split, checkpoint, overrides)
    else:
        assert model is not None  # _source
        keys = _assignments(set_, device, "measure --model", MODEL_KEYS)
        table, path = measure_user(model, weights, normalize, split, keys, out)
    for note in table.attrs.get("notes", []):
        typer.echo(f"note: {note}")
    for line in selectivity_lines(table):
        typer.echo(line)
    if path is not None:
        typer.echo(f"wrote {path}")


@app.command()
def evaluate(
    run_dir: RunDirArgument = None,
    suite: Annotated[
        str, typer.Option(help="quick (bounded samples) or full (everything)")
    ] = "full",
    corruptions_dir: Annotated[
        Path | None,
        typer.Option(
            "--corruptions-dir",
            help="CIFAR-10-C / Tiny-ImageNet-C layout, or one made by `selectivity corrupt`.",
        ),
    ] = None,
    generate_corruptions: Annotated[
        bool,
        typer.Option(
            "--generate-corruptions",
            help="Generate the corruption set from the test images (kept in RUN_DIR/corruptions).",
        ),
    ] = False,
    model: ModelOption = None,
    weights: WeightsOption = None,
    normalize: NormalizeOption = None,
    out: OutOption = None,
    set_: SetOption = None,
    device: DeviceOption = None,
    quiet: Annotated[bool, typer.Option("--quiet")] = False,
) -> None:
    """Corruptions, FGSM/PGD, Jacobian, gradient variability and dimensionality of one run,
    or of your own model (--model) on the data --set names."""
    from selectivity.evaluate import eval_config
    from selectivity.evaluate import evaluate as run_evaluation
    from selectivity.load import evaluate_user
    from selectivity.summary import summarise_evaluation

    _source(run_dir, model, weights, normalize)
    if corruptions_dir is not None and generate_corruptions:
        raise UserError("give either --corruptions-dir or --generate-corruptions, not both")
    accepted = EVALUATE_KEYS if model is None else EVALUATE_KEYS | MODEL_KEYS
    overrides = _assignments(set_, device, "evaluate", accepted)
    data_keys = {k: overrides.pop(k) for k in MODEL_KEYS - {"device"} if k in overrides}
    target = overrides.pop("device", None)
    flags: dict[str, object] = {"generate_corruptions": generate_corruptions}
    if corruptions_dir is not None:
        flags["corruptions_dir"] = str(corruptions_dir)
    config = eval_config(suite, overrides, flags)
    if run_dir is not None:
        if out is not None:
            raise UserError("--out goes with --model; a run folder's tables stay in it")
        table = run_evaluation(run_dir, config, device=target, progress=not quiet)
        path: Path | None = Path(run_dir) / "evaluation.parquet"
    else:
        assert model is not None  # _source
        keys = {**data_keys, **({"device": target} if target is not None else {})}
        table = evaluate_user(model, weights, normalize, keys, config, out, not quiet)
        path = out / "evaluation.parquet" if out is not None else None
    for note in table.attrs.get("notes", []):
        typer.echo(f"note: {note}")
    for line in summarise_evaluation(table):
        typer.echo(line)
    if path is not None:
        typer.echo(f"wrote {path} ({len(table)} rows)")


@app.command()
def corrupt(
    out: Annotated[Path, typer.Option("--out", help="Folder to write (CIFAR-10-C layout).")],
    dataset: Annotated[
        str | None, typer.Option(help="digits (default), cifar10, tinyimagenet, svhn, folder")
    ] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir")] = None,
    split: Annotated[str, typer.Option(help="test or val")] = "test",
    seed: Annotated[
        int | None, typer.Option(help="Seed of the random corruptions (corruption_seed).")
    ] = None,
    table: Annotated[
        str | None,
        typer.Option(
            help="Parameter table: cifar10, tinyimagenet or imagenet; default by image size."
        ),
    ] = None,
    corruption: Annotated[
        list[str] | None,
        typer.Option("--corruption", help="Only these (repeatable); default all."),
    ] = None,
    image_size: Annotated[int | None, typer.Option("--image-size")] = None,
    set_: SetOption = None,
    device: DeviceOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Generate the 19 corruptions x 5 severities of a data set's test images."""
    from selectivity import corruptions
    from selectivity.data import load_dataset
    from selectivity.runs import resolve_device

    if split not in ("test", "val"):
        raise UserError(f"--split must be test or val, got {split!r}")
    keys = _assignments(
        set_,
        device,
        "corrupt",
        CORRUPT_KEYS,
        hint=" (the corruption seed is --seed or corruption_seed)" if _names_seed(set_) else "",
    )
    # The options are the same keys under their own names; given, they win over --set.
    options = {
        "dataset": dataset,
        "data_dir": data_dir,
        "image_size": image_size,
        "corruption_seed": seed,
        "corruption_table": table,
        "corruptions": tuple(corruption) if corruption else None,
    }
    keys.update({k: v for k, v in options.items() if v is not None})
    keys.setdefault("dataset", "digits")
    # Built to check every value (names, table, sizes, device) before any work.
    data_keys = cfg.build(cfg.TrainConfig, keys)
    set_keys = cfg.build(cfg.EvalConfig, keys)
    target = resolve_device(data_keys.device)
    data = load_dataset(data_keys.dataset, data_keys.data_dir, 0, data_keys.image_size)
    images = getattr(data, split)
    written = corruptions.generate_corruption_set(
        images,
        out,
        seed=set_keys.corruption_seed,
        corruptions=set_keys.corruptions,
        severities=set_keys.severities,
        table=set_keys.corruption_table,
        device=target,
        progress=not quiet,
    )
    typer.echo(
        f"wrote {len(written)} corruption files to {out} ({len(images)} images x {len(set_keys.severities)} severities each)"
    )


def _names_seed(set_: list[str] | None) -> bool:
    return any(item.split("=", 1)[0].strip() == "seed" for item in set_ or [])


def _sweep_overrides(
    preset: str | None,
    config_file: Path | None,
    set_: list[str] | None,
    device: str | None,
    grid: list[str] | None,
) -> list[dict]:
    if preset is not None and config_file is not None:
        raise UserError("give either --preset or a CONFIG_FILE, not both")
    base = (
        cfg.sweep_preset(preset or "demo")
        if config_file is None
        else cfg.load_config_file(config_file)
    )
    assigned = _assignments(set_, device, "sweep")
    if not grid:
        return [base, assigned]
    from selectivity.grid import parse_grid

    return [base, assigned, {"grids": [parse_grid(grid, assigned)]}]


GridOption = Annotated[
    list[str] | None,
    typer.Option(
        "--grid",
        help="key=v1,v2,... (values parsed as --set parses one); repeatable: the trials are the "
        "product of the keys. A grid without seed takes `seeds`; alpha stays at its key's value "
        "unless the grid names it. Replaces the preset's or file's grid.",
    ),
]


@app.command()
def sweep(
    out: Annotated[Path, typer.Option("--out", help="Sweep folder (created, or resumed).")],
    config_file: Annotated[
        Path | None,
        typer.Argument(help="JSON file of keys (may hold a grid or grids), instead of --preset."),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(help=f"One of: {', '.join(cfg.SWEEP_PRESETS)}"),
    ] = None,
    set_: SetOption = None,
    grid: GridOption = None,
    device: DeviceOption = None,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="Join this Ray cluster (implies executor=ray)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet")] = False,
) -> None:
    """Train and evaluate a grid (alphas x seeds, or --grid over any keys); gather
    SWEEP_DIR/results.parquet."""
    from selectivity.sweep import run_sweep

    overrides = _sweep_overrides(preset, config_file, set_, device, grid)
    if ray_address:
        overrides.append({"executor": "ray", "ray_address": ray_address})
    trials = run_sweep(out, overrides, progress=not quiet)
    _print_trials(trials, out)
    _exit_if_trials_failed(trials, out)


def _print_trials(trials, out: Path) -> None:
    from selectivity.grid import describe
    from selectivity.schema import trial_columns

    done = int((trials["status"] == "done").sum())
    typer.echo(f"{done} of {len(trials)} trials done; results in {out / 'results.parquet'}")
    columns = trial_columns(trials)
    for _, row in trials[trials["status"] != "done"].iterrows():
        typer.echo(f"  failed: {describe({c: row[c] for c in columns})}: {row['reason']}")


def _exit_if_trials_failed(trials, out: Path) -> None:
    """Exit 1 (the work failed in part; 2 is for input refused before any work) with one line."""
    failed = int((trials["status"] != "done").sum())
    if failed:
        print(
            f"selectivity: error: {failed} of {len(trials)} trials failed; reasons in "
            f"{out / 'trials.parquet'}, tracebacks in each failed trial's trial.json; "
            "run the same command to retry them",
            file=sys.stderr,
        )
        sys.exit(1)


@app.command()
def report(
    sweep_dir: Annotated[Path, typer.Argument(help="A sweep folder with results.parquet.")],
    out: Annotated[Path | None, typer.Option("--out", help="Default: the sweep folder.")] = None,
) -> None:
    """Figures with bootstrapped 95% CIs over seeds, a claims table, report.html."""
    from selectivity.files import read_table
    from selectivity.report import write_report

    results = sweep_dir / "results.parquet"
    if not results.is_file():
        raise UserError(f"no results table: {results} is missing (made by `selectivity sweep`)")
    rebuild = "; run `selectivity sweep` on the folder again to rebuild it"
    table = read_table(results, ["alpha", "seed", "metric", "value"], rebuild)
    trials_path = sweep_dir / "trials.parquet"
    trials = read_table(trials_path, ["status"], rebuild) if trials_path.is_file() else None
    failed = trials[trials["status"] != "done"] if trials is not None else None
    path = write_report(table, out or sweep_dir, failed=failed)
    typer.echo(f"report: {path}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out")] = Path("runs/demo"),
    set_: SetOption = None,
    device: DeviceOption = None,
    quiet: Annotated[bool, typer.Option("--quiet")] = False,
) -> None:
    """The whole pipeline on the embedded digits: one sweep (5 alphas; Gaussian-noise,
    corruption-mix and PGD adversarial training at 3 strengths each; 3 seeds; see
    config.DEMO_GRIDS), then the report."""
    import time

    import pandas as pd

    from selectivity.report import write_report
    from selectivity.sweep import run_sweep

    started = time.perf_counter()
    trials = run_sweep(
        out,
        [cfg.sweep_preset("demo"), _assignments(set_, device, "demo")],
        progress=not quiet,
        grids=cfg.DEMO_GRIDS,
    )
    _print_trials(trials, out)
    path = write_report(
        pd.read_parquet(out / "results.parquet"), out, failed=trials[trials["status"] != "done"]
    )
    typer.echo(f"demo finished in {time.perf_counter() - started:.0f} s")
    typer.echo(f"report: {path.resolve()}")
    _exit_if_trials_failed(trials, out)


@app.command()
def keys() -> None:
    """List every key that --set (and a sweep's config file) accepts: type, default, meaning."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    if not console.is_terminal:  # piped (to grep, a file): one line per key
        console = Console(width=220)
    for group, infos in cfg.describe_keys().items():
        table = Table(
            title=f"{group} keys ({cfg.CONFIG_GROUPS[group].__name__})",
            title_justify="left",
            box=None,
            header_style="bold",
        )
        for column in ("key", "type", "default", "meaning"):
            table.add_column(column, overflow="fold")
        for info in infos:
            # Text, not markup: "[tensorboard]" and "tuple[int, ...]" are meant literally.
            table.add_row(*map(Text, (info.name, info.type, info.default, info.meaning)))
        console.print(table)
        console.print()


def _click_exceptions() -> tuple[type[BaseException], ...]:
    """click's ClickException classes: typer >= 0.17 bundles its own click (`typer._click`),
    and older ones use plain click; either may raise, depending on the installed typer."""
    classes: list[type[BaseException]] = []
    try:
        from typer._click.exceptions import ClickException as BundledClickException

        classes.append(BundledClickException)
    except ImportError:
        pass
    try:
        from click import ClickException

        classes.append(ClickException)
    except ImportError:
        pass
    return tuple(classes)


def _usage_line(error: BaseException) -> str:
    """One line for a click usage error: its message, and where the command's help is."""
    message = error.format_message() if hasattr(error, "format_message") else str(error)
    message = " ".join(message.split())
    ctx = getattr(error, "ctx", None)
    if ctx is not None:
        if not message.endswith((".", "?", "!")):
            message += "."
        message += f" Try '{ctx.command_path} --help' for help."
    return message


def _os_error_line(error: OSError) -> str:
    """'<path>: <cause>', e.g. 'runs/x: Read-only file system'."""
    cause = error.strerror or str(error) or type(error).__name__
    if error.filename is not None and error.errno in (errno.ENOTDIR, errno.EEXIST):
        # mkdir's own words ("Not a directory", "File exists") hide which file is in the way.
        blocking = Path(os.fsdecode(error.filename))
        while not blocking.exists() and blocking != blocking.parent:
            blocking = blocking.parent
        if blocking.exists() and not blocking.is_dir():
            if blocking == Path(os.fsdecode(error.filename)):
                return f"{blocking} is a file, not a folder"
            return f"{error.filename}: {blocking} is a file, not a folder"
    if error.filename is not None and error.filename2 is not None:
        return f"{error.filename} -> {error.filename2}: {cause}"
    if error.filename is not None:
        return f"{error.filename}: {cause}"
    return cause


def _interrupted(code: int = 130) -> None:
    what = "terminated" if code == 143 else "interrupted"
    print(
        f"selectivity: {what}; finished files are kept, run the same command to resume",
        file=sys.stderr,
    )
    sys.exit(code)


def _fail(message: str) -> None:
    print(f"selectivity: error: {message}", file=sys.stderr)
    sys.exit(2)


def _warning_line(message: Warning | str, category: type[Warning], *_: object, **__: object) -> str:
    return f"selectivity: warning: {one_line(message) if isinstance(message, BaseException) else message}\n"


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    usage_errors = _click_exceptions()
    # Warnings are for the user, not the developer: one line each, without the source line.
    warnings.formatwarning = _warning_line
    from selectivity.executors import Terminated

    try:
        code = app(prog_name="selectivity", standalone_mode=False)
    except Terminated:
        _interrupted(143)  # SIGTERM, which a sweep turns into this after ending its trials
    except _user_errors() as error:
        _fail(one_line(error))
    except typer.Abort:
        print("selectivity: aborted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        _interrupted()
    except usage_errors as error:
        if type(error).__name__ == "NoArgsIsHelpError":
            # `selectivity` alone: the list of commands is the most useful answer.
            error.show()  # type: ignore[attr-defined]  # typer's NoArgsIsHelpError
            sys.exit(2)
        _fail(_usage_line(error))
    except OSError as error:
        # A read-only or full disk, a file where a folder should be, no permission: the user's
        # to fix, and every writer has already removed its temporary file.
        _fail(_os_error_line(error))
    # Not standalone: click hands back the code of an explicit exit (--help: 0), and typer
    # turns Ctrl-C into such an exit with code 130.
    if code == 130:
        _interrupted()
    if isinstance(code, int) and code != 0:
        sys.exit(code)
    if len(sys.argv) <= 1:
        # click < 8.2 prints the help for `selectivity` alone and exits 0; it is a usage error.
        sys.exit(2)


if __name__ == "__main__":
    main()
