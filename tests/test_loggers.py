"""Training loggers: the callback interface, TensorBoard, and what a resumed run tells them."""

import math
import sys

import pandas as pd
import pytest

from configs import digits_config
from messages import raises
from selectivity.loggers import MissingPackageError, TensorBoardLogger, TrainingLogger
from selectivity.train import train

COLUMNS = [
    "epoch",
    "train_loss",
    "train_cross_entropy",
    "train_batch_selectivity",
    "val_accuracy",
    "val_selectivity",
    "val_robust_accuracy",
    "lr",
    "seconds",
]


class ListLogger:
    """A logger of a few lines, as an MLflow or W&B one would be."""

    def __init__(self):
        self.rows: list[dict] = []
        self.closed = 0

    def on_epoch_end(self, row):
        self.rows.append(dict(row))

    def close(self):
        self.closed += 1


def scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] as TensorBoard itself reads the event files (purges applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir))
    accumulator.Reload()
    return {
        tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


def interrupt_after_epoch(monkeypatch, epochs_done: int) -> None:
    """Make training stop (KeyboardInterrupt) in the validation after `epochs_done` epochs were
    checkpointed."""
    from selectivity import measure

    real = measure.measure_selectivity
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == epochs_done + 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr("selectivity.train.measure_selectivity", flaky)


def test_a_logger_gets_every_epoch_once_across_a_resume(tmp_path, monkeypatch):
    config = digits_config(alpha=-1.0, tensorboard=True)
    run = tmp_path / "run"
    first = ListLogger()
    assert isinstance(first, TrainingLogger)
    interrupt_after_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train(config, run, progress=False, loggers=[first])
    monkeypatch.undo()
    # Closed although training ended by an error; told of the two finished epochs only.
    assert first.closed == 1
    assert [row["epoch"] for row in first.rows] == [0, 1]

    second = ListLogger()
    train(config, run, progress=False, loggers=[second])
    assert second.closed == 1
    assert [row["epoch"] for row in second.rows] == [2]  # the resumed epoch, once

    # The rows are metrics.parquet's, column for column and value for value.
    metrics = pd.read_parquet(run / "metrics.parquet")
    assert list(metrics.columns) == COLUMNS
    told = pd.DataFrame(first.rows + second.rows)
    pd.testing.assert_frame_equal(told, metrics, check_dtype=False)

    # TensorBoard (opened by the config key) shows each epoch once, with the same numbers.
    logged = scalars(run / "tensorboard")
    # val_robust_accuracy is NaN without adversarial training, and NaN is not logged.
    assert set(logged) == set(COLUMNS) - {"epoch", "val_robust_accuracy"}
    for tag, points in logged.items():
        assert [step for step, _ in points] == [0, 1, 2], tag
        assert [value for _, value in points] == pytest.approx(metrics[tag].tolist(), rel=1e-6)


def test_tensorboard_leaves_out_nan_and_hides_what_an_earlier_run_logged(tmp_path):
    # alpha = 0: no regularizer, so train_batch_selectivity is NaN and is not logged.
    run = tmp_path / "run"
    train(digits_config(epochs=2, milestones=(), tensorboard=True), run, progress=False)
    logged = scalars(run / "tensorboard")
    assert "train_batch_selectivity" not in logged
    assert [step for step, _ in logged["val_accuracy"]] == [0, 1]

    # An earlier run logged epochs 0-2 and died before checkpointing 1 and 2; the run resuming
    # at epoch 1 logs them again: TensorBoard shows epoch 0 of the first, 1-2 of the second.
    folder = tmp_path / "tb"
    earlier = TensorBoardLogger(folder)
    for epoch in range(3):
        earlier.on_epoch_end({"epoch": epoch, "lr": 1.0})
    earlier.close()
    later = TensorBoardLogger(folder, start_epoch=1)
    for epoch in (1, 2):
        later.on_epoch_end({"epoch": epoch, "lr": 2.0})
    later.close()
    assert scalars(folder)["lr"] == [(0, 1.0), (1, 2.0), (2, 2.0)]


def test_without_tensorboard_the_run_stops_before_any_work(tmp_path, monkeypatch, run_cli):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with raises(MissingPackageError, "selectivity[tensorboard]"):
        train(digits_config(tensorboard=True), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    code, _, err = run_cli(
        "train", "--preset", "digits", "--out", tmp_path / "cli", "--set", "tensorboard=true"
    )
    assert code == 2
    assert err.strip() == (
        "selectivity: error: tensorboard=true needs the tensorboard package: "
        "pip install 'selectivity[tensorboard]'"
    )
    assert not (tmp_path / "cli").exists()


def test_a_resumed_run_may_switch_tensorboard_on(tmp_path, monkeypatch):
    run = tmp_path / "run"
    interrupt_after_epoch(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train(digits_config(), run, progress=False)
    monkeypatch.undo()
    # tensorboard decides where numbers go, not what they are: the folder's config allows it.
    train(digits_config(tensorboard=True), run, progress=False)
    logged = scalars(run / "tensorboard")
    assert [step for step, _ in logged["val_accuracy"]] == [1, 2]
    assert all(math.isfinite(value) for _, value in logged["train_loss"])


def test_the_readme_logger_example_runs(tmp_path, monkeypatch, capsys):
    """The python block under the README's training-logs heading: what users read, run."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("### Training logs: TensorBoard, or your own logger", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    metrics = pd.read_parquet(tmp_path / "runs" / "logged" / "metrics.parquet")
    assert printed == [
        *(
            f"epoch {row.epoch}: val_accuracy {row.val_accuracy:.3f}"
            for row in metrics.itertuples()
        ),
        "closed",
    ]
    assert len(metrics) == 2 and namespace["run"].summary["epochs"] == 2
