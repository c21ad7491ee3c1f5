"""Robustness training: each method does what it is for, stays in its bounds, resumes exactly,
composes with the regularizer, and refuses bad settings with one line."""

import pandas as pd
import pytest
import torch

from configs import DIGITS, TINY_EVAL, digits_config, fast
from messages import raises
from selectivity import robust
from selectivity import train as train_module
from selectivity.attacks import FGSM, PGD
from selectivity.config import (
    SWEEP_PRESETS,
    TRAIN_PRESETS,
    ConfigError,
    EvalConfig,
    SweepConfig,
    TrainConfig,
    build,
    parse_assignments,
    sweep_preset,
    train_preset,
)
from selectivity.corruptions import CORRUPTIONS, TRAINING_SUBSET
from selectivity.data import ImageSet
from selectivity.evaluation import derived_rows
from selectivity.measure import accuracy, accuracy_under_attack
from selectivity.metrics import unit_activations
from selectivity.models import create_model
from selectivity.probe import ActivationProbe
from selectivity.regularizer import batch_network_selectivity
from selectivity.runs import load_model
from selectivity.train import train, train_model
from selectivity.trial import train_and_evaluate

# --- the methods on tensors ------------------------------------------------------------------


def _batch(n=8, c=3, size=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=generator)


def test_gaussian_noise_touches_the_chosen_images_only_and_clips():
    x = _batch(64)
    out = robust.gaussian_noise(x, 0.5, 0.5, torch.Generator().manual_seed(1))
    changed = (out != x).flatten(1).any(dim=1)
    assert 10 < int(changed.sum()) < 54  # about half, with probability ~1 - 1e-7
    assert out.min() >= 0 and out.max() <= 1
    assert bool((out == 0).any()) and bool((out == 1).any())  # std 0.5 clips
    assert torch.equal(robust.gaussian_noise(x, 0.5, 0.0, None), x)
    assert bool((robust.gaussian_noise(x, 0.1, 1.0, None) != x).flatten(1).any(dim=1).all())
    again = robust.gaussian_noise(x, 0.5, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


@pytest.mark.parametrize("channels", [1, 3])
def test_corruption_mix_is_seeded_in_range_and_changes_images(channels):
    x = _batch(6, channels)
    mixed = robust.corruption_mix(x, 3, TRAINING_SUBSET, 3, torch.Generator().manual_seed(0))
    assert mixed.shape == x.shape and mixed.dtype == x.dtype
    assert mixed.min() >= 0 and mixed.max() <= 1
    assert bool((mixed != x).flatten(1).any(dim=1).all())
    again = robust.corruption_mix(x, 3, TRAINING_SUBSET, 3, torch.Generator().manual_seed(0))
    assert torch.equal(mixed, again)


def test_corruption_mix_of_one_operation_is_a_blend_of_it():
    # A single brightness op at every depth: the mix lies between the clean image and what one
    # to three brightness steps make of it, never outside the range of those.
    x = torch.full((4, 3, 8, 8), 0.2)
    mixed = robust.corruption_mix(x, 5, ("brightness",), 2, torch.Generator().manual_seed(0))
    assert bool((mixed >= x - 1e-6).all())
    assert bool((mixed > x + 1e-3).flatten(1).all(dim=1).any())


def _net():
    torch.manual_seed(0)
    return create_model("digitsnet", 10, 1)


@pytest.mark.parametrize(
    "attack",
    [
        PGD(8 / 255, 2 / 255, 7, random_start=True, use_eval_mode=False),
        PGD(0.1, 0.05, 3, random_start=True),
        FGSM(8 / 255, random_start=True, step_size=1.25 * 8 / 255, use_eval_mode=False),
    ],
)
def test_adversarial_batch_stays_in_the_ball_and_in_range(attack):
    model = _net().train()
    x = _batch(10, 1)
    y = torch.arange(10)
    out = robust.adversarial(model, x, y, attack, 0.5, torch.Generator().manual_seed(0))
    assert (out - x).abs().max() <= attack.eps + 1e-6
    assert out.min() >= 0 and out.max() <= 1
    assert bool((out[:5] != x[:5]).any()) and torch.equal(out[5:], x[5:])
    assert model.training  # the mode the caller set comes back


def test_fgsm_random_start_steps_from_a_random_point():
    model = _net().eval()
    x, y = _batch(4, 1), torch.arange(4)
    a = FGSM(0.1, random_start=True, step_size=0.125)(model, x, y, torch.Generator().manual_seed(0))
    b = FGSM(0.1, random_start=True, step_size=0.125)(model, x, y, torch.Generator().manual_seed(1))
    assert not torch.equal(a, b)
    assert (a - x).abs().max() <= 0.1 + 1e-6
    # Without a random start and with step eps, the original FGSM.
    assert torch.equal(FGSM(0.1, step_size=0.1)(model, x, y), FGSM(0.1)(model, x, y))
    with raises(ValueError, "step_size"):
        FGSM(0.1, step_size=0.0)


def test_attack_in_train_mode_uses_batch_statistics():
    # In train mode batch norm normalises with the batch's statistics and updates its running
    # ones; in eval mode it leaves them alone.
    model = create_model("resnet20", 10).train()
    x, y = _batch(4), torch.arange(4)
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    PGD(0.03, 0.01, 2, use_eval_mode=True)(model, x, y)
    assert torch.equal(bn.running_mean, before) and model.training
    PGD(0.03, 0.01, 2, use_eval_mode=False)(model, x, y)
    assert not torch.equal(bn.running_mean, before) and model.training


def test_training_attack_follows_the_config():
    assert robust.training_attack(digits_config()) is None
    pgd = robust.training_attack(digits_config(adv_eps=8 / 255))
    assert isinstance(pgd, PGD) and pgd.random_start and not pgd.use_eval_mode
    assert pgd.steps == 7 and pgd.step_size == pytest.approx(2.5 * (8 / 255) / 7)
    fgsm = robust.training_attack(digits_config(adv_eps=0.1, adv_method="fgsm", adv_bn_mode="eval"))
    assert isinstance(fgsm, FGSM) and fgsm.random_start and fgsm.use_eval_mode
    assert fgsm.step_size == pytest.approx(0.125)
    fixed = robust.training_attack(digits_config(adv_eps=8 / 255, adv_step_size=2 / 255))
    assert fixed.step_size == pytest.approx(2 / 255)


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"noise_std": -0.1}, ("noise_std", "[0, 1]")),
        ({"noise_std": float("inf")}, ("noise_std", "[0, 1]")),
        ({"noise_prob": 1.5}, ("noise_prob", "[0, 1]")),
        ({"noise_prob": -0.1}, ("noise_prob", "[0, 1]")),
        ({"mix_severity": 6}, ("mix_severity", "0..5")),
        ({"mix_severity": -1}, ("mix_severity", "0..5")),
        ({"mix_width": 0}, ("mix_width", "1..16")),
        ({"mix_corruptions": ("fog", "rain")}, ("mix_corruptions", "'rain'")),
        ({"mix_corruptions": ()}, ("mix_corruptions", "none")),
        ({"mix_corruptions": ("fog", "fog")}, ("mix_corruptions", "duplicate")),
        ({"adv_eps": -0.01}, ("adv_eps", "[0, 1]")),
        ({"adv_eps": 2.0}, ("adv_eps", "[0, 1]")),
        ({"adv_method": "cw"}, ("adv_method", "pgd", "fgsm", "'cw'")),
        ({"adv_steps": 0}, ("adv_steps", ">= 1")),
        ({"adv_step_size": "fast"}, ("adv_step_size", "> 0", "auto")),
        ({"adv_step_size": 0.0}, ("adv_step_size", "> 0", "auto")),
        ({"adv_fraction": 1.2}, ("adv_fraction", "[0, 1]")),
        ({"adv_fraction": -0.5}, ("adv_fraction", "[0, 1]")),
        ({"adv_bn_mode": "frozen"}, ("adv_bn_mode", "train", "eval")),
    ],
)
def test_bad_method_settings_are_one_line_errors(overrides, words):
    with raises(ConfigError, *words) as error:
        digits_config(**overrides)
    assert "\n" not in str(error.value)


