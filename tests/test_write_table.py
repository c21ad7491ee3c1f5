"""files.write_table: the one atomic Parquet writer, read back by read_table."""

import pandas as pd
import pytest

from selectivity import schema
from selectivity.files import read_table, write_table


def test_a_written_table_reads_back_equal_with_its_dtypes(tmp_path):
    table = schema.frame(
        [
            {"metric": "test_accuracy", "value": 0.5, "split": "test", "samples": 7},
            {"metric": "fgsm_accuracy", "value": 0.25, "eps": 0.01, "step_size": 0.01},
        ]
    )
    path = write_table(table, tmp_path / "deeper" / "t.parquet")
    assert path == tmp_path / "deeper" / "t.parquet"
    back = read_table(path, schema.COLUMNS)
    pd.testing.assert_frame_equal(back, table)
    # No index column is written: the columns are the table's own.
    assert list(back.columns) == list(table.columns)


def test_a_failed_table_write_leaves_the_old_table_and_no_temporary(tmp_path):
    target = tmp_path / "t.parquet"
    write_table(pd.DataFrame({"a": [1, 2]}), target)

    class Unwritable(pd.DataFrame):
        def to_parquet(self, *args, **kwargs):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed"):
        write_table(Unwritable({"a": [3]}), target)
    assert read_table(target)["a"].tolist() == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]
