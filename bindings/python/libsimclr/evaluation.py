"""Evaluation: feature extraction, weighted kNN monitor, linear probe (fixed or validated decay)."""
from __future__ import annotations

import ctypes
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from . import _lib
from .augment import Augment
from .core import (Context, as_input, as_output, check_context, check_float, check_int,
                   check_int64, labels_array)
from .data import Dataset
from .enums import DType
from .errors import InvalidArgument
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


def linear_probe_select(ctx: Context, train: Any, train_labels: Any, test: Any, test_labels: Any,
                        n_classes: Optional[int] = None, epochs: int = 1000,
                        decays: Optional[Sequence[float]] = None) -> Tuple[float, float]:
    """(test top-1, chosen weight decay) of the linear probe with its decay chosen on validation.

    For every decay (None: the library's grid 1e-5, 1e-4, 1e-3, 1e-2, 3e-2,
    1e-1) a probe fitted on the first floor(4N/5) train rows is scored on the
    rest; the first best decay is refitted on all train rows and scored on
    test (simclr_linear_probe_select). Shuffle rows sorted by class first."""
    check_context(ctx)
    tr, te = _features(ctx, train, "train"), _features(ctx, test, "test")
    ltr = labels_array(train_labels, tr.shape[0], "train_labels")
    lte = labels_array(test_labels, te.shape[0], "test_labels")
    grid = None
    if decays is not None:
        if isinstance(decays, (str, bytes)):
            raise TypeError("decays must be a sequence of numbers, not %s" % type(decays).__name__)
        try:
            grid = np.ascontiguousarray(decays, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError("decays must be a sequence of numbers") from None
        if grid.ndim != 1 or grid.size == 0:
            raise InvalidArgument("decays must be a non-empty 1-D sequence (None: the default grid)", 1, "decays")
    top1, chosen = ctypes.c_double(), ctypes.c_double()
    fn.linear_probe_select(ctx._ptr, tr._ptr, ctypes.c_void_p(ltr.ctypes.data), ltr.shape[0], te._ptr,
                           ctypes.c_void_p(lte.ctypes.data), lte.shape[0], _classes(n_classes, ltr, lte),
                           check_int(epochs, "epochs"),
                           ctypes.c_void_p(grid.ctypes.data) if grid is not None else None,
                           check_int(grid.size if grid is not None else 0, "n_decays"),
                           ctypes.byref(top1), ctypes.byref(chosen))
    return top1.value, chosen.value


def classification_metrics(predicted: Any, labels: Any, n_classes: Optional[int] = None
                           ) -> Tuple[float, np.ndarray, np.ndarray]:
    """(accuracy, confusion int64 [C, C] with rows the true class, recall float64 [C],
    NaN for a class without labels) of class predictions against labels."""
    lab = labels_array(labels, np.asarray(labels).shape[0] if np.ndim(labels) == 1 else -1, "labels")
    pred = labels_array(predicted, lab.shape[0], "predicted")
    k = _classes(n_classes, lab, pred)
    acc = ctypes.c_double()
    conf = np.zeros((k, k), np.int64)
    recall = np.zeros(k, np.float64)
    fn.classification_metrics(ctypes.c_void_p(pred.ctypes.data), ctypes.c_void_p(lab.ctypes.data), lab.shape[0], k,
                              ctypes.byref(acc), conf.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)), k * k,
                              recall.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), k)
    return acc.value, conf, recall
