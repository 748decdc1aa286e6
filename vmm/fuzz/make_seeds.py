#!/usr/bin/env python3
"""Writes seed inputs for the virtio_blk_request fuzz target into seeds/ (valid OUT, IN, FLUSH,
GET_ID, DISCARD and indirect requests), so the fuzzer starts from chains the device accepts."""
import os
import struct

DESC, AVAIL, HDR, DATA, STATUS, IND = 0x0, 0x1000, 0x3000, 0x4000, 0x5000, 0x6000
N, W, I = 1, 2, 4


def seed(name, descs, kind, sector, payload=b"", ro=False, flags=0, indirect=None):
    mem = bytearray(0x7000)
    for i, (addr, ln, fl, nxt) in enumerate(descs):
        struct.pack_into("<QIHH", mem, DESC + 16 * i, addr, ln, fl, nxt)
    struct.pack_into("<HHH", mem, AVAIL, 0, 1, 0)
    struct.pack_into("<IIQ", mem, HDR, kind, 0, sector)
    mem[DATA:DATA + len(payload)] = payload
    for i, (addr, ln, fl, nxt) in enumerate(indirect or []):
        struct.pack_into("<QIHH", mem, IND + 16 * i, addr, ln, fl, nxt)
    head = bytes([4, (1 if ro else 0) | flags | 4, 1])
    with open(os.path.join("seeds", name), "wb") as f:
        f.write(head + bytes(mem))


os.makedirs("seeds", exist_ok=True)
rw = [(HDR, 16, N, 1), (DATA, 1024, N, 2), (STATUS, 1, W, 0)]
seed("out", rw, 1, 3, b"\xa5" * 1024)
seed("in", [(HDR, 16, N, 1), (DATA, 1024, N | W, 2), (STATUS, 1, W, 0)], 0, 5)
seed("flush", [(HDR, 16, N, 1), (STATUS, 1, W, 0)], 4, 0, flags=2)
seed("getid", [(HDR, 16, N, 1), (DATA, 20, N | W, 2), (STATUS, 1, W, 0)], 8, 0)
segs = struct.pack("<QII", 2, 4, 0) + struct.pack("<QII", 40, 8, 0)
seed("discard", [(HDR, 16, N, 1), (DATA, 32, N, 2), (STATUS, 1, W, 0)], 11, 0, segs)
seed("wzeroes", [(HDR, 16, N, 1), (DATA, 16, N, 2), (STATUS, 1, W, 0)], 13, 0, struct.pack("<QII", 7, 9, 1))
seed("indirect", [(IND, 48, I, 0)], 1, 9, b"\x11" * 512,
     indirect=[(HDR, 16, N, 1), (DATA, 512, N, 2), (STATUS, 1, W, 0)])
seed("readonly-out", rw, 1, 3, b"\x5a" * 1024, ro=True)
