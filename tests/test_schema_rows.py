"""schema.row, the one maker of result rows, and schema.metric_rows, the one selection of a
metric's rows."""

import pytest

from selectivity import schema


def test_a_row_holds_its_metric_value_and_keys():
    made = schema.row("fgsm_accuracy", 1, eps=0.5, split="test", samples=3)
    assert made == {
        "metric": "fgsm_accuracy",
        "value": 1.0,
        "eps": 0.5,
        "split": "test",
        "samples": 3,
    }
    assert isinstance(made["value"], float)


def test_a_row_with_a_key_outside_the_schema_is_refused():
    with pytest.raises(AssertionError):
        schema.row("fgsm_accuracy", 0.5, epsilon=0.5)


def test_metric_rows_select_by_metric_and_keys_with_none_as_null():
    table = schema.frame(
        [
            schema.row("selectivity", 0.1),
            schema.row("selectivity", 0.2, layer="a"),
            schema.row("selectivity", 0.3, layer="b"),
            schema.row("test_accuracy", 0.9),
        ]
    )
    assert schema.metric_rows(table, "selectivity")["value"].tolist() == [0.1, 0.2, 0.3]
    assert schema.metric_rows(table, "selectivity", layer=None)["value"].tolist() == [0.1]
    assert schema.metric_rows(table, "selectivity", layer="b")["value"].tolist() == [0.3]
    assert schema.metric_rows(table, "selectivity", layer="c").empty
    assert schema.metric_rows(table, "pgd_accuracy").empty
