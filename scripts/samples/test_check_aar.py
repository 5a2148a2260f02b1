"""Self-tests of check_aar.py: the AAR from scripts/android-aar.sh passes, and copies of it broken
one way each (missing .so, wrong architecture, missing or wrong manifest, no classes, missing JNI
functions, ...) are rejected with the matching message.

usage: python -m unittest scripts/samples/test_check_aar.py
The good AAR is $SOD2_AAR, else target/samples/sod2-arm64.aar (scripts/samples.sh builds it).
"""
from __future__ import annotations

import io
import os
import pathlib
import sys
import tempfile
import unittest
import zipfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import check_aar  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
SO = "jni/arm64-v8a/libsod2_jni.so"


class CheckAarTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        path = pathlib.Path(os.environ.get("SOD2_AAR", ROOT / "target/samples/sod2-arm64.aar"))
        if not path.is_file():
            raise RuntimeError(f"{path} not found: run scripts/android-aar.sh {path} first")
        with zipfile.ZipFile(path) as z:
            cls.entries = {n: z.read(n) for n in z.namelist()}
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def build(self, entries: dict[str, bytes]) -> str:
        path = os.path.join(self.tmp.name, f"{self.id().rsplit('.', 1)[-1]}.aar")
        with zipfile.ZipFile(path, "w") as z:
            for n, data in entries.items():
                z.writestr(n, data)
        return path

    def variant(self, drop=(), replace: dict[str, bytes] | None = None) -> str:
        """The good AAR without the entries in `drop`, with the entries in `replace` added or replaced."""
        e = {n: d for n, d in self.entries.items() if n not in drop}
        e.update(replace or {})
        return self.build(e)

    def rejected(self, path: str, *fragments: str) -> list[str]:
        errors, _ = check_aar.check(path)
        self.assertTrue(errors, "a broken AAR was accepted")
        text = "\n".join(errors)
        for f in fragments:
            self.assertIn(f, text)
        return errors

    def so(self) -> bytes:
        return self.entries[SO]

    def jar_without(self, pred) -> bytes:
        src = zipfile.ZipFile(io.BytesIO(self.entries["classes.jar"]))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as z:
            for n in src.namelist():
                if not pred(n):
                    z.writestr(n, src.read(n))
        return out.getvalue()

    def test_the_built_aar_passes(self):
        errors, summary = check_aar.check(self.build(dict(self.entries)))
        self.assertEqual(errors, [])
        self.assertIn("ELF64 aarch64 shared object", summary)
        self.assertIn("minSdk", summary)

    def test_missing_so(self):
        self.rejected(self.variant(drop=[SO]), f"missing {SO}")

    def test_wrong_arch_so(self):
        so = bytearray(self.so())
        so[18:20] = (62).to_bytes(2, "little")  # e_machine: x86-64
        self.rejected(self.variant(replace={SO: bytes(so)}), "ELF64 x86-64, expected ELF64 aarch64")

    def test_so_under_an_unknown_abi(self):
        self.rejected(self.variant(replace={"jni/arm64/libsod2_jni.so": self.so()}), "jni/arm64/libsod2_jni.so: not jni/<abi>")

    def test_not_an_elf(self):
        self.rejected(self.variant(replace={SO: b"#!/bin/sh\n" * 10}), "not an ELF file")

    def test_not_a_shared_object(self):
        so = bytearray(self.so())
        so[16:18] = (2).to_bytes(2, "little")  # e_type: ET_EXEC
        self.rejected(self.variant(replace={SO: bytes(so)}), "expected a shared object")

    def test_no_jni_functions(self):
        so = self.so().replace(b"Java_dev_sod2_", b"Java_dev_xxx2_")
        self.rejected(self.variant(replace={SO: so}), "exports no Java_dev_sod2_* JNI function", "dev.sod2.Native.modelLoad")

    def test_one_native_method_unbound(self):
        so = self.so().replace(b"Java_dev_sod2_Native_version\0", b"Java_dev_sod2_Native_versioX\0")
        errors = self.rejected(self.variant(replace={SO: so}), "native method(s) dev.sod2.Native.version")
        self.assertEqual(len(errors), 1, errors)

    def test_no_jni_on_load(self):
        so = self.so().replace(b"JNI_OnLoad\0", b"JNI_OnLoaX\0")
        self.rejected(self.variant(replace={SO: so}), "does not export JNI_OnLoad")

    def test_missing_manifest(self):
        self.rejected(self.variant(drop=["AndroidManifest.xml"]), "missing AndroidManifest.xml")

    def test_manifest_does_not_parse(self):
        self.rejected(self.variant(replace={"AndroidManifest.xml": b"<manifest package='dev.sod2'>"}), "does not parse")

    def test_manifest_names_another_package(self):
        m = self.entries["AndroidManifest.xml"].replace(b'package="dev.sod2"', b'package="dev.other"')
        self.rejected(self.variant(replace={"AndroidManifest.xml": m}), "package 'dev.other', expected 'dev.sod2'")

    def test_manifest_without_min_sdk(self):
        m = b'<manifest xmlns:android="http://schemas.android.com/apk/res/android" package="dev.sod2"/>'
        self.rejected(self.variant(replace={"AndroidManifest.xml": m}), "minSdkVersion")

    def test_missing_classes_jar(self):
        self.rejected(self.variant(drop=["classes.jar"]), "missing classes.jar")

    def test_no_classes(self):
        jar = self.jar_without(lambda n: n.endswith(".class"))
        self.rejected(self.variant(replace={"classes.jar": jar}), "no dev/sod2/*.class", "declares no native methods")

    def test_no_sod2_model(self):
        jar = self.jar_without(lambda n: n == "dev/sod2/Sod2Model.class")
        self.rejected(self.variant(replace={"classes.jar": jar}), "no dev/sod2/Sod2Model.class")

    def test_classes_jar_not_a_zip(self):
        self.rejected(self.variant(replace={"classes.jar": b"PK but not really"}), "classes.jar is not a zip")

    def test_missing_keep_rules(self):
        self.rejected(self.variant(replace={"proguard.txt": b"# nothing kept\n"}), "no -keep rule for dev.sod2.Native")

    def test_missing_r_txt(self):
        self.rejected(self.variant(drop=["R.txt"]), "missing R.txt")

    def test_not_a_zip(self):
        path = os.path.join(self.tmp.name, "plain.aar")
        pathlib.Path(path).write_bytes(b"not a zip")
        self.rejected(path, "not a zip archive")


if __name__ == "__main__":
    unittest.main()
