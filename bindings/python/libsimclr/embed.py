"""Embedding and classification from memory: features or class probabilities
of host images of any size (issues 13 and 25).

One Embedder per thread (each with its own Context) may run at the same time
over one shared encoder: ctypes releases the GIL during the C call, and the
encoder's weights are only read (see simclr_embedder_* in simclr.h)."""
from __future__ import annotations

import ctypes
from typing import Any, Iterable, List, Optional

import numpy as np

from . import _lib
from ._handle import Handle
from .core import Context, Tensor, check_context, check_int, labels_array
from .enums import ClassifierParam, EmbedParam
from .modules import Module

fn = _lib.fn


def _images(images: Iterable[Any]) -> List[np.ndarray]:
    out = []
    for i, a in enumerate(images):
        a = np.asarray(a)
        if a.dtype != np.uint8:
            raise TypeError("image %d is %s; images are uint8 [H, W] or [H, W, C]" % (i, a.dtype))
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3 or a.shape[2] not in (1, 3):
            raise ValueError("image %d has shape %s; expected [H, W], [H, W, 1] or [H, W, 3]" % (i, a.shape))
        out.append(np.ascontiguousarray(a))
    if not out:
        raise ValueError("no images")
    return out


class Embedder(Handle):
    """Features of uint8 images of any size through torchvision's evaluation
    transform (shorter side to `resize`, default round(size / 0.875); center
    crop out_h x out_w), then the encoder in EVAL mode.

    ``Embedder(ctx, encoder, 32)(list_of_arrays)`` -> float32 [N, D]."""

    _what = "embedder"

    def __init__(self, ctx: Context, encoder: Module, out_h: int, out_w: Optional[int] = None,
                 resize: Optional[int] = None, batch: Optional[int] = None) -> None:
        check_context(ctx)
        if not isinstance(encoder, Module):
            raise TypeError("encoder must be a libsimclr module (a ResNet)")
        out = ctypes.c_void_p()
        fn.embedder_create(ctx._ptr, encoder._ptr, int(out_h), int(out_w if out_w is not None else out_h),
                           ctypes.byref(out))
        # destroyed before the encoder and the context (it reads the encoder's weights)
        self._init_native(out.value, _lib.cdll.simclr_embedder_destroy, [ctx, encoder])
        self.context = ctx
        self.encoder = encoder
        if resize is not None:
            self.set(EmbedParam.RESIZE, resize)
        if batch is not None:
            self.set(EmbedParam.BATCH, batch)

    def set(self, key: EmbedParam, value: float) -> None:
        fn.embedder_set(self._ptr, int(EmbedParam(key)), float(value))

    def get(self, key: EmbedParam) -> float:
        v = ctypes.c_double()
        fn.embedder_get(self._ptr, int(EmbedParam(key)), ctypes.byref(v))
        return v.value

    def __call__(self, images: Iterable[Any]) -> np.ndarray:
        arrays = _images(images)
        channels = arrays[0].shape[2]
        if any(a.shape[2] != channels for a in arrays):
            raise ValueError("all images need the same channel count")
        ctx = self.context
        lst = ctypes.c_void_p()
        fn.image_list_create(ctx._ptr, int(channels), ctypes.byref(lst))
        try:
            for a in arrays:
                fn.image_list_add(lst.value, a.ctypes.data, a.shape[0], a.shape[1])
            out = np.empty((len(arrays), self.encoder.output_dim), np.float32)
            with Tensor.from_numpy(ctx, out) as t:
                fn.embedder_run(self._ptr, lst.value, t._ptr)
        finally:
            _lib.cdll.simclr_image_list_destroy(lst.value)
        return out


def _image_list(ctx: Context, images: Any) -> Any:
    """(list handle, arrays kept alive, count): a 4-D uint8 array [N, H, W, C] is
    added in one call (borrowed rows), anything else image by image."""
    arr = images if isinstance(images, np.ndarray) and images.ndim == 4 else None
    arrays = [np.ascontiguousarray(arr)] if arr is not None else _images(images)
    if arr is not None and arr.dtype != np.uint8:
        raise TypeError("images must be uint8 [N, H, W, C], not %s" % arr.dtype)
    channels = arrays[0].shape[-1]
    if any(a.shape[-1] != channels for a in arrays):
        raise ValueError("all images need the same channel count")
    lst = ctypes.c_void_p()
    fn.image_list_create(ctx._ptr, int(channels), ctypes.byref(lst))
    try:
        if arr is not None:
            with Tensor.from_numpy(ctx, arrays[0]) as t:
                fn.image_list_add_tensor(lst.value, t._ptr)
            count = arrays[0].shape[0]
        else:
            for a in arrays:
                fn.image_list_add(lst.value, a.ctypes.data, a.shape[0], a.shape[1])
            count = len(arrays)
    except BaseException:
        _lib.cdll.simclr_image_list_destroy(lst.value)
        raise
    return lst, arrays, count


