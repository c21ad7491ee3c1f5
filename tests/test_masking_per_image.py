"""Per-image masking checks, the randomness check and AutoAttack's own warnings as flags: a
saturated-softmax model and an input-noise model are flagged, a normally trained net is not,
under the default suite and the demo settings (cut to few images); the paper's PGD step makes
the PGD-based checks not testable instead of flagging; the rows say which AutoAttack ran."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from selectivity import masking
from selectivity.attacks import PGD
from selectivity.config import TrainConfig, build, train_preset
from selectivity.corruptions.generate import corruption_source
from selectivity.evaluate import eval_config, evaluate_model, run_settings
from selectivity.evaluation.autoattack import (
    VERSIONS,
    output_change,
    pgd_masking,
    ran_version,
    run_chain,
    settings_rows,
    warning_rows,
)
from selectivity.presets import SWEEP_PRESETS
from selectivity.schema import frame
from selectivity.summary import autoattack_ran, summarise_evaluation
from selectivity.train import train_model

# Few images and AutoAttack iterations, so that each evaluation takes seconds; a short
# off-axis search (no flag reads its rows).
SMALL = {
    "max_samples": 40,
    "analysis_samples": 20,
    "gradient_max_units": 2,
    "dimensionality_pgd_steps": 1,
    "autoattack_samples": 40,
    "autoattack_iterations": 5,
    "autoattack_square_queries": 50,
    "offaxis_restarts": 1,
    "offaxis_steps": 10,
}
DEMO = {k: v for k, v in SWEEP_PRESETS["demo"].items() if k in eval_config().__dataclass_fields__}
SUITES = {"default": eval_config("full", SMALL), "demo": eval_config("full", DEMO, SMALL)}
PER_IMAGE = ("zero_gradient", "stuck", "randomized")


class Saturated(nn.Module):
    """log(softmax(50 z)), computed stably: on most images the softmax of its output is exactly
    one-hot in float32, so the cross-entropy's input gradient is exactly 0 there, while a few
    unsaturated images keep the mean loss rising under PGD."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return F.log_softmax(50 * self.model(x), 1)


class InputNoise(nn.Module):
    """Gaussian noise (sigma 0.1) on the input at every call, in eval mode too: randomised."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x + 0.1 * torch.randn_like(x))


class Quantized(nn.Module):
    """Inputs rounded to 8 bits: the input gradient is zero everywhere (a shattered gradient)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 255) / 255)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    config = build(
        TrainConfig, train_preset("digits"), {"epochs": 3, "milestones": (), "num_threads": 1}
    )
    return config, train_model(config, tmp_path_factory.mktemp("net") / "run", progress=False)


@pytest.fixture(scope="module")
def tables(trained, tmp_path_factory):
    """(suite, model) -> evaluation table, for the three models under both settings. The demo
    generates its corruption set; here it is generated once, as an evaluation generates it, and
    read by the three models' evaluations."""
    config, result = trained
    demo = SUITES["demo"]
    generated = tmp_path_factory.mktemp("corruptions")
    corruption_source(
        result.data.test, None, generated, demo.corruptions, seed=demo.corruption_seed,
        table=demo.corruption_table, device=result.device, progress=False,
    )  # fmt: skip
    stored = {"generate_corruptions": False, "corruptions_dir": str(generated)}
    suites = {**SUITES, "demo": eval_config("full", DEMO, SMALL, stored)}
    torch.manual_seed(0)
    models = {
        "normal": result.model,
        "saturated": Saturated(result.model),
        "noise": InputNoise(result.model),
    }
    found = {}
    for suite, settings in suites.items():
        for name, model in models.items():
            found[suite, name] = evaluate_model(
                model,
                result.data,
                settings,
                **{**run_settings(config, result.best, None), "out_dir": None},
                device=result.device,
            )
    return found


def _flagged(table):
    return {f.name for f in masking.flags(table) if f.value == 1.0}


def _value(table, metric):
    return float(table.loc[table["metric"] == metric, "value"].iloc[0])


@pytest.mark.parametrize("suite", SUITES)
def test_a_normal_net_raises_no_flag(tables, suite):
    table = tables[suite, "normal"]
    assert _flagged(table) == set()
    assert _value(table, "masking_zero_gradient_share") == 0.0
    assert _value(table, "masking_output_change") == 0.0
    flags = {f.name: f for f in masking.flags(table)}
    assert flags["zero_gradient"].value == 0.0 and flags["randomized"].value == 0.0
    assert flags["autoattack_zero_gradient"].value == 0.0
    assert flags["autoattack_randomized"].value == 0.0


