"""Random numbers that one seed reproduces on any device.

Every random draw of the package (PGD's random start, the Jacobian's random projections, the
corruptions' noise) is made on the generator's own device, the CPU for the package's
`torch.Generator()`s, and then moved to where it is used: the same seed gives the same numbers on
a CPU and on a GPU. Without a generator, the draw uses the global RNG of the target device.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["draw"]


def draw(
    distribution: Literal["uniform", "normal"],
    shape: tuple[int, ...] | torch.Size,
    generator: torch.Generator | None,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """`shape` values from U[0, 1) or N(0, 1), of `dtype`, on `device`."""
    source = generator.device if generator is not None else device
    sample = torch.rand if distribution == "uniform" else torch.randn
    return sample(tuple(shape), generator=generator, device=source, dtype=dtype).to(device)
