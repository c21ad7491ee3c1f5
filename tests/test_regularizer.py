import re
from pathlib import Path

import torch
from torch import nn

import selectivity
from messages import names, raises
from selectivity import NegativeActivationError, SelectivityRegularizer
from selectivity.regularizer import batch_network_selectivity

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_example() -> str:
    """The python block under the README's regularizer heading: the test runs what users read."""
    text = README.read_text()
    section = text.split("### The regularizer in your own training loop", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "no python block under the regularizer heading"
    return match.group(1)


def test_the_readme_example_runs_and_trains_with_the_term():
    namespace: dict = {}
    exec(compile(_readme_example(), "README.md", "exec"), namespace)
    model, mu_si = namespace["model"], namespace["mu_si"]
    assert mu_si.requires_grad and 0 < float(mu_si.detach()) < 1
    # The block ended: no hook of the regularizer is left on the model.
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert all(p.grad is not None for p in model.parameters())


def test_the_regularizer_is_a_top_level_name():
    assert "SelectivityRegularizer" in selectivity.__all__
    assert selectivity.SelectivityRegularizer is SelectivityRegularizer


def test_a_single_class_batch_adds_zero_with_a_gradient():
    torch.manual_seed(0)
    model = selectivity.create_model("digitsnet", 10, in_channels=1)
    x = torch.rand(8, 1, 16, 16)
    with SelectivityRegularizer(model, 10) as regularizer:
        model(x)
        mu_si = regularizer.network_selectivity(torch.full((8,), 3))
    assert mu_si.item() == 0.0 and mu_si.requires_grad
    mu_si.backward()
    assert all(torch.count_nonzero(p.grad) == 0 for p in model.parameters() if p.grad is not None)
    value, per_layer = batch_network_selectivity(
        {"a": torch.rand(4, 3), "b": torch.rand(4, 2)}, torch.zeros(4, dtype=torch.long), 5
    )
    assert value.item() == 0.0 and set(per_layer) == {"a", "b"}


def test_signed_units_are_refused_on_the_first_step_naming_the_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    with SelectivityRegularizer(model, 3, unit_types=(nn.Tanh,)) as regularizer:
        model(torch.randn(32, 6))
        with raises(NegativeActivationError, "'1'"):
            regularizer.network_selectivity(torch.arange(32) % 3)


def test_raw_conv_outputs_as_units_end_training_with_one_line(tmp_path, run_cli):
    code, _out, err = run_cli(
        "train",
        "--preset",
        "digits",
        "--out",
        tmp_path / "run",
        "--quiet",
        "--set",
        "epochs=1",
        "--set",
        "alpha=-1",
        "--set",
        "selectivity_layers=conv1",
    )
    assert code == 2 and err.count("\n") == 1, err
    names(err, "'conv1'", "negative")
