"""The corruption generator against independent computations of the published formulas.

Deterministic corruptions are checked against direct numpy / scipy / colorsys / PIL code on
small fixed images; random ones in distribution (noise level, impulse fraction, Poisson counts);
the vectorised machinery (glass-blur swaps, motion-blur kernel, elastic warp) against plain
loops or scipy on the same random draws. Then the invariants: shapes, range, seeding, severity
order, grey images, and the on-disk set (layout, resumability, atomic writes).
"""

from __future__ import annotations

import colorsys
import io
import itertools
import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from PIL import Image
from scipy import stats

from messages import raises, warns
from selectivity import corruptions as C
from selectivity.corruptions import (
    CORRUPTIONS,
    TABLES,
    blur,
    corrupt,
    generate_corruption_set,
    ops,
    runnable_corruptions,
    table_for_size,
    weather,
)
from selectivity.corruptions.generate import derived_seed
from selectivity.data import ImageSet, load_dataset

CIFAR = TABLES["cifar10"].params
SEVERITIES = (1, 2, 3, 4, 5)
HAS_FROST = weather.frost_available()
NAMES = tuple(n for n in CORRUPTIONS if HAS_FROST or n != "frost")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # These tests run many tiny tensor operations; on a shared 2-core machine each parallel
    # operation waits for a busy core, which makes two threads ~100x slower than one here.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_images(n: int = 6, size: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 (n, size, size, 3): half smooth colour fields, half uniform noise."""
    rng = np.random.default_rng(seed)
    smooth = ndi.gaussian_filter(rng.random((n, size, size, 3)), (0, 2, 2, 0))
    smooth = ((smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255).round()
    noise = rng.integers(0, 256, (n, size, size, 3))
    out = np.where(np.arange(n).reshape(n, 1, 1, 1) % 2 == 0, smooth, noise)
    out[0, :4, :4] = 0  # black and grey pixels exercise the HSV special cases
    out[0, 4:8, :4] = 128
    return out.astype(np.uint8)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)


def to_hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).double().numpy()


IMAGES = make_images()
X = to_tensor(IMAGES)


# ------------------------------------------------------------------------------------------------
# Names, tables, errors
# ------------------------------------------------------------------------------------------------


def test_names_and_tables():
    assert len(CORRUPTIONS) == 19 and len(set(CORRUPTIONS)) == 19
    assert CORRUPTIONS[:3] == ("gaussian_noise", "shot_noise", "impulse_noise")
    assert CORRUPTIONS[15:] == ("speckle_noise", "gaussian_blur", "spatter", "saturate")
    for table in TABLES.values():
        assert set(table.params) == set(CORRUPTIONS)
    assert [table_for_size(s) for s in (16, 32, 48, 49, 64, 128, 129, 224)] == [
        "cifar10",
        "cifar10",
        "cifar10",
        "tinyimagenet",
        "tinyimagenet",
        "tinyimagenet",
        "imagenet",
        "imagenet",
    ]
    # np.arange(1, 1.06, 0.01) ends at 1.06: seven factors, as the generators get them.
    assert len(CIFAR["zoom_blur"][0]) == 7 and len(CIFAR["zoom_blur"][4]) == 26
    assert TABLES["cifar10"].params["glass_blur"][4] == (0.4, 1, 2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "gaussian", "severity": 1},
        {"name": "gaussian_noise", "severity": 0},
        {"name": "gaussian_noise", "severity": 6},
        {"name": "gaussian_noise", "severity": 2.0},
        {"name": "gaussian_noise", "severity": True},
        {"name": "gaussian_noise", "severity": 1, "table": "svhn"},
    ],
)
def test_bad_requests_raise_one_line_value_errors(kwargs):
    with pytest.raises(ValueError) as info:
        corrupt(X[:2], **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "images",
    [torch.rand(2, 2, 8, 8), torch.rand(3, 8, 8), torch.zeros(2, 3, 8, 8, dtype=torch.uint8)],
)
def test_malformed_images_raise_value_error(images):
    with pytest.raises(ValueError):
        corrupt(images, "contrast", 1)


@pytest.mark.parametrize("scale, shift", [(255.0, 0.0), (1.0, -0.5), (1.0, 0.01)])
def test_images_outside_the_unit_range_are_refused_as_the_attacks_refuse_them(scale, shift):
    from selectivity.attacks import FGSM

    images = torch.linspace(0, 1, 2 * 3 * 8 * 8).view(2, 3, 8, 8) * scale + shift
    with raises(ValueError, "[0, 1]"):
        corrupt(images, "contrast", 1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2))
    with raises(ValueError, "[0, 1]"):
        FGSM(1 / 255)(model, images, torch.zeros(2, dtype=torch.long))


# ------------------------------------------------------------------------------------------------
# Deterministic corruptions against the published formulas
# ------------------------------------------------------------------------------------------------


