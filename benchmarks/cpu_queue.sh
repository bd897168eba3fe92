#!/usr/bin/env bash
# The paper-protocol rows a 2-core machine can afford, one run at a time, each skipped when its
# record exists and continued from its checkpoints (--resume) when an earlier session stopped it.
# Start it in the background at the beginning of a session:
#   nohup bash benchmarks/cpu_queue.sh > logs/cpu_queue.log 2>&1 &
# USPS takes about an hour per seed on 2 quiet cores, MNIST-test about two; commit the records
# (and seed 0's model files) as they appear.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if [ -z "${DECS_DATA:-}" ] && [ -d ../shared/data ]; then export DECS_DATA="$(cd ../shared/data && pwd)"; fi
for job in "usps 0" "usps 1" "usps 2" "mnist-test 0" "mnist-test 1" "mnist-test 2"; do
    set -- $job
    echo "[cpu_queue] $(date -u +%FT%TZ) $1 seed $2"
    # model files only for USPS: one seed's networks take 7 MB, and results/ may take 30 MB in all
    files=none; [ "$1" = usps ] && files=auto
    "$PY" -m decs reproduce --dataset "$1" --profile paper --seeds "$2" --model-files "$files" --skip-done --resume --quiet
done
echo "[cpu_queue] $(date -u +%FT%TZ) done"
