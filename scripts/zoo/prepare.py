"""Builds the zoo and its oracle once per generator version; prints the cache folder.

The cache key is the content of the generator, the oracle and the pinned requirements, so a
change to any of them rebuilds, and anything else reuses `.cache/zoo/<key>/{models,oracle}`.

usage: python prepare.py [--root REPO_ROOT]
"""
from __future__ import annotations

import argparse
import hashlib
import pathlib
import shutil
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).parent
KEYED = ["builder.py", "models.py", "gen.py", "oracle.py", "../requirements.txt"]


def key() -> str:
    h = hashlib.sha256()
    for f in KEYED:
        h.update((HERE / f).read_bytes())
    return h.hexdigest()[:16]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", type=pathlib.Path, default=HERE.parent.parent)
    args = ap.parse_args()
    base = args.root / ".cache" / "zoo"
    d = base / key()
    if not (d / "DONE").exists():
        t0 = time.time()
        shutil.rmtree(d, ignore_errors=True)
        subprocess.run([sys.executable, str(HERE / "gen.py"), str(d / "models")], check=True, stdout=sys.stderr)
        subprocess.run([sys.executable, str(HERE / "oracle.py"), str(d / "models"), str(d / "oracle")], check=True, stdout=sys.stderr)
        (d / "DONE").write_text(f"built in {time.time() - t0:.1f} s\n")
        print(f"zoo and oracle built in {time.time() - t0:.1f} s", file=sys.stderr)
        for old in base.iterdir():
            if old != d and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    else:
        print(f"zoo and oracle cached ({(d / 'DONE').read_text().strip()})", file=sys.stderr)
    print(d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
