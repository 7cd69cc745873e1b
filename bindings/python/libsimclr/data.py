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


# ---- label fractions (SimCLR's 1% / 10% of the labels) ------------------------

def label_subset(ctx: Context, labels: Any, fraction: Optional[float] = None, per_class: Optional[int] = None,
                 seed: int = 0, n_classes: Optional[int] = None) -> np.ndarray:
    """Class-balanced indices into labels (int64, ascending): per class
    max(1, round(fraction * count)) images, or per_class images; a pure
    function of (labels, fraction or per_class, seed). Raises InvalidArgument
    naming the class when one has fewer images than requested."""
    from .core import check_float, check_int, check_int64, check_seed, labels_array
    check_context(ctx)
    if (fraction is None) == (per_class is None):
        raise TypeError("give exactly one of fraction and per_class")
    a = np.asarray(labels)
    lab = labels_array(a, a.shape[0] if a.ndim == 1 else -1, "labels")
    if n_classes is None:
        k = int(lab.max()) + 1 if lab.size else 1
    else:
        k = check_int(n_classes, "n_classes")
    count = ctypes.c_int64()
    ptr = ctypes.c_void_p(lab.ctypes.data)

    def call(out: Any, cap: int) -> None:
        if fraction is not None:
            fn.label_subset_fraction(ctx._ptr, ptr, lab.shape[0], k, check_float(fraction, "fraction"),
                                     check_seed(seed), out, cap, ctypes.byref(count))
        else:
            fn.label_subset_per_class(ctx._ptr, ptr, lab.shape[0], k, check_int64(per_class, "per_class"),
                                      check_seed(seed), out, cap, ctypes.byref(count))

    call(None, 0)
    out = np.empty(count.value, np.int64)
    call(out.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)), out.shape[0])
    return out[:count.value]


def save_label_subset(ctx: Context, path: Any, indices: Any, n_labels: int, fraction: float = 0.0,
                      per_class: int = 0, seed: int = 0) -> None:
    """Writes the indices (ascending, < n_labels) to a text file with a header line
    naming seed, fraction and per_class (simclr_label_subset_save)."""
    from .core import check_float, check_int64, check_seed
    check_context(ctx)
    idx = np.ascontiguousarray(indices, dtype=np.int64)
    if idx.ndim != 1:
        raise ValueError("indices must be 1-D")
    fn.label_subset_save(ctx._ptr, check_path(path), ctypes.c_void_p(idx.ctypes.data), idx.shape[0],
                         check_int64(n_labels, "n_labels"), check_float(fraction, "fraction"),
                         check_int64(per_class, "per_class"), check_seed(seed))


def load_label_subset(ctx: Context, path: Any, n_labels: int = 0) -> Tuple[np.ndarray, int, float, int]:
    """(indices, seed, fraction, per_class) of a file written by save_label_subset;
    n_labels (0: any) must equal the file's total."""
    from .core import check_int64
    check_context(ctx)
    p = check_path(path)
    count = ctypes.c_int64()
    seed, frac, pc = ctypes.c_uint64(), ctypes.c_double(), ctypes.c_int64()
    fn.label_subset_load(ctx._ptr, p, check_int64(n_labels, "n_labels"), None, 0, ctypes.byref(count), None, None,
                         None)
    out = np.empty(count.value, np.int64)
    fn.label_subset_load(ctx._ptr, p, n_labels, out.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)), out.shape[0],
                         ctypes.byref(count), ctypes.byref(seed), ctypes.byref(frac), ctypes.byref(pc))
    return out[:count.value], int(seed.value), float(frac.value), int(pc.value)
