"""How fast the machine could be: the CPU read from /proc/cpuinfo, its float32 peak, and the
operations a pretraining step does (decs.provenance.cpu_info, decs.device.fp32_peak and
pretrain_step_flops; book/reproducibility); and how long a run took, its stops left out
(decs.provenance.RunClock)."""
import signal
import subprocess
import sys
import time

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
                   "model": 17, "avx512": True, "simd": ["avx2", "avx512f"], "mhz": 3100.0}
    peak = fp32_peak(cpu, cores=2)
    assert peak["gflops"] == pytest.approx(2 * 3.1 * 32) and "2 cores × 3.10 GHz × 32" in peak["how"]
    assert fp32_peak(cpu, cores=1)["how"].startswith("1 core × 3.10 GHz")   # one thread: one core
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


CLOCK_CHILD = """
import sys, time
from decs.provenance import RunClock, tick
clock, wall0 = RunClock(earlier=5.0), time.perf_counter()
print("started", flush=True)
for _ in range(300):          # about 1.5 s of steps, however fast the machine
    time.sleep(0.005)
    tick()
print(clock.seconds() - 5.0, time.perf_counter() - wall0, flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs POSIX signals")
def test_a_run_clock_leaves_out_the_time_its_process_was_stopped():
    """decs.provenance.RunClock: a process stopped for 2 s (kill -STOP, then -CONT) in the middle
    of its steps reports its running time, not the wall time: the 2 s (to within a step and the
    scheduler's delays) are missing from its seconds, and nothing else is; `earlier` is added."""
    child = subprocess.Popen([sys.executable, "-c", CLOCK_CHILD], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "started"
    time.sleep(0.3)                    # stopped while stepping: the loop needs at least 1.5 s
    child.send_signal(signal.SIGSTOP)
    time.sleep(2.0)
    child.send_signal(signal.SIGCONT)
    seconds, wall = map(float, child.stdout.readline().split())
    assert child.wait(timeout=60) == 0
    assert wall >= 1.5 + 2.0 and 1.9 <= wall - seconds <= 2.5, (seconds, wall)


def test_a_run_clock_adds_the_seconds_of_earlier_processes():
    from decs.provenance import RunClock

    clock = RunClock(earlier=100.0)
    assert 100.0 <= clock.seconds() < 101.0
