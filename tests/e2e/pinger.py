#!/usr/bin/env python3
"""Pings one IPv4 address at a fixed interval and measures the holes.

Usage: pinger.py ADDRESS INTERVAL_MS OUT_JSON

Sends an ICMP echo request every INTERVAL_MS (raw socket: run it as root,
inside the namespace to ping from) until SIGTERM or SIGINT, records when
each reply arrives (monotonic clock), and on exit writes OUT_JSON:
  {"sent": N, "received": N, "lost": N, "max_gap_ms": F, "gap_after_seq": N,
   "first_reply": bool, "tail_ms": F}
max_gap_ms is the longest time between two consecutive replies (arrival
times), the figure a user notices during a live migration; tail_ms the
time from the last reply to the stop; lost counts
requests never answered (the last second's requests are not counted as
lost: their replies may still be on the way when the pinger stops).
Used by tests/e2e/test_overlay_migrate.sh and tests/bench/migrate-gap.sh;
it asserts nothing.
"""
import json
import os
import select
import signal
import socket
import struct
import sys
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def main() -> int:
    address, interval, out = sys.argv[1], float(sys.argv[2]) / 1000.0, sys.argv[3]
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sent_at = {}
    replies = []  # (arrival, seq)
    seq = 0
    next_send = time.monotonic()
    while not stop:
        now = time.monotonic()
        if now >= next_send:
            header = struct.pack("!BBHHH", 8, 0, 0, ident, seq & 0xFFFF)
            payload = struct.pack("!d", now) + b"kvmnet-pinger" * 3
            packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq & 0xFFFF) + payload
            try:
                sock.sendto(packet, (address, 0))
            except OSError:
                pass  # no route or neighbour yet: counted as lost
            sent_at[seq & 0xFFFF] = now
            seq += 1
            next_send += interval
            continue
        try:
            ready, _, _ = select.select([sock], [], [], max(0.0, next_send - now))
        except InterruptedError:
            continue
        if not ready:
            continue
        data, _ = sock.recvfrom(2048)
        arrival = time.monotonic()
        ihl = (data[0] & 0x0F) * 4
        kind, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl : ihl + 8])
        if kind == 0 and rid == ident and rseq in sent_at:
            replies.append((arrival, rseq))
            del sent_at[rseq]
    end = time.monotonic()
    lost = sum(1 for t in sent_at.values() if end - t > 1.0)
    gap, after = 0.0, -1
    for (a, s), (b, _) in zip(replies, replies[1:]):
        if b - a > gap:
            gap, after = b - a, s
    result = {
        "sent": seq,
        "received": len(replies),
        "lost": lost,
        "max_gap_ms": round(gap * 1000, 1),
        "gap_after_seq": after,
        "first_reply": bool(replies),
        "tail_ms": round((end - replies[-1][0]) * 1000, 1) if replies else None,
    }
    with open(out, "w") as f:
        json.dump(result, f)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
