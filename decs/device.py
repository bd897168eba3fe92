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


# ------------------------------------------------------------------ how fast it could be
#: Float32 operations one core can finish per clock cycle (a fused multiply-add counts as 2), by
#: (vendor, family, lowest model, highest model): AMD's Zen 2, Zen 3 and Zen 4 cores have two
#: 256-bit FMA pipes, 2 pipes × 8 lanes × 2 = 32 (Zen 4 runs AVX-512 as two 256-bit halves, so the
#: same). Other CPUs are not listed: their peak is reported as unknown rather than guessed.
FP32_FLOP_PER_CYCLE = {("AuthenticAMD", 23, 0x30, 0xFF): ("Zen 2", 32),
                       ("AuthenticAMD", 25, 0x00, 0xFF): ("Zen 3 / Zen 4", 32)}


def fp32_peak(cpu: dict, cores: int) -> dict | None:
    """The float32 peak of ``cores`` cores of the CPU :func:`decs.provenance.cpu_info` described:
    cores × clock × FLOP per cycle (:data:`FP32_FLOP_PER_CYCLE`), in GFLOP/s, with how it was
    worked out; None when the microarchitecture is not listed or no clock was reported. The clock
    is the one the kernel reports (in a virtual machine, the nominal one): a core that boosts
    above it has a higher peak, so a share of this peak is an upper bound. :doc:`/book/reproducibility`."""
    for (vendor, family, low, high), (arch, per_cycle) in FP32_FLOP_PER_CYCLE.items():
        if (cpu.get("vendor"), cpu.get("family")) == (vendor, family) and low <= cpu.get("model", -1) <= high \
                and cpu.get("mhz"):
            ghz = cpu["mhz"] / 1000
            return {"gflops": cores * ghz * per_cycle, "cores": cores, "ghz": ghz, "flop_per_cycle": per_cycle,
                    "microarchitecture": arch,
                    "how": (f"{cores} core{'s' * (cores != 1)} × {ghz:.2f} GHz × {per_cycle} float32 FLOP "
                            f"per cycle ({arch})")}
    return None


def pretrain_step_flops(model: torch.nn.Module, batch: torch.Tensor) -> int:
    """The floating-point operations of one pretraining step on ``batch``: the autoencoder's forward
    pass, the mean-squared error and the backward pass, as PyTorch's ``FlopCounterMode`` counts them —
    the convolutions and matrix products, 2 per multiply-add; the element-wise work (batch norm, ReLU,
    Adam's update) is not counted, so GFLOP/s from it are those of the layers that dominate. The
    gradients it leaves are cleared. :doc:`/book/reproducibility`."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.mse_loss(model(batch), batch).backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())
