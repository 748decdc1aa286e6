#!/usr/bin/env python3
"""Drives a QMP server with QEMU's own Python client (qemu.qmp, from PyPI).

Usage: qemu_qmp_client.py SOCKET
Exits 0 when every check passed; prints the failing check otherwise.
"""
import asyncio
import sys

from qemu.qmp import QMPClient, ExecuteError


async def main(path: str) -> None:
    qmp = QMPClient("proto-test")
    await qmp.connect(path)          # greeting + qmp_capabilities
    status = await qmp.execute("query-status")
    assert status["status"] == "prelaunch", status
    assert status["running"] is False, status

    version = await qmp.execute("query-version")
    assert version["qemu"]["major"] == 7, version

    cmds = {c["name"] for c in await qmp.execute("query-commands")}
    for needed in ("qmp_capabilities", "query-status", "stop", "cont", "quit", "human-monitor-command"):
        assert needed in cmds, f"{needed} missing from query-commands"

    schema = await qmp.execute("query-qmp-schema")
    names = {e["name"]: e for e in schema}
    assert names["query-status"]["meta-type"] == "command"
    ret = names[names["query-status"]["ret-type"]]
    assert {m["name"] for m in ret["members"]} >= {"status", "running"}, ret

    try:
        await qmp.execute("no-such-command")
        raise AssertionError("unknown command succeeded")
    except ExecuteError as e:
        assert e.error_class == "CommandNotFound", e.error_class

    with qmp.listener(("RESUME", "STOP")) as listener:
        await qmp.execute("cont")
        ev = await asyncio.wait_for(listener.get(), 5)
        assert ev["event"] == "RESUME", ev
        await qmp.execute("stop")
        ev = await asyncio.wait_for(listener.get(), 5)
        assert ev["event"] == "STOP", ev
        assert "seconds" in ev["timestamp"] and "microseconds" in ev["timestamp"], ev

    out = await qmp.execute("human-monitor-command", {"command-line": "info status"})
    assert isinstance(out, str), out

    with qmp.listener(("SHUTDOWN",)) as listener:
        try:
            await qmp.execute("quit")
        except Exception:
            pass  # the reply to quit may be cut off by EOF (QMP spec)
        ev = await asyncio.wait_for(listener.get(), 5)
        assert ev["data"] == {"guest": False, "reason": "host-qmp-quit"}, ev
    try:
        await qmp.disconnect()
    except EOFError:
        pass  # the server closed the connection after quit, as QEMU does
    print("qemu.qmp checks passed")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
