"""Where and how the tensors are computed: the training device, random generators whose state a
checkpoint keeps, and the opt-in bfloat16 precision. Used by every loop (:doc:`/book/08_training_usps`).
"""
from __future__ import annotations

import os

import numpy as np
import torch

from .config import Config


def get_device(device: str | torch.device | None = None) -> torch.device:
    """The training device: the argument, else ``DECS_DEVICE``, else cuda if available, else cpu."""
    name = device or os.environ.get("DECS_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators (the training code itself
    draws from explicit generators, so this only matters for code that uses the globals)."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    """An explicit random generator on ``device``: its state is saved in checkpoints."""
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


# ----------------------------------------------------------------------- precision
def autocast(cfg: Config, device: torch.device):
    """The context the network's training forward passes run in: bfloat16 autocast on
    ``device`` when ``cfg.precision == "bf16"`` (convolutions and matrix products in bf16,
    which CPUs with AVX-512 BF16 and recent GPUs run faster), else nothing changes. The caller
    casts the output back to fp32 before any loss, so q, Otsu's threshold and the scores are
    fp32 either way. An opt-in of this book, off in every profile; its speed and its effect on
    the final accuracy are measured in :doc:`/book/reproducibility`."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16,
                          enabled=cfg.precision == "bf16")

