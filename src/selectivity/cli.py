"""The `selectivity` command line: train, measure, evaluate, corrupt, sweep, report, compare,
demo, keys.

It parses options, calls one function of `selectivity.commands` and prints what it returns.
User errors (`selectivity.errors.SelectivityError`: bad keys, missing folders, corrupt files) end
in one line on stderr and exit code 2; nothing half-written is left behind, because every file is
written under a temporary name.
"""

from __future__ import annotations

import errno
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

from selectivity import commands
from selectivity.config import SWEEP_PRESETS, TRAIN_PRESETS
from selectivity.errors import SelectivityError
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
WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="Another selectivity command writing into the folder: wait for it to finish "
        "(default: refuse at once).",
    ),
]


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Run folder to create (or resume).")],
    preset: Annotated[
        str, typer.Option(help=f"One of: {', '.join(TRAIN_PRESETS)}")
    ] = "resnet20-cifar10",
    set_: SetOption = None,
    device: DeviceOption = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="No progress bar or per-epoch lines.")
    ] = False,
    wait: WaitOption = False,
) -> None:
    """Train one network with the selectivity regularizer (alpha = 0: plain training)."""
    summary = commands.train(out, preset, set_, device, progress=not quiet, wait=wait)
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
DataOption = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="Your own test set for --model: package.module:factory returning a Dataset, a "
        "DataLoader, (images, labels) tensors, (image, label) pairs or a DataSplits; dict items "
        "under --set image_key=... label_key=...",
    ),
]
RandomInitOption = Annotated[
    bool,
    typer.Option(
        "--random-init",
        help="Measure --model with the weights it is built with (no --weights file): random "
        "for a new network, or trained ones its factory loads itself.",
    ),
]
OutOption = Annotated[
    Path | None, typer.Option("--out", help="Folder for the tables of --model (default: none).")
]


@app.command()
def measure(
    run_dir: RunDirArgument = None,
    split: Annotated[str, typer.Option(help="test, val or train")] = "test",
    checkpoint: Annotated[str, typer.Option(help="best or last")] = "best",
    model: ModelOption = None,
    weights: WeightsOption = None,
    normalize: NormalizeOption = None,
    data: DataOption = None,
    random_init: RandomInitOption = False,
    out: OutOption = None,
    set_: SetOption = None,
    device: DeviceOption = None,
    wait: WaitOption = False,
) -> None:
    """Class selectivity of every unit: writes RUN_DIR/selectivity.parquet (test split;
    selectivity-val.parquet, selectivity-train.parquet for the others) and prints mu_SI.
    With --model, of your own model on the data --set names (or your --data), written to --out."""
    from selectivity.summary import selectivity_lines

    source = commands.ModelSource(run_dir, model, weights, normalize, data, random_init)
    table, path = commands.measure(source, split, checkpoint, out, set_, device, wait=wait)
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
    data: DataOption = None,
    random_init: RandomInitOption = False,
    out: OutOption = None,
    set_: SetOption = None,
    device: DeviceOption = None,
    quiet: Annotated[bool, typer.Option("--quiet")] = False,
    wait: WaitOption = False,
) -> None:
    """Corruptions, FGSM/PGD, Jacobian, gradient variability and dimensionality of one run,
    or of your own model (--model) on the data --set names or on your own test set (--data)."""
    from selectivity.summary import summarise_evaluation

    source = commands.ModelSource(run_dir, model, weights, normalize, data, random_init)
    table, path = commands.evaluate(
        source, suite, corruptions_dir, generate_corruptions, out, set_, device, not quiet, wait
    )
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
    wait: WaitOption = False,
) -> None:
    """Generate the 19 corruptions x 5 severities of a data set's test images."""
    # The options are keys under their own names; given, they win over --set.
    options = {
        "dataset": dataset,
        "data_dir": data_dir,
        "image_size": image_size,
        "corruption_seed": seed,
        "corruption_table": table,
        "corruptions": tuple(corruption) if corruption else None,
    }
    done = commands.corrupt(out, options, split, set_, device, progress=not quiet, wait=wait)
    typer.echo(
        f"wrote {len(done.written)} corruption files to {out} ({done.images} images x "
        f"{done.severities} severities each)"
    )


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
        typer.Option(help=f"One of: {', '.join(SWEEP_PRESETS)}"),
    ] = None,
    set_: SetOption = None,
    grid: GridOption = None,
    device: DeviceOption = None,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="Join this Ray cluster (implies executor=ray)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet")] = False,
    wait: WaitOption = False,
) -> None:
    """Train and evaluate a grid (alphas x seeds, or --grid over any keys); gather
    SWEEP_DIR/results.parquet."""
    trials = commands.sweep(
        out, config_file, preset, set_, grid, device, ray_address, progress=not quiet, wait=wait
    )
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
    margin: Annotated[
        float | None,
        typer.Option(
            "--margin",
            help="Equivalence margin of the 'lowering selectivity costs no accuracy' claims, "
            "as an accuracy difference (default 0.01: one percentage point).",
        ),
    ] = None,
    wait: WaitOption = False,
) -> None:
    """Figures with bootstrapped 95% CIs over seeds, a claims table, report.html."""
    path = commands.report(sweep_dir, out, margin, wait=wait)
    typer.echo(f"report: {path}")


@app.command()
def compare(
    folders: Annotated[
        list[Path],
        typer.Argument(
            help="Run folders or `evaluate --out` folders: each holds evaluation.parquet "
            "and/or selectivity.parquet."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for the comparison and report.")],
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels",
            help="a,b,...: one per folder (default: the folder names); folders given the same "
            "label are pooled as runs of one model.",
        ),
    ] = None,
    wait: WaitOption = False,
) -> None:
    """Several evaluated models side by side: OUT/comparison.parquet (a model column) and
    OUT/report.html (accuracy, attacks, mu_SI and per-layer SI by model)."""
    path = commands.compare(folders, labels, out, wait=wait)
    typer.echo(f"wrote {out / 'comparison.parquet'}")
    typer.echo(f"report: {path}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out")] = Path("runs/demo"),
    set_: SetOption = None,
    device: DeviceOption = None,
    quiet: Annotated[bool, typer.Option("--quiet")] = False,
    wait: WaitOption = False,
) -> None:
    """The whole pipeline on the embedded digits: one sweep (5 alphas; Gaussian-noise,
    corruption-mix and PGD adversarial training at 3 strengths each; 3 seeds; see
    presets.DEMO_GRIDS), then the report."""
    import time

    started = time.perf_counter()
    trials, path = commands.demo(out, set_, device, progress=not quiet, wait=wait)
    _print_trials(trials, out)
    typer.echo(f"demo finished in {time.perf_counter() - started:.0f} s")
    typer.echo(f"report: {path.resolve()}")
    _exit_if_trials_failed(trials, out)


@app.command()
def keys() -> None:
    """List every key that --set (and a sweep's config file) accepts: type, default, meaning."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from selectivity.keys import CONFIG_GROUPS, describe_keys

    console = Console()
    if not console.is_terminal:  # piped (to grep, a file): one line per key
        console = Console(width=220)
    for group, infos in describe_keys().items():
        table = Table(
            title=f"{group} keys ({CONFIG_GROUPS[group].__name__})",
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
    except SelectivityError as error:
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
