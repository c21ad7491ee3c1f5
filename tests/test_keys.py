"""`selectivity keys` and the unknown-key message: every key explained, the closest names offered."""

import dataclasses
import json

import pytest

from messages import raises
from selectivity import config as cfg
from selectivity import keys
from selectivity.grid import load_config_file


def all_fields():
    return [
        (group, item)
        for group, cls in keys.CONFIG_GROUPS.items()
        for item in dataclasses.fields(cls)
    ]


def test_every_config_is_listed_and_every_key_has_a_one_line_meaning():
    assert set(keys.CONFIG_GROUPS.values()) == {cfg.TrainConfig, cfg.EvalConfig, cfg.SweepConfig}
    described = keys.describe_keys()
    for group, item in all_fields():
        meaning = item.metadata.get("meaning", "")
        assert meaning.strip(), (
            f"{item.name} has no meaning: declare it with _key(default, meaning)"
        )
        assert "\n" not in meaning and len(meaning) <= 100, item.name
        info = next(info for info in described[group] if info.name == item.name)
        assert (info.type, info.meaning) == (str(item.type), meaning)


def test_each_shown_default_parses_back_to_the_default():
    # What `keys` shows is what --set takes: the text gives the very default value.
    for group, infos in keys.describe_keys().items():
        cls = keys.CONFIG_GROUPS[group]
        defaults = {item.name: item.default for item in dataclasses.fields(cls)}
        for info in infos:
            parsed = cfg.parse_assignments([f"{info.name}={info.default}"])[info.name]
            assert parsed == defaults[info.name], (info.name, info.default)
    shown = {info.name: info.default for info in keys.describe_keys()["evaluate"]}
    assert shown["fgsm_eps"] == "0,0.5/255,1/255,2/255,4/255,8/255"
    assert shown["pgd_step_size"] == "0.0001" and shown["corruptions"] == "none"


def test_keys_command_groups_keys_with_type_default_and_meaning(run_cli):
    code, out, err = run_cli("keys")
    assert code == 0 and err == ""
    lines = out.splitlines()
    titles = {
        group: lines.index(next(line for line in lines if line.startswith(f"{group} keys")))
        for group in keys.CONFIG_GROUPS
    }
    assert titles["train"] < titles["evaluate"] < titles["sweep"]
    starts = sorted(titles.values())
    for group, start in titles.items():
        end = next((later for later in starts if later > start), len(lines))
        section = lines[start:end]
        for info in keys.describe_keys()[group]:
            row = next(line for line in section if line.split()[:1] == [info.name])
            # One line per key, its columns in order (markup-like text such as [int] kept).
            assert row.index(info.type) < row.index(info.default, len(info.name) + len(info.type))
            assert row.rstrip().endswith(info.meaning)
    assert "selectivity[tensorboard]" in out and "tuple[str, ...] | None" in out


@pytest.mark.parametrize(
    "key, suggested",
    [
        ("lr_rate", ["lr_gamma", "lr"]),
        ("epoch", ["epochs"]),
        ("batchsize", ["batch_size", "eval_batch_size"]),
        ("tensor_board", ["tensorboard"]),
        ("eps", ["epochs", "pgd_eps", "adv_eps", "fgsm_eps", "masking_eps"]),
    ],
)
def test_an_unknown_key_names_the_closest_keys(key, suggested):
    with pytest.raises(cfg.ConfigError) as error:
        cfg.parse_assignments([f"{key}=1"])
    assert str(error.value) == (
        f"unknown key {key!r}; did you mean: {', '.join(suggested)}? "
        "(`selectivity keys` lists every key)"
    )


def test_an_unknown_key_with_no_near_name_lists_none():
    with pytest.raises(cfg.ConfigError) as error:
        cfg.parse_assignments(["xyz=1"])
    assert str(error.value) == "unknown key 'xyz' (`selectivity keys` lists every key)"


def test_config_files_and_presets_share_the_message(tmp_path):
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({"alphas": [0, 1], "seedz": [0]}))
    with raises(cfg.ConfigError, "'seedz'", "seed, seeds"):
        load_config_file(path)
    with raises(cfg.ConfigError, "'epoch'", "epochs"):
        cfg.build(cfg.TrainConfig, {"epoch": 3})


def test_the_cli_says_it_in_one_line(tmp_path, run_cli):
    code, out, err = run_cli("train", "--out", tmp_path / "run", "--set", "lr_rate=0.1")
    assert code == 2 and out == ""
    assert err == (
        "selectivity: error: unknown key 'lr_rate'; did you mean: lr_gamma, lr? "
        "(`selectivity keys` lists every key)\n"
    )
    assert not (tmp_path / "run").exists()
