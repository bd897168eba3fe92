"""The numerical checks of Theorem 1 (book chapter ``book/theorem1``), written as JSON.

    python benchmarks/theory_sweep.py --profile cpu        # the committed results (~25 min, 2 cores)
    python benchmarks/theory_sweep.py --profile ci --out /tmp/theory   # a one-minute smoke test

Writes ``<out>/sweep_<profile>.json`` (random admissible inputs, the exact envelope for one
embedding, the certified α-dependent bound, adversarial searches, batch-size scaling, the
encoder, convergence runs) and, except under ``ci``, the counterexamples
``<out>/counterexamples/*.npz`` that ``tests/test_theory.py`` reloads. The JSON records the
command, seed, git commit, hardware and wall time.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from decs.paths import REPO_ROOT, record_command
from decs.provenance import environment_info
from decs.theory import run_sweep, write_json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", choices=("ci", "cpu", "paper"), default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(REPO_ROOT / "results" / "theory"))
    p.add_argument("--threads", type=int, default=1, help="torch threads (small tensors: 1 is fastest)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    cdir = None if args.profile == "ci" else out / "counterexamples"
    result = run_sweep(args.profile, args.seed, counterexample_dir=cdir,
                       log=lambda s: print(s, file=sys.stderr, flush=True))
    meta = {"command": record_command("python", sys.argv), "profile": args.profile, "seed": args.seed,
            "started_utc": started, "wall_s": round(time.perf_counter() - t0, 1),
            "environment": environment_info(torch.device("cpu"))}
    write_json({"meta": meta, **result}, out / f"sweep_{args.profile}.json")
    print(f"wrote {out / f'sweep_{args.profile}.json'} in {meta['wall_s']} s")


if __name__ == "__main__":
    main()
