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
# (lane B, when $THEIR_MNIST_TEST names their network in our format).
# Their code at MNIST-test's protocol (500 / 20,000) goes first, before both lanes, on both cores:
# it cannot checkpoint, so each of its two processes must run whole within a session, and on two
# threads each fits (the 500-epoch pretraining took 9.0 s/epoch, 76 min; the clustering is
# estimated at 0.3 s/iteration, about 100 min). The pretraining keeps its network
# ($KEEP_WEIGHTS/mnist-test/e500-i1-ae_weights.h5, one clustering step so that the record holds the
# k-means start); their main.py then clusters 20,000 iterations from it, and our loop clusters from
# the same network (lane A, converted by benchmarks/authors_tf_weights.py --to-ours).
# Then the protocol rows, `paper` profile unchanged (issues 26 and 27), each k-means on pixels, DECS
# and DEC from one pretraining: lane A HaDis at its paper length on USPS first (the shortest run
# left: 5 h on one core of an AVX2-only machine, where an MNIST-test row takes 8-12 h, so the first
# to finish while sessions are 3 h and a machine may be replaced between them, losing every
# checkpoint), then their 500-epoch network in our loop, Fashion-MNIST seed 0 (issue 27's row),
# MNIST-test seed 2 (issue 26, blocked: its last seed), HaDis on MNIST-test at its paper length;
# lane B MNIST-test seed 1 (well under way), then MNIST seed 0. queue_status prints the hours each
# checkpointed stage has left at its own rate.
# One thread per job gives the most epochs per hour. Measured on this AVX2-only machine with the
# queue paused (MNIST-test pretraining, benchmarks/speed.py, results/benchmarks/cpu-*-avx2.json):
# one job on two threads 14.3 s/epoch, on one thread alone 28.8, two one-thread jobs side by side
# 24.9 and 26.1 each: 0.078 epochs/s for the pair against 0.070 for the two-thread job. A run
# that must end within the session (a process dies with it) can take both cores alone instead:
# stop the queue, run its command with OMP_NUM_THREADS=2 and --resume (HaDis on USPS here:
# 12.2 s/epoch against 21.4 on one thread), and
# leave the machine otherwise idle: beside a third process the two threads wait on each other (it
# fell to about 90 s/epoch while one-thread tests ran). Records say which processes ran on how many
# threads (wall_time_s.threads). The pretraining checkpoint is written every 10 epochs and every
# 10 minutes (decs.train.SAVE_EVERY_S), so an ended process loses little of a 70,000-image epoch.
# DRY_RUN=1 prints the commands instead of running them. Commit records as they appear (then
# python tools/sync_results_manifest.py).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
# a new machine has no environment yet: make one first (make install: a few minutes), not a failed run per lane
if [ -z "${DRY_RUN:-}" ] && [ "$PY" = .venv/bin/python ] && [ ! -x "$PY" ]; then
    echo "[cpu_queue] no .venv here: make install"; make install || exit 1
