import torch
from torch import nn

from messages import raises
from selectivity import create_model, list_models


def test_registry_lists_the_papers_models():
    assert {
        "resnet20",
        "resnet32",
        "resnet44",
        "resnet56",
        "resnet18",
        "resnet34",
        "resnet50",
        "digitsnet",
        "vgg16",
    } <= set(list_models())
    with raises(ValueError, "unknown model", "vgg"):
        create_model("vgg", 10)


def test_resnet20_matches_the_cifar_variant():
    model = create_model("resnet20", 10)
    params = sum(p.numel() for p in model.parameters())
    assert 0.26e6 < params < 0.28e6
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_imagenet_resnets_take_64px_without_maxpool():
    model = create_model("resnet18", 200)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 200)


def test_every_relu_module_is_called_once():
    model = create_model("resnet50", 200)
    calls = {}
    handles = [
        m.register_forward_hook(lambda m, i, o, n=n: calls.__setitem__(n, calls.get(n, 0) + 1))
        for n, m in model.named_modules()
        if isinstance(m, nn.ReLU)
    ]
    try:
        model(torch.rand(1, 3, 64, 64))
    finally:
        for h in handles:
            h.remove()
    assert calls and set(calls.values()) == {1}


def test_normalisation_lives_inside_the_model():
    model = create_model("digitsnet", 10, in_channels=1, mean=[0.5], std=[0.25])
    x = torch.rand(2, 1, 16, 16)
    plain = create_model("digitsnet", 10, in_channels=1)
    plain.load_state_dict(
        {k: v for k, v in model.state_dict().items() if not k.startswith("normalize.")}
    )
    assert torch.allclose(model(x), plain((x - 0.5) / 0.25), atol=1e-6)


def test_vgg16_is_the_cifar_variant_with_batch_norm():
    model = create_model("vgg16", 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13 and [c.out_channels for c in convs][-3:] == [512, 512, 512]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 13
    # 13 conv layers of configuration D (14.71M weights) and a 512 -> 10 classifier.
    params = sum(p.numel() for p in model.parameters())
    assert 14.7e6 < params < 14.8e6
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert create_model("vgg16", 200)(torch.rand(1, 3, 64, 64)).shape == (1, 200)
    relus = [name for name, m in model.named_modules() if isinstance(m, nn.ReLU)]
    assert relus == [f"features.relu{i}" for i in range(1, 14)]


def test_vgg16_preset_trains_vgg16_on_cifar10():
    from selectivity.config import TrainConfig, build, train_preset

    config = build(TrainConfig, train_preset("vgg16-cifar10"), {})
    assert (config.model, config.dataset) == ("vgg16", "cifar10")
