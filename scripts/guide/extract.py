"""Extracts the fenced code blocks of a Markdown file into one file per block.

usage: extract.py GUIDE.md OUT_DIR
Writes OUT_DIR/c/lineN.c (with a `#line` directive, so compiler errors name the guide's lines),
OUT_DIR/kotlin/guide/lineN/Snippet.kt (each block in its own package `guide.lineN`, so blocks may
reuse names) and OUT_DIR/swift/lineN/Snippet.swift (one Swift target per block), N being the line of the block's opening fence.
Prints one line per language tag: how many blocks it found.
"""
import collections
import pathlib
import re
import sys

guide, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
lines = guide.read_text(encoding="utf-8").splitlines()
counts = collections.Counter()
fence = re.compile(r"^```\s*([A-Za-z0-9_.+-]*)\s*$")
i = 0
while i < len(lines):
    m = fence.match(lines[i])
    if not m:
        i += 1
        continue
    tag, start = m.group(1).lower(), i + 1
    j = i + 1
    while j < len(lines) and lines[j].rstrip() != "```":
        j += 1
    if j == len(lines):
        sys.exit(f"{guide}:{start}: unterminated code block")
    body = "\n".join(lines[i + 1 : j]) + "\n"
    counts[tag or "(untagged)"] += 1
    if tag == "c":
        p = out / "c" / f"line{start}.c"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f'#line {start + 1} "{guide}"\n' + body)
    elif tag == "kotlin":
        p = out / "kotlin" / "guide" / f"line{start}" / "Snippet.kt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"// {guide}, the block at line {start}\npackage guide.line{start}\n\n" + body)
    elif tag == "swift":
        p = out / "swift" / f"line{start}" / "Snippet.swift"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"// {guide}, the block at line {start}\n" + body)
    i = j + 1
for tag, n in sorted(counts.items()):
    print(f"{tag} {n}")
