#!/usr/bin/python3
"""Sends several org.kvmnet1 calls on one bus connection, back to back
without waiting for a reply (so the daemon receives them in this order), and
prints one line per reply in the order the replies arrive:
"LABEL ok" or "LABEL error NAME: MESSAGE". Used by test_stop_async.sh and
test_update_async.sh.

  call_order.py CALL...   CALL is one of
    stop:NET  start:NET  delete:NET  getall:NET  describe (Manager.Describe)
    reload (Manager.Reload)
    update:NET:FILE (Network.Update with the document in FILE)
    state:NET (GetAll; prints "state:NET ok STATE": the State in the reply)
"""
import sys

from typed_client import BUS_NAME, network_path  # which also asks for Gio 2.0

from gi.repository import Gio, GLib  # noqa: E402


def method_of(call):
    kind, _, net = call.partition(":")
    if kind == "update":
        net, _, path = net.partition(":")
        with open(path, encoding="utf-8") as f:
            document = f.read()
        return network_path(net), "org.kvmnet1.Network", "Update", GLib.Variant("(s)", (document,))
    if kind == "stop":
        return network_path(net), "org.kvmnet1.Network", "Stop", None
    if kind == "start":
        return network_path(net), "org.kvmnet1.Network", "Start", None
    if kind == "delete":
        return "/org/kvmnet1", "org.kvmnet1.Manager", "DeleteNetwork", GLib.Variant("(s)", (net,))
    if kind in ("getall", "state"):
        return (network_path(net), "org.freedesktop.DBus.Properties", "GetAll",
                GLib.Variant("(s)", ("org.kvmnet1.Network",)))
    if kind == "describe":
        return "/org/kvmnet1", "org.kvmnet1.Manager", "Describe", None
    if kind == "reload":
        return "/org/kvmnet1", "org.kvmnet1.Manager", "Reload", None
    sys.exit("unknown call " + call)


def main():
    calls = sys.argv[1:]
    bus = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
    loop = GLib.MainLoop()
    left = [len(calls)]

    def on_reply(conn, result, label):
        try:
            reply = conn.call_finish(result)
            if label.startswith("state:"):
                print(label, "ok", reply.unpack()[0]["State"], flush=True)
            else:
                print(label, "ok", flush=True)
        except GLib.Error as e:
            print(label, "error", Gio.DBusError.get_remote_error(e) or "", ":",
                  Gio.DBusError.strip_remote_error(e) or e.message, flush=True)
        left[0] -= 1
        if left[0] == 0:
            loop.quit()

    for call in calls:
        path, iface, method, args = method_of(call)
        label = ":".join(call.split(":")[:2])  # update:NET:FILE prints as update:NET
        bus.call(BUS_NAME, path, iface, method, args, None, Gio.DBusCallFlags.NONE, 60000, None, on_reply, label)
    loop.run()


main()