fi
if [ -z "${DECS_DATA:-}" ] && [ -d ../shared/data ]; then export DECS_DATA="$(cd ../shared/data && pwd)"; fi
export OMP_NUM_THREADS=1
AUTHORS_COMMIT=${AUTHORS_COMMIT:-85f2586deb5a376383a915a772f4fa927e56d0c4}
KEEP=${KEEP_WEIGHTS:-../authors-weights}              # their kept networks, outside the repository
THEIRS_E500="$KEEP/mnist-test/theirs-e500.pt"           # ... and the 500-epoch one in our format
say() { echo "[cpu_queue] $(date -u +%FT%TZ) $*"; }
run() {  # python -m decs ... (skips a run whose record exists, resumes one with checkpoints)
    if [ -n "${DRY_RUN:-}" ]; then echo "python -m decs $*"; return; fi
    say "$*"; "$PY" -m decs "$@" --skip-done --resume --quiet || say "failed ($?): $*"
}
theirs() {  # one run of the authors' code: dataset, epochs, iterations, the record to write, the
            # seed of their set_seed() ("" for their own 2333), threads (1 unless given)
    local ds=$1 epochs=$2 iters=$3 out=$4 seed=${5:-} threads=${6:-1}
    if [ -e "$out" ]; then say "done: $out"; return; fi
    if [ -n "${DRY_RUN:-}" ]; then echo "python benchmarks/authors_tf.py --dataset $ds ${seed:+--seed $seed} --threads $threads ... --out $out"; return; fi
    say "authors' code, $ds ${seed:+seed $seed} -> $out"
    "$PY" benchmarks/authors_tf.py --code "$AUTHORS_CODE" --commit "$AUTHORS_COMMIT" --python "$TF_PYTHON" --dataset "$ds" ${seed:+--seed "$seed"} \
        --pretrain-epochs "$epochs" --maxiter "$iters" --threads "$threads" --out "$out" \
        --keep-weights "$KEEP/$ds" || say "failed ($?): $out"
}
theirs_protocol() {  # their MNIST-test at 500 / 20,000: pretraining, then clustering from its network
    local pre=results/authors-tf/mnist-test/e500-i1.json out=results/authors-tf/mnist-test/e500-i20000.json
    local weights="$KEEP/mnist-test/e500-i1-ae_weights.h5" from="their run_exp.py, 500 epochs, set_seed(2333) ($pre)"
    theirs mnist-test 500 1 "$pre" "" 2
    if [ -e "$out" ]; then say "done: $out"
    elif [ -n "${DRY_RUN:-}" ]; then echo "python benchmarks/authors_tf.py --dataset mnist-test --pretrained-weights $weights --threads 2 ... --out $out"
    elif [ ! -e "$weights" ]; then say "no $weights: their MNIST-test clustering skipped"
    else
        say "authors' code, mnist-test clustering from $weights -> $out"
        "$PY" benchmarks/authors_tf.py --code "$AUTHORS_CODE" --commit "$AUTHORS_COMMIT" --python "$TF_PYTHON" \
            --dataset mnist-test --pretrained-weights "$weights" --maxiter 20000 --threads 2 --out "$out" \
            --weights-from "$from" || say "failed ($?): $out"
    fi
    if [ -z "${DRY_RUN:-}" ] && [ -e "$weights" ] && [ ! -e "$THEIRS_E500" ]; then
        "$TF_PYTHON" benchmarks/authors_tf_weights.py --code "$AUTHORS_CODE" --to-ours --dataset mnist-test \
            --keras-weights "$weights" --from "$from" \
            --out "$THEIRS_E500" || say "failed ($?): converting $weights"
    fi
}
lane_a() {
    if [ -z "${AUTHORS_CODE:-}" ] || [ -z "${TF_PYTHON:-}" ]; then
        say "lane A: the authors' draws skipped (set AUTHORS_CODE and TF_PYTHON to repeat a missing one)"
    else
        for seed in 1 2 3 4; do theirs usps 200 3000 "results/authors-tf/usps/e200-i3000-seed$seed.json" "$seed"; done
    fi
    run train --dataset usps --profile paper --seed 0 --method hadis
    if [ -n "${DRY_RUN:-}" ] || [ -e "$THEIRS_E500" ]; then   # their 500-epoch network in our loop
        run train --dataset mnist-test --profile paper --seed 0 --method decs --start-from "$THEIRS_E500"
    fi
    # issue 27's rows before issue 26's last seed: Fashion-MNIST seed 0, then MNIST-test seed 2
    run reproduce --dataset fashion-mnist --profile paper --seeds 0 --model-files none
    run reproduce --dataset mnist-test --profile paper --seeds 2 --model-files none
    # HaDis at its paper length on MNIST-test (issue 27, item 5, after USPS): 28x28 digits, about
    # three times USPS's work per image, so about 17 h on one thread here; after the DECS rows
    run train --dataset mnist-test --profile paper --seed 0 --method hadis
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
if [ -n "${AUTHORS_CODE:-}" ] && [ -n "${TF_PYTHON:-}" ]; then theirs_protocol
else say "their MNIST-test protocol skipped (set AUTHORS_CODE and TF_PYTHON)"; fi
lane_a & lane_b & wait
say "done"
