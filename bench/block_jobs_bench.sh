#!/usr/bin/env bash
# Block jobs: vmm against QEMU 7.2 (and qemu-img commit) on the same images in one run.
#
# stream, active commit and intermediate commit of SIZE_GIB GiB of data (default 1), each on fresh
# copies of the same images, vmm and qemu-system-x86_64 alternating, best of REPS (default 3); both
# run as `-machine none -nodefaults` with the image on `-drive if=none` and are driven over QMP.
# Then the query-status latency on a second QMP socket, idle and while a stream runs at full
# speed. The ratio is QEMU's time divided by vmm's (> 1: vmm is faster).
#
# Usage: bench/block_jobs_bench.sh [workdir]   (needs qemu-system-x86_64, qemu-img, qemu-io,
#        python3; about 3 GiB free in the work directory)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$(mktemp -d /tmp/blockjobs-bench.XXXXXX)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build -q --release -p vmm --bin vmm)
exec python3 "$ROOT/bench/block_jobs_bench.py" "$CARGO_TARGET_DIR/release/vmm" "$WORK" \
    --reps "${REPS:-3}" --size-gib "${SIZE_GIB:-1}"
