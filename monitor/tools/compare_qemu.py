#!/usr/bin/env python3
"""Byte-for-byte comparison of our HMP (over telnet) and shared console (-nographic, over a pty)
with qemu-system-x86_64 7.2, for the same keystrokes. Needs qemu-system-x86_64 and a built
`monitor_probe` example:

    cargo build -p monitor --example monitor_probe
    python3 monitor/tools/compare_qemu.py "$CARGO_TARGET_DIR/debug/examples/monitor_probe"

Prints `same` or the two byte strings for each step. Known, intended differences: TAB completion
lists only our commands; `IAC NOP` does not swallow the next byte (RFC 854)."""
import os, pty, re, select, socket, subprocess, sys, time

PROBE = sys.argv[1] if len(sys.argv) > 1 else "target/debug/examples/monitor_probe"
QEMU = ["qemu-system-x86_64", "-machine", "none", "-S", "-display", "none"]


def telnet_session(argv, port, inputs):
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(0.6)

    def rd():
        data = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
        except socket.timeout:
            pass
        return data

    out = [rd()]
    for i in inputs:
        s.sendall(i)
        out.append(rd())
    s.close()
    p.terminate()
    p.wait()
    return out


def pty_session(argv, keys):
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)

    def rd(t=0.7):
        out, end = b"", time.time() + t
        while time.time() < end:
            r, _, _ = select.select([fd], [], [], 0.05)
            if r:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    break
        return out

    res = [rd(2)]
    for k in keys:
        os.write(fd, k)
        res.append(rd())
    try:
        os.kill(pid, 9)
    except OSError:
        pass
    return res


def report(title, steps, a, b):
    print(f"== {title}")
    for k, x, y in zip([b"<connect>"] + steps, a, b):
        nx = re.sub(rb"\[\d\d:\d\d:\d\d\.\d\d\d\]", b"[T]", x)
        ny = re.sub(rb"\[\d\d:\d\d:\d\d\.\d\d\d\]", b"[T]", y)
        if nx == ny:
            print("same", k)
        else:
            print("DIFF", k, "\n  qemu:", x[:400], "\n  ours:", y[:400])


HMP = [b"info status\r\n", b"help stop\r\n", b"info\x7f\x7f\x7f\x7fhelp stop\r\n", b"\r\n", b"info status\n",
       b"bogus\r\n", b"info bogus\r\n", b"stop x\r\n",
       b"abc\x1b[D\x1b[DX\x01Y\x05Z\x1b[1~\x1b[3~\x1b[4~\r", b"\x1b[A\x1b[A\x1b[B\r", b"\x0c",
       b"foo bar\x17baz\r", b"info hi\t\r", b"\x1b[Ainfo\r", b"help info status\r", b"cpu\r",
       b'help "stop\r', b"info name\r", b"info registers -b\r", b"c\r", b"info status\r", b"quit\r"]
q = telnet_session(QEMU + ["-monitor", "telnet:127.0.0.1:46001,server=on,wait=off"], 46001, HMP)
o = telnet_session([PROBE, "-monitor", "telnet:127.0.0.1:46002,server=on,wait=off"], 46002, HMP)
report("HMP over telnet", HMP, q, o)

MUX = [b"\x01h", b"\x01c", b"info status\r", b"\x01c", b"abc", b"\x01c", b"xy", b"\x01\x01", b"\x01c",
       b"\x01t", b"\x01c", b"\x01c", b"\x01z", b"\x01x"]
q = pty_session(["qemu-system-x86_64", "-M", "pc", "-accel", "tcg", "-S", "-nographic", "-nodefaults",
                 "-serial", "mon:stdio"], MUX)
o = pty_session([PROBE, "-nographic"], MUX)
report("console shared by serial and monitor (-nographic)", MUX, q, o)
