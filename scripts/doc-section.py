#!/usr/bin/env python3
"""Sections of docs/performance.md between the markers "<!-- NAME:" and
"<!-- /NAME -->".

  doc-section.py NAME DOCUMENT SECTION
      Replaces section NAME of DOCUMENT with the text of the file SECTION
      (which carries the markers itself), or puts it before "## Not
      measured" (or at the end) when the document has none yet. Used by
      scripts/bench.sh (--*-only), bench-loop.sh and bench-networks.sh.

  doc-section.py --carry OLD NEW
      Copies into NEW every marked section of OLD that NEW lacks, each right
      after the section OLD has before it (so the order of OLD holds), and
      writes NEW back. scripts/bench.sh renders the whole document from one
      run: this keeps what other scripts rendered and the hand-written
      sections (marked "kept-…").
"""
import re
import sys

SECTION = re.compile(r"<!-- ([a-z0-9-]+):.*?<!-- /\1 -->\n", re.S)


def put(doc, name, section, after=None):
    pattern = re.compile(r"<!-- " + re.escape(name) + r":.*?<!-- /" + re.escape(name) + r" -->\n", re.S)
    if pattern.search(doc):
        return pattern.sub(lambda _: section, doc)
    if after is not None:
        end = "<!-- /" + after + " -->\n"
        at = doc.find(end)
        if at >= 0:
            at += len(end)
            return doc[:at] + "\n" + section + doc[at:]
    if "\n## Not measured\n" in doc:
        return doc.replace("\n## Not measured\n", "\n" + section + "\n## Not measured\n", 1)
    return doc + "\n" + section


def carry(old_path, new_path):
    old, new = open(old_path).read(), open(new_path).read()
    previous = None
    for match in SECTION.finditer(old):
        name = match.group(1)
        if not re.search(r"<!-- " + re.escape(name) + r":", new):
            new = put(new, name, match.group(0), previous)
        previous = name
    open(new_path, "w").write(new)


if len(sys.argv) == 4 and sys.argv[1] == "--carry":
    carry(sys.argv[2], sys.argv[3])
elif len(sys.argv) == 4:
    name, doc_path, section_path = sys.argv[1:4]
    doc = open(doc_path).read()
    open(doc_path, "w").write(put(doc, name, open(section_path).read()))
else:
    sys.exit(__doc__)
