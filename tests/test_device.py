"""How fast the machine could be: the CPU read from /proc/cpuinfo, its float32 peak, and the
operations a pretraining step does (decs.provenance.cpu_info, decs.device.fp32_peak and
pretrain_step_flops; book/reproducibility)."""
import pytest
import torch

from decs.device import fp32_peak, pretrain_step_flops
from decs.provenance import cpu_info

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9554 64-Core Processor
cpu MHz\t\t: 3100.000
flags\t\t: fpu sse avx2 avx512f avx512bw

processor\t: 1
vendor_id\t: AuthenticAMD
"""


def test_cpu_info_reads_the_first_processor_and_the_peak_is_cores_clock_flop_per_cycle(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text(CPUINFO)
    cpu = cpu_info(str(f))
    assert cpu == {"name": "AMD EPYC 9554 64-Core Processor", "vendor": "AuthenticAMD", "family": 25,
                   "model": 17, "avx512": True, "mhz": 3100.0}
    peak = fp32_peak(cpu, cores=2)
    assert peak["gflops"] == pytest.approx(2 * 3.1 * 32) and "2 cores × 3.10 GHz × 32" in peak["how"]
    assert fp32_peak({**cpu, "vendor": "GenuineIntel"}, 2) is None     # not listed: unknown, not guessed
    assert fp32_peak({k: v for k, v in cpu.items() if k != "mhz"}, 2) is None
    assert cpu_info(str(tmp_path / "missing")) == {}


def test_a_step_counts_the_forward_pass_and_the_gradients_the_backward_pass_computes():
    # a convolution of C_in → C_out channels, k × k, on B images of H × W (same size out) does
    # 2·B·H·W·C_in·C_out·k² operations forward; backward, as many for the weights' gradient and, for
    # every layer but the first (whose input needs none), as many again for the input's
    b, h, w = 4, 8, 8
    one = torch.nn.Conv2d(1, 3, 3, padding=1, bias=False)
    two = torch.nn.Conv2d(3, 1, 3, padding=1, bias=False)
    fwd = [2 * b * h * w * 1 * 3 * 9, 2 * b * h * w * 3 * 1 * 9]
    flops = pretrain_step_flops(torch.nn.Sequential(one, two), torch.rand(b, 1, h, w))
    assert flops == (fwd[0] + fwd[1]) + (fwd[0]) + (2 * fwd[1])
    assert one.weight.grad is None and two.weight.grad is None        # cleared afterwards
