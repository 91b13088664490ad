#!/usr/bin/python3
"""Drives kvmnet-applet through the accessibility bus (AT-SPI), as a person
with a screen reader or a keyboard would: it finds widgets by what they are
called and what they show, presses buttons and types into fields. Used by
test_applet.sh; every command exits 1 with the reason when it cannot do
what it is asked.

  applet_driver.py wait TEXT [SECONDS]        a widget shows TEXT (prints its text)
  applet_driver.py wait-gone TEXT [SECONDS]   no widget shows TEXT any more
  applet_driver.py text DESCRIPTION [SECONDS] the text of the label described so
  applet_driver.py press NAME                 presses the button called NAME
  applet_driver.py fill NAME TEXT             types TEXT into the field called NAME
  applet_driver.py dump                       the whole tree (for debugging)
"""
import sys
import time

import gi

gi.require_version("Atspi", "2.0")
from gi.repository import Atspi, GLib  # noqa: E402

APP = "kvmnet-applet"


def application():
    desktop = Atspi.get_desktop(0)
    for i in range(desktop.get_child_count()):
        app = desktop.get_child_at_index(i)
        if app is not None and app.get_name() == APP:
            return app
    return None


def walk(node, depth=0):
    """Every accessible under node. The tree changes while it is walked (rows
    are replaced when the applet re-reads a list): a node that went away
    meanwhile is skipped, the next poll sees the new one."""
    yield node, depth
    try:
        n = node.get_child_count()
    except GLib.Error:
        return
    for i in range(n):
        try:
            child = node.get_child_at_index(i)
        except GLib.Error:
            continue
        if child is not None:
            yield from walk(child, depth + 1)


def shown_text(node):
    """What the widget shows: its name, or the text of a label or field."""
    try:
        name = node.get_name() or ""
        text = node.get_text_iface()
        if text is not None:
            content = text.get_text(0, text.get_character_count())
            if content and content not in name:
                name = (name + " " + content).strip()
        return name
    except GLib.Error:
        return ""


def role(node):
    try:
        return node.get_role_name()
    except GLib.Error:
        return ""


def name_of(node):
    try:
        return node.get_name() or ""
    except GLib.Error:
        return ""


def description_of(node):
    try:
        return node.get_description() or ""
    except GLib.Error:
        return ""


def nodes():
    app = application()
    if app is None:
        return []
    return [n for n, _ in walk(app)]


def until(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while True:
        result = predicate()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            sys.exit(f"applet_driver: {what} (waited {seconds} s)")
        time.sleep(0.2)


def children(node):
    try:
        return [node.get_child_at_index(i) for i in range(node.get_child_count())]
    except GLib.Error:
        return []


def control_name(node):
    """The name a screen reader says. GTK 4.8 gives a button its accessible
    label followed by the text it shows ("Add forward Add forward", "Remove
    forward tcp *:8080 Remove"; with the mnemonic's underscore when no label
    is set): the shown text is taken off again."""
    name = name_of(node)
    if role(node) in ("push button", "toggle button"):
        for child in children(node):
            shown = name_of(child) if child is not None and role(child) == "label" else ""
            if shown and name.endswith(" " + shown):
                return name[: -len(shown) - 1].replace("_", "")
    return name


def find_named(name, roles):
    for n in nodes():
        if role(n) in roles and control_name(n) == name:
            return n
    return None


def main():
    cmd = sys.argv[1]
    if cmd == "dump":
        app = application()
        if app is None:
            sys.exit("applet_driver: no application named " + APP + " on the accessibility bus")
        for n, depth in walk(app):
            try:
                action = n.get_action_iface()
                actions = [action.get_action_name(i) for i in range(action.get_n_actions())] if action else []
            except GLib.Error:
                actions = []
            print("  " * depth + f"[{role(n)}] {name_of(n)!r} shows {shown_text(n)!r} desc={description_of(n)!r}"
                  + (f" actions={actions}" if actions else ""))
    elif cmd == "wait":
        text, seconds = sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 10

        def found():
            for n in nodes():
                t = shown_text(n)
                if text in t:
                    return t
            return None

        print(until(found, seconds, f"no widget shows '{text}'"))
    elif cmd == "wait-gone":
        text, seconds = sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 10
        until(lambda: None if any(text in shown_text(n) for n in nodes()) else True, seconds,
              f"a widget still shows '{text}'")
    elif cmd == "text":
        description, seconds = sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 10

        def described():
            for n in nodes():
                if description_of(n) == description:
                    return shown_text(n)
            return None

        print(until(described, seconds, f"no widget described as '{description}'"))
    elif cmd == "press":
        name = sys.argv[2]
        button = until(lambda: find_named(name, ("push button", "toggle button", "switch", "check box")), 10,
                       f"no button called '{name}'")
        action = button.get_action_iface()
        if action is None or action.get_n_actions() == 0:
            sys.exit(f"applet_driver: the button '{name}' offers no action")
        action.do_action(0)
    elif cmd == "fill":
        name, value = sys.argv[2], sys.argv[3]
        field = until(lambda: find_named(name, ("text", "entry", "text box")), 10, f"no field called '{name}'")
        editable = field.get_editable_text_iface()
        if editable is None:
            sys.exit(f"applet_driver: the field '{name}' is not editable through AT-SPI")
        if not editable.set_text_contents(value):
            sys.exit(f"applet_driver: the field '{name}' refused the text")
    else:
        sys.exit("applet_driver: unknown command " + cmd)


if __name__ == "__main__":
    main()
