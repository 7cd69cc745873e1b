"""Embedding from memory: features of host images of any size (issue 13).

One Embedder per thread (each with its own Context) may run at the same time
over one shared encoder: ctypes releases the GIL during the C call, and the
encoder's weights are only read (see simclr_embedder_* in simclr.h)."""
from __future__ import annotations

import ctypes
from typing import Any, Iterable, List, Optional

import numpy as np

from . import _lib
from ._handle import Handle
from .core import Context, Tensor, check_context
from .enums import EmbedParam
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
