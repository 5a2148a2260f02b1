"""Shared by `domains.py` and `domain_props.py`: the models (zoo + corpus, int8 ones left out), a
plan per model compiled with no flags, the symbol ranges and input dims `sod2 inspect` prints,
inputs at any binding of the input symbols (each model's own value generator), ONNX Runtime, and
one `sod2 run` classified as ok / typed refusal / crash.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import re
import subprocess
import sys
from typing import Callable

import numpy as np

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "zoo"))
from catalog import MODELS  # noqa: E402
from check import compare  # noqa: E402  (the corpus tolerance)
from fetch import model_path  # noqa: E402
from plan_names import sanitize  # noqa: E402

DEFAULT_CAP = 1 << 22  # sod2's DEFAULT_DIM_MAX: the range of a symbol nothing bounds
Feeds = dict[str, np.ndarray]


@dataclasses.dataclass
class Target:
    """One model: its file, how to make inputs at a binding, the representative binding's case."""

    name: str
    source: str  # "zoo" or "corpus"
    path: pathlib.Path
    make: Callable[[dict[str, int], np.random.Generator, int], Feeds]
    """(binding of the input symbols, rng, k) -> feeds; k picks an input variant."""
    rep_feeds: Callable[[np.random.Generator], Feeds]
    """Feeds of the model's first test case (its symbols' representative values)."""
    cases: list[Callable[[np.random.Generator], Feeds]]
    """Feeds of each of the model's test cases (the realistic sizes)."""
    unordered: frozenset[str] = frozenset()
    selected_by: dict[str, str] = dataclasses.field(default_factory=dict)
    """NonMaxSuppression output -> the output gathering its boxes (conformance.SELECTED_BY)."""


@dataclasses.dataclass
class PlanInfo:
    plan: pathlib.Path
    compile_text: str
    symbols: dict[str, tuple[int, int]]  # input symbols only
    inputs: dict[str, list[str]]  # input -> dims as printed (a number or a symbol)
    outputs: list[str]


def targets(zoo_models: pathlib.Path, only: list[str] | None = None) -> list[Target]:
    from conformance import SELECTED_BY, SET_OUTPUTS
    from models import SPECS

    out: list[Target] = []
    for spec in SPECS:
        if only and spec.name not in only:
            continue

        def make(binding, rng, k, spec=spec):
            d = dict(spec.sweep[0].dims)
            d.update(binding)
            return spec.inputs(d, spec.variants[k % len(spec.variants)], rng)

        out.append(Target(
            spec.name, "zoo", zoo_models / f"{spec.name}.onnx", make,
            lambda rng, spec=spec: spec.inputs(spec.sweep[0].dims, spec.sweep[0].variant, rng),
            [lambda rng, c=c, spec=spec: spec.inputs(c.dims, c.variant, rng) for c in spec.sweep],
            frozenset(SET_OUTPUTS.get(spec.name, ())),
            dict(SELECTED_BY.get(spec.name, {})),
        ))
    cache = ROOT / ".cache" / "corpus"
    for m in MODELS:
        # int8 models are compared under their own tolerance (check.py); not here yet
        if m.expect or m.quantized or (only and m.name not in only):
            continue
        out.append(Target(
            m.name, "corpus", model_path(cache, m), None,  # make: set by `attach` (needs the plan's input dims)
            lambda rng, m=m: m.fill(m.shapes[0], rng),
            [lambda rng, s=s, m=m: m.fill(s, rng) for s in m.shapes],
            m.unordered,
        ))
    return out


def attach_corpus_maker(t: Target, info: PlanInfo) -> None:
    """A corpus model's fill takes input shapes: substitute the binding into the first case's
    shapes wherever the plan declares a symbol."""
    m = next(m for m in MODELS if m.name == t.name)

    def make(binding, rng, k):
        shapes = {}
        for name, shape in m.shapes[0].items():
            dims = info.inputs.get(name)
            if dims is None or len(dims) != len(shape):
                shapes[name] = shape
                continue
            shapes[name] = tuple(binding.get(d, v) if not d.lstrip("-").isdigit() else v for d, v in zip(dims, shape))
        return m.fill(shapes, rng)

    t.make = make


def sod2_key(sod2: str) -> str:
    st = os.stat(sod2)
    return f"{st.st_size}-{st.st_mtime_ns}"


