#!/usr/bin/python3
"""AddForwardsFromFd through GLib's Gio (PyGObject): the forwards, given as a
JSON array of AddForwardsTyped's fields, are encoded here as forward records
(docs/dbus-api.md, "Forward records": this is an independent encoder of the
documented format) into a memfd passed as the call's unix fd. Used by
test_forward_fd.sh and test_access.sh.

  fd_client.py NETWORK-PATH FORWARDS-JSON [--version N] [--cut N]
               [--seals all|none|no-shrink] [--plain-file]

Each forward is [proto, host_address, host_port, host_port_end, guest,
guest_port, description, rate]. --version writes another header version,
--cut drops the last N bytes, --seals chooses the seals (all: write, shrink
and grow), --plain-file sends an unsealed regular file instead of a memfd.
Prints the warnings (one a line) or "Error NAME: message" and exits 1.
"""
import fcntl
import json
import os
import struct
import sys
import tempfile

import gi

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402


def records(forwards, version):
    out = struct.pack("<8sII", b"KVFWDREC", version, len(forwards))
    for proto, address, port, port_end, guest, guest_port, description, rate in forwards:
        strings = [s.encode() for s in (proto, address, guest, description)]
        out += struct.pack("<HHHBBBBHI", port, port_end, guest_port, len(strings[0]), len(strings[1]),
                           len(strings[2]), 0, len(strings[3]), rate)
        out += b"".join(strings)
    return out


def main():
    args = sys.argv[1:]
    plain = "--plain-file" in args
    if plain:
        args.remove("--plain-file")
    path, forwards = args[0], json.loads(args[1])
    opts = dict(zip(args[2::2], args[3::2]))
    data = records(forwards, int(opts.get("--version", 1)))
    cut = int(opts.get("--cut", 0))
    if cut:
        data = data[:-cut]
    if plain:
        f = tempfile.TemporaryFile()
        f.write(data)
        f.flush()
        fd = os.dup(f.fileno())
    else:
        fd = os.memfd_create("test-forwards", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.write(fd, data)
        seals = {"all": fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW,
                 "none": 0, "no-shrink": fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW}[opts.get("--seals", "all")]
        if seals:
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    fds = Gio.UnixFDList.new()
    index = fds.append(fd)
    os.close(fd)
    bus = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
    try:
        reply, _ = bus.call_with_unix_fd_list_sync("org.kvmnet1", path, "org.kvmnet1.Network", "AddForwardsFromFd",
                                                   GLib.Variant("(h)", (index,)), GLib.VariantType("(as)"),
                                                   Gio.DBusCallFlags.NONE, 330000, fds, None)
    except GLib.Error as e:
        name = Gio.DBusError.get_remote_error(e)
        print("Error %s: %s" % (name, e.message.removeprefix("GDBus.Error:%s: " % name)))
        sys.exit(1)
    for warning in reply.unpack()[0]:
        print(warning)


main()
