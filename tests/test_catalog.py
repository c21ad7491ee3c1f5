"""The catalog of names (torch-free) and eps as text: one formatter, read back exactly, and the
trial folders it names."""

from __future__ import annotations

import random
from pathlib import Path
from urllib.parse import unquote

import pytest

from selectivity import catalog
from selectivity.catalog import format_eps, in_grey_levels, pixel_text
from selectivity.config import parse_assignments
from selectivity.grid import describe, parse_grid, trial_path, value_name


@pytest.mark.parametrize(
    ("eps", "text"),
    [
        (0.0, "0"),
        (0.5 / 255, "0.5/255"),
        (1 / 255, "1/255"),
        (4 / 255, "4/255"),
        (8 / 255, "8/255"),
        (16 / 255, "16/255"),
        (0.1, "0.1"),  # exact in short decimal: kept (not 25.5/255)
        (0.5, "0.5"),
        (1.0, "1"),
        (0.0123, "0.0123"),
        (0.031, "0.031"),
        (4 / 255 + 1e-12, repr(4 / 255 + 1e-12)),  # near 4/255 is not 4/255
    ],
)
def test_format_eps_writes_grey_levels_only_where_exact(eps, text):
    assert format_eps(eps) == text


def _every_kind_of_eps() -> list[float]:
    draw = random.Random(0)
    values = [
        *(k / 255 for k in range(256)),
        *((k + 0.5) / 255 for k in range(255)),
        *(draw.random() for _ in range(100)),
        *(draw.random() * 1e-3 for _ in range(30)),
        1e-10,
        0.3,
        2.5 * (8 / 255) / 7,
    ]
    return list(dict.fromkeys(values))  # distinct values (1.0 is 255/255 and (254.5 + 0.5)/255)


def test_format_eps_reads_back_exactly_through_set():
    for eps in _every_kind_of_eps():
        text = format_eps(eps)
        assert parse_assignments([f"pgd_eps={text}"])["pgd_eps"] == eps, (eps, text)


def test_pixel_text_gives_both_units():
    assert pixel_text(8 / 255) == "0.0314 (8/255)"
    assert pixel_text(8 / 255, 4) == "0.03137 (8/255)"


def test_radii_and_steps_are_in_grey_levels_other_floats_are_not():
    assert {
        key for key in ("adv_eps", "pgd_eps", "masking_eps", "pgd_step_size") if in_grey_levels(key)
    } == {
        "adv_eps",
        "pgd_eps",
        "masking_eps",
        "pgd_step_size",
    }
    assert not any(in_grey_levels(key) for key in ("lr", "alpha", "noise_std", "weight_decay"))


@pytest.mark.parametrize("key", ["adv_eps", "pgd_eps", "adv_step_size", "pgd_step_size"])
def test_trial_folders_of_radii_read_in_grey_levels_and_back_exactly(key):
    names = []
    for eps in _every_kind_of_eps():
        name = value_name(eps, key)
        # One folder level (no separator), percent-decoded it is what --set reads back.
        assert "/" not in name and "\\" not in name
        assert parse_assignments([f"{key}={unquote(name)}"])[key] == eps
        names.append(name)
    assert len(set(names)) == len(names)
    assert value_name(4 / 255, key) == "4%2F255"


def test_a_trial_folder_is_the_values_not_how_they_were_written():
    written = [parse_grid([f"adv_eps={text}"])["adv_eps"][0] for text in ("4/255", "8/510")]
    written.append(parse_grid([f"adv_eps={4 / 255!r}"])["adv_eps"][0])
    paths = {trial_path({"adv_eps": eps, "alpha": 0.0, "seed": 0}) for eps in written}
    assert paths == {Path("adv_eps=4%2F255") / "alpha=0" / "seed=0"}
    # The line naming a trial (a failed one) says it as the user would write it.
    assert describe({"adv_eps": 4 / 255, "alpha": 0.0, "seed": 0}) == "adv_eps=4/255 alpha=0 seed=0"
    # Other floats keep their names: folders made before stay where they were.
    assert trial_path({"lr": 1 / 255, "alpha": 0.1, "seed": 0}) == Path(
        f"lr={1 / 255!r}", "alpha=0.1", "seed=0"
    )


def test_the_catalog_names_what_the_torch_modules_implement():
    # The implementations key their tables by the catalog's names, which config checks against.
    from selectivity.corruptions import tables
    from selectivity.corruptions.apply import check_request
    from selectivity.probe import UNIT_TYPE_NAMES
    from selectivity.worstcase import ATTACKS, VERSIONS

    assert tuple(tables.TABLES) == catalog.CORRUPTION_TABLES
    for name in catalog.CORRUPTIONS:
        check_request(name, 1)
    assert tuple(UNIT_TYPE_NAMES) == catalog.UNIT_TYPE_NAMES
    assert VERSIONS is catalog.AUTOATTACK_VERSIONS and ATTACKS is catalog.AUTOATTACK_ATTACKS
    assert set(catalog.TRAINING_SUBSET) <= set(catalog.CORRUPTIONS)


def test_training_method_strengths_are_training_keys():
    from selectivity.config import TrainConfig

    fields = TrainConfig.__dataclass_fields__
    assert all(fields[key].default == 0 for key in catalog.TRAINING_METHODS.values())
