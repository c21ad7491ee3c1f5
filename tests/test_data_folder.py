"""A folder data set that cannot be read whole is one line, never an empty class, a traceback
or an out-of-memory kill."""

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from selectivity.data import DataError, load_dataset
from selectivity.data import decode as decode_module
from selectivity.data.decode import MAX_IMAGE_PIXELS


def _image_folder(root: Path, classes=("cat", "dog", "owl"), count=5, side=8) -> Path:
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for index in range(count):
            pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")
    return root


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_readable_folder_loads_every_class(tmp_path):
    data = load_dataset("folder", _image_folder(tmp_path / "d"), 0)
    assert data.num_classes == 3


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 folder all the same")
def test_an_unreadable_class_folder_is_one_line(tmp_path):
    root = _image_folder(tmp_path / "d")
    (root / "dog").chmod(0)
    try:
        with pytest.raises(DataError) as error:
            load_dataset("folder", root, 0)
    finally:
        (root / "dog").chmod(0o755)
    assert _one_line(error) == f"cannot read the image folder {root / 'dog'}: permission denied"


@pytest.mark.parametrize("how", ["listing fails", "no access"])
def test_a_class_folder_this_user_cannot_read_is_one_line(tmp_path, monkeypatch, how):
    # As root (the tests' user here) mode 000 reads all the same; what another user meets is
    # staged: the folder cannot be listed (EACCES), or os.access says no.
    root = _image_folder(tmp_path / "d")
    blocked = root / "dog"
    if how == "listing fails":
        real = os.scandir

        def scandir(path="."):
            if Path(path) == blocked:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)

        monkeypatch.setattr(os, "scandir", scandir)
    else:
        real_access = os.access
        monkeypatch.setattr(
            os, "access", lambda path, mode, **kw: Path(path) != blocked and real_access(path, mode)
        )
    with pytest.raises(DataError) as error:
        load_dataset("folder", root, 0)
    assert _one_line(error).startswith(f"cannot read the image folder {blocked}: ")
    assert "ermission denied" in str(error.value)


def test_a_class_folder_without_images_is_one_line(tmp_path):
    root = _image_folder(tmp_path / "d")
    for path in (root / "owl").iterdir():
        path.unlink()
    (root / "owl" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError) as error:
        load_dataset("folder", root, 0)
    assert _one_line(error).startswith(f"class folder {root / 'owl'} holds no images")


def _png_header(path: Path, width: int, height: int) -> None:
    """A PNG that says it is width x height (RGB) but holds a few bytes of pixels: its header
    is all a size check may read."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("image_size", [None, 8])
def test_an_oversized_image_is_refused_from_its_header(tmp_path, image_size, recwarn):
    root = _image_folder(tmp_path / "d")
    _png_header(root / "dog" / "huge.png", 12000, 12000)  # 144 megapixels: 432 MB decoded
    with pytest.raises(DataError) as error:
        load_dataset("folder", root, 0, image_size)
    assert _one_line(error) == (
        f"image {root / 'dog' / 'huge.png'} is 12000x12000 pixels, over the limit of "
        f"{MAX_IMAGE_PIXELS:,} (8192x8192): shrink it"
    )
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]


def test_an_image_at_the_limit_passes_the_size_check(tmp_path):
    # 8192 x 8192 exactly is allowed: the check is on the header, so the (fake, truncated) file
    # gets as far as decoding, which then fails on its missing pixels.
    path = tmp_path / "edge.png"
    _png_header(path, 8192, 8192)
    with pytest.raises(DataError, match="cannot decode image"):
        decode_module.decode_to_size([path], None)


def test_images_that_cannot_all_fit_in_memory_ask_for_image_size(tmp_path, monkeypatch):
    root = _image_folder(tmp_path / "d")
    monkeypatch.setattr(decode_module, "_memory_bytes", lambda: 1000)  # 1000 bytes of memory
    with pytest.raises(DataError) as error:
        load_dataset("folder", root, 0)
    assert _one_line(error).endswith("set image_size to resize them as they are read")
    monkeypatch.undo()
    assert load_dataset("folder", root, 0, image_size=4).num_classes == 3
