"""Self-tests of the domain checks' harness: how a `sod2 run` is classified (a typed refusal, a
crash, an untyped error), and that the property test's draws are inside or outside the ranges as
they say.

usage: python -m unittest scripts/corpus/test_domains.py
"""
from __future__ import annotations

import pathlib
import stat
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from domain_common import PlanInfo, sod2_run  # noqa: E402
from domain_props import draw  # noqa: E402


def fake_sod2(folder: pathlib.Path, body: str) -> str:
    """A stand-in `sod2` that runs `body` (a shell script) whatever its arguments."""
    p = folder / "sod2"
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return str(p)


class Classify(unittest.TestCase):
    def run_with(self, body: str) -> str:
        with tempfile.TemporaryDirectory() as t:
            t = pathlib.Path(t)
            info = PlanInfo(t / "p.sod2", "", {"seq": (1, 512)}, {"ids": ["batch", "seq"]}, [])
            return sod2_run(fake_sod2(t, body), info, {"ids": np.zeros((1, 2), np.int64)}, t / "w").kind

    def test_typed_refusal_names_an_input_or_symbol(self) -> None:
        self.assertEqual(self.run_with("echo 'error: input `ids`: dim 1 (seq = 600) is outside the declared range 1..=512' >&2; exit 1"), "refused")
        self.assertEqual(self.run_with("echo \"error: input shapes outside the model's domain (seq = 600): ...\" >&2; exit 1"), "refused")

    def test_an_error_naming_neither_is_untyped(self) -> None:
        self.assertEqual(self.run_with("echo 'error: step `Reshape_1` (Reshape): arena ranges of this step overlap' >&2; exit 1"), "untyped")
        self.assertEqual(self.run_with("exit 1"), "untyped")

    def test_panic_and_signal_are_crashes(self) -> None:
        self.assertEqual(self.run_with("echo \"thread 'main' panicked at core/x.rs:1:1: seq\" >&2; exit 101"), "crash")
        self.assertEqual(self.run_with("kill -SEGV $$"), "crash")

    def test_success(self) -> None:
        self.assertEqual(self.run_with("exit 0"), "ok")


class Draws(unittest.TestCase):
    def test_inside_and_outside_as_labelled(self) -> None:
        symbols = {"batch": (1, 1 << 22), "seq": (192, 703), "H": (33, 1 << 22)}
        tests = [{"batch": 1, "seq": 512, "H": 48}, {"batch": 3, "seq": 384, "H": 64}]
        rng = np.random.default_rng(0)
        kinds = set()
        for _ in range(500):
            b, inside = draw(rng, symbols, tests)
            within = all(lo <= b[s] <= hi for s, (lo, hi) in symbols.items())
            self.assertEqual(inside, within, b)
            kinds.add(inside)
            self.assertLessEqual(b["batch"], 4)  # batch-like (test values <= 8): lo..=lo+3 or a test value
        self.assertEqual(kinds, {True, False})


if __name__ == "__main__":
    unittest.main()
