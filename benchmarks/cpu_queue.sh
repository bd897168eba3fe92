#!/usr/bin/env bash
# The long runs two CPU cores afford, started first thing whenever work starts: two lanes, one
# one-thread job each, every run skipped when its record exists and continued from its checkpoints
# (--resume) when an earlier session stopped it. It first prints how far each run is
# (benchmarks/queue_status.py: epochs and iterations done, seconds per epoch so far).
#   nohup bash benchmarks/cpu_queue.sh > logs/cpu_queue.log 2>&1 &
# Run it from a checkout nobody edits while it runs (a run imports parts of the package late), and
# keep that checkout between sessions: its checkpoints/ folder is what a run resumes from. Each
# checkpoint keeps the commits of the code that trained it, and a record lists them per part
# (environment.commits): a part resumed under a newer commit warns and names both, so move the
# checkout to a newer commit between parts (after a pretraining, before its clustering) where you can.
# Issue 26 (chance or cause) is settled by the draws already committed: the authors' code at USPS
# 200 epochs / 3,000 iterations, set_seed(1..4) beside their own 2333 (lane A repeats them only
# where a record is missing; AUTHORS_CODE=<their DECS/ folder> and TF_PYTHON=<a TensorFlow
# environment's python>, benchmarks/authors_tf.py's docstring says how), and the MNIST-test swaps
# (lane B, when $THEIR_MNIST_TEST names their network in our format). Their code at MNIST-test's
# protocol (500 / 20,000) is not queued: it cannot checkpoint, and its pretraining alone (~3 h on
# one thread here) or its clustering (~7 h) is longer than a session.
# Then the protocol rows, `paper` profile unchanged (issues 26 and 27), each k-means on pixels, DECS
# and DEC from one pretraining: lane A MNIST-test seed 2, Fashion-MNIST seed 0, then HaDis at its
# paper length on USPS; lane B MNIST-test seed 1, then MNIST seed 0.
# DRY_RUN=1 prints the commands instead of running them. Commit records as they appear (then
# python tools/sync_results_manifest.py).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if [ -z "${DECS_DATA:-}" ] && [ -d ../shared/data ]; then export DECS_DATA="$(cd ../shared/data && pwd)"; fi
export OMP_NUM_THREADS=1
say() { echo "[cpu_queue] $(date -u +%FT%TZ) $*"; }
run() {  # python -m decs ... (skips a run whose record exists, resumes one with checkpoints)
    if [ -n "${DRY_RUN:-}" ]; then echo "python -m decs $*"; return; fi
    say "$*"; "$PY" -m decs "$@" --skip-done --resume --quiet || say "failed ($?): $*"
}
theirs() {  # one run of the authors' code: dataset, epochs, iterations, the record to write, then
            # the seed of their set_seed() (none: their own 2333)
    local ds=$1 epochs=$2 iters=$3 out=$4 seed=${5:-}
    if [ -e "$out" ]; then say "done: $out"; return; fi
    if [ -n "${DRY_RUN:-}" ]; then echo "python benchmarks/authors_tf.py --dataset $ds ${seed:+--seed $seed} ... --out $out"; return; fi
    say "authors' code, $ds ${seed:+seed $seed} -> $out"
    "$PY" benchmarks/authors_tf.py --code "$AUTHORS_CODE" --commit "${AUTHORS_COMMIT:-85f2586deb5a376383a915a772f4fa927e56d0c4}" --python "$TF_PYTHON" --dataset "$ds" ${seed:+--seed "$seed"} \
        --pretrain-epochs "$epochs" --maxiter "$iters" --threads 1 --out "$out" \
        --keep-weights "${KEEP_WEIGHTS:-../authors-weights}/$ds" || say "failed ($?): $out"
}
lane_a() {
    if [ -z "${AUTHORS_CODE:-}" ] || [ -z "${TF_PYTHON:-}" ]; then
        say "lane A: the authors' draws skipped (set AUTHORS_CODE and TF_PYTHON to repeat a missing one)"
    else
        for seed in 1 2 3 4; do theirs usps 200 3000 "results/authors-tf/usps/e200-i3000-seed$seed.json" "$seed"; done
    fi
    run reproduce --dataset mnist-test --profile paper --seeds 2 --model-files none
    run reproduce --dataset fashion-mnist --profile paper --seeds 0 --model-files none
    run train --dataset usps --profile paper --seed 0 --method hadis
}
lane_b() {
    if [ -n "${THEIR_MNIST_TEST:-}" ]; then
        for seed in 0 1 2; do run train --dataset mnist-test --profile cpu --seed "$seed" --method decs \
            --start-from "$THEIR_MNIST_TEST"; done
    fi
    run reproduce --dataset mnist-test --profile paper --seeds 1 --model-files none
    run reproduce --dataset mnist --profile paper --seeds 0 --model-files none
}
[ -n "${DRY_RUN:-}" ] || "$PY" benchmarks/queue_status.py
lane_a & lane_b & wait
say "done"
