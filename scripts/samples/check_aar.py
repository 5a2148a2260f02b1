"""Validates the layout of an Android library archive (AAR) built by scripts/android-aar.sh.

Checks, without the Android SDK:
- the archive is a zip with AndroidManifest.xml, classes.jar, R.txt, proguard.txt and
  jni/<abi>/libsod2_jni.so for every wanted ABI (default arm64-v8a); no unknown ABI folder;
- the manifest parses, is a <manifest> naming the package (default dev.sod2) and declares
  <uses-sdk android:minSdkVersion> >= 21 (the first API level with 64-bit ABIs);
- classes.jar is a zip of class files (0xCAFEBABE) with dev/sod2/*.class, Sod2Model among them;
- every .so is an ELF shared object (ET_DYN) of its ABI's class and machine (arm64-v8a: 64-bit
  aarch64), exporting JNI_OnLoad and a Java_<class>_<method> function for every native method
  declared in classes.jar (JNI short names, or the long ones for overloads);
- proguard.txt keeps the JNI class (dev.sod2.Native) from shrinking.

usage: python check_aar.py AAR [--package dev.sod2] [--abi arm64-v8a ...]
Prints one summary line and exits 0, or prints every problem and exits 1.
"""
from __future__ import annotations

import argparse
import io
import struct
import sys
import xml.etree.ElementTree as ET
import zipfile

ANDROID_NS = "{http://schemas.android.com/apk/res/android}"
LIB = "libsod2_jni.so"
# Android ABI -> (ELF class: 1 = 32-bit, 2 = 64-bit; e_machine; name)
ABIS = {
    "arm64-v8a": (2, 183, "aarch64"),
    "armeabi-v7a": (1, 40, "arm"),
    "x86_64": (2, 62, "x86-64"),
    "x86": (1, 3, "x86"),
}
MACHINES = {183: "aarch64", 40: "arm", 62: "x86-64", 3: "x86", 243: "riscv"}
ET_DYN = 3
ACC_NATIVE = 0x0100


class Bad(Exception):
    """A malformed input (the message says what)."""


def elf_exports(data: bytes) -> tuple[int, int, int, set[str]]:
    """(ELF class, e_type, e_machine, defined global/weak function symbols of .dynsym)."""
    if len(data) < 52 or data[:4] != b"\x7fELF":
        raise Bad("not an ELF file")
    ei_class, ei_data = data[4], data[5]
    if ei_data != 1:
        raise Bad("not a little-endian ELF file")
    if ei_class == 2:
        e_type, e_machine = struct.unpack_from("<HH", data, 16)
        e_shoff, = struct.unpack_from("<Q", data, 40)
        e_shentsize, e_shnum = struct.unpack_from("<HH", data, 58)
        sh_fmt, sym_fmt, sym_size = "<IIQQQQIIQQ", "<IBBHQQ", 24
    elif ei_class == 1:
        e_type, e_machine = struct.unpack_from("<HH", data, 16)
        e_shoff, = struct.unpack_from("<I", data, 32)
        e_shentsize, e_shnum = struct.unpack_from("<HH", data, 46)
        sh_fmt, sym_fmt, sym_size = "<IIIIIIIIII", "<IIIBBH", 16
    else:
        raise Bad(f"unknown ELF class {ei_class}")
    try:
        sections = [struct.unpack_from(sh_fmt, data, e_shoff + i * e_shentsize) for i in range(e_shnum)]
        names: set[str] = set()
        for sh in sections:
            sh_type, sh_offset, sh_size, sh_link = sh[1], sh[4], sh[5], sh[6]
            if sh_type != 11:  # SHT_DYNSYM
                continue
            str_off = sections[sh_link][4]
            for off in range(sh_offset + sym_size, sh_offset + sh_size, sym_size):  # entry 0 is null
                if ei_class == 2:
                    st_name, st_info, _, st_shndx, _, _ = struct.unpack_from(sym_fmt, data, off)
                else:
                    st_name, _, _, st_info, _, st_shndx = struct.unpack_from(sym_fmt, data, off)
                bind, typ = st_info >> 4, st_info & 0xF
                if st_shndx != 0 and bind in (1, 2) and typ == 2:  # defined, GLOBAL/WEAK, FUNC
                    end = data.index(b"\0", str_off + st_name)
                    names.add(data[str_off + st_name:end].decode("ascii", "replace"))
    except (struct.error, IndexError, ValueError) as e:
        raise Bad(f"truncated or corrupt section/symbol tables ({e})") from e
    return ei_class, e_type, e_machine, names


