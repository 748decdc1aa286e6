#!/usr/bin/env python3
"""Block job benchmark: vmm against QEMU (and qemu-img commit) on the same images, in one run.

Usage: block_jobs_bench.py VMM WORKDIR [--reps N] [--size-gib N]

Jobs (each run on fresh copies of the same images, tools alternating, best of --reps):
  stream          top (empty overlay) <- base (SIZE of data): block-stream copies SIZE into top
  commit (active) top (SIZE of data) -> base (empty): block-commit on the drive, READY, complete
  commit (inter.) top (empty) <- mid (SIZE of data) -> base: block-commit top-node=mid
  qemu-img commit the active commit's images, `qemu-img commit top.qcow2`
Both VMMs run as `-machine none -nodefaults` with the top on `-drive if=none,id=drive0` and are
driven over QMP; a job is timed from its command to its JOB_STATUS_CHANGE "null".

QMP latency: N query-status round trips on a second QMP socket with the VM idle, then as many as
fit while a stream of SIZE runs at full speed; p50/p99 of each and the ratio (median of --reps
runs, each run's ratio listed).
Prints a table and one JSON line (prefixed "json: ").
"""
import argparse, json, os, shutil, socket, subprocess, sys, time

MIB = 1 << 20


class Qmp:
    def __init__(self, path, timeout=30):
        deadline = time.time() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.02)
        self.buf = b""
        self.events = []
        self.line()
        self.cmd("qmp_capabilities")

    def line(self, timeout=600):
        self.s.settimeout(timeout)
        while b"\n" not in self.buf:
            d = self.s.recv(1 << 16)
            if not d:
                raise EOFError("QMP connection closed")
            self.buf += d
        l, self.buf = self.buf.split(b"\n", 1)
        return json.loads(l)

    def send(self, name, **args):
        m = {"execute": name}
        if args:
            m["arguments"] = {k.replace("_", "-"): v for k, v in args.items()}
        self.s.sendall((json.dumps(m) + "\n").encode())

    def cmd(self, name, **args):
        self.send(name, **args)
        while True:
            v = self.line()
            if "event" in v:
                self.events.append(v)
                continue
            if "error" in v:
                raise RuntimeError(f"{name}: {v['error']['desc']}")
            return v["return"]

    def wait_status(self, job, status, timeout=600):
        for i, e in enumerate(self.events):
            if e["event"] == "JOB_STATUS_CHANGE" and e["data"] == {"id": job, "status": status}:
                del self.events[: i + 1]
                return
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = self.line(timeout)
            if v.get("event") == "JOB_STATUS_CHANGE" and v["data"] == {"id": job, "status": status}:
                return
            if v.get("event") == "BLOCK_JOB_COMPLETED" and v["data"].get("error"):
                raise RuntimeError(f"job {job} failed: {v['data']['error']}")
        raise TimeoutError(f"job {job} did not reach {status}")


