"""Property test of the symbol domains: random bindings of each model's input symbols, inside the
domain sod2 infers and outside it, through `sod2 run` and ONNX Runtime.

For every zoo model and every corpus model (int8 ones left out; models without input symbols have
nothing to bind and are listed as skipped) it compiles once with no flags, reads the symbol ranges
from `sod2 inspect`, and draws bindings (fixed seed per model) until N distinct ones have run (a binding drawn
again is not run again; repeated draws widen the spans below, so a model whose only symbol is a
batch runs batches up to 64; widened or beyond N draws, only while the model's --budget of seconds
lasts). A model stopped short of N distinct bindings (a batch of 64 EEG recordings takes seconds)
is topped up to N bindings run with narrow draws again, a repeated binding running again on new
input values, for at most --topup seconds more:

- about 3 in 4 inside the ranges: each symbol, with probability 0.7, a small value (uniform in
  lo..=min(hi, lo+48); lo..=lo+3 for a batch-like symbol, one whose test values are all <= 8;
  both spans widen as draws repeat) or,
  for the others, a multiple of 32 in 32..=128 (the alignment strided CNNs need), else the value of one of the
  model's own test cases (realistic sizes);
- about 1 in 4 outside: one symbol below lo (lo-16..=lo-1, 0 included) or, where hi is bounded,
  above hi (hi+1..=hi+64), the others inside.

Inputs come from each model's own value generator at the binding (a generic one where it cannot
make that binding). Then, with one ONNX Runtime session per model and one `sod2 run` per binding:

- a binding inside the ranges where ONNX Runtime runs: sod2 must run and match it within the
  corpus tolerance (scripts/corpus/check.py) -> "inside ok";
- a binding inside the ranges where ONNX Runtime fails (a guard over the dims: broadcast dims
  that must agree, Concat inputs, ...): sod2 must refuse with a typed error -> "refused (guard)";
- a binding outside a range: sod2 must refuse with a typed error -> "refused (range)";
- about 1 in 12 of the inside draws, where two inputs share a symbol (input_ids and
  attention_mask: [batch, seq]), one input is given one more row along it: sod2 must refuse with a
  typed error -> "refused (tied)";
- anything else is a failure: a crash (signal, panic, timeout), an untyped error, a mismatch, sod2
  refusing a binding inside its ranges that ONNX Runtime runs, or sod2 running (and returning
  outputs) where ONNX Runtime fails or outside its own ranges.

A typed error: exit status 1 and an `error:` line naming one of the model's inputs or input
symbols. Prints per-model counts and a total line; exits non-zero on any failure.

usage: python domain_props.py --sod2 BIN [--bindings N] [--zoo DIR] [--plans DIR] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import collections
import pathlib
import sys
import tempfile
import time
import zlib

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from domain_common import Ort, binding_of, compile_plan, feeds_at, matches, sod2_run, targets  # noqa: E402
from domains import zoo_dir  # noqa: E402


def draw(rng: np.random.Generator, symbols: dict[str, tuple[int, int]], tests: list[dict[str, int]], spread: int = 1) -> tuple[dict[str, int], bool]:
    """(binding, inside the ranges). `spread` widens the small-value spans once the narrow ones
    stop giving new bindings: a batch-like symbol's lo..=lo+3*spread, up to lo+63 (a batch of 64
    images is slow to draw and run already, so a model whose only symbol is a batch runs about 65
    distinct bindings); another's lo..=lo+48*spread, up to lo+1023."""
    base = dict(tests[int(rng.integers(len(tests)))])
    b = {}
    for s, (lo, hi) in symbols.items():
        seen = [t[s] for t in tests if s in t]
        if s in base and rng.random() >= 0.7:
            b[s] = min(max(base[s], lo), hi)
            continue
        batch_like = bool(seen) and max(seen) <= 8
        aligned = [v for v in range(32, 129, 32) if lo <= v <= hi]
        if aligned and not batch_like and rng.random() < 0.3:
            b[s] = int(rng.choice(aligned))
            continue
        top = lo + min(3 * spread, 63) if batch_like else lo + min(48 * spread, 1023)
        b[s] = int(rng.integers(lo, min(hi, top) + 1))
    if rng.random() < 0.25:
        s = list(symbols)[int(rng.integers(len(symbols)))]
        lo, hi = symbols[s]
        if hi < (1 << 22) and rng.random() < 0.5:
            b[s] = int(rng.integers(hi + 1, hi + 65))
        else:
            b[s] = int(rng.integers(max(0, lo - 16), lo))
        return b, False
    return b, True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    ap.add_argument("--bindings", type=int, default=200)
    ap.add_argument("--zoo", type=pathlib.Path, default=None)
    ap.add_argument("--plans", type=pathlib.Path, default=None, help="plan cache folder (shared with domains.py)")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--budget", type=float, default=20.0,
                    help="seconds per model after which no widened draws, nor draws beyond N, are made (default 20)")
    ap.add_argument("--topup", type=float, default=75.0,
                    help="seconds more for a model stopped short of N distinct bindings to run N bindings, "
                         "repeated ones on new input values (default 75)")
    ap.add_argument("--progress", action="store_true", help="print each model's counts to stderr as it finishes")
    ap.add_argument("--dump", type=pathlib.Path, default=None, help="save each failing binding's inputs here (.npz)")
    ap.add_argument("--show", type=int, default=3, help="failures shown per model")
    args = ap.parse_args()
    t_start = time.time()
    sod2 = str(pathlib.Path(args.sod2).resolve())
    zoo = args.zoo or zoo_dir()
    rows, skipped, details = [], [], []
    total = collections.Counter()
    with tempfile.TemporaryDirectory(prefix="sod2-domprops-") as tmp:
        tmp = pathlib.Path(tmp)
        plans = args.plans or tmp
        plans.mkdir(parents=True, exist_ok=True)
        for t in targets(zoo, args.only):
            t0 = time.time()
            try:
                info = compile_plan(sod2, t, plans)
            except RuntimeError as e:
                rows.append((t.name, 0, 0, 0, 0, 0, 1, "-", f"{time.time() - t0:.1f}", f"compile: {e}"[:200]))
                total["failures"] += 1
                continue
            if not info.symbols:
                skipped.append(t.name)
                continue
            ort = Ort(t.path)
            like = t.rep_feeds(np.random.default_rng(0))
            tests = [binding_of(info, c(np.random.default_rng(0))) for c in t.cases]
            rng = np.random.default_rng(zlib.crc32(f"domain_props/{t.name}".encode()))
            c = collections.Counter()
            fails: list[str] = []
            seen: set[tuple] = set()
            # (input, axis) whose dim is a symbol another input also has
            shared = [(n, k) for n, dims in info.inputs.items() for k, d in enumerate(dims)
                      if d in info.symbols and n in like
                      and any(d in other for m, other in info.inputs.items() if m != n and m in like)]
            # Draw until N distinct bindings have run: a binding drawn again is not run again, and
            # every 8 repeats widen the spans (a model whose only symbol is a batch has few small
            # bindings), up to 20 N draws; widened or past N draws, only while the model's time
            # budget lasts (a batch of 64 EEG recordings takes seconds per run). A model stopped
            # there short of N is topped up to N bindings run: narrow draws again, where a binding
            # drawn again runs again on new input values, for at most --topup seconds more.
            spread, repeats, i, topup = 1, 0, -1, False
            while c["distinct"] + c["again"] < args.bindings and i + 1 < 40 * args.bindings:
                if not topup and (i + 1 >= 20 * args.bindings or (
                        (i + 1 >= args.bindings or spread > 1) and time.time() - t0 > args.budget)):
                    c["budget_stop"] = 1
                    topup, spread, t_topup = True, 1, time.time()
                if topup and time.time() - t_topup > args.topup:
                    c["topup_stop"] = 1
                    break
                i += 1
                binding, in_range = draw(rng, info.symbols, tests, spread)
                key = tuple(sorted(binding.items()))
                if key in seen:
                    if not topup:
                        repeats += 1
                        spread += repeats % 8 == 0
                        continue
                    c["again"] += 1
                else:
                    seen.add(key)
                    c["distinct"] += 1
                feeds, how = feeds_at(t, info, binding, rng, i, like)
                c[how] += 1
                tied = False
                if in_range and shared and rng.random() < 0.08:
                    # two inputs that share a symbol disagree on it: one input gets one more row
                    name, axis = shared[int(rng.integers(len(shared)))]
                    a = np.asarray(feeds[name])
                    feeds = {**feeds, name: np.concatenate([a, a.take([0], axis=axis)], axis=axis)}
                    in_range, tied = False, True
                    where_extra = f"; {name} dim {axis} one larger"
                else:
                    where_extra = ""
                # ONNX Runtime aborts the whole process (std::terminate) on a 0-length sequence in its
                # RNN kernels (romanizer_encoder at src [1, 0]), so it is not run where a dim is 0;
                # such a binding is outside sod2's ranges (every lo is at least 1) and needs no oracle.
                if 0 in binding.values():
                    want, ort_err = None, "not run (a 0 dim)"
                else:
                    want, ort_err = ort.run(feeds)
                r = sod2_run(sod2, info, feeds, tmp / t.name)
                where = ", ".join(f"{k}={v}" for k, v in binding.items()) + where_extra
                problem = None
                if r.kind in ("crash", "untyped"):
                    problem = f"sod2 {r.kind}: {r.message}"
                elif tied:
                    if r.kind == "refused":
                        c["tied"] += 1
                    else:
                        problem = "sod2 runs with two inputs disagreeing on a shared symbol"
                elif not in_range:
                    if r.kind == "refused":
                        c["range"] += 1
                        c["ort_ran_outside"] += want is not None
                    else:
                        problem = "sod2 runs outside its declared ranges"
                elif want is not None:
                    if r.kind == "refused":
                        problem = f"sod2 refuses a binding inside its ranges that ONNX Runtime runs: {r.message}"
                    else:
                        _, p = matches(r.outputs, want, t.unordered, t.selected_by)
                        if p:
                            problem = f"mismatch: {p}"
                        else:
                            c["ok"] += 1
                else:
                    if r.kind == "refused":
                        c["guard"] += 1
                        c["guard_msg:" + r.message.split("): ", 1)[-1][:150]] += 1
                    else:
                        problem = "sod2 runs (exit 0, outputs written) where ONNX Runtime fails"
                if problem:
                    c["fail"] += 1
                    if args.dump:
                        args.dump.mkdir(parents=True, exist_ok=True)
                        np.savez(args.dump / f"{t.name}-{c['fail']}.npz", **feeds)
                    ort_said = "ONNX Runtime runs" if want is not None else f"ONNX Runtime: {ort_err}"
                    fails.append(f"{t.name} [{where}] ({'in' if in_range else 'out of'} range; {ort_said[:120]}): {problem}")
            dt = time.time() - t0
            if args.progress:
                print(f"{t.name}: {dict(c)} {dt:.1f} s", file=sys.stderr, flush=True)
            ranges = ", ".join(f"{s} {lo}..={hi}" for s, (lo, hi) in info.symbols.items())
            if c["budget_stop"]:
                details.append(f"{t.name}: {c['distinct']} distinct bindings when its {args.budget:.0f} s budget ran out"
                               f" (or its draws gave no new binding); topped up with {c['again']} bindings drawn again"
                               f" (new input values){', stopped by --topup' if c['topup_stop'] else ''}")
            runs = c["distinct"] + c["again"]
            rows.append((t.name, f"{runs} ({c['distinct']})" if c["again"] else runs, c["ok"], c["range"], c["guard"], c["tied"], c["fail"], c["generic"], f"{dt:.1f}", ranges))
            details += fails[: args.show]
            if len(fails) > args.show:
                details.append(f"{t.name}: ... {len(fails) - args.show} more failures")
            guards = [(k[10:], n) for k, n in c.items() if k.startswith("guard_msg:")]
            for msg, n in sorted(guards, key=lambda x: -x[1])[:2]:
                details.append(f"{t.name}: guard refusals ({n}x), e.g.: {msg}")
            if c["ort_ran_outside"]:
                details.append(f"{t.name}: ONNX Runtime ran {c['ort_ran_outside']} of the {c['range']} bindings outside sod2's ranges (sod2 refused them)")
            total.update({k: c[k] for k in ("ok", "range", "guard", "tied", "fail", "generic")})
            total["bindings"] += c["distinct"] + c["again"]
            total["distinct"] += c["distinct"]
            total["short"] += c["distinct"] + c["again"] < args.bindings
    print(f"\n## Symbol domains, property test: random draws until {args.bindings} distinct bindings per model have run (topped up to {args.bindings} runs, some bindings drawn again, where a model's distinct draws hit its budget) (sod2 run vs ONNX Runtime, corpus tolerance)\n")
    print("| model | bindings run (distinct) | inside ok | refused (range) | refused (guard) | refused (tied) | failures | generic inputs | s | ranges |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    if skipped:
        print(f"\nno input symbols (nothing to bind): {', '.join(skipped)}")
    if details:
        print("\n" + "\n".join(details))
    print(f"\ndomain properties: {len(rows)} models, {total['bindings']} bindings run ({total['distinct']} distinct; {total['short']} models under {args.bindings}): {total['ok']} inside ok, "
          f"{total['range']} refused outside a range, {total['guard']} refused by a guard (ONNX Runtime fails too), "
          f"{total['tied']} refused for inputs disagreeing on a shared symbol, "
          f"{total['fail']} failures; {time.time() - t_start:.0f} s")
    return 1 if total["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
