"""The commands below the command line: user errors share one base class and end in one line;
a corruption set on disk is checked before an evaluation does any work."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from selectivity import commands
from selectivity.config import TrainConfig, build, train_preset
from selectivity.errors import SelectivityError, UserError


def _one_line(err: str) -> str:
    assert err.startswith("selectivity: error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A finished one-epoch digits run, to be copied, never changed."""
    from selectivity.train import train

    run = tmp_path_factory.mktemp("trained") / "run"
    config = build(
        TrainConfig, train_preset("digits"), {"epochs": 1, "milestones": (), "num_threads": 1}
    )
    train(config, run, progress=False)
    return run


@pytest.fixture
def evaluations(monkeypatch) -> list[str]:
    """Every evaluation that starts (of a run or of a user's model), by what it evaluates."""
    import selectivity.evaluate

    started: list[str] = []
    real = selectivity.evaluate.evaluate_model

    def spy(model, data, *args, **kwargs):
        started.append(type(model).__name__)
        return real(model, data, *args, **kwargs)

    monkeypatch.setattr(selectivity.evaluate, "evaluate_model", spy)
    return started


@pytest.mark.parametrize(
    ("make", "expected"),
    [(None, "corruption set not found"), (Path.mkdir, "no corruption set found")],
)
def test_a_missing_corruption_set_fails_before_the_clean_part(
    tmp_path, trained_run, run_cli, evaluations, make, expected
):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    folder = tmp_path / "missing"
    if make is not None:
        make(folder)
    code, _, err = run_cli(
        "evaluate", run, "--suite", "quick", "--quiet", "--corruptions-dir", folder
    )
    assert code == 2 and expected in _one_line(err) and str(folder) in err
    assert evaluations == []  # not even the clean part started
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


def test_a_corruption_the_set_lacks_fails_before_the_clean_part_of_a_users_model(
    tmp_path, run_cli, evaluations
):
    # A set holding only fog, asked for frost: refused before the model is even evaluated.
    commands.corrupt(tmp_path / "set", {"corruptions": ("fog",)}, progress=False)
    out = tmp_path / "out"
    code, _, err = run_cli(
        "evaluate",
        "--model",
        "digitsnet",
        "--set",
        "dataset=digits",
        "--set",
        "corruptions=frost",
        "--corruptions-dir",
        tmp_path / "set",
        "--out",
        out,
        "--quiet",
    )
    assert code == 2 and "frost" in _one_line(err) and "it has fog" in err
    assert evaluations == [] and not out.exists()


def test_every_user_error_is_a_selectivity_error():
    from selectivity.config import ConfigError
    from selectivity.data import DataError
    from selectivity.files import FileError, FolderError
    from selectivity.loggers import MissingPackageError
    from selectivity.metrics import NegativeActivationError
    from selectivity.models import ModelError
    from selectivity.probe import EmptyCaptureError, UnknownLayerError
    from selectivity.runs import RunError
    from selectivity.sweep import SweepError
    from selectivity.train import TrainingDiverged

    classes = (
        ConfigError,
        DataError,
        FileError,
        FolderError,
        MissingPackageError,
        NegativeActivationError,
        ModelError,
        EmptyCaptureError,
        UnknownLayerError,
        RunError,
        SweepError,
        TrainingDiverged,
        UserError,
    )
    assert all(issubclass(cls, SelectivityError) for cls in classes)
    # Each keeps the built-in class it always had, so `except ValueError` still catches it.
    assert issubclass(ConfigError, ValueError) and issubclass(MissingPackageError, ImportError)


def test_any_selectivity_error_is_one_line_and_exit_code_2(tmp_path, run_cli, monkeypatch):
    class NewError(SelectivityError):
        pass

    def fail(*args, **kwargs):
        raise NewError("what went wrong\nand a second line")

    monkeypatch.setattr(commands, "report", fail)
    code, _, err = run_cli("report", tmp_path)
    assert code == 2 and "what went wrong" in _one_line(err)


def test_anything_else_is_a_bug_with_its_traceback(tmp_path, run_cli, monkeypatch):
    def fail(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(commands, "report", fail)
    with pytest.raises(KeyError):
        run_cli("report", tmp_path)


def test_corrupt_writes_a_split_of_a_data_set(tmp_path):
    done = commands.corrupt(
        tmp_path / "set",
        {"corruptions": ("fog", "contrast")},
        items=["severities=1,2"],
        progress=False,
    )
    assert [Path(path).name for path in done.written] == ["fog.npy", "contrast.npy"]
    assert done.severities == 2 and done.images > 0