def _hsv_reference(images: np.ndarray, change) -> np.ndarray:
    out = np.empty(images.shape, dtype=np.float64)
    for idx in np.ndindex(images.shape[:3]):
        h, s, v = colorsys.rgb_to_hsv(*(images[idx] / 255.0))
        h, s, v = change(h, s, v)
        out[idx] = np.clip(colorsys.hsv_to_rgb(h, s, v), 0, 1)
    return out


@pytest.mark.parametrize("severity", SEVERITIES)
def test_brightness_is_hsv_value_shift(severity):
    c = CIFAR["brightness"][severity - 1]
    ref = _hsv_reference(IMAGES[:3], lambda h, s, v: (h, s, min(max(v + c, 0.0), 1.0)))
    assert np.abs(to_hwc(corrupt(X[:3], "brightness", severity)) - ref).max() < 1e-6


@pytest.mark.parametrize("severity", SEVERITIES)
def test_saturate_is_hsv_saturation_change(severity):
    mult, add = CIFAR["saturate"][severity - 1]
    ref = _hsv_reference(IMAGES[:3], lambda h, s, v: (h, min(max(s * mult + add, 0.0), 1.0), v))
    assert np.abs(to_hwc(corrupt(X[:3], "saturate", severity)) - ref).max() < 1e-6


@pytest.mark.parametrize("severity", SEVERITIES)
def test_contrast_scales_around_channel_mean(severity):
    c = CIFAR["contrast"][severity - 1]
    x = IMAGES / 255.0
    mean = x.mean(axis=(1, 2), keepdims=True)
    ref = np.clip((x - mean) * c + mean, 0, 1)
    assert np.abs(to_hwc(corrupt(X, "contrast", severity)) - ref).max() < 1e-6


@pytest.mark.parametrize("table,size", [("cifar10", 32), ("tinyimagenet", 64)])
def test_pixelate_is_pil_box_resize_down_and_up(table, size):
    images = make_images(4, size, seed=1)
    x = to_tensor(images)
    for severity in SEVERITIES:
        c = TABLES[table].params["pixelate"][severity - 1]
        small = (int(size * c), int(size * c))
        ref = np.stack(
            [
                np.asarray(
                    Image.fromarray(i).resize(small, Image.BOX).resize((size, size), Image.BOX)
                )
                for i in images
            ]
        )
        # Identical 8-bit levels: PIL's fixed-point weights and rounding are reproduced.
        assert (
            np.abs(to_hwc(corrupt(x, "pixelate", severity, table=table)) * 255 - ref).max() < 1e-3
        )


@pytest.mark.parametrize("severity", SEVERITIES)
def test_jpeg_is_pil_at_table_quality(severity):
    quality = CIFAR["jpeg_compression"][severity - 1]

    def roundtrip(image):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        return np.asarray(Image.open(buffer))

    ref = np.stack([roundtrip(i) for i in IMAGES])
    assert np.abs(to_hwc(corrupt(X, "jpeg_compression", severity)) * 255 - ref).max() < 1e-3


@pytest.mark.parametrize("severity", SEVERITIES)
def test_gaussian_blur_is_scipy_gaussian_filter_nearest(severity):
    sigma = CIFAR["gaussian_blur"][severity - 1]
    ref = np.clip(
        ndi.gaussian_filter(
            IMAGES / 255.0, sigma=(0, sigma, sigma, 0), mode="nearest", truncate=4.0
        ),
        0,
        1,
    )
    assert np.abs(to_hwc(corrupt(X, "gaussian_blur", severity)) - ref).max() < 1e-5


def _disk_reference(radius: float, alias_blur: float) -> np.ndarray:
    grid = np.arange(-8, 9) if radius <= 8 else np.arange(-radius, radius + 1)
    ksize = 3 if radius <= 8 else 5
    xx, yy = np.meshgrid(grid, grid)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float64)
    disk /= disk.sum()
    t = np.arange(ksize) - (ksize - 1) / 2
    g = np.exp(-(t**2) / (2 * alias_blur**2))
    g /= g.sum()
    # cv2.GaussianBlur's default border is reflect-101, scipy's "mirror".
    return ndi.correlate1d(
        ndi.correlate1d(disk, g, axis=0, mode="mirror"), g, axis=1, mode="mirror"
    )


@pytest.mark.parametrize("table,size", [("cifar10", 32), ("imagenet", 40)])
def test_defocus_blur_is_disk_filter2d(table, size):
    images = make_images(3, size, seed=2)
    x = to_tensor(images)
    for severity in SEVERITIES:
        radius, alias = TABLES[table].params["defocus_blur"][severity - 1]
        kernel = _disk_reference(radius, alias)
        ref = np.stack(
            [
                np.stack(
                    [ndi.correlate(i[:, :, ch] / 255.0, kernel, mode="mirror") for ch in range(3)],
                    -1,
                )
                for i in images
            ]
        )
        assert (
            np.abs(
                to_hwc(corrupt(x, "defocus_blur", severity, table=table)) - np.clip(ref, 0, 1)
            ).max()
            < 1e-5
        )


