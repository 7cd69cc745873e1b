"""Context and Tensor, plus the argument checks every other wrapper uses.

Everything a caller passes is checked here, in Python, before any C call:
types, integer ranges of the C parameter, dtypes, contiguity, alignment,
writability of outputs and the lengths of arrays the C side cannot measure
(label arrays). What only the library knows (shapes a layer expects, value
ranges of keys) is left to the library, whose message then arrives in the
exception.
"""
from __future__ import annotations

import ctypes
import operator
import os
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from . import _lib
from ._handle import Handle, Pin
from .enums import ConvAlgo, CtxParam, DType, LogLevel
from .errors import InvalidArgument, ShapeError

fn = _lib.fn

_NP_DTYPES = {DType.F32: np.dtype(np.float32), DType.U8: np.dtype(np.uint8)}
DTypeLike = Union[str, "np.dtype[Any]", type, int, DType]
ShapeLike = Sequence[int]


# ------------------------------------------------------------ arg checks --

def check_int(value: Any, name: str, lo: int = -(1 << 31), hi: int = (1 << 31) - 1) -> int:
    """An exact integer (bool excluded) within the C type's range."""
    if isinstance(value, bool) or value is None:
        raise TypeError("%s must be an integer, not %r" % (name, value))
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError("%s must be an integer, not %s" % (name, type(value).__name__)) from None
    if not lo <= v <= hi:
        raise InvalidArgument("%s = %d does not fit the C parameter (%d..%d)" % (name, v, lo, hi),
                              1, name)
    return v


def check_int64(value: Any, name: str) -> int:
    return check_int(value, name, -(1 << 63), (1 << 63) - 1)


def check_seed(value: Any, name: str = "seed") -> int:
    return check_int(value, name, 0, (1 << 64) - 1)


def check_float(value: Any, name: str) -> float:
    """A real number (int or float, bool excluded) as a C double."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        raise TypeError("%s must be a number, not %r" % (name, value))
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError("%s must be a number, not %s" % (name, type(value).__name__)) from None


def check_path(path: Any, name: str = "path") -> bytes:
    """A str / bytes / os.PathLike path as the UTF-8 (file system) bytes C expects."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError("%s must be a path (str, bytes or os.PathLike), not %s"
                        % (name, type(path).__name__))
    b = os.fsencode(path)
    if b"\0" in b:
        raise InvalidArgument("%s contains a NUL byte" % name, 1, name)
    return b


def check_enum(value: Any, enum_cls: Any, name: str) -> int:
    """An enum member, its integer value, or its name in any case ("cifar")."""
    if isinstance(value, str):
        key = value.upper().replace("-", "_")
        if key in enum_cls.__members__:
            return int(enum_cls[key])
        raise InvalidArgument("%s: unknown name %r (have: %s)" % (
            name, value, ", ".join(k.lower() for k in enum_cls.__members__)), 1, name)
    return check_int(value, name)


def dtype_code(dtype: Any) -> DType:
    """DType for "float32"/"f32"/np.float32/DType.F32 and "uint8"/"u8"/np.uint8/DType.U8."""
    if isinstance(dtype, DType):
        return dtype
    if isinstance(dtype, str) and dtype.lower() in ("f32", "u8"):
        return DType[dtype.upper()]
    if isinstance(dtype, int) and not isinstance(dtype, bool):
        if dtype in (0, 1):
            return DType(dtype)
        raise InvalidArgument("dtype %d is not a libsimclr dtype (0 = F32, 1 = U8)" % dtype, 1, "dtype")
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise TypeError("dtype must be float32 or uint8, not %r" % (dtype,)) from None
    for code, npd in _NP_DTYPES.items():
        if d == npd:
            return code
    raise TypeError("libsimclr tensors are float32 or uint8, not %s" % d)


