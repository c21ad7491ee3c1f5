"""runs.read_checkpoint, the one weights-only reader of torch files, and RunFolder's resume
checks (a run folder's last checkpoint against its data and its metrics)."""

import pandas as pd
import pytest
import torch
from torch import nn

from selectivity.files import write_table
from selectivity.runs import (
    CheckpointReadError,
    RunError,
    RunFolder,
    TrainingState,
    read_checkpoint,
)


class _Payload:
    """Not a tensor nor plain data: the weights-only reader refuses it."""


def test_a_state_dict_reads_back_from_its_path_and_from_its_bytes(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "epoch": 3, "name": "x"}
    path = tmp_path / "state.pt"
    torch.save(state, path)
    for source in (path, str(path), path.read_bytes()):
        back = read_checkpoint(source)
        assert torch.equal(back["w"], state["w"]) and back["epoch"] == 3 and back["name"] == "x"


def test_an_unsafe_file_is_refused_without_torchs_advice(tmp_path):
    path = tmp_path / "unsafe.pt"
    torch.save({"payload": _Payload()}, path)
    with pytest.raises(CheckpointReadError) as caught:
        read_checkpoint(path)
    assert caught.value.unsafe
    assert "weights_only" not in str(caught.value)


@pytest.mark.parametrize("damage", ["truncated", "not torch"])
def test_a_damaged_file_is_unreadable_not_unsafe(tmp_path, damage):
    path = tmp_path / "state.pt"
    torch.save({"w": torch.ones(100)}, path)
    data = path.read_bytes()[:100] if damage == "truncated" else b"plain text, not a torch file"
    with pytest.raises(CheckpointReadError) as caught:
        read_checkpoint(data)
    assert not caught.value.unsafe
    assert "\n" not in str(caught.value) and "weights_only" not in str(caught.value)


def test_a_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "nope.pt")


def _state(seed: int) -> TrainingState:
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[1])
    return TrainingState(model, optimizer, schedule, torch.Generator().manual_seed(seed))


class _Data:
    num_classes, in_channels, image_size = 2, 1, 8
    mean, std = (0.5,), (0.25,)


def _saved_run(tmp_path) -> tuple[RunFolder, TrainingState]:
    from selectivity.config import TrainConfig, build, train_preset

    config = build(TrainConfig, train_preset("digits"))
    folder = RunFolder.of(tmp_path, config, _Data())
    state = _state(0)
    state.history = [{"epoch": 0, "val_accuracy": 0.5}, {"epoch": 1, "val_accuracy": 0.75}]
    state.best_val, state.best_epoch = 0.75, 1
    folder.save_epoch(state, 1, started=0.0)
    return folder, state


def test_a_resumed_state_is_the_saved_one(tmp_path):
    folder, saved = _saved_run(tmp_path)
    resumed = _state(1)
    folder.resume(resumed, "cpu")
    assert resumed.start_epoch == 2 and resumed.history == saved.history
    assert (resumed.best_val, resumed.best_epoch) == (0.75, 1)
    assert torch.equal(resumed.model.weight, saved.model.weight)
    assert torch.equal(resumed.generator.get_state(), saved.generator.get_state())
    assert resumed.optimizer.state_dict() == saved.optimizer.state_dict()


def test_resuming_on_other_data_is_refused(tmp_path):
    folder, _ = _saved_run(tmp_path)

    class Other(_Data):
        in_channels = 3

    other = RunFolder.of(tmp_path, folder.config, Other())
    with pytest.raises(RunError, match="other data") as caught:
        other.resume(_state(1), "cpu")
    assert "in_channels 1 != 3" in str(caught.value)


def test_metrics_shorter_than_the_last_checkpoint_are_refused(tmp_path):
    folder, saved = _saved_run(tmp_path)
    write_table(pd.DataFrame(saved.history[:1]), tmp_path / "metrics.parquet")
    with pytest.raises(RunError, match="has 1 epochs but"):
        folder.resume(_state(1), "cpu")
