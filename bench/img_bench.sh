#!/usr/bin/env bash
# vmm-img against qemu-img on the same files in the same run.
#
# A 1 GiB qcow2 image holding 256 MiB of data, and a 2-layer chain (the same image as
# base plus an overlay with 64 MiB of its own). For each operation both tools run on
# fresh copies of the same input, alternating, best of $REPS runs each; the ratio is qemu-img time divided
# by vmm-img time (> 1 means vmm-img is faster).
#
# Usage: bench/img_bench.sh [workdir]     (REPS=5 by default; needs qemu-img, qemu-io)
set -euo pipefail

REPS=${REPS:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$(mktemp -d /tmp/img-bench.XXXXXX)}
mkdir -p "$WORK"
command -v qemu-img >/dev/null || { echo "qemu-img is required (Debian package qemu-utils)" >&2; exit 1; }
command -v qemu-io >/dev/null || { echo "qemu-io is required (Debian package qemu-utils)" >&2; exit 1; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build -q --release -p vmm --bin vmm-img)
VMM_IMG="$CARGO_TARGET_DIR/release/vmm-img"

cd "$WORK"
echo "preparing images in $WORK ..."
if [ ! -f src.qcow2 ]; then
    qemu-img create -q -f qcow2 src.qcow2 1G
    # 256 x 1 MiB of data spread over the disk, each with its own pattern
    cmds=()
    for i in $(seq 0 255); do
        cmds+=(-c "write -P $(( (i % 250) + 1 )) $(( i * 4 ))M 1M")
    done
    qemu-io "${cmds[@]}" src.qcow2 >/dev/null
    qemu-img convert -f qcow2 -O raw src.qcow2 src.raw
    cp src.qcow2 base.qcow2
    qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
    cmds=()
    for i in $(seq 0 63); do
        cmds+=(-c "write -P $(( (i % 200) + 17 )) $(( i * 16 + 2 ))M 1M")
    done
    qemu-io "${cmds[@]}" top.qcow2 >/dev/null
    cp base.qcow2 base.orig; cp top.qcow2 top.orig
fi
sync

now() { date +%s.%N; }

# time_cmd SETUP CMD...: runs SETUP (untimed), then CMD timed; prints seconds.
time_cmd() {
    local setup=$1; shift
    eval "$setup"
    sync
    local t0 t1
    t0=$(now)
    "$@" >/dev/null
    t1=$(now)
    echo "$t1 - $t0" | bc -l
}

min() { if [ -z "$1" ] || (( $(echo "$2 < $1" | bc -l) )); then echo "$2"; else echo "$1"; fi; }

reset_chain='cp base.orig base.qcow2; cp top.orig top.qcow2'
clean_out='rm -f out.raw out.qcow2'

printf "%-28s %12s %12s %10s %14s\n" "operation" "qemu-img s" "vmm-img s" "ratio" "vmm MiB/s"
run() { # run NAME MIB SETUP ARGS...: the tools alternate, best of $REPS each
    local name=$1 mib=$2 setup=$3; shift 3
    local q="" v="" t
    for _ in $(seq "$REPS"); do
        t=$(time_cmd "$setup" qemu-img "$@"); q=$(min "$q" "$t")
        t=$(time_cmd "$setup" "$VMM_IMG" "$@"); v=$(min "$v" "$t")
    done
    printf "%-28s %12.3f %12.3f %9.2fx %14.0f\n" "$name" "$q" "$v" \
        "$(echo "$q / $v" | bc -l)" "$(echo "$mib / $v" | bc -l)"
}

run "convert qcow2->raw"       256 "$clean_out" convert -f qcow2 -O raw src.qcow2 out.raw
run "convert raw->qcow2"       256 "$clean_out" convert -f raw -O qcow2 src.raw out.qcow2
run "commit (2-layer chain)"    64 "$reset_chain" commit -f qcow2 top.qcow2
run "rebase -b '' (safe)"      256 "$reset_chain" rebase -f qcow2 -b "" top.qcow2
run "check"                    256 "true" check src.qcow2
rm -f out.raw out.qcow2
