#!/usr/bin/env python3
"""Machine benchmark: our VMM against qemu-system-x86_64 -enable-kvm (-M microvm and -M pc)
with the same PVH test guest, in one run. Prints, per VMM, the median of several runs of:
  first-byte  exec -> first byte of guest UART output
  exit        exec -> process exit after the guest powers off (ACPI S5)
  per-exit    cost of one guest port write (N writes to port 0x80 minus an empty run) / N
  rss         VMM resident set (VmRSS) with the guest halted, beside the guest RAM size
and the ratios ours / QEMU. Targets: start-up <= 0.75x microvm, per-exit <= 1.0x, RSS <= 0.25x.

Usage: machine_bench.py --ours 'CMD...' --kernel guests/out/testguest-pvh.elf [--runs 5] [--exits 100000]
`--ours` is a command prefix that takes QEMU's spellings (-m, -smp, -kernel, -append, -serial stdio,
-no-reboot, -display none); see machine_bench.sh.
"""
import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time

QEMU = "qemu-system-x86_64"


def qemu_cmd(machine):
    return [QEMU, "-enable-kvm", "-cpu", "host,-arch-capabilities,-cx16", "-M", machine, "-nodefaults"]


def run_once(prefix, kernel, append, mem):
    """exec -> first serial byte, exec -> exit (seconds)."""
    cmd = prefix + ["-m", str(mem), "-smp", "1", "-kernel", kernel, "-append", append,
                    "-display", "none", "-serial", "stdio", "-no-reboot"]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    first = p.stdout.read(1)
    t1 = time.perf_counter()
    rest = p.stdout.read()
    p.wait()
    t2 = time.perf_counter()
    out = (first + rest).decode(errors="replace")
    if "poweroff:" not in out or p.returncode != 0:
        sys.exit(f"run failed ({p.returncode}): {' '.join(map(shlex.quote, cmd))}\n{out}")
    return t1 - t0, t2 - t0


def rss_kib(prefix, kernel, mem):
    """VmRSS of the VMM process once the guest has reported and halted."""
    cmd = prefix + ["-m", str(mem), "-smp", "1", "-kernel", kernel, "-append", "action=halt",
                    "-display", "none", "-serial", "stdio", "-no-reboot"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    buf = b""
    deadline = time.time() + 60
    while b"action: halt" not in buf and time.time() < deadline:
        chunk = os.read(p.stdout.fileno(), 4096)
        if not chunk:
            break
        buf += chunk
    time.sleep(0.3)
    rss = 0
    with open(f"/proc/{p.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    p.kill()
    p.wait()
    return rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--exits", type=int, default=100000)
    ap.add_argument("--mem", type=int, default=128)
    ap.add_argument("--no-pc", action="store_true", help="skip QEMU -M pc (SeaBIOS: slow here)")
    a = ap.parse_args()
    vmms = [("ours", shlex.split(a.ours)), ("qemu-microvm", qemu_cmd("microvm"))]
    if not a.no_pc:
        vmms.append(("qemu-pc", qemu_cmd("pc")))
    res = {}
    for name, prefix in vmms:
        firsts, exits, benches = [], [], []
        for _ in range(a.runs):
            f, e = run_once(prefix, a.kernel, "action=poweroff quiet", a.mem)
            firsts.append(f)
            exits.append(e)
            _, b = run_once(prefix, a.kernel, f"action=bench count={a.exits} quiet", a.mem)
            benches.append(b)
        base = statistics.median(exits)
        per_exit = (statistics.median(benches) - base) / a.exits
        res[name] = dict(first=statistics.median(firsts), exit=base, per_exit=per_exit,
                         rss=rss_kib(prefix, a.kernel, a.mem))
        r = res[name]
        print(f"{name:13} first-byte {r['first']*1e3:8.1f} ms   exit {r['exit']*1e3:8.1f} ms   "
              f"per-exit {r['per_exit']*1e6:6.2f} us   rss {r['rss']/1024:6.1f} MiB (guest RAM {a.mem} MiB)",
              flush=True)
    o = res["ours"]
    for name in [n for n, _ in vmms if n != "ours"]:
        q = res[name]
        print(f"ours/{name:13} first-byte {o['first']/q['first']:5.2f}x   exit {o['exit']/q['exit']:5.2f}x   "
              f"per-exit {o['per_exit']/q['per_exit']:5.2f}x   rss {o['rss']/q['rss']:5.2f}x")


if __name__ == "__main__":
    main()
