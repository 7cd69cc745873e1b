"""Evaluation: feature extraction, weighted kNN monitor, linear probe."""
from __future__ import annotations

import ctypes
from typing import Any, Optional

import numpy as np

from . import _lib
from .augment import Augment
from .core import (Context, as_input, as_output, check_context, check_float, check_int,
                   check_int64, labels_array)
from .data import Dataset
from .enums import DType
from .modules import Module

fn = _lib.fn


def extract_features(encoder: Module, dataset: Dataset, augment: Optional[Augment] = None,
                     batch_size: int = 256, out: Any = None) -> Any:
    """Encoder features (EVAL mode) of every image: float32 [count, D].

    augment None: pixels / 255 at the native size; else a policy applied as
    view 0 with seed 0 (normally preset "none" for a resize)."""
    if not isinstance(encoder, Module):
        raise TypeError("encoder must be a simclr module")
    if not isinstance(dataset, Dataset):
        raise TypeError("dataset must be a simclr.Dataset")
    if augment is not None and not isinstance(augment, Augment):
        raise TypeError("augment must be a simclr.Augment or None")
    p = encoder._ptr
    t, res = as_output(encoder.context, out, (len(dataset), encoder.output_dim), DType.F32, "out")
    fn.extract_features(p, dataset._ptr, augment._ptr if augment is not None else None,
                        check_int64(batch_size, "batch_size"), t._ptr)
    return res


def _features(ctx: Context, x: Any, name: str) -> Any:
    t = as_input(ctx, x, DType.F32, name)
    if t.ndim != 2:
        from .errors import ShapeError
        raise ShapeError("%s must be [N, D] features, got %s" % (name, list(t.shape)), 2, name)
    return t


def _classes(n_classes: Optional[int], *labels: np.ndarray) -> int:
    if n_classes is None:
        return int(max(int(l.max()) if l.size else -1 for l in labels)) + 1
    return check_int(n_classes, "n_classes")


def knn_eval(ctx: Context, train: Any, train_labels: Any, test: Any, test_labels: Any,
             n_classes: Optional[int] = None, k: int = 200, temperature: float = 0.1) -> float:
    """Top-1 accuracy of a weighted kNN classifier (cosine, weights exp(sim / temperature))."""
    check_context(ctx)
    tr, te = _features(ctx, train, "train"), _features(ctx, test, "test")
    ltr = labels_array(train_labels, tr.shape[0], "train_labels")
    lte = labels_array(test_labels, te.shape[0], "test_labels")
    top1 = ctypes.c_double()
    fn.knn_eval(ctx._ptr, tr._ptr, ctypes.c_void_p(ltr.ctypes.data), te._ptr,
                ctypes.c_void_p(lte.ctypes.data), _classes(n_classes, ltr, lte), check_int(k, "k"),
                check_float(temperature, "temperature"), ctypes.byref(top1))
    return top1.value


def linear_probe(ctx: Context, train: Any, train_labels: Any, test: Any, test_labels: Any,
                 n_classes: Optional[int] = None, epochs: int = 100,
                 weight_decay: float = 0.0) -> float:
    """Test top-1 of a logistic regression trained on standardized train features."""
    check_context(ctx)
    tr, te = _features(ctx, train, "train"), _features(ctx, test, "test")
    ltr = labels_array(train_labels, tr.shape[0], "train_labels")
    lte = labels_array(test_labels, te.shape[0], "test_labels")
    top1 = ctypes.c_double()
    fn.linear_probe(ctx._ptr, tr._ptr, ctypes.c_void_p(ltr.ctypes.data), te._ptr,
                    ctypes.c_void_p(lte.ctypes.data), _classes(n_classes, ltr, lte),
                    check_int(epochs, "epochs"), check_float(weight_decay, "weight_decay"),
                    ctypes.byref(top1))
    return top1.value
