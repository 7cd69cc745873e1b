"""The Python binding's ctypes declarations against the C ABI of the header:
not only the prototype text (test_bindings_sync.py) but what ctypes really
passes. A C probe compiled against include/simclr.h prints the size of every
parameter and return type the header uses, the layout of simclr_allocator and
the size of every enum; each bound function's argtypes/restype must be
exactly ctype_of(header type) and of the same size."""
import ctypes
import os
import subprocess

import pytest

from libsimclr import _lib

from conftest import ROOT

HEADER = os.path.join(ROOT, "include", "simclr.h")


def _header_signatures():
    text = open(HEADER).read()
    body = text[text.index("SIMCLR_API unsigned simclr_version_number"):]
    return _lib.parse_prototypes(body)


@pytest.fixture(scope="module")
def c_sizes(tmp_path_factory):
    """{C type text: sizeof} for every type in the header's signatures, plus
    allocator layout and enum sizes, from a compiled probe."""
    types = sorted({t for s in _header_signatures() for t in [s["ret"]] + [p for p, _ in s["params"]]
                    if t != "void"})
    enums = sorted(_lib._ENUMS)
    d = tmp_path_factory.mktemp("abi_probe")
    src = d / "probe.c"
    lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "simclr.h"', "int main(void) {"]
    for t in types + enums:
        lines.append('  printf("%%s=%%zu\\n", "%s", sizeof(%s));' % (t, t))
    for f in ("alloc", "free", "user"):
        lines.append('  printf("allocator.%s=%%zu\\n", offsetof(simclr_allocator, %s));' % (f, f))
    lines.append('  printf("allocator=%zu\\n", sizeof(simclr_allocator));')
    lines.append("  return 0;\n}")
    src.write_text("\n".join(lines) + "\n")
    exe = d / "probe"
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-std=c11", "-Wall", "-Werror", "-I", os.path.join(ROOT, "include"), str(src), "-o", str(exe)],
                   check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in (l.rsplit("=", 1) for l in out.splitlines())}


def _exported():
    """The library's exported functions as tests/symbols.txt lists them
    (make check-symbols holds the .so to that list)."""
    with open(os.path.join(ROOT, "tests", "symbols.txt")) as f:
        return {l.strip() for l in f if l.strip() and not l.startswith("#")}


def test_bound_functions_use_the_header_types():
    checked = set()
    for s in _header_signatures():
        f = getattr(_lib.fn, s["name"][len("simclr_"):])
        if isinstance(f, _lib._Missing):
            continue
        assert f.restype == _lib.ctype_of(s["ret"]), s["name"]
        assert list(f.argtypes) == [_lib.ctype_of(t) for t, _ in s["params"]], s["name"]
        checked.add(s["name"])
    # Every function the library exports is checked: none is skipped as
    # missing, none is exported without a prototype in the header.
    exported = _exported()
    assert exported - {s["name"] for s in _header_signatures()} == set(), "exported but not in the header"
    assert exported - checked == set(), "exported but not checked against the header"


def test_every_ctypes_type_has_the_c_size(c_sizes):
    for s in _header_signatures():
        for t in [s["ret"]] + [p for p, _ in s["params"]]:
            if t == "void":
                continue
            ct = _lib.ctype_of(t)
            assert ctypes.sizeof(ct) == c_sizes[t], "%s: %s is %d bytes in C, ctypes passes %d" % (
                s["name"], t, c_sizes[t], ctypes.sizeof(ct))


def test_enums_are_c_int(c_sizes):
    for e in _lib._ENUMS:
        assert c_sizes[e] == ctypes.sizeof(ctypes.c_int), e


def test_allocator_layout(c_sizes):
    A = _lib.Allocator
    assert ctypes.sizeof(A) == c_sizes["allocator"]
    for f in ("alloc", "free", "user"):
        assert getattr(A, f).offset == c_sizes["allocator." + f], f
