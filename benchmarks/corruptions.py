"""Speed of the corruption generator against the `imagecorruptions` package, side by side.

For each of the 19 corruptions, images per second over all five severities on 32x32 images:
this package (batched tensors, CIFAR-10-C table) and imagecorruptions (one image at a time,
its ImageNet-C parameters, which it applies at any size), and their ratio. Then the projected
time of the full suite (19 corruptions x 5 severities x 10,000 images) for each, and, with
--full-run, the measured wall time of `generate_corruption_set` on that many images.

Targets: the suite on 10k 32x32 images in under 3 minutes on this machine, and at least 10x
imagecorruptions over the suite.

imagecorruptions 1.1.2 does not run on current stacks; three things are patched here, in this
process only (site-packages is not touched): `pkg_resources` (gone from setuptools >= 81) gets a
stand-in providing `resource_filename`, `np.float_` (gone from NumPy 2) is aliased to float64,
and skimage's `gaussian(..., multichannel=True)` (removed) is called as `channel_axis=-1`.

    python benchmarks/corruptions.py [--ours 2000] [--theirs 40] [--threads 1] [--full-run 10000]
                                     [--batch-size 500] [--corruptions a,b,...]

Both sides run in one process on the same images; `--threads` sets torch's intra-op threads for
this package (imagecorruptions works one image at a time in numpy/OpenCV). On a shared CPU,
one thread is much faster than two for these small batched operations (each parallel operation
waits for a busy core).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
import types
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from selectivity.corruptions import CORRUPTIONS, corrupt, generate_corruption_set
from selectivity.data import ImageSet


def synthetic_images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 (n, size, size, 3): smooth colour fields with some texture and edges, so that
    content-dependent steps (edges in spatter, JPEG entropy coding) see image-like input."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((n, 3, 4, 4), generator=g)
    x = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    mid = F.interpolate(
        torch.rand((n, 3, 8, 8), generator=g),
        size=(size, size),
        mode="bilinear",
        align_corners=False,
    )
    x = 0.7 * x + 0.25 * mid + 0.08 * torch.rand((n, 3, size, size), generator=g)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def load_imagecorruptions():
    """imagecorruptions' `corrupt`, patched to run on current NumPy / scikit-image / setuptools."""
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None:
        return None
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        shim = types.ModuleType("pkg_resources")

        def resource_filename(package: str, resource: str) -> str:
            origin = importlib.util.find_spec(package).origin
            return os.path.join(os.path.dirname(origin), resource)

        shim.resource_filename = resource_filename
        sys.modules["pkg_resources"] = shim
    if not hasattr(np, "float_"):
        np.float_ = np.float64  # noqa: NPY201 - the alias imagecorruptions reads, gone in NumPy 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import imagecorruptions
        import imagecorruptions.corruptions as ic
    from skimage.filters import gaussian as sk_gaussian

    def gaussian(image, *args, multichannel=None, **kwargs):
        if multichannel:
            kwargs["channel_axis"] = -1
        return sk_gaussian(image, *args, **kwargs)

    ic.gaussian = gaussian
    return imagecorruptions.corrupt


def time_ours(images: np.ndarray, name: str, batch_size: int) -> float:
    """Seconds to corrupt all images at each of the five severities, including the uint8
    round trip (batch in, truncated uint8 out) that generation does."""
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    generator = torch.Generator().manual_seed(0)
    corrupt(x_all[:8], name, 5, generator=generator)  # warm caches (tables, textures)
    started = time.perf_counter()
    for severity in range(1, 6):
        for start in range(0, len(images), batch_size):
            y = corrupt(x_all[start : start + batch_size], name, severity, generator=generator)
            (y.clamp(0, 1) * 255).floor_().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return time.perf_counter() - started


def time_theirs(ic_corrupt, images: np.ndarray, name: str) -> float:
    np.random.seed(0)  # noqa: NPY002 - imagecorruptions draws from numpy's global generator
    ic_corrupt(images[0], severity=5, corruption_name=name)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for severity in range(1, 6):
            for image in images:
                ic_corrupt(image, severity=severity, corruption_name=name)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--ours", type=int, default=2000, help="images per severity for this package"
    )
    parser.add_argument(
        "--theirs", type=int, default=40, help="images per severity for imagecorruptions (0: skip)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads for this package"
    )
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--full-run",
        type=int,
        default=0,
        help="also time generate_corruption_set on this many images",
    )
    parser.add_argument("--corruptions", type=str, default=",".join(CORRUPTIONS))
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    names = [n for n in args.corruptions.split(",") if n]
    images = synthetic_images(max(args.ours, args.theirs, 1))
    ic_corrupt = load_imagecorruptions() if args.theirs > 0 else None
    if args.theirs > 0 and ic_corrupt is None:
        print("imagecorruptions is not installed: pip install imagecorruptions scikit-image")

    print(
        f"torch {torch.__version__}, {args.threads} thread(s); 32x32 images; ours: {args.ours} per severity, "
        f"batch {args.batch_size}; imagecorruptions: {args.theirs if ic_corrupt else 0} per severity"
    )
    print(f"{'corruption':18s} {'ours img/s':>11s} {'theirs img/s':>13s} {'ratio':>7s}")
    suite_ours = suite_theirs = 0.0
    for name in names:
        ours = time_ours(images[: args.ours], name, args.batch_size)
        rate_ours = 5 * args.ours / ours
        suite_ours += 5 * 10_000 / rate_ours
        line = f"{name:18s} {rate_ours:11.0f}"
        if ic_corrupt is not None:
            theirs = time_theirs(ic_corrupt, images[: args.theirs], name)
            rate_theirs = 5 * args.theirs / theirs
            suite_theirs += 5 * 10_000 / rate_theirs
            line += f" {rate_theirs:13.0f} {rate_ours / rate_theirs:7.1f}"
        print(line, flush=True)
    print(f"\nprojected 19x5 suite on 10k images: ours {suite_ours:.0f} s", end="")
    if ic_corrupt is not None:
        print(
            f", imagecorruptions {suite_theirs:.0f} s ({suite_theirs / 60:.1f} min), ratio {suite_theirs / suite_ours:.1f}x"
        )
    else:
        print()

    if args.full_run > 0:
        data = synthetic_images(args.full_run, seed=1)
        image_set = ImageSet(data, torch.zeros(args.full_run, dtype=torch.int64))
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            generate_corruption_set(
                image_set,
                folder,
                corruptions=names,
                batch_size=args.batch_size,
                progress=False,
                num_threads=args.threads,
            )
            elapsed = time.perf_counter() - started
        print(
            f"generate_corruption_set, {len(names)} corruptions x 5 severities x {args.full_run} images: {elapsed:.0f} s"
        )


if __name__ == "__main__":
    main()