def test_keys_parse_from_the_command_line():
    parsed = parse_assignments(
        ["adv_eps=8/255", "adv_step_size=auto", "mix_corruptions=fog,snow", "noise_std=0.1"]
    )
    config = digits_config(**parsed)
    assert config.adv_eps == pytest.approx(8 / 255) and config.adv_step_size == "auto"
    assert config.mix_subset() == ("fog", "snow") and config.noise_std == 0.1
    assert digits_config().mix_subset() == TRAINING_SUBSET


def test_frost_in_the_mix_without_its_textures_fails_at_the_start(tmp_path, monkeypatch):
    monkeypatch.setattr(robust, "frost_available", lambda: False)
    config = digits_config(mix_severity=1, mix_corruptions=("frost",))
    with raises(ConfigError, "mix_corruptions", "frost"):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_the_training_subset_trains_on_noise_and_blur_and_holds_out_the_rest():
    families = {
        "noise": {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"},
        "blur": {"defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "gaussian_blur"},
        "weather": {"snow", "frost", "fog", "brightness", "spatter"},
        "digital": {"contrast", "elastic_transform", "pixelate", "jpeg_compression", "saturate"},
    }
    assert set().union(*families.values()) == set(CORRUPTIONS)
    trained = set(TRAINING_SUBSET)
    assert trained <= families["noise"] | families["blur"]
    assert not trained & (families["weather"] | families["digital"])


def test_heldout_mean_leaves_out_the_trained_families():
    rows = [
        {"metric": "test_accuracy", "value": 0.9},
        {"metric": "corruption_accuracy", "corruption": "fog", "severity": 1, "value": 0.8},
        {"metric": "corruption_accuracy", "corruption": "fog", "severity": 2, "value": 0.6},
        # Same family as the trained speckle_noise: not held out, though never trained on.
        {
            "metric": "corruption_accuracy",
            "corruption": "gaussian_noise",
            "severity": 1,
            "value": 0.1,
        },
    ]
    table = pd.DataFrame(rows, columns=["metric", "corruption", "severity", "samples", "value"])
    table["samples"] = 100
    for column in ("layer", "eps", "steps", "split", "step_size"):
        table[column] = None
    derived = {r["metric"]: r["value"] for r in derived_rows(table, None, TRAINING_SUBSET)}
    assert derived["corruption_accuracy_mean"] == pytest.approx(0.5)
    assert derived["corruption_accuracy_heldout_mean"] == pytest.approx(0.7)
    only_trained = table[table["corruption"] != "fog"]
    assert "corruption_accuracy_heldout_mean" not in {
        r["metric"] for r in derived_rows(only_trained, None, TRAINING_SUBSET)
    }


# --- presets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "resnet20-cifar10-noise",
        "resnet20-cifar10-adv",
        "resnet18-tinyimagenet-noise",
        "resnet18-tinyimagenet-adv",
    ],
)
def test_method_presets_build(name):
    config = build(TrainConfig, train_preset(name))
    assert (config.noise_std > 0) != (config.adv_eps > 0)
    if config.adv_eps > 0:
        assert config.adv_method == "pgd" and config.adv_steps == 7
        assert config.adv_step() == pytest.approx(config.adv_eps / 4)  # Madry's 2/255 at 8/255
        assert config.adv_bn_mode == "train"
    else:
        assert config.noise_prob == 0.5 and 0.1 <= config.noise_std <= 0.5
    keys = sweep_preset(name)
    build(EvalConfig, keys)
    build(SweepConfig, keys)
    assert build(TrainConfig, keys) == config
    assert name in TRAIN_PRESETS and name in SWEEP_PRESETS


