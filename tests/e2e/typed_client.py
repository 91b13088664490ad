#!/usr/bin/python3
"""An applet-style client of org.kvmnet1 through GLib's Gio (PyGObject), as a
C or Vala applet would use it: no JSON parsing. Used by test_typed_reads.sh.

Every typed value is printed as JSON {"key": ["D-Bus type", value]}, so the
test checks the D-Bus type of each key as well as its value.

  typed_client.py leases NET | ports NET | forwards NET LIMIT | statistics NET
  typed_client.py props NET
  typed_client.py set-autostart NET true|false   (prints "ok" or the error name)
  typed_client.py watch NET                       (PropertiesChanged, one line each)
"""
import json
import sys

import gi

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

BUS_NAME = "org.kvmnet1"
IFACE = "org.kvmnet1.Network"


def network_path(name):
    out = "/org/kvmnet1/network/"
    for b in name.encode():
        c = chr(b)
        out += c if c.isascii() and c.isalnum() else "_%02x" % b
    return out


def typed(variant):
    """A GLib.Variant as [type, value], dictionaries of a{sv} key by key."""
    t = variant.get_type_string()
    if t == "a{sv}":
        return [t, typed_dict(variant)]
    if t == "aa{sv}":
        return [t, [typed_dict(variant.get_child_value(i)) for i in range(variant.n_children())]]
    return [t, variant.unpack()]


def typed_dict(variant):
    out = {}
    for i in range(variant.n_children()):
        entry = variant.get_child_value(i)
        key = entry.get_child_value(0).get_string()
        out[key] = typed(entry.get_child_value(1).get_variant())
    return out


def call(bus, net, method, args, reply_type):
    return bus.call_sync(BUS_NAME, network_path(net), IFACE, method, args,
                         GLib.VariantType.new(reply_type), Gio.DBusCallFlags.NONE, 10000, None)


def main():
    bus = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
    cmd, net = sys.argv[1], sys.argv[2]
    if cmd in ("leases", "ports", "forwards"):
        method = {"leases": "LeasesTyped", "ports": "ListPortsTyped", "forwards": "ListForwardsTyped"}[cmd]
        limit = int(sys.argv[3]) if len(sys.argv) > 3 else 100
        items, cursor, pages = [], "", 0
        while True:
            reply = call(bus, net, method, GLib.Variant("(su)", (cursor, limit)), "(aa{sv}s)")
            page = reply.get_child_value(0)
            items += typed(page)[1]
            pages += 1
            cursor = reply.get_child_value(1).get_string()
            if not cursor:
                break
        print(json.dumps({"items": items, "pages": pages}))
    elif cmd == "statistics":
        reply = call(bus, net, "StatisticsTyped", None, "(a{sv})")
        print(json.dumps(typed(reply.get_child_value(0))[1]))
    elif cmd == "props":
        reply = bus.call_sync(BUS_NAME, network_path(net), "org.freedesktop.DBus.Properties", "GetAll",
                              GLib.Variant("(s)", (IFACE,)), GLib.VariantType.new("(a{sv})"),
                              Gio.DBusCallFlags.NONE, 10000, None)
        print(json.dumps(typed(reply.get_child_value(0))[1]))
    elif cmd == "set-autostart":
        try:
            bus.call_sync(BUS_NAME, network_path(net), "org.freedesktop.DBus.Properties", "Set",
                          GLib.Variant("(ssv)", (IFACE, "Autostart", GLib.Variant("b", sys.argv[3] == "true"))),
                          None, Gio.DBusCallFlags.NONE, 10000, None)
            print("ok")
        except GLib.Error as e:
            print(Gio.DBusError.get_remote_error(e) or e.message)
            print(e.message, file=sys.stderr)
    elif cmd == "watch":
        loop = GLib.MainLoop()

        def changed(_conn, _sender, _path, _iface, _signal, params):
            iface, values, invalidated = params.get_child_value(0), params.get_child_value(1), params.get_child_value(2)
            if iface.get_string() != IFACE:
                return
            for key, value in typed_dict(values).items():
                print(key, json.dumps(value[1]), flush=True)
            for i in range(invalidated.n_children()):
                print(invalidated.get_child_value(i).get_string(), "invalidated", flush=True)

        bus.signal_subscribe(BUS_NAME, "org.freedesktop.DBus.Properties", "PropertiesChanged",
                             network_path(net), None, Gio.DBusSignalFlags.NONE, changed)
        # The match rule is in place once a round trip to the bus is done.
        bus.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId",
                      None, None, Gio.DBusCallFlags.NONE, 10000, None)
        print("watching", flush=True)
        loop.run()
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
