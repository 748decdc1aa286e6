#!/bin/sh
# Benchmark the machine against QEMU (-M microvm and -M pc) with the same PVH test guest.
# Usage: bench/machine_bench.sh [--runs N] [--exits N] [--no-pc]
# Ours is the release `vmm` binary (QEMU-style command line); VMM=path/to/vmm picks another one.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
make -s -C "$ROOT/guests" OUT="$TARGET/guests"
if [ -n "${VMM:-}" ]; then
    OURS="$VMM"
else
    cargo build -q --release -p vmm --bin vmm --manifest-path "$ROOT/Cargo.toml"
    OURS="$TARGET/release/vmm"
fi
exec python3 "$ROOT/bench/machine_bench.py" --ours "$OURS" --kernel "$TARGET/guests/testguest-pvh.elf" "$@"