class Classifier(Handle):
    """Class probabilities of uint8 images of any size: the embedder's evaluation
    transform and encoder (EVAL), then a LinearHead, softmax.

    ``Classifier(ctx, encoder, head, 32)(images)`` -> float32 [N, classes];
    ``topk(images, k)`` -> (classes int32 [N, k], probabilities [N, k]);
    ``evaluate(images, labels)`` -> (accuracy, confusion [C, C], recall [C]).
    images: a list of [H, W(, C)] arrays, or one uint8 array [N, H, W, C]."""

    _what = "classifier"

    def __init__(self, ctx: Context, encoder: Module, head: Module, out_h: int, out_w: Optional[int] = None,
                 resize: Optional[int] = None, batch: Optional[int] = None) -> None:
        check_context(ctx)
        if not isinstance(encoder, Module) or not isinstance(head, Module):
            raise TypeError("encoder and head must be libsimclr modules")
        out = ctypes.c_void_p()
        fn.classifier_create(ctx._ptr, encoder._ptr, head._ptr, int(out_h), int(out_w if out_w is not None else out_h),
                             ctypes.byref(out))
        # destroyed before the modules and the context (it reads their weights)
        self._init_native(out.value, _lib.cdll.simclr_classifier_destroy, [ctx, encoder, head])
        self.context = ctx
        self.encoder = encoder
        self.head = head
        if resize is not None:
            self.set(ClassifierParam.RESIZE, resize)
        if batch is not None:
            self.set(ClassifierParam.BATCH, batch)

    @property
    def n_classes(self) -> int:
        return int(self.get(ClassifierParam.CLASSES))

    def set(self, key: ClassifierParam, value: float) -> None:
        fn.classifier_set(self._ptr, int(ClassifierParam(key)), float(value))

    def get(self, key: ClassifierParam) -> float:
        v = ctypes.c_double()
        fn.classifier_get(self._ptr, int(ClassifierParam(key)), ctypes.byref(v))
        return v.value

    def __call__(self, images: Any) -> np.ndarray:
        lst, keep, n = _image_list(self.context, images)
        try:
            out = np.empty((n, self.n_classes), np.float32)
            with Tensor.from_numpy(self.context, out) as t:
                fn.classifier_run(self._ptr, lst.value, t._ptr)
        finally:
            _lib.cdll.simclr_image_list_destroy(lst.value)
        del keep
        return out

    predict_proba = __call__

    def topk(self, images: Any, k: int = 5) -> Any:
        """(classes int32 [N, k], probabilities float32 [N, k]), by descending probability."""
        k = check_int(k, "k")
        lst, keep, n = _image_list(self.context, images)
        try:
            cls = np.empty((n, max(k, 0)), np.int32)
            prob = np.empty((n, max(k, 0)), np.float32)
            fn.classifier_topk(self._ptr, lst.value, k, cls.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                               prob.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), n * k)
        finally:
            _lib.cdll.simclr_image_list_destroy(lst.value)
        del keep
        return cls, prob

    def evaluate(self, images: Any, labels: Any) -> Any:
        """(accuracy, confusion int64 [C, C] (rows: true class), recall float64 [C])."""
        lst, keep, n = _image_list(self.context, images)
        try:
            lab = labels_array(labels, n, "labels")
            c = self.n_classes
            acc = ctypes.c_double()
            conf = np.zeros((c, c), np.int64)
            recall = np.zeros(c, np.float64)
            fn.classifier_evaluate(self._ptr, lst.value, ctypes.c_void_p(lab.ctypes.data), n, ctypes.byref(acc),
                                   conf.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)), c * c,
                                   recall.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), c)
        finally:
            _lib.cdll.simclr_image_list_destroy(lst.value)
        del keep
        return acc.value, conf, recall