def _clipped_zoom_reference(image: np.ndarray, zoom: float) -> np.ndarray:
    h = image.shape[0]
    crop = int(np.ceil(h / zoom))
    top = (h - crop) // 2
    zoomed = ndi.zoom(image[top : top + crop, top : top + crop], (zoom, zoom, 1), order=1)
    trim = (zoomed.shape[0] - h) // 2
    return zoomed[trim : trim + h, trim : trim + h]


@pytest.mark.parametrize("severity", SEVERITIES)
def test_zoom_blur_is_mean_of_scipy_zooms(severity):
    zooms = CIFAR["zoom_blur"][severity - 1]
    refs = []
    for image in IMAGES[:3] / 255.0:
        total = image.copy()
        for z in zooms:
            total += _clipped_zoom_reference(image, z)
        refs.append(np.clip(total / (len(zooms) + 1), 0, 1))
    assert np.abs(to_hwc(corrupt(X[:3], "zoom_blur", severity)) - np.stack(refs)).max() < 1e-5


# ------------------------------------------------------------------------------------------------
# Vectorised machinery against plain loops on the same draws
# ------------------------------------------------------------------------------------------------


def _swap_loop(
    dy: np.ndarray, dx: np.ndarray, h: int, w: int, delta: int, iterations: int
) -> np.ndarray:
    """The generators' glass-blur loop, run on pixel indices."""
    out = []
    for i in range(dy.shape[0]):
        a = np.arange(h * w).reshape(h, w)
        k = 0
        for _ in range(iterations):
            for r in range(h - delta, delta, -1):
                for c in range(w - delta, delta, -1):
                    r2, c2 = r + dy[i, k], c + dx[i, k]
                    a[r, c], a[r2, c2] = a[r2, c2], a[r, c]
                    k += 1
        out.append(a.reshape(-1))
    return np.stack(out)


@pytest.mark.parametrize(
    "h,w,delta,iterations",
    [(32, 32, 1, 2), (9, 12, 1, 3), (10, 9, 2, 2), (16, 16, 4, 2), (4, 4, 1, 1)],
)
def test_glass_blur_swaps_equal_the_sequential_loop(h, w, delta, iterations):
    g = torch.Generator().manual_seed(h * 100 + w)
    k = iterations * (h - 2 * delta) * (w - 2 * delta)
    dy = torch.randint(-delta, delta, (5, k), generator=g)
    dx = torch.randint(-delta, delta, (5, k), generator=g)
    got = blur.swap_permutation(dy, dx, h, w, delta, iterations).numpy()
    assert np.array_equal(got, _swap_loop(dy.numpy(), dx.numpy(), h, w, delta, iterations))
    # The general (sort-based) pass agrees with the row scan used for delta = 1.
    if delta == 1:
        per_pass = (h - 2) * (w - 2)
        events = blur._swap_pass_events(dy[:, :per_pass], dx[:, :per_pass], h, w, 1).numpy()
        assert np.array_equal(
            events, _swap_loop(dy[:, :per_pass].numpy(), dx[:, :per_pass].numpy(), h, w, 1, 1)
        )