def native_methods(data: bytes) -> tuple[str, list[tuple[str, str]]]:
    """(internal class name, [(name, descriptor)] of its native methods) of a class file."""
    if data[:4] != b"\xca\xfe\xba\xbe":
        raise Bad("not a class file (no 0xCAFEBABE)")
    try:
        count, = struct.unpack_from(">H", data, 8)
        pos, utf8, classes = 10, {}, {}
        i = 1
        while i < count:
            tag = data[pos]
            if tag == 1:
                n, = struct.unpack_from(">H", data, pos + 1)
                utf8[i] = data[pos + 3:pos + 3 + n].decode("utf-8", "replace")
                pos += 3 + n
            elif tag == 7:
                classes[i], = struct.unpack_from(">H", data, pos + 1)
                pos += 3
            elif tag in (8, 16, 19, 20):
                pos += 3
            elif tag == 15:
                pos += 4
            elif tag in (3, 4, 9, 10, 11, 12, 17, 18):
                pos += 5
            elif tag in (5, 6):
                pos += 9
                i += 1  # 8-byte constants take two slots
            else:
                raise Bad(f"unknown constant pool tag {tag}")
            i += 1
        _, this, _, n_if = struct.unpack_from(">HHHH", data, pos)
        pos += 8 + 2 * n_if
        methods = []
        for member in ("fields", "methods"):
            n, = struct.unpack_from(">H", data, pos)
            pos += 2
            for _ in range(n):
                flags, name, desc, n_attr = struct.unpack_from(">HHHH", data, pos)
                pos += 8
                for _ in range(n_attr):
                    length, = struct.unpack_from(">I", data, pos + 2)
                    pos += 6 + length
                if member == "methods" and flags & ACC_NATIVE:
                    methods.append((utf8[name], utf8[desc]))
        return utf8[classes[this]], methods
    except (struct.error, IndexError, KeyError) as e:
        raise Bad(f"truncated or corrupt class file ({e})") from e


def jni_mangle(s: str) -> str:
    out = []
    for c in s:
        if c == "/":
            out.append("_")
        elif c == "_":
            out.append("_1")
        elif c == ";":
            out.append("_2")
        elif c == "[":
            out.append("_3")
        elif c.isascii() and c.isalnum():
            out.append(c)
        else:
            out.append(f"_0{ord(c):04x}")
    return "".join(out)


def jni_names(cls: str, name: str, desc: str) -> tuple[str, str]:
    """The JNI short and long symbol names of a native method."""
    short = f"Java_{jni_mangle(cls)}_{jni_mangle(name)}"
    args = desc[1:desc.index(")")]
    return short, f"{short}__{jni_mangle(args)}"


