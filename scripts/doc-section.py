#!/usr/bin/env python3
"""Replaces the section of a Markdown document between the markers
"<!-- NAME:" and "<!-- /NAME -->" with the text of SECTION (which carries
the markers itself), or puts it before "## Not measured" (or at the end)
when the document has none yet. Used by scripts/bench.sh (dbus-load) and
scripts/bench-loop.sh (loop).

Usage: doc-section.py NAME DOCUMENT SECTION
"""
import re
import sys

name, doc_path, section_path = sys.argv[1:4]
doc, section = open(doc_path).read(), open(section_path).read()
pattern = re.compile(r"<!-- " + re.escape(name) + r":.*?<!-- /" + re.escape(name) + r" -->\n", re.S)
if pattern.search(doc):
    doc = pattern.sub(lambda _: section, doc)
elif "\n## Not measured\n" in doc:
    doc = doc.replace("\n## Not measured\n", "\n" + section + "\n## Not measured\n", 1)
else:
    doc += "\n" + section
open(doc_path, "w").write(doc)
