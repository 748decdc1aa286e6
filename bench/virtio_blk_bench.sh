#!/bin/sh
# virtio-blk throughput: ours vs QEMU's virtio-blk-pci, same PVH test guest (action=blkbench),
# same images, in one run. Sequential reads and writes of large requests with several in flight,
# on raw and on qcow2; prints MiB/s and the ratio ours/QEMU for each.
# Usage: bench/virtio_blk_bench.sh [--runs N] [--mb N] [--bs KiB] [--depth N] [--size MiB] [--cases raw-read,...]
# VMM=path/to/vmm selects the vmm binary (default: a release build of this tree).
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
for t in qemu-img qemu-system-x86_64; do
    command -v "$t" >/dev/null || { echo "$t is needed (apt-get install qemu-utils qemu-system-x86)" >&2; exit 1; }
done
exec python3 "$ROOT/bench/virtio_blk_bench.py" --ours "$OURS" --kernel "$TARGET/guests/testguest-pvh.elf" "$@"
