#!/usr/bin/env python3
"""docs/dbus-api.md is true to dbus/*.xml: for every interface, each method,
property and signal of the introspection XML has its row in the interface's
section (methods with their signature, properties with their type, signals
with their argument types), and the section documents nothing the XML lacks.

Usage: dbus_api_doc.py DBUS-API.md INTERFACE.xml...
"""
import re
import sys
import xml.etree.ElementTree as ET

SINGULAR = {"Methods": "method", "Properties": "property", "Signals": "signal"}


def sections(markdown, interface):
    """The '### Methods' / '### Properties' / '### Signals' tables of the
    '## INTERFACE (at ...)' section: {kind: {name: second column}}."""
    lines = markdown.splitlines()
    start = next((i for i, l in enumerate(lines) if re.match(r"## " + re.escape(interface) + r"\b", l)), None)
    if start is None:
        return None
    found = {"Methods": {}, "Properties": {}, "Signals": {}}
    kind = None
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if line.startswith("#"):
            # A '####' subsection (state reason codes) ends the table too.
            m = re.match(r"### (\w+)$", line)
            kind = m.group(1) if m and m.group(1) in found else None
            continue
        m = re.match(r"\| `(\w+)(?:\(([^)]*)\)[^`]*)?` \| ([^|]*)\|", line)
        if kind and m:
            found[kind][m.group(1)] = m.group(3)
    return found


def compact(column):
    """'`su` → `ss`', '`s`, `s`', '—' as 'su->ss', 'ss', ''."""
    column = column.replace("—", "").replace("`", "").replace(",", "").replace(" ", "")
    return column.replace("→", "->")


def main():
    markdown = open(sys.argv[1], encoding="utf-8").read()
    problems = []
    for path in sys.argv[2:]:
        root = ET.parse(path).getroot()
        for iface in root.iter("interface"):
            name = iface.get("name")
            doc = sections(markdown, name)
            if doc is None:
                problems.append(f"{name}: no '## {name}' section")
                continue
            xml = {"Methods": {}, "Properties": {}, "Signals": {}}
            for m in iface.iter("method"):
                ins = "".join(a.get("type") for a in m.iter("arg") if a.get("direction", "in") == "in")
                outs = "".join(a.get("type") for a in m.iter("arg") if a.get("direction") == "out")
                xml["Methods"][m.get("name")] = ins + ("->" + outs if outs else "")
            for p in iface.iter("property"):
                xml["Properties"][p.get("name")] = p.get("type")
            for s in iface.iter("signal"):
                xml["Signals"][s.get("name")] = "".join(a.get("type") for a in s.iter("arg"))
            for kind, members in xml.items():
                for member, signature in members.items():
                    if member not in doc[kind]:
                        problems.append(f"{name}: {SINGULAR[kind]} {member} ({signature}) is not in its table")
                        continue
                    column = doc[kind][member]
                    if kind == "Signals":
                        # "s name, o network": the types are the first word of each argument.
                        documented = "".join(a.split()[0] for a in column.replace("`", "").split(",") if a.strip())
                    else:
                        documented = compact(column)
                    if documented != signature:
                        problems.append(
                            f"{name}: {SINGULAR[kind]} {member} is {signature!r} in {path}, "
                            f"{documented!r} in the docs")
                for member in doc[kind]:
                    if member not in members:
                        problems.append(f"{name}: the docs list {SINGULAR[kind]} {member}, the XML has none")
    for p in problems:
        print("dbus-api.md: " + p)
    if problems:
        return 1
    print(f"dbus-api.md matches {len(sys.argv) - 2} introspection file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
