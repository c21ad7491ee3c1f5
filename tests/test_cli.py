import pandas as pd

from configs import fast, set_options


def test_train_then_measure(tmp_path, run_cli, digits_test_size):
    run = tmp_path / "run"
    keys = {**fast(2), "alpha": -1}
    code, out, err = run_cli(
        "train", "--preset", "digits", "--out", run, "--quiet", *set_options(keys)
    )
    assert code == 0, err
    assert "test accuracy" in out and "test selectivity" in out
    code, out, err = run_cli("measure", run, "--device", "cpu")
    assert code == 0, err
    table = pd.read_parquet(run / "selectivity.parquet")
    assert list(table.columns) == [
        "layer",
        "unit",
        "si",
        "preferred_class",
        "silent",
        "split",
        "samples",
    ]
    assert (table.loc[table["silent"], "si"] == 0).all()
    assert table["layer"].unique().tolist() == ["relu1", "relu2", "relu3"]
    assert table["si"].between(0, 1).all() and table["preferred_class"].between(0, 9).all()
    assert (table["split"] == "test").all() and (table["samples"] == digits_test_size).all()
    assert "mu_SI" in out and "relu2" in out
    assert "over live units" in out and "silent fraction" in out
    # Another split goes to its own file: the test table stays as it was.
    before = (run / "selectivity.parquet").read_bytes()
    code, out, err = run_cli("measure", run, "--split", "val", "--device", "cpu")
    assert code == 0, err
    assert (run / "selectivity.parquet").read_bytes() == before
    val = pd.read_parquet(run / "selectivity-val.parquet")
    assert (val["split"] == "val").all() and len(val) == len(table)
    assert "selectivity-val.parquet" in out and "(val, " in out


def test_user_errors_are_one_line_with_exit_code_2(tmp_path, run_cli):
    cases = [
        ("train", "--preset", "digits", "--out", tmp_path / "x", "--set", "nope=1"),
        ("train", "--preset", "digits", "--out", tmp_path / "x", "--set", "epochs=two"),
        ("train", "--preset", "nope", "--out", tmp_path / "x"),
        (
            "train",
            "--preset",
            "resnet20-cifar10",
            "--out",
            tmp_path / "x",
            "--set",
            f"data_dir={tmp_path}",
        ),
        ("measure", tmp_path / "missing"),
        ("train", "--preset", "digits", "--out", tmp_path / "x", "--device", "tpu"),
    ]
    for args in cases:
        code, _out, err = run_cli(*args)
        assert code == 2, args
        assert err.startswith("selectivity: error: ") and err.count("\n") == 1, err


def test_corrupt_checkpoint_is_one_line(tmp_path, run_cli):
    run = tmp_path / "run"
    code, _, err = run_cli(
        "train", "--preset", "digits", "--out", run, "--quiet", *set_options(fast(1))
    )
    assert code == 0, err
    (run / "checkpoint_best.pt").write_bytes(b"not a checkpoint")
    code, _, err = run_cli("measure", run)
    assert code == 2 and "corrupt checkpoint" in err and err.count("\n") == 1


def test_corrupt_a_users_own_image_folder(tmp_path, run_cli):
    import numpy as np
    from PIL import Image

    for index, name in enumerate(("a", "b")):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((32, 32, 3), 60 * index + 5 * i, dtype=np.uint8)).save(
                tmp_path / "imgs" / name / f"{i}.png"
            )
    out = tmp_path / "corrupted"
    code, _stdout, err = run_cli(
        "corrupt",
        "--dataset",
        "folder",
        "--data-dir",
        tmp_path / "imgs",
        "--out",
        out,
        "--corruption",
        "brightness",
        "--corruption",
        "contrast",
        "--device",
        "cpu",
    )
    assert code == 0, err
    images = np.load(out / "brightness.npy")
    labels = np.load(out / "labels.npy")
    assert images.shape == (5 * 4, 32, 32, 3) and images.dtype == np.uint8
    assert labels.tolist() == [0, 0, 1, 1] * 5
    assert sorted(p.name for p in out.glob("*.npy")) == [
        "brightness.npy",
        "contrast.npy",
        "labels.npy",
    ]
