#!/usr/bin/env bash
# QMP benchmark: vmm against qemu-system-x86_64, same arguments, same client, one run.
# Prints each figure and its ratio against QEMU, and the issue's targets:
#   sequential query-status p50 <= 0.25x QEMU; pipelined throughput >= 10x QEMU;
#   10,000 clients connected at once with p99 <= 5 ms (QEMU serves one client per socket).
# Usage: bench/monitor_bench.sh [--n 5000] [--pipeline 2000] [--swarm 10000]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=5000; pipeline=2000; swarm=10000
while [ $# -gt 0 ]; do
  case "$1" in
    --n) n=$2; shift 2;; --pipeline) pipeline=$2; shift 2;; --swarm) swarm=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 missing (scripts/setup.sh installs it)" >&2; exit 1; }
cargo build --release -q -p vmm -p proto-tests --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/release"
tmp=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
args=(-machine none -nodefaults -display none -S)
"$bin/vmm" "${args[@]}" -qmp "unix:$tmp/vmm.sock,server=on,wait=off" 2>/dev/null &
qemu-system-x86_64 "${args[@]}" -qmp "unix:$tmp/qemu.sock,server=on,wait=off" 2>/dev/null &
gcc -O2 -o "$tmp/floor" "$root/bench/qmp_floor.c"
"$tmp/floor" "$tmp/floor.sock" >/dev/null 2>&1 &
for s in vmm qemu floor; do for _ in $(seq 100); do [ -S "$tmp/$s.sock" ] && break; sleep 0.05; done; done
bench() { python3 "$root/bench/qmp_bench.py" "unix:$tmp/$1.sock" --n "$n" --pipeline "$pipeline" --clients 4 --per-client 500 --hmp 500 2>/dev/null; }
bench vmm > "$tmp/vmm.json"; bench qemu > "$tmp/qemu.json"; bench floor > "$tmp/floor.json" || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# The same round trips from a compiled client, whose own cost is small enough to show the servers'.
for s in vmm qemu floor; do
  "$bin/qmp-swarm" "unix:$tmp/$s.sock" --clients 1 --active 1 --per-client "$n" > "$tmp/rust-$s.json"
done
"$bin/qmp-swarm" "unix:$tmp/vmm.sock" --clients "$swarm" --active 10 --per-client 1000 > "$tmp/swarm.json"
python3 - "$tmp" <<'PY'
import json, sys
d = sys.argv[1]
v, q = json.load(open(f"{d}/vmm.json")), json.load(open(f"{d}/qemu.json"))
try: f = json.load(open(f"{d}/floor.json"))
except Exception: f = None
s = json.load(open(f"{d}/swarm.json"))
def row(name, a, b, unit, target, better_low):
    r = a / b if b else float("nan")
    ok = (r <= target) if better_low else (r >= target)
    print(f"{name:<34}{a:>12.1f}{b:>12.1f} {unit:<7}{r:>8.2f}x  target {'<=' if better_low else '>='} {target}x  {'ok' if ok else 'MISSED'}")
print(f"{'':<34}{'vmm':>12}{'qemu':>12}")
row("sequential query-status p50", v["seq"]["p50_us"], q["seq"]["p50_us"], "us", 0.25, True)
row("sequential query-status p99", v["seq"]["p99_us"], q["seq"]["p99_us"], "us", 1.0, True)
row("pipelined throughput", v["pipeline"]["cmds_per_s"], q["pipeline"]["cmds_per_s"], "cmd/s", 10, False)
row("human-monitor-command p50", v["hmp"]["p50_us"], q["hmp"]["p50_us"], "us", 1.0, True)
rv, rq, rf = (json.load(open(f"{d}/rust-{x}.json")) for x in ("vmm", "qemu", "floor"))
row("seq p50, compiled client", rv["rtt_p50_us"], rq["rtt_p50_us"], "us", 0.25, True)
row("seq p99, compiled client", rv["rtt_p99_us"], rq["rtt_p99_us"], "us", 1.0, True)
fl = rf["rtt_p50_us"]
row("server cost over floor, p50", max(rv["rtt_p50_us"] - fl, 0.1), max(rq["rtt_p50_us"] - fl, 0.1), "us", 0.25, True)
print(f"4 clients at once: vmm served them {'together' if not v['concurrent']['serialized'] else 'one after another'}, "
      f"qemu {'together' if not q['concurrent']['serialized'] else 'one after another'}")
if f: print(f"floor (canned C server, same client): seq p50 {f['seq']['p50_us']} us, pipelined {f['pipeline']['cmds_per_s']:.0f} cmd/s; compiled client p50 {fl:.1f} us")
ok = s["connected"] == s["clients"] and s["rtt_p99_us"] <= 5000
print(f"{s['clients']} clients connected at once: {s['connected']} negotiated, errors {s['errors']}; "
      f"query-status from {s['active']} of them: p50 {s['rtt_p50_us']:.0f} us, p99 {s['rtt_p99_us']:.0f} us "
      f"(target p99 <= 5000 us: {'ok' if ok else 'MISSED'}); QEMU: one client per socket")
PY
