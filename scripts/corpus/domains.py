"""The symbol domains sod2 infers, checked at their ends against ONNX Runtime.

For every zoo model and every corpus model (int8 ones left out: sod2 cannot run them yet) it
compiles with no flags (`sod2 compile MODEL -o PLAN`), reads each input symbol's range from
`sod2 inspect PLAN`, and for every symbol the model bounds (lo > 1, or hi below the default cap
2^22) it runs, with the other symbols at the model's first test case:

- at lo and at hi (hi only when bounded): ONNX Runtime must run, and `sod2 run` must run and match
  it within the corpus tolerance (scripts/corpus/check.py);
- just outside, at lo-1 and hi+1: `sod2 run` must refuse with a typed error (exit status 1, an
  `error:` line naming an input or the symbol), never crash (a signal, a panic); ONNX Runtime's
  result there is shown (it usually fails too; where it runs, sod2 is stricter than it: reported).

Inputs come from each model's own value generator at the binding (a generic one where it cannot
make that binding, marked `*`). Prints a table (model, symbol, domain, ORT@lo, ORT@hi, outside-lo,
outside-hi, verdict), the symbols left at the default cap (not checked there: a run at 2^22 is
out of reach), a summary line; exits non-zero on any failing verdict.

usage: python domains.py --sod2 BIN [--zoo ZOO_MODELS_DIR] [--plans DIR] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from domain_common import DEFAULT_CAP, ROOT, Ort, binding_of, compile_plan, feeds_at, matches, sod2_run, targets  # noqa: E402


def zoo_dir() -> pathlib.Path:
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "zoo" / "prepare.py")], capture_output=True, text=True, check=True)
    return pathlib.Path(r.stdout.strip()) / "models"


def fmt_range(lo: int, hi: int) -> str:
    return f"{lo}..={hi}" if hi < DEFAULT_CAP else f"{lo}..={hi} (cap)"


def inside(sod2, t, info, ort, binding, like, work) -> tuple[str, bool]:
    """At a binding inside the domain: ONNX Runtime must run, sod2 must run and match."""
    rng = np.random.default_rng(zlib.crc32(f"{t.name}/{sorted(binding.items())}".encode()))
    feeds, how = feeds_at(t, info, binding, rng, 0, like)
    mark = "*" if how == "generic" else ""
    want, err = ort.run(feeds)
    if want is None:
        r = sod2_run(sod2, info, feeds, work)
        return f"ORT FAILS{mark} ({err}); sod2 {r.kind}", False
    r = sod2_run(sod2, info, feeds, work)
    if r.kind != "ok":
        return f"ORT ok{mark}; sod2 {r.kind.upper()}: {r.message[:160]}", False
    worst, problem = matches(r.outputs, want, t.unordered, t.selected_by)
    if problem:
        return f"ORT ok{mark}; sod2 MISMATCH: {problem}", False
    return f"ORT ok{mark}; sod2 matches ({worst:.1e})", True


def outside(sod2, t, info, ort, binding, like, work) -> tuple[str, bool]:
    """Just outside the domain: sod2 must refuse with a typed error, never crash."""
    rng = np.random.default_rng(zlib.crc32(f"{t.name}/{sorted(binding.items())}".encode()))
    feeds, how = feeds_at(t, info, binding, rng, 0, like)
    mark = "*" if how == "generic" else ""
    if 0 in binding.values():  # ONNX Runtime aborts the process on a 0-length RNN sequence
        o = "ORT not run (a 0 dim)"
    else:
        want, _ = ort.run(feeds)
        o = f"ORT {'runs (sod2 stricter)' if want is not None else 'fails'}{mark}"
    r = sod2_run(sod2, info, feeds, work)
    if r.kind == "refused":
        why = "range" if "outside the declared range" in r.message else ("guard" if "outside the model's domain" in r.message else "typed")
        return f"{o}; sod2 refuses ({why})", True
    if r.kind == "ok":
        return f"{o}; sod2 RUNS (no refusal)", False
    return f"{o}; sod2 {r.kind.upper()}: {r.message[:160]}", False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    ap.add_argument("--zoo", type=pathlib.Path, default=None, help="zoo models folder (default: scripts/zoo/prepare.py's)")
    ap.add_argument("--plans", type=pathlib.Path, default=None, help="plan cache folder (shared with domain_props.py)")
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    t0 = time.time()
    sod2 = str(pathlib.Path(args.sod2).resolve())
    zoo = args.zoo or zoo_dir()
    rows, capped, failures, narrowed_lines = [], [], 0, []
    with tempfile.TemporaryDirectory(prefix="sod2-domains-") as tmp:
        tmp = pathlib.Path(tmp)
        plans = args.plans or tmp
        plans.mkdir(parents=True, exist_ok=True)
        for t in targets(zoo, args.only):
            try:
                info = compile_plan(sod2, t, plans)
            except RuntimeError as e:
                rows.append((t.name, "-", "-", "-", "-", "-", "-", f"FAIL: {e}"))
                failures += 1
                continue
            narrowed_lines += [f"  {t.name}: {ln.strip()}" for ln in info.compile_text.splitlines() if ln.startswith("domain:")]
            like = t.rep_feeds(np.random.default_rng(0))
            rep = binding_of(info, like)
            ort = None
            for sym, (lo, hi) in info.symbols.items():
                if lo <= 1 and hi >= DEFAULT_CAP:
                    capped.append(f"{t.name}.{sym}")
                    continue
                ort = ort or Ort(t.path)
                work = tmp / t.name
                cells, ok = [], True
                c, good = inside(sod2, t, info, ort, {**rep, sym: lo}, like, work)
                cells.append(c)
                ok &= good
                if hi < DEFAULT_CAP:
                    c, good = inside(sod2, t, info, ort, {**rep, sym: hi}, like, work)
                    ok &= good
                else:
                    c = "cap: not checked"
                cells.append(c)
                if lo > 1:
                    c, good = outside(sod2, t, info, ort, {**rep, sym: lo - 1}, like, work)
                    ok &= good
                else:
                    c = "- (lo is 1)"
                cells.append(c)
                if hi < DEFAULT_CAP:
                    c, good = outside(sod2, t, info, ort, {**rep, sym: hi + 1}, like, work)
                    ok &= good
                else:
                    c = "- (cap)"
                cells.append(c)
                others = ", ".join(f"{k}={v}" for k, v in rep.items() if k != sym)
                rows.append((t.name, sym, fmt_range(lo, hi) + (f" [{others}]" if others else ""), *cells, "pass" if ok else "FAIL"))
                failures += 0 if ok else 1
    print("\n## Symbol domains at their ends: sod2 vs ONNX Runtime (corpus tolerance; * = generic inputs)\n")
    print("| model | symbol | domain [other symbols] | ORT@lo | ORT@hi | outside-lo | outside-hi | verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(x).replace("|", "/") for x in r) + " |")
    print("\nnarrowed by sod2 compile (its `domain:` lines):")
    print("\n".join(narrowed_lines) or "  (none)")
    print(f"\nleft at the default cap 1..={DEFAULT_CAP} (not checked at the cap: a run at 2^22 is out of reach): "
          f"{len(capped)} symbols: {', '.join(capped)}")
    passed = sum(1 for r in rows if r[-1] == "pass")
    print(f"\ndomains: {passed} of {len(rows)} bounded symbols pass, {failures} failing; "
          f"{len(capped)} symbols at the default cap; {time.time() - t0:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
