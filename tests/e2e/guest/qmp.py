#!/usr/bin/env python3
"""One QMP command to a running QEMU (the e2e tests' `qmp` in guest.sh).

Usage: qmp.py SOCKET COMMAND [ARGUMENTS-JSON]

Connects to QEMU's QMP unix socket, negotiates capabilities, runs COMMAND
and prints its "return" value as JSON on stdout. Exits 1 with QMP's error
(or the connection's) on stderr. Events QEMU sends meanwhile are skipped.
"""
import json
import socket
import sys


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    path, command = sys.argv[1], sys.argv[2]
    arguments = json.loads(sys.argv[3]) if len(sys.argv) == 4 else None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    try:
        sock.connect(path)
        stream = sock.makefile("rwb")

        def reply() -> dict:
            while True:
                line = stream.readline()
                if not line:
                    raise ConnectionError("QEMU closed the QMP connection")
                msg = json.loads(line)
                if "event" not in msg:
                    return msg

        def send(cmd: str, args) -> dict:
            msg = {"execute": cmd}
            if args is not None:
                msg["arguments"] = args
            stream.write(json.dumps(msg).encode() + b"\n")
            stream.flush()
            return reply()

        reply()  # the greeting
        send("qmp_capabilities", None)
        answer = send(command, arguments)
    except (OSError, ValueError) as err:
        print(f"qmp {command}: {err}", file=sys.stderr)
        return 1
    if "error" in answer:
        print(f"qmp {command}: {answer['error'].get('desc', answer['error'])}", file=sys.stderr)
        return 1
    print(json.dumps(answer.get("return", {})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
