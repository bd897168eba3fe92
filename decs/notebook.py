"""The set-up every chapter's first code cell runs (seed, device, profile, data root, style).

Used at the top of every notebook of the book, e.g. :doc:`/book/02_clustering_and_metrics`.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import Config, get_config
from .data import data_root
from .plots import use_style
from .train import get_device, seed_everything


@dataclass(frozen=True)
class Setup:
    """What a chapter runs with; printed by :func:`setup`."""
    profile: str
    config: Config
    device: torch.device
    data_root: Path
    seed: int


def setup(seed: int = 0) -> Setup:
    """Seed everything, choose device and profile, find the data, set the plot style, and say so.

    The profile comes from ``DECS_PROFILE`` (``ci``, ``cpu`` or ``paper``; default ``cpu``),
    the device from ``DECS_DEVICE`` (default: cuda if available), the data from ``DECS_DATA``.
    """
    seed_everything(seed)
    # MyST-NB's glue formats numbers from their text repr; NumPy 2 writes scalars as
    # "np.float64(0.42)", which it cannot format. The 1.25 repr is the plain number.
    np.set_printoptions(legacy="1.25")
    cfg = get_config()
    device = get_device()
    root = data_root()
    use_style()
    hw = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{os.cpu_count()} CPU cores"
    print(f"profile={cfg.profile} | device={device} ({hw}) | data={root} | seed={seed} | "
          f"torch {torch.__version__}, python {platform.python_version()}")
    return Setup(cfg.profile, cfg, device, root, seed)
