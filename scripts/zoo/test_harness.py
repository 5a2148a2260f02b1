"""Self-tests of the conformance harness: it must catch wrong shapes (a harness that cannot fail
checks nothing)."""
import pathlib
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from conformance import check_case, eval_dim  # noqa: E402


def facts(shapes, fresh=()):
    return {
        "tensors": [{"name": k, "shape": v} for k, v in shapes.items()],
        "symbols": [{"name": f, "origin": "node"} for f in fresh],
    }


class HarnessTest(unittest.TestCase):
    def test_dim_syntax(self):
        env = {"H": 225, "seq": 7}
        self.assertEqual(eval_dim("floordiv(H - 1, 2) + 1", env), 113)
        self.assertEqual(eval_dim("ceildiv(H, 8)", env), 29)
        self.assertEqual(eval_dim("mod(-7, 3)", env), 2)
        self.assertEqual(eval_dim("min(seq, 3)*max(2, seq) - 2*seq", env), 7)
        with self.assertRaises(ValueError):
            eval_dim("__import__('os')", env)

    def test_correct_shapes_pass(self):
        f = facts({"x": ["batch", "seq"], "y": ["batch", "2*seq + 1"]})
        case = {"inputs": ["x"], "tensors": {"x": {"shape": [2, 7]}, "y": {"shape": [2, 15]}}}
        checked, bad, _ = check_case(f, case)
        self.assertEqual((checked, bad), (2, []))

    def test_wrong_shape_is_a_mismatch(self):
        f = facts({"x": ["batch", "seq"], "y": ["batch", "2*seq"]})
        case = {"inputs": ["x"], "tensors": {"x": {"shape": [2, 7]}, "y": {"shape": [2, 15]}}}
        _, bad, _ = check_case(f, case)
        self.assertEqual(len(bad), 1)
        self.assertIn("y", bad[0])

    def test_wrong_rank_and_missing_rank_are_mismatches(self):
        f = facts({"x": ["n"], "y": ["n", "1"], "z": None})
        case = {"inputs": ["x"], "tensors": {"x": {"shape": [3]}, "y": {"shape": [3]}, "z": {"shape": [3]}}}
        _, bad, _ = check_case(f, case)
        self.assertEqual(len(bad), 2)

    def test_fresh_symbols_bind_from_observation_and_must_agree(self):
        f = facts({"x": ["n"], "nz": ["2", "k"], "g": ["k", "n"]}, fresh=["k"])
        ok = {"inputs": ["x"], "tensors": {"x": {"shape": [5]}, "nz": {"shape": [2, 3]}, "g": {"shape": [3, 5]}}}
        self.assertEqual(check_case(f, ok)[1], [])
        bad = {"inputs": ["x"], "tensors": {"x": {"shape": [5]}, "nz": {"shape": [2, 3]}, "g": {"shape": [4, 5]}}}
        self.assertEqual(len(check_case(f, bad)[1]), 1)


if __name__ == "__main__":
    unittest.main()