# --- training with the methods ---------------------------------------------------------------


def _noisy_copy(images: ImageSet, std: float) -> ImageSet:
    x, y = images.batch(slice(None))
    return ImageSet(robust.gaussian_noise(x, std, 1.0, torch.Generator().manual_seed(9)), y)


# Four epochs (seconds): the plain net and each method's net are trained alike, same seed.
GAIN = {"epochs": 4, "milestones": (3,)}


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return train_model(digits_config(**GAIN), tmp_path_factory.mktemp("plain"), progress=False)


def test_noise_training_raises_accuracy_under_noise(tmp_path, plain):
    # Measured: 0.74 -> 0.86 under N(0, 0.5^2) noise, clean accuracy 0.98 for both.
    noisy = train_model(digits_config(**GAIN, noise_std=0.5), tmp_path, progress=False)
    test = _noisy_copy(plain.data.test, 0.5)
    gain = accuracy(noisy.model, test, 512) - accuracy(plain.model, test, 512)
    assert gain > 0.05, gain


def test_pgd_training_raises_accuracy_under_pgd(tmp_path, plain):
    # Measured: 0.14 -> 0.57 under PGD-10 at eps 0.1 (the digits net resists 8/255 untrained).
    config = digits_config(**GAIN, adv_eps=0.1, adv_steps=3)
    trained = train_model(config, tmp_path, progress=False)
    attack = PGD(0.1, 0.025, 10, random_start=True)
    scores = [
        accuracy_under_attack(
            model, plain.data.test, attack, 512, generator=torch.Generator().manual_seed(0)
        )
        for model in (plain.model, trained.model)
    ]
    assert scores[1] - scores[0] > 0.2, scores


