#!/usr/bin/env bash
# The long runs two CPU cores afford, started first thing whenever work starts: two lanes, one
# one-thread job each, every run skipped when its record exists and continued from its checkpoints
# (--resume) when an earlier session stopped it. It first prints how far each run is
# (benchmarks/queue_status.py: epochs and iterations done, seconds per epoch so far).
#   nohup bash benchmarks/cpu_queue.sh > logs/cpu_queue.log 2>&1 &
# Lane A (issue 26, chance or cause): draws of the authors' code at USPS 200 epochs / 3,000
#   iterations, one per seed of their set_seed() (benchmarks/authors_tf.py through its harness), then
#   their code on MNIST-test at 200 / 3,000 and at the protocol, 500 / 20,000 (the network kept, so a
#   clustering stopped by the session's end can be rerun from it). It needs their code and a
#   TensorFlow environment: AUTHORS_CODE=<their DECS/ folder> and TF_PYTHON=<that environment's
#   python> (benchmarks/authors_tf.py's docstring says how), else it is skipped. Their pretrained
#   weights are kept in $KEEP_WEIGHTS (default ../authors-weights).
# Lane B: their MNIST-test 200-epoch network in our loop (seeds 0-2, when $THEIR_MNIST_TEST names it:
#   benchmarks/authors_tf_weights.py --to-ours --dataset mnist-test), draws of ours at the USPS cpu
#   length (seeds 3-9), then HaDis at its paper length on USPS (issue 27), then MNIST-test at the
#   protocol, seeds 1 and 2.
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
        say "lane A skipped: set AUTHORS_CODE and TF_PYTHON to run the authors' draws"; return
    fi
    for seed in 1 2 3 4 5 6 7 8 9; do theirs usps 200 3000 "results/authors-tf/usps/e200-i3000-seed$seed.json" "$seed"; done
    theirs mnist-test 200 3000 results/authors-tf/mnist-test/e200-i3000.json
    theirs mnist-test 500 20000 results/authors-tf/mnist-test/e500-i20000.json
}
lane_b() {
    if [ -n "${THEIR_MNIST_TEST:-}" ]; then
        for seed in 0 1 2; do run train --dataset mnist-test --profile cpu --seed "$seed" --method decs \
            --start-from "$THEIR_MNIST_TEST"; done
    fi
    for seed in 3 4 5 6 7 8 9; do run train --dataset usps --profile cpu --seed "$seed" --method decs; done
    run train --dataset usps --profile paper --seed 0 --method hadis
    for seed in 1 2; do run reproduce --dataset mnist-test --profile paper --seeds "$seed" --model-files none; done
}
[ -n "${DRY_RUN:-}" ] || "$PY" benchmarks/queue_status.py
lane_a & lane_b & wait
say "done"
