#!/bin/sh
# Benchmark the machine against QEMU (-M microvm and -M pc) with the same PVH test guest.
# Usage: bench/machine_bench.sh [--runs N] [--exits N] [--no-pc]
# VMM=path/to/vmm selects the vmm binary (QEMU-style command line); without it the machine's own
# driver (vmm/examples/run_guest.rs, release build) is used.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
make -s -C "$ROOT/guests" OUT="$TARGET/guests"
if [ -n "${VMM:-}" ]; then
    OURS="$VMM"
else
    cargo build -q --release -p vmm --example run_guest --manifest-path "$ROOT/Cargo.toml"
    OURS="$TARGET/release/examples/run_guest"
fi
exec python3 "$ROOT/bench/machine_bench.py" --ours "$OURS" --kernel "$TARGET/guests/testguest-pvh.elf" "$@"