@pytest.mark.parametrize("suite", SUITES)
def test_the_saturated_softmax_is_flagged_image_by_image(tables, suite):
    table = tables[suite, "saturated"]
    assert _value(table, "masking_zero_gradient_share") > 0.8
    assert "zero_gradient" in _flagged(table)
    assert "randomized" not in _flagged(table)


def test_the_saturated_softmax_is_stuck_where_pgd_reaches_its_eps(tables):
    # The demo's PGD (step 2/255, 25 steps) reaches 8/255; the default's 1e-4 does not.
    demo, default = tables["demo", "saturated"], tables["default", "saturated"]
    assert _value(demo, "masking_stuck_share") > 0.8 and "stuck" in _flagged(demo)
    stuck = {f.name: f for f in masking.flags(default)}["stuck"]
    assert math.isnan(stuck.value) and "cannot reach its eps" in stuck.reason


@pytest.mark.parametrize("suite", SUITES)
def test_input_noise_is_flagged_and_attacked_with_the_rand_version(tables, suite):
    table = tables[suite, "noise"]
    assert _value(table, "masking_output_change") > 0.5
    assert "randomized" in _flagged(table)
    # The rand version's ensemble ran (APGD-CE, APGD-DLR with EOT), not standard's.
    assert _value(table, "autoattack_eot_samples") == 20
    assert _value(table, "autoattack_ran_standard") == 0.0
    assert (table["metric"] == "autoattack_accuracy_apgd-dlr").any()
    assert not (table["metric"] == "autoattack_accuracy_apgd-t").any()
    assert _value(table, "autoattack_switched_to_rand") == 1.0
    assert "ran instead" in {f.name: f for f in masking.flags(table)}["randomized"].reason


def test_input_noise_under_the_rand_version_asked_for_is_not_flagged(trained):
    config, result = trained
    table = evaluate_model(
        InputNoise(result.model),
        result.data,
        eval_config("quick", SMALL, {"autoattack_version": "rand", "masking_eps": None}),
        **{**run_settings(config, result.best, None), "out_dir": None},
        device=result.device,
    )
    randomized = {f.name: f for f in masking.flags(table)}["randomized"]
    assert randomized.value == 0.0 and "was asked for" in randomized.reason
    assert _value(table, "masking_output_change") > 0.5
    assert _value(table, "autoattack_switched_to_rand") == 0.0


def test_square_runs_in_the_demo_so_its_check_is_testable(tables):
    table = tables["demo", "normal"]
    square = {f.name: f for f in masking.flags(table)}["square_stronger"]
    assert square.value == 0.0
    assert _value(table, "autoattack_square_queries") == SMALL["autoattack_square_queries"]
    assert "square" in SWEEP_PRESETS["demo"]["autoattack_attacks"]
    assert "square" in eval_config("quick").autoattack_attacks


def test_the_papers_step_makes_pgd_checks_not_testable_not_flagged(trained):
    config, result = trained
    table = evaluate_model(
        result.model,
        result.data,
        eval_config("quick", SMALL, {"autoattack_attacks": ("apgd-ce",)}),
        **{**run_settings(config, result.best, None), "out_dir": None},
        device=result.device,
    )
    assert eval_config("quick").pgd_step_size == 1e-4  # the paper's step, the suite's default
    flags = {f.name: f for f in masking.flags(table)}
    for name in ("flat_loss", "stuck", "autoattack_below_pgd", "fgsm_stronger"):
        assert math.isnan(flags[name].value), name
        assert "cannot reach its eps" in flags[name].reason
    assert flags["zero_gradient"].value == 0.0  # a fact of the gradient, testable at any step


