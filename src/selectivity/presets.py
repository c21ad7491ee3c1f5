"""The presets: the papers' recipes, the evaluation suites and the demo, as plain data.

Keys and values as `--set` takes them; `config.train_preset`, `config.sweep_preset` and
`config.suite_defaults` read them (and check their names), and `config.build` checks their
values, so this module imports nothing of the package.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEMO_GRIDS", "EVAL_SUITES", "PAPER_ALPHAS", "SWEEP_PRESETS", "TRAIN_PRESETS"]

EVAL_SUITES: dict[str, dict[str, Any]] = {
    "full": {},
    "quick": {
        "max_samples": 500,
        "analysis_samples": 200,
        "fgsm_eps": (0.0, 1 / 255, 4 / 255, 8 / 255),
        "pgd_steps": (0, 1, 5, 25),
        "gradient_max_units": 8,
        # AutoAttack's white-box half (no FAB-T) with a quarter of its iterations and 3 target
        # classes, and Square with 300 queries (a black-box check for gradient masking, the
        # masking flag square_stronger), on 200 images: ~1/20 of the standard version's cost.
        # Square-300 on the images APGD left adds ~2.5x PGD-25's time per image (digits net).
        "autoattack_attacks": ("apgd-ce", "apgd-t", "square"),
        "autoattack_samples": 200,
        "autoattack_iterations": 25,
        "autoattack_target_classes": 3,
        "autoattack_square_queries": 300,
        # The off-axis search at an eighth of the full suite's restarts x steps; ablation curves
        # at quarters of each layer, with two random orders.
        "offaxis_restarts": 2,
        "offaxis_steps": 25,
        "ablation_fractions": (0.0, 0.25, 0.5, 0.75, 1.0),
        "ablation_draws": 2,
    },
}


# Symmetric around 0 and log-spaced in |alpha|; the seed texts do not list the papers' grid.
PAPER_ALPHAS: tuple[float, ...] = (
    -100.0,
    -30.0,
    -10.0,
    -3.0,
    -1.0,
    -0.3,
    -0.1,
    0.0,
    0.1,
    0.3,
    1.0,
    3.0,
    10.0,
    30.0,
    100.0,
)


_RESNET18_TINYIMAGENET: dict[str, Any] = {
    "model": "resnet18",
    "dataset": "tinyimagenet",
    "epochs": 90,
    "batch_size": 4096,
    "milestones": (35, 50, 65, 80),
}

TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "resnet20-cifar10": {},
    # The ResNet20 recipe on VGG16 with batch norm: the seed texts give no VGG recipe, and SGD at
    # 0.1 with step decay is what CIFAR reproductions of VGG16-BN train with.
    "vgg16-cifar10": {"model": "vgg16"},
    "resnet18-tinyimagenet": _RESNET18_TINYIMAGENET,
    "resnet50-tinyimagenet": {
        "model": "resnet50",
        "dataset": "tinyimagenet",
        "epochs": 90,
        "batch_size": 4096,
        "milestones": (35, 50, 65, 80),
    },
    # Robustness training at the papers' scale (README "Robustness training"). Noise: half of
    # each batch, sigma at the top of the benchmark's own gaussian_noise table (CIFAR-10-C:
    # 0.04..0.10; Tiny-ImageNet-C: 0.04..0.18). Adversarial: Madry et al.'s CIFAR10 PGD (8/255,
    # step 2/255, 7 steps, random start, attack in train mode); Tiny ImageNet at half the
    # radius with the same step ratio, as is common at 64x64.
    "resnet20-cifar10-noise": {"noise_std": 0.1, "noise_prob": 0.5},
    "resnet20-cifar10-adv": {"adv_eps": 8 / 255, "adv_steps": 7, "adv_step_size": 2 / 255},
    "resnet18-tinyimagenet-noise": {
        **_RESNET18_TINYIMAGENET,
        "noise_std": 0.18,
        "noise_prob": 0.5,
    },
    "resnet18-tinyimagenet-adv": {
        **_RESNET18_TINYIMAGENET,
        "adv_eps": 4 / 255,
        "adv_steps": 7,
        "adv_step_size": 1 / 255,
    },
    # Seconds per run on a CPU: for tests, the demo and trying things out.
    "digits": {
        "model": "digitsnet",
        "dataset": "digits",
        "epochs": 12,
        "batch_size": 64,
        "lr": 0.05,
        "milestones": (9,),
        "eval_batch_size": 512,
    },
}

# The papers' presets keep the paper's PGD step (appendix A.1.4), to reproduce its numbers: with
# pgd_steps up to 50 a pixel moves at most 50 * 1e-4 = 1.3/255, so the 8/255 ball never binds
# and the attack is weaker than its eps says (the rows' pgd_linf_max shows how far it went).
# --set pgd_step_size=auto gives the Madry-strength attack of that radius.
_PAPER_PGD: dict[str, Any] = {"pgd_step_size": 1e-4}

SWEEP_PRESETS: dict[str, dict[str, Any]] = {
    "demo": {
        **TRAIN_PRESETS["digits"],
        "alphas": (-10.0, -1.0, 0.0, 1.0, 10.0),
        "seeds": (0, 1, 2),
        "generate_corruptions": True,
        "fgsm_eps": (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255),
        "pgd_eps": 8 / 255,
        # 2/255, not the paper's 1e-4: at 1e-4 the 25 steps move a pixel by 0.6/255 at most and
        # the 8/255 ball never binds; at 2/255 it binds after 4 steps, so the demo shows a real
        # attack of that radius.
        "pgd_step_size": 2 / 255,
        "pgd_steps": (0, 1, 2, 5, 10, 25),
        "gradient_max_units": 16,
        "analysis_samples": 359,
        # The quick suite's AutoAttack (APGD-CE, APGD-T; 25 iterations, 3 targets; Square with
        # 300 queries) on 100 images, at 8/255 and 0.5: ~7x PGD-25's time per image on the
        # images of a trained digits net (benchmarks/autoattack.py), Square ~2.5x of it.
        "autoattack_attacks": ("apgd-ce", "apgd-t", "square"),
        "autoattack_samples": 100,
        "autoattack_iterations": 25,
        "autoattack_target_classes": 3,
        "autoattack_square_queries": 300,
        # Adversarial training in the demo's grid: PGD-3 (step auto: 2.5 * eps / 3), a third of
        # the default 7 steps' cost on a net that a few steps already attack at full strength.
        "adv_steps": 3,
        # Robust validation picks the adversarial trials' kept epoch: PGD-5 (step 2.5 * eps / 5)
        # on the whole validation split (179 images). PGD-10, the default, added ~22% to an
        # adversarial trial's time here (10.7 of 48 s, one thread on a shared machine).
        "checkpoint_pgd_steps": 5,
        # The first paper's checks on every trial (digits net, 359 images, one idle CPU thread):
        # the rotation search at 2 restarts x 50 steps (~0.3 s a trial; 4 x 100 finds bounds
        # ~0.03 higher for 3x the time), ablation at quarters of each layer with 2 random orders
        # (~1.1 s), unit responses stored for the similarities (~0.03 s).
        "offaxis_restarts": 2,
        "offaxis_steps": 50,
        "ablation_fractions": (0.0, 0.25, 0.5, 0.75, 1.0),
        "ablation_draws": 2,
    },
    "resnet20-cifar10": {
        **TRAIN_PRESETS["resnet20-cifar10"],
        **_PAPER_PGD,
        "dimensionality_corruption": "motion_blur",
    },
    "vgg16-cifar10": {
        **TRAIN_PRESETS["vgg16-cifar10"],
        **_PAPER_PGD,
        "dimensionality_corruption": "motion_blur",
    },
    "resnet18-tinyimagenet": {
        **TRAIN_PRESETS["resnet18-tinyimagenet"],
        **_PAPER_PGD,
        "dimensionality_corruption": "brightness",
    },
    "resnet50-tinyimagenet": {
        **TRAIN_PRESETS["resnet50-tinyimagenet"],
        **_PAPER_PGD,
        "dimensionality_corruption": "brightness",
    },
    "resnet20-cifar10-noise": {
        **TRAIN_PRESETS["resnet20-cifar10-noise"],
        **_PAPER_PGD,
        "dimensionality_corruption": "motion_blur",
    },
    # Adversarially trained nets are tested with a Madry-strength PGD of each length (step
    # 2.5 * eps / steps): at the paper's 1e-4 the ball never binds and no robustness would show.
    "resnet20-cifar10-adv": {
        **TRAIN_PRESETS["resnet20-cifar10-adv"],
        "pgd_step_size": "auto",
        "dimensionality_corruption": "motion_blur",
    },
    "resnet18-tinyimagenet-noise": {
        **TRAIN_PRESETS["resnet18-tinyimagenet-noise"],
        **_PAPER_PGD,
        "dimensionality_corruption": "brightness",
    },
    "resnet18-tinyimagenet-adv": {
        **TRAIN_PRESETS["resnet18-tinyimagenet-adv"],
        "pgd_eps": 4 / 255,
        "pgd_step_size": "auto",
        "dimensionality_corruption": "brightness",
    },
}

# `selectivity demo`: one sweep over the demo preset's seeds, the union of three grids that
# share the baseline trial (alpha 0, no noise, no attack): the papers' direction (alpha) and
# the second one (Gaussian-noise, corruption-mix and PGD adversarial training, each against
# its strength).
DEMO_GRIDS: tuple[dict[str, tuple[float, ...]], ...] = (
    {"alpha": (-10.0, -1.0, 0.0, 1.0, 10.0)},
    {"noise_std": (0.0, 0.1, 0.2, 0.4)},
    {"mix_severity": (0, 1, 3, 5)},
    {"adv_eps": (0.0, 4 / 255, 8 / 255, 16 / 255)},
)
