"""The header is consumable by cffi as is: preprocess include/simclr.h, feed it to
FFI.cdef(), and drive the library through cffi's ABI mode (no compiler
involved at run time). Proves the "everything binds without a compiler" rule
for a second FFI besides ctypes."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT

cffi = pytest.importorskip("cffi")
CC = os.environ.get("CC", "cc")
LIBRARY = os.environ.get("SIMCLR_LIBRARY", os.path.join(ROOT, "lib", "libsimclr.so.0"))


def cdef_text():
    """The header as cdef() accepts it.

    cdef takes declarations only: no #include'd system headers (cffi knows
    size_t and the intN_t types itself), no attributes, no macros; defines
    with integer values are kept as `#define NAME value` lines, which cdef
    understands, when their value is a plain integer."""
    src = open(os.path.join(ROOT, "include", "simclr.h")).read()
    src = re.sub(r"^\s*#\s*include\s*<[^>]*>\s*$", "", src, flags=re.M)
    if shutil.which(CC) is None:
        pytest.skip("no C preprocessor")
    pre = subprocess.run([CC, "-E", "-P", "-x", "c", "-DSIMCLR_API=", "-U__GNUC__", "-"],
                         input=src, capture_output=True, text=True, check=True).stdout
    pre = re.sub(r"__attribute__\s*\(\(.*?\)\)", "", pre)
    defines = [m.group(0) for m in re.finditer(r"^#define (SIMCLR_\w+) +(\d+)\b", src, flags=re.M)]
    return pre + "\n" + "\n".join("#define %s %s" % tuple(d.split()[1:3]) for d in defines)


@pytest.fixture(scope="module")
def ffi_lib():
    ffi = cffi.FFI()
    ffi.cdef(cdef_text())
    return ffi, ffi.dlopen(LIBRARY)


def test_header_parses_and_constants_agree(ffi_lib):
    ffi, lib = ffi_lib
    assert lib.SIMCLR_E_STATE == 8 and lib.SIMCLR_AUG_FLIP_P == 200 and lib.SIMCLR_MAX_DIMS == 4
    assert lib.simclr_version_number() == lib.SIMCLR_VERSION_MAJOR * 10000 + \
        lib.SIMCLR_VERSION_MINOR * 100 + lib.SIMCLR_VERSION_PATCH
    texts = {ffi.string(lib.simclr_status_string(s)) for s in range(10)}
    assert len(texts) == 10 and b"unknown status" not in texts


def test_context_and_tensor_through_cffi(ffi_lib):
    ffi, lib = ffi_lib
    ctx = ffi.new("simclr_context **")
    assert lib.simclr_context_create(b"ref", 1, ffi.NULL, ctx) == lib.SIMCLR_OK
    try:
        shape = ffi.new("int64_t[2]", [3, 4])
        t = ffi.new("simclr_tensor **")
        assert lib.simclr_tensor_create(ctx[0], lib.SIMCLR_F32, 2, shape, t) == lib.SIMCLR_OK
        assert lib.simclr_tensor_ndim(t[0]) == 2 and lib.simclr_tensor_dim(t[0], 1) == 4
        assert lib.simclr_tensor_bytes(t[0]) == 48
        src = ffi.new("float[12]", [float(i) for i in range(12)])
        assert lib.simclr_tensor_copy_from(t[0], src, 48) == lib.SIMCLR_OK
        data = ffi.cast("float *", lib.simclr_tensor_data(t[0]))
        assert [data[i] for i in range(12)] == [float(i) for i in range(12)]
        # An error: the status and the thread's message.
        assert lib.simclr_tensor_copy_from(t[0], src, 47) == lib.SIMCLR_E_SHAPE
        assert b"47 bytes" in ffi.string(lib.simclr_last_error())
        # Zero-copy wrap of a cffi buffer.
        buf = ffi.new("uint8_t[6]", [1, 2, 3, 4, 5, 6])
        w = ffi.new("simclr_tensor **")
        shape1 = ffi.new("int64_t[1]", [6])
        assert lib.simclr_tensor_wrap(ctx[0], lib.SIMCLR_U8, 1, shape1, buf, w) == lib.SIMCLR_OK
        assert lib.simclr_tensor_data(w[0]) == ffi.cast("void *", buf)
        lib.simclr_tensor_destroy(w[0])
        lib.simclr_tensor_destroy(t[0])
    finally:
        lib.simclr_context_destroy(ctx[0])


def test_callbacks_through_cffi(ffi_lib):
    ffi, lib = ffi_lib
    ctx = ffi.new("simclr_context **")
    assert lib.simclr_context_create(ffi.NULL, 1, ffi.NULL, ctx) == lib.SIMCLR_OK
    try:
        @ffi.callback("void(void *, simclr_log_level, const char *)")
        def sink(user, level, message):
            pass
        assert lib.simclr_context_set_log(ctx[0], sink, ffi.NULL, lib.SIMCLR_LOG_DEBUG) == lib.SIMCLR_OK
        assert lib.simclr_context_set_log(ctx[0], ffi.NULL, ffi.NULL, 0) == lib.SIMCLR_OK
    finally:
        lib.simclr_context_destroy(ctx[0])


def test_module_forward_through_cffi(ffi_lib):
    ffi, lib = ffi_lib
    # cffi resolves symbols lazily, so ask the loader (same check as the ctypes tests).
    import ctypes
    if not all(hasattr(ctypes.CDLL(LIBRARY), n) for n in ("simclr_mlp_head_create", "simclr_module_forward")):
        pytest.skip("modules not in the library yet")
    ctx = ffi.new("simclr_context **")
    assert lib.simclr_context_create(b"cpu", 1, ffi.NULL, ctx) == lib.SIMCLR_OK
    try:
        m = ffi.new("simclr_module **")
        assert lib.simclr_mlp_head_create(ctx[0], 8, 16, 4, 2, 0, 1, m) == lib.SIMCLR_OK
        assert lib.simclr_module_output_dim(m[0]) == 4
        x, y = ffi.new("simclr_tensor **"), ffi.new("simclr_tensor **")
        assert lib.simclr_tensor_create(ctx[0], lib.SIMCLR_F32, 2, ffi.new("int64_t[2]", [5, 8]), x) == 0
        assert lib.simclr_tensor_create(ctx[0], lib.SIMCLR_F32, 2, ffi.new("int64_t[2]", [5, 4]), y) == 0
        xd = ffi.cast("float *", lib.simclr_tensor_data(x[0]))
        for i in range(40):
            xd[i] = (i % 7) / 7.0
        assert lib.simclr_module_forward(m[0], x[0], lib.SIMCLR_EVAL, y[0]) == lib.SIMCLR_OK
        yd = ffi.cast("float *", lib.simclr_tensor_data(y[0]))
        vals = [yd[i] for i in range(20)]
        assert all(v == v for v in vals) and any(v != 0 for v in vals)
        # Wrong output shape: a status, not a crash.
        assert lib.simclr_module_forward(m[0], y[0], lib.SIMCLR_EVAL, x[0]) == lib.SIMCLR_E_SHAPE
        lib.simclr_tensor_destroy(x[0])
        lib.simclr_tensor_destroy(y[0])
        lib.simclr_module_destroy(m[0])
    finally:
        lib.simclr_context_destroy(ctx[0])