def compile_plan(sod2: str, t: Target, plans: pathlib.Path) -> PlanInfo:
    """`sod2 compile MODEL -o PLAN` (no flags), cached in `plans` by the binary and the model's
    content, then `sod2 inspect PLAN`. Raises RuntimeError when compile fails."""
    h = hashlib.sha256(sod2_key(sod2).encode())
    h.update(t.path.read_bytes())
    plan = plans / f"{t.name}-{h.hexdigest()[:12]}.sod2"
    log = plan.with_suffix(".compile.txt")
    if not (plan.exists() and log.exists()):
        r = subprocess.run([sod2, "compile", str(t.path), "-o", str(plan)], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("compile failed: " + " ".join(r.stderr.strip().splitlines()[-2:])[:300])
        log.write_text(r.stdout + r.stderr)
    r = subprocess.run([sod2, "inspect", str(plan)], capture_output=True, text=True, check=True)
    symbols, inputs, outputs, section = {}, {}, [], None
    for line in r.stdout.splitlines():
        if not line.startswith(" "):
            section = line.rstrip(":")
            continue
        if section == "symbols":
            mm = re.match(r"\s+(\S+) in (-?\d+)\.\.=(\S+)(.*)$", line)
            if mm and "bound after step" not in mm.group(4):
                hi = int(mm.group(3)) if mm.group(3) != "inf" else 1 << 62
                symbols[mm.group(1)] = (int(mm.group(2)), hi)
        elif section in ("inputs", "outputs"):
            mm = re.match(r"\s+(\S+) \S+ \[(.*)\]", line)
            if mm:
                if section == "inputs":
                    inputs[mm.group(1)] = [d.strip() for d in mm.group(2).split(",") if d.strip()]
                else:
                    outputs.append(mm.group(1))
    info = PlanInfo(plan, log.read_text(), symbols, inputs, outputs)
    if t.source == "corpus":
        attach_corpus_maker(t, info)
    return info


def binding_of(info: PlanInfo, feeds: Feeds) -> dict[str, int]:
    """The input symbols' values in `feeds` (read through the plan's input dims)."""
    b: dict[str, int] = {}
    for name, dims in info.inputs.items():
        if name not in feeds:
            continue
        shape = np.asarray(feeds[name]).shape
        for d, v in zip(dims, shape):
            if d in info.symbols:
                b.setdefault(d, int(v))
    return b


def generic_feeds(info: PlanInfo, binding: dict[str, int], like: Feeds, rng: np.random.Generator) -> Feeds:
    """Inputs at `binding` when the model's own generator cannot make them (a binding outside
    what it supports): the dtypes of `like`, floats normal, integers 0, booleans true."""
    out = {}
    for name, v in like.items():
        v = np.asarray(v)
        dims = info.inputs.get(name)
        if dims is None or len(dims) != v.ndim:
            out[name] = v
            continue
        shape = tuple(binding.get(d, s) if d in info.symbols else s for d, s in zip(dims, v.shape))
        if np.issubdtype(v.dtype, np.floating):
            out[name] = rng.standard_normal(shape).astype(v.dtype)
        elif v.dtype == np.bool_:
            out[name] = np.ones(shape, dtype=bool)
        else:
            out[name] = np.zeros(shape, dtype=v.dtype)
    return out


def feeds_at(t: Target, info: PlanInfo, binding: dict[str, int], rng: np.random.Generator, k: int, like: Feeds) -> tuple[Feeds, str]:
    """Inputs at `binding`: the model's generator when it supports the binding (and really makes
    inputs of those dims), else `generic_feeds`. Returns (feeds, "model" or "generic")."""
    try:
        f = t.make(binding, rng, k)
        got = binding_of(info, f)
        if all(got.get(s) == v for s, v in binding.items()):
            return f, "model"
    except Exception:  # noqa: BLE001 - a generator that cannot make this binding (e.g. lengths >= 7)
        pass
    return generic_feeds(info, binding, like, rng), "generic"


class Ort:
    def __init__(self, path: pathlib.Path) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 4
        self.sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.sess.get_outputs()]

    def run(self, feeds: Feeds) -> tuple[dict[str, np.ndarray] | None, str]:
        """(outputs, "") or (None, ONNX Runtime's error, shortened)."""
        try:
            return dict(zip(self.outputs, (np.asarray(v) for v in self.sess.run(None, feeds)))), ""
        except Exception as e:  # noqa: BLE001
            msg = str(e)
            mm = re.search(r"Status Message: (.*)", msg)
            return None, (mm.group(1) if mm else msg).strip().splitlines()[0][:160]


