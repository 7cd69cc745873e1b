"""Data sets read by the library: IDX (MNIST, Fashion-MNIST) and CIFAR binary batches."""
from __future__ import annotations

import ctypes
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from . import _lib
from ._handle import Handle
from .core import Context, as_output, check_context, check_path
from .enums import DType
from .errors import InvalidArgument

fn = _lib.fn


class Dataset(Handle):
    """Images (uint8 [H, W, C] each) and optional labels, all held in memory."""

    _what = "dataset"

    def __init__(self) -> None:
        raise TypeError("use Dataset.open_idx(...) or Dataset.open_cifar(...)")

    @classmethod
    def _adopt(cls, ctx: Context, ptr: Optional[int]) -> "Dataset":
        ds = cls.__new__(cls)
        ds._init_native(ptr, _lib.cdll.simclr_dataset_destroy, [ctx])
        ds.context = ctx
        return ds

    @classmethod
    def open_idx(cls, ctx: Context, images: Any, labels: Any = None) -> "Dataset":
        """An IDX image file (gzip or raw) and optionally its IDX label file."""
        check_context(ctx)
        out = ctypes.c_void_p()
        fn.dataset_open_idx(ctx._ptr, check_path(images, "images"),
                            None if labels is None else check_path(labels, "labels"), ctypes.byref(out))
        return cls._adopt(ctx, out.value)

    @classmethod
    def open_cifar(cls, ctx: Context, paths: Sequence[Any], cifar100: bool = False) -> "Dataset":
        """CIFAR-10 (or CIFAR-100, fine labels) binary batch files, concatenated."""
        check_context(ctx)
        if isinstance(paths, (str, bytes)) or not isinstance(paths, (list, tuple)):
            paths = [paths]
        enc = [check_path(p, "paths[%d]" % i) for i, p in enumerate(paths)]
        arr = (ctypes.c_char_p * max(1, len(enc)))(*enc)
        out = ctypes.c_void_p()
        fn.dataset_open_cifar(ctx._ptr, arr, len(enc), 1 if cifar100 else 0, ctypes.byref(out))
        return cls._adopt(ctx, out.value)

    def __len__(self) -> int:
        return int(fn.dataset_count(self._ptr))

    @property
    def count(self) -> int:
        return len(self)

    @property
    def shape(self) -> Tuple[int, int, int]:
        """(height, width, channels) of every image."""
        h, w, c = ctypes.c_int64(), ctypes.c_int64(), ctypes.c_int64()
        fn.dataset_shape(self._ptr, ctypes.byref(h), ctypes.byref(w), ctypes.byref(c))
        return int(h.value), int(w.value), int(c.value)

    @property
    def labels(self) -> Optional[np.ndarray]:
        """A copy of the labels (int32 [count]), or None without a label file."""
        p = self._ptr
        addr = fn.dataset_labels(p)
        if not addr:
            return None
        n = int(fn.dataset_count(p))
        return np.ctypeslib.as_array((ctypes.c_int32 * n).from_address(addr)).copy()

    @property
    def n_classes(self) -> int:
        """max label + 1; 0 without labels."""
        return int(fn.dataset_class_count(self._ptr))

    def batch(self, indices: Any, out: Any = None) -> Any:
        """Images at `indices` as uint8 [n, H, W, C] (a new array, or written into out)."""
        p = self._ptr
        idx = np.asarray(indices)
        if idx.size == 0:
            raise InvalidArgument("indices must be a non-empty 1-D sequence", 1, "batch")
        if idx.dtype.kind not in "iu":
            raise TypeError("indices must be integers, not %s" % idx.dtype)
        if idx.ndim != 1 or idx.size == 0:
            raise InvalidArgument("indices must be a non-empty 1-D sequence", 1, "batch")
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        h, w, c = self.shape
        t, res = as_output(self.context, out, (idx.size, h, w, c), DType.U8, "out")
        fn.dataset_batch(p, ctypes.c_void_p(idx.ctypes.data), idx.size, t._ptr)
        return res

    def images(self) -> np.ndarray:
        """Every image, uint8 [count, H, W, C]."""
        return self.batch(np.arange(len(self)))

    def __repr__(self) -> str:
        if self.closed:
            return "<simclr.Dataset closed>"
        return "<simclr.Dataset %d images %s, %d classes>" % (len(self), self.shape, self.n_classes)
