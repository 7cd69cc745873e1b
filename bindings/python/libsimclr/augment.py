"""Augmentation policies (SimCLR's random crop, flip, color jitter, grayscale, blur, ...)."""
from __future__ import annotations

import ctypes
from typing import Any, Dict, Optional, Tuple, Union

from . import _lib
from ._handle import Handle
from .core import (Context, as_input, as_output, check_context, check_enum, check_float, check_int, check_int64,
                   check_seed)
from .enums import AugParam, AugPreset, DType

fn = _lib.fn

KeyLike = Union[str, int, AugParam]


def _key(key: KeyLike) -> int:
    """AugParam from a member, its value, or its lower-case name ("flip_p")."""
    return check_enum(key, AugParam, "key")


def bounds(key: KeyLike) -> Tuple[float, float]:
    """The valid range (lo, hi) of an augmentation parameter."""
    lo, hi = ctypes.c_double(), ctypes.c_double()
    fn.augment_bounds(_key(key), ctypes.byref(lo), ctypes.byref(hi))
    return lo.value, hi.value


class Augment(Handle):
    """A policy producing F32 [N, C, out_h, out_w] views from U8 [N, H, W, C] images.

    preset: "none" (resize only, for evaluation), "finetune" (crop + flip only: SimCLR's
    fine-tuning views), "simclr_v1" (ImageNet recipe),
    "cifar" (jitter 0.5, no blur) or "grayscale" (crop, flip, brightness,
    contrast). Further keyword arguments set parameters by name, e.g.
    ``Augment(ctx, "cifar", 32, 32, flip_p=0.5, solarize_p=0.1)``; so do
    ``aug["flip_p"] = 0.3`` and ``aug.set(AugParam.FLIP_P, 0.3)``.
    Every random choice is a pure function of (seed, image index, view).
    """

    _what = "augment"

    def __init__(self, ctx: Context, preset: Union[str, int, AugPreset] = "cifar", out_h: int = 32,
                 out_w: Optional[int] = None, **params: float) -> None:
        check_context(ctx)
        if out_w is None:
            out_w = out_h
        out = ctypes.c_void_p()
        fn.augment_create_v2(ctx._ptr, check_enum(preset, AugPreset, "preset"), check_int64(out_h, "out_h"),
                             check_int64(out_w, "out_w"), ctypes.byref(out))
        self._init_native(out.value, _lib.cdll.simclr_augment_destroy, [ctx])
        self.context = ctx
        self.out_h, self.out_w = int(out_h), int(out_w)
        try:
            for k, v in params.items():
                self.set(k, v)
        except BaseException:
            self.close()
            raise

    def set(self, key: KeyLike, value: float) -> None:
        """Sets one parameter; InvalidArgument (policy unchanged) when out of range."""
        fn.augment_set(self._ptr, _key(key), check_float(value, "value"))

    def get(self, key: KeyLike) -> float:
        v = ctypes.c_double()
        fn.augment_get(self._ptr, _key(key), ctypes.byref(v))
        return v.value

    __getitem__ = get
    __setitem__ = set

    def params(self) -> Dict[str, float]:
        """Every parameter by lower-case name."""
        return {k.lower(): self.get(v) for k, v in AugParam.__members__.items()}

    def apply(self, images: Any, seed: int = 0, view: int = 0, out: Any = None) -> Any:
        """One view of each image: uint8 [N, H, W, C] -> float32 [N, C, out_h, out_w]."""
        p = self._ptr
        x = as_input(self.context, images, DType.U8, "images")
        shp = x.shape
        if len(shp) != 4:
            from .errors import ShapeError
            raise ShapeError("images must be uint8 [N, H, W, C], got %d dims" % len(shp), 2, "apply")
        yt, res = as_output(self.context, out, (shp[0], shp[3], self.out_h, self.out_w), DType.F32, "out")
        fn.augment_apply(p, x._ptr, check_seed(seed), check_int(view, "view"), yt._ptr)
        return res

    __call__ = apply

    def pair(self, images: Any, seed: int = 0, out0: Any = None, out1: Any = None) -> Tuple[Any, Any]:
        """The two SimCLR views (view 0 and view 1) of each image."""
        p = self._ptr
        x = as_input(self.context, images, DType.U8, "images")
        shp = x.shape
        if len(shp) != 4:
            from .errors import ShapeError
            raise ShapeError("images must be uint8 [N, H, W, C], got %d dims" % len(shp), 2, "pair")
        vs = (shp[0], shp[3], self.out_h, self.out_w)
        t0, r0 = as_output(self.context, out0, vs, DType.F32, "out0")
        t1, r1 = as_output(self.context, out1, vs, DType.F32, "out1")
        fn.augment_pair(p, x._ptr, check_seed(seed), t0._ptr, t1._ptr)
        return r0, r1

    def __repr__(self) -> str:
        return "<simclr.Augment %s>" % ("closed" if self.closed else "%dx%d" % (self.out_h, self.out_w))
