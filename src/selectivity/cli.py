"""The `selectivity` command line: train, measure, evaluate, corrupt, sweep, report, demo.

User errors (bad keys, missing folders, corrupt files) end in one line on stderr and exit code 2;
nothing half-written is left behind, because every file is written under a temporary name.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from selectivity import config as cfg

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="Measure and control class selectivity, and test what it does to robustness.")

SetOption = Annotated[Optional[list[str]], typer.Option("--set", help="key=value; repeatable. `selectivity keys` lists them.")]


class UserError(Exception):
    """Raised for anything the user can fix; printed as one line."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from selectivity.data import DataError
    from selectivity.runs import RunError
    from selectivity.train import TrainingDiverged

    errors: list[type[BaseException]] = [cfg.ConfigError, DataError, RunError, TrainingDiverged, UserError, FileNotFoundError]
    try:
        from selectivity.sweep import SweepError

        errors.append(SweepError)
    except ImportError:
        pass
    return tuple(errors)


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Run folder to create (or resume).")],
    preset: Annotated[str, typer.Option(help=f"One of: {', '.join(cfg.TRAIN_PRESETS)}")] = "resnet20-cifar10",
    set_: SetOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar or per-epoch lines.")] = False,
) -> None:
    """Train one network with the selectivity regularizer (alpha = 0: plain training)."""
    from selectivity.train import train as run_training

    config = cfg.build(cfg.TrainConfig, cfg.train_preset(preset), cfg.parse_assignments(set_ or []))
    summary = run_training(config, out, progress=not quiet)
    typer.echo(
        f"{out}: best epoch {summary['best_epoch']}, val accuracy {summary['val_accuracy']:.4f}, "
        f"test accuracy {summary['test_accuracy']:.4f}, test selectivity {summary['test_selectivity']:.4f}"
    )


@app.command()
def measure(
    run_dir: Annotated[Path, typer.Argument(help="A run folder made by `selectivity train`.")],
    split: Annotated[str, typer.Option(help="test, val or train")] = "test",
    checkpoint: Annotated[str, typer.Option(help="best or last")] = "best",
    set_: SetOption = None,
) -> None:
    """Class selectivity of every unit: writes RUN_DIR/selectivity.parquet and prints mu_SI."""
    import pandas as pd

    from selectivity.data import load_dataset
    from selectivity.files import atomic_path
    from selectivity.measure import measure_selectivity
    from selectivity.runs import load_model, read_config, resolve_device

    if split not in ("test", "val", "train"):
        raise UserError(f"--split must be test, val or train, got {split!r}")
    if checkpoint not in ("best", "last"):
        raise UserError(f"--checkpoint must be best or last, got {checkpoint!r}")
    overrides = cfg.parse_assignments(set_ or [])
    config = cfg.build(cfg.TrainConfig, cfg.to_dict(read_config(run_dir)), overrides)
    device = resolve_device(config.device)
    _, model, _ = load_model(run_dir, checkpoint, device)
    data = load_dataset(config.dataset, config.data_dir, config.seed, config.image_size)
    result = measure_selectivity(model, getattr(data, split), data.num_classes, config.selectivity_layers, config.eval_batch_size, device)
    rows = [
        {"layer": layer, "unit": unit, "si": float(si), "preferred_class": int(cls)}
        for layer, values in result.per_layer.items()
        for unit, (si, cls) in enumerate(zip(values.tolist(), result.preferred_class[layer].tolist()))
    ]
    with atomic_path(Path(run_dir) / "selectivity.parquet") as temporary:
        pd.DataFrame(rows).to_parquet(temporary, index=False)
    typer.echo(f"{'layer':<24} {'units':>6} {'mean SI':>8}")
    for layer, mean in result.layer_means().items():
        typer.echo(f"{layer:<24} {result.per_layer[layer].numel():>6} {mean:>8.4f}")
    typer.echo(f"mu_SI ({split}, {len(getattr(data, split))} images): {result.network:.4f}   accuracy: {result.accuracy:.4f}")
    typer.echo(f"wrote {Path(run_dir) / 'selectivity.parquet'}")


@app.command()
def keys() -> None:
    """List every key that --set accepts, with its default."""
    import dataclasses

    for cls in (cfg.TrainConfig, cfg.EvalConfig, cfg.SweepConfig):
        typer.echo(f"[{cls.__name__}]")
        for field in dataclasses.fields(cls):
            typer.echo(f"  {field.name} = {field.default!r}")


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except _user_errors() as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"selectivity: error: {message}", file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        print("selectivity: aborted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("selectivity: interrupted; finished files are kept, run the same command to resume", file=sys.stderr)
        sys.exit(130)
    except Exception as error:  # click usage errors carry their own exit codes
        import click

        if isinstance(error, click.ClickException):
            error.show()
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
