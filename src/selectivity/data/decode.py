"""Decoding image files into uint8 arrays, and the cache of decoded arrays.

Decoded-JPEG caches go to ``<data root>/.selectivity-cache/`` when that folder is writable, else to
``$SELECTIVITY_CACHE_DIR`` (default ``$XDG_CACHE_HOME/selectivity`` or ``~/.cache/selectivity``),
else they are skipped with a warning. `decoded_cached` also serves `corruptions.store`.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from selectivity.data.images import DataError
from selectivity.files import atomic_path, one_line

# Folder created inside a data root for decoded-JPEG caches. Hidden, so that it can never be
# taken for a class or corruption folder.
CACHE_DIR_NAME = ".selectivity-cache"
_JPEG_SUFFIXES = (".jpeg", ".jpg")


def _user_cache_dir() -> Path:
    """Fallback cache folder for read-only data folders."""
    if os.environ.get("SELECTIVITY_CACHE_DIR"):
        return Path(os.environ["SELECTIVITY_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "selectivity"


def is_jpeg(path: Path) -> bool:
    return path.suffix.lower() in _JPEG_SUFFIXES and not path.name.startswith(".")


def _save_npy_atomic(path: Path, array: np.ndarray) -> bool:
    """Write `array` to `path` as .npy under a temporary name, then rename; False if not writable.

    The rename makes the file appear whole or not at all, so a reader (another process of a
    sweep, or a run killed mid-write) never sees a truncated cache.
    """
    try:
        with atomic_path(path) as temporary, open(temporary, "wb") as stream:
            np.save(stream, array)
        return True
    except OSError:
        return False


def _fingerprint(paths: Sequence[Path], base: Path) -> str:
    """16 hex digits identifying a file list: relative paths and sizes, in order.

    Part of the cache file name, so adding, removing or replacing (with another size) an image
    gives a new cache instead of a stale one. Relative paths: the cache next to the data stays
    valid when the whole folder moves.
    """
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.relative_to(base).as_posix()}\0{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def _cache_candidates(base: Path, name: str) -> list[Path]:
    """Cache file locations in order of preference: next to the data, then the user cache dir."""
    # In the shared user cache the data folder's absolute path keeps two copies apart.
    owner = hashlib.sha256(str(base.resolve()).encode()).hexdigest()[:12]
    return [base / CACHE_DIR_NAME / name, _user_cache_dir() / f"{owner}-{name}"]


# The most pixels one image may have: 8192 x 8192 (2**26, 192 MiB decoded as RGB), above any
# camera's 48-megapixel photos and far above what these networks take in (32 to 224 pixels a
# side). Checked from the file's header, before a pixel is decoded: a larger file (a mistake,
# or a decompression bomb) is refused in one line instead of filling the memory.
MAX_IMAGE_PIXELS = 1 << 26


def _decode_one(path: Path) -> np.ndarray:
    """One image file -> uint8 (H, W, 3) RGB; greyscale, palette and CMYK files are converted.
    DataError (one line) for a file that cannot be decoded or has over MAX_IMAGE_PIXELS."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # PIL's own decompression-bomb warning (from 89 megapixels) would come before the
            # refusal below, as a second line. (catch_warnings is not thread-safe: at worst
            # that warning stays off in this process, and the limit here is below PIL's.)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DataError(
                    f"image {path} is {width}x{height} pixels, over the limit of "
                    f"{MAX_IMAGE_PIXELS:,} (8192x8192): shrink it"
                )
            return np.asarray(image.convert("RGB"))
    except DataError:
        raise
    except (
        Exception
    ) as error:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        raise DataError(f"cannot decode image {path}: {one_line(error, with_type=True)}") from None


def _memory_bytes() -> int | None:
    """The machine's physical memory in bytes; None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _check_total(paths: Sequence[Path], first: np.ndarray) -> None:
    """DataError when `paths`, each of `first`'s size, could not be held in memory at once."""
    total = len(paths) * first.nbytes
    memory = _memory_bytes()
    if memory is not None and total > memory:
        raise DataError(
            f"{len(paths)} images of {first.shape[1]}x{first.shape[0]} pixels take "
            f"{total / 2**30:.1f} GiB decoded, more than this machine's {memory / 2**30:.1f} GiB "
            f"of memory: set image_size to resize them as they are read"
        )


def _decode_images(paths: Sequence[Path]) -> np.ndarray:
    """Decode image files into one uint8 (N, H, W, 3) array; all must share the first one's size.

    Threads: PIL releases the GIL inside its JPEG decoder, so threads overlap the decoding
    without the start-up and copying cost of processes (~0.6 ms per 64x64 JPEG here: about a
    minute for Tiny ImageNet's 110k).
    """
    first = _decode_one(paths[0])
    _check_total(paths, first)
    out = np.empty((len(paths), *first.shape), dtype=np.uint8)
    out[0] = first

    def work(start: int, stop: int) -> None:
        for i in range(start, stop):
            image = _decode_one(paths[i])
            if image.shape != first.shape:
                raise DataError(
                    f"image {paths[i]} is {image.shape[1]}x{image.shape[0]} pixels; "
                    f"expected {first.shape[1]}x{first.shape[0]} like {paths[0]}"
                )
            out[i] = image

    chunk = 512
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        futures = [
            pool.submit(work, s, min(s + chunk, len(paths))) for s in range(1, len(paths), chunk)
        ]
        try:
            for future in futures:
                future.result()
        except BaseException:
            # Fail fast: the first bad file is the answer, the rest need not be decoded.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return out


def _open_cache(path: Path, count: int) -> np.ndarray | None:
    """A cache file memory-mapped if it holds `count` uint8 (H, W, 3) images, else None."""
    if not path.is_file():
        return None
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None  # a damaged cache is rebuilt, never trusted
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[0] != count or array.shape[3] != 3:
        return None
    return array


def decoded_cached(paths: Sequence[Path], base: Path, tag: str) -> np.ndarray:
    """uint8 (N, H, W, 3) pixels of `paths`, in order, decoded once and cached as .npy.

    Reused when a cache for exactly this file list (names and sizes) exists; the result is then a
    read-only np.memmap. Without a writable cache location the decoded array is returned in memory.
    """
    name = f"{tag}-{_fingerprint(paths, base)}.npy"
    candidates = _cache_candidates(base, name)
    for candidate in candidates:
        cached = _open_cache(candidate, len(paths))
        if cached is not None:
            return cached
    images = _decode_images(paths)
    for candidate in candidates:
        if _save_npy_atomic(candidate, images):
            # Re-opened memory-mapped: the decode buffer is freed and every later read goes
            # through the page cache, like a reuse would.
            return np.load(candidate, mmap_mode="r")
    warnings.warn(
        f"could not write a decoded-image cache to {candidates[0].parent} or {candidates[1].parent}; "
        "the images will be decoded again next time",
        stacklevel=3,
    )
    return images


def decode_to_size(paths: Sequence[Path], size: int | None) -> np.ndarray:
    """uint8 (N, H, W, 3); with `size`, every image is resized to size x size (bilinear) first."""
    if size is None:
        return _decode_images(paths)
    from PIL import Image

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        image = Image.fromarray(_decode_one(path))
        out[i] = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
    return out
