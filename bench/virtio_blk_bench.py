#!/usr/bin/env python3
"""Runs the test guest's `blkbench` action (sequential virtio-blk I/O, the guest never touching
the data) on our vmm and on QEMU with the same images, alternating the two. The guest times the
I/O itself with the ACPI PM timer and prints it on its "bench: done" line (boot time is left
out, and the serial path adds no skew); writes end with a flush inside the interval."""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile


def timed_run(cmd, mb):
    """MiB/s of one run, from the guest's own measurement."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    micros = None
    lines = []
    try:
        for raw in p.stdout:
            line = raw.decode(errors="replace").strip()
            lines.append(line)
            if line.startswith("bench: done"):
                m = re.search(r" in (\d+) us, errors (\d+),", line)
                if not m or m.group(2) != "0":
                    sys.exit(f"{cmd[0]}: {line}")
                micros = int(m.group(1))
                break
            if "TIMEOUT" in line or "init failed" in line:
                break
    finally:
        p.kill()
        p.wait()
    if not micros:
        sys.exit(f"{cmd[0]} did not finish the benchmark:\n" + "\n".join(lines[-10:]))
    return mb / (micros / 1e6)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--mb", type=int, default=512, help="MiB moved per measurement")
    ap.add_argument("--bs", type=int, default=256, help="request size in KiB")
    ap.add_argument("--depth", type=int, default=8, help="requests in flight")
    ap.add_argument("--size", type=int, default=128, help="image size in MiB")
    ap.add_argument("--cases", default="raw-read,raw-write,qcow2-read,qcow2-write",
                    help="comma-separated subset of raw-read,raw-write,qcow2-read,qcow2-write")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="vblk-bench-")
    raw = os.path.join(work, "disk.raw")
    qcow2 = os.path.join(work, "disk.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", raw, f"{a.size}M"], check=True)
    with open(raw, "r+b") as f:  # allocated, non-zero data
        chunk = bytes([0x5a]) * (1 << 20)
        for _ in range(a.size):
            f.write(chunk)
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", raw, qcow2], check=True)

    def ours(img, fmt, append):
        return [a.ours, "-m", "128", "-nodefaults", "-display", "none", "-serial", "stdio", "-kernel", a.kernel,
                "-append", append, "-drive", f"file={img},format={fmt},if=none,id=d0",
                "-device", "virtio-blk-pci,drive=d0"]

    def qemu(img, fmt, append):
        return ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host,-arch-capabilities,-cx16", "-M", "pc",
                "-m", "128", "-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot",
                "-kernel", a.kernel, "-append", append,
                "-drive", f"file={img},format={fmt},if=none,id=d0", "-device", "virtio-blk-pci,drive=d0"]

    print(f"virtio-blk sequential I/O: {a.bs} KiB requests, {a.depth} in flight, {a.mb} MiB per run, "
          f"{a.size} MiB images, {a.runs} runs each, alternating (MiB/s: median, and best run)")
    print(f"{'case':<14}{'ours':>9}{'QEMU':>9}{'ratio':>8}  {'ours best':>10}{'QEMU best':>10}{'ratio':>8}")
    for fmt, img in (("raw", raw), ("qcow2", qcow2)):
        for rw in ("read", "write"):
            if f"{fmt}-{rw}" not in a.cases.split(","):
                continue
            append = f"action=blkbench quiet rw={rw[0]} bs={a.bs} depth={a.depth} mb={a.mb}"
            o, q = [], []
            for _ in range(a.runs):
                o.append(timed_run(ours(img, fmt, append), a.mb))
                q.append(timed_run(qemu(img, fmt, append), a.mb))
            mo, mq = statistics.median(o), statistics.median(q)
            bo, bq = max(o), max(q)
            print(f"{fmt + ' ' + rw:<14}{mo:>9.0f}{mq:>9.0f}{mo / mq:>7.2f}x  {bo:>10.0f}{bq:>10.0f}{bo / bq:>7.2f}x",
                  flush=True)
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