def shape_array(shape: Any, name: str = "shape") -> Tuple[Tuple[int, ...], Any]:
    """A tuple of int64 dims and the matching ctypes int64 array."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise TypeError("%s must be a tuple or list of integers, not %s" % (name, type(shape).__name__))
    dims = tuple(check_int64(d, "%s[%d]" % (name, i)) for i, d in enumerate(shape))
    arr = (ctypes.c_int64 * max(1, len(dims)))(*dims)
    return dims, arr


# --------------------------------------------------------------- Context --

LogCallback = Callable[[LogLevel, str], None]
ProgressCallback = Callable[[str, int, int], None]


class Context(Handle):
    """A libsimclr context: backend, threads, and the owner of every other object.

    Args:
        backend: "cpu" (default) or "ref" (the plain-loop oracle).
        threads: threads used inside calls; 0 = all online cores.

    Closing the context (``close()`` or leaving a ``with`` block) closes every
    object made from it first. Objects keep their context alive, so dropping
    the last reference to a Context while tensors still exist is safe.
    """

    _what = "context"

    def __init__(self, backend: Optional[str] = "cpu", threads: int = 0) -> None:
        if backend is not None and not isinstance(backend, str):
            raise TypeError("backend must be a str or None, not %s" % type(backend).__name__)
        n = check_int(threads, "threads")
        out = ctypes.c_void_p()
        fn.context_create(backend.encode() if backend is not None else None, n, None,
                          ctypes.byref(out))
        self._init_native(out.value, _lib.cdll.simclr_context_destroy, keep={})

    @property
    def backend(self) -> str:
        """"cpu" or "ref"."""
        return fn.context_backend(self._ptr).decode()

    @property
    def threads(self) -> int:
        return int(fn.context_threads(self._ptr))

    @property
    def isa(self) -> str:
        """The instruction-set copy of the kernels this context runs: "avx512",
        "avx2" or "portable" (the SIMCLR_ISA environment variable caps it)."""
        return fn.context_isa(self._ptr).decode()

    def set_log(self, callback: Optional[LogCallback], level: Union[int, str] = LogLevel.INFO) -> None:
        """Sends the library's log messages up to `level` to callback(level, message);
        None removes the sink. Exceptions raised by the callback are printed and ignored."""
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable or None")
        lv = check_enum(level, LogLevel, "level")
        if callback is None:
            fn.context_set_log(self._ptr, _lib.LOG_FN(), None, lv)
            self._native.keep.pop("log", None)
            return

        def trampoline(user: Any, lvl: int, msg: bytes) -> None:
            callback(LogLevel(lvl) if lvl in LogLevel._value2member_map_ else lvl,
                     msg.decode("utf-8", "replace"))
        cb = _lib.LOG_FN(trampoline)
        fn.context_set_log(self._ptr, cb, None, lv)
        self._native.keep["log"] = cb  # the C context holds the pointer: keep it alive

    def set_progress(self, callback: Optional[ProgressCallback]) -> None:
        """Reports long work as callback(phase, done, total); None removes it."""
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable or None")
        if callback is None:
            fn.context_set_progress(self._ptr, _lib.PROGRESS_FN(), None)
            self._native.keep.pop("progress", None)
            return

        def trampoline(user: Any, what: bytes, done: int, total: int) -> None:
            callback(what.decode("utf-8", "replace") if what else "", int(done), int(total))
        cb = _lib.PROGRESS_FN(trampoline)
        fn.context_set_progress(self._ptr, cb, None)
        self._native.keep["progress"] = cb

    def set(self, key: Union[int, str, CtxParam], value: Union[int, float, str]) -> None:
        """Sets a context parameter, e.g. ``ctx.set("conv_algo", "direct")``;
        InvalidArgument (context unchanged) for an unknown key or value."""
        k = check_enum(key, CtxParam, "key")
        if k == CtxParam.CONV_ALGO:
            value = check_enum(value, ConvAlgo, "value")
        fn.context_set(self._ptr, k, check_float(value, "value"))

    def get(self, key: Union[int, str, CtxParam]) -> Union[int, float]:
        """Reads a context parameter (CONV_ALGO comes back as a ConvAlgo)."""
        v = ctypes.c_double()
        k = check_enum(key, CtxParam, "key")
        fn.context_get(self._ptr, k, ctypes.byref(v))
        if k == CtxParam.CONV_ALGO and v.value == int(v.value) and int(v.value) in ConvAlgo._value2member_map_:
            return ConvAlgo(int(v.value))
        return v.value

    @property
    def conv_algo(self) -> ConvAlgo:
        """How the "cpu" backend runs 3x3 stride-1 convolutions: AUTO (default),
        DIRECT (exact path) or WINOGRAD; "ref" ignores it."""
        return ConvAlgo(self.get(CtxParam.CONV_ALGO))

    @conv_algo.setter
    def conv_algo(self, value: Union[int, str, ConvAlgo]) -> None:
        self.set(CtxParam.CONV_ALGO, value)

    # Factories, for those who prefer ctx.tensor(...) to Tensor(ctx, ...).
    def tensor(self, shape: ShapeLike, dtype: DTypeLike = "float32") -> "Tensor":
        return Tensor(self, shape, dtype)

    def from_numpy(self, array: Any, copy: bool = False) -> "Tensor":
        return Tensor.from_numpy(self, array, copy=copy)

    def __repr__(self) -> str:
        if self.closed:
            return "<simclr.Context closed>"
        return "<simclr.Context backend=%s threads=%d>" % (self.backend, self.threads)


def backends() -> Tuple[str, ...]:
    """Names of the compiled-in backends."""
    return tuple(fn.backend_name(i).decode() for i in range(fn.backend_count()))


def isa_supported(isa: str) -> bool:
    """True when this machine and build can run the "cpu" backend's copy for
    `isa` ("avx512", "avx2", "portable")."""
    return bool(fn.isa_supported(isa.encode()))


def check_context(ctx: Any, name: str = "ctx") -> Context:
    if not isinstance(ctx, Context):
        raise TypeError("%s must be a simclr.Context, not %s" % (name, type(ctx).__name__))
    ctx._ptr  # raises StateError when closed
    return ctx


# ---------------------------------------------------------------- Tensor --

class Tensor(Handle):
    """A libsimclr tensor: F32 or U8, 1..4 dims, row-major contiguous.

    ``Tensor(ctx, shape, dtype)`` allocates zeroed memory owned by the tensor.
    ``Tensor.from_numpy(ctx, array)`` borrows a NumPy array without copying
    (the tensor keeps the array alive). ``t.numpy()`` copies out;
    ``t.numpy(copy=False)`` is a view of the tensor's memory that stays valid
    however long it lives (it keeps the memory alive, even past close()).
    """

    _what = "tensor"

    def __init__(self, ctx: Context, shape: ShapeLike, dtype: DTypeLike = "float32") -> None:
        check_context(ctx)
        code = dtype_code(dtype)
        dims, arr = shape_array(shape)
        out = ctypes.c_void_p()
        fn.tensor_create(ctx._ptr, int(code), len(dims), arr, ctypes.byref(out))
        self._init_native(out.value, _lib.cdll.simclr_tensor_destroy, [ctx])
        self.context = ctx
        self.readonly = False

    @classmethod
    def _make(cls, ptr: int, parents: Sequence[Handle], destroy: Any, keep: Any,
              context: Context, readonly: bool = False) -> "Tensor":
        t = cls.__new__(cls)
        t._init_native(ptr, destroy, parents, keep)
        t.context = context
        t.readonly = readonly
        return t

    @classmethod
    def _borrowed(cls, ptr: int, owner: Handle, context: Context) -> "Tensor":
        """A tensor owned by a module or optimizer: never destroyed from Python."""
        return cls._make(ptr, [owner], None, None, context)

    @classmethod
    def from_numpy(cls, ctx: Context, array: Any, copy: bool = False) -> "Tensor":
        """A tensor over `array`.

        copy=False: zero-copy; the array must be a float32 or uint8 ndarray,
        C-contiguous and aligned (else TypeError / ValueError saying why).
        Writes by the library (when the tensor is used as an output) land in
        the array; read-only arrays may be used as inputs only.
        copy=True: any array-like of real numbers is converted (floats to
        float32, uint8 stays uint8) into a new owned tensor.
        """
        check_context(ctx)
        if copy:
            a = np.asarray(array)
            code = _infer_dtype(a, "array")
            a = np.ascontiguousarray(a, dtype=_NP_DTYPES[code])
            t = cls(ctx, a.shape, code)
            fn.tensor_copy_from(t._ptr, a.ctypes.data, a.nbytes)
            return t
        if not isinstance(array, np.ndarray):
            raise TypeError("from_numpy(copy=False) needs a numpy.ndarray, not %s "
                            "(pass copy=True to convert)" % type(array).__name__)
        code = dtype_code(array.dtype) if array.dtype in _NP_DTYPES.values() else None
        if code is None:
            raise TypeError("zero-copy needs float32 or uint8, the array is %s "
                            "(pass copy=True to convert)" % array.dtype)
        if not array.flags.c_contiguous or not array.flags.aligned:
            raise ValueError("zero-copy needs a C-contiguous aligned array "
                             "(use numpy.ascontiguousarray or copy=True)")
        dims, shp = shape_array(array.shape)
        out = ctypes.c_void_p()
        fn.tensor_wrap(ctx._ptr, int(code), len(dims), shp, ctypes.c_void_p(array.ctypes.data),
                       ctypes.byref(out))
        return cls._make(out.value, [ctx], _lib.cdll.simclr_tensor_destroy, array, ctx,
                         readonly=not array.flags.writeable)

    # -- accessors
    @property
    def ndim(self) -> int:
        return int(fn.tensor_ndim(self._ptr))

    @property
    def shape(self) -> Tuple[int, ...]:
        p = self._ptr
        return tuple(int(fn.tensor_dim(p, i)) for i in range(fn.tensor_ndim(p)))

    @property
    def dtype(self) -> "np.dtype[Any]":
        """numpy.float32 or numpy.uint8."""
        return _NP_DTYPES[DType(fn.tensor_dtype(self._ptr))]

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(fn.tensor_numel(self._ptr))

    @property
    def nbytes(self) -> int:
        return int(fn.tensor_bytes(self._ptr))

    @property
    def data_ptr(self) -> int:
        """Address of the data (for other FFI code); valid while the tensor is open."""
        return int(fn.tensor_data(self._ptr) or 0)

    def numpy(self, copy: bool = True) -> np.ndarray:
        """The contents as a NumPy array: a copy, or (copy=False) a writable view."""
        p = self._ptr
        shape, dtype, nbytes = self.shape, self.dtype, self.nbytes
        if copy:
            out = np.empty(shape, dtype)
            fn.tensor_copy_to(p, ctypes.c_void_p(out.ctypes.data), nbytes)
            return out
        buf = (ctypes.c_ubyte * nbytes).from_address(fn.tensor_data(p))
        buf._simclr_pin = Pin(self._native)  # type: ignore[attr-defined]
        view = np.frombuffer(buf, dtype=dtype).reshape(shape)
        if self.readonly:
            view.flags.writeable = False
        return view

    to_numpy = numpy

    @property
    def __array_interface__(self) -> Dict[str, Any]:
        """NumPy's array interface: numpy.asarray(tensor) is a zero-copy view
        of the tensor's memory (read-only for a tensor over a read-only
        array). NumPy keeps the tensor object as the view's base, so the
        memory lives as long as the view -- unless the tensor is closed
        explicitly, which invalidates the view (t.numpy(copy=False) pins the
        memory even past close())."""
        return {"shape": self.shape, "typestr": np.dtype(self.dtype).str,
                "data": (self.data_ptr, bool(self.readonly)), "version": 3}

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """numpy.array(t) / numpy.asarray(t). copy=None (NumPy 2's default) or
        False: a view when no conversion is needed (copy=False with a dtype
        change raises ValueError, as NumPy 2 asks); copy=True: a copy."""
        if copy:
            a = self.numpy(copy=True)
            return a if dtype is None else a.astype(dtype)
        view = self.numpy(copy=False)
        if dtype is None or np.dtype(dtype) == view.dtype:
            return view
        if copy is False:
            raise ValueError("a %s tensor cannot be viewed as %s without a copy" % (view.dtype, np.dtype(dtype)))
        return view.astype(dtype)

    def copy_from(self, array: Any) -> None:
        """Copies an array of the same shape into the tensor (converted to its dtype)."""
        if self.readonly:
            raise InvalidArgument("tensor wraps a read-only array", 1, "copy_from")
        p = self._ptr
        a = np.asarray(array)
        _infer_dtype(a, "array")
        a = np.ascontiguousarray(a, dtype=self.dtype)
        if a.shape != self.shape:
            raise ShapeError("copy_from: array has shape %s, tensor %s" % (a.shape, self.shape),
                             2, "copy_from")
        fn.tensor_copy_from(p, ctypes.c_void_p(a.ctypes.data), a.nbytes)

    def reshape(self, *shape: Any) -> "Tensor":
        """Changes the shape in place (same element count); returns self."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        dims, arr = shape_array(list(shape))
        fn.tensor_reshape(self._ptr, len(dims), arr)
        return self

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        if self.closed:
            return "<simclr.Tensor closed>"
        return "<simclr.Tensor shape=%s dtype=%s>" % (self.shape, self.dtype)


def _infer_dtype(a: np.ndarray, name: str) -> DType:
    if a.dtype == np.uint8:
        return DType.U8
    if a.dtype.kind in "fiub":
        return DType.F32
    raise TypeError("%s must hold real numbers, not %s" % (name, a.dtype))


# ---------------------------------------- inputs and outputs of C calls --

def as_input(ctx: Context, x: Any, dtype: DType, name: str) -> Tensor:
    """A tensor for a C input: a Tensor as is, or an array converted and wrapped.

    F32 inputs accept any real-number array (copied when not already
    contiguous float32); U8 inputs must be uint8 (images are not rescaled
    silently)."""
    if isinstance(x, Tensor):
        x._ptr
        if x.dtype != _NP_DTYPES[dtype]:
            raise TypeError("%s must be a %s tensor, not %s" % (name, _NP_DTYPES[dtype], x.dtype))
        return x
    if x is None:
        raise TypeError("%s must be an array or simclr.Tensor, not None" % name)
    a = np.asarray(x)
    if dtype == DType.U8:
        if a.dtype != np.uint8:
            raise TypeError("%s must be uint8 (images [N, H, W, C]), not %s" % (name, a.dtype))
    elif a.dtype.kind not in "fiub":
        raise TypeError("%s must hold real numbers, not %s" % (name, a.dtype))
    a = np.ascontiguousarray(a, dtype=_NP_DTYPES[dtype])
    if not a.flags.aligned:
        a = a.copy()
    return Tensor.from_numpy(ctx, a)


def as_output(ctx: Context, out: Any, shape: Tuple[int, ...], dtype: DType,
              name: str) -> Tuple[Tensor, Any]:
    """(tensor to pass to C, object to return): a new array when out is None,
    else out itself after checking shape, dtype, contiguity and writability."""
    npd = _NP_DTYPES[dtype]
    if out is None:
        arr = np.empty(shape, npd)
        return Tensor.from_numpy(ctx, arr), arr
    if isinstance(out, Tensor):
        if out.readonly:
            raise InvalidArgument("%s wraps a read-only array" % name, 1, name)
        if out.dtype != npd or out.shape != tuple(shape):
            raise ShapeError("%s must be %s %s, got %s %s" % (name, npd, list(shape), out.dtype,
                                                               list(out.shape)), 2, name)
        return out, out
    if not isinstance(out, np.ndarray):
        raise TypeError("%s must be a numpy.ndarray, a simclr.Tensor or None" % name)
    if out.dtype != npd or out.shape != tuple(shape):
        raise ShapeError("%s must be %s %s, got %s %s" % (name, npd, list(shape), out.dtype,
                                                           list(out.shape)), 2, name)
    if not (out.flags.c_contiguous and out.flags.aligned and out.flags.writeable):
        raise ValueError("%s must be C-contiguous, aligned and writable" % name)
    return Tensor.from_numpy(ctx, out), out


def labels_array(labels: Any, n: int, name: str) -> np.ndarray:
    """int32 contiguous labels of exactly n entries (C cannot check the length)."""
    if labels is None:
        raise TypeError("%s must be an array of integer labels, not None" % name)
    a = np.asarray(labels)
    if a.dtype.kind not in "iu":
        raise TypeError("%s must hold integers, not %s" % (name, a.dtype))
    if a.ndim != 1 or a.shape[0] != n:
        raise ShapeError("%s must have shape [%d], got %s" % (name, n, list(a.shape)), 2, name)
    if a.size and (a.min() < -(1 << 31) or a.max() >= (1 << 31)):
        raise InvalidArgument("%s has values outside int32" % name, 1, name)
    return np.ascontiguousarray(a, dtype=np.int32)