def test_autoattacks_zero_gradient_warning_becomes_a_flag(trained, tmp_path):
    """Rounded inputs have a zero gradient everywhere: the package warns, and the warning is
    a row and a flag, also when the step is read back from its state file."""
    _, result = trained
    model = Quantized(result.model).eval()
    x, y = result.data.test.batch(slice(0, 30), "cpu")
    with torch.no_grad():
        clean = model(x).argmax(1) == y
    settings = eval_config("full", SMALL)
    for _ in range(2):  # the second run reads the step back
        said: list[str] = []
        run_chain(model, x, y, clean, 8 / 255, ("apgd-t",), settings, tmp_path, 0, 64, None, said)
        rows = warning_rows(said, eps=8 / 255)
        assert rows[0]["metric"] == "autoattack_zero_gradient_points"
        # Every image it attacked, once per target class (none is ever fooled).
        assert rows[0]["value"] >= int(clean.sum()) > 0
        assert masking.flags(frame(rows))[-2].name == "autoattack_zero_gradient"
        assert masking.flags(frame(rows))[-2].value == 1.0
    per_image = pgd_masking(model, result.data.test.subset(range(30)), PGD(0.1, 0.01, 2), [2], 64)
    assert per_image.zero_gradient_share == 1.0 and per_image.stuck_share == 1.0


def test_autoattacks_randomness_warning_becomes_a_flag(trained, tmp_path):
    _, result = trained
    model = InputNoise(result.model).eval()
    x, y = result.data.test.batch(slice(0, 20), "cpu")
    clean = torch.ones(len(x), dtype=torch.bool)
    said: list[str] = []
    settings = eval_config("full", SMALL)
    run_chain(model, x, y, clean, 8 / 255, ("apgd-ce",), settings, tmp_path, 0, 64, None, said)
    rows = warning_rows(said, eps=8 / 255)
    assert rows[1] == {"metric": "autoattack_randomized_warning", "value": 1.0, "eps": 8 / 255}
    flags = {f.name: f for f in masking.flags(frame(rows))}
    assert flags["autoattack_randomized"].value == 1.0
    assert flags["autoattack_zero_gradient"].value == 0.0


def test_output_change_is_zero_for_a_deterministic_model(trained):
    _, result = trained
    x, _ = result.data.test.batch(slice(0, 20), "cpu")
    assert output_change(result.model, x) == 0.0
    assert output_change(InputNoise(result.model), x) > 0.5


def test_the_version_that_runs():
    standard, rand = eval_config("full"), eval_config("full", {"autoattack_version": "rand"})
    quick = eval_config("quick")
    assert ran_version(standard, False, 10) == ("standard", VERSIONS["standard"])
    assert ran_version(standard, True, 10) == ("rand", VERSIONS["rand"])
    assert ran_version(quick, True, 10) == ("rand", VERSIONS["rand"])
    assert ran_version(rand, True, 10) == ("rand", VERSIONS["rand"])
    assert ran_version(quick, False, 10) == ("standard", ("apgd-ce", "apgd-t", "square"))


def _ran(rows):
    return {r["metric"]: r["value"] for r in rows}


def test_settings_rows_record_what_ran():
    standard = _ran(settings_rows(eval_config("full"), "standard", VERSIONS["standard"], 10))
    assert standard["autoattack_ran_standard"] == 1.0 and standard["autoattack_ran_rand"] == 0.0
    assert standard["autoattack_target_classes"] == 9
    assert standard["autoattack_square_queries"] == 5000
    quick = eval_config("quick")
    custom = _ran(settings_rows(quick, "standard", quick.autoattack_attacks, 10))
    assert custom["autoattack_ran_standard"] == 0.0
    assert custom["autoattack_iterations"] == 25 and custom["autoattack_target_classes"] == 3
    # Fewer classes cap the targets; that alone does not make the run custom.
    assert (
        _ran(settings_rows(eval_config("full"), "standard", VERSIONS["standard"], 5))[
            "autoattack_ran_standard"
        ]
        == 1.0
    )
    rand = _ran(settings_rows(eval_config("full"), "rand", VERSIONS["rand"], 10))
    assert rand["autoattack_ran_rand"] == 1.0 and rand["autoattack_eot_samples"] == 20
    assert "autoattack_square_queries" not in rand


def test_the_summary_says_what_ran(tables):
    table = tables["demo", "normal"]
    ran = autoattack_ran(table)
    assert ran is not None and ran == (
        "custom (apgd-ce, apgd-t, square; 5 iterations, 3 target classes, 50 Square queries)"
    )
    assert any(line.startswith("AutoAttack ran") for line in summarise_evaluation(table))
    assert any("masking zero_gradient" in line for line in summarise_evaluation(table))
