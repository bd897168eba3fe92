#!/usr/bin/env bash
# The prepared command of a GPU lease (issue 9): the paper-protocol rows of Table 1 (k-means on
# pixels, DECS, DEC; seeds 0 1 2) on a GPU, most valuable cell first, stopped cleanly before the
# lease ends. A lease is 15 minutes of device time in all (start-up and transfers included), one
# upload of at most 64 MiB (git-tracked files + the carried .device/), and at most 8 files back.
#
# 1. Here, before the lease:  bash benchmarks/device_table1.sh prepare usps mnist-test mnist
#    (copies those datasets' files into .device/data/, prints the upload size, fails over 64 MiB).
#    Fashion-MNIST (30 MB of data) goes alone, in another lease:  ... prepare fashion-mnist
#    A previous lease's checkpoints.tar (and records.tar.gz) in .device/resume/ are resumed.
# 2. The device call, first thing (one call; give_back right after it):
#      run(command="bash benchmarks/device_table1.sh run --deadline 480", carry=[".device"], timeout_s=540)
#    If status says budget_left_s is under 780, lower both: --deadline (budget_left_s - 300), timeout_s 60 more.
#    The queue packs every minute as well, so even a command cut short returns what it finished.
# 3. Back here, with files_at the folder the reply names:
#      tar -xzf <files_at>/records.tar.gz -C results      # new records (+ seed 0's model files, USPS only): commit them
#      mkdir -p .device/resume && cp <files_at>/checkpoints.tar .device/resume/   # unfinished runs, for the next lease
#    Read <files_at>/summary.json (per job: status, wall time, ACC/NMI, steps/s) and log.txt.
#
# Modes:
#   prepare DATASET...   (here) copy the datasets' files from DECS_DATA or ../shared/data into .device/data/
#   run [ARGS]           (on the device) DECS_DATA=.device/data DECS_CHECKPOINTS=.device/checkpoints
#                        PYTHONPATH=. python benchmarks/device_queue.py --out $OUT [ARGS]
#                        (ARGS: see python benchmarks/device_queue.py --help)
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT=$((64 * 1024 * 1024))

python_here() {  # the project's venv here; plain python3 on the device (nothing is installed there)
    if [ -n "${PY:-}" ]; then echo "$PY"
    elif [ -x .venv/bin/python ]; then echo .venv/bin/python
    elif command -v python3 >/dev/null; then command -v python3
    else command -v python; fi
}

bytes_of() {  # total size of the files listed on stdin (NUL-separated); missing ones count 0
    xargs -0 -r stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}'
}

mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }

prepare() {
    if [ $# -eq 0 ]; then
        echo "usage: $0 prepare DATASET...   (e.g. usps mnist-test mnist, or fashion-mnist alone)" >&2; exit 2
    fi
    local src="${DECS_DATA:-../shared/data}" py
    py=$(python_here)
    if [ ! -d "$src" ]; then
        echo "no data folder at $src: set DECS_DATA to the folder holding usps/, mnist/, fashion_mnist/." >&2; exit 1
    fi
    for stale in .device/checkpoints .device/results; do
        if [ -e "$stale" ]; then
            echo "$stale exists (a local run's?): it would travel and be used on the device. Remove it;" \
                 "put a lease's checkpoints.tar into .device/resume/ instead." >&2; exit 1
        fi
    done
    # the files each dataset needs, as decs.data names them (mnist-test needs only MNIST's t10k files)
    local files
    files=$(PYTHONPATH=. "$py" -c 'import sys
from decs import data
try:
    names = [data.canonical_name(n) for n in sys.argv[1:]]
except ValueError as e:
    sys.exit(str(e))
print("\n".join(sorted({f.path for n in names for f in data.DATASETS[n].files})))' "$@")
    rm -rf .device/data
    mkdir -p .device/data
    while IFS= read -r f; do
        if [ ! -f "$src/$f" ]; then echo "missing $src/$f: see data/README.md" >&2; exit 1; fi
        mkdir -p ".device/data/$(dirname "$f")"
        cp "$src/$f" ".device/data/$f"
    done <<< "$files"
    PYTHONPATH=. "$py" -c 'import sys
from decs import data
bad = [n for n in sys.argv[1:] if not data.is_available(n, root=".device/data")]
sys.exit(f"not usable from .device/data (checksums?): {bad}" if bad else 0)' "$@"
    # the code that travels is this working tree: note its commit (records made on a copy without
    # .git say "commit": null; summary.json then carries this instead)
    { git rev-parse HEAD; git status --porcelain --untracked-files=no; } > .device/commit.txt
    local tracked device total
    tracked=$(git ls-files -z --cached --others --exclude-standard | bytes_of)
    device=$(find .device -type f -print0 | bytes_of)
    total=$((tracked + device))
    echo "datasets in .device/data: $*"
    find .device -type f -printf '  %10s  %p\n' | sort -k2
    echo "upload: git files $(mib "$tracked") + .device $(mib "$device") = $(mib "$total") (limit 64 MiB)"
    if [ "$total" -gt "$LIMIT" ]; then
        echo "over the 64 MiB a device call carries: split the datasets over leases (e.g. 'prepare usps mnist-test mnist'," \
             "then 'prepare fashion-mnist' for another), or leave out .device/resume." >&2
        exit 1
    fi
    echo 'now: run(command="bash benchmarks/device_table1.sh run --deadline 480", carry=[".device"], timeout_s=540)'
}

run_queue() {
    export DECS_DATA="$PWD/.device/data" DECS_CHECKPOINTS="$PWD/.device/checkpoints"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    local resume=()
    if [ -f .device/resume/checkpoints.tar ] || [ -f .device/resume/records.tar.gz ]; then
        resume=(--resume-from .device/resume)
    fi
    exec "$(python_here)" benchmarks/device_queue.py --out "${OUT:?OUT is not set: the device tool sets it; here give OUT=/some/empty/folder}" \
        ${resume[@]+"${resume[@]}"} "$@"
}

case "${1:-}" in
    prepare) shift; prepare "$@" ;;
    run) shift; run_queue "$@" ;;
    *) echo "usage: $0 prepare DATASET... | run [device_queue.py args]   (see the comment at the top)" >&2; exit 2 ;;
esac