@dataclasses.dataclass
class Sod2Result:
    kind: str  # "ok", "refused" (a typed error), "crash", "untyped" (non-zero exit, no proper `error:`)
    outputs: dict[str, np.ndarray] | None
    message: str
    rc: int


def sod2_run(sod2: str, info: PlanInfo, feeds: Feeds, work: pathlib.Path, timeout: float = 120) -> Sod2Result:
    """One `sod2 run`; a refusal counts as typed when sod2 exits with status 1, prints an
    `error:` line naming one of the model's inputs or input symbols, and nothing panicked."""
    work.mkdir(parents=True, exist_ok=True)
    args = []
    for i, (k, v) in enumerate(feeds.items()):
        p = work / f"in{i}.npy"
        np.save(p, v)
        args.append(f"--input={k}={p}")
    out = work / "out"
    if out.exists():
        for f in out.iterdir():
            f.unlink()
    env = dict(os.environ, RUST_BACKTRACE="0")
    try:
        r = subprocess.run([sod2, "run", str(info.plan), *args, "--out", str(out)], capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return Sod2Result("crash", None, f"timed out after {timeout} s", -1)
    err = r.stderr.strip()
    if r.returncode < 0 or "panicked" in err or r.returncode == 101:
        last = [ln for ln in err.splitlines() if "panicked" in ln] or err.splitlines()[-1:] or [f"signal {-r.returncode}"]
        return Sod2Result("crash", None, f"rc {r.returncode}: {last[0][:200]}", r.returncode)
    if r.returncode != 0:
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        msg = lines[-1] if lines else (err.splitlines() or ["(no message)"])[-1]
        names = list(info.inputs) + list(info.symbols)
        typed = bool(lines) and any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", msg) for n in names)
        return Sod2Result("refused" if typed else "untyped", None, msg[:400], r.returncode)
    got = {}
    for name in info.outputs:
        p = out / f"{sanitize(name)}.npy"
        if p.exists():
            got[name] = np.load(p)
    return Sod2Result("ok", got, "", 0)


def rows_sorted(a: np.ndarray) -> np.ndarray:
    g = a.reshape(-1, a.shape[-1]) if a.ndim >= 2 else a.reshape(-1, 1)
    return g[np.lexsort(g.T[::-1])] if g.size else g


def selection_rows(sel: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """NonMaxSuppression's [n, 3] selection with the [1, n, 4] boxes gathered by it, as rows of
    (batch, class, box) sorted by batch, class and the box rounded to 1e-2 (float ties apart)."""
    rows = np.concatenate([sel[:, :2].astype(np.float64), boxes.reshape(len(sel), -1).astype(np.float64)], axis=1)
    key = np.round(rows, 2)
    return rows[np.lexsort(key.T[::-1])] if rows.size else rows


def matches(got: dict[str, np.ndarray], want: dict[str, np.ndarray], unordered: frozenset[str],
            selected_by: dict[str, str] | None = None) -> tuple[float, str | None]:
    """Every ONNX Runtime output against sod2's under the corpus tolerance (check.compare); the
    `unordered` outputs as sets of rows; a NonMaxSuppression output named in `selected_by` by the
    boxes it selects (`selection_rows`), since its indices point into a tie-sensitive order.
    (max abs error, first problem or None)."""
    worst, problems = 0.0, []
    for name, w in want.items():
        if name not in got:
            problems.append(f"{name}: sod2 wrote no such output")
            continue
        g = got[name]
        gathered = (selected_by or {}).get(name)
        if gathered and gathered in got and gathered in want and g.shape == w.shape \
                and got[gathered].size == want[gathered].size == 4 * len(w):
            err, p = compare(name, selection_rows(g, got[gathered]), selection_rows(w, want[gathered]))
            worst = max(worst, err)
            if p:
                problems.append(p)
            continue
        if name in unordered and g.shape == w.shape:
            g, w = rows_sorted(g), rows_sorted(w)
        err, p = compare(name, g, w)
        worst = max(worst, err)
        if p:
            problems.append(p)
    return worst, ("; ".join(problems)[:300] if problems else None)