def _record_batches(monkeypatch):
    """Wrap training's `training_batch` and `train_step`: (input, output) pairs of the one, and the
    batches and mu_SI the other received (with the mu_SI a fresh probe computes on them)."""
    made, stepped = [], []
    real_batch, real_step = train_module.training_batch, train_module.train_step

    def batch(model, x, y, config, generator, attack=None):
        out = real_batch(model, x, y, config, generator, attack)
        made.append((x.detach().clone(), out.detach().clone()))
        return out

    def step(model, x, y, optimizer, regularizer, alpha):
        # A forward of its own before the step: same weights, same batch statistics (train
        # mode), so the same units the step's forward will show; the step then re-records.
        with ActivationProbe(model, reduce=unit_activations) as probe, torch.no_grad():
            model(x)
            activations = probe.activations
        loss, cross_entropy, mu_si = real_step(model, x, y, optimizer, regularizer, alpha)
        stepped.append((x.detach().clone(), y, mu_si, activations))
        return loss, cross_entropy, mu_si

    monkeypatch.setattr(train_module, "training_batch", batch)
    monkeypatch.setattr(train_module, "train_step", step)
    return made, stepped


@pytest.mark.parametrize("method", ["pgd", "fgsm"])
def test_trained_on_adversarial_examples_stay_in_the_ball(tmp_path, monkeypatch, method):
    made, stepped = _record_batches(monkeypatch)
    eps = 8 / 255
    config = digits_config(epochs=1, adv_eps=eps, adv_method=method, adv_fraction=0.75)
    train(config, tmp_path / "run", progress=False)
    assert len(made) == len(stepped) > 0
    for (clean, adversarial), (trained_on, *_rest) in zip(made, stepped, strict=True):
        assert torch.equal(adversarial, trained_on)  # the step trains on the attacked batch
        assert (adversarial - clean).abs().max() <= eps + 1e-6
        assert adversarial.min() >= 0 and adversarial.max() <= 1
        k = round(0.75 * clean.shape[0])
        assert bool((adversarial[:k] != clean[:k]).any()) and torch.equal(
            adversarial[k:], clean[k:]
        )


@pytest.mark.parametrize(
    "method",
    [
        {"adv_eps": 8 / 255, "adv_steps": 2},
        {"noise_std": 0.3},
        {"mix_severity": 2, "mix_width": 2},
    ],
    ids=["pgd", "noise", "mix"],
)
def test_composes_with_alpha_and_the_regularizer_sees_the_trained_on_images(
    tmp_path, monkeypatch, method
):
    made, stepped = _record_batches(monkeypatch)
    config = digits_config(epochs=1, alpha=-1.0, **method)
    train(config, tmp_path / "run", progress=False)
    assert len(made) == len(stepped) > 0
    num_classes = 10
    differs = 0
    for (clean, _), (x, y, mu_si, activations) in zip(made, stepped, strict=True):
        expected, _ = batch_network_selectivity(activations, y, num_classes)
        assert mu_si is not None
        assert mu_si.item() == pytest.approx(expected.item(), abs=1e-5)
        differs += not torch.equal(clean, x)
    assert differs > 0


# --- end to end ------------------------------------------------------------------------------


def test_cli_trains_with_a_method_and_refuses_a_bad_one_in_one_line(tmp_path, run_cli):
    base = ["train", "--preset", "digits", "--quiet", "--set", "epochs=1", "--set", "num_threads=1"]
    code, _, err = run_cli(*base, "--out", tmp_path / "bad", "--set", "adv_method=cw")
    assert code != 0 and "adv_method must be pgd or fgsm" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(
        *base, "--out", tmp_path / "run", "--set", "adv_eps=8/255", "--set", "adv_steps=2"
    )
    assert code == 0, err
    config = load_model(tmp_path / "run", "best")[0]
    assert config.adv_eps == pytest.approx(8 / 255) and config.adv_method == "pgd"


def test_a_mix_trial_reports_the_held_out_corruptions_apart(tmp_path):
    keys = {
        **DIGITS,
        **fast(1),
        **TINY_EVAL,
        "mix_severity": 1,
        "mix_width": 1,
        "generate_corruptions": True,
        "corruptions": ("gaussian_noise", "contrast", "speckle_noise"),
        "severities": (1, 5),
    }
    train_and_evaluate(keys, tmp_path / "trial")
    table = pd.read_parquet(tmp_path / "trial" / "evaluation.parquet")
    corrupted = table[table["metric"] == "corruption_accuracy"]
    assert set(corrupted["corruption"]) == {"gaussian_noise", "contrast", "speckle_noise"}
    # speckle_noise is trained on, so its family (gaussian_noise) is not held out either.
    held_out = corrupted[corrupted["corruption"] == "contrast"]["value"].mean()
    row = table[table["metric"] == "corruption_accuracy_heldout_mean"]
    assert len(row) == 1 and row["value"].iloc[0] == pytest.approx(held_out)
    assert row["samples"].iloc[0] == TINY_EVAL["max_samples"]
    marks = table[table["metric"] == "corruption_heldout"].set_index("corruption")["value"]
    assert marks.to_dict() == {"gaussian_noise": 0.0, "contrast": 1.0, "speckle_noise": 0.0}