def check(path: str, package: str = "dev.sod2", abis: tuple[str, ...] = ("arm64-v8a",)) -> tuple[list[str], str]:
    """(problems, summary) of the AAR at `path`: no problems means it is valid."""
    errors: list[str] = []
    try:
        aar = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        return [f"not a zip archive: {e}"], ""
    with aar:
        entries = set(aar.namelist())
        for need in ["AndroidManifest.xml", "classes.jar", "R.txt", "proguard.txt"] + [f"jni/{a}/{LIB}" for a in abis]:
            if need not in entries:
                errors.append(f"missing {need}")
        summary = [f"package {package}"]

        if "AndroidManifest.xml" in entries:
            try:
                root = ET.fromstring(aar.read("AndroidManifest.xml"))
                if root.tag != "manifest":
                    errors.append(f"AndroidManifest.xml: root element <{root.tag}>, expected <manifest>")
                if root.get("package") != package:
                    errors.append(f"AndroidManifest.xml: package {root.get('package')!r}, expected {package!r}")
                sdk = root.find("uses-sdk")
                min_sdk = None if sdk is None else sdk.get(ANDROID_NS + "minSdkVersion")
                if min_sdk is None or not min_sdk.isdigit() or int(min_sdk) < 21:
                    errors.append(f"AndroidManifest.xml: <uses-sdk android:minSdkVersion> is {min_sdk!r}, expected an API level >= 21")
                else:
                    summary.append(f"minSdk {min_sdk}")
            except ET.ParseError as e:
                errors.append(f"AndroidManifest.xml does not parse: {e}")

        natives: list[tuple[str, str, str]] = []
        if "classes.jar" in entries:
            try:
                jar = zipfile.ZipFile(io.BytesIO(aar.read("classes.jar")))
                prefix = package.replace(".", "/") + "/"
                classes = [n for n in jar.namelist() if n.endswith(".class")]
                ours = [n for n in classes if n.startswith(prefix)]
                if not ours:
                    errors.append(f"classes.jar: no {prefix}*.class")
                elif f"{prefix}Sod2Model.class" not in ours:
                    errors.append(f"classes.jar: no {prefix}Sod2Model.class")
                for n in classes:
                    try:
                        cls, methods = native_methods(jar.read(n))
                        natives += [(cls, m, d) for m, d in methods]
                    except Bad as e:
                        errors.append(f"classes.jar: {n}: {e}")
                summary.append(f"{len(ours)} classes in {prefix}")
            except zipfile.BadZipFile as e:
                errors.append(f"classes.jar is not a zip: {e}")
            if not natives:
                errors.append("classes.jar declares no native methods (expected dev.sod2.Native's)")

        if "proguard.txt" in entries:
            rules = aar.read("proguard.txt").decode("utf-8", "replace")
            if not any(line.startswith("-keep") and f"{package}.Native" in line for line in rules.splitlines()):
                errors.append(f"proguard.txt: no -keep rule for {package}.Native (R8 would strip its native methods)")

        for name in sorted(entries):
            if not name.startswith("jni/") or name.endswith("/"):
                continue
            parts = name.split("/")
            if len(parts) != 3 or parts[1] not in ABIS:
                errors.append(f"{name}: not jni/<abi>/<lib>.so with a known ABI ({', '.join(ABIS)})")
                continue
            abi = parts[1]
            want_class, want_machine, arch = ABIS[abi]
            try:
                ei_class, e_type, machine, exports = elf_exports(aar.read(name))
            except Bad as e:
                errors.append(f"{name}: {e}")
                continue
            if e_type != ET_DYN:
                errors.append(f"{name}: ELF type {e_type}, expected a shared object (ET_DYN = 3)")
            if machine != want_machine or ei_class != want_class:
                got = MACHINES.get(machine, f"machine {machine}")
                errors.append(f"{name}: ELF{32 * ei_class} {got}, expected ELF{32 * want_class} {arch} for {abi}")
            if parts[2] != LIB:
                continue
            java = sorted(s for s in exports if s.startswith("Java_" + jni_mangle(package.replace(".", "/")) + "_"))
            if not java:
                errors.append(f"{name}: exports no Java_{jni_mangle(package.replace('.', '/'))}_* JNI function")
            if "JNI_OnLoad" not in exports:
                errors.append(f"{name}: does not export JNI_OnLoad")
            unbound = [f"{c.replace('/', '.')}.{m}" for c, m, d in natives if not set(jni_names(c, m, d)) & exports]
            if unbound:
                errors.append(f"{name}: no JNI function for native method(s) {', '.join(unbound)}")
            summary.append(f"{name}: ELF{32 * ei_class} {MACHINES.get(machine, machine)} shared object, "
                           f"{len(java)} JNI functions, {len(natives) - len(unbound)}/{len(natives)} native methods bound")
    return errors, ", ".join(summary)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("aar")
    ap.add_argument("--package", default="dev.sod2")
    ap.add_argument("--abi", action="append", help="a required ABI (repeatable; default arm64-v8a)")
    args = ap.parse_args()
    errors, summary = check(args.aar, args.package, tuple(args.abi or ["arm64-v8a"]))
    for e in errors:
        print(f"{args.aar}: {e}")
    if errors:
        return 1
    print(f"{args.aar}: ok ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
