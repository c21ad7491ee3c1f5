"""Registry: names to factories, the mechanism behind create_model and load_dataset."""

from __future__ import annotations

from messages import raises
from selectivity.data import DataError, list_datasets, load_dataset
from selectivity.models import list_models
from selectivity.registry import Registry


def test_register_get_and_names():
    registry: Registry = Registry("widget")

    @registry.register("b")
    def make_b() -> str:
        return "b"

    registry.register("a")(lambda: "a")
    assert registry.names() == ["a", "b"]
    assert registry.get("b") is make_b
    registry.register("b")(lambda: "b2")  # the last registration wins
    assert registry.get("b")() == "b2"


def test_an_unknown_name_lists_the_known_ones_with_the_chosen_error():
    registry: Registry = Registry("widget", DataError)
    registry.register("x")(lambda: None)
    with raises(DataError, "widget", "'y'", "x"):
        registry.get("y")


def test_models_and_data_sets_are_registered():
    assert {"digitsnet", "resnet20", "resnet18"} <= set(list_models())
    assert set(list_datasets()) == {"digits", "cifar10", "tinyimagenet", "svhn", "folder"}
    with raises(DataError, "dataset", "'nope'"):
        load_dataset("nope")