def _motion_blur_loop(image: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """ImageMagick's motion-blur kernel written out per pixel: image (H, W, C)."""
    h, w, _ = image.shape
    width = 2 * math.ceil(radius) + 1
    taps = np.exp(-(np.arange(width) ** 2) / (2 * sigma**2))
    taps /= taps.sum()
    a = math.radians(angle)
    out = np.zeros_like(image)
    for i in range(width):
        dy, dx = math.ceil(i * math.sin(a) - 0.5), math.ceil(i * math.cos(a) - 0.5)
        for r in range(h):
            for c in range(w):
                out[r, c] += taps[i] * image[min(max(r + dy, 0), h - 1), min(max(c + dx, 0), w - 1)]
    return out


def test_motion_blur_kernel_equals_per_pixel_loop():
    images = IMAGES[:2, :12, :12] / 255.0
    angles = torch.tensor([-37.0, 120.0])
    got = to_hwc(ops.motion_blur(to_tensor(IMAGES[:2, :12, :12]), 6, 2.0, angles))
    for i, angle in enumerate(angles.tolist()):
        assert np.abs(got[i] - _motion_blur_loop(images[i], 6, 2.0, angle)).max() < 1e-5


def _imagemagick() -> str | None:
    for tool in ("magick", "convert"):
        path = shutil.which(tool)
        if path:
            try:
                version = subprocess.run(
                    [path, "-version"], capture_output=True, text=True, timeout=20, check=False
                )
            except (OSError, subprocess.SubprocessError):
                continue
            if version.returncode == 0 and version.stdout.startswith("Version: ImageMagick"):
                return path
    return None


@pytest.mark.skipif(_imagemagick() is None, reason="ImageMagick is not installed")
def test_motion_blur_matches_imagemagick(tmp_path):
    image = IMAGES[0]
    Image.fromarray(image).save(tmp_path / "in.png")
    for radius, sigma, angle in [(6, 1.5, 20.0), (9, 2.5, -80.0)]:
        subprocess.run(
            [
                _imagemagick(),
                str(tmp_path / "in.png"),
                "-motion-blur",
                f"{radius}x{sigma}+{angle}",
                str(tmp_path / "out.png"),
            ],
            check=True,
        )
        ref = np.asarray(Image.open(tmp_path / "out.png").convert("RGB")).astype(np.float64)
        got = (
            to_hwc(
                ops.quantize_trunc(
                    ops.motion_blur(to_tensor(image[None]), radius, sigma, torch.tensor([angle]))
                )
            )[0]
            * 255
        )
        diff = np.abs(got - ref)
        assert diff.max() < 1.01 and (diff > 0.5).mean() < 0.01


@pytest.mark.parametrize("severity", SEVERITIES)
def test_elastic_transform_is_affine_warp_then_map_coordinates(severity):
    alpha, sigma, shift = (v * 32 for v in CIFAR["elastic_transform"][severity - 1])
    n = 3
    got = to_hwc(
        corrupt(X[:n], "elastic_transform", severity, generator=torch.Generator().manual_seed(7))
    )
    # The same draws, in the function's order: affine point shifts, then dx, then dy.
    g = torch.Generator().manual_seed(7)
    shifts = (torch.rand((n, 3, 2), generator=g) * (2 * shift) - shift).double().numpy()
    noise_x = (torch.rand((n, 32, 32), generator=g) * 2 - 1).double().numpy()
    noise_y = (torch.rand((n, 32, 32), generator=g) * 2 - 1).double().numpy()
    pts1 = np.array(
        [[16 + 10, 16 + 10], [16 + 10, 16 - 10], [16 - 10, 16 - 10]], dtype=np.float64
    )  # (x, y)
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    for i in range(n):
        m = np.linalg.solve(
            np.c_[pts1, np.ones(3)], pts1 + shifts[i]
        ).T  # (2, 3): (x, y, 1) -> (x', y')
        inv = np.linalg.inv(m[:, :2])
        off = -inv @ m[:, 2]
        # scipy works in (row, col): swap the (x, y) roles; "mirror" is cv2's reflect-101.
        matrix = np.array([[inv[1, 1], inv[1, 0]], [inv[0, 1], inv[0, 0]]])
        warped = np.stack(
            [
                ndi.affine_transform(
                    IMAGES[i, :, :, ch] / 255.0,
                    matrix,
                    offset=(off[1], off[0]),
                    order=1,
                    mode="mirror",
                )
                for ch in range(3)
            ],
            -1,
        )
        dx = ndi.gaussian_filter(noise_x[i], sigma, mode="reflect", truncate=3.0) * alpha
        dy = ndi.gaussian_filter(noise_y[i], sigma, mode="reflect", truncate=3.0) * alpha
        ref = np.stack(
            [
                ndi.map_coordinates(
                    warped[:, :, ch], [rows + dy, cols + dx], order=1, mode="reflect"
                )
                for ch in range(3)
            ],
            -1,
        )
        assert np.abs(got[i] - np.clip(ref, 0, 1)).max() < 1e-4


@pytest.mark.parametrize("severity", [1, 5])
def test_glass_blur_pipeline_on_the_same_draws(severity):
    sigma, delta, iterations = CIFAR["glass_blur"][severity - 1]
    n = 2
    got = to_hwc(corrupt(X[:n], "glass_blur", severity, generator=torch.Generator().manual_seed(9)))
    k = iterations * (32 - 2 * delta) ** 2
    offsets = torch.randint(
        -delta, delta, (n, k, 2), generator=torch.Generator().manual_seed(9)
    ).numpy()
    for i in range(n):
        blurred = np.uint8(
            ndi.gaussian_filter(IMAGES[i] / 255.0, (sigma, sigma, 0), mode="nearest", truncate=4.0)
            * 255
        )
        source = _swap_loop(
            offsets[i : i + 1, :, 1], offsets[i : i + 1, :, 0], 32, 32, delta, iterations
        )[0]
        swapped = blurred.reshape(-1, 3)[source].reshape(32, 32, 3)
        ref = np.clip(
            ndi.gaussian_filter(swapped / 255.0, (sigma, sigma, 0), mode="nearest", truncate=4.0),
            0,
            1,
        )
        # One 8-bit level of slack: the intermediate truncation can fall either side in float32.
        assert (
            np.abs(got[i] - ref).max() < 1.01 / 255 and (np.abs(got[i] - ref) > 1e-4).mean() < 0.02
        )


@pytest.mark.parametrize("severity", [2, 5])
def test_snow_pipeline_on_the_same_draws(severity):
    loc, scale, zoom, threshold, radius, sigma, blend = CIFAR["snow"][severity - 1]
    n = 2
    got = to_hwc(corrupt(X[:n], "snow", severity, generator=torch.Generator().manual_seed(4)))
    g = torch.Generator().manual_seed(4)
    layers = (torch.randn((n, 32, 32), generator=g) * scale + loc).double().numpy()
    angles = (torch.rand((n,), generator=g) * 90 - 135).tolist()
    for i in range(n):
        layer = _clipped_zoom_reference(layers[i][..., None], zoom)
        layer[layer < threshold] = 0
        layer = np.uint8(np.clip(layer, 0, 1) * 255) / 255.0
        layer = np.uint8(_motion_blur_loop(layer, radius, sigma, angles[i]) * 255) / 255.0
        x = IMAGES[i] / 255.0
        grey = x @ np.array([0.299, 0.587, 0.114])
        x = blend * x + (1 - blend) * np.maximum(x, grey[..., None] * 1.5 + 0.5)
        ref = np.clip(x + layer + np.rot90(layer, k=2), 0, 1)
        diff = np.abs(got[i] - ref)
        assert diff.max() < 2.01 / 255 and (diff > 1e-4).mean() < 0.02


def _plasma_reference(mapsize: int, decay: float, g: torch.Generator) -> np.ndarray:
    """The diamond-square plasma of the generators, numpy, drawing from `g` in the same order."""
    m = np.zeros((mapsize, mapsize))
    step, wibble = mapsize, 100.0

    def wibbled(total):
        return (
            total / 4
            + wibble
            * (torch.rand(total.shape, generator=g) * (2 * wibble) - wibble).double().numpy()
        )

    while step >= 2:
        half = step // 2
        corners = m[0::step, 0::step]
        squares = corners + np.roll(corners, -1, axis=0)
        squares = squares + np.roll(squares, -1, axis=1)
        m[half::step, half::step] = wibbled(squares)
        centres, corners = m[half::step, half::step], m[0::step, 0::step]
        m[0::step, half::step] = wibbled(
            centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        )
        m[half::step, 0::step] = wibbled(
            centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        )
        step //= 2
        wibble /= decay
    m -= m.min()
    return m / m.max()


@pytest.mark.parametrize("severity", [1, 5])
def test_fog_is_plasma_blend(severity):
    strength, decay = CIFAR["fog"][severity - 1]
    got = to_hwc(corrupt(X[:1], "fog", severity, generator=torch.Generator().manual_seed(2)))[0]
    plasma = _plasma_reference(32, decay, torch.Generator().manual_seed(2))
    x = IMAGES[0] / 255.0
    peak = x.max()
    ref = np.clip((x + strength * plasma[..., None]) * peak / (peak + strength), 0, 1)
    assert np.abs(got - ref).max() < 1e-4


@pytest.mark.skipif(not HAS_FROST, reason="frost textures (imagecorruptions) not installed")
def test_frost_is_blend_with_a_random_texture_crop():
    n = 6
    c_image, c_frost = CIFAR["frost"][4]
    got = corrupt(X[:n], "frost", 5, generator=torch.Generator().manual_seed(8))
    textures = weather._frost_textures(weather.frost_texture_dir(), 0.2, 32, 32)
    g = torch.Generator().manual_seed(8)
    choice = torch.randint(0, 5, (n,), generator=g)
    u_rows, u_cols = torch.rand((n,), generator=g), torch.rand((n,), generator=g)
    for i in range(n):
        tex = textures[int(choice[i])]
        top = int(u_rows[i] * (tex.shape[1] - 32))  # np.random.randint(0, size - 32)
        left = int(u_cols[i] * (tex.shape[2] - 32))
        ref = (c_image * X[i] + c_frost * tex[:, top : top + 32, left : left + 32]).clamp(0, 1)
        assert torch.allclose(got[i], ref, atol=1e-6)


def test_frost_textures_are_resized_as_cv2_does():
    cv2 = pytest.importorskip("cv2")
    if not HAS_FROST:
        pytest.skip("frost textures (imagecorruptions) not installed")
    folder = weather.frost_texture_dir()
    for scale, tolerance in (
        (0.2, 0),
        (0.3, 1),
    ):  # cv2's 11-bit fixed-point weights: one level at most
        for name, tex in zip(
            weather.FROST_FILES, weather._frost_textures(folder, scale, 32, 32), strict=True
        ):
            ref = cv2.resize(cv2.imread(str(folder / name)), (0, 0), fx=scale, fy=scale)[..., ::-1]
            assert np.abs(tex.permute(1, 2, 0).numpy() * 255 - ref).max() <= tolerance + 1e-3


@pytest.mark.parametrize("severity", SEVERITIES)
def test_spatter_matches_the_opencv_recipe(severity):
    cv2 = pytest.importorskip("cv2")
    loc, scale, sigma, threshold, intensity, mode = CIFAR["spatter"][severity - 1]
    n = 4
    got = to_hwc(corrupt(X[:n], "spatter", severity, generator=torch.Generator().manual_seed(3)))
    layers = (
        (torch.randn((n, 32, 32), generator=torch.Generator().manual_seed(3)) * scale + loc)
        .double()
        .numpy()
    )
    emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
    for i in range(n):
        x = IMAGES[i] / 255.0
        layer = ndi.gaussian_filter(layers[i], sigma, mode="nearest", truncate=4.0)
        layer[layer < threshold] = 0
        if mode == 0:
            levels = (np.clip(layer, 0, 1) * 255).astype(np.uint8)
            # The exact distance (cv2's 5x5 mask approximates it; see weather.py).
            dist = cv2.distanceTransform(
                255 - cv2.Canny(levels, 50, 150), cv2.DIST_L2, cv2.DIST_MASK_PRECISE
            )
            dist = cv2.blur(np.minimum(dist, 20), (3, 3)).astype(np.uint8)
            dist = cv2.blur(cv2.filter2D(cv2.equalizeHist(dist), cv2.CV_8U, emboss), (3, 3)).astype(
                np.float32
            )
            m = levels * dist
            m = m / m.max() * intensity
            ref = np.clip(x + m[..., None] * np.array([175, 238, 238]) / 255, 0, 1)
        else:
            m = ndi.gaussian_filter(
                (layer > threshold).astype(np.float64), intensity, mode="nearest", truncate=4.0
            )
            m[m < 0.8] = 0
            ref = np.clip(
                x * (1 - m[..., None]) + np.array([63, 42, 20]) / 255 * m[..., None], 0, 1
            )
        assert np.abs(got[i] - ref).max() < 1e-5


def test_spatter_edge_distance_is_exact_euclidean():
    rng = np.random.default_rng(3)
    edges = rng.random((4, 24, 20)) < 0.02
    edges[3] = False
    got = weather.distance_to_edges(torch.from_numpy(edges), 20.0).numpy()
    for i in range(3):
        ref = np.minimum(ndi.distance_transform_edt(~edges[i]), 20.0)
        assert np.abs(got[i] - ref).max() < 1e-4
    assert np.all(got[3] == 20.0)  # no edge at all: the cap everywhere, as cv2 gives


def test_spatter_canny_and_equalize_match_opencv():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(4)
    layer = ndi.gaussian_filter(rng.normal(0.65, 0.3, (8, 32, 32)), (0, 1, 1))
    layer[layer < 0.69] = 0
    levels = (np.clip(layer, 0, 1) * 255).astype(np.uint8)
    edges = weather.canny(torch.from_numpy(levels).float(), 50, 150).numpy()
    assert np.array_equal(edges, np.stack([cv2.Canny(a, 50, 150) > 0 for a in levels]))
    dist = rng.integers(0, 21, (8, 32, 32)).astype(np.uint8)
    ours = weather.equalize_hist(torch.from_numpy(dist).long()).numpy()
    assert np.array_equal(ours, np.stack([cv2.equalizeHist(a) for a in dist]))


# ------------------------------------------------------------------------------------------------
# Random corruptions in distribution
# ------------------------------------------------------------------------------------------------

GREY = torch.full((64, 3, 32, 32), 0.5)


def test_gaussian_noise_std_is_table_value():
    for severity in (1, 5):
        y = corrupt(GREY, "gaussian_noise", severity, generator=torch.Generator().manual_seed(0))
        assert abs((y - GREY).std().item() - CIFAR["gaussian_noise"][severity - 1]) < 0.002
        assert abs(y.mean().item() - 0.5) < 0.002


def test_speckle_noise_std_is_proportional_to_intensity():
    c = CIFAR["speckle_noise"][4]
    y = corrupt(GREY, "speckle_noise", 5, generator=torch.Generator().manual_seed(0))
    assert abs((y - GREY).std().item() - 0.5 * c) < 0.002


def test_impulse_noise_fraction_is_amount():
    amount = CIFAR["impulse_noise"][4]
    y = corrupt(GREY, "impulse_noise", 5, generator=torch.Generator().manual_seed(0))
    salt, pepper = (y == 1).float().mean().item(), (y == 0).float().mean().item()
    assert abs(salt + pepper - amount) < 0.003 and abs(salt - pepper) < 0.003
    assert torch.all((y == 0.5) | (y == 0) | (y == 1))


@pytest.mark.parametrize("level", [100 / 255, 0.3917])  # on the 8-bit grid, and off it
def test_shot_noise_counts_are_poisson(level):
    rate = CIFAR["shot_noise"][4]
    x = torch.full((32, 3, 32, 32), level)
    y = corrupt(x, "shot_noise", 5, generator=torch.Generator().manual_seed(0))
    counts = (y * rate).round().long().reshape(-1).numpy()
    assert np.abs(y.numpy() * rate - counts.reshape(y.shape)).max() < 1e-3
    lam = level * rate
    hist = np.bincount(counts, minlength=200)[:200] / counts.size
    assert 0.5 * np.abs(hist - stats.poisson.pmf(np.arange(200), lam)).sum() < 0.01
    assert abs(counts.mean() - lam) < 0.1 and abs(counts.var() / lam - 1) < 0.03


def test_poisson_samplers_agree_with_scipy_over_rates():
    rng = ops.Rng(torch.Generator().manual_seed(1), torch.device("cpu"))
    for lam in (0.4, 3.0, 9.9, 10.0, 37.0, 480.0):
        general = rng.poisson(torch.full((40000,), lam)).numpy()
        assert abs(general.mean() - lam) < 4 * math.sqrt(lam / 40000) + 1e-3
        assert abs(general.var() / lam - 1) < 0.05
        ks = np.arange(int(lam + 8 * math.sqrt(lam) + 10))
        tv = (
            0.5
            * np.abs(
                np.bincount(general.astype(int), minlength=len(ks))[: len(ks)] / general.size
                - stats.poisson.pmf(ks, lam)
            ).sum()
        )
        assert tv < 0.02
    levels = torch.randint(0, 256, (200000,), generator=torch.Generator().manual_seed(2))
    table = rng.poisson_of_levels(levels, 500.0).numpy()
    for level in (0, 1, 128, 255):
        sample = table[levels.numpy() == level]
        lam = 500.0 * level / 255
        assert abs(sample.mean() - lam) < 4 * math.sqrt(max(lam, 1e-3) / sample.size) + 1e-3


# ------------------------------------------------------------------------------------------------
# Invariants
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_severity_keeps_shape_range_and_seed(name):
    x = X[:4]
    before = x.clone()
    for severity in SEVERITIES:
        a = corrupt(x, name, severity, generator=torch.Generator().manual_seed(3))
        b = corrupt(x, name, severity, generator=torch.Generator().manual_seed(3))
        assert a.shape == x.shape and a.dtype == x.dtype
        assert torch.isfinite(a).all() and a.min() >= 0 and a.max() <= 1
        assert torch.equal(a, b)
    assert torch.equal(x, before)  # the input is not modified


@pytest.mark.parametrize("name", NAMES)
def test_grey_images_and_other_tables(name):
    grey = X[:3].mean(dim=1, keepdim=True)
    y = corrupt(grey, name, 3, generator=torch.Generator().manual_seed(0))
    assert y.shape == grey.shape and y.min() >= 0 and y.max() <= 1
    big = to_tensor(make_images(2, 64, seed=5))
    z = corrupt(big, name, 5, generator=torch.Generator().manual_seed(0), table="tinyimagenet")
    assert z.shape == big.shape and torch.isfinite(z).all()
    odd = torch.rand(2, 3, 20, 27)
    assert corrupt(odd, name, 4, generator=torch.Generator().manual_seed(0)).shape == odd.shape
    assert corrupt(X[:0], name, 1).shape == (0, 3, 32, 32)


def test_grey_result_is_channel_mean_of_three_equal_channels():
    grey = X[:3].mean(dim=1, keepdim=True)
    for name in ("contrast", "saturate", "defocus_blur", "pixelate"):
        assert torch.allclose(
            corrupt(grey, name, 5),
            corrupt(grey.expand(-1, 3, -1, -1), name, 5).mean(1, keepdim=True),
            atol=1e-6,
        )


def test_random_corruptions_change_with_the_seed():
    for name in (
        "gaussian_noise",
        "glass_blur",
        "motion_blur",
        "snow",
        "fog",
        "spatter",
        "elastic_transform",
    ):
        a = corrupt(X[:4], name, 3, generator=torch.Generator().manual_seed(0))
        b = corrupt(X[:4], name, 3, generator=torch.Generator().manual_seed(1))
        assert not torch.equal(a, b), name


@pytest.mark.parametrize(
    "name",
    [
        "gaussian_noise",
        "impulse_noise",
        "contrast",
        "gaussian_blur",
        "defocus_blur",
        "zoom_blur",
        "brightness",
        "pixelate",
    ],
)
def test_distortion_grows_with_severity(name):
    smooth = to_tensor(make_images(8, 32, seed=6)[::2])
    distortion = [
        (corrupt(smooth, name, s, generator=torch.Generator().manual_seed(0)) - smooth)
        .abs()
        .mean()
        .item()
        for s in SEVERITIES
    ]
    assert all(b >= a for a, b in itertools.pairwise(distortion)), distortion


# ------------------------------------------------------------------------------------------------
# Frost textures are optional package data
# ------------------------------------------------------------------------------------------------


def test_without_frost_textures_frost_is_left_out(monkeypatch, tmp_path):
    monkeypatch.setenv("SELECTIVITY_FROST_DIR", str(tmp_path))
    with warns(UserWarning, "frost", "selectivity[frost]"):
        names = runnable_corruptions()
    assert "frost" not in names and len(names) == 18
    with pytest.raises(C.FrostTexturesMissing):
        corrupt(X[:2], "frost", 1)


@pytest.mark.skipif(not HAS_FROST, reason="frost textures (imagecorruptions) not installed")
def test_frost_reads_textures_without_importing_imagecorruptions():
    y = corrupt(X[:4], "frost", 5, generator=torch.Generator().manual_seed(0))
    c_image, c_frost = CIFAR["frost"][4]
    layer = (y - c_image * X[:4]) / c_frost  # where nothing clipped, this is the texture crop
    assert layer.min() > -1e-4 and "imagecorruptions.corruptions" not in sys.modules
    assert runnable_corruptions() == CORRUPTIONS


# ------------------------------------------------------------------------------------------------
# The on-disk set
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits20() -> ImageSet:
    return load_dataset("digits").test.subset(np.arange(20))


def test_generated_set_layout_rows_and_resume(tmp_path, digits20):
    names = ["contrast", "gaussian_noise", "motion_blur"]
    written = generate_corruption_set(
        digits20, tmp_path, seed=5, corruptions=names, batch_size=8, progress=False
    )
    # Written in the conventional order, whatever the order asked for.
    assert written == [
        str(tmp_path / f"{n}.npy") for n in ("gaussian_noise", "motion_blur", "contrast")
    ]
    labels = np.load(tmp_path / "labels.npy")
    assert labels.dtype == np.int64 and np.array_equal(labels, np.tile(digits20.labels.numpy(), 5))
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert (
        meta["table"] == "cifar10" and meta["seed"] == 5 and meta["severities"] == [1, 2, 3, 4, 5]
    )
    assert meta["image_shape"] == [16, 16, 1] and sorted(meta["corruptions"]) == sorted(names)
    noisy = np.load(tmp_path / "gaussian_noise.npy")
    assert noisy.dtype == np.uint8 and noisy.shape == (100, 16, 16, 1)
    # Rows [(s-1) N, s N) are severity s, from the (name, severity) generator, batch by batch.
    for severity in (2, 5):
        g = torch.Generator().manual_seed(derived_seed(5, "gaussian_noise", severity))
        x = digits20.images
        y = torch.cat(
            [
                corrupt(x[i : i + 8], "gaussian_noise", severity, generator=g)
                for i in range(0, 20, 8)
            ]
        )
        expected = ops.truncate_to_uint8(y).permute(0, 2, 3, 1).numpy()
        assert np.array_equal(noisy[(severity - 1) * 20 : severity * 20], expected)
    clean_contrast = np.load(tmp_path / "contrast.npy")[80:]
    assert np.array_equal(
        clean_contrast,
        ops.truncate_to_uint8(corrupt(digits20.images, "contrast", 5)).permute(0, 2, 3, 1).numpy(),
    )
    # Resume: nothing left to do, nothing rewritten; a new corruption is added alone.
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert (
        generate_corruption_set(
            digits20, tmp_path, seed=5, corruptions=names, batch_size=8, progress=False
        )
        == []
    )
    assert all(
        tmp_path.joinpath(n).stat().st_mtime_ns == stamps[n] for n in stamps if n.endswith(".npy")
    )
    assert generate_corruption_set(
        digits20, tmp_path, seed=5, corruptions=[*names, "pixelate"], batch_size=8, progress=False
    ) == [str(tmp_path / "pixelate.npy")]
    # A subset regenerates bit for bit.
    other = tmp_path / "again"
    generate_corruption_set(
        digits20, other, seed=5, corruptions=["motion_blur"], batch_size=8, progress=False
    )
    assert (other / "motion_blur.npy").read_bytes() == (tmp_path / "motion_blur.npy").read_bytes()
    # Other settings in the same folder are refused.
    with raises(ValueError, str(tmp_path), "seed: 5", "6"):
        generate_corruption_set(
            digits20, tmp_path, seed=6, corruptions=names, batch_size=8, progress=False
        )


def test_generation_is_atomic_and_resumable_after_a_crash(tmp_path, digits20, monkeypatch):
    import selectivity.corruptions.generate as generate_module

    calls = {"n": 0}
    real = generate_module.corrupt

    def failing(x, name, *args, **kwargs):
        if name == "saturate":
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("interrupted")
        return real(x, name, *args, **kwargs)

    monkeypatch.setattr(generate_module, "corrupt", failing)
    names = ["fog", "brightness", "saturate"]
    with raises(RuntimeError, "interrupted"):
        generate_corruption_set(
            digits20, tmp_path, corruptions=names, severities=(1, 3), batch_size=8, progress=False
        )
    present = sorted(p.name for p in tmp_path.iterdir())
    assert present == [
        "brightness.npy",
        "fog.npy",
        "labels.npy",
        "metadata.json",
    ]  # no partial file, no temp file
    assert json.loads((tmp_path / "metadata.json").read_text())["corruptions"] == [
        "fog",
        "brightness",
    ]
    monkeypatch.setattr(generate_module, "corrupt", real)
    written = generate_corruption_set(
        digits20, tmp_path, corruptions=names, severities=(1, 3), batch_size=8, progress=False
    )
    assert written == [str(tmp_path / "saturate.npy")]
    assert np.load(tmp_path / "saturate.npy").shape == (40, 16, 16, 1)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_write_rows_refuses_blocks_that_do_not_fill_the_shape(tmp_path):
    from selectivity.corruptions.store import write_rows

    path = tmp_path / "x.npy"
    block = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    write_rows(path, (4, 4, 4, 3), [block, block + 1])
    assert np.load(path).tolist() == np.concatenate([block, block + 1]).tolist()
    with raises(ValueError, "short.npy", "1 rows", "4"):
        write_rows(tmp_path / "short.npy", (4, 4, 4, 3), [block[:1]])
    with raises(ValueError, "wide.npy", "(4, 4, 4, 1)", "(4, 4, 4, 3)"):
        write_rows(tmp_path / "wide.npy", (4, 4, 4, 3), [np.zeros((4, 4, 4, 1), np.uint8)])
    # Nothing half-written is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]
