"""End-to-end test of the uniffi bindings (the FFI layer behind the Swift package), through the
Python bindings uniffi generates from the same library: runs the sample at two shapes (printing
the summary scripts/samples/check.py compares with `sod2 run`) and checks that misuse raises the
right error with a clear message, and that the generated `Sod2Error` has exactly the cases of the
error table shared with the C and Kotlin bindings (`error_cases()`, from that table).

usage: python uniffi_test.py GENERATED_PYTHON_DIR PLAN
"""
import struct
import sys
import threading

sys.path.insert(0, sys.argv[1])
import sod2_uniffi as s  # noqa: E402

plan = sys.argv[2]


def tensor_i64(values, shape):
    return s.TensorData(element_type=s.ElementType.I64, shape=shape, data=struct.pack(f"<{len(values)}q", *values))


model = s.Model.load(plan)
print(f"sod2 {s.version()}: {len(model.input_names())} inputs, {len(model.output_names())} outputs")
session = model.new_session()
session.set_threads(2)  # intra-op threads: the caller plus one worker
for batch, seq in [(1, 7), (2, 16)]:
    n = batch * seq
    ids = [(i * 7) % 97 + 2 for i in range(n)]
    outs = session.run([tensor_i64(ids, [batch, seq]), tensor_i64([1] * n, [batch, seq])])
    print(f"shape batch={batch} seq={seq} arena_bytes={session.arena_bytes()}")
    for k, t in enumerate(outs):
        v = struct.unpack(f"<{len(t.data) // 4}f", t.data)
        dims = ", ".join(str(d) for d in t.shape)
        print(f"output {k} dims [{dims}] sum={sum(v):.6f} mean_abs={sum(abs(x) for x in v) / len(v):.6f} first={v[0]:.6f}")

failures = 0


def expect(what, fn, err_type, part):
    global failures
    try:
        fn()
    except err_type as e:
        if part in str(e):
            print(f"ok   {what}: {e}", file=sys.stderr)
            return
        print(f"FAIL {what}: message {e!r} lacks {part!r}", file=sys.stderr)
    except Exception as e:  # noqa: BLE001
        print(f"FAIL {what}: {type(e).__name__}: {e}", file=sys.stderr)
    else:
        print(f"FAIL {what}: no error", file=sys.stderr)
    failures += 1


raw = bytearray(open(plan, "rb").read())
raw[200] ^= 0x20
expect("missing file", lambda: s.Model.load("/no/such.sod2"), s.Sod2Error.Io, "cannot read plan")
expect("corrupted plan", lambda: s.Model.from_bytes(bytes(raw)), s.Sod2Error.Plan, "checksum")
f32 = s.TensorData(element_type=s.ElementType.F32, shape=[1, 3], data=bytes(12))
expect("wrong dtype", lambda: session.run([f32, f32]), s.Sod2Error.Input, "element type f32, the model expects i64")
expect("wrong count", lambda: session.run([f32]), s.Sod2Error.Input, "takes 2 inputs, 1 were given")
short = s.TensorData(element_type=s.ElementType.I64, shape=[1, 3], data=bytes(8))
expect("wrong size", lambda: session.run([short, short]), s.Sod2Error.Input, "8 bytes given")
expect("out of range", lambda: session.prepare([[1, 999], [1, 999]]), s.Sod2Error.Input, "outside the declared range")
expect("zero threads", lambda: session.set_threads(0), s.Sod2Error.Run, "0 threads: expected 1..=256")
# A shape needing more than the memory limit: an Input error, and the session runs on.
small = session.prepare([[1, 7], [1, 7]])
session.set_memory_limit(small)
big = tensor_i64([2] * (8 * 128), [8, 128])
expect("past the memory limit", lambda: session.run([big, big]), s.Sod2Error.Input, f"bytes, limit {small}")
ids7 = tensor_i64([2] * 7, [1, 7])
if list(session.run([ids7, ids7])[0].shape) != [1, 7, 32]:
    print("FAIL a run after a refused shape", file=sys.stderr)
    failures += 1
session.set_memory_limit(0)
if list(session.run([big, big])[0].shape) != [8, 128, 32]:
    print("FAIL a run with the limit lifted", file=sys.stderr)
    failures += 1

# The kernels' process-wide cap: a one-thread session run on a fresh thread (its kernel buffers
# not grown yet; the session above also runs on a pool worker whose buffers have) under a one-byte
# cap is an Input error, and it runs once the cap is lifted.
capped = model.new_session()
s.set_kernel_memory_limit(1)
try:
    t = threading.Thread(target=lambda: expect("past the kernel memory cap (fresh thread)",
                                               lambda: capped.run([big, big]), s.Sod2Error.Input, "bytes, limit 1"))
    t.start()
    t.join()
finally:
    s.set_kernel_memory_limit(0)
if list(capped.run([big, big])[0].shape) != [8, 128, 32]:
    print("FAIL a run with the kernel cap lifted", file=sys.stderr)
    failures += 1

# The error table's Swift column: every case exists in the generated bindings as a subclass of
# Sod2Error, and the bindings have no other case.
cases = s.error_cases()
generated = {c.__name__ for c in s.Sod2Error.__subclasses__()}


def is_case(name):
    cls = getattr(s.Sod2Error, name, None)
    return isinstance(cls, type) and issubclass(cls, s.Sod2Error)


missing = [c for c in cases if not is_case(c)]
if missing or generated != set(cases):
    print(f"FAIL Sod2Error cases {sorted(generated)} vs the table's {cases} (missing: {missing})", file=sys.stderr)
    failures += 1
else:
    print(f"ok   Sod2Error cases = the table's {len(cases)}: {', '.join(cases)}", file=sys.stderr)
print(f"uniffi misuse and error cases: {8 - failures} passed, {failures} failed", file=sys.stderr)
sys.exit(1 if failures else 0)
