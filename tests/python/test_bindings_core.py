"""Python bindings, core layer: loading, NumPy round trips, error mapping,
wrong arguments (must raise, never crash), and handle lifetimes."""
import gc
import threading
import weakref

import numpy as np
import pytest

import libsimclr as simclr
from libsimclr import _lib
from libsimclr.errors import exception_for


@pytest.fixture
def ctx():
    with simclr.Context("ref", 1) as c:
        yield c


# ------------------------------------------------------------- loading --

def test_version_check_accepts_loaded_library():
    v = simclr.version_number()
    assert v // 10000 == simclr.BINDINGS_VERSION[0]
    assert (v // 100) % 100 >= simclr.BINDINGS_VERSION[1]
    assert simclr.version_string() == "%d.%d.%d" % (v // 10000, (v // 100) % 100, v % 100)


def test_backends_listed():
    assert simclr.backends() == ("cpu", "ref")
    with simclr.Context() as c:
        assert c.backend == "cpu" and c.threads >= 1


def test_missing_symbol_raises_unsupported():
    stub = _lib._Missing("simclr_no_such_function")
    with pytest.raises(simclr.Unsupported, match="simclr_no_such_function"):
        stub()


# ------------------------------------------------------ NumPy round trip --

def test_from_numpy_is_zero_copy(ctx):
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    t = simclr.Tensor.from_numpy(ctx, a)
    assert t.shape == (2, 3, 4) and t.dtype == np.float32 and t.size == 24 and t.nbytes == 96
    assert t.data_ptr == a.ctypes.data
    a[1, 2, 3] = -7.5
    assert t.numpy()[1, 2, 3] == -7.5          # the copy sees the shared buffer
    v = t.numpy(copy=False)
    v[0, 0, 0] = 99.0
    assert a[0, 0, 0] == 99.0                  # and a view writes through


def test_copy_roundtrip_uint8_and_float(ctx):
    rng = np.random.default_rng(0)
    for a in (rng.integers(0, 256, (3, 5, 7, 3), dtype=np.uint8),
              rng.standard_normal((4, 9)).astype(np.float32)):
        t = simclr.Tensor.from_numpy(ctx, a, copy=True)
        assert t.data_ptr != a.ctypes.data
        b = t.numpy()
        assert b.dtype == a.dtype and np.array_equal(a, b)
        a2 = a.copy()
        a2.flat[0] = 255 - a2.flat[0] if a.dtype == np.uint8 else -a2.flat[0]
        t.copy_from(a2)
        assert np.array_equal(np.asarray(t), a2)


def test_create_is_zeroed_and_reshape_shows_in_views(ctx):
    t = simclr.Tensor(ctx, (2, 6), "uint8")
    assert t.dtype == np.uint8 and not t.numpy().any()
    t.reshape(3, 4)
    assert t.shape == (3, 4) and t.numpy(copy=False).shape == (3, 4)


def test_copy_converts_float64(ctx):
    a = np.linspace(0, 1, 10)                  # float64
    t = simclr.Tensor.from_numpy(ctx, a, copy=True)
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t.numpy(), a.astype(np.float32))


# ------------------------------------------------------- error mapping --

def _raises(cls, status, call, fragment):
    with pytest.raises(cls) as ei:
        call()
    e = ei.value
    assert isinstance(e, simclr.SimclrError) and e.status == status
    assert fragment in str(e)
    return e


def test_status_invalid_from_library():
    e = _raises(simclr.InvalidArgument, 1, lambda: simclr.Context("ref", 1000), "n_threads")
    assert isinstance(e, ValueError)
    assert str(e) == simclr.last_error() and e.function == "simclr_context_create"


def test_status_shape_from_library(ctx):
    t = simclr.Tensor(ctx, (3, 4))
    _raises(simclr.ShapeError, 2, lambda: t.reshape(5), "simclr_tensor_reshape")
    assert t.shape == (3, 4)                   # unchanged on error


def test_status_nomem_from_library(ctx):
    # 2^60 float32 elements fit the size checks but no allocator can serve 4 EiB.
    e = _raises(simclr.OutOfMemory, 3, lambda: simclr.Tensor(ctx, (1 << 30, 1 << 30)), "out of memory")
    assert isinstance(e, MemoryError)


def test_status_unsupported_from_library():
    e = _raises(simclr.Unsupported, 7, lambda: simclr.Context("tpu"), "unknown backend 'tpu'")
    assert isinstance(e, NotImplementedError)


def test_every_status_maps_to_its_class():
    expected = {1: simclr.InvalidArgument, 2: simclr.ShapeError, 3: simclr.OutOfMemory,
                4: simclr.SimclrIOError, 5: simclr.FormatError, 6: simclr.NumericError,
                7: simclr.Unsupported, 8: simclr.StateError, 9: simclr.InternalError,
                10: simclr.Cancelled}
    assert set(expected) == set(int(s) for s in simclr.Status if s != 0)
    for status, cls in expected.items():
        e = exception_for(status, "m", "f")
        assert type(e) is cls and e.status == status and e.message == "m" and e.function == "f"
        # The C text for the status exists and differs between statuses.
        assert simclr.status_string(status) not in ("", "unknown status")
    assert type(exception_for(99, "x")) is simclr.SimclrError
    assert simclr.status_string(99) == "unknown status"
    assert issubclass(simclr.SimclrIOError, OSError)
    assert issubclass(simclr.NumericError, ArithmeticError)
    assert issubclass(simclr.StateError, RuntimeError)


def test_errcheck_raises_for_each_status_code():
    # Drives the real errcheck path with every status value, as a C call would return it.
    for status in range(1, 10):
        with pytest.raises(simclr.STATUS_EXCEPTIONS[status]):
            _lib._check(status, _lib.cdll.simclr_tensor_create, ())


def test_last_error_is_thread_local():
    with pytest.raises(simclr.Unsupported):
        simclr.Context("bogus-main")
    seen = []

    def worker():
        seen.append(simclr.last_error())
        try:
            simclr.Context("ref", -1)
        except simclr.InvalidArgument as e:
            seen.append(str(e))
    th = threading.Thread(target=worker)
    th.start()
    th.join()
    assert seen[0] == ""                        # nothing failed on that thread before
    assert "n_threads" in seen[1]
    assert "bogus-main" in simclr.last_error()  # this thread's message untouched


# ---------------------------------------- wrong arguments: raise, no crash --

@pytest.mark.parametrize("shape,exc", [
    ("abc", TypeError), (None, TypeError), ((2, 2.5), TypeError), ((2, "3"), TypeError),
    ((True, 2), TypeError), ((2, -1), simclr.InvalidArgument), ((0,), simclr.InvalidArgument),
    ((), simclr.InvalidArgument), ((1, 1, 1, 1, 1), simclr.InvalidArgument),
    ((1 << 70,), simclr.InvalidArgument), ((1 << 62, 1 << 62), simclr.ShapeError),
])
def test_bad_shapes(ctx, shape, exc):
    with pytest.raises(exc):
        simclr.Tensor(ctx, shape)


@pytest.mark.parametrize("dtype,exc", [
    ("float64", TypeError), (np.int32, TypeError), (7, simclr.InvalidArgument), (None, TypeError),
    ("nonsense", TypeError),
])
def test_bad_dtypes(ctx, dtype, exc):
    with pytest.raises(exc):
        simclr.Tensor(ctx, (2,), dtype)


def test_bad_contexts():
    with pytest.raises(TypeError):
        simclr.Context(backend=5)
    with pytest.raises(TypeError):
        simclr.Context("ref", "2")
    with pytest.raises(TypeError):
        simclr.Context("ref", 1.5)
    with pytest.raises(simclr.InvalidArgument):
        simclr.Context("ref", 1 << 40)
    with pytest.raises(simclr.InvalidArgument):
        simclr.Context("ref", -1)
    with pytest.raises(TypeError):
        simclr.Tensor(None, (2,))
    with pytest.raises(TypeError):
        simclr.Tensor("ctx", (2,))


def test_bad_arrays_for_zero_copy(ctx):
    with pytest.raises(TypeError):
        simclr.Tensor.from_numpy(ctx, np.zeros(4))              # float64
    with pytest.raises(TypeError):
        simclr.Tensor.from_numpy(ctx, [1.0, 2.0])               # not an ndarray
    with pytest.raises(TypeError):
        simclr.Tensor.from_numpy(ctx, None)
    with pytest.raises(ValueError):
        simclr.Tensor.from_numpy(ctx, np.zeros((4, 4), np.float32)[:, ::2])  # strided
    with pytest.raises(ValueError):
        simclr.Tensor.from_numpy(ctx, np.zeros((4, 4), np.float32).T)
    unaligned = np.frombuffer(bytearray(17), dtype=np.uint8)[1:].view(np.float32)
    assert not unaligned.flags.aligned
    with pytest.raises(ValueError):
        simclr.Tensor.from_numpy(ctx, unaligned)
    with pytest.raises(TypeError):
        simclr.Tensor.from_numpy(ctx, np.array(["a", "b"]), copy=True)
    with pytest.raises(TypeError):
        simclr.Tensor.from_numpy(ctx, np.array([object()]), copy=True)
    with pytest.raises(simclr.InvalidArgument):                 # empty arrays: dims must be >= 1
        simclr.Tensor.from_numpy(ctx, np.zeros((0, 3), np.float32))
    with pytest.raises(simclr.InvalidArgument):                 # 0-d
        simclr.Tensor.from_numpy(ctx, np.array(3.0, dtype=np.float32))
    # The copy path fixes what zero-copy refuses.
    t = simclr.Tensor.from_numpy(ctx, np.arange(16, dtype=np.float32).reshape(4, 4)[:, ::2], copy=True)
    assert t.numpy().tolist() == [[0, 2], [4, 6], [8, 10], [12, 14]]
    t = simclr.Tensor.from_numpy(ctx, unaligned, copy=True)
    assert t.shape == (4,)


def test_read_only_arrays_are_inputs_only(ctx):
    a = np.zeros(4, np.float32)
    a.flags.writeable = False
    t = simclr.Tensor.from_numpy(ctx, a)
    assert not t.numpy(copy=False).flags.writeable
    with pytest.raises(simclr.InvalidArgument):
        t.copy_from(np.ones(4))


def test_copy_from_wrong_shape_and_type(ctx):
    t = simclr.Tensor(ctx, (2, 3))
    with pytest.raises(simclr.ShapeError):
        t.copy_from(np.zeros((3, 2)))
    with pytest.raises(TypeError):
        t.copy_from(np.array(["x"] * 6).reshape(2, 3))
    with pytest.raises(TypeError):
        t.reshape("2x3")


def test_null_handles_at_the_c_level():
    # The raw functions, called with NULL, must report an error, not crash.
    out = _lib.ctypes.c_void_p()
    shape = (_lib.ctypes.c_int64 * 1)(3)
    with pytest.raises(simclr.InvalidArgument, match="ctx is NULL"):
        _lib.fn.tensor_create(None, 0, 1, shape, _lib.ctypes.byref(out))
    with pytest.raises(simclr.InvalidArgument):
        _lib.fn.context_create(None, 1, None, None)
    assert _lib.fn.tensor_ndim(None) == 0 and _lib.fn.tensor_data(None) is None
    assert _lib.fn.tensor_dtype(None) == -1 and _lib.fn.context_backend(None) is None
    _lib.fn.tensor_destroy(None)
    _lib.fn.context_destroy(None)


# ------------------------------------------------------------- lifetimes --

def test_closed_objects_raise_state_error():
    c = simclr.Context("ref", 1)
    t = simclr.Tensor(c, (2,))
    c.close()
    c.close()                                  # twice is fine
    assert c.closed and t.closed
    with pytest.raises(simclr.StateError):
        t.numpy()
    with pytest.raises(simclr.StateError):
        simclr.Tensor(c, (2,))
    with pytest.raises(simclr.StateError):
        c.backend
    with pytest.raises(simclr.StateError):
        with c:
            pass


def test_with_block_closes_children_first():
    with simclr.Context("ref", 1) as c:
        t = simclr.Tensor(c, (4,))
        nt, nc = t._native, c._native
    assert nt.freed and nc.freed and t.closed


def test_view_keeps_memory_after_close():
    c = simclr.Context("ref", 1)
    t = simclr.Tensor.from_numpy(c, np.arange(6, dtype=np.float32), copy=True)
    v = t.numpy(copy=False)
    nt, nc = t._native, c._native
    c.close()
    assert t.closed and not nt.freed and not nc.freed   # the view pins tensor and context
    assert v.tolist() == [0, 1, 2, 3, 4, 5]
    v2 = v[2:]                                           # views of views pin too
    del v
    gc.collect()
    assert not nt.freed and v2.sum() == 14
    del v2
    gc.collect()
    assert nt.freed and nc.freed


def test_wrapped_array_kept_alive_until_tensor_freed(ctx):
    a = np.arange(8, dtype=np.float32)
    ref = weakref.ref(a)
    t = simclr.Tensor.from_numpy(ctx, a)
    del a
    gc.collect()
    assert ref() is not None and t.numpy().sum() == 28
    del t
    gc.collect()
    assert ref() is None


def test_context_outlives_its_python_reference():
    c = simclr.Context("ref", 1)
    t = simclr.Tensor(c, (3,))
    nc = c._native
    del c
    gc.collect()
    assert not nc.freed and t.numpy().tolist() == [0, 0, 0]
    del t
    gc.collect()
    assert nc.freed


def test_garbage_cycles_free_in_a_safe_order():
    class Holder:
        pass
    natives = []
    for _ in range(20):
        h = Holder()
        h.self = h
        h.ctx = simclr.Context("ref", 1)
        h.tensors = [simclr.Tensor(h.ctx, (16,)) for _ in range(3)]
        h.views = [h.tensors[0].numpy(copy=False)]
        natives += [h.ctx._native] + [t._native for t in h.tensors]
        del h
    gc.collect()
    assert all(n.freed for n in natives)


def test_short_lived_temporaries_are_freed_at_once():
    # Temporaries made for a call (wrapped inputs, outputs) must be destroyed as
    # soon as their last reference goes, not at context close.
    with simclr.Context("ref", 1) as c:
        natives = []
        for _ in range(50):
            natives.append(simclr.Tensor(c, (64, 64))._native)
            natives.append(simclr.Tensor.from_numpy(c, np.ones(8, np.float32))._native)
        assert all(n.freed for n in natives)
        assert not c._native.children


def test_log_and_progress_callbacks_install_and_remove(ctx):
    ctx.set_log(lambda level, msg: None, "debug")
    ctx.set_progress(lambda what, done, total: None)
    assert "log" in ctx._native.keep and "progress" in ctx._native.keep
    ctx.set_log(None)
    ctx.set_progress(None)
    assert not ctx._native.keep
    with pytest.raises(TypeError):
        ctx.set_log(42)
    with pytest.raises(simclr.InvalidArgument):
        ctx.set_log(print, "loud")