def sh(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


class Vm:
    def __init__(self, binary, work, drive):
        self.sock = os.path.join(work, "q.sock")
        self.sock2 = os.path.join(work, "q2.sock")
        for p in (self.sock, self.sock2):
            if os.path.exists(p):
                os.unlink(p)
        self.p = subprocess.Popen(
            [binary, "-machine", "none", "-nodefaults", "-display", "none",
             "-qmp", f"unix:{self.sock},server=on,wait=off",
             "-qmp", f"unix:{self.sock2},server=on,wait=off",
             "-drive", f"file={drive},if=none,id=drive0,format=qcow2,node-name=top"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.q = Qmp(self.sock)

    def quit(self):
        self.q.send("quit")
        self.p.wait(timeout=120)


def timed_job(binary, work, drive, start):
    """Starts a VM, runs `start(qmp)` (which returns the job id), times it to the job's end."""
    vm = Vm(binary, work, drive)
    t0 = time.perf_counter()
    start(vm.q)
    dt = time.perf_counter() - t0
    vm.quit()
    return dt


def stream(q):
    q.cmd("block-stream", device="drive0", job_id="j")
    q.wait_status("j", "null")


def active_commit(q):
    q.cmd("block-commit", device="drive0", job_id="j")
    q.wait_status("j", "ready")
    q.cmd("block-job-complete", device="j")
    q.wait_status("j", "null")


def intermediate_commit(q):
    nodes = q.cmd("query-named-block-nodes")
    mid = next(n["node-name"] for n in nodes if n["file"].endswith("/mid.qcow2") and n["drv"] == "qcow2")
    q.cmd("block-commit", device="drive0", job_id="j", top_node=mid)
    q.wait_status("j", "null")


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


def latency(binary, work, drive, idle_n):
    vm = Vm(binary, work, drive)
    probe = Qmp(vm.sock2)

    def rtt():
        t = time.perf_counter()
        probe.send("query-status")
        while "event" in probe.line():
            pass
        return time.perf_counter() - t

    for _ in range(200):
        rtt()
    idle = [rtt() for _ in range(idle_n)]
    vm.q.send("block-stream", device="drive0", job_id="lat")
    busy = []
    # the job's events arrive on the probe's socket too: the job is over at its "null"
    while True:
        t = time.perf_counter()
        probe.send("query-status")
        done = False
        while True:
            v = probe.line()
            if "event" not in v:
                break
            if v["event"] == "JOB_STATUS_CHANGE" and v["data"] == {"id": "lat", "status": "null"}:
                done = True
        busy.append(time.perf_counter() - t)
        if done:
            break
    vm.quit()
    return idle, busy


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("vmm")
    ap.add_argument("work")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--size-gib", type=int, default=1)
    ap.add_argument("--idle-n", type=int, default=3000)
    a = ap.parse_args()
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu or not shutil.which("qemu-img") or not shutil.which("qemu-io"):
        sys.exit("qemu-system-x86_64, qemu-img and qemu-io are required (qemu-system-x86, qemu-utils)")
    w = a.work
    size = f"{a.size_gib}G"
    data = f"write -P 0x5a 0 {size}"
    os.makedirs(w, exist_ok=True)
    os.chdir(w)
    print(f"preparing {size} images in {w} ...", file=sys.stderr)
    if not os.path.exists("full.orig"):
        sh("qemu-img", "create", "-q", "-f", "qcow2", "full.orig", size)
        sh("qemu-io", "-f", "qcow2", "-c", data, "full.orig")
        sh("qemu-img", "create", "-q", "-f", "qcow2", "empty.orig", size)

    def overlay(name, backing):
        sh("qemu-img", "create", "-q", "-f", "qcow2", "-b", backing, "-F", "qcow2", name)

    def prep_stream():
        shutil.copyfile("full.orig", "base.qcow2")
        overlay("top.qcow2", "base.qcow2")

    def prep_active():
        shutil.copyfile("empty.orig", "base.qcow2")
        shutil.copyfile("full.orig", "top.qcow2")
        sh("qemu-img", "rebase", "-u", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2")

    def prep_inter():
        shutil.copyfile("empty.orig", "base.qcow2")
        shutil.copyfile("full.orig", "mid.qcow2")
        sh("qemu-img", "rebase", "-u", "-b", "base.qcow2", "-F", "qcow2", "mid.qcow2")
        overlay("top.qcow2", "mid.qcow2")

    def best(prep, fn):
        ts = []
        for _ in range(a.reps):
            prep()
            subprocess.run(["sync"])
            ts.append(fn())
        return min(ts)

    top = os.path.join(w, "top.qcow2")
    rows = []
    for name, prep, job in [
        ("stream", prep_stream, stream),
        ("commit (active)", prep_active, active_commit),
        ("commit (intermediate)", prep_inter, intermediate_commit),
    ]:
        ts = {"vmm": [], "qemu": []}
        for _ in range(a.reps):
            for who, binary in (("vmm", a.vmm), ("qemu", qemu)):
                prep()
                subprocess.run(["sync"])
                ts[who].append(timed_job(binary, w, top, job))
        rows.append((name, min(ts["qemu"]), min(ts["vmm"])))

    def qimg_commit():
        t = time.perf_counter()
        sh("qemu-img", "commit", "-q", "top.qcow2")
        return time.perf_counter() - t

    qimg = best(prep_active, qimg_commit)
    gib = a.size_gib
    print(f"{'job (' + size + ' of data)':28} {'QEMU s':>9} {'vmm s':>9} {'ratio':>8} {'vmm MiB/s':>10}")
    out = {"size_gib": gib, "jobs": {}}
    for name, q, v in rows:
        print(f"{name:28} {q:9.3f} {v:9.3f} {q / v:7.2f}x {gib * 1024 / v:10.0f}")
        out["jobs"][name] = {"qemu_s": round(q, 3), "vmm_s": round(v, 3), "ratio": round(q / v, 2)}
    v_active = next(v for n, _, v in rows if n == "commit (active)")
    print(f"{'qemu-img commit':28} {qimg:9.3f} {v_active:9.3f} {qimg / v_active:7.2f}x  (vs vmm active commit)")
    out["qemu_img_commit_s"] = round(qimg, 3)
    out["ratio_vs_qemu_img_commit"] = round(qimg / v_active, 2)

    print(file=sys.stderr)
    lat = {}
    for who, binary in (("vmm", a.vmm), ("qemu", qemu)):
        runs = []
        for _ in range(a.reps):
            prep_stream()
            subprocess.run(["sync"])
            idle, busy = latency(binary, w, top, a.idle_n)
            runs.append({
                "idle_p50_us": round(pct(idle, 50) * 1e6, 1), "idle_p99_us": round(pct(idle, 99) * 1e6, 1),
                "busy_p50_us": round(pct(busy, 50) * 1e6, 1), "busy_p99_us": round(pct(busy, 99) * 1e6, 1),
                "busy_n": len(busy), "p99_ratio": round(pct(busy, 99) / pct(idle, 99), 2),
            })
        runs.sort(key=lambda r: r["p99_ratio"])
        lat[who] = runs[len(runs) // 2]
        lat[who]["p99_ratios"] = [r["p99_ratio"] for r in runs]
    print(f"\nquery-status latency while a {size} stream runs at full speed (second QMP socket;")
    print(f"median of {a.reps} runs by p99 ratio):")
    print(f"{'':6} {'idle p50':>10} {'idle p99':>10} {'busy p50':>10} {'busy p99':>10} {'n busy':>7} {'p99 busy/idle':>14}  all runs")
    for who, l in lat.items():
        print(f"{who:6} {l['idle_p50_us']:8.1f}us {l['idle_p99_us']:8.1f}us {l['busy_p50_us']:8.1f}us "
              f"{l['busy_p99_us']:8.1f}us {l['busy_n']:7} {l['p99_ratio']:13.2f}x  {l['p99_ratios']}")
    out["latency"] = lat
    print("json: " + json.dumps(out))


if __name__ == "__main__":
    main()
